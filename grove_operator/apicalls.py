"""The operator's few API calls: building the one ApiClient (and the plain connection the webhooks read with),
caBundle injection, the reviews that guard /metrics."""

from __future__ import annotations

import base64
import logging
from typing import Any

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import AdmissionregistrationV1Api, ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.incluster_config import SERVICE_TOKEN_FILENAME

from grove_api import constants as c
from grove_api.operatorconfig import OperatorConfiguration
from kube.client import plain_session
from kube.plain import Connection
from webhook import registration

log = logging.getLogger(__name__)

REVIEW_TIMEOUT = 10.0  # seconds; controller-runtime's for the reviews behind its metrics endpoint
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


async def api_client(kubeconfig: str | None, config: OperatorConfiguration) -> ApiClient:
    """One ApiClient for the process: from `kubeconfig`, else the in-cluster ServiceAccount."""
    conf = Configuration()
    if kubeconfig:
        await kube_config.load_kube_config(config_file=kubeconfig, client_configuration=conf)
    else:
        kube_config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
    # Watches (later: one per kind) and admission lookups share this pool.
    conf.connection_pool_maxsize = max(100, config.runtime_client_connection.burst)
    return plain_session(ApiClient(configuration=conf))


async def connection(client: ApiClient, *, in_cluster: bool) -> Connection:
    """How `client` reaches the apiserver, for a reader without kubernetes_asyncio (`kube.plain`): the same
    host, CA and client certificate, and its token, or in a pod the ServiceAccount's token file (rotated)."""
    conf = client.configuration
    bearer = (await conf.auth_settings()).get("BearerToken")
    return Connection(
        host=str(conf.host),
        ca_file=conf.ssl_ca_cert,
        verify=bool(conf.verify_ssl),
        cert_file=conf.cert_file,
        key_file=conf.key_file,
        token=None if in_cluster or bearer is None else str(bearer["value"]),
        token_file=SERVICE_TOKEN_FILENAME if in_cluster else None,
    )


async def create_review(client: ApiClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a TokenReview or SubjectAccessReview to `path`; the answer (nothing is stored). API errors raise."""
    answer = await client.call_api(
        path,
        "POST",
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        response_types_map={200: "object", 201: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _request_timeout=REVIEW_TIMEOUT,
    )
    if not isinstance(answer, dict):
        raise TypeError(f"{path}: expected a JSON object, got {type(answer).__name__}")
    return answer


def _encoded(bundle: bytes) -> str:
    return base64.b64encode(bundle).decode()


def _needs(doc: dict[str, Any], encoded: str) -> list[str]:
    """Names of the webhooks in `doc` whose caBundle is not `encoded`."""
    return [
        w["name"]
        for w in doc.get("webhooks") or []
        if (w.get("clientConfig") or {}).get("caBundle") != encoded
    ]


async def inject_ca_bundle(client: ApiClient, bundle: bytes, *, authorizer: bool) -> dict[str, str]:
    """Set clientConfig.caBundle of every webhook in our configurations; {name: what happened}.

    A configuration that does not exist is reported ("missing") and skipped: the install creates them.
    Other API errors propagate (the caller retries).
    """
    api = AdmissionregistrationV1Api(client)
    encoded = _encoded(bundle)
    outcome: dict[str, str] = {}
    for kind, name in registration.configuration_names(authorizer=authorizer):
        mutating = kind == registration.MUTATING_KIND
        read = (
            api.read_mutating_webhook_configuration if mutating else api.read_validating_webhook_configuration
        )
        patch = (
            api.patch_mutating_webhook_configuration
            if mutating
            else api.patch_validating_webhook_configuration
        )
        try:
            current = client.sanitize_for_serialization(await read(name))
        except ApiException as err:
            if err.status == 404:
                outcome[name] = "missing"
                continue
            raise
        names = _needs(current, encoded)
        if not names:
            outcome[name] = "up to date"
            continue
        body = {"webhooks": [{"name": n, "clientConfig": {"caBundle": encoded}} for n in names]}
        options: dict[str, Any] = {"_content_type": STRATEGIC_MERGE, "field_manager": c.FIELD_MANAGER}
        await patch(name, body, **options)
        outcome[name] = "injected"
    return outcome

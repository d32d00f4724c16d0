"""/metrics protected as controller-runtime protects it, against the real kube-apiserver: a grove-operator
process with `server.metrics.secure` (under the operator's own ServiceAccount and RBAC, as installed), scraped
with ServiceAccount tokens; and the session operator's plain endpoint (what the benchmarks scrape)."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import (
    ApiClient,
    AuthenticationV1TokenRequest,
    CoreV1Api,
    RbacAuthorizationV1Api,
    RbacV1Subject,
    V1ClusterRole,
    V1ClusterRoleBinding,
    V1ObjectMeta,
    V1PolicyRule,
    V1RoleRef,
    V1ServiceAccount,
    V1TokenRequestSpec,
)
from kubernetes_asyncio.client.exceptions import ApiException

from grove_operator.metricsauth import CachePolicy
from localcluster import api, ports
from localcluster import operator as grove_operator
from localcluster.state import ClusterInfo
from tests.second_operator import second_operator
from webhook import paths

# What a Prometheus must be bound to (the chart ships it as <clusterRole.name>-metrics-reader).
READER_RULES = [V1PolicyRule(non_resource_urls=["/metrics"], verbs=["get"])]


@dataclass
class SecureOperator:
    metrics_url: str
    health_port: int
    tls: ssl.SSLContext  # trusts the operator's CA (the webhook certificate's)
    log: Path


@pytest.fixture
def secure_operator(cluster: ClusterInfo, tmp_path: Path) -> Iterator[SecureOperator]:
    """A second, webhooks-only operator process beside the session's: same Secret (hence the same CA:
    injecting it changes nothing), its own ports and certificate directory, metrics secure."""
    grove_operator.install_rbac(cluster)  # the operator's rights as the install grants them

    def secure(config: dict[str, Any]) -> None:
        config["server"]["metrics"]["secure"] = True

    with second_operator(cluster, tmp_path, secure) as operator:
        tls = ssl.create_default_context(cafile=str(operator.cert_dir / "ca.crt"))
        url = f"https://{ports.HOST}:{operator.metrics_port}/metrics"
        yield SecureOperator(url, operator.health_port, tls, operator.log)
        operator.stop()


@pytest.fixture
async def scraper(api_client: ApiClient, namespace: str) -> AsyncIterator[tuple[str, str]]:
    """A ServiceAccount with no rights at all (namespace, name); its cluster-wide binding is removed after."""
    name = f"prometheus-{uuid.uuid4().hex[:6]}"
    account = V1ServiceAccount(metadata=V1ObjectMeta(name=name))
    await CoreV1Api(api_client).create_namespaced_service_account(namespace, account)
    yield namespace, name
    rbac = RbacAuthorizationV1Api(api_client)
    for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
        try:
            await delete(name)
        except ApiException as err:
            if err.status != 404:
                raise


async def token_of(api_client: ApiClient, namespace: str, name: str) -> str:
    """A TokenRequest, as the kubelet mounts one into Prometheus' pod."""
    request = AuthenticationV1TokenRequest(spec=V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    answer = await CoreV1Api(api_client).create_namespaced_service_account_token(name, namespace, request)
    token: str = answer.status.token
    return token


async def grant_metrics_reader(api_client: ApiClient, namespace: str, name: str) -> None:
    rbac = RbacAuthorizationV1Api(api_client)
    await rbac.create_cluster_role(V1ClusterRole(metadata=V1ObjectMeta(name=name), rules=READER_RULES))
    await rbac.create_cluster_role_binding(
        V1ClusterRoleBinding(
            metadata=V1ObjectMeta(name=name),
            role_ref=V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name),
            subjects=[RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        )
    )


async def scrape(operator: SecureOperator, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(operator.metrics_url, ssl=operator.tls, headers=headers) as response,
    ):
        return response.status, await response.text()


async def test_metrics_need_a_token_allowed_to_get_them(
    secure_operator: SecureOperator, api_client: ApiClient, scraper: tuple[str, str]
) -> None:
    namespace, name = scraper
    assert await scrape(secure_operator, None) == (401, "Unauthorized")
    assert await scrape(secure_operator, "not-a-token") == (401, "Unauthorized")
    token = await token_of(api_client, namespace, name)
    status, body = await scrape(secure_operator, token)
    # 500 here would mean the operator may not create TokenReviews/SubjectAccessReviews (its ClusterRole).
    assert (status, body) == (403, f"Authorization denied for user system:serviceaccount:{namespace}:{name}")

    await grant_metrics_reader(api_client, namespace, name)
    granted = time.monotonic()
    # The same token: its 403 is cached for a few seconds, then the role counts.
    while (status := (await scrape(secure_operator, token))[0]) == 403:
        assert time.monotonic() - granted < CachePolicy().denied_seconds + 10, "the role never counted"
        await asyncio.sleep(0.5)
    status, body = await scrape(secure_operator, token)
    assert status == 200, body
    assert "# TYPE grove_webhook_requests_total counter" in body
    # Webhooks only: nothing to be wedged; liveness is the event loop answering.
    assert api.get(f"http://{ports.HOST}:{secure_operator.health_port}{paths.HEALTHZ}") == (200, b"ok")


def test_session_operator_serves_plain_metrics_and_is_live(cluster: ClusterInfo) -> None:
    """The local cluster's configuration leaves metrics plain (the benchmarks scrape `metrics_url`), and its
    operator, running the controllers, is live."""
    state = grove_operator.start(cluster.state_dir)  # a no-op unless a test left it stopped
    url = grove_operator.metrics_url(cluster)
    assert url.startswith("http://")
    status, body = api.get(url)
    assert status == 200 and b"# TYPE grove_reconcile_total counter" in body
    assert api.get(f"http://{ports.HOST}:{state.health_port}{paths.HEALTHZ}") == (200, b"ok")

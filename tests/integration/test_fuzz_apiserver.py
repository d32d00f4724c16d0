"""Fuzzing through the real kube-apiserver (issue 21, part 5), with the operator of the session's cluster
serving the webhooks and reconciling:

- generated PodCliqueSets (well-formed, faulty, oversized, with deeply nested junk) created through the
  apiserver: each is stored, then planned without an exception by the pure planner and reconciled by the
  operator, or refused with a 4xx that names a field; a refused one leaves no child behind;
- generated AdmissionReviews for every webhook path, sent straight to the operator's webhook server (its
  handlers' reads go to the real apiserver): never a 5xx, always a well-formed answer;
- through both, the operator stays up: same process, /healthz and /readyz answer, no error or traceback in
  its log.

`make test` runs a small derandomized profile; GROVE_FUZZ_EXAMPLES=10000 the big run (docs/admission.md,
"Fuzzing"; see CREATE_EVERY). The PodCliqueSet test prints its outcome counts at the end (`-s` shows them).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import ssl
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from grove_api import constants as c
from localcluster import operator as grove_operator
from localcluster.state import ClusterInfo
from tests.builders import pcs
from tests.fuzzing import (
    EXAMPLES_ENV,
    TOPOLOGY,
    TOPOLOGY_LEVELS,
    check_answer,
    fuzz_settings,
    gang_pod,
    has_field_path,
    managed_object,
    mutated_reviews,
    plan_stored,
    podcliquesets,
    topology_binding,
)
from webhook import paths
from webhook.admission import AdmissionResponse, BadReview, parse_review

pytestmark = pytest.mark.usefixtures("grove_crds")
PCS = (c.GROUP, c.VERSION)
# The kinds the operator creates for a PodCliqueSet that a refused one must not have: (group, plural).
CHILDREN = [
    (c.GROUP, c.PLURAL_PODCLIQUE),
    (c.GROUP, c.PLURAL_PODCLIQUESCALINGGROUP),
    (c.SCHEDULER_GROUP, c.PLURAL_PODGANG),
]


def failed_unexpectedly(line: dict[str, Any]) -> bool:
    """A traceback other than a pass whose writes failed (ReconcileError: a conflict, say, when a
    PodCliqueSet is deleted while its finalizer is being removed; retried by design): the planner, the
    snapshot or a handler raised."""
    exc = line.get("exc")
    return exc is not None and not exc.rstrip().splitlines()[-1].startswith(
        "reconciler.manager.ReconcileError"
    )


class OperatorWatch:
    """The operator of the session's cluster, before and after a fuzz run."""

    def __init__(self, cluster: ClusterInfo) -> None:
        self.state_dir = cluster.state_dir
        state = grove_operator.load_state(cluster.state_dir)
        assert state is not None and state.pid, "the cluster runs no operator"
        self.state = state
        self.log = Path(state.log)
        self.offset = self.log.stat().st_size

    def new_log_lines(self) -> list[dict[str, Any]]:
        with self.log.open("rb") as f:
            f.seek(self.offset)
            return [json.loads(line) for line in f if line.startswith(b"{")]

    def check_alive(self) -> None:
        """Same process, healthy and ready, and nothing in its log since the start that says it failed."""
        status = grove_operator.status(self.state_dir)
        assert status is not None and status.alive and status.pid == self.state.pid, status
        assert status.ready, "the operator is not ready"
        with urllib.request.urlopen(f"http://127.0.0.1:{self.state.health_port}/healthz", timeout=5) as r:
            assert r.status == 200
        noisy = [
            line
            for line in self.new_log_lines()
            if line.get("level") in ("error", "critical")
            or failed_unexpectedly(line)
            or line.get("msg") == "webhook process serving"  # the webhook process was restarted
        ]
        assert noisy == [], noisy[:3]


@pytest.fixture
def operator(cluster: ClusterInfo) -> Iterator[OperatorWatch]:
    watch = OperatorWatch(cluster)
    yield watch
    watch.check_alive()


def refusal(err: ApiException) -> str:
    """What refused the PodCliqueSet ("webhook", "schema" or "decoding"), asserting that the refusal is a
    4xx that names the field at fault: in the Status's causes (the apiserver's own checks) or in its
    message (our webhooks, in the apiserver's format). Only a body the apiserver cannot even decode into an
    object (apiVersion not a string, metadata.namespace a list) is refused by its decoder without a field."""
    assert err.status is not None and 400 <= err.status < 500, (err.status, err.body)
    status = json.loads(err.body or b"")
    message = str(status.get("message", ""))
    if status.get("reason") == "BadRequest" and not message.startswith("admission webhook"):
        return "decoding"
    causes = (status.get("details") or {}).get("causes") or []
    assert any(cause.get("field") for cause in causes) or has_field_path(message), message
    return "webhook" if message.startswith("admission webhook") else "schema"


# Every case is created for real in the CI profile. The big run creates every tenth for real and the rest
# with dryRun=All (the same admission chain, defaults and validation; nothing stored, so no operator work):
# on a 2-core machine the operator's children of every stored one made it ~100 cases a minute.
CREATE_EVERY = 10 if os.environ.get(EXAMPLES_ENV) else 1


class Run:
    """What one fuzz test saw: outcomes by kind, and the names of the PodCliqueSets the apiserver refused."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: Counter[str] = Counter()
        self.refused: set[str] = set()
        self.names = itertools.count()

    def report(self) -> None:
        print(
            f"\n{self.name}: {sum(self.counts.values())} cases: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        )


@pytest.fixture
async def topology(api_client: client.ApiClient) -> AsyncIterator[None]:
    """The ClusterTopologyBinding the generated constraints mostly name."""
    objects = client.CustomObjectsApi(api_client)
    binding = topology_binding(TOPOLOGY, TOPOLOGY_LEVELS)
    await objects.create_cluster_custom_object(c.GROUP, c.VERSION, c.PLURAL_CLUSTERTOPOLOGYBINDING, binding)
    yield
    await objects.delete_cluster_custom_object(c.GROUP, c.VERSION, c.PLURAL_CLUSTERTOPOLOGYBINDING, TOPOLOGY)


@pytest.fixture
async def pcs_run(
    api_client: client.ApiClient, namespace: str, operator: OperatorWatch, topology: None
) -> AsyncIterator[Run]:
    """After the run: the counts printed, and no child of a refused PodCliqueSet in the namespace."""
    run = Run("PodCliqueSets through the apiserver")
    yield run
    run.report()
    objects = client.CustomObjectsApi(api_client)
    for group, plural in CHILDREN:
        listed = await objects.list_namespaced_custom_object(group, c.VERSION, namespace, plural)
        parents = {(i["metadata"].get("labels") or {}).get(c.LABEL_PART_OF) for i in listed["items"]}
        assert not parents & run.refused, (plural, parents & run.refused)
    services = await client.CoreV1Api(api_client).list_namespaced_service(namespace)
    parents = {(s.metadata.labels or {}).get(c.LABEL_PART_OF) for s in services.items}
    assert not parents & run.refused, ("services", parents & run.refused)


async def reconciled(
    objects: client.CustomObjectsApi, namespace: str, name: str, timeout: float = 10
) -> bool:
    """Whether the operator put its finalizer on the PodCliqueSet within `timeout`: the first thing its
    first plan does, so a plan that raises never gets there."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        obj = await objects.get_namespaced_custom_object(*PCS, namespace, c.PLURAL_PODCLIQUESET, name)
        if c.FINALIZER_PODCLIQUESET in (obj["metadata"].get("finalizers") or []):
            return True
        await asyncio.sleep(0.02)
    return False


@fuzz_settings(30)
@given(data=st.data())
async def test_podcliquesets_through_the_apiserver(
    data: st.DataObject, namespace: str, api_client: client.ApiClient, pcs_run: Run
) -> None:
    objects = client.CustomObjectsApi(api_client)
    number = next(pcs_run.names)
    doc = data.draw(podcliquesets(f"z{number}-", namespace))
    dry_run = number % CREATE_EVERY != 0
    options: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    try:
        stored = await objects.create_namespaced_custom_object(
            *PCS, namespace, c.PLURAL_PODCLIQUESET, doc, **options
        )
    except ApiException as err:
        name = doc.get("metadata", {}).get("name") if isinstance(doc.get("metadata"), dict) else None
        if isinstance(name, str):
            pcs_run.refused.add(name)
        pcs_run.counts[f"refused {err.status} ({refusal(err)})"] += 1
        return
    pcs_run.counts["stored (dry run)" if dry_run else "stored"] += 1
    plan_stored(stored)
    if dry_run:
        return
    name = stored["metadata"]["name"]
    assert await reconciled(objects, namespace, name), f"the operator did not reconcile {name}"
    await objects.delete_namespaced_custom_object(*PCS, namespace, c.PLURAL_PODCLIQUESET, name)


# --- AdmissionReviews straight to the operator's webhook server ------------------------------------------

PARENT = "fuzz-parent"


def samples(namespace: str) -> dict[str, dict[str, Any]]:
    """The object each webhook path is fuzzed around; the authorizer's names an existing PodCliqueSet."""
    return {
        paths.DEFAULT_PODCLIQUESET: pcs(PARENT, namespace=namespace),
        paths.VALIDATE_PODCLIQUESET: pcs(PARENT, namespace=namespace),
        paths.AUTHORIZER: managed_object(c.KIND_PODCLIQUE, c.API_VERSION, PARENT, namespace),
        paths.MUTATE_POD: gang_pod(PARENT, namespace),
        paths.VALIDATE_CLUSTERTOPOLOGY: topology_binding(TOPOLOGY, TOPOLOGY_LEVELS),
    }


def answer(payload: dict[str, Any]) -> AdmissionResponse:
    """The AdmissionResponse in a served AdmissionReview."""
    out = payload["response"]
    status = out.get("status") or {}
    patch = json.loads(base64.b64decode(out["patch"])) if "patch" in out else []
    return AdmissionResponse(
        allowed=out["allowed"],
        message=status.get("message", ""),
        code=status.get("code", 200),
        reason=status.get("reason", ""),
        patch=patch,
    )


@pytest.fixture
async def webhook_session(
    operator: OperatorWatch, api_client: client.ApiClient, namespace: str
) -> AsyncIterator[aiohttp.ClientSession]:
    """HTTPS to the operator's webhook server (its certificate is not what this test checks), with the
    PodCliqueSet the authorizer's samples name in place."""
    parent = pcs(PARENT, namespace=namespace, replicas=0)
    await client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        *PCS, namespace, c.PLURAL_PODCLIQUESET, parent
    )
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=insecure)) as session:
        yield session


@pytest.mark.parametrize("path", sorted(samples("ns")))
@fuzz_settings(40)
@given(data=st.data())
async def test_reviews_straight_to_the_webhook_server(
    path: str,
    data: st.DataObject,
    namespace: str,
    operator: OperatorWatch,
    webhook_session: aiohttp.ClientSession,
) -> None:
    body = data.draw(mutated_reviews(samples(namespace)[path]))
    url = f"https://127.0.0.1:{operator.state.webhook_port}{path}"
    async with webhook_session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
        status, payload = resp.status, await resp.read()
    assert status < 500, (status, payload[:300])
    try:
        request = parse_review(body)
    except (BadReview, RecursionError):
        assert status == 400, (status, payload[:300])
        return
    assert status == 200, (status, payload[:300])
    served = json.loads(payload)
    assert served["response"]["uid"] == request.uid
    check_answer(request, answer(served), field_paths=path != paths.AUTHORIZER)

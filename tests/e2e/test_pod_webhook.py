"""The pod webhook's match condition, evaluated by the real apiserver: the webhook is called for a gang pod
that lacks the gate or grove-initc (whoever creates it: the guarantee), and skipped for a pod that already
has what it would add (a pod admitted on creation: only when the operator itself creates it).

The operator's own request counter (`grove_webhook_requests_total` for the pod path) says whether the
apiserver called it."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from grove_api import constants as c
from grove_api import podgang
from grove_api.conditions import get_condition
from grove_api.pod_admission import GATE, admitted_on_create
from localcluster import operator
from localcluster.state import ClusterInfo
from tests.builders import clique, pcs, pod_spec
from tests.waiting import until
from webhook import paths

# More cpu than any test node has: the gang is never admitted, its pods keep the gate.
HUGE = pod_spec(containers=[{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "1000"}}}])


async def pod_webhook_calls(cluster: ClusterInfo) -> int:
    async with aiohttp.ClientSession() as session, session.get(operator.metrics_url(cluster)) as resp:
        text = await resp.text()
    pattern = rf'^grove_webhook_requests_total\{{[^}}]*path="{re.escape(paths.MUTATE_POD)}"[^}}]*\}} (\S+)$'
    return int(sum(float(m) for m in re.findall(pattern, text, re.MULTILINE)))


def gang_pod(namespace: str, *, gates: list[dict[str, str]] | None = None, deps: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"p-{uuid.uuid4().hex[:6]}",
        "namespace": namespace,
        "labels": {
            c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE,
            c.LABEL_PODGANG: "someone-0",
            c.LABEL_PART_OF: "someone",
        },
    }
    if deps:
        meta["annotations"] = {c.ANNOTATION_STARTUP_DEPENDENCIES: deps}
    spec = pod_spec()
    if gates is not None:
        spec["schedulingGates"] = gates
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def gate_names(pod: dict[str, Any]) -> list[str]:
    return [g["name"] for g in pod["spec"].get("schedulingGates") or []]


def init_names(pod: dict[str, Any]) -> list[str]:
    return [x["name"] for x in pod["spec"].get("initContainers") or []]


async def create(api_client: client.ApiClient, pod: dict[str, Any]) -> dict[str, Any]:
    core = client.CoreV1Api(api_client)
    made = await core.create_namespaced_pod(pod["metadata"]["namespace"], pod)
    return dict(api_client.sanitize_for_serialization(made))


@pytest.mark.parametrize(
    ("gates", "deps"),
    [
        (None, ""),  # nothing
        ([{"name": "example.com/quota"}], ""),  # another gate only
        ([GATE], "someone-0-a:1"),  # the gate, but not grove-initc its dependencies need
    ],
)
async def test_a_pod_lacking_what_the_webhook_adds_is_mutated(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str, gates: Any, deps: str
) -> None:
    before = await pod_webhook_calls(cluster)
    made = await create(api_client, gang_pod(namespace, gates=gates, deps=deps))
    assert c.SCHEDULING_GATE_PODGANG_PENDING in gate_names(made)
    assert (c.INIT_CONTAINER_NAME in init_names(made)) == bool(deps)
    assert await pod_webhook_calls(cluster) == before + 1


async def test_an_admitted_on_create_annotation_from_anybody_but_the_operator_is_ignored(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str
) -> None:
    """The annotation the operator puts on pods of a gang admitted before they exist says "do not gate me";
    written by anyone else (here the cluster admin) it must not bypass gang admission: the apiserver calls the
    webhook (the match condition checks who asks), which gates the pod."""
    pod = gang_pod(namespace)
    pod["metadata"]["annotations"] = {c.ANNOTATION_ADMITTED_ON_CREATE: "true"}
    before = await pod_webhook_calls(cluster)
    made = await create(api_client, pod)
    assert gate_names(made) == [c.SCHEDULING_GATE_PODGANG_PENDING]
    assert await pod_webhook_calls(cluster) == before + 1


async def test_a_pod_that_has_it_skips_the_webhook(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str
) -> None:
    before = await pod_webhook_calls(cluster)
    made = await create(api_client, gang_pod(namespace, gates=[{"name": "example.com/quota"}, GATE]))
    assert gate_names(made) == ["example.com/quota", c.SCHEDULING_GATE_PODGANG_PENDING]
    assert await pod_webhook_calls(cluster) == before


async def test_the_operators_pods_are_gated_with_grove_initc_by_the_webhook(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str
) -> None:
    """Pods of a clique with a parent carry grove-initc, and every pod is gated (the gang asks for more cpu
    than the cluster has, so the gates stay): one webhook call per pod."""
    before = await pod_webhook_calls(cluster)
    doc = pcs(
        "skip",
        namespace=namespace,
        startup="CliqueStartupTypeExplicit",
        cliques=[
            clique("a", replicas=2, min_available=2, pod=HUGE),
            clique("b", replicas=2, starts_after=["a"], pod=HUGE),
        ],
    )
    objects = client.CustomObjectsApi(api_client)
    await objects.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, doc)
    core = client.CoreV1Api(api_client)

    async def pods() -> list[dict[str, Any]] | None:
        listed = await core.list_namespaced_pod(namespace, label_selector=f"{c.LABEL_PART_OF}=skip")
        items = [dict(api_client.sanitize_for_serialization(p)) for p in listed.items]
        return items if len(items) == 4 else None

    made = await until("the PodCliqueSet's 4 pods", pods, 60)
    by_clique: dict[str, list[dict[str, Any]]] = {}
    for pod in made:
        by_clique.setdefault(pod["metadata"]["labels"][c.LABEL_PODCLIQUE], []).append(pod)
    assert all(c.INIT_CONTAINER_NAME in init_names(p) for p in by_clique["skip-0-b"])
    assert not any(init_names(p) for p in by_clique["skip-0-a"])
    assert all(gate_names(p) == [c.SCHEDULING_GATE_PODGANG_PENDING] for p in made)
    assert await pod_webhook_calls(cluster) >= before + 4


async def test_the_operators_pods_admitted_on_creation_skip_the_webhook(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str
) -> None:
    """A gang that fits is admitted before its pods exist; the operator creates them pinned, ungated and
    annotated, and the match condition (the operator's own identity) spares them the webhook call. Admission
    on creation waits for an idle admitter: first every other test's gangs must be gone or admitted."""
    objects = client.CustomObjectsApi(api_client)

    def admitted(gang: dict[str, Any]) -> bool:
        found = get_condition(podgang.conditions(gang), podgang.CONDITION_ADMITTED)
        return found is not None and found.get("status") == "True"

    async def no_other_gang_waits() -> bool:
        listed = await objects.list_cluster_custom_object(c.SCHEDULER_GROUP, c.VERSION, c.PLURAL_PODGANG)
        return all(admitted(g) for g in listed["items"])

    await until("no other gang waiting for admission", no_other_gang_waits, 120)
    before = await pod_webhook_calls(cluster)
    doc = pcs("fits", namespace=namespace, cliques=[clique("a", replicas=2, min_available=2)])
    await objects.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, doc)
    core = client.CoreV1Api(api_client)

    async def pods() -> list[dict[str, Any]] | None:
        listed = await core.list_namespaced_pod(namespace, label_selector=f"{c.LABEL_PART_OF}=fits")
        items = [dict(api_client.sanitize_for_serialization(p)) for p in listed.items]
        return items if len(items) == 2 else None

    made = await until("the PodCliqueSet's 2 pods", pods, 60)
    assert all(admitted_on_create(p) for p in made), [p["metadata"] for p in made]
    assert not any(c.SCHEDULING_GATE_PODGANG_PENDING in gate_names(p) for p in made)
    assert await pod_webhook_calls(cluster) == before

"""The OnDelete update strategy (docs/termination-and-updates.md; Grove's e2e OD-1 … OD-9) on private KWOK
pools where each node fits exactly one pod.

Under OnDelete a pod-template change deletes nothing: the PodCliques take the new template at once, the
update is finished as soon as it starts (`updateProgress.updateEndedAt` set, no `currentlyUpdating`), and
a pod comes back on the new template only when it is replaced for another reason (deleted by a user,
failed, scale-out); scale-in takes outdated pods first. The workload is Grove's WL1 (pc-a x2 standalone,
sg-x = {pc-b x1, pc-c x3} x2) with `updateStrategy.type: OnDelete`; an update is Grove's (env
`UPDATE_TRIGGER` in a clique's first container, `kubectl patch`). A `PodTracker` (tests/podtracker.py)
proves what was not touched: "nothing happens" checks last `QUIET` seconds after the operator has
processed the change (observedGeneration and generation hash current, the PodCliques on the new
template).

Every scenario runs under the gang invariant with its default windows (tests/e2e/conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from grove_api import constants as c
from grove_api import hashing
from tests.gang import wl1
from tests.podtracker import (
    UPDATE_TRIGGER,
    PodTracker,
    Start,
    Workload,
    clique_of,
    condition,
    env_of,
    quiet,
)
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("gang_invariant")

ALL = ("pc-a", "pc-b", "pc-c")
QUIET = 4.0  # seconds of "nothing happens"
HOSTNAME = "kubernetes.io/hostname"


def wl1_ondelete(name: str, namespace: str, pool: str, **kw: Any) -> dict[str, Any]:
    doc = wl1(name, namespace, pool, **kw)
    doc["spec"]["updateStrategy"] = {"type": "OnDelete"}
    return doc


def of(items: list[dict[str, Any]], podclique: str) -> list[dict[str, Any]]:
    return [p for p in items if p["metadata"]["labels"][c.LABEL_PODCLIQUE] == podclique]


def uid(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["uid"])


async def changed(w: Workload, t: PodTracker, *cliques: str) -> str:
    """Change the templates of `cliques` and check that nothing happens: the update is finished at once,
    the PodCliques of those cliques take the new template, no pod is deleted or created."""
    value = await w.trigger(*cliques)
    pcs = await w.wait_current()
    pclqs = [
        q["metadata"]["name"]
        for q in (
            await client.CustomObjectsApi(w.api).list_namespaced_custom_object(
                c.GROUP, c.VERSION, w.namespace, c.PLURAL_PODCLIQUE
            )
        )["items"]
        if any(q["metadata"]["name"].endswith(f"-{clique}") for clique in cliques)
    ]
    for name in pclqs:
        await w.wait_podclique(name)
    await quiet(t, QUIET)
    pcs = await w.get()
    progress = pcs["status"]["updateProgress"]
    assert progress.get("updateStartedAt") and progress.get("updateEndedAt"), progress
    assert not progress.get("currentlyUpdating"), progress
    assert (condition(pcs, "UpdateInProgress") or {}).get("status") != "True", pcs["status"]
    return value


async def replace(w: Workload, victims: list[dict[str, Any]], pods: int, value: str) -> list[dict[str, Any]]:
    """Delete `victims` (one at a time, as a user would) and return their replacements, each checked to be
    on the current template (env `UPDATE_TRIGGER` = `value`, template-hash label current)."""
    async with PodTracker(w.api, w.namespace) as t:
        before = {uid(p) for p in await w.pods()}
        for victim in victims:
            await w.delete_pod(victim["metadata"]["name"])
            await w.wait_running(pods, gone=[uid(victim)])
        items = await w.wait_running(pods)
    assert {r.uid for r in t.disturbed()} == {uid(v) for v in victims}, t.describe()
    new = [p for p in items if uid(p) not in before]
    assert len(new) == len(victims), t.describe()
    hashes = hashing.clique_template_hashes(await w.get())
    for pod in new:
        assert env_of(pod).get(UPDATE_TRIGGER) == value, (pod["metadata"]["name"], env_of(pod))
        clique = clique_of(pod["metadata"]["labels"][c.LABEL_PODCLIQUE], hashes)
        assert clique and pod["metadata"]["labels"][c.LABEL_POD_TEMPLATE_HASH] == hashes[clique]
    return new


async def test_od1_od2_od3_standalone_clique(
    api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    w = await start(wl1_ondelete, nodes=10, pods=10)
    pclq = "wl-0-pc-a"

    # OD-1: pc-a changed: no pod deleted, the update is marked complete at once.
    async with PodTracker(api_client, namespace) as t:
        value = await changed(w, t, "pc-a")

    # OD-2: a deleted pc-a pod comes back on the new template; status counts it.
    old = of(await w.pods(), pclq)
    [new] = await replace(w, old[:1], 10, value)

    async def one_updated() -> dict[str, Any] | None:
        obj = await w.get(c.PLURAL_PODCLIQUE, pclq)
        return obj if (obj.get("status") or {}).get("updatedReplicas") == 1 else None

    await until(f"{pclq} to count 1 updated pod", one_updated, timeout=30)
    progress = (await w.get())["status"]["updateProgress"]
    assert progress["updateStartedAt"] and progress["updateEndedAt"] and not progress.get("currentlyUpdating")
    assert progress["totalPodCliquesCount"] > 0 and progress["totalPodCliqueScalingGroupsCount"] > 0, progress
    assert progress["updatedPodCliquesCount"] <= progress["totalPodCliquesCount"], progress
    assert progress["updatedPodCliqueScalingGroupsCount"] <= progress["totalPodCliqueScalingGroupsCount"]

    # OD-3: scale-in 2 → 1 takes the outdated pod, not the updated one.
    await w.scale("pclq", pclq, 1)
    items = await w.wait_running(9, gone=[uid(old[1])])
    assert [uid(p) for p in of(items, pclq)] == [uid(new)]


async def test_od4_od5_od6_scaling_group_and_mixed(
    api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    w = await start(wl1_ondelete, nodes=10, pods=10)

    # OD-4: pc-b (in scaling group sg-x) changed: no scaling-group replica is recreated, no pod deleted;
    # the scaling group's update is finished at once.
    async with PodTracker(api_client, namespace) as t:
        await changed(w, t, "pc-b")
    pcs = await w.get()
    pcsg = await w.get(c.PLURAL_PODCLIQUESCALINGGROUP, "wl-0-sg-x")
    progress = pcsg["status"]["updateProgress"]
    assert progress["podCliqueSetGenerationHash"] == pcs["status"]["currentGenerationHash"], progress
    assert progress.get("updateEndedAt"), progress

    # OD-5: pc-c changed; one deleted pc-c pod comes back on the new template, alone: the rest of its
    # scaling-group replica stays.
    async with PodTracker(api_client, namespace) as t:
        value = await changed(w, t, "pc-c")
    await replace(w, of(await w.pods(), "wl-0-sg-x-0-pc-c")[:1], 10, value)

    # OD-6: every clique changed: nothing deleted; a deleted standalone pod and a deleted scaling-group
    # pod both come back on the new templates, nothing else is touched.
    async with PodTracker(api_client, namespace) as t:
        value = await changed(w, t, *ALL)
    items = await w.pods()
    await replace(w, [of(items, "wl-0-pc-a")[0], of(items, "wl-0-sg-x-1-pc-c")[0]], 10, value)


async def test_od7_od8_two_replicas_and_node_failure(
    api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    w = await start(wl1_ondelete, nodes=21, pods=20, replicas=2)

    # OD-7: two PodCliqueSet replicas: pc-a changed, no pod of either replica deleted, both replicas'
    # pc-a PodCliques on the new template (checked by `changed`).
    async with PodTracker(api_client, namespace) as t:
        value = await changed(w, t, "pc-a")

    # OD-8: the node-failure workflow. A pc-a pod's node is "bad": pc-a gets a NotIn node affinity for it
    # (nothing is deleted, the pod keeps running there); the user deletes that pod; its replacement has
    # the affinity and runs elsewhere; the other 19 pods are untouched.
    victim = of(await w.pods(), "wl-1-pc-a")[0]
    bad = victim["spec"]["nodeName"]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": HOSTNAME, "operator": "NotIn", "values": [bad]}]}
                ]
            }
        }
    }
    await w.patch(
        [{"op": "add", "path": "/spec/template/cliques/0/spec/podSpec/affinity", "value": affinity}]
    )
    async with PodTracker(api_client, namespace) as t:
        await w.wait_current()
        for name in ("wl-0-pc-a", "wl-1-pc-a"):
            await w.wait_podclique(name)
        await quiet(t, QUIET)
    [new] = await replace(w, [victim], 20, value)
    assert new["spec"]["affinity"] == affinity, new["spec"].get("affinity")
    assert new["spec"]["nodeName"] != bad, new["spec"]["nodeName"]


async def test_od9_strategy_transitions(api_client: client.ApiClient, namespace: str, start: Start) -> None:
    w = await start(wl1_ondelete, nodes=10, pods=10)

    # OnDelete: pc-a changed, nothing happens.
    async with PodTracker(api_client, namespace) as t:
        await changed(w, t, "pc-a")

    # Switched to RollingRecreate: the switch alone replaces nothing ...
    async with PodTracker(api_client, namespace) as t:
        await w.merge({"spec": {"updateStrategy": {"type": "RollingRecreate"}}})
        await w.wait_current()
        await quiet(t, QUIET)
    # ... the next template change (pc-b) rolls every outdated pod, pc-a's included.
    async with PodTracker(api_client, namespace) as t:
        await w.trigger("pc-b")
        await w.wait_updated(1, 10)
    assert len(t.disturbed()) == 10, t.describe()
    assert t.max_in_flight("wl-0-pc-a")[0] == 1, t.describe()
    assert t.max_group_replicas_in_flight("wl-0-sg-x")[0] == 1, t.describe()

    # Back to OnDelete: pc-c changed, nothing happens again.
    await w.merge({"spec": {"updateStrategy": {"type": "OnDelete"}}})
    async with PodTracker(api_client, namespace) as t:
        await changed(w, t, "pc-c")

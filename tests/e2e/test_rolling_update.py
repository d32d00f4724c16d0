"""Rolling updates (RollingRecreate, docs/termination-and-updates.md; Grove's e2e RU-7 … RU-21) on private
KWOK pools where each node fits exactly one pod.

An update is Grove's: env `UPDATE_TRIGGER` added to (or changed in) a clique's first container with
`kubectl patch`. Workloads are Grove's WL1 (every minimum = replicas: pc-a x2 standalone, sg-x = {pc-b x1,
pc-c x3} x2; 10 pods per PodCliqueSet replica), with two PodCliqueSet replicas where a scenario is about
"one replica at a time". Done means Grove's criterion (`status.updatedReplicas == expected`,
`status.updateProgress.updateEndedAt` set, for the current generation) and, stricter, every live pod Ready
and on its clique's current template. A `PodTracker` (tests/podtracker.py) records pod events, so "one at
a time" is checked on what happened, not on status: a pod counts as in flight from the moment the old one
starts terminating until its replacement is Ready.

Every scenario runs under the gang invariant with its default windows (tests/e2e/conftest.py): an update
never leaves a gang partly released or bound for longer than a replacement takes.

**Deliberate difference from Grove: no capacity, no delete.** Grove deletes a Ready pod first and hopes its
replacement finds room; its RU-10 cordons every node and expects exactly one old pod deleted and one new
Pending pod, then a stall (a serving pod taken down for nothing). Here the gang admitter's capacity model
decides before anything is deleted (`reconciler/planner/update.py`): with every node cordoned NO pod is
deleted, `UpdateInProgress` says `WaitingForCapacity` (and what does not fit), and the update completes
once capacity returns (`test_ru10_no_capacity_no_delete`). Note that on these pools a replacement reuses
the node its predecessor frees, so "no capacity" means cordoning the nodes the pods run on (cordoning does
not evict). `test_update_waits_for_room_then_completes` does the same for a whole scaling-group replica
whose capacity returns on other nodes.

Scenarios sharing a workload are grouped into one test; each step says which RU it is.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable

import pytest
from kubernetes_asyncio import client

from grove_api import constants as c
from tests.gang import wl1
from tests.podtracker import PodRecord, PodTracker, Start, Workload, condition, quiet
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("gang_invariant")

ALL = ("pc-a", "pc-b", "pc-c")
QUIET = 4.0  # seconds of "nothing happens"


async def replacing(t: PodTracker, what: str, where: Callable[[PodRecord], bool]) -> None:
    """Wait until a pod matching `where` (present at the tracker's start) is being replaced."""

    async def seen() -> bool:
        return any(where(r) for r in t.disturbed())

    await until(f"{what} being replaced", seen, timeout=60, interval=0.05)


# --- one at a time -------------------------------------------------------------------------------------


async def test_ru7_ru8_ru9_one_at_a_time(api_client: client.ApiClient, namespace: str, start: Start) -> None:
    w = await start(wl1, nodes=20, pods=20, replicas=2)

    # RU-7: pc-a changed: one pc-a pod in flight at a time (in the whole PodCliqueSet, since only one
    # replica is updated at a time), replica 0 done before replica 1 starts, nothing else touched.
    async with PodTracker(api_client, namespace) as t:
        await w.trigger("pc-a")
        pcs = await w.wait_updated(2, 20)
    assert {r.podclique for r in t.disturbed()} == {"wl-0-pc-a", "wl-1-pc-a"}, t.describe()
    assert len(t.disturbed()) == 4, t.describe()
    assert t.max_in_flight()[0] == 1, (t.max_in_flight(), t.describe())
    t.assert_replicas_one_at_a_time()
    assert condition(pcs, "UpdateInProgress")["reason"] == "UpdateComplete"  # type: ignore[index]
    assert not pcs["status"]["updateProgress"].get("currentlyUpdating")
    for reason in ("RollingUpdateStarted", "RollingUpdateCompleted"):
        assert await w.events(reason), f"no {reason} event"

    # RU-8: pc-b (in scaling group sg-x) changed: whole scaling-group replicas are recreated, one replica
    # of a scaling group at a time, one PodCliqueSet replica at a time; pc-a untouched.
    async with PodTracker(api_client, namespace) as t:
        await w.trigger("pc-b")
        await w.wait_updated(2, 20)
    assert {r.pcsg for r in t.disturbed()} == {"wl-0-sg-x", "wl-1-sg-x"}, t.describe()
    assert len(t.disturbed()) == 16, t.describe()  # pc-b and pc-c pods: members are replaced together
    for pcsg in ("wl-0-sg-x", "wl-1-sg-x"):
        assert t.max_group_replicas_in_flight(pcsg)[0] == 1, (pcsg, t.describe())
    t.assert_replicas_one_at_a_time()

    # RU-9: every clique changed, in three patches in a row as Grove's e2e does (each a new generation; the
    # update follows the latest): per standalone PodClique one pod in flight, per scaling group one replica
    # in flight, one PodCliqueSet replica at a time.
    async with PodTracker(api_client, namespace) as t:
        for clique in ALL:
            await w.trigger(clique)
        await w.wait_updated(2, 20)
    assert len(t.disturbed()) == 20, t.describe()
    for pclq in ("wl-0-pc-a", "wl-1-pc-a"):
        assert t.max_in_flight(pclq)[0] == 1, (pclq, t.max_in_flight(pclq), t.describe())
    for pcsg in ("wl-0-sg-x", "wl-1-sg-x"):
        assert t.max_group_replicas_in_flight(pcsg)[0] == 1, (pcsg, t.describe())
    t.assert_replicas_one_at_a_time()


# --- capacity --------------------------------------------------------------------------------------------


async def test_ru10_no_capacity_no_delete(api_client: client.ApiClient, namespace: str, start: Start) -> None:
    """RU-10, our way: every node cordoned → no pod deleted, the PodCliqueSet says it waits for capacity;
    uncordoned → the update completes."""
    w = await start(wl1, nodes=10, pods=10)
    await w.pool.cordon(10)
    async with PodTracker(api_client, namespace) as t:
        await w.trigger("pc-a")
        cond = await w.wait_condition("UpdateInProgress", "True", "WaitingForCapacity", timeout=60)
        assert "no room" in cond["message"] and "wl-0-pc-a" in cond["message"], cond
        await quiet(t, QUIET)
        pcs = await w.get()
        progress = pcs["status"]["updateProgress"]
        assert not progress.get("updateEndedAt"), progress
        assert [u["replicaIndex"] for u in progress.get("currentlyUpdating") or []] == [0], progress
        assert condition(pcs, "UpdateInProgress")["reason"] == "WaitingForCapacity"  # type: ignore[index]

        warnings = await w.events("WaitingForCapacity")
        assert [(e["type"], e.get("count") or 1) for e in warnings] == [("Warning", 1)], warnings

        await w.pool.uncordon(10)
        pcs = await w.wait_updated(1, 10, timeout=120)
    assert {r.podclique for r in t.disturbed()} == {"wl-0-pc-a"} and len(t.disturbed()) == 2, t.describe()
    assert t.max_in_flight()[0] == 1, t.describe()
    assert condition(pcs, "UpdateInProgress")["reason"] == "UpdateComplete"  # type: ignore[index]


async def test_update_waits_for_room_then_completes(
    api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    """A scaling-group replica is only recreated when all of it fits again. Its four nodes cordoned and two
    spare nodes uncordoned: not enough, nothing is deleted and the status says what waits; two more spare
    nodes: the replica is recreated there, whole, and the update completes."""
    w = await start(wl1, nodes=10, pods=10, spare=4)
    spares = w.pool.nodes[10:]
    group0 = [r for r in await w.pods() if r["metadata"]["labels"].get(c.LABEL_PCSG_REPLICA_INDEX) == "0"]
    assert len(group0) == 4
    await w.pool.cordon_nodes(sorted(p["spec"]["nodeName"] for p in group0))
    await w.pool.uncordon_nodes(spares[:2])
    async with PodTracker(api_client, namespace) as t:
        await w.trigger("pc-b")
        cond = await w.wait_condition("UpdateInProgress", "True", "WaitingForCapacity", timeout=60)
        assert "replica 0 of wl-0-sg-x" in cond["message"], cond
        await quiet(t, QUIET)
        await w.pool.uncordon_nodes(spares[2:])
        await w.wait_updated(1, 10, timeout=120)
    moved = [r for r in t.created() if r.pcsg_replica == 0 and r.live]
    assert sorted(str(r.node) for r in moved) == spares, [(r.name, r.node) for r in moved]
    assert t.max_group_replicas_in_flight("wl-0-sg-x")[0] == 1, t.describe()
    assert len(t.disturbed()) == 8, t.describe()


# --- what is not an update ---------------------------------------------------------------------------------


async def test_irrelevant_changes_recreate_nothing(
    api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    """Only a pod-template change is an update: re-applying the same manifest, changing what is not in the
    pod templates (terminationDelay, the PodCliqueSet's labels, a clique's template replicas) or scaling the
    PodCliqueSet out recreates no pod and starts no update."""
    w = await start(wl1, nodes=10, pods=10)
    before = await w.get()
    uids = await w.uids()
    async with PodTracker(api_client, namespace) as t:
        await w.apply()
        changed = copy.deepcopy(w.doc)
        changed["metadata"]["labels"] = {"team": "inference"}
        changed["spec"]["template"]["terminationDelay"] = "2h"
        changed["spec"]["template"]["cliques"][0]["spec"]["replicas"] = 3
        await w.apply(changed)
        await w.scale("pcs", w.name, 2)  # replica 1 waits for capacity (gated): the pool is full
        await w.wait_current()
        await until("replica 1's pods", lambda: _count(w, "1", 11), timeout=60)
        await asyncio.sleep(QUIET)
        pcs = await w.wait_current()
    assert not t.disturbed(), t.describe()
    assert set(uids) <= set(await w.uids()), "an original pod is gone"
    assert pcs["metadata"]["generation"] > before["metadata"]["generation"]
    assert pcs["status"]["currentGenerationHash"] == before["status"]["currentGenerationHash"]
    assert (
        pcs["status"]["updateProgress"]["updateStartedAt"]
        == before["status"]["updateProgress"]["updateStartedAt"]
    )
    assert (condition(pcs, "UpdateInProgress") or {}).get("status") != "True", pcs["status"]


async def _count(w: Workload, replica: str, expected: int) -> bool:
    labels = [p["metadata"]["labels"] for p in await w.pods()]
    return bool(sum(x.get(c.LABEL_PCS_REPLICA_INDEX) == replica for x in labels) == expected)


# --- scaling during an update -----------------------------------------------------------------------------


async def test_ru11_ru12_ru13_podcliqueset_scaling(
    api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    w = await start(wl1, nodes=30, pods=20, replicas=2)

    # RU-11: scale-out during the update: the new replica is built from the new templates and never replaced.
    async with PodTracker(api_client, namespace) as t:
        await w.trigger("pc-a")
        await replacing(t, "a pod of replica 0", lambda r: r.pcs_replica == 0)
        await w.scale("pcs", w.name, 3)
        await w.wait_updated(3, 30)
    new = [r for r in t.created() if r.pcs_replica == 2]
    assert len(new) == 10, t.describe()
    assert not [r for r in t.created() if r.deleting], t.describe()  # nothing made for the update is redone
    assert not [r for r in t.disturbed() if r.pcs_replica == 2], t.describe()
    t.assert_replicas_one_at_a_time()

    # RU-12: scale-in while the last replica is being updated. To catch it mid-update every time, its
    # scaling-group replica 1 is held back: its nodes are cordoned, so it has no room to be recreated
    # (pc-a and group replica 0 of replica 2 are replaced meanwhile). Scaling in removes the replica being
    # updated; the update completes on the others.
    stuck = [
        p["spec"]["nodeName"]
        for p in await w.pods()
        if p["metadata"]["labels"][c.LABEL_PODCLIQUE].startswith("wl-2-sg-x-1-")
    ]
    await w.pool.cordon_nodes(stuck)
    async with PodTracker(api_client, namespace) as t:
        await w.trigger(*ALL)
        cond = await w.wait_condition("UpdateInProgress", "True", "WaitingForCapacity", timeout=90)
        assert cond["message"].startswith("replica 2: no room for replica 1 of wl-2-sg-x"), cond
        progress = (await w.get())["status"]["updateProgress"]
        assert [u["replicaIndex"] for u in progress["currentlyUpdating"]] == [2], progress
        await w.scale("pcs", w.name, 2)
        pcs = await w.wait_updated(2, 20)
    assert condition(pcs, "UpdateInProgress")["reason"] == "UpdateComplete"  # type: ignore[index]
    replaced = {(r.old.pcs_replica, r.old.pcsg_replica) for r in t.replacements() if r.new}
    assert replaced == {(i, g) for i in (0, 1) for g in (None, 0, 1)} | {(2, None), (2, 0)}, t.describe()

    # RU-13: scale-in after the last replica was updated: replica 1 goes, replica 0 is left alone.
    await w.trigger("pc-a")
    await w.wait_updated(2, 20)
    kept = {
        p["metadata"]["uid"]
        for p in await w.pods()
        if p["metadata"]["labels"][c.LABEL_PCS_REPLICA_INDEX] == "0"
    }
    await w.scale("pcs", w.name, 1)
    await w.wait_updated(1, 10)
    assert set(await w.uids()) == kept


async def test_ru14_to_ru17_scaling_group_scaling(
    api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    w = await start(wl1, nodes=14, pods=10)
    group = "wl-0-sg-x"
    in_group = lambda r: r.pcsg == group  # noqa: E731

    # RU-15: scaled out before the update: the new replica is updated like the others.
    await w.scale("pcsg", group, 3)
    await w.wait_running(14)
    async with PodTracker(api_client, namespace) as t:
        await w.trigger(*ALL)
        await w.wait_updated(1, 14)
    assert len(t.disturbed()) == 14, t.describe()
    assert t.max_group_replicas_in_flight(group)[0] == 1, t.describe()

    # RU-16: scaled in (3 → 2) while the group is being updated: the update completes.
    async with PodTracker(api_client, namespace) as t:
        await w.trigger(*ALL)
        await replacing(t, "a scaling-group replica", in_group)
        await w.scale("pcsg", group, 2)
        await w.wait_updated(1, 10)

    # RU-14: scaled out (2 → 3) while the group is being updated: the new replica is built from the new
    # templates and not replaced again.
    async with PodTracker(api_client, namespace) as t:
        await w.trigger(*ALL)
        await replacing(t, "a scaling-group replica", in_group)
        await w.scale("pcsg", group, 3)
        await w.wait_updated(1, 14)
    assert [r.pcsg_replica for r in t.created() if r.podclique == f"{group}-2-pc-b"] == [2], t.describe()
    assert not [r for r in t.created() if r.deleting], t.describe()
    assert t.max_group_replicas_in_flight(group)[0] == 1, t.describe()

    # RU-17: scaled in (3 → 2) before the update: the update completes.
    await w.scale("pcsg", group, 2)
    await w.wait_running(10)
    async with PodTracker(api_client, namespace) as t:
        await w.trigger(*ALL)
        await w.wait_updated(1, 10)
    assert len(t.disturbed()) == 10, t.describe()


async def test_ru18_to_ru21_podclique_scaling(
    api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    w = await start(wl1, nodes=12, pods=10)
    pclq = "wl-0-pc-a"
    in_pclq = lambda r: r.podclique == pclq  # noqa: E731

    # RU-19: scaled out (2 → 4) before the update: the new pods are updated like the others.
    await w.scale("pclq", pclq, 4)
    await w.wait_running(12)
    async with PodTracker(api_client, namespace) as t:
        await w.trigger(*ALL)
        await w.wait_updated(1, 12)
    assert len(t.disturbed()) == 12, t.describe()
    assert t.max_in_flight(pclq)[0] == 1, t.describe()

    # RU-20: scaled in (4 → 3) while its pods are being replaced: the update completes.
    async with PodTracker(api_client, namespace) as t:
        await w.trigger(*ALL)
        await replacing(t, "a pc-a pod", in_pclq)
        await w.scale("pclq", pclq, 3)
        await w.wait_updated(1, 11)

    # RU-18: scaled out (3 → 4) while its pods are being replaced: the new pod has the new template and
    # is not replaced again.
    async with PodTracker(api_client, namespace) as t:
        await w.trigger(*ALL)
        await replacing(t, "a pc-a pod", in_pclq)
        await w.scale("pclq", pclq, 4)
        await w.wait_updated(1, 12)
    assert not [r for r in t.created() if r.deleting], t.describe()
    assert t.max_in_flight(pclq)[0] == 1, t.describe()

    # RU-21: scaled in (4 → 3) before the update: the update completes.
    await w.scale("pclq", pclq, 3)
    await w.wait_running(11)
    async with PodTracker(api_client, namespace) as t:
        await w.trigger(*ALL)
        await w.wait_updated(1, 11)
    assert len(t.disturbed()) == 11, t.describe()

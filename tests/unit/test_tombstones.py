"""Children the reconciler deleted are shown as being deleted until the watch says they are gone: a pass
that runs before the event must not plan from the ghost (the CI failure: a rolling update took a second
scaling-group replica because the replica it had just deleted still looked complete)."""

from __future__ import annotations

from typing import Any

from grove_api import constants as c
from grove_api.refs import Ref
from kube.tombstones import Tombstones
from reconciler.planner.actions import Create, Delete
from reconciler.planner.plan import plan
from reconciler.planner.snapshot import Obj
from tests.fakes.cluster import FakeCluster, relisted
from tests.unit.test_rollout import running, trigger, workload

KEY = ("default", "w")


def obj(uid: str, **meta: Any) -> Obj:
    return {"metadata": {"name": f"o-{uid}", "uid": uid, **meta}}


def test_marked_from_record_until_the_cache_shows_the_deletion() -> None:
    t = Tombstones()
    t.record(["a", "b", ""], "2026-11-26T10:00:00Z")
    assert t.mark(obj("a"))["metadata"]["deletionTimestamp"] == "2026-11-26T10:00:00Z"
    assert "deletionTimestamp" not in t.mark(obj("c"))["metadata"]
    t.observe(obj("a"), deleted=True)
    t.observe(obj("b", deletionTimestamp="2026-11-26T10:00:01Z"), deleted=False)  # a finalizer holds it
    assert "deletionTimestamp" not in t.mark(obj("a"))["metadata"] and len(t) == 0


def test_a_failed_delete_is_discarded_and_lost_events_expire() -> None:
    now = [0.0]
    t = Tombstones(timeout=10.0, clock=lambda: now[0])
    t.record(["a", "b"], "x")
    t.discard(["a"])
    assert "deletionTimestamp" not in t.mark(obj("a"))["metadata"]
    now[0] = 11.0
    t.record(["c"], "x")
    assert len(t) == 1  # "b" expired


async def test_a_pass_before_the_watch_event_sees_the_deleted_group_replica_as_being_deleted() -> None:
    world = running(workload(replicas=1))
    trigger(world, cliques=(2,))  # pc-c: a member of scaling group sg-x (2 replicas, minAvailable 1)
    cluster = FakeCluster(list(world.objects.values()))
    manager = await relisted(cluster)
    snap = manager.snapshot(KEY)
    assert snap is not None
    first = plan(snap).actions
    gone = [a for a in first if isinstance(a, Delete) and a.ref.kind == c.KIND_PODCLIQUE]
    assert sorted(a.ref.name for a in gone) == ["w-0-sg-x-0-pc-b", "w-0-sg-x-0-pc-c"]
    await manager._execute(first)
    # The pods' deletions are in the cache (graceful: a deletionTimestamp), the PodCliques' are not yet.
    for o in cluster.objects:
        if o["kind"] == "Pod" and o["metadata"]["name"].startswith("w-0-sg-x-0-"):
            o["metadata"]["deletionTimestamp"] = "2026-11-26T10:00:00Z"
    await manager.children["pods"].relist()
    snap = manager.snapshot(KEY)
    assert snap is not None
    assert all(snap.podcliques[a.ref.name]["metadata"].get("deletionTimestamp") for a in gone)
    second = plan(snap).actions
    touched = sorted(
        a.ref.name if isinstance(a, Delete) else a.obj["metadata"].get("name", "")
        for a in second
        if isinstance(a, Delete | Create) and "sg-x" in str(a)
    )
    assert touched == [], "a second scaling-group replica was taken, or pods created into deleted ones"
    # The watch event arrives: the PodCliques are gone from the cache and are created again.
    for a in gone:
        manager._on_child("DELETED", snap.podcliques[a.ref.name])
    cluster.objects = [o for o in cluster.objects if o["metadata"]["uid"] not in {a.uid for a in gone}]
    await manager.children["podcliques"].relist()
    snap = manager.snapshot(KEY)
    assert snap is not None and not any(n.startswith("w-0-sg-x-0") for n in snap.podcliques)
    assert len(manager.tombstones) == 0


async def test_a_refused_delete_leaves_the_child_as_it_is() -> None:
    world = running(workload(replicas=1))
    cluster = FakeCluster(list(world.objects.values()))
    cluster.refuse = {"w-0-pc-a"}
    manager = await relisted(cluster)
    pclq = next(o for o in cluster.objects if o["metadata"]["name"] == "w-0-pc-a")
    ref = Ref(c.API_VERSION, c.KIND_PODCLIQUE, "default", "w-0-pc-a")
    report = await manager._execute([Delete(ref, pclq["metadata"]["uid"])])
    assert not report.ok
    snap = manager.snapshot(KEY)
    assert snap is not None and "deletionTimestamp" not in snap.podcliques["w-0-pc-a"]["metadata"]

"""Children the reconciler deleted are shown as being deleted until the watch says they are gone: a pass
that runs before the event must not plan from the ghost (the CI failure: a rolling update took a second
scaling-group replica because the replica it had just deleted still looked complete)."""

from __future__ import annotations

import copy
from typing import Any

from grove_api import constants as c
from grove_api.operatorconfig import OperatorConfiguration
from reconciler.kube.client import KubeError
from reconciler.kube.resources import Resource
from reconciler.kube.tombstones import Tombstones
from reconciler.manager import Manager
from reconciler.planner.actions import Create, Delete, Ref
from reconciler.planner.plan import plan
from reconciler.planner.snapshot import Obj
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


class FakeCluster:
    """The list half of the API (what informers relist) and the write half (what the executor calls);
    writes do not reach the lists, like a watch that has not delivered yet."""

    def __init__(self, objects: list[Obj]) -> None:
        self.objects = objects
        self.refuse: set[str] = set()

    async def list_all(self, resource: Resource, **_: Any) -> tuple[list[Obj], str]:
        return [copy.deepcopy(o) for o in self.objects if o["kind"] == resource.kind], "1"

    async def watch(self, resource: Resource, **_: Any) -> Any:
        raise NotImplementedError

    async def create(self, obj: Obj) -> Obj:
        return {**obj, "metadata": {**obj["metadata"], "uid": f"new-{obj['metadata'].get('name')}"}}

    async def apply(self, obj: Obj, field_manager: str | None = None, force: bool = True) -> Obj:
        return obj

    async def delete(self, ref: Ref, uid: str | None = None, propagation: str = "Background") -> bool:
        if ref.name in self.refuse:
            raise KubeError("the server is currently unable to handle the request", status=503)
        return True

    async def patch_status(self, ref: Ref, status: Obj) -> Obj:
        return {"status": status}

    async def apply_status(self, ref: Ref, status: Obj) -> Obj:
        return {"status": status}


async def relisted(cluster: FakeCluster) -> Manager:
    manager = Manager(cluster, OperatorConfiguration())  # type: ignore[arg-type]
    for informer in [manager.podcliquesets, *manager.children.values()]:
        await informer.relist()
    return manager


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

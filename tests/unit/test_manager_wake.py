"""Which child and PodCliqueSet events wake the reconciler at once, and which a moment later (as pod events
do): its own status writes must not each be followed at once by another pass."""

from __future__ import annotations

from typing import Any

from reconciler.manager import POD_EVENT_BATCH_SECONDS, _can_wait
from tests.fakes.cluster import FakeCluster, relisted
from tests.unit.test_rollout import running, workload


def obj(generation: int, observed: int | None = None, **meta: Any) -> dict[str, Any]:
    status = {} if observed is None else {"observedGeneration": observed}
    return {"metadata": {"generation": generation, **meta}, "status": status}


def test_only_a_modification_of_a_reconciled_spec_can_wait() -> None:
    assert _can_wait("MODIFIED", obj(3, observed=3))  # a status written for the current spec
    assert not _can_wait("MODIFIED", obj(4, observed=3))  # a new spec (kubectl scale, apply)
    assert _can_wait("MODIFIED", obj(1))  # a kind without observedGeneration (a PodGang's status)
    assert not _can_wait("MODIFIED", obj(3, observed=3, deletionTimestamp="2026-11-26T00:00:00Z"))
    assert not _can_wait("ADDED", obj(1, observed=1))
    assert not _can_wait("DELETED", obj(1, observed=1))


async def test_a_status_event_wakes_the_podcliqueset_later_a_spec_change_at_once() -> None:
    world = running(workload(replicas=1))
    manager = await relisted(FakeCluster(list(world.objects.values())))
    pclq = next(o for o in world.objects.values() if o["kind"] == "PodClique")
    key = ("default", "w")
    while len(manager.queue):  # the relist's events
        manager.queue.done(await manager.queue.get())
    status_written = {**pclq, "status": {**pclq.get("status", {}), "observedGeneration": 1}}
    status_written["metadata"] = {**pclq["metadata"], "generation": 1}
    manager._on_child("MODIFIED", status_written)
    assert len(manager.queue) == 0 and manager.queue.waiting() == 1  # due in POD_EVENT_BATCH_SECONDS
    assert POD_EVENT_BATCH_SECONDS <= 0.5
    scaled = {**status_written, "metadata": {**status_written["metadata"], "generation": 2}}
    manager._on_child("MODIFIED", scaled)
    assert len(manager.queue) == 1 and await manager.queue.get() == key
    manager.queue.shutdown()


async def test_the_reconciler_keeps_no_token_in_its_secret_cache() -> None:
    world = running(workload(replicas=1))
    objects = [
        {**o, "data": {"token": "c2VjcmV0"}, "stringData": {"token": "secret"}}
        if o["kind"] == "Secret"
        else o
        for o in world.objects.values()
    ]
    assert any(o["kind"] == "Secret" for o in objects)
    manager = await relisted(FakeCluster(objects))
    cached = manager.children["secrets"].list()
    assert cached and all("data" not in s and "stringData" not in s for s in cached)
    manager.queue.shutdown()

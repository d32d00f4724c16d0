"""/healthz fails only when a controller this replica runs is wedged: work waiting and no progress for
`server.healthProbes.livenessStallSeconds`. The decision, the probe, the endpoint, the hooks in the reconciler
and the gang admitter, and the runtime wiring them together."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from admitter.controller import Admitter
from grove_api.operatorconfig import GangAdmission, OperatorConfiguration
from grove_operator.health import build_app
from grove_operator.liveness import Liveness, stall
from grove_operator.runtime import Operator, Readiness, shared_informers
from kube.client import KubeClient
from reconciler.manager import Manager
from tests.fakes.cluster import FakeCluster
from tests.unit.admitter.builders import node, pod, podgang
from tests.unit.admitter.test_controller import FakeApi, add_pod, set_podgang
from webhook import paths

LIMIT = 300.0
KEY = ("default", "w")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Beats:
    """A `progressed` hook that counts."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def labelled(kind: str, name: str, **meta: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/part-of": "w", "app.kubernetes.io/managed-by": "grove-operator"}
    return {"kind": kind, "metadata": {"namespace": "default", "name": name, "labels": labels, **meta}}


# --- the decision and the probe -------------------------------------------------------------------------


def test_only_work_waiting_without_progress_for_longer_than_the_limit_is_a_stall() -> None:
    assert stall("reconciler", True, LIMIT + 1, LIMIT) == (
        "reconciler: work waiting and no progress for 301 s (livenessStallSeconds: 300)"
    )
    assert stall("reconciler", False, 10 * LIMIT, LIMIT) == "", "idle for long: nothing to do"
    assert stall("reconciler", True, LIMIT, LIMIT) == "", "busy, progress just within the limit"
    assert stall("reconciler", True, 10 * LIMIT, 0) == "", "0 turns the check off"
    assert stall("webhook process", True, LIMIT + 1, LIMIT, "not answering") == (
        "webhook process: not answering for 301 s (livenessStallSeconds: 300)"
    )


def test_probe_fails_for_the_wedged_controller_until_it_beats_again() -> None:
    clock = Clock()
    liveness = Liveness(LIMIT, clock)
    assert liveness() == (True, ""), "nothing tracked: a standby or webhooks-only process"
    work = {"reconciler": False, "gang admitter": True}
    reconciler, admitter = liveness.heartbeat(), liveness.heartbeat()
    liveness.track("reconciler", reconciler, lambda: work["reconciler"])
    liveness.track("gang admitter", admitter, lambda: work["gang admitter"])
    clock.now += LIMIT
    assert liveness() == (True, "")
    clock.now += 1
    live, why = liveness()
    assert not live and why.startswith("gang admitter: work waiting and no progress for 301 s")
    work["reconciler"] = True
    assert liveness()[1].count("work waiting") == 2
    admitter.beat()
    reconciler.beat()
    assert liveness() == (True, "")
    clock.now += LIMIT + 1
    assert not liveness()[0]
    restarted = liveness.heartbeat()
    liveness.track("reconciler", restarted, lambda: True)  # a restart replaces the old one
    admitter.beat()
    assert liveness() == (True, "")


async def test_healthz_is_500_with_the_reason_and_readyz_is_untouched(aiohttp_client: Any) -> None:
    clock = Clock()
    liveness = Liveness(LIMIT, clock)
    liveness.track("reconciler", liveness.heartbeat(), lambda: True)
    readiness = Readiness(reason="")
    client: TestClient[Any, Any] = await aiohttp_client(build_app(readiness, liveness))
    response = await client.get(paths.HEALTHZ)
    assert (response.status, await response.text()) == (200, "ok")
    clock.now += LIMIT + 1
    response = await client.get(paths.HEALTHZ)
    assert response.status == 500
    assert (
        await response.text()
        == "reconciler: work waiting and no progress for 301 s (livenessStallSeconds: 300)"
    )
    assert (await client.get(paths.READYZ)).status == 200


# --- the reconciler's hooks -----------------------------------------------------------------------------


async def test_reconciler_beats_on_events_and_after_every_pass_and_has_work_while_keys_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    beats = Beats()
    manager = Manager(FakeCluster([]), OperatorConfiguration(), progressed=beats)  # type: ignore[arg-type]
    assert not manager.has_work()
    manager._on_child("ADDED", labelled("PodClique", "w-0-a"))
    manager._on_podcliqueset("ADDED", {"metadata": {"namespace": "default", "name": "w"}})
    manager._on_pod("MODIFIED", labelled("Pod", "w-0-a-x"))
    assert beats.count == 3
    assert manager.has_work(), "a key waits for a worker"
    key = await manager.queue.get()
    assert manager.has_work(), "a key being reconciled"
    assert await manager._pass(key) is None  # the PodCliqueSet is not in the cache: nothing to do
    assert beats.count == 4
    manager.queue.done(key)
    assert not manager.has_work(), "the pod event's wake-up is due later: not waiting yet"
    assert manager.queue.waiting() == 1

    async def broken(_: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(manager, "reconcile", broken)
    with pytest.raises(RuntimeError):
        await manager._pass(KEY)
    assert beats.count == 5, "a failed pass is progress too: the workers are not stuck"
    manager.queue.shutdown()


# --- the gang admitter's hooks --------------------------------------------------------------------------


async def test_admitter_beats_per_write_of_a_pass_not_per_watch_event() -> None:
    beats = Beats()
    api = FakeApi()
    admitter = Admitter(api, GangAdmission(), beats)  # type: ignore[arg-type]
    admitter.model.upsert_node(node("n0", cpu=4))
    admitter.feed.grew_at = 0.0  # capacity settled long ago
    for name in ("g-w-0", "g-w-1"):
        add_pod(admitter, api, pod(name, gang="g", clique="w", created=time.time()))
    set_podgang(admitter, podgang("g", [("w", 2, ["g-w-0", "g-w-1"])], created=time.time()))
    assert beats.count == 0, "watch events are not progress for the admitter"
    assert not admitter.has_work(), "events before the caches are synced are not work yet"
    admitter.synced = True
    assert admitter.has_work()
    decision = await admitter.run_pass()
    assert [a.gang for a in decision.admit] == ["g"]
    assert beats.count == len(api.statuses) + len(api.patched) == 3  # recorded, then two pods released


async def test_admitter_loop_beats_after_each_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    beats = Beats()
    admitter = Admitter(FakeApi(), GangAdmission(), beats)  # type: ignore[arg-type]

    async def synced(timeout: float | None = None) -> None:
        return None

    informers = (
        admitter.nodes,
        admitter.pods,
        admitter.podgangs,
        admitter.podcliques,
        admitter.priority_classes,
    )
    for informer in informers:
        monkeypatch.setattr(informer, "start", synced)
    loop = asyncio.create_task(admitter.run())
    try:
        admitter.feed.wake.set()  # an event: a pass follows at once
        async with asyncio.timeout(5):
            while not beats.count:
                await asyncio.sleep(0.01)
        assert not admitter.has_work(), "the pass took the events"
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


# --- the runtime ----------------------------------------------------------------------------------------


async def test_operator_tracks_the_controllers_it_runs() -> None:
    clock = Clock()
    config = OperatorConfiguration.model_validate({"server": {"healthProbes": {"port": 0}}})
    assert config.server.health_probes.liveness_stall_seconds == LIMIT
    op = Operator(config, object(), reconciler_username=None, handlers={})  # type: ignore[arg-type]
    op.liveness.clock = clock
    informers = shared_informers(KubeClient(object()), gang_admission=True)  # type: ignore[arg-type]
    manager, admitter = op._new_manager(informers), op._new_admitter(informers)
    assert manager.on_create is not None and manager.on_create() is admitter.on_create
    assert admitter.podcliques is manager.children["podcliques"], "one PodClique watch, shared"
    assert op.liveness() == (True, "")
    manager.queue.add(KEY)
    admitter.synced = True
    admitter.feed.wake.set()
    clock.now += LIMIT + 1
    live, why = op.liveness()
    assert not live and why.startswith("reconciler: work waiting") and "; gang admitter: work waiting" in why
    manager._on_podcliqueset("MODIFIED", {"metadata": {"namespace": "default", "name": "w"}})
    admitter.progressed()
    assert op.liveness() == (True, "")
    manager.queue.shutdown()
    off = OperatorConfiguration.model_validate({"server": {"healthProbes": {"livenessStallSeconds": 0}}})
    assert off.server.health_probes.liveness_stall_seconds == 0
    assert off.server.health_probes.port == 2751, "setting only the new key keeps the default port"
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        OperatorConfiguration.model_validate({"server": {"healthProbes": {"livenessStallSeconds": -1}}})

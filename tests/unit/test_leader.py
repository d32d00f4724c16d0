"""Leader election without a cluster: the pure decision core (acquire, wait, take over after a locally observed
expiry, renew, release, transitions) and the elector's loops against an in-memory Lease store (optimistic
concurrency conflicts, renew deadline, losing to another holder, release)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from grove_api.operatorconfig import OperatorConfiguration
from grove_operator import leader
from grove_operator.identity import operator_namespace
from grove_operator.leader import Action, LeaderElector, LeaseRecord, Observed, decide
from kube.client import AlreadyExists, Conflict, KubeClient, KubeError, NotFound, Unavailable

JSON = dict[str, Any]
NS, NAME = "grove-system", "grove-operator-leader-election"
T0 = datetime(2026, 11, 25, 17, 20, 1, 123456, tzinfo=UTC)
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ME, OTHER = "me_1", "other_2"


def lease(
    holder: str = OTHER, *, duration: int = 15, renew: str = "2020-01-01T00:00:00.000000Z", **spec: Any
) -> JSON:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "resourceVersion": "42",
            "labels": {"keep": "me"},
            "managedFields": [{"manager": "x"}],
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": "2020-01-01T00:00:00.000000Z",
            "renewTime": renew,
            "leaseTransitions": 3,
            **spec,
        },
    }


def run_decide(
    current: JSON | None, *, observed: Observed | None = None, now: float = 100.0, **kw: Any
) -> Any:
    args: dict[str, Any] = {
        "identity": ME,
        "observed": observed,
        "now": now,
        "timestamp": T0,
        "lease_duration": 15.0,
        "namespace": NS,
        "name": NAME,
    }
    args.update(kw)
    return decide(current, **args)


# --- pure core ---------------------------------------------------------------------------------------------
def test_micro_time_format() -> None:
    assert leader.micro_time(T0) == "2026-11-25T17:20:01.123456Z"
    assert leader.micro_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    # other offsets are converted to UTC
    plus2 = T0.astimezone(timezone(timedelta(hours=2)))
    assert leader.micro_time(plus2) == "2026-11-25T17:20:01.123456Z"
    with pytest.raises(ValueError):
        leader.micro_time(datetime(2026, 1, 1))


def test_lease_seconds_rounds_up() -> None:
    assert leader.lease_seconds(15.0) == 15
    assert leader.lease_seconds(1.5) == 2
    assert leader.lease_seconds(0.2) == 1


def test_default_identity_is_hostname_and_uuid() -> None:
    a, b = leader.default_identity(), leader.default_identity()
    assert a != b
    host, _, uid = a.rpartition("_")
    assert host and re.fullmatch(r"[0-9a-f-]{36}", uid)


def test_acquire_when_absent() -> None:
    d = run_decide(None, lease_duration=1.5)
    assert d.action is Action.CREATE and d.holder == "" and d.observed is None
    assert d.lease == {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "holderIdentity": ME,
            "leaseDurationSeconds": 2,
            "acquireTime": "2026-11-25T17:20:01.123456Z",
            "renewTime": "2026-11-25T17:20:01.123456Z",
            "leaseTransitions": 0,
        },
    }
    assert isinstance(d.lease["spec"]["leaseDurationSeconds"], int)


def test_wait_when_held_and_fresh() -> None:
    d = run_decide(lease(OTHER, duration=15), now=100.0)
    assert d.action is Action.WAIT and d.lease is None and d.holder == OTHER
    assert d.observed == Observed(LeaseRecord.of(lease()), 100.0)
    assert d.expires_at == 115.0


def test_take_over_after_expiry_measured_by_local_observation() -> None:
    # The renewTime is years old by our wall clock, but we only just saw it: the remote clock is not trusted.
    held = lease(OTHER, duration=15, renew="2020-01-01T00:00:00.000000Z")
    first = run_decide(held, now=100.0)
    assert first.action is Action.WAIT
    still = run_decide(held, observed=first.observed, now=114.9)
    assert still.action is Action.WAIT
    assert still.observed is first.observed  # unchanged record: observation time kept
    expired = run_decide(held, observed=still.observed, now=115.0)
    assert expired.action is Action.TAKE_OVER and expired.holder == OTHER
    spec = expired.lease["spec"]
    assert spec["holderIdentity"] == ME
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-25T17:20:01.123456Z"
    assert spec["leaseTransitions"] == 4
    assert spec["leaseDurationSeconds"] == 15
    assert expired.lease["metadata"]["resourceVersion"] == "42"  # optimistic concurrency on the replace


def test_a_renewal_seen_restarts_the_expiry_clock() -> None:
    first = run_decide(lease(renew="2026-11-25T17:00:00.000000Z"), now=100.0)
    renewed = lease(renew="2026-11-25T17:00:02.000000Z")
    d = run_decide(renewed, observed=first.observed, now=114.0)
    assert d.action is Action.WAIT and d.observed.at == 114.0 and d.expires_at == 129.0
    assert run_decide(renewed, observed=d.observed, now=120.0).action is Action.WAIT
    assert run_decide(renewed, observed=d.observed, now=129.0).action is Action.TAKE_OVER


def test_a_future_renew_time_does_not_keep_a_dead_holder_alive() -> None:
    held = lease(renew="2099-01-01T00:00:00.000000Z")
    first = run_decide(held, now=0.0)
    assert run_decide(held, observed=first.observed, now=15.0).action is Action.TAKE_OVER


def test_expiry_uses_the_holders_lease_duration() -> None:
    held = lease(OTHER, duration=30)
    first = run_decide(held, now=0.0, lease_duration=2.0)
    assert first.expires_at == 30.0
    assert run_decide(held, observed=first.observed, now=20.0, lease_duration=2.0).action is Action.WAIT
    # no duration on the Lease: ours
    bare = lease(OTHER)
    del bare["spec"]["leaseDurationSeconds"]
    assert run_decide(bare, now=0.0, lease_duration=2.0).expires_at == 2.0


def test_renew_keeps_acquire_time_and_transitions_and_bumps_renew_time() -> None:
    mine = lease(ME, duration=7, strategy="OldestEmulationVersion")
    d = run_decide(mine, now=5.0, lease_duration=15.0)
    assert d.action is Action.RENEW and d.holder == ME
    spec = d.lease["spec"]
    assert spec["holderIdentity"] == ME
    assert spec["acquireTime"] == "2020-01-01T00:00:00.000000Z"
    assert spec["renewTime"] == "2026-11-25T17:20:01.123456Z"
    assert spec["leaseTransitions"] == 3
    assert spec["leaseDurationSeconds"] == 15
    assert spec["strategy"] == "OldestEmulationVersion"  # fields we do not manage are kept
    meta = d.lease["metadata"]
    assert meta["resourceVersion"] == "42" and meta["labels"] == {"keep": "me"}
    assert "managedFields" not in meta
    assert mine["metadata"]["managedFields"] == [{"manager": "x"}]  # the input is not modified
    assert MICRO.match(spec["renewTime"])


def test_renew_even_if_our_lease_looks_expired() -> None:
    mine = lease(ME, duration=1)
    first = run_decide(mine, now=0.0)
    assert run_decide(mine, observed=first.observed, now=100.0).action is Action.RENEW


def test_released_lease_is_taken_immediately() -> None:
    given_up = leader.released(lease(OTHER), timestamp=T0)
    assert given_up["spec"]["holderIdentity"] == ""
    assert given_up["spec"]["leaseDurationSeconds"] == 1
    assert given_up["spec"]["leaseTransitions"] == 3
    d = run_decide(given_up, now=50.0)  # first sight, not expired by time
    assert d.action is Action.TAKE_OVER and d.holder == ""
    assert d.lease["spec"]["holderIdentity"] == ME
    assert d.lease["spec"]["leaseTransitions"] == 4


def test_transitions_count_changes_of_holder_only() -> None:
    created = run_decide(None).lease
    stored = copy.deepcopy(created) | {"metadata": {**created["metadata"], "resourceVersion": "1"}}
    assert LeaseRecord.of(stored).transitions == 0
    for _ in range(3):
        stored = run_decide(stored).lease
    assert LeaseRecord.of(stored).transitions == 0  # renewals
    stored = leader.released(stored, timestamp=T0)
    assert LeaseRecord.of(stored).transitions == 0
    stored = run_decide(stored, identity=OTHER).lease
    assert LeaseRecord.of(stored) == LeaseRecord(OTHER, 15, leader.micro_time(T0), leader.micro_time(T0), 1)
    first = run_decide(stored, now=0.0)
    stored = run_decide(stored, observed=first.observed, now=15.0).lease
    assert LeaseRecord.of(stored).holder == ME and LeaseRecord.of(stored).transitions == 2


def test_observe() -> None:
    assert leader.observe(None, None, 1.0) is None
    first = leader.observe(lease(), None, 1.0)
    assert first is not None and first.at == 1.0
    assert leader.observe(lease(), first, 9.0) is first
    assert leader.observe(lease(leaseTransitions=4), first, 9.0) == Observed(
        LeaseRecord.of(lease(leaseTransitions=4)), 9.0
    )


# --- configuration -----------------------------------------------------------------------------------------
def test_from_config() -> None:
    config = OperatorConfiguration.model_validate(
        {
            "leaderElection": {
                "enabled": True,
                "leaseDuration": 4,
                "renewDeadline": 3,
                "retryPeriod": 0.5,
                "resourceName": "lock",
                "resourceNamespace": "elsewhere",
            }
        }
    )
    client = object.__new__(KubeClient)  # never used for requests here
    el = LeaderElector.from_config(config, client, identity="pod-a_1")
    assert (el.namespace, el.name, el.identity) == ("elsewhere", "lock", "pod-a_1")
    assert (el.lease_duration, el.renew_deadline, el.retry_period) == (4, 3, 0.5)
    assert isinstance(el.leases, leader.KubeLeases)
    default = OperatorConfiguration()
    assert leader.lease_namespace(default) == operator_namespace(default)
    assert LeaderElector.from_config(default, client).identity.count("_") >= 1


def test_from_config_rejects_other_locks() -> None:
    config = OperatorConfiguration.model_validate({"leaderElection": {"resourceLock": "configmaps"}})
    with pytest.raises(ValueError, match='only "leases"'):
        LeaderElector.from_config(config, object.__new__(KubeClient))


@pytest.mark.parametrize(
    ("lease_duration", "renew_deadline", "retry"), [(10, 10, 2), (5, 10, 2), (15, 10, 0)]
)
def test_elector_rejects_bad_durations(lease_duration: float, renew_deadline: float, retry: float) -> None:
    with pytest.raises(ValueError):
        LeaderElector(
            FakeLeases(),
            namespace=NS,
            name=NAME,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry,
        )


# --- the elector against an in-memory store ----------------------------------------------------------------
class FakeLeases:
    """An in-memory Lease store with resourceVersions, like the apiserver's optimistic concurrency."""

    def __init__(self, time: FakeTime | None = None) -> None:
        self.stored: JSON | None = None
        self.rv = 0
        self.calls: list[str] = []
        self.fail: KubeError | None = None  # every call raises this while set
        self.fail_after: int | None = None  # every call raises Unavailable once this many writes were stored
        self.fail_calls = 0  # the next this many calls raise Unavailable
        self.time = time
        self.delay = 0.0  # fake seconds every call takes
        self.write_times: list[float] = []
        self.before_write: list[Callable[[], Awaitable[None]]] = []  # run (once each) before the next write

    @property
    def spec(self) -> JSON:
        assert self.stored is not None
        spec: JSON = self.stored["spec"]
        return spec

    def _store(self, lease: JSON) -> JSON:
        self.rv += 1
        if self.time is not None:
            self.write_times.append(self.time.now)
        stored = copy.deepcopy(lease)
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.stored = stored
        return copy.deepcopy(stored)

    async def _call(self, what: str) -> None:
        self.calls.append(what)
        if self.delay and self.time is not None:
            await self.time.sleep(self.delay)
        if what != "get":
            while self.before_write:
                await self.before_write.pop(0)()
        if self.fail is not None:
            raise self.fail
        if self.fail_after is not None and self.rv >= self.fail_after:
            raise Unavailable("connection refused")
        if self.fail_calls > 0:
            self.fail_calls -= 1
            raise Unavailable("apiserver restarting")

    async def get(self, namespace: str, name: str) -> JSON | None:
        await self._call("get")
        assert (namespace, name) == (NS, NAME)
        return copy.deepcopy(self.stored)

    async def create(self, lease: JSON) -> JSON:
        await self._call("create")
        if self.stored is not None:
            raise AlreadyExists("leases already exists")
        assert "resourceVersion" not in lease["metadata"]
        return self._store(lease)

    async def replace(self, lease: JSON) -> JSON:
        await self._call("replace")
        if self.stored is None:
            raise NotFound("leases not found", status=404)
        if lease["metadata"].get("resourceVersion") != self.stored["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified", status=409, reason="Conflict")
        return self._store(lease)

    def overwrite(self, **spec: Any) -> None:
        """Somebody else writes the Lease."""
        assert self.stored is not None
        self._store({**self.stored, "spec": {**self.stored["spec"], **spec}})


class FakeTime:
    """Monotonic seconds that advance only when an elector sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.now - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def store(clock: FakeTime) -> FakeLeases:
    return FakeLeases(clock)


def elector(store: FakeLeases, clock: FakeTime, identity: str = ME, **kw: Any) -> LeaderElector:
    params: dict[str, Any] = {"lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0}
    params.update(kw)
    return LeaderElector(
        store,
        namespace=NS,
        name=NAME,
        identity=identity,
        clock=clock.clock,
        sleep=clock.sleep,
        wall=clock.wall,
        **params,
    )


async def test_create_then_renew_on_the_fast_path(store: FakeLeases, clock: FakeTime) -> None:
    el = elector(store, clock)
    assert not el.is_leader
    assert await el.try_acquire_or_renew()
    assert el.is_leader and el.holder == ME
    assert store.calls == ["get", "create"]
    acquired = store.spec["acquireTime"]
    clock.now += 2
    store.calls.clear()
    assert await el.try_acquire_or_renew()
    assert store.calls == ["replace"]  # no read: the Lease we wrote last is still current
    assert store.spec["acquireTime"] == acquired
    assert store.spec["renewTime"] == leader.micro_time(T0 + timedelta(seconds=2))
    assert store.spec["leaseTransitions"] == 0


async def test_create_race_already_exists(store: FakeLeases, clock: FakeTime) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")

    async def b_first() -> None:
        assert await b.try_acquire_or_renew()

    store.before_write.append(b_first)  # b creates the Lease between a's read and a's create
    assert not await a.try_acquire_or_renew()
    assert store.calls == ["get", "create", "get", "create"]  # a's create, recorded before b's turn
    assert b.is_leader and not a.is_leader
    assert store.spec["holderIdentity"] == "b"


async def test_conflict_on_concurrent_update(store: FakeLeases, clock: FakeTime) -> None:
    store._store(leader.released(lease(OTHER), timestamp=T0))  # free for the taking
    a, b = elector(store, clock, "a"), elector(store, clock, "b")

    async def b_first() -> None:
        assert await b.try_acquire_or_renew()

    store.before_write.append(b_first)  # both read the released Lease; b writes first
    assert not await a.try_acquire_or_renew()
    assert b.is_leader and not a.is_leader
    assert store.spec["holderIdentity"] == "b"
    assert store.spec["leaseTransitions"] == 4  # one change of holder, not two
    # a now sees b's fresh lease and waits
    assert not await a.try_acquire_or_renew()
    assert a.holder == "b" and store.spec["holderIdentity"] == "b"


async def test_standby_takes_over_after_local_expiry(store: FakeLeases, clock: FakeTime) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert await a.try_acquire_or_renew()
    clock.now += 100  # a dies here, long ago by b's wall clock, but b has not seen the Lease yet
    assert not await b.try_acquire_or_renew()
    clock.now += 14.9
    assert not await b.try_acquire_or_renew()
    clock.now += 0.1
    assert await b.try_acquire_or_renew()
    assert store.spec["holderIdentity"] == "b" and store.spec["leaseTransitions"] == 1


async def test_leader_keeps_leading_through_short_failures(store: FakeLeases, clock: FakeTime) -> None:
    el = elector(store, clock)
    stopped: list[float] = []
    recovered = asyncio.Event()

    async def work() -> None:
        store.fail_calls = 4  # the renewals at +2 and +4 fail (optimistic replace, then the re-read)
        while store.rv < 2:
            await asyncio.sleep(0)
        recovered.set()
        await asyncio.Event().wait()

    runner = asyncio.create_task(el.run(work, lambda: stopped.append(clock.now)))
    async with asyncio.timeout(5):
        await recovered.wait()
    # (the fake clock may have moved on to further renewals meanwhile)
    assert store.write_times[:2] == [1000.0, 1006.0]
    assert store.calls[:7] == ["get", "create", "replace", "get", "replace", "get", "replace"]
    assert el.is_leader and not stopped and not runner.done()
    assert store.spec["leaseTransitions"] == 0
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_renew_failure_past_the_renew_deadline_stops_leading(
    store: FakeLeases, clock: FakeTime
) -> None:
    el = elector(store, clock)
    stopped: list[float] = []
    work_cancelled = asyncio.Event()
    store.fail_after = 2  # created, renewed once, then every request fails

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            work_cancelled.set()
            raise

    async with asyncio.timeout(5):
        await el.run(work, lambda: stopped.append(clock.now))
    assert work_cancelled.is_set()
    assert len(stopped) == 1 and not el.is_leader
    # The last successful renewal was sent at t+2; leading stops renew_deadline (10 s) after that, before a
    # standby (which waits lease_duration, 15 s, after seeing that renewal) can take over.
    assert store.write_times == [1000.0, 1002.0]
    assert stopped == [1012.0]
    assert store.spec["holderIdentity"] == ME  # not released: the lease just runs out


async def test_slow_failing_renewals_stop_exactly_at_the_deadline(store: FakeLeases, clock: FakeTime) -> None:
    el = elector(store, clock)
    stopped: list[float] = []

    async def work() -> None:
        store.fail, store.delay = Unavailable("timeout"), 0.5  # each attempt: 2 calls, 1 s, then an error
        await asyncio.Event().wait()

    async with asyncio.timeout(5):
        await el.run(work, lambda: stopped.append(clock.now))
    # attempts at +2, +5, +8 (each ends 1 s later); then it sleeps only until the deadline (+10), not a
    # whole retry period past it
    assert stopped == [1010.0]


async def test_another_holder_seen_stops_leading_at_once(store: FakeLeases, clock: FakeTime) -> None:
    el = elector(store, clock)
    stopped: list[float] = []

    async def work() -> None:
        store.overwrite(holderIdentity="usurper", leaseTransitions=1)
        await asyncio.Event().wait()

    start = clock.now
    async with asyncio.timeout(5):
        await el.run(work, lambda: stopped.append(clock.now))
    assert stopped == [start + 2.0]  # the first renewal (conflict, re-read) finds it taken
    assert el.holder == "usurper" and not el.is_leader
    assert store.spec["holderIdentity"] == "usurper"  # not overwritten back
    assert await el.release()  # not ours: nothing to do
    assert store.spec["holderIdentity"] == "usurper"


async def test_release_clears_the_holder(store: FakeLeases, clock: FakeTime) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # b sees a's fresh lease
    clock.now += 3
    assert await a.try_acquire_or_renew()
    assert await a.release()
    assert not a.is_leader and a.holder == ""
    assert store.spec["holderIdentity"] == ""
    assert store.spec["leaseDurationSeconds"] == 1
    assert store.spec["leaseTransitions"] == 0
    assert await b.try_acquire_or_renew()  # immediately: no expiry to wait for
    assert store.spec["holderIdentity"] == "b" and store.spec["leaseTransitions"] == 1
    store.calls.clear()
    assert await a.release()  # no longer ours: no write
    assert store.calls == []


async def test_release_after_a_conflict_rereads(store: FakeLeases, clock: FakeTime) -> None:
    el = elector(store, clock)
    assert await el.try_acquire_or_renew()
    store.overwrite(holderIdentity=ME)  # e.g. somebody added a label: a new resourceVersion, still ours
    assert await el.release()
    assert store.spec["holderIdentity"] == ""
    assert await el.try_acquire_or_renew()
    store.overwrite(holderIdentity="other", leaseTransitions=9)  # taken while we were not looking
    assert await el.release()
    assert store.spec["holderIdentity"] == "other"


async def test_release_failure_is_reported(store: FakeLeases, clock: FakeTime) -> None:
    el = elector(store, clock)
    assert await el.try_acquire_or_renew()
    store.fail = Unavailable("down")
    assert not await el.release()
    store.fail = None
    assert store.spec["holderIdentity"] == ME


async def test_run_cancelled_keeps_the_lease_and_release_is_refused_while_running(
    store: FakeLeases, clock: FakeTime
) -> None:
    el = elector(store, clock)
    started = asyncio.Event()
    work_cancelled = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            work_cancelled.set()
            raise

    runner = asyncio.create_task(el.run(work, lambda: pytest.fail("not a loss")))
    async with asyncio.timeout(5):
        await started.wait()
    with pytest.raises(RuntimeError):
        await el.release()
    with pytest.raises(RuntimeError):
        await el.run(work, lambda: None)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert work_cancelled.is_set()
    assert store.spec["holderIdentity"] == ME  # a cancelled run looks like a crash to the others
    assert await el.release()
    assert store.spec["holderIdentity"] == ""


async def test_run_waits_for_the_lease_then_work_errors_propagate(store: FakeLeases, clock: FakeTime) -> None:
    other = elector(store, clock, "other")
    assert await other.try_acquire_or_renew()
    el = elector(store, clock)
    leading: list[float] = []

    async def work() -> None:
        leading.append(clock.now)
        raise RuntimeError("controller crashed")

    started = clock.now
    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match="controller crashed"):
            await el.run(work, lambda: pytest.fail("not a loss"))
    # waited for the other's lease to expire (15 s after first seeing it), trying every 2..4.4 s
    assert len(leading) == 1 and started + 15.0 <= leading[0] < started + 15.0 + 2.0 * 2.2
    assert store.spec["holderIdentity"] == ME and store.spec["leaseTransitions"] == 1


# --- renewals on a thread of their own (real time) -------------------------------------------------------------
def threaded(store: FakeLeases, own_thread: bool = True) -> LeaderElector:
    """An elector on the real clock with short durations that renews through `store` on its own thread (as
    the operator does), or on the caller's loop."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[FakeLeases]:
        yield store

    return LeaderElector(
        store,
        namespace=NS,
        name=NAME,
        identity=ME,
        lease_duration=1.5,
        renew_deadline=1.0,
        retry_period=0.1,
        renew_connection=connect if own_thread else None,
    )


def busy(seconds: float) -> None:
    """Hold the loop and the CPU (and the GIL, between Python's thread switches) for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def test_renewals_go_on_while_the_controllers_loop_is_blocked() -> None:
    """A CPU-heavy pass holding the loop for longer than the renew deadline costs no leadership."""
    store, lost = FakeLeases(), []

    async def work() -> None:
        busy(2.5)  # the controllers' loop busy, as in a long planner pass
        await asyncio.sleep(0.3)  # a renewal on this loop would now find its deadline passed

    async with asyncio.timeout(10):
        await threaded(store).run(work, lambda: lost.append("lost"))
    assert lost == []
    assert store.calls.count("replace") >= 10  # renewed every 0.1 s through the block
    assert not [t for t in threading.enumerate() if t.name == "leader-renew"]


async def test_on_the_callers_loop_the_same_block_loses_the_lease() -> None:
    """The control for the test above: what happened before renewals had a thread of their own."""
    store, lost = FakeLeases(), []

    async def work() -> None:
        busy(2.5)
        await asyncio.sleep(0.3)

    async with asyncio.timeout(10):
        await threaded(store, own_thread=False).run(work, lambda: lost.append("lost"))
    assert lost == ["lost"]


async def test_a_lease_taken_over_is_seen_by_the_renewal_thread_and_stops_the_work() -> None:
    store, lost = FakeLeases(), []
    cancelled = asyncio.Event()

    async def work() -> None:
        store.overwrite(holderIdentity=OTHER)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with asyncio.timeout(10):
        await threaded(store).run(work, lambda: lost.append("lost"))
    assert lost == ["lost"] and cancelled.is_set()


async def test_cancelling_run_stops_the_renewal_thread() -> None:
    store = FakeLeases()
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    runner = asyncio.create_task(threaded(store).run(work, lambda: pytest.fail("not a loss")))
    async with asyncio.timeout(10):
        await started.wait()
        await asyncio.sleep(0.3)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert not [t for t in threading.enumerate() if t.name == "leader-renew"]
    calls = len(store.calls)
    await asyncio.sleep(0.3)
    assert len(store.calls) == calls  # nothing renews any more

"""Leader election on the real apiserver: two electors on one Lease in a fresh namespace. Exactly one leads;
a release hands over within a retry period; a crashed leader (cancelled, not released) is replaced once its
lease has expired by the standby's clock. Plus the optimistic-concurrency races (create, take-over)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from grove_operator.leader import KubeLeases, LeaderElector, LeaseRecord
from kube.client import AlreadyExists, Conflict, KubeClient
from tests.waiting import until

NAME = "grove-operator-leader-election"
LEASE, RENEW, RETRY = 2.0, 1.5, 0.2
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Replica:
    """One operator replica: an elector whose `run()` task records when it leads."""

    def __init__(self, elector: LeaderElector, board: Board) -> None:
        self.elector = elector
        self.board = board
        self.task: asyncio.Task[None] | None = None
        self.started_at: float | None = None
        self.stopped = 0

    @property
    def identity(self) -> str:
        return self.elector.identity

    def start(self) -> None:
        self.started_at = None
        self.task = asyncio.create_task(self.elector.run(self._lead, self._lost), name=self.identity)

    async def _lead(self) -> None:
        self.started_at = asyncio.get_running_loop().time()
        self.board.leading.add(self.identity)
        self.board.max_leading = max(self.board.max_leading, len(self.board.leading))
        try:
            await asyncio.Event().wait()
        finally:
            self.board.leading.discard(self.identity)

    def _lost(self) -> None:
        self.stopped += 1

    async def crash(self) -> None:
        """Cancel run() without releasing: to the other replica this is a dead process."""
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class Board:
    """Who is running its leader-only work right now (never more than one)."""

    def __init__(self) -> None:
        self.leading: set[str] = set()
        self.max_leading = 0


@pytest.fixture
def make(api_client: ApiClient, namespace: str) -> Callable[..., LeaderElector]:
    kube = KubeClient(api_client)

    def new(identity: str, **kw: Any) -> LeaderElector:
        params: dict[str, Any] = {"lease_duration": LEASE, "renew_deadline": RENEW, "retry_period": RETRY}
        params.update(kw)
        return LeaderElector(KubeLeases(kube), namespace=namespace, name=NAME, identity=identity, **params)

    return new


@pytest.fixture
async def replicas(make: Callable[..., LeaderElector]) -> AsyncIterator[tuple[Replica, Replica, Board]]:
    board = Board()
    # jitter 0: standbys retry exactly every retry period, so the hand-over times below are tight
    a, b = Replica(make("replica-a", jitter=0.0), board), Replica(make("replica-b", jitter=0.0), board)
    yield a, b, board
    for r in (a, b):
        if r.task is not None and not r.task.done():
            await r.crash()


async def stored(kube_leases: KubeLeases, namespace: str) -> LeaseRecord:
    lease = await kube_leases.get(namespace, NAME)
    assert lease is not None
    return LeaseRecord.of(lease)


async def test_one_leader_release_hands_over_and_crash_fails_over(
    replicas: tuple[Replica, Replica, Board], namespace: str
) -> None:
    a, b, board = replicas
    loop = asyncio.get_running_loop()
    a.start()
    b.start()

    async def one_leader() -> Replica | None:
        leaders = [r for r in (a, b) if r.started_at is not None]
        return leaders[0] if len(leaders) == 1 else None

    first = await until("one replica leading", one_leader, timeout=15, interval=0.05)
    assert first is not None
    second = b if first is a else a
    # it stays that way across several renewals: the other only stands by
    await asyncio.sleep(4 * RETRY)
    assert board.leading == {first.identity} and board.max_leading == 1
    assert first.elector.is_leader and not second.elector.is_leader
    assert second.elector.holder == first.identity
    leases = first.elector.leases
    assert isinstance(leases, KubeLeases)
    record = await stored(leases, namespace)
    assert record.holder == first.identity and record.lease_duration_seconds == 2
    assert record.transitions == 0
    assert MICRO.match(record.renew_time) and MICRO.match(record.acquire_time)
    assert record.renew_time > record.acquire_time  # renewed since

    # graceful shutdown of the leader: stop its work, then release: the standby leads on its next try
    await first.crash()
    assert await first.elector.release()
    released_at = loop.time()
    # Released (empty holder), or already taken by the standby, whose retry may land before this read.
    assert (await stored(leases, namespace)).holder in ("", second.identity)
    await until("the standby leading after the release", lambda: _leads(second), timeout=10, interval=0.02)
    assert second.started_at is not None
    handover = second.started_at - released_at
    # its next try, within one retry period (+ a read and a write); had it waited for the released lease
    # (leaseDurationSeconds 1) to expire, that would have taken at least 1 s
    assert handover < 0.8, f"hand-over after release took {handover:.2f}s"
    assert board.max_leading == 1
    record = await stored(leases, namespace)
    assert record.holder == second.identity and record.transitions == 1

    # the first replica comes back as a standby; then the leader crashes (no release)
    first.start()

    async def standing_by() -> bool:
        return first.elector.holder == second.identity

    await until("the first replica standing by", standing_by, timeout=10, interval=0.02)
    assert first.started_at is None
    await second.crash()
    crashed_at = loop.time()
    await until("the standby leading after the crash", lambda: _leads(first), timeout=15, interval=0.02)
    assert first.started_at is not None
    failover = first.started_at - crashed_at
    # The crashed leader's last renewal was about one retry period before the crash; the standby waits a
    # full lease duration (2 s) after seeing it, then up to one retry period for its next try. (Taking over
    # without waiting for the expiry would take about one retry period.)
    assert LEASE - RETRY - 0.5 <= failover <= LEASE + 2 * RETRY + 1.6, f"fail-over took {failover:.2f}s"
    assert board.max_leading == 1
    record = await stored(leases, namespace)
    assert record.holder == first.identity and record.transitions == 2
    assert a.stopped == b.stopped == 0  # nobody lost a lease while running


async def _leads(replica: Replica) -> bool:
    return replica.started_at is not None


class RacingLeases(KubeLeases):
    """Every racer reads the Lease before anybody writes it, and the 409s are counted."""

    def __init__(self, kube: KubeClient, barrier: asyncio.Barrier, refusals: list[str]) -> None:
        super().__init__(kube)
        self.barrier = barrier
        self.refusals = refusals

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        lease = await super().get(namespace, name)
        with contextlib.suppress(asyncio.BrokenBarrierError):
            await self.barrier.wait()
        return lease

    async def create(self, lease: dict[str, Any]) -> dict[str, Any]:
        try:
            return await super().create(lease)
        except AlreadyExists:
            self.refusals.append("AlreadyExists")
            raise

    async def replace(self, lease: dict[str, Any]) -> dict[str, Any]:
        try:
            return await super().replace(lease)
        except Conflict:
            self.refusals.append("Conflict")
            raise


async def race(
    api_client: ApiClient, namespace: str, racers: int = 4
) -> tuple[list[LeaderElector], list[str]]:
    """`racers` electors that have all read the Lease try to write it at once: (the winner first, refusals)."""
    kube = KubeClient(api_client)
    barrier, refusals = asyncio.Barrier(racers), list[str]()
    electors = [
        LeaderElector(
            RacingLeases(kube, barrier, refusals),
            namespace=namespace,
            name=NAME,
            identity=f"racer-{i}",
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
        )
        for i in range(racers)
    ]
    won = await asyncio.gather(*(el.try_acquire_or_renew() for el in electors))
    assert sorted(won) == [False] * (racers - 1) + [True]
    winner = electors[won.index(True)]
    return [winner, *(el for el in electors if el is not winner)], refusals


async def test_create_race_has_one_winner(api_client: ApiClient, namespace: str) -> None:
    (winner, *losers), refusals = await race(api_client, namespace)
    assert refusals == ["AlreadyExists"] * 3
    record = await stored(KubeLeases(KubeClient(api_client)), namespace)
    assert record.holder == winner.identity and record.transitions == 0
    assert winner.is_leader and not any(el.is_leader for el in losers)


async def test_take_over_race_has_one_winner(
    make: Callable[..., LeaderElector], api_client: ApiClient, namespace: str
) -> None:
    owner = make("owner")
    assert await owner.try_acquire_or_renew()
    assert await owner.release()
    (winner, *losers), refusals = await race(api_client, namespace)
    assert refusals == ["Conflict"] * 3  # all read the released Lease; one replace wins
    record = await stored(KubeLeases(KubeClient(api_client)), namespace)
    assert record.holder == winner.identity and record.transitions == 1
    # the losers now see a live lease and wait
    for el in losers:
        el.leases = KubeLeases(KubeClient(api_client))
    assert not any(await asyncio.gather(*(el.try_acquire_or_renew() for el in losers)))
    assert {el.holder for el in losers} == {winner.identity}

"""Lease-based leader election, with client-go's `leaderelection` semantics.

Several operator replicas may run; all of them serve the admission webhooks, but only the one holding the
`coordination.k8s.io/v1` Lease `leaderElection.resourceName` runs the controllers. Two layers:

* A pure decision core (`decide`, `renewed`, `released`): given the stored Lease (or None), our identity,
  what we last observed and when, and the durations, say what to do (create the Lease, take it over, renew
  it, or wait) and which Lease body to write.
* `LeaderElector`: the thin I/O loop around it, writing through a `LeaseClient` (`KubeLeases` on the real
  apiserver) with optimistic concurrency: every replace carries the resourceVersion read, so of two
  replicas racing for one Lease exactly one write succeeds (409 Conflict for the other; 409 AlreadyExists
  when both try to create it).

Expiry is measured on the *local* clock, as client-go does, never by comparing the holder's `renewTime`
with our clock (the clocks of two nodes may disagree by more than a lease duration): we remember when we
first saw the current record (holder, times, duration, transitions), and the lease counts as expired once
`leaseDurationSeconds` have passed on our monotonic clock without the record changing. So a replica that
starts up next to a crashed leader waits one full lease duration before taking over, whatever the Lease's
timestamps say. A lease with an empty holder (given up with `release()`) is taken at once.

Timing: the leader renews every `retry_period`. It stops leading when it has not managed to renew for
`renew_deadline`, counted from the moment it *sent* its last successful renewal (so it stops before any
standby can take over: a standby waits `lease_duration` > `renew_deadline` from when it *saw* that
renewal), or at once when it sees that another holder has the lease. A standby tries every `retry_period`
(plus up to `jitter` times that, as client-go's `JitterUntil`). While leading, the operator renews on a
thread with its own event loop and connection (`renew_connection`), so CPU-heavy passes on the controllers'
loop cannot delay a renewal past its deadline.

Losing the lease is final for a `LeaderElector.run()`: the work is cancelled, `on_stopped_leading` is
called, and the process is expected to exit and be restarted (what client-go users do: `OnStoppedLeading`
calls `klog.Fatalf`, controller-runtime's manager returns "leader election lost" and main exits 1),
because controllers cannot be trusted to have dropped every in-memory decision made while leading.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import logging
import math
import random
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio.client import ApiClient, Configuration

from grove_api.operatorconfig import LeaderElection, OperatorConfiguration
from grove_operator.identity import operator_namespace
from kube.client import AlreadyExists, Conflict, KubeClient, KubeError, NotFound, plain_session
from kube.resources import Resource

log = logging.getLogger(__name__)

JSON = dict[str, Any]

LEASES = Resource("coordination.k8s.io", "v1", "Lease", "leases", True, False)
API_VERSION = LEASES.api_version
RELEASED_LEASE_SECONDS = 1  # leaseDurationSeconds written on release (client-go's value)


# --- pure core ---------------------------------------------------------------------------------------------
def micro_time(ts: datetime) -> str:
    """A `metav1.MicroTime` string: RFC 3339 in UTC with microseconds, `2026-11-25T17:20:01.123456Z`."""
    if ts.tzinfo is None:
        raise ValueError("micro_time needs an aware datetime")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    """`<hostname>_<uuid4>` (the pod name in a pod), unique per process like controller-runtime's."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def lease_seconds(duration: float) -> int:
    """`leaseDurationSeconds` for a duration in seconds: whole seconds, rounded *up* (at least 1) so standbys
    never wait less than the leader believes it has."""
    return max(1, math.ceil(duration))


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant part of a Lease's spec (client-go's `LeaderElectionRecord`)."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str = ""
    renew_time: str = ""
    transitions: int = 0

    @classmethod
    def of(cls, lease: JSON) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


@dataclass(frozen=True)
class Observed:
    """A record and the local (monotonic) time at which we first saw it: the basis of expiry."""

    record: LeaseRecord
    at: float

    def expires_at(self, default_duration: float) -> float:
        """Local time after which the lease counts as expired: the holder's `leaseDurationSeconds` after we
        first saw this record (our own duration if the Lease does not say)."""
        duration = self.record.lease_duration_seconds or default_duration
        return self.at + duration


def observe(current: JSON | None, previous: Observed | None, now: float) -> Observed | None:
    """The observation of `current`: `previous` if the record has not changed since, else a new one at `now`."""
    if current is None:
        return None
    record = LeaseRecord.of(current)
    if previous is not None and previous.record == record:
        return previous
    return Observed(record, now)


class Action(enum.StrEnum):
    CREATE = "create"  # no Lease yet: create it naming us
    TAKE_OVER = "take-over"  # expired, or released (empty holder): replace it naming us
    RENEW = "renew"  # we hold it: replace it with a fresh renewTime
    WAIT = "wait"  # somebody else holds a live lease


@dataclass(frozen=True)
class Decision:
    action: Action
    observed: Observed | None  # what to remember about `current` from now on
    lease: JSON | None  # the Lease to write (POST for CREATE, PUT otherwise); None for WAIT
    holder: str  # the holder named by the stored Lease ("" if none)
    expires_at: float | None = None  # WAIT: local time at which the holder's lease counts as expired


def _spec(holder: str, *, duration: int, acquire: str, renew: str, transitions: int) -> JSON:
    return {
        "holderIdentity": holder,
        "leaseDurationSeconds": duration,
        "acquireTime": acquire,
        "renewTime": renew,
        "leaseTransitions": transitions,
    }


def _with_spec(current: JSON, spec: JSON) -> JSON:
    """`current` (metadata with its resourceVersion, other spec fields) with the election fields replaced.

    managedFields are left out: omitted, the apiserver keeps them; sent back, they would be taken as ours.
    """
    body = copy.deepcopy(current)
    body.setdefault("apiVersion", API_VERSION)
    body.setdefault("kind", "Lease")
    body.get("metadata", {}).pop("managedFields", None)
    body["spec"] = {**(body.get("spec") or {}), **spec}
    return body


def new_lease(
    namespace: str, name: str, identity: str, *, timestamp: datetime, lease_duration: float
) -> JSON:
    now = micro_time(timestamp)
    return {
        "apiVersion": API_VERSION,
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": _spec(
            identity, duration=lease_seconds(lease_duration), acquire=now, renew=now, transitions=0
        ),
    }


def renewed(current: JSON, *, timestamp: datetime, lease_duration: float) -> JSON:
    """`current` (held by us) renewed: same holder, acquireTime and transitions, a new renewTime."""
    record = LeaseRecord.of(current)
    return _with_spec(
        current,
        _spec(
            record.holder,
            duration=lease_seconds(lease_duration),
            acquire=record.acquire_time or micro_time(timestamp),
            renew=micro_time(timestamp),
            transitions=record.transitions,
        ),
    )


def taken_over(current: JSON, identity: str, *, timestamp: datetime, lease_duration: float) -> JSON:
    """`current` handed to `identity`: new acquire and renew times, one more transition."""
    now = micro_time(timestamp)
    return _with_spec(
        current,
        _spec(
            identity,
            duration=lease_seconds(lease_duration),
            acquire=now,
            renew=now,
            transitions=LeaseRecord.of(current).transitions + 1,
        ),
    )


def released(current: JSON, *, timestamp: datetime) -> JSON:
    """`current` given up (client-go `release()`): no holder, a 1 s duration, transitions kept."""
    now = micro_time(timestamp)
    return _with_spec(
        current,
        _spec(
            "",
            duration=RELEASED_LEASE_SECONDS,
            acquire=now,
            renew=now,
            transitions=LeaseRecord.of(current).transitions,
        ),
    )


def decide(
    current: JSON | None,
    *,
    identity: str,
    observed: Observed | None,
    now: float,
    timestamp: datetime,
    lease_duration: float,
    namespace: str,
    name: str,
) -> Decision:
    """What to do about the stored Lease `current` (None: there is none), client-go's `tryAcquireOrRenew`.

    `now` is the local monotonic time (expiry), `timestamp` the wall-clock time written into the Lease,
    `observed` what this elector last saw (None at first). The returned `observed` must be kept for the next
    call. Expiry uses the holder's `leaseDurationSeconds` counted from when *we* first saw the record.
    """
    if current is None:
        lease = new_lease(namespace, name, identity, timestamp=timestamp, lease_duration=lease_duration)
        return Decision(Action.CREATE, None, lease, "")
    seen = observe(current, observed, now)
    assert seen is not None
    holder = seen.record.holder
    if holder == identity:
        lease = renewed(current, timestamp=timestamp, lease_duration=lease_duration)
        return Decision(Action.RENEW, seen, lease, holder)
    expires = seen.expires_at(lease_duration)
    if holder and now < expires:
        return Decision(Action.WAIT, seen, None, holder, expires)
    lease = taken_over(current, identity, timestamp=timestamp, lease_duration=lease_duration)
    return Decision(Action.TAKE_OVER, seen, lease, holder)


# --- I/O ---------------------------------------------------------------------------------------------------
class LeaseClient(Protocol):
    """Lease storage. Errors are `kube.client.KubeError`s: `create` raises `AlreadyExists`,
    `replace` raises `Conflict` when the body's resourceVersion is stale (and `NotFound` if it is gone)."""

    async def get(self, namespace: str, name: str) -> JSON | None:
        """The stored Lease, None if there is none."""
        ...

    async def create(self, lease: JSON) -> JSON: ...

    async def replace(self, lease: JSON) -> JSON: ...


# A new connection to lease through, opened on the running loop (`own_connection`).
LeaseConnection = Callable[[], AbstractAsyncContextManager[LeaseClient]]


class KubeLeases:
    """`LeaseClient` on the apiserver (GET, POST and PUT of `coordination.k8s.io/v1` leases)."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def get(self, namespace: str, name: str) -> JSON | None:
        try:
            return await self.kube.request("GET", LEASES.object_path(namespace, name))
        except NotFound:
            return None

    async def create(self, lease: JSON) -> JSON:
        namespace = lease["metadata"]["namespace"]
        return await self.kube.request("POST", LEASES.collection_path(namespace), body=lease)

    async def replace(self, lease: JSON) -> JSON:
        meta = lease["metadata"]
        return await self.kube.request("PUT", LEASES.object_path(meta["namespace"], meta["name"]), body=lease)


def lease_namespace(config: OperatorConfiguration) -> str:
    """`leaderElection.resourceNamespace`, or the operator's own namespace when empty."""
    return config.leader_election.resource_namespace or operator_namespace(config)


def _now() -> datetime:
    return datetime.now(UTC)


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


class LeaderElector:
    """Campaign for one Lease, lead while holding it, and give it up.

    `run()` is the whole life cycle; `try_acquire_or_renew()`, `acquire()` and `release()` are its steps.
    `clock`/`sleep`/`wall` are injectable for tests (monotonic seconds, an awaitable sleep, UTC now).
    """

    def __init__(
        self,
        leases: LeaseClient,
        *,
        namespace: str,
        name: str,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        jitter: float = 1.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall: Callable[[], datetime] = _now,
        renew_connection: LeaseConnection | None = None,
    ) -> None:
        if not lease_duration > renew_deadline > 0 or retry_period <= 0:
            raise ValueError(
                "leader election needs leaseDuration > renewDeadline > 0 and retryPeriod > 0 "
                f"(got {lease_duration}, {renew_deadline}, {retry_period})"
            )
        self.leases = leases
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.jitter = jitter
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._observed: Observed | None = None
        self._lease: JSON | None = None  # the Lease as last read or written (its resourceVersion)
        self._renewed_at: float | None = None  # local time our last successful write naming us was sent
        self._running = False
        self._reported_holder: str | None = None
        # While leading, renew on a thread and a connection of their own (`_renew_on_own_thread`); None: on
        # the caller's loop through `leases` (tests with a fake clock).
        self._connect = renew_connection

    @classmethod
    def from_config(
        cls,
        config: OperatorConfiguration,
        client: KubeClient | ApiClient,
        *,
        identity: str | None = None,
        namespace: str | None = None,
    ) -> LeaderElector:
        """An elector for `config.leaderElection` (namespace: `resourceNamespace`, else the operator's)."""
        le: LeaderElection = config.leader_election
        if le.resource_lock != "leases":
            raise ValueError(f'leaderElection.resourceLock {le.resource_lock!r}: only "leases" is supported')
        kube = client if isinstance(client, KubeClient) else KubeClient(client)
        return cls(
            KubeLeases(kube),
            renew_connection=lambda: own_connection(kube.api.configuration),
            namespace=namespace or lease_namespace(config),
            name=le.resource_name,
            identity=identity,
            lease_duration=le.lease_duration,
            renew_deadline=le.renew_deadline,
            retry_period=le.retry_period,
        )

    # -- state --
    @property
    def holder(self) -> str:
        """The holder named by the Lease as last read or written ("" if none or unknown)."""
        return self._observed.record.holder if self._observed else ""

    @property
    def is_leader(self) -> bool:
        """The Lease names us and we renewed it less than `renew_deadline` ago (so no standby can have taken
        over yet). Turns False by itself when renewals stop succeeding."""
        return (
            self.holder == self.identity
            and self._renewed_at is not None
            and self._clock() < self._renewed_at + self.renew_deadline
        )

    def _fields(self, **more: Any) -> JSON:
        return {"lease": f"{self.namespace}/{self.name}", "identity": self.identity, **more}

    def _wrote(self, lease: JSON, sent: float) -> None:
        self._lease = lease
        self._observed = Observed(LeaseRecord.of(lease), self._clock())
        self._renewed_at = sent if self.holder == self.identity else None

    # -- one attempt --
    async def try_acquire_or_renew(self, leases: LeaseClient | None = None) -> bool:
        """One attempt to get or keep the lease (through `leases`, default ours); True if we hold it now. API
        errors are logged and count as False (retry later). Leaders first try an optimistic replace of the
        Lease they last wrote, and read it again only if that fails (client-go's fast path)."""
        leases = leases or self.leases
        if self.is_leader and self._lease is not None:
            sent = self._clock()
            body = renewed(self._lease, timestamp=self._wall(), lease_duration=self.lease_duration)
            try:
                self._wrote(await leases.replace(body), sent)
                return True
            except KubeError as err:
                log.info(
                    "optimistic renewal failed; reading the lease again",
                    extra=self._fields(error=_error(err)),
                )
        try:
            current = await leases.get(self.namespace, self.name)
        except KubeError as err:
            log.warning("reading the lease failed", extra=self._fields(error=_error(err)))
            return False
        decision = decide(
            current,
            identity=self.identity,
            observed=self._observed,
            now=self._clock(),
            timestamp=self._wall(),
            lease_duration=self.lease_duration,
            namespace=self.namespace,
            name=self.name,
        )
        self._observed = decision.observed
        self._lease = current
        if decision.action is Action.WAIT:
            if decision.holder != self._reported_holder:
                self._reported_holder = decision.holder
                log.info(
                    "the lease is held by another replica; standing by",
                    extra=self._fields(holder=decision.holder),
                )
            return False
        assert decision.lease is not None
        sent = self._clock()
        try:
            if decision.action is Action.CREATE:
                written = await leases.create(decision.lease)
            else:
                written = await leases.replace(decision.lease)
        except AlreadyExists:
            log.info("another replica created the lease first", extra=self._fields())
            return False
        except Conflict:
            log.info(
                "lost a race for the lease (changed since read)",
                extra=self._fields(action=str(decision.action)),
            )
            return False
        except KubeError as err:
            log.warning(
                "writing the lease failed", extra=self._fields(action=str(decision.action), error=_error(err))
            )
            return False
        self._wrote(written, sent)
        if decision.action is not Action.RENEW:
            self._reported_holder = self.identity
            log.info(
                "acquired the lease",
                extra=self._fields(
                    action=str(decision.action),
                    previous_holder=decision.holder or None,
                    transitions=LeaseRecord.of(written).transitions,
                ),
            )
        return True

    async def _attempt(self, timeout: float, leases: LeaseClient | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                return await self.try_acquire_or_renew(leases)
        except TimeoutError:
            log.warning("lease request timed out", extra=self._fields(timeout_seconds=round(timeout, 3)))
            return False

    # -- loops --
    async def acquire(self) -> None:
        """Return once we hold the lease; try every `retry_period` (+ jitter) until then."""
        while not await self._attempt(self.renew_deadline):
            await self._sleep(self.retry_period * (1 + random.random() * self.jitter))

    async def keep_renewing(self, leases: LeaseClient | None = None) -> None:
        """Renew every `retry_period` (through `leases`, default ours) while leading; return when leadership is
        lost: another holder is seen, or no renewal succeeded for `renew_deadline` since the last successful
        one was sent."""
        while True:
            if self._renewed_at is None:
                return
            deadline = self._renewed_at + self.renew_deadline
            # never sleep past the deadline: leading must stop at it, not up to a retry period later
            await self._sleep(max(0.0, min(self.retry_period, deadline - self._clock())))
            remaining = deadline - self._clock()
            if remaining > 0 and await self._attempt(remaining, leases):
                continue
            if self.holder and self.holder != self.identity:
                log.error(
                    "the lease was taken over by another replica", extra=self._fields(holder=self.holder)
                )
                return
            if self._clock() >= deadline:
                log.error(
                    "failed to renew the lease within the renew deadline",
                    extra=self._fields(renew_deadline_seconds=self.renew_deadline),
                )
                return

    async def run(
        self,
        on_started_leading: Callable[[], Awaitable[None]],
        on_stopped_leading: Callable[[], None],
    ) -> None:
        """Campaign, then run `on_started_leading()` as a task while renewing the lease.

        * Leadership lost: the work is cancelled (and awaited, up to `lease_duration - renew_deadline`),
          then `on_stopped_leading()` is called and `run()` returns. Exit the process then.
        * The work returns or raises by itself: renewing stops and `run()` returns or raises with it (the
          lease is still held: `release()` it to hand over at once).
        * `run()` cancelled (shutdown): the work is cancelled and awaited, then CancelledError propagates.
          The lease is kept (a crash looks the same); call `release()` afterwards to hand over at once.
        """
        if self._running:
            raise RuntimeError("LeaderElector.run() is already running")
        self._running = True
        try:
            log.info("campaigning for the lease", extra=self._fields())
            await self.acquire()
            log.info("started leading", extra=self._fields())
            renewing = asyncio.create_task(  # first: its thread starts before the work can hold the loop
                self._renew_on_own_thread(self._connect) if self._connect else self.keep_renewing(),
                name="leader-renew",
            )
            work = asyncio.create_task(_awaited(on_started_leading), name="leader-work")
            try:
                await asyncio.wait({work, renewing}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                await _stop(renewing, work)
                raise
            if work.done():
                await _stop(renewing)
                work.result()
                log.info("the leading work ended; not renewing the lease any more", extra=self._fields())
                return
            grace = self.lease_duration - self.renew_deadline
            if not await _stop(work, timeout=grace):
                log.error("the leading work did not stop in time", extra=self._fields(grace_seconds=grace))
            self._renewed_at = None
            log.error("stopped leading", extra=self._fields(holder=self.holder or None))
            on_stopped_leading()
            renewing.result()
        finally:
            self._running = False

    async def release(self) -> bool:
        """Give the lease up if it still names us (client-go ReleaseOnCancel): empty holder, 1 s duration,
        so a standby takes over on its next try. Call it only once the leading work has stopped (after
        `run()` returned or was cancelled). True if released or nothing to release; False on failure (a
        standby then takes over when the lease expires)."""
        if self._running:
            raise RuntimeError("release() while run() is active: cancel run() first")
        if self._lease is None or self.holder != self.identity:
            return True
        try:
            async with asyncio.timeout(self.renew_deadline):
                done = await self._release(self._lease)
        except (KubeError, TimeoutError) as err:
            log.warning(
                "releasing the lease failed; a standby takes over when it expires",
                extra=self._fields(error=_error(err)),
            )
            return False
        self._renewed_at = None
        self._reported_holder = None
        if done:
            log.info("released the lease", extra=self._fields())
        return True

    async def _release(self, current: JSON) -> bool:
        """Write `current` released; on a conflict read it again and retry once if it still names us. True if
        released, False if it no longer names us."""
        for _ in range(2):
            sent = self._clock()
            try:
                self._wrote(await self.leases.replace(released(current, timestamp=self._wall())), sent)
                return True
            except Conflict:
                latest = await self.leases.get(self.namespace, self.name)
                self._observed = observe(latest, self._observed, self._clock())
                self._lease = latest
                if latest is None or self.holder != self.identity:
                    return False
                current = latest
        raise Conflict("the lease kept changing while releasing it", status=409, reason="Conflict")

    async def _renew_on_own_thread(self, connect: LeaseConnection) -> None:
        """`keep_renewing()` on a thread with an event loop and a connection of its own, until leadership is
        lost (returns) or this is cancelled (the thread is stopped first).

        Why: the controllers' loop runs planner and admission passes that hold it for hundreds of
        milliseconds at a time, and on a busy machine a renewal queued behind them missed its deadline: under
        a 1,000-pod rolling update on two cores both replicas of a leader pair lost their 6 s leases within
        six seconds of each other and exited (the chaos suite's full profile, docs/chaos.md). Go's elector
        has its own goroutine; here Python switches threads every few milliseconds, so a renewal's small
        request goes through whatever the loop is doing."""
        caller = asyncio.get_running_loop()
        finished: asyncio.Future[None] = caller.create_future()
        started = threading.Event()
        own: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = []

        def report(error: BaseException | None) -> None:
            if finished.done():
                return
            if error is None:
                finished.set_result(None)
            else:
                finished.set_exception(error)

        async def renew() -> None:
            task = asyncio.current_task()
            assert task is not None
            own.append((asyncio.get_running_loop(), task))
            started.set()
            async with connect() as leases:
                await self.keep_renewing(leases)

        def thread() -> None:
            error: BaseException | None = None
            try:
                asyncio.run(renew())
            except asyncio.CancelledError:
                pass
            except BaseException as err:
                error = err
            finally:
                started.set()
                with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
                    caller.call_soon_threadsafe(report, error)

        renewer = threading.Thread(target=thread, name="leader-renew", daemon=True)
        renewer.start()
        try:
            await asyncio.shield(finished)
        except asyncio.CancelledError:
            await asyncio.to_thread(started.wait)
            for loop, task in own:
                with contextlib.suppress(RuntimeError):  # its loop already closed: the thread has ended
                    loop.call_soon_threadsafe(task.cancel)
            await asyncio.wait([finished])
            raise
        finally:
            await asyncio.to_thread(renewer.join)


@contextlib.asynccontextmanager
async def own_connection(configuration: Configuration) -> AsyncIterator[LeaseClient]:
    """A `KubeLeases` on a new connection pool for `configuration`, bound to the running loop, with the
    same transport as the operator's own client (`plain_session`)."""
    async with plain_session(ApiClient(configuration=configuration)) as api:
        yield KubeLeases(KubeClient(api))


async def _awaited(start: Callable[[], Awaitable[None]]) -> None:
    await start()


async def _stop(*tasks: asyncio.Task[Any], timeout: float | None = None) -> bool:
    """Cancel `tasks` and wait for them (their errors are logged, not raised); False if not all stopped in
    `timeout`."""
    for task in tasks:
        task.cancel()
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "task failed while stopping", exc_info=task.exception(), extra={"task": task.get_name()}
            )
    return not pending


__all__ = [
    "LEASES",
    "Action",
    "Decision",
    "KubeLeases",
    "LeaderElector",
    "LeaseClient",
    "LeaseConnection",
    "LeaseRecord",
    "Observed",
    "decide",
    "default_identity",
    "lease_namespace",
    "lease_seconds",
    "micro_time",
    "new_lease",
    "observe",
    "own_connection",
    "released",
    "renewed",
    "taken_over",
]

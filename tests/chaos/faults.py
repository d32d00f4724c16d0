"""The faults of the chaos suite. Each is injected right after a phase's request, while the operator works
on it, at seeded random moments; `inject` returns once the fault is over (healed) with what it did and the
evidence that it took, and the runner then waits for convergence.

A fault may set the cluster up for a whole lifecycle (`setup`/`teardown`: two operator replicas, a
throttled apiserver) and clean up after each phase's convergence (`after`: a deleted node comes back,
so the next phase has the same capacity). `windows` are the gang invariant's (release, bind) windows
in seconds (tests/gang.py): how long a gang may stay partly released or bound while this fault lasts
(docs/chaos.md says why each is what it is)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kube import resources
from localcluster import faults as cluster_faults
from localcluster import operator
from tests.chaos.lab import Lab
from tests.chaos.profiles import Profile
from tests.operator_pair import Pair, leader_pair

DEFAULT_WINDOWS = (3.0, 20.0)


def _quiet(_message: str) -> None:
    pass


@dataclass
class Injected:
    evidence: str
    lost: list[str] = field(default_factory=list)  # harm seen while injecting (the operator restarting …)


class Fault:
    name = "none"
    windows = DEFAULT_WINDOWS
    keeps_operator = True  # the session operator must run through it (same pid)

    async def setup(self, lab: Lab) -> None:
        pass

    async def inject(self, lab: Lab, phase: str) -> Injected:
        return Injected("nothing (the baseline)")

    async def after(self, lab: Lab) -> str:
        """Once the phase converged: undo what must not carry over; extra evidence."""
        return ""

    async def teardown(self, lab: Lab) -> None:
        pass


async def _clients_back(lab: Lab) -> None:
    """After the apiserver or etcd was restarted or stalled: the controller manager, scheduler and KWOK are
    restarted too. Their client backoff (up to 30 s, reset only after 2 quiet minutes) would otherwise grow
    with every restart until KWOK's fake kubelets miss their heartbeats, the node controller marks the nodes
    NotReady and their pods not Ready, and KWOK never makes those pods Ready again. Real kubelets (a
    heartbeat every 10 s, retried) do not do that: the rows would measure the fake nodes, not the operator."""
    await asyncio.to_thread(cluster_faults.restart_clients, lab.cluster)


async def _pause(lab: Lab, longest: float) -> float:
    """A seeded random moment within `longest` seconds from now."""
    delay = lab.rng.uniform(0, longest)
    await asyncio.sleep(delay)
    return delay


class OperatorKill(Fault):
    """SIGKILL the operator at random points (each restarted, as a Deployment would) while it works."""

    name = "operator SIGKILL"
    windows = (
        60.0,
        90.0,
    )  # a kill between recording a gang's admission and its release (docs/gang-admission.md)
    keeps_operator = False

    def __init__(self, per_phase: int) -> None:
        self.per_phase = per_phase
        self.total = 0

    async def inject(self, lab: Lab, phase: str) -> Injected:
        points = []
        started = time.monotonic()
        for _ in range(self.per_phase):
            await _pause(lab, 2.0)
            points.append(time.monotonic() - started)
            await asyncio.to_thread(operator.kill, lab.cluster.state_dir)
            await asyncio.to_thread(operator.start, lab.cluster.state_dir, _quiet)
        self.total += len(points)
        at = ", ".join(f"{p:.1f}" for p in points)
        return Injected(f"{len(points)} SIGKILLs at {at} s ({self.total} so far)")


class ComponentRestart(Fault):
    """Restart etcd or kube-apiserver while the operator keeps running."""

    windows = (30.0, 60.0)  # a gang's release may straddle the outage

    def __init__(self, component: str, hard: bool) -> None:
        self.component, self.hard = component, hard
        self.name = f"{component} restart"

    async def inject(self, lab: Lab, phase: str) -> Injected:
        await _pause(lab, 2.0)
        before = lab.cluster.components[self.component].pid
        started = time.monotonic()
        await asyncio.to_thread(cluster_faults.restart, lab.cluster, self.component, hard=self.hard)
        await _clients_back(lab)
        after = lab.cluster.components[self.component].pid
        how = "SIGKILL" if self.hard else "SIGTERM"
        return Injected(f"{how}, back in {time.monotonic() - started:.1f} s (pid {before} → {after})")


class LeaderFailover(Fault):
    """Two operator replicas under leader election; the leader is SIGKILLed mid-phase and restarted as
    the standby, so the other one takes over."""

    name = "leader failover"
    windows = (30.0, 60.0)  # the lease of a crashed leader runs out before the standby acts
    keeps_operator = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stack = contextlib.AsyncExitStack()
        self.pair: Pair | None = None

    async def setup(self, lab: Lab) -> None:
        self.pair = await self._stack.enter_async_context(leader_pair(lab.cluster, self.workdir))

    async def inject(self, lab: Lab, phase: str) -> Injected:
        assert self.pair is not None
        await _pause(lab, 2.0)
        killed = await asyncio.to_thread(self.pair.kill_leader)
        standby = "a" if killed == "b" else "b"
        started = time.monotonic()
        await self.pair.wait_leader(standby, timeout=60)
        took = time.monotonic() - started
        await self.pair.restart(killed)
        return Injected(f"leader {killed} killed; {standby} led {took:.1f} s later")

    async def teardown(self, lab: Lab) -> None:
        await self._stack.aclose()


class NodeLoss(Fault):
    """A pool node with pods of the workload is deleted (recreated once the phase converged), or goes
    NotReady for a while."""

    windows = (30.0, 90.0)  # a gang with pods on the lost node is broken until they are replaced

    def __init__(self, delete: bool, not_ready_seconds: float = 20.0) -> None:
        self.delete, self.hold = delete, not_ready_seconds
        self.name = "node deleted" if delete else "node NotReady"
        self._deleted: dict[str, Any] | None = None

    async def _busiest(self, lab: Lab) -> tuple[str, int]:
        pods, _ = await lab.kube.list_all(resources.POD, namespace=lab.namespace)
        counts: dict[str, int] = {}
        for p in pods:
            node = (p.get("spec") or {}).get("nodeName")
            if node in lab.pool.nodes:
                counts[node] = counts.get(node, 0) + 1
        if not counts:
            return lab.rng.choice(lab.pool.nodes), 0
        node = max(sorted(counts), key=lambda n: counts[n])
        return node, counts[node]

    async def inject(self, lab: Lab, phase: str) -> Injected:
        await _pause(lab, 2.0)
        node, pods = await self._busiest(lab)
        if self.delete:
            self._deleted = await cluster_faults.delete_node(lab.api, node)
            return Injected(f"{node} deleted with {pods} of its pods")
        await cluster_faults.not_ready(lab.api, node)
        await asyncio.sleep(self.hold)
        await cluster_faults.ready_again(lab.api, node)
        return Injected(f"{node} NotReady for {self.hold:.0f} s with {pods} of its pods")

    async def after(self, lab: Lab) -> str:
        if self._deleted is not None:
            await cluster_faults.recreate_node(lab.api, self._deleted)
            self._deleted = None
        return ""


class Throttled(Fault):
    """The apiserver restarted with low max-inflight limits (no priority and fairness) for the whole
    lifecycle: the operator, and everyone else, get 429s."""

    name = "API throttling (429)"
    windows = (30.0, 60.0)

    def __init__(self) -> None:
        self.original: list[str] | None = None
        self.served = 0.0

    async def setup(self, lab: Lab) -> None:
        argv = lab.cluster.components["kube-apiserver"].argv
        throttled = cluster_faults.throttled(argv)
        self.original = await asyncio.to_thread(
            cluster_faults.restart, lab.cluster, "kube-apiserver", argv=throttled
        )
        await _clients_back(lab)

    async def inject(self, lab: Lab, phase: str) -> Injected:
        self.served = await lab.apiserver_counter("apiserver_request_total", code="429")
        return Injected("max-inflight lowered")

    async def after(self, lab: Lab) -> str:
        now = await lab.apiserver_counter("apiserver_request_total", code="429")
        return f"; {now - self.served:.0f} requests answered 429"

    async def teardown(self, lab: Lab) -> None:
        if self.original is not None:
            await asyncio.to_thread(cluster_faults.restart, lab.cluster, "kube-apiserver", argv=self.original)
            await _clients_back(lab)


class SlowApiserver(Fault):
    """The apiserver process paused (SIGSTOP) 0.3 s of every 0.5 s for a while: every call slow."""

    name = "slow apiserver"
    windows = (30.0, 60.0)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def inject(self, lab: Lab, phase: str) -> Injected:
        await _pause(lab, 1.0)
        await cluster_faults.slow(
            lab.cluster, "kube-apiserver", paused=0.3, period=0.5, duration=self.seconds
        )
        return Injected(f"paused 60% of the time for {self.seconds:.0f} s")


class WatchExpiry(Fault):
    """etcd compacted to its head and the apiserver restarted, a few times: every watch resumes from a
    compacted resourceVersion and gets 410 Gone."""

    name = "410 Gone storm"
    windows = (30.0, 60.0)

    def __init__(self, storms: int) -> None:
        self.storms = storms

    async def inject(self, lab: Lab, phase: str) -> Injected:
        before = await lab.operator_counter("grove_informer_relists_total", reason="expired")
        for _ in range(self.storms):
            await _pause(lab, 2.0)
            await asyncio.to_thread(cluster_faults.expire_watches, lab.cluster)
        # Once, after the last storm: the controller manager exits when the apiserver goes away while it
        # starts (it builds a client per controller then), which the next storm would make it do.
        await _clients_back(lab)
        after = await lab.operator_counter("grove_informer_relists_total", reason="expired")
        return Injected(f"{self.storms} storms; the operator relisted {after - before:.0f} times after 410")


def catalogue(profile: Profile, workdir: Path) -> list[Fault]:
    """Every fault, the baseline first."""
    return [
        Fault(),
        OperatorKill(profile.kills_per_phase),
        ComponentRestart("kube-apiserver", hard=False),
        ComponentRestart("etcd", hard=True),
        LeaderFailover(workdir),
        NodeLoss(delete=True),
        NodeLoss(delete=False, not_ready_seconds=profile.not_ready_seconds),
        Throttled(),
        SlowApiserver(profile.slow_seconds),
        WatchExpiry(profile.storms),
    ]

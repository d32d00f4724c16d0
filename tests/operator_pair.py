"""Two grove-operator replicas under leader election, in place of the session operator (fault injection:
leader failover).

    async with leader_pair(cluster, tmp_path) as pair:
        assert await pair.leader() == "b"
        killed = pair.kill_leader()                 # SIGKILL: a crash, the Lease still names it
        started = await pair.wait_leader("a", 15)   # the standby took over and runs the controllers

On enter the session operator is stopped (`localcluster.operator.stop`); replica "b" starts first, a full
operator on ports and a certificate directory of its own, and is waited for until it holds the Lease and
runs its controllers; then replica "a" starts with the session operator's own ports and certificate
directory, so the cluster's webhook configurations (which point at the session operator's URL) are served by
"a" throughout, and is waited for until it stands by. Both run as the operator's ServiceAccount through the
session's operator kubeconfig (`tests.second_operator.launch`), with `leaderElection` enabled and short
timings (`lease_seconds`, renewDeadline 2/3 and retryPeriod 1/6 of it).

Identities: the operator names itself `<hostname>_<uuid4>` (`grove_operator.leader.default_identity`), the
same host for both replicas here, so a replica is recognised by the identity its own log states when it
starts campaigning ("campaigning for the lease", field `identity`); a restarted replica has a new one.
Leadership: the Lease's holderIdentity names the replica *and* that replica's log says "started leading"
(logged once the Lease is written, right before the controllers are started).

On exit (also on failure) both replicas are stopped (SIGTERM, SIGKILL after a grace period; a SIGTERMed
leader releases the Lease), the Lease is deleted if it did not exist before, and the session operator is
started again (`localcluster.operator.start`). The session operator runs without leader election: the
Lease, released or not, does not concern it. Each replica's logs are kept in `<workdir>/<name>/` and
`Pair.logs()` gives their tails for assertion messages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoordinationV1Api, V1Lease
from kubernetes_asyncio.client.exceptions import ApiException

from grove_api.operatorconfig import LeaderElection
from localcluster import operator as grove_operator
from localcluster import ports
from localcluster.state import ClusterInfo
from tests.second_operator import SecondOperator, start_operator

LEASE_NAME = LeaderElection().resource_name
LEASE_NAMESPACE = grove_operator.NAMESPACE  # leaderElection.resourceNamespace empty: the operator's own
LOG_TAIL = 40  # lines of each replica log in `Pair.logs()`


def _parse_ts(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


@dataclass
class Leadership:
    """One spell of leading: replica, identity, wall-clock start and end (None: still leading)."""

    name: str
    identity: str
    started: float
    ended: float | None


@dataclass
class Replica:
    """One replica: its current process (one per incarnation, each with a log of its own)."""

    name: str
    workdir: Path
    session_ports: bool  # "a": the session operator's ports and certificates
    process: SecondOperator | None = None
    incarnation: int = 0
    killed_at: dict[int, float] = field(default_factory=dict)  # incarnation -> wall time of its SIGKILL

    def log_path(self, incarnation: int | None = None) -> Path:
        return self.workdir / f"operator.{incarnation or self.incarnation}.log"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive

    def records(self, incarnation: int | None = None) -> list[dict[str, Any]]:
        """The JSON log records of an incarnation (default: the current one)."""
        path = self.log_path(incarnation)
        out: list[dict[str, Any]] = []
        with suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    with suppress(ValueError):
                        out.append(json.loads(line))
        return out

    def identity(self, incarnation: int | None = None) -> str:
        """The Lease identity of an incarnation ("" until it campaigns)."""
        for record in self.records(incarnation):
            if record.get("msg") == "campaigning for the lease" and record.get("identity"):
                return str(record["identity"])
        return ""

    def _leader_record(self, msg: str, incarnation: int | None = None) -> dict[str, Any] | None:
        identity = self.identity(incarnation)
        for record in self.records(incarnation):
            if record.get("msg") == msg and identity and record.get("identity") == identity:
                return record
        return None

    def started_leading(self, incarnation: int | None = None) -> float | None:
        """Wall-clock time this incarnation started leading (its log), None if it did not."""
        record = self._leader_record("started leading", incarnation)
        return _parse_ts(record["ts"]) if record else None

    def leads(self) -> bool:
        """Alive, started leading and not stopped (by its own log)."""
        return (
            self.alive
            and self.started_leading() is not None
            and self._leader_record("stopped leading") is None
        )

    def standing_by_for(self) -> str:
        """The holder this incarnation last reported standing by for ("" if none)."""
        holder = ""
        for record in self.records():
            if record.get("msg") == "the lease is held by another replica; standing by":
                holder = str(record.get("holder") or "")
        return holder

    def leadership(self) -> list[Leadership]:
        """Every spell of leading of every incarnation (ended: SIGKILL, "stopped leading" or the last line
        of a process that exited)."""
        out: list[Leadership] = []
        for n in range(1, self.incarnation + 1):
            started = self.started_leading(n)
            if started is None:
                continue
            ended: float | None = self.killed_at.get(n)
            stopped = self._leader_record("stopped leading", n)
            if stopped is not None:
                ended = _parse_ts(stopped["ts"])
            elif ended is None and (n < self.incarnation or not self.alive):
                records = self.records(n)
                ended = _parse_ts(records[-1]["ts"]) if records else started
            out.append(Leadership(self.name, self.identity(n), started, ended))
        return out

    def log_tail(self) -> str:
        parts = []
        for n in range(1, self.incarnation + 1):
            path = self.log_path(n)
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                lines = ["(no log)"]
            parts.append(f"--- replica {self.name}, incarnation {n}: {path} (last {LOG_TAIL} lines)")
            parts.extend(lines[-LOG_TAIL:])
        return "\n".join(parts)


class Pair:
    """Replicas "a" and "b" of the operator under leader election (see the module doc)."""

    def __init__(self, cluster: ClusterInfo, workdir: Path, api: ApiClient, *, lease_seconds: float) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.api = api
        self.lease_seconds = lease_seconds
        self.replicas = {
            "a": Replica("a", workdir / "a", session_ports=True),
            "b": Replica("b", workdir / "b", session_ports=False),
        }

    # -- configuration --
    def _configure(self, config: dict[str, Any]) -> None:
        config["leaderElection"] = {
            "enabled": True,
            "leaseDuration": self.lease_seconds,
            "renewDeadline": self.lease_seconds * 2 / 3,
            "retryPeriod": self.lease_seconds / 6,
            "resourceName": LEASE_NAME,
        }

    # -- state --
    def logs(self) -> str:
        """The tails of both replicas' logs (every incarnation), for assertion messages."""
        return "\n".join(r.log_tail() for r in self.replicas.values())

    def _fail(self, message: str) -> AssertionError:
        return AssertionError(f"{message}\n{self.logs()}")

    async def lease(self) -> V1Lease | None:
        try:
            lease: V1Lease = await CoordinationV1Api(self.api).read_namespaced_lease(
                LEASE_NAME, LEASE_NAMESPACE
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return lease

    def name_of(self, identity: str) -> str:
        """The replica one of whose incarnations had `identity` ("" if none)."""
        for name, replica in self.replicas.items():
            for n in range(replica.incarnation, 0, -1):
                if identity and replica.identity(n) == identity:
                    return name
        return ""

    async def leader(self) -> str:
        """ "a" or "b": the replica the Lease's holderIdentity names (any incarnation, dead or alive); ""
        when it names neither (no Lease, released, a stranger)."""
        lease = await self.lease()
        holder = lease.spec.holder_identity if lease is not None and lease.spec is not None else ""
        return self.name_of(holder or "")

    def leadership(self) -> list[Leadership]:
        """Every spell of leading so far, by start time."""
        spells = [s for r in self.replicas.values() for s in r.leadership()]
        return sorted(spells, key=lambda s: s.started)

    def overlaps(self) -> list[tuple[Leadership, Leadership]]:
        """Spells of leading that overlapped in time (two leaders at once): should be empty."""
        spells = self.leadership()
        return [
            (first, second)
            for i, first in enumerate(spells)
            for second in spells[i + 1 :]
            if first.ended is None or second.started < first.ended
        ]

    # -- faults --
    def kill_leader(self) -> str:
        """SIGKILL the replica that leads (by its log), as a crash: nothing is released, the Lease keeps
        naming it until a standby sees it expire. Its name."""
        leaders = [name for name, r in self.replicas.items() if r.leads()]
        if len(leaders) != 1:
            raise self._fail(f"expected exactly one leading replica, found {leaders}")
        name = leaders[0]
        self.kill(name)
        return name

    def kill(self, name: str) -> None:
        """SIGKILL replica `name` (a crash)."""
        replica = self.replicas[name]
        assert replica.process is not None, f"replica {name} was never started"
        replica.killed_at[replica.incarnation] = time.time()
        replica.process.kill()

    def killed_at(self, name: str) -> float | None:
        """Wall-clock time of the last SIGKILL of `name` (None if never killed)."""
        kills = self.replicas[name].killed_at
        return kills[max(kills)] if kills else None

    # -- waiting --
    async def wait_leader(self, name: str, timeout: float) -> float:
        """Until `name` holds the Lease (holderIdentity is its identity) and runs its controllers (its log
        says "started leading"); the wall-clock time it started leading, per its log."""
        replica = self.replicas[name]
        deadline = time.monotonic() + timeout
        while True:
            identity = replica.identity()
            started = replica.started_leading()
            if identity and started is not None:
                lease = await self.lease()
                if lease is not None and lease.spec is not None and lease.spec.holder_identity == identity:
                    return started
            if not replica.alive:
                raise self._fail(f"replica {name} is not running while waiting for it to lead")
            if time.monotonic() >= deadline:
                raise self._fail(
                    f"replica {name} did not lead within {timeout:.0f}s "
                    f"(Lease holder: {await self.leader() or 'neither replica'})"
                )
            await asyncio.sleep(0.1)

    async def wait_standby(self, name: str, timeout: float) -> None:
        """Until `name` campaigns and stands by for the other replica's identity."""
        replica = self.replicas[name]
        other = self.replicas["b" if name == "a" else "a"]
        deadline = time.monotonic() + timeout
        while True:
            holder = replica.standing_by_for()
            if holder and holder == other.identity():
                return
            if not replica.alive:
                raise self._fail(f"replica {name} exited while starting as a standby")
            if time.monotonic() >= deadline:
                raise self._fail(f"replica {name} did not stand by within {timeout:.0f}s")
            await asyncio.sleep(0.1)

    # -- processes --
    async def start(self, name: str) -> None:
        """Start (a new incarnation of) replica `name`, ready (/readyz 200) when it returns."""
        replica = self.replicas[name]
        if replica.alive:
            raise self._fail(f"replica {name} is running already")
        replica.incarnation += 1
        try:
            replica.process = await asyncio.to_thread(
                start_operator,
                self.cluster,
                replica.workdir,
                self._configure,
                webhooks_only=False,
                own_ports=not replica.session_ports,
                log=replica.log_path(),
                timeout=60.0,
            )
        except AssertionError as err:
            raise self._fail(f"replica {name} did not get ready: {str(err)[-200:]}") from None

    async def restart(self, name: str, timeout: float = 60.0) -> None:
        """Bring a killed (or stopped) replica back: a new process, a new identity, waited for until it
        stands by for the leader (or leads, if nobody else holds the Lease)."""
        await self.start(name)
        replica = self.replicas[name]
        other = self.replicas["b" if name == "a" else "a"]
        deadline = time.monotonic() + timeout
        while not (replica.started_leading() is not None or replica.standing_by_for() == other.identity()):
            if not replica.alive:
                raise self._fail(f"replica {name} exited after its restart")
            if time.monotonic() >= deadline:
                raise self._fail(f"replica {name} neither leads nor stands by {timeout:.0f}s after restart")
            await asyncio.sleep(0.1)

    async def stop(self, name: str, grace: float = 20.0) -> None:
        """SIGTERM replica `name` (a leader releases the Lease), SIGKILL after `grace` seconds."""
        replica = self.replicas[name]
        if replica.process is not None and replica.alive:
            await asyncio.to_thread(replica.process.terminate, grace)


async def _ports_released(cluster: ClusterInfo, timeout: float = 15.0) -> None:
    """Until the session operator's ports are free again (replica "a" and its webhook child gone), so that
    it restarts on its own ports; it would pick new ones otherwise, which also works."""
    config = grove_operator.load_state(cluster.state_dir)
    wanted = [p for p in (config.webhook_port, config.health_port) if p] if config else []
    deadline = time.monotonic() + timeout
    while not all(ports.is_free(p, reuse_address=True) for p in wanted) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


@asynccontextmanager
async def leader_pair(
    cluster: ClusterInfo, workdir: Path, *, lease_seconds: float = 6.0
) -> AsyncIterator[Pair]:
    """Replica "b" leading, replica "a" standing by (and serving the cluster's webhooks), in place of the
    session operator, which is back when the block is left (see the module doc)."""
    async with ApiClient(configuration=cluster.api_configuration()) as api:
        pair = Pair(cluster, workdir, api, lease_seconds=lease_seconds)
        lease_existed = await pair.lease() is not None
        await asyncio.to_thread(grove_operator.stop, cluster.state_dir)
        try:
            await pair.start("b")
            # A Lease left by a crashed holder is taken once it expires (by the holder's duration).
            await pair.wait_leader("b", timeout=max(30.0, 3 * lease_seconds))
            await pair.start("a")
            await pair.wait_standby("a", timeout=30.0)
            yield pair
        finally:
            try:
                # The standby first (nothing to hand over), then the leader (it releases the Lease).
                leading = [n for n, r in pair.replicas.items() if r.leads()]
                for name in sorted(pair.replicas, key=lambda n: n in leading):
                    await pair.stop(name)
                if not lease_existed:
                    with suppress(ApiException):
                        await CoordinationV1Api(api).delete_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE)
                await _ports_released(cluster)
            finally:
                await asyncio.to_thread(grove_operator.start, cluster.state_dir, lambda _msg: None)

"""Gang termination (docs/termination-and-updates.md): Grove's e2e GT-1 to GT-6 (terminationDelay 10 s) on
private KWOK node pools where each node fits exactly one pod. Beyond Grove's suite: a gang that breaks right
after it started is still recycled (Grove's "healthy once" guess, a transition more than 5 s after creation,
misses it on a fast cluster), a gang that never had capacity is not, a PodClique scaled with `kubectl scale
pclq` comes back with its template's replicas, and the Events and GangTerminationInProgress are visible.

A pod failure is a pod deletion. To keep its replacement from simply running again, every node of the pool
is cordoned first (running pods stay), so the replacement stays gated and the clique stays below its
minimum; uncordoning afterwards shows the recreated gangs are admitted again, whole.

Gang invariant windows. The invariant (tests/gang.py) fails a test when a gang's minimum is partly
released or bound for longer than its windows. Killing a pod without capacity leaves its gang partly bound
on purpose until gang termination recreates it: that is terminationDelay (10 s) plus the reaction of the
operator and, where the test then restores capacity, the re-admission. The module's windows are therefore
terminationDelay + 20 s (30 s): long enough for that on a loaded 2-core machine, and still short enough to
catch a gang that termination or re-admission leaves partly admitted. GT-4 alone follows Grove's sequence
in which the base gang (pc-a + scaling-group replica 0) stays partly bound through two termination delays
and a negative check (its replica 0 is recreated without capacity while pc-a keeps running, which is
correct: only the scaling-group replica was recycled); it gets 3 x terminationDelay + 25 s (55 s).

Negative checks ("nothing is recycled") poll for terminationDelay + 5 s and fail at the first change.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from grove_api import constants as c
from tests.gang import GangInvariant, Pool, bound_node, gated, node_pool, pod_dicts, wl1, wl2, workload
from tests.kube import kubectl
from tests.podtracker import condition
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("gang_invariant")

DELAY = 10.0
GT: dict[str, Any] = {"termination_delay": "10s"}  # the -gt workloads
WINDOW = DELAY + 20  # gang invariant windows (see the module docstring)
GT4_WINDOW = 3 * DELAY + 25
HOLD = DELAY + 5  # how long "nothing happens" is watched
REACT = DELAY + 50  # bound on any wait for termination or recovery (generous: shared 2-core machine)
EARLY = 1.0  # lastTransitionTime has second precision: a breach may count from up to 1 s before it began

# Pods per PodClique of one WL1/WL2 replica (PodClique name without "<pcs>-<i>-").
FULL = {"pc-a": 2, "sg-x-0-pc-b": 1, "sg-x-0-pc-c": 3, "sg-x-1-pc-b": 1, "sg-x-1-pc-c": 3}
GROUP_0 = ("sg-x-0-pc-b", "sg-x-0-pc-c")
GROUP_1 = ("sg-x-1-pc-b", "sg-x-1-pc-c")

REPLICA_DELETED = "PodCliqueSetReplicaDeleteSuccessful"
GROUP_REPLICA_DELETED = "PodCliqueScalingGroupReplicaDeleteSuccessful"


@pytest.fixture
def gang_windows() -> tuple[float, float]:
    return (WINDOW, WINDOW)


def ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conds)


@dataclass
class Gt:
    """One PodCliqueSet (replica 0) on a private pool, and what the tests do to it."""

    api: client.ApiClient
    kubeconfig: Path
    namespace: str
    pool: Pool
    name: str = "wl"

    def apply(self, doc: dict[str, Any]) -> None:
        kubectl(self.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))

    def kubectl(self, *args: str) -> str:
        return kubectl(self.kubeconfig, "-n", self.namespace, *args)

    def pclq(self, clique: str) -> str:
        return f"{self.name}-0-{clique}"

    # --- observing ------------------------------------------------------------------------------------

    async def pods(self, cliques: Iterable[str] = FULL) -> dict[str, list[dict[str, Any]]]:
        """Live pods of this PodCliqueSet by clique (the PodClique name without "<pcs>-0-")."""
        wanted = {self.pclq(q): q for q in cliques}
        out: dict[str, list[dict[str, Any]]] = {q: [] for q in wanted.values()}
        for pod in await pod_dicts(self.api, self.namespace):
            q = wanted.get((pod["metadata"].get("labels") or {}).get(c.LABEL_PODCLIQUE, ""))
            if q is not None:
                out[q].append(pod)
        return out

    async def uids(self, cliques: Iterable[str] = FULL) -> dict[str, str]:
        """Pod name -> uid of the live pods of these cliques."""
        return {
            p["metadata"]["name"]: p["metadata"]["uid"]
            for pods in (await self.pods(cliques)).values()
            for p in pods
        }

    async def get(self, plural: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, plural, name
        )
        return obj

    async def clique_uids(self, cliques: Iterable[str] = FULL) -> dict[str, str]:
        listed = await client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, c.PLURAL_PODCLIQUE
        )
        names = {self.pclq(q) for q in cliques}
        return {
            o["metadata"]["name"]: o["metadata"]["uid"]
            for o in listed["items"]
            if o["metadata"]["name"] in names and not o["metadata"].get("deletionTimestamp")
        }

    async def events(self, name: str, reason: str) -> list[dict[str, Any]]:
        listed = await client.CoreV1Api(self.api).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name},reason={reason}"
        )
        items: list[dict[str, Any]] = self.api.sanitize_for_serialization(listed)["items"]
        return items

    # --- waiting --------------------------------------------------------------------------------------

    async def running(self, counts: dict[str, int] = FULL) -> dict[str, str]:
        """Exactly `counts` live pods per clique, every one bound and Ready; their uids."""
        seen: list[Any] = []

        async def check() -> dict[str, str] | None:
            pods = await self.pods(counts)
            seen[:] = [{q: (len(ps), sum(ready(p) for p in ps)) for q, ps in pods.items()}]
            ok = all(
                len(ps) == counts[q] and all(bound_node(p) and ready(p) for p in ps) for q, ps in pods.items()
            )
            return (
                {p["metadata"]["name"]: p["metadata"]["uid"] for ps in pods.values() for p in ps}
                if ok
                else None
            )

        try:
            found = await until(f"{self.name}: {counts} pods running and Ready", check, timeout=REACT)
        except pytest.fail.Exception as err:
            raise AssertionError(f"{err}; last seen (pods, ready) per clique: {seen}") from None
        assert found is not None
        return found

    async def scheduled(self, clique: str) -> None:
        """The PodClique says its minimum is scheduled (what makes it "healthy once")."""

        async def check() -> bool:
            obj = await self.get(c.PLURAL_PODCLIQUE, self.pclq(clique))
            found = condition(obj, c.CONDITION_PODCLIQUE_SCHEDULED)
            return bool(found and found["status"] == "True")

        await until(f"{self.pclq(clique)} PodCliqueScheduled=True", check, timeout=REACT)

    async def kill(self, clique: str, count: int) -> tuple[list[str], float]:
        """Delete `count` running pods of a clique at once; the names and the time of the kill. Waits until
        the replacements exist, gated (no capacity: the pool is cordoned)."""
        before = (await self.pods([clique]))[clique]
        victims = [p["metadata"]["name"] for p in before if bound_node(p)][:count]
        assert len(victims) == count, f"{clique}: only {len(victims)} running pods to kill"
        core = client.CoreV1Api(self.api)
        at = time.monotonic()
        await asyncio.gather(
            *(core.delete_namespaced_pod(n, self.namespace, grace_period_seconds=0) for n in victims)
        )

        async def replaced() -> bool:
            pods = (await self.pods([clique]))[clique]
            names = {p["metadata"]["name"] for p in pods}
            return len(pods) == len(before) and not names & set(victims)

        await until(f"replacements of {victims}", replaced, timeout=30)
        return victims, at

    async def hold(self, uids: dict[str, str], seconds: float = HOLD) -> None:
        """Every pod of `uids` stays, with its uid, for `seconds`: nothing is recycled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            now = await self.uids()
            gone = sorted(n for n, u in uids.items() if now.get(n) != u)
            assert not gone, f"pods recycled although no gang was below its minimum: {gone}"
            await asyncio.sleep(0.5)

    async def recreated(
        self, old_pods: dict[str, str], old_cliques: dict[str, str], killed_at: float, cliques: Iterable[str]
    ) -> dict[str, str]:
        """Gang termination deletes every pod in `old_pods` (the survivors of the kill) no earlier than
        terminationDelay after `killed_at`; the PodCliques of `cliques` come back as new objects, with new
        pods in their template's numbers. Returns the new pods' uids."""
        cliques = tuple(cliques)

        async def started() -> bool:
            now = await self.uids()
            return any(now.get(n) != u for n, u in old_pods.items())

        await until("gang termination to delete the gang's pods", started, timeout=REACT)
        elapsed = time.monotonic() - killed_at
        assert elapsed >= DELAY - EARLY, f"terminated {elapsed:.1f}s after the kill, before terminationDelay"

        seen: list[Any] = []

        async def done() -> dict[str, str] | None:
            pods = await self.pods(cliques)
            fresh = await self.clique_uids(cliques)
            olds = set(old_pods.values())
            kept = sorted(
                p["metadata"]["name"] for ps in pods.values() for p in ps if p["metadata"]["uid"] in olds
            )
            same = sorted(n for n, u in fresh.items() if u in old_cliques.values())
            seen[:] = [{q: len(ps) for q, ps in pods.items()}, kept, sorted(fresh), same]
            ok = (
                all(len(pods[q]) == FULL[q] for q in cliques)
                and not kept
                and set(fresh) == {self.pclq(q) for q in cliques}
                and not same
            )
            return (
                {p["metadata"]["name"]: p["metadata"]["uid"] for ps in pods.values() for p in ps}
                if ok
                else None
            )

        try:
            found = await until(f"{cliques} recreated from the template", done, timeout=REACT)
        except pytest.fail.Exception as err:
            raise AssertionError(
                f"{err}; last seen: pods per clique, old pods kept, PodCliques, old PodCliques kept: {seen}"
            ) from None
        assert found is not None
        return found

    async def event(self, name: str, reason: str, count: int = 1) -> list[dict[str, Any]]:
        """At least `count` Warning Events `reason` on object `name` (aggregated Events count too)."""

        async def check() -> list[dict[str, Any]] | None:
            items = [e for e in await self.events(name, reason) if e.get("type") == "Warning"]
            return items if sum(e.get("count") or 1 for e in items) >= count else None

        found = await until(f"{count} Warning Event(s) {reason} on {name}", check, timeout=30)
        assert found is not None
        return found


@pytest.fixture
async def scenario(
    cluster: Any, api_client: client.ApiClient, namespace: str, gang_invariant: GangInvariant
) -> AsyncIterator[Callable[[int], Awaitable[Gt]]]:
    """`await scenario(nodes)`: a pool of that many nodes, all schedulable."""
    pools: list[Any] = []

    async def start(size: int) -> Gt:
        pool_cm = node_pool(api_client, f"p{uuid.uuid4().hex[:6]}", size)
        pool = await pool_cm.__aenter__()
        pools.append(pool_cm)
        await pool.uncordon(size)
        return Gt(api_client, Path(cluster.kubeconfig), namespace, pool)

    yield start
    assert gang_invariant.events > 0, "the invariant checker saw no pod events"
    for pool_cm in reversed(pools):
        await pool_cm.__aexit__(None, None, None)


async def cordon_all(s: Gt) -> None:
    await s.pool.cordon(len(s.pool.schedulable))


# --- PodCliqueSet replica termination -------------------------------------------------------------------


async def test_gt1_gt2_replica_recreated(scenario: Callable[[int], Awaitable[Gt]]) -> None:
    """WL1-gt. GT-1, killed right after start: a pc-a pod (min 2) dies within moments of the gang running
    (Grove's 5 s heuristic would not count it: its PodClique was created a few seconds before); after the
    delay every PodClique and pod of the replica is recreated, the replica's scaling group says
    GangTerminationInProgress, the PodCliqueSet has the Warning Event; with capacity back it runs again,
    the same recreated pods (no second termination). GT-2: one sg-x-0-pc-c pod (min 3) dies, so the
    scaling group falls below its minAvailable 2; the whole replica is recreated, and pc-a, scaled to 3
    with `kubectl scale pclq` before, comes back with its template's 2 replicas."""
    s = await scenario(11)
    await s.pool.cordon(1)  # 10 nodes for 10 pods
    s.apply(wl1(s.name, s.namespace, s.pool.name, **GT))

    async def all_running() -> bool:
        pods = await s.pods()
        return all(len(ps) == FULL[q] and all(ready(p) for p in ps) for q, ps in pods.items())

    await until("WL1 running", all_running, timeout=REACT, interval=0.1)
    running_at = time.monotonic()
    await s.scheduled("pc-a")
    await cordon_all(s)
    survivors = await s.uids()
    pclqs = await s.clique_uids()
    pcsg = f"{s.name}-0-sg-x"
    killed, at = await s.kill("pc-a", 1)
    assert at - running_at < 3, f"killed {at - running_at:.1f}s after the gang ran: not 'right after start'"
    survivors = {n: u for n, u in survivors.items() if n not in killed}
    recreated = await s.recreated(survivors, pclqs, at, FULL)
    assert all(gated(p) for ps in (await s.pods()).values() for p in ps), "recreated pods placed without room"

    # What a user sees: the Event on the PodCliqueSet and the flag on the replica's scaling group.
    (ev,) = (await s.event(s.name, REPLICA_DELETED))[:1]
    assert ev["involvedObject"]["kind"] == c.KIND_PODCLIQUESET and "replica 0" in ev["message"], ev
    assert REPLICA_DELETED in s.kubectl("describe", "pcs", s.name)
    group = await s.get(c.PLURAL_PODCLIQUESCALINGGROUP, pcsg)
    flag = condition(group, c.CONDITION_GANG_TERMINATION_IN_PROGRESS)
    assert flag is not None and flag["status"] == "True", group["status"]

    await s.pool.uncordon(10)
    assert await s.running() == recreated, "the recreated gang was recycled again"

    async def flag_cleared() -> bool:
        obj = await s.get(c.PLURAL_PODCLIQUESCALINGGROUP, pcsg)
        return condition(obj, c.CONDITION_GANG_TERMINATION_IN_PROGRESS) is None

    await until(f"{pcsg} GangTerminationInProgress cleared", flag_cleared, timeout=30)

    # GT-2, with pc-a scaled beyond its template first.
    s.kubectl("scale", "pclq", s.pclq("pc-a"), "--replicas=3")
    await s.pool.uncordon(1)
    await s.running({**FULL, "pc-a": 3})
    await s.scheduled("sg-x-0-pc-c")
    await cordon_all(s)
    survivors = await s.uids()
    pclqs = await s.clique_uids()
    killed, at = await s.kill("sg-x-0-pc-c", 1)
    survivors = {n: u for n, u in survivors.items() if n not in killed}
    await s.recreated(survivors, pclqs, at, FULL)
    pc_a = await s.get(c.PLURAL_PODCLIQUE, s.pclq("pc-a"))
    assert pc_a["spec"]["replicas"] == 2, pc_a["spec"]
    await s.event(s.name, REPLICA_DELETED, count=2)
    await s.pool.uncordon(10)
    await s.running()


async def test_gt3_standalone_clique_below_minimum(scenario: Callable[[int], Awaitable[Gt]]) -> None:
    """WL2-gt. GT-3: one of two pc-a pods (min 1) dies: nothing is recycled; the other dies too: the whole
    replica is recreated. Alongside, a WL1-gt PodCliqueSet that never got any capacity (its gang gated
    from the start, MinAvailableBreached=True) is left alone: it was never healthy."""
    s = await scenario(10)
    idle = Gt(s.api, s.kubeconfig, s.namespace, s.pool, name="idle")
    s.apply(wl2(s.name, s.namespace, s.pool.name, **GT))
    idle.apply(wl1(idle.name, s.namespace, f"nowhere-{uuid.uuid4().hex[:6]}", **GT))
    await s.running()
    await s.scheduled("pc-a")

    async def idle_breached() -> bool:
        pods = await idle.pods()
        if not all(len(ps) == FULL[q] and all(gated(p) for p in ps) for q, ps in pods.items()):
            return False
        objs = [await idle.get(c.PLURAL_PODCLIQUE, idle.pclq(q)) for q in FULL]
        objs.append(await idle.get(c.PLURAL_PODCLIQUESCALINGGROUP, f"{idle.name}-0-sg-x"))
        found = [condition(o, c.CONDITION_MIN_AVAILABLE_BREACHED) for o in objs]
        return all(x is not None and x["status"] == "True" for x in found)

    await until("the idle PodCliqueSet MinAvailableBreached=True everywhere", idle_breached, timeout=REACT)
    idle_since = time.monotonic()
    idle_pods = await idle.uids()

    await cordon_all(s)
    everything = await s.uids()
    pclqs = await s.clique_uids()
    killed, _ = await s.kill("pc-a", 1)
    everything = {n: u for n, u in everything.items() if n not in killed}
    await s.hold(everything)
    survivors = await s.uids()
    killed, at = await s.kill("pc-a", 1)
    survivors = {n: u for n, u in survivors.items() if n not in killed}
    await s.recreated(survivors, pclqs, at, FULL)
    await s.event(s.name, REPLICA_DELETED)

    # The never-healthy gang: untouched well past its delay.
    await asyncio.sleep(max(0.0, idle_since + HOLD - time.monotonic()))
    assert await idle.uids() == idle_pods, "a gang that never had capacity was recycled"
    assert await idle.events(idle.name, REPLICA_DELETED) == []

    await s.pool.uncordon(10)
    await s.running()


# --- scaling-group replica termination ------------------------------------------------------------------


@pytest.mark.parametrize("gang_windows", [(GT4_WINDOW, GT4_WINDOW)], ids=["long-windows"])
async def test_gt4_group_replica_then_whole_replica(scenario: Callable[[int], Awaitable[Gt]]) -> None:
    """WL2-gt. GT-4: one of three sg-x-0-pc-c pods (min 1) dies: nothing; the other two die: only scaling
    group replica 0 is recreated (pc-a and sg-x-1 keep their pods). With replica 0 still waiting for
    capacity: one sg-x-1-pc-c pod dies: no PodCliqueSet-level termination; its other two die: no healthy
    scaling-group replica is left (minAvailable 1), the whole replica is recreated. Then it recovers."""
    s = await scenario(10)
    s.apply(wl2(s.name, s.namespace, s.pool.name, **GT))
    await s.running()
    await s.scheduled("sg-x-0-pc-c")
    await cordon_all(s)
    everything = await s.uids()
    killed, _ = await s.kill("sg-x-0-pc-c", 1)
    await s.hold({n: u for n, u in everything.items() if n not in killed})

    others = await s.uids(["pc-a", *GROUP_1])
    group_0 = await s.uids(GROUP_0)
    killed, at = await s.kill("sg-x-0-pc-c", 2)
    survivors = {n: u for n, u in group_0.items() if n not in killed}
    await s.recreated(survivors, await s.clique_uids(GROUP_0), at, GROUP_0)
    assert await s.uids(["pc-a", *GROUP_1]) == others, (
        "gang termination reached beyond scaling-group replica 0"
    )
    for name in (f"{s.name}-0-sg-x", s.name):
        (ev,) = (await s.event(name, GROUP_REPLICA_DELETED))[:1]
        assert "replica 0" in ev["message"], ev
    assert await s.events(s.name, REPLICA_DELETED) == []

    pclqs = await s.clique_uids()
    everything = await s.uids()
    killed, _ = await s.kill("sg-x-1-pc-c", 1)
    await s.hold({n: u for n, u in everything.items() if n not in killed})
    survivors = await s.uids(["pc-a", *GROUP_1])
    killed, at = await s.kill("sg-x-1-pc-c", 2)
    survivors = {n: u for n, u in survivors.items() if n not in killed}
    await s.recreated(survivors, pclqs, at, FULL)
    await s.event(s.name, REPLICA_DELETED)

    await s.pool.uncordon(10)
    await s.running()


async def test_gt5_only_the_group_replica(scenario: Callable[[int], Awaitable[Gt]]) -> None:
    """WL5-gt (WL2 with pc-c min 3). GT-5: all three sg-x-0-pc-c pods die: only scaling-group replica 0 is
    recreated; sg-x-1 and pc-a keep their pods, and nothing more happens; with capacity back it recovers."""
    s = await scenario(10)
    s.apply(workload(s.name, s.namespace, s.pool.name, mins=(1, 1, 3), group_min=1, **GT))  # WL5-gt
    await s.running()
    await s.scheduled("sg-x-0-pc-c")
    await cordon_all(s)
    others = await s.uids(["pc-a", *GROUP_1])
    group_0 = await s.uids(GROUP_0)
    killed, at = await s.kill("sg-x-0-pc-c", 3)
    survivors = {n: u for n, u in group_0.items() if n not in killed}
    await s.recreated(survivors, await s.clique_uids(GROUP_0), at, GROUP_0)
    await s.event(f"{s.name}-0-sg-x", GROUP_REPLICA_DELETED)
    await s.hold(others, 5)
    assert await s.events(s.name, REPLICA_DELETED) == []
    await s.pool.uncordon(10)
    await s.running()
    assert await s.uids(["pc-a", *GROUP_1]) == others


# --- no termination -------------------------------------------------------------------------------------


async def test_gt6_pod_loss_above_minimum(scenario: Callable[[int], Awaitable[Gt]]) -> None:
    """WL2 (default terminationDelay). GT-6: one pc-c pod of the scaled gang (sg-x-1, min 1) dies while the
    pool has room: nothing else is touched and the replacement becomes Ready."""
    s = await scenario(10)
    s.apply(wl2(s.name, s.namespace, s.pool.name, termination_delay=None))
    before = await s.running()
    pclqs = await s.clique_uids()
    core = client.CoreV1Api(s.api)
    victim = sorted(await s.uids(["sg-x-1-pc-c"]))[0]
    await core.delete_namespaced_pod(victim, s.namespace, grace_period_seconds=0)
    after = await s.running()
    assert victim not in after
    assert {n: u for n, u in after.items() if n in before} == {n: u for n, u in before.items() if n != victim}
    assert await s.clique_uids() == pclqs
    assert await s.events(s.name, REPLICA_DELETED) == []

"""Gang admission on the stock kube-scheduler: Grove's gang-scheduling e2e scenarios (GS-1 …) on
private KWOK node pools where each node fits exactly one pod, so capacity is controlled by cordoning.

Every scenario runs under the GangInvariant (tests/gang.py): no gang is ever partly released or bound
beyond the release/bind windows, and every pod lands on the node the admitter pinned it to.
Counts are checked per PodClique at each step, and held for a moment (`STABLE`) to prove nothing more
than the expected wave was released.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from grove_api import constants as c
from grove_api.pod_admission import admitted_on_create
from grove_api.podgang import REASON_POD_GANG_BLOCKED
from tests.builders import clique, pcs
from tests.gang import (
    GangInvariant,
    Pool,
    gated,
    node_pool,
    pod_dicts,
    pool_pod_spec,
    running_by_podclique,
    wl1,
    wl2,
)
from tests.kube import kubectl
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("gang_invariant")

STABLE = 2.0  # seconds a count must hold once reached


@dataclass
class Scenario:
    api: client.ApiClient
    kubeconfig: Path
    namespace: str
    pool: Pool
    invariant: GangInvariant

    def apply(self, doc: dict[str, Any]) -> None:
        kubectl(self.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))

    def scale(self, kind: str, name: str, replicas: int) -> None:
        kubectl(self.kubeconfig, "-n", self.namespace, "scale", kind, name, f"--replicas={replicas}")

    async def expect(self, running: dict[str, int], pods: int) -> None:
        """Exactly `running` bound pods per PodClique (others 0) out of `pods` live pods, every unbound pod
        still gated; held for STABLE seconds."""
        expected = {k: v for k, v in running.items() if v}

        seen: list[Any] = []

        async def reached() -> list[dict[str, Any]] | None:
            items = await pod_dicts(self.api, self.namespace)
            seen[:] = [len(items), running_by_podclique(items)]
            ok = len(items) == pods and running_by_podclique(items) == expected
            return items if ok else None

        try:
            await until(f"running pods {expected} of {pods}", reached, timeout=90)
        except BaseException:
            gangs = await client.CustomObjectsApi(self.api).list_namespaced_custom_object(
                c.SCHEDULER_GROUP, c.VERSION, self.namespace, c.PLURAL_PODGANG
            )
            states = {
                g["metadata"]["name"]: [
                    (x["type"], x["status"], x.get("message")) for x in g["status"].get("conditions", [])
                ]
                for g in gangs["items"]
            }
            raise AssertionError(f"last seen (pods, running): {seen}; PodGangs: {states}") from None

        async def changed() -> bool:
            items = await pod_dicts(self.api, self.namespace)
            return len(items) != pods or running_by_podclique(items) != expected

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(STABLE):
                while not await changed():
                    await asyncio.sleep(0.2)
        items = await pod_dicts(self.api, self.namespace)
        assert running_by_podclique(items) == expected
        unbound = [p for p in items if not p["spec"].get("nodeName")]
        assert all(gated(p) for p in unbound), [p["metadata"]["name"] for p in unbound if not gated(p)]
        nodes = [p["spec"]["nodeName"] for p in items if p["spec"].get("nodeName")]
        assert len(nodes) == len(set(nodes)), "two pods on one node"


@pytest.fixture
async def scenario(
    cluster: Any, api_client: client.ApiClient, namespace: str, gang_invariant: GangInvariant
) -> AsyncIterator[Callable[[int], Awaitable[Scenario]]]:
    """`await scenario(nodes)`: a pool of that many cordoned nodes (the invariant already watches)."""
    pools: list[Any] = []

    async def start(size: int) -> Scenario:
        pool_cm = node_pool(api_client, f"p{uuid.uuid4().hex[:6]}", size)
        pool = await pool_cm.__aenter__()
        pools.append(pool_cm)
        return Scenario(api_client, Path(cluster.kubeconfig), namespace, pool, gang_invariant)

    yield start
    assert gang_invariant.events > 0, "the invariant checker saw no pod events"
    for pool_cm in reversed(pools):
        await pool_cm.__aexit__(None, None, None)


def base(pcs: str, i: int = 0, a: int = 0, b: int = 0, cc: int = 0) -> dict[str, int]:
    return {f"{pcs}-{i}-pc-a": a, f"{pcs}-{i}-sg-x-0-pc-b": b, f"{pcs}-{i}-sg-x-0-pc-c": cc}


def sg(pcs: str, k: int, i: int = 0, b: int = 0, cc: int = 0) -> dict[str, int]:
    return {f"{pcs}-{i}-sg-x-{k}-pc-b": b, f"{pcs}-{i}-sg-x-{k}-pc-c": cc}


def full_wl(pcs: str, i: int = 0, groups: int = 2) -> dict[str, int]:
    out = base(pcs, i, 2, 1, 3)
    for k in range(1, groups):
        out |= sg(pcs, k, i, 1, 3)
    return out


async def podgang_condition(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        obj = await client.CustomObjectsApi(api).get_namespaced_custom_object(
            c.SCHEDULER_GROUP, c.VERSION, namespace, c.PLURAL_PODGANG, name
        )
    except client.ApiException as err:
        if err.status == 404:  # not created yet
            return None
        raise
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Admitted":
            return dict(cond)
    return None


async def pod_events(api: client.ApiClient, namespace: str, pod: str) -> list[dict[str, Any]]:
    """The Events about a pod, as `kubectl describe pod` finds them."""
    listed = await client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod}"
    )
    items: list[dict[str, Any]] = api.sanitize_for_serialization(listed)["items"]
    return items


# --- WL1: every minimum = replicas: all or nothing ------------------------------------------------------


async def test_gs1_all_or_nothing(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(10)
    await s.pool.uncordon(9)
    s.apply(wl1("wl", s.namespace, s.pool.name))
    await s.expect({}, 10)

    async def blocked() -> dict[str, Any] | None:
        cond = await podgang_condition(s.api, s.namespace, "wl-0")
        ok = cond and cond["status"] == "False" and cond["reason"] == "Unschedulable"
        # The numbers are those of the admitter's model: right after the pool's nodes were uncordoned it
        # may still see fewer; the message is rewritten as they move (at most every 10 s).
        return cond if ok and "needs 10 pods" in cond["message"] and "only 9 fit" in cond["message"] else None

    await until("PodGang wl-0 to say why it waits: 10 needed, 9 fit", blocked, timeout=45)

    async def told() -> list[list[dict[str, Any]]] | None:
        """Each gated pod's Events (what `kubectl describe pod` lists), once every pod has a GangBlocked one."""
        items = await pod_dicts(s.api, s.namespace)
        pods = [p for p in items if gated(p) and p["metadata"]["labels"].get(c.LABEL_PODGANG) == "wl-0"]
        events = [await pod_events(s.api, s.namespace, p["metadata"]["name"]) for p in pods]
        blocked = [[e for e in listed if e["reason"] == REASON_POD_GANG_BLOCKED] for listed in events]
        return blocked if len(pods) == 10 and all(blocked) else None

    # Every gated pod says why its gang waits: one Warning Event each (a repeat would count it up).
    for events in await until("each gated pod of wl-0 to have a GangBlocked Event", told, timeout=30):
        (event,) = events
        assert event["type"] == "Warning" and event["source"]["component"] == "grove-gang-admitter", event
        assert event["involvedObject"]["kind"] == "Pod", event
        assert event["message"].startswith("PodGang wl-0 waits (Unschedulable): needs 10 pods"), event
    await s.pool.uncordon(1)
    await s.expect(full_wl("wl"), 10)


async def test_gs2_scaled_group_waits_for_capacity(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(14)
    await s.pool.uncordon(9)
    s.apply(wl1("wl", s.namespace, s.pool.name))
    await s.expect({}, 10)
    await s.pool.uncordon(1)
    await s.expect(full_wl("wl"), 10)
    s.scale("pcsg", "wl-0-sg-x", 3)
    await s.expect(full_wl("wl"), 14)
    await s.pool.uncordon(3)
    await s.expect(full_wl("wl"), 14)  # the scaled gang needs 4
    await s.pool.uncordon(1)
    await s.expect(full_wl("wl", groups=3), 14)


async def test_gs3_new_replica_waits_for_capacity(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(20)
    await s.pool.uncordon(10)
    s.apply(wl1("wl", s.namespace, s.pool.name))
    await s.expect(full_wl("wl"), 10)
    s.scale("pcs", "wl", 2)
    await s.expect(full_wl("wl"), 20)
    await s.pool.uncordon(9)
    await s.expect(full_wl("wl"), 20)
    await s.pool.uncordon(1)
    await s.expect(full_wl("wl") | full_wl("wl", 1), 20)


async def test_gs4_three_scale_outs_each_wait_for_capacity(
    scenario: Callable[[int], Awaitable[Scenario]],
) -> None:
    s = await scenario(28)
    await s.pool.uncordon(10)
    s.apply(wl1("wl", s.namespace, s.pool.name))
    await s.expect(full_wl("wl"), 10)
    s.scale("pcsg", "wl-0-sg-x", 3)
    await s.expect(full_wl("wl"), 14)
    await s.pool.uncordon(4)
    await s.expect(full_wl("wl", groups=3), 14)
    s.scale("pcs", "wl", 2)
    await s.expect(full_wl("wl", groups=3), 24)
    await s.pool.uncordon(10)
    await s.expect(full_wl("wl", groups=3) | full_wl("wl", 1), 24)
    s.scale("pcsg", "wl-1-sg-x", 3)
    await s.expect(full_wl("wl", groups=3) | full_wl("wl", 1), 28)
    await s.pool.uncordon(4)
    await s.expect(full_wl("wl", groups=3) | full_wl("wl", 1, groups=3), 28)


# --- WL2: minimums below replicas: base minimum first, then scaled gangs, then the rest ----------------


async def scale_out_in_waves(s: Scenario) -> None:
    """WL2 running in full on 10 nodes: its group scaled to 3 replicas waits (4 pods gated), then gets its
    minimum (2) from two more nodes, then the rest from two more."""
    s.scale("pcsg", "wl-0-sg-x", 3)
    await s.expect(full_wl("wl"), 14)
    await s.pool.uncordon(2)
    await s.expect(full_wl("wl") | sg("wl", 2, b=1, cc=1), 14)
    await s.pool.uncordon(2)
    await s.expect(full_wl("wl", groups=3), 14)


async def test_gs5_base_minimum_first(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(10)
    await s.pool.uncordon(3)
    s.apply(wl2("wl", s.namespace, s.pool.name))
    await s.expect(base("wl", a=1, b=1, cc=1), 10)
    await s.pool.uncordon(7)
    await s.expect(full_wl("wl"), 10)


async def test_gs7_waves_base_scaled_rest(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(14)
    await s.pool.uncordon(3)
    s.apply(wl2("wl", s.namespace, s.pool.name))
    await s.expect(base("wl", a=1, b=1, cc=1), 10)
    await s.pool.uncordon(2)
    await s.expect(base("wl", a=1, b=1, cc=1) | sg("wl", 1, b=1, cc=1), 10)
    await s.pool.uncordon(5)
    await s.expect(full_wl("wl"), 10)
    await scale_out_in_waves(s)


async def test_gs6_scale_out_minimum_first(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(14)
    await s.pool.uncordon(3)
    s.apply(wl2("wl", s.namespace, s.pool.name))
    await s.expect(base("wl", a=1, b=1, cc=1), 10)
    await s.pool.uncordon(7)
    await s.expect(full_wl("wl"), 10)
    await scale_out_in_waves(s)


async def test_gs8_scaled_before_capacity(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(14)
    s.apply(wl2("wl", s.namespace, s.pool.name))
    await s.expect({}, 10)
    s.scale("pcsg", "wl-0-sg-x", 3)
    await s.expect({}, 14)
    await s.pool.uncordon(3)
    await s.expect(base("wl", a=1, b=1, cc=1), 14)
    await s.pool.uncordon(4)
    await s.expect(base("wl", a=1, b=1, cc=1) | sg("wl", 1, b=1, cc=1) | sg("wl", 2, b=1, cc=1), 14)
    await s.pool.uncordon(7)
    await s.expect(full_wl("wl", groups=3), 14)


async def test_gs9_second_replica_base_minimum_first(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(20)
    await s.pool.uncordon(3)
    s.apply(wl2("wl", s.namespace, s.pool.name))
    await s.expect(base("wl", a=1, b=1, cc=1), 10)
    await s.pool.uncordon(7)
    await s.expect(full_wl("wl"), 10)
    s.scale("pcs", "wl", 2)
    await s.expect(full_wl("wl"), 20)
    await s.pool.uncordon(3)
    await s.expect(full_wl("wl") | base("wl", 1, 1, 1, 1), 20)
    await s.pool.uncordon(7)
    await s.expect(full_wl("wl") | full_wl("wl", 1), 20)


async def test_gs10_two_replicas_before_capacity(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(20)
    s.apply(wl2("wl", s.namespace, s.pool.name, replicas=2))
    await s.expect({}, 20)
    await s.pool.uncordon(6)
    both_bases = base("wl", 0, 1, 1, 1) | base("wl", 1, 1, 1, 1)
    await s.expect(both_bases, 20)
    await s.pool.uncordon(4)
    await s.expect(both_bases | sg("wl", 1, 0, 1, 1) | sg("wl", 1, 1, 1, 1), 20)
    await s.pool.uncordon(10)
    await s.expect(full_wl("wl") | full_wl("wl", 1), 20)


async def test_gs12_everything_scaled_before_capacity(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(28)
    s.apply(wl2("wl", s.namespace, s.pool.name, replicas=2))
    await s.expect({}, 20)
    s.scale("pcsg", "wl-0-sg-x", 3)
    s.scale("pcsg", "wl-1-sg-x", 3)
    await s.expect({}, 28)
    await s.pool.uncordon(6)
    bases = base("wl", 0, 1, 1, 1) | base("wl", 1, 1, 1, 1)
    await s.expect(bases, 28)
    await s.pool.uncordon(8)
    mins = bases | {k: v for i in (0, 1) for g in (1, 2) for k, v in sg("wl", g, i, 1, 1).items()}
    await s.expect(mins, 28)
    await s.pool.uncordon(14)
    await s.expect(full_wl("wl", 0, 3) | full_wl("wl", 1, 3), 28)


async def test_gs11_long_sequence_in_waves(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    """Running pods progress 3 -> 10 -> 12 -> 14 -> 17 -> 24 -> 26 -> 28 as nodes are uncordoned."""
    s = await scenario(28)
    s.apply(wl2("wl", s.namespace, s.pool.name))
    await s.pool.uncordon(3)
    wl0 = base("wl", 0, 1, 1, 1)
    await s.expect(wl0, 10)  # 3
    await s.pool.uncordon(7)
    await s.expect(full_wl("wl"), 10)  # 10
    s.scale("pcsg", "wl-0-sg-x", 3)
    await s.expect(full_wl("wl"), 14)
    await s.pool.uncordon(2)
    await s.expect(full_wl("wl") | sg("wl", 2, 0, 1, 1), 14)  # 12
    await s.pool.uncordon(2)
    wl0_full = full_wl("wl", groups=3)
    await s.expect(wl0_full, 14)  # 14
    s.scale("pcs", "wl", 2)
    await s.expect(wl0_full, 24)
    await s.pool.uncordon(3)
    await s.expect(wl0_full | base("wl", 1, 1, 1, 1), 24)  # 17
    await s.pool.uncordon(7)
    await s.expect(wl0_full | full_wl("wl", 1), 24)  # 24
    s.scale("pcsg", "wl-1-sg-x", 3)
    await s.expect(wl0_full | full_wl("wl", 1), 28)
    await s.pool.uncordon(2)
    await s.expect(wl0_full | full_wl("wl", 1) | sg("wl", 2, 1, 1, 1), 28)  # 26
    await s.pool.uncordon(2)
    await s.expect(wl0_full | full_wl("wl", 1, groups=3), 28)  # 28


# --- no deadlock -------------------------------------------------------------------------------------------


async def test_two_gangs_of_60_percent_never_deadlock(scenario: Callable[[int], Awaitable[Scenario]]) -> None:
    s = await scenario(10)
    await s.pool.uncordon(10)
    docs = [wl1(name, s.namespace, s.pool.name, group_replicas=1, group_min=1) for name in ("one", "two")]
    for doc in docs:  # 6 pods each, every minimum = replicas
        s.apply(doc)

    async def one_runs() -> tuple[str, str] | None:
        items = await pod_dicts(s.api, s.namespace)
        counts = running_by_podclique(items)
        done = [n for n in ("one", "two") if sum(v for k, v in counts.items() if k.startswith(f"{n}-")) == 6]
        return (done[0], "two" if done[0] == "one" else "one") if len(items) == 12 and done else None

    winner, loser = await until("one of the two PodCliqueSets to run", one_runs, timeout=60)
    await s.expect(full_wl(winner, groups=1), 12)
    cond = await podgang_condition(s.api, s.namespace, f"{loser}-0")
    assert cond is not None and cond["status"] == "False" and cond["reason"] == "Unschedulable", cond
    kubectl(s.kubeconfig, "-n", s.namespace, "delete", "pcs", winner, "--wait=false")
    await s.expect(full_wl(loser, groups=1), 6)


# --- ours: admission as the pods are created --------------------------------------------------------------


async def test_a_gang_that_fits_is_admitted_as_its_pods_are_created(
    scenario: Callable[[int], Awaitable[Scenario]],
) -> None:
    """When nothing else waits, a new gang that fits is admitted before its pods exist: they are created
    pinned and never gated (no release patch, no webhook call), and the admission is put on record once
    the PodGang exists. Behind a gang that waits, new gangs queue gated as before. (A PodCliqueSet with
    scaling groups creates its gang over two passes, and goes the usual way.)"""
    s = await scenario(20)
    await s.pool.uncordon(15)
    spec = pool_pod_spec(s.pool.name)

    def standalone(name: str) -> dict[str, Any]:
        return pcs(
            name,
            namespace=s.namespace,
            cliques=[
                clique("pc-a", replicas=2, min_available=2, pod=spec),
                clique("pc-b", replicas=3, min_available=2, pod=spec),
            ],
        )

    def running(*names: str) -> dict[str, int]:
        return {k: v for n in names for k, v in ((f"{n}-0-pc-a", 2), (f"{n}-0-pc-b", 3))}

    # The uncordoning must have reached the admitter first (with capacity still arriving, it declines):
    # a gang started and held for a while says it has.
    s.apply(standalone("warm"))
    await s.expect(running("warm"), 5)
    s.apply(standalone("first"))
    await s.expect(running("warm", "first"), 10)
    pods = [p for p in await pod_dicts(s.api, s.namespace) if p["metadata"]["name"].startswith("first-")]
    assert len(pods) == 5 and all(admitted_on_create(p) for p in pods), [p["metadata"] for p in pods]

    async def recorded() -> dict[str, Any] | None:
        cond = await podgang_condition(s.api, s.namespace, "first-0")
        ok = cond and cond["status"] == "True" and "admitted as they were created" in cond["message"]
        return cond if ok else None

    cond = await until("PodGang first-0 to record its admission", recorded, timeout=30)
    assert cond["reason"] == "GangAdmitted", cond

    s.apply(wl1("second", s.namespace, s.pool.name))  # needs 10 nodes, 5 are free: waits, gated
    await s.expect(running("warm", "first"), 20)
    s.apply(standalone("third"))  # would fit, but `second` waits: queued, then admitted by a pass

    async def third_admitted() -> dict[str, Any] | None:
        cond = await podgang_condition(s.api, s.namespace, "third-0")
        return cond if cond and cond["status"] == "True" else None

    cond = await until("PodGang third-0 to be admitted", third_admitted, timeout=60)
    assert "admitted as they were created" not in cond["message"], cond
    later = [
        p
        for p in await pod_dicts(s.api, s.namespace)
        if p["metadata"]["name"].startswith(("second-", "third-"))
    ]
    assert len(later) == 15 and not any(admitted_on_create(p) for p in later)

"""Properties of the admission pass on random clusters and random event sequences:

- no placement ever exceeds a node's free capacity, and every placement is feasible;
- every Admit releases exactly the missing minimum of every podgroup (plus extras), only gated pods of its
  own gang, each pod once; required pack constraints hold;
- an admitted gang's replacements are released all together or not at all, and a gang that is un-admitted
  or reset releases nothing in that pass;
- the pass is deterministic (input order does not matter);
- a long-lived incremental Planner decides exactly what a full pass from scratch decides, after any
  sequence of node, pod, time and execution events.
"""

from __future__ import annotations

import random
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admitter.core import placement
from admitter.core.decision import Decision
from admitter.core.gangs import Gang, members
from admitter.core.nodes import feasible
from admitter.core.plan import PlanConfig, Planner, plan
from admitter.core.resources import Resources

from .builders import HOSTNAME, NS, Sim

ZONE, RACK = "zone", "rack"
PACKS: list[dict[str, str] | None] = [None, None, {"required": ZONE}, {"preferred": RACK}, {"required": RACK}]
TAINT = {"key": "t", "value": "x", "effect": "NoSchedule"}
TOLERATE = {"tolerations": [{"key": "t", "operator": "Exists"}]}
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(rng: random.Random) -> Sim:
    sim = Sim(PlanConfig(starvation_seconds=rng.choice([30.0, 1e9]), bind_timeout_seconds=40.0))
    for i in range(rng.randint(1, 8)):
        sim.add_node(
            f"n{i}",
            cpu=rng.choice([1, 2, 4, 8]),
            memory=rng.choice(["4Gi", "16Gi"]),
            gpu=rng.choice([0, 0, 4]),
            labels={ZONE: f"z{rng.randint(0, 1)}", RACK: f"r{rng.randint(0, 3)}"},
            taints=[TAINT] if rng.random() < 0.15 else [],
            unschedulable=rng.random() < 0.15,
            hostname=None if rng.random() < 0.05 else "",
        )
    for i in range(rng.randint(0, 4)):
        node = rng.choice(list(sim.nodes))
        sim.add_pod(f"busy-{i}", cpu=rng.choice(["500m", "1", "2"]), gated=False, node_name=node)
    names: list[str] = []
    for g in range(rng.randint(1, 6)):
        name = f"g{g}"
        groups = [(f"c{k}", 0, rng.randint(1, 4)) for k in range(rng.randint(1, 3))]
        groups = [(c, rng.randint(1, n), n) for c, _, n in groups]
        requests = {
            c: {"cpu": rng.choice(["500m", "1", "2", "3"]), "gpu": rng.choice([0, 0, 1])}
            for c, _, _ in groups
        }
        kw: dict[str, Any] = {}
        if rng.random() < 0.4:
            kw["pack"] = rng.choice(PACKS)
        if rng.random() < 0.2:
            kw["group_packs"] = {groups[0][0]: rng.choice(PACKS[2:])}
        if names and rng.random() < 0.2:
            kw["base"] = rng.choice(names)
        sim.add_gang(
            name,
            groups,
            created=float(rng.randint(0, 100)),
            pod_spec=TOLERATE if rng.random() < 0.3 else None,
            group_requests=requests,
            priority_class=rng.choice([None, "high"]),
            **kw,
        )
        names.append(name)
    sim.priorities = {"high": 10}
    if rng.random() < 0.3:  # a template that pins a pod to a node by its own nodeSelector
        name = rng.choice(sorted(p for p in sim.pods if not p.startswith("busy")))
        sim.pods[name]["spec"]["nodeSelector"] = {HOSTNAME: rng.choice(sorted(sim.nodes))}
        sim.model.upsert_pod(sim.pods[name])
    if rng.random() < 0.3:  # drop a pod: that gang waits for it
        victim = rng.choice(list(sim.pods))
        sim.delete_pod(victim)
    return sim


def check(sim: Sim, decision: Decision, gangs: list[Gang]) -> None:
    model = sim.model
    by_key = {g.key: g for g in gangs}
    taken: dict[str, Resources] = {}
    seen: set[str] = set()
    for admit in decision.admit:
        gang = by_key[admit.key]
        found = members(model, gang)
        group_of = {p.key[1]: g for g in found.groups for p in g.gated}
        for group in found.groups:
            placed = [p for p in admit.minimum if group_of.get(p) is group]
            assert len(placed) == group.missing, (admit, group.group.name)
        for pod_name in admit.placements:
            assert pod_name in group_of, f"{pod_name} is not a gated pod of {admit.gang}"
        if gang.pack is not None and gang.pack.required:
            key = gang.pack.required
            assert len({model.nodes[n].labels.get(key) for n in admit.minimum.values()}) <= 1
            assert all(key in model.nodes[n].labels for n in admit.minimum.values())
        for spec in gang.podgroups:
            if spec.pack and spec.pack.required:
                values = {
                    model.nodes[n].labels.get(spec.pack.required)
                    for p, n in admit.minimum.items()
                    if group_of[p].group is spec
                }
                assert len(values) <= 1 and None not in values
    released: dict[str, set[str]] = {}
    for rel in decision.release:
        released.setdefault(rel.gang, set()).add(rel.pod)
    gone = {u.gang for u in decision.unadmit} | {r.gang for r in decision.reset}
    assert not gone & (set(released) | {a.gang for a in decision.admit})
    for gang in gangs:
        if not gang.admitted or gang.key[1] in gone:
            continue
        found = members(model, gang)
        if found.scheduled:
            continue
        replacements = {p.key[1] for g in found.groups for p in g.gated[: g.missing]}
        mine = released.get(gang.key[1], set())
        blocked = any(b.key == gang.key for b in decision.restore_blocked)
        if not found.complete:
            assert not mine and not blocked
        elif blocked:
            assert not mine, (gang.key, mine)
        else:
            assert replacements <= mine, (gang.key, replacements, mine)
    pairs = [(p, n) for a in decision.admit for p, n in a.placements.items()]
    pairs += [(r.pod, r.node) for r in decision.release]
    for pod_name, node in pairs:
        assert pod_name not in seen
        seen.add(pod_name)
        info = model.pod(NS, pod_name)
        assert info is not None and info.state.value == "gated"
        assert feasible(info.view, model.nodes[node]) is None
        assert model.nodes[node].hostname is not None
        taken[node] = taken.get(node, Resources()) + info.requests
    for node, total in taken.items():
        free = model.free(node)
        assert all(free.get(k) >= v for k, v in total.items()), (node, dict(free), dict(total))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_placements_fit_and_minimums_are_whole(seed: int) -> None:
    sim = build(random.Random(seed))
    gangs = sim.gangs()
    decision = plan(sim.model, gangs, 50.0, sim.config)
    check(sim, decision, gangs)
    shuffled = list(gangs)
    random.Random(seed + 1).shuffle(shuffled)
    assert plan(sim.model, shuffled, 50.0, sim.config) == decision


def event(sim: Sim, rng: random.Random, last: Decision, now: float) -> float:
    """Apply one random event to the simulated cluster; returns the new time."""
    kind = rng.choice(
        [
            "execute",
            "execute",
            "execute-unbound",
            "delete",
            "finish",
            "cordon",
            "resize",
            "node",
            "time",
            "bind",
            "recreate",
        ]
    )
    pods = sorted(sim.pods)
    if kind.startswith("execute"):
        sim.execute(last, now=now, bind=kind == "execute")
    elif kind == "delete" and pods:
        name = rng.choice(pods)
        old = sim.pods[name]
        sim.delete_pod(name)
        labels = old["metadata"]["labels"]
        if labels and rng.random() < 0.7:  # the reconciler recreates it, gated
            sim.add_pod(
                name,
                gang=labels.get("grove.io/podgang"),
                clique=labels.get("grove.io/podclique"),
                created=now,
            )
    elif kind == "recreate" and sim.podgangs:
        sim.recreate(rng.choice(sorted(sim.podgangs)), now)
    elif kind == "finish" and pods:
        sim.set_phase(rng.choice(pods), rng.choice(["Succeeded", "Failed"]))
    elif kind == "bind":
        released = [
            p
            for p in pods
            if not sim.pods[p]["spec"].get("schedulingGates") and "nodeSelector" in sim.pods[p]["spec"]
        ]
        if released:
            name = rng.choice(released)
            host = sim.pods[name]["spec"]["nodeSelector"]["kubernetes.io/hostname"]
            node = sim.model.node_for_hostname(host)
            if node is not None:
                sim.bind(name, node)
    elif kind == "cordon":
        name = rng.choice(sorted(sim.nodes))
        sim.update_node(name, unschedulable=not sim.nodes[name]["spec"].get("unschedulable", False))
    elif kind == "resize":
        name = rng.choice(sorted(sim.nodes))
        sim.nodes[name]["status"]["allocatable"]["cpu"] = str(rng.choice([1, 2, 4, 8, 16]))
        sim.model.upsert_node(sim.nodes[name])
    elif kind == "relabel":
        name = rng.choice(sorted(sim.nodes))
        labels = sim.nodes[name]["metadata"]["labels"]
        labels[rng.choice([ZONE, RACK])] = rng.choice(["z0", "z1", "r0", "r1"])
        if rng.random() < 0.2:
            labels["kubernetes.io/hostname"] = rng.choice(sorted(sim.nodes))  # may clash with another node
        sim.model.upsert_node(sim.nodes[name])
    elif kind == "node":
        if rng.random() < 0.5 and len(sim.nodes) > 1:
            name = rng.choice(sorted(sim.nodes))
            del sim.nodes[name]
            sim.model.delete_node(name)
        else:
            name = f"x{rng.randint(0, 3)}"
            sim.add_node(name, cpu=rng.choice([2, 4]), labels={ZONE: "z0", RACK: "r9"})
    elif kind == "time":
        now += rng.choice([1.0, 30.0, 45.0])
    return now


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 25), walk=st.booleans())
def test_incremental_planner_decides_like_a_full_pass(seed: int, steps: int, walk: bool) -> None:
    """`walk`: take the path big clusters take (walking the board's size order instead of sorting the
    few candidate nodes), which small random clusters would otherwise never reach."""
    with patch.object(placement, "SMALL_POOL", 0 if walk else placement.SMALL_POOL):
        run_events(seed, steps)


def run_events(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    sim = build(rng)
    planner = Planner(sim.config, sim.model)
    now = 50.0
    for _ in range(steps):
        gangs = sim.gangs()
        incremental = planner.plan(gangs, now)
        full = plan(sim.model, gangs, now, sim.config)
        assert incremental == full
        check(sim, incremental, gangs)
        now = event(sim, rng, incremental, now)
    planner.close()


def test_property_helpers_catch_an_overcommitted_placement() -> None:
    """The capacity check above can fail: a decision that overfills a node is caught."""
    sim = Sim()
    sim.add_node("n0", cpu=1)
    sim.add_gang("g", size=2)
    sim.model.upsert_node(
        sim.nodes["n0"] | {"status": {"allocatable": {"cpu": "2", "memory": "8Gi", "pods": "9"}}}
    )
    decision = sim.full()
    assert len(decision.admit) == 1
    sim.model.upsert_node(sim.nodes["n0"])  # shrink the node behind the decision's back
    with pytest.raises(AssertionError, match="'cpu': 1000"):
        check(sim, decision, sim.gangs())

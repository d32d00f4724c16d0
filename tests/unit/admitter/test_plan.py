"""The admission pass, scenario by scenario: exact decisions for small clusters."""

from __future__ import annotations

from typing import Any

from admitter.core.decision import Blocked, Decision, Release, Reset, Unadmit, Waiting
from admitter.core.gangs import Gang
from admitter.core.plan import PlanConfig, Planner, plan
from grove_api import podgang as pg

from .builders import (
    HOSTNAME,
    NS,
    Sim,
    admitted_names,
    blocked_names,
    by_node,
    not_admitted,
    placements,
    podgang,
)

ZONE, RACK = "topology.kubernetes.io/zone", "topology.grove.io/rack"
UNADMITTED = (
    "no pod of the gang is bound or released any more (its pods were recreated): "
    "it queues again as a new gang, all or nothing"
)


def cluster(*cpus: int, **kw: Any) -> Sim:
    sim = Sim(kw.pop("config", None))
    for i, cpu in enumerate(cpus):
        sim.add_node(f"n{i}", cpu=cpu, **kw)
    return sim


def only(decision: Decision, gang: str) -> Blocked:
    (found,) = [b for b in decision.blocked if b.gang == gang]
    return found


# --- all or nothing, order, fairness -------------------------------------------------------------------


def test_all_or_nothing() -> None:
    sim = cluster(4, 4, 4)
    sim.add_pod("other", cpu="4", gated=False, node_name="n2")
    sim.add_gang("big", size=9, created=0)
    sim.add_gang("fits", size=8, created=1)
    decision = sim.full()
    assert admitted_names(decision) == ["fits"]
    assert by_node(decision.admit[0].placements.items()) == {
        "n0": [f"fits-w-{i}" for i in range(4)],
        "n1": [f"fits-w-{i}" for i in range(4, 8)],
    }
    big = only(decision, "big")
    assert (big.reason, big.needed, big.fitting, big.unsatisfiable) == (pg.REASON_UNSCHEDULABLE, 9, 8, False)
    assert (
        big.message
        == "needs 9 pods (1 cpu, 1Gi each) in podgroup w; only 8 fit (on 2 nodes): 1 node lacks cpu"
    )
    sim.execute(decision)
    assert all(sim.pods[f"big-w-{i}"]["spec"]["schedulingGates"] for i in range(9))
    assert sim.full().admit == ()


def test_best_fit_packs_the_fullest_node_that_fits() -> None:
    sim = cluster(8, 8, 8)
    sim.add_pod("other-a", cpu="5", gated=False, node_name="n0")  # n0: 3 cpu free
    sim.add_pod("other-b", cpu="6", gated=False, node_name="n2")  # n2: 2 cpu free
    sim.add_gang("g", size=1, cpu="3")
    sim.add_gang("h", size=1, cpu="2", created=1)
    assert placements(sim.full()) == {"g-w-0": "n0", "h-w-0": "n2"}


def test_largest_pods_first() -> None:
    sim = cluster(4, 2)
    # Placed in name order, the small pod would take n1 and the 4-cpu one fail; largest first fits both.
    sim.add_gang(
        "g",
        [("a-small", 1, 1), ("b-big", 1, 1)],
        group_requests={"b-big": {"cpu": "4"}, "a-small": {"cpu": "2"}},
    )
    assert placements(sim.full()) == {"g-b-big-0": "n0", "g-a-small-0": "n1"}


def test_no_head_of_line_blocking() -> None:
    sim = cluster(4, 4)
    sim.add_gang("huge", size=12, created=0)
    sim.add_gang("small-1", size=3, created=1)
    sim.add_gang("small-2", size=3, created=2)
    sim.add_gang("small-3", size=3, created=3)
    decision = sim.full(now=10)
    assert admitted_names(decision) == ["small-1", "small-2"]
    assert blocked_names(decision) == ["huge", "small-3"]
    assert only(decision, "small-3").message.endswith("only 2 fit (on 1 node): 1 node lacks cpu")


def test_priority_then_age_then_name() -> None:
    sim = cluster(4)
    sim.priorities = {"high": 100}
    sim.add_gang("low-old", size=4, created=0)
    sim.add_gang("high-young", size=4, created=50, priority_class="high")
    assert admitted_names(sim.full()) == ["high-young"]
    sim = cluster(4)
    sim.add_gang("b-young", size=4, created=5)
    sim.add_gang("c-old", size=4, created=1)
    sim.add_gang("a-old", size=4, created=1)
    decision = sim.full()
    assert admitted_names(decision) == ["a-old"] and blocked_names(decision) == ["c-old", "b-young"]


def test_two_gangs_of_sixty_percent_cannot_deadlock() -> None:
    sim = cluster(*[1] * 10)
    sim.add_gang("first", size=6, created=0)
    sim.add_gang("second", size=6, created=1)
    decision = sim.full()
    assert admitted_names(decision) == ["first"]
    assert only(decision, "second").fitting == 4
    sim.execute(decision)
    again = sim.full(now=5)
    assert again.admit == () and blocked_names(again) == ["second"]
    # nothing of the blocked gang was released: it holds no capacity while it waits
    assert all(sim.model.pod(NS, f"second-w-{i}").state.value == "gated" for i in range(6))  # type: ignore[union-attr]
    for i in range(6):  # the first gang finishes; the second now fits whole
        sim.set_phase(f"first-w-{i}", "Succeeded")
    assert admitted_names(sim.full(now=6)) == ["second"]


def test_starving_gang_holds_newer_gangs_back() -> None:
    config = PlanConfig(starvation_seconds=60)
    sim = cluster(4, 4, config=config)
    sim.add_pod("running", cpu="6", gated=False, node_name="n0")  # only 2 cpu free (n1), in pieces
    sim.add_gang("big", size=8, created=0)
    sim.add_gang("small", size=2, created=10)
    early = sim.full(now=30)  # big has waited 30 s: small overtakes it
    assert admitted_names(early) == ["small"] and not only(early, "big").starving
    late = sim.full(now=100)
    assert late.admit == ()
    assert only(late, "big").starving
    held = only(late, "small")
    assert (held.reason, held.held_for, held.needed, held.fitting) == (pg.REASON_HELD, (NS, "big"), 2, 0)
    assert held.message == "held back: capacity is kept for default/big, which has waited 100 s"


def test_a_gang_that_can_never_fit_holds_nobody_back() -> None:
    sim = cluster(4, 4, config=PlanConfig(starvation_seconds=60))
    sim.add_gang("impossible", size=1, cpu="16", created=0)
    sim.add_gang("small", size=2, created=10)
    decision = sim.full(now=1000)
    assert admitted_names(decision) == ["small"]
    impossible = only(decision, "impossible")
    assert impossible.unsatisfiable and not impossible.starving
    assert impossible.message == (
        "needs 1 pods (16 cpu, 1Gi each) in podgroup w; only 0 fit (on 0 nodes): 2 nodes lack cpu "
        "(it would not fit even on the empty cluster)"
    )


def test_scaled_gang_waits_for_its_base() -> None:
    sim = cluster(8)
    sim.add_gang("g", size=2, created=0)
    sim.add_gang("g-s", size=2, created=0, base="g")
    first = sim.full()
    assert admitted_names(first) == ["g"]
    assert first.waiting == (
        Waiting(
            NS,
            "g-s",
            pg.REASON_BASE_PENDING,
            "waiting for base gang default/g to be scheduled",
            2,
            2,
            base=(NS, "g"),
        ),
    )
    sim.execute(first, bind=False)  # released, not bound yet: that is scheduled enough
    assert admitted_names(sim.full()) == ["g-s"]
    orphan = cluster(8)
    orphan.add_gang("x-s", size=1, base="x")
    assert orphan.full().waiting[0].message == "waiting for base gang default/x (not found)"


def test_gang_waits_until_its_pods_exist() -> None:
    sim = cluster(8)
    sim.add_gang("g", [("a", 2, 2), ("b", 2, 1)])
    decision = sim.full()
    assert decision.waiting == (
        Waiting(NS, "g", pg.REASON_PODS_PENDING, "waiting for pods: 3/4 created", 3, 4),
    )
    assert decision.admit == () and decision.blocked == ()


# --- extras and admitted gangs -------------------------------------------------------------------------


def test_extras_are_released_when_they_fit_after_every_minimum() -> None:
    sim = cluster(4)
    sim.add_gang("a", [("w", 1, 3)], created=0)  # minimum 1, two extras
    sim.add_gang("b", size=2, created=1)
    sim.add_gang("c", [("w", 1, 3)], created=2)
    decision = sim.full()
    assert [(a.gang, sorted(a.placements), a.extras) for a in decision.admit] == [
        ("a", ["a-w-0"], ()),  # its extras would have kept c's minimum out
        ("b", ["b-w-0", "b-w-1"], ()),
        ("c", ["c-w-0"], ()),
    ]
    roomy = cluster(4)
    roomy.add_gang("a", [("w", 1, 3)])
    (admit,) = roomy.full().admit
    assert sorted(admit.placements) == ["a-w-0", "a-w-1", "a-w-2"]
    assert admit.extras == ("a-w-1", "a-w-2") and list(admit.minimum) == ["a-w-0"]


def test_admitted_gang_gets_its_replacement_before_new_gangs() -> None:
    sim = cluster(3)
    sim.add_gang("running", size=3, created=0)
    sim.execute(sim.full())
    sim.delete_pod("running-w-1")  # evicted; the reconciler recreates it, gated
    sim.add_pod("running-w-1", gang="running", clique="w", created=100)
    sim.podgangs["running"]["status"]["conditions"][0]["lastTransitionTime"] = "1970-01-01T00:00:00Z"
    sim.add_gang("newcomer", size=1, created=-5)
    decision = sim.full(now=100)
    assert decision.release == (Release(NS, "running", "running-w-1", "n0"),)
    assert blocked_names(decision) == ["newcomer"]


def test_admitted_gangs_extras_wait_for_every_new_minimum() -> None:
    sim = cluster(1, 1, 1, 1)
    sim.add_gang("old", [("w", 1, 2)], created=0)
    sim.execute(sim.full(), bind=True)  # old-w-0 placed; its extra fits too, so it went as well
    sim.delete_pod("old-w-1")
    sim.add_pod("old-w-1", gang="old", clique="w", created=0)  # an optional pod gated again
    sim.add_gang("new", size=3, created=1)
    decision = sim.full(now=1)
    assert admitted_names(decision) == ["new"]  # 3 free nodes: the new minimum, not old's extra
    assert decision.release == ()


def test_scaled_minimums_before_extras_of_base_gangs() -> None:
    sim = cluster(1, 1, 1, 1, 1)
    sim.add_gang("g", [("a", 1, 3)], created=0)  # base: minimum 1, two extras
    sim.execute(sim.full(), bind=True)
    assert len(sim.full().admit) == 0
    sim.add_gang("g-s", size=2, created=0, base="g")
    decision = sim.full()
    assert admitted_names(decision) == ["g-s"]
    assert sorted(placements(decision)) == ["g-s-w-0", "g-s-w-1"]


def test_until_capacity_settles_lower_tiers_wait_for_a_blocked_minimum() -> None:
    sim = cluster(1, 1, 1, 1, 1, 1)
    sim.add_gang("first", [("a", 1, 2)], created=0)
    sim.add_gang("second", size=3, created=1)
    for i in range(1, 6):
        sim.update_node(f"n{i}", unschedulable=True)
    sim.execute(sim.full(settled=False))  # first's minimum on n0
    sim.update_node("n1", unschedulable=False)  # a burst starts: second (3) does not fit yet
    early = sim.full(settled=False)
    assert early.deferred and early.release == () and blocked_names(early) == ["second"]
    settled = sim.full(settled=True)  # nothing more came: first's extra may take n1
    assert not settled.deferred and settled.release == (Release(NS, "first", "first-a-1", "n1"),)
    for i in (2, 3):
        sim.update_node(f"n{i}", unschedulable=False)
    burst = sim.full(settled=False)  # the rest of the burst arrived before settling
    assert admitted_names(burst) == ["second"] and not burst.deferred


def test_placed_pods_of_an_undecided_gang_are_put_on_record_not_admitted_again() -> None:
    """Pods created already admitted (or released before a restart, ahead of the condition): the gang is
    admitted in fact, so it is recorded, and its gated pod is a replacement, not a new minimum."""
    sim = cluster(4)
    sim.add_pod("g-w-0", gang="g", clique="w", gated=False, node_name="n0")
    sim.add_pod("g-w-1", gang="g", clique="w")
    sim.podgangs["g"] = podgang("g", [("w", 2, ["g-w-0", "g-w-1"])])
    decision = sim.full()
    assert decision.admit == () and [r.gang for r in decision.record_admitted_on_create] == ["g"]
    assert decision.record_admitted_on_create[0].message.startswith("1 pod placed on 1 node "), decision
    assert [(r.gang, r.pod) for r in decision.release] == [("g", "g-w-1")]
    sim.execute(decision)
    again = sim.full()
    assert again.record_admitted_on_create == () and again.admit == () and again.release == ()


def test_decided_gangs_are_not_put_on_record_by_their_pods() -> None:
    """A reset gang keeps its bound pods but is not admitted: they do not make it admitted again."""
    sim = cluster(4)
    sim.add_pod("g-w-0", gang="g", clique="w", gated=False, node_name="n0")
    sim.podgangs["g"] = podgang("g", [("w", 1, ["g-w-0"])])
    sim.podgangs["g"]["status"] = not_admitted(pg.REASON_RESET, 0.0)
    decision = sim.full()
    assert decision.record_admitted_on_create == ()


# --- resets --------------------------------------------------------------------------------------------


def test_reset_when_the_minimum_does_not_bind_in_time() -> None:
    sim = cluster(4, 4, config=PlanConfig(bind_timeout_seconds=60))
    sim.add_gang("g", size=3, created=0)
    sim.execute(sim.full(now=0), now=0, bind=False)  # released and pinned, but the scheduler never binds
    sim.bind("g-w-0", "n0")
    gangs = sim.gangs()
    assert plan(sim.model, gangs, 60, sim.config).reset == ()
    decision = plan(sim.model, gangs, 61, sim.config)
    assert decision.reset == (
        Reset(
            NS,
            "g",
            "minimum not bound 60 s after admission: podgroup w has 1/3 pods bound",
            ("g-w-1", "g-w-2"),
        ),
    )
    assert decision.admit == () and decision.release == ()
    sim.execute(decision, now=61)
    again = sim.full(now=62)  # queued again: the two recreated pods are its missing minimum
    assert [(a.gang, sorted(a.placements)) for a in again.admit] == [("g", ["g-w-1", "g-w-2"])]


def _pinned_to(sim: Sim, pod: str) -> str:
    return next(
        n for n in sim.nodes if sim.model.hostname_of(n) == sim.pods[pod]["spec"]["nodeSelector"][HOSTNAME]
    )


def test_a_minimum_pinned_to_a_deleted_node_is_reset_at_once() -> None:
    """Pods pinned to a node that is gone can never bind: no bind timeout is waited for."""
    sim = cluster(4, 4, config=PlanConfig(bind_timeout_seconds=60))
    sim.add_gang("g", size=3, created=0)
    sim.execute(sim.full(now=0), now=0, bind=False)
    gone = _pinned_to(sim, "g-w-0")
    sim.delete_node(gone)
    decision = sim.full(now=1)
    assert [(r.gang, r.pods) for r in decision.reset] == [("g", ("g-w-0", "g-w-1", "g-w-2"))]
    assert "no longer exist" in decision.reset[0].reason and decision.unpin == ()
    sim.execute(decision, now=1)
    again = sim.full(now=2)  # queued again, placed on what is left
    assert [(a.gang, sorted(set(a.placements.values()))) for a in again.admit] == [("g", sorted(sim.nodes))]


def test_pods_beyond_a_bound_minimum_pinned_to_a_deleted_node_are_placed_again() -> None:
    """The gang keeps its admission; only the stranded pods are deleted, recreated gated and released to
    a node that exists."""
    sim = cluster(1, 1, 1, 1, config=PlanConfig(bind_timeout_seconds=60))
    sim.add_gang("g", [("w", 1, 3)], created=0)
    sim.execute(sim.full(now=0), now=0, bind=False)
    sim.bind("g-w-0", _pinned_to(sim, "g-w-0"))
    stranded = next(p for p in ("g-w-1", "g-w-2") if sim.pods[p]["spec"].get("nodeSelector"))
    gone = _pinned_to(sim, stranded)
    host = sim.model.hostname_of(gone)
    sim.delete_node(gone)
    decision = sim.full(now=1)
    assert decision.reset == ()
    assert [(u.gang, u.nodes, u.pods) for u in decision.unpin] == [("g", (host,), (stranded,))]
    sim.execute(decision, now=1)
    again = sim.full(now=2)
    assert stranded in [r.pod for r in again.release] and all(r.node in sim.nodes for r in again.release)
    assert sim.full(now=3).unpin == ()


def test_no_reset_once_bound_or_while_replacements_are_young() -> None:
    sim = cluster(4, config=PlanConfig(bind_timeout_seconds=60))
    sim.add_gang("g", size=2, created=0)
    sim.execute(sim.full(now=0), now=0)
    assert sim.full(now=1000).reset == ()
    sim.delete_pod("g-w-1")
    sim.add_pod("g-w-1", gang="g", clique="w", created=990, gated=False, pin="n0")  # released replacement
    assert sim.full(now=1000).reset == ()
    assert sim.full(now=1051).reset[0].pods == ("g-w-1",)


# --- topology ------------------------------------------------------------------------------------------


def zones(sim: Sim, layout: dict[str, list[int]], racks: int = 1) -> None:
    """Nodes per zone with the given cpus; `racks` racks per zone, nodes dealt round robin."""
    for zone, cpus in layout.items():
        for i, cpu in enumerate(cpus):
            sim.add_node(f"{zone}-{i}", cpu=cpu, labels={ZONE: zone, RACK: f"{zone}-r{i % racks}"})


def label_of(sim: Sim, node: str, key: str) -> str:
    return str(sim.nodes[node]["metadata"]["labels"][key])


def test_required_zone_takes_the_tightest_domain_that_fits() -> None:
    sim = Sim()
    zones(sim, {"zone-a": [4, 4], "zone-b": [4, 4, 4]})
    sim.add_gang("six", size=6, created=0, pack={"required": ZONE})
    sim.add_gang("ten", size=10, created=1, pack={"required": ZONE})
    decision = sim.full()
    assert admitted_names(decision) == ["six", "ten"]
    for admit in decision.admit:
        assert len({label_of(sim, n, ZONE) for n in admit.placements.values()}) == 1
    assert {label_of(sim, n, ZONE) for n in decision.admit[0].placements.values()} == {"zone-a"}


def test_required_zone_that_no_zone_can_hold() -> None:
    sim = Sim()
    zones(sim, {"zone-a": [4, 4], "zone-b": [4, 4]})
    sim.add_gang("ten", size=10, pack={"required": ZONE})
    decision = sim.full()
    blocked = only(decision, "ten")
    assert blocked.reason == pg.REASON_TOPOLOGY
    assert (blocked.topology_key, blocked.best_domain, blocked.fitting) == (ZONE, ("zone-a", 8), 8)
    assert blocked.message == (
        "needs 10 pods (1 cpu, 1Gi each) in podgroup w; no value of label topology.kubernetes.io/zone "
        "has room for all 10 pods (best: zone-a fits 8)"
    )


def test_preferred_zone_falls_back_to_anywhere() -> None:
    sim = Sim()
    zones(sim, {"zone-a": [4, 4], "zone-b": [4, 4]})
    sim.add_gang("ten", size=10, pack={"preferred": ZONE}, created=0)
    sim.add_gang("six", size=6, pack={"preferred": ZONE}, created=1)
    decision = sim.full()
    assert admitted_names(decision) == ["ten", "six"]
    assert len({label_of(sim, n, ZONE) for n in decision.admit[0].placements.values()}) == 2
    assert len({label_of(sim, n, ZONE) for n in decision.admit[1].placements.values()}) == 1


def test_nested_constraints_zone_then_rack() -> None:
    sim = Sim()
    zones(sim, {"zone-a": [4, 4, 4, 4], "zone-b": [4, 4]}, racks=2)
    sim.add_gang(
        "g",
        [("lead", 1, 1), ("w", 4, 4)],
        pack={"required": ZONE},
        group_packs={"w": {"required": RACK}},
        group_requests={"w": {"cpu": "2"}},
    )
    (admit,) = sim.full().admit
    nodes = admit.placements
    assert len({label_of(sim, n, ZONE) for n in nodes.values()}) == 1
    # each rack of zone-b has one 4-cpu node: the workers (8 cpu) need a two-node rack of zone-a
    workers = {label_of(sim, n, RACK) for p, n in nodes.items() if "-w-" in p}
    assert len(workers) == 1 and workers <= {"zone-a-r0", "zone-a-r1"}


def test_group_configs_pack_each_set_of_podgroups() -> None:
    sim = Sim()
    zones(sim, {"z": [4, 4, 4, 4]}, racks=4)
    sim.add_gang(
        "g",
        [("a", 3, 3), ("b", 3, 3)],
        configs=[("ga", ["a"], {"required": RACK}), ("gb", ["b"], {"required": RACK})],
    )
    (admit,) = sim.full().admit
    rack_a = {label_of(sim, n, RACK) for p, n in admit.placements.items() if "-a-" in p}
    rack_b = {label_of(sim, n, RACK) for p, n in admit.placements.items() if "-b-" in p}
    assert len(rack_a) == len(rack_b) == 1 and rack_a != rack_b


def test_extras_stay_in_the_domain_of_their_gang() -> None:
    sim = Sim()
    zones(sim, {"zone-a": [2], "zone-b": [8]})
    sim.add_gang("g", [("w", 2, 4)], pack={"required": ZONE})
    (admit,) = sim.full().admit  # the minimum goes to the tightest zone (a); the extras may not leave it
    assert set(admit.placements.values()) == {"zone-a-0"} and admit.extras == ()


# --- pinned pods, taints, explanations -----------------------------------------------------------------


def test_pinned_pods_go_to_their_node() -> None:
    sim = cluster(4, 4, 4)
    sim.add_pod("g-w-0", gang="g", clique="w", pin="n2")  # the template pins it (user's nodeSelector)
    sim.add_pod("g-w-1", gang="g", clique="w")
    sim.podgangs["g"] = podgang("g", [("w", 2, ["g-w-0", "g-w-1"])])
    assert placements(sim.full()) == {"g-w-0": "n2", "g-w-1": "n2"}
    sim.add_pod("hog", cpu="4", gated=False, node_name="n2")
    blocked = only(sim.full(), "g")
    assert blocked.reason == pg.REASON_PINNED
    assert blocked.message == (
        "needs 2 pods (1 cpu, 1Gi each) in podgroup w; pod default/g-w-0 is pinned to node n2, which lacks cpu"
    )


def test_explanation_counts_nodes_by_reason() -> None:
    sim = cluster(2, 2, 2, unschedulable=True)
    for name, cpu in (("n3", 4), ("n4", 4), ("n5", 2), ("n6", 2)):
        sim.add_node(name, cpu=cpu)
    sim.add_node("n7", cpu=2, taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    for name, used in (("n4", "1"), ("n5", "1500m"), ("n6", "2")):
        sim.add_pod(f"other-{name}", cpu=used, gated=False, node_name=name)
    sim.add_gang("g", size=10)
    blocked = only(sim.full(), "g")
    assert blocked.message == (
        "needs 10 pods (1 cpu, 1Gi each) in podgroup w; only 7 fit (on 2 nodes): 3 nodes cordoned, "
        "2 nodes lack cpu, 1 node has untolerated taints"
    )
    assert blocked.node_reasons == {"unschedulable": 3, "insufficient:cpu": 2, "taint": 1}
    assert (blocked.needed, blocked.fitting, blocked.unsatisfiable) == (10, 7, False)


def test_explanation_names_the_kind_of_pod_that_does_not_fit() -> None:
    sim = cluster(8, 8)
    sim.add_gang("g", [("lead", 1, 1), ("w", 2, 2)], group_requests={"w": {"gpu": 1}})
    blocked = only(sim.full(), "g")
    assert blocked.message == (
        "needs 3 pods (2 x 1 cpu, 1Gi, 1 nvidia.com/gpu; 1 x 1 cpu, 1Gi) in podgroups lead,w; only 1 fit; "
        "podgroup w (1 cpu, 1Gi, 1 nvidia.com/gpu) fits on 0 nodes: 2 nodes lack nvidia.com/gpu "
        "(it would not fit even on the empty cluster)"
    )
    assert blocked.unsatisfiable


def test_tolerated_taints_and_gpus() -> None:
    sim = Sim()
    sim.add_node("cpu-0", cpu=64)
    sim.add_node(
        "gpu-0", cpu=64, gpu=8, taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    )
    tolerate = {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}
    sim.add_gang("train", size=2, cpu="8", gpu=4, pod_spec=tolerate)
    sim.add_gang("untolerated", size=1, gpu=1, created=1)
    decision = sim.full()
    assert placements(decision) == {"train-w-0": "gpu-0", "train-w-1": "gpu-0"}
    assert only(decision, "untolerated").node_reasons == {"insufficient:nvidia.com/gpu": 1, "taint": 1}


def test_decisions_pin_by_hostname() -> None:
    sim = Sim()
    sim.add_node("n0", cpu=4, hostname="host-zero")
    sim.add_node("odd", cpu=4, hostname=None)  # cannot be pinned to: never used
    sim.add_gang("g", size=2)
    decision = sim.full()
    assert placements(decision) == {"g-w-0": "n0", "g-w-1": "n0"}
    sim.execute(decision, bind=False)
    assert sim.pods["g-w-0"]["spec"]["nodeSelector"] == {HOSTNAME: "host-zero"}
    assert sim.model.free("n0").get("cpu") == 2000  # the reservation counts


# --- the raw-object entry point ------------------------------------------------------------------------


def test_decide_on_raw_podgangs_with_priorities() -> None:
    sim = cluster(4)
    sim.add_gang("low", size=4, created=0, priority_class="low")
    sim.add_gang("high", size=4, created=9, priority_class="high")
    values = {"low": 1, "high": 2}
    planner = Planner(sim.config)
    objects = list(sim.podgangs.values())
    decision = planner.decide(sim.model, objects, 10.0, lambda pg: values[pg["spec"]["priorityClassName"]])
    assert admitted_names(decision) == ["high"]
    assert planner.decide(sim.model, objects, 10.0, lambda pg: 0) != decision  # priorities re-read
    gangs = [Gang.from_podgang(o, priority=values[o["spec"]["priorityClassName"]]) for o in objects]
    assert plan(sim.model, gangs, 10.0) == decision
    planner.close()


def test_a_topology_that_no_domain_could_ever_hold_holds_nobody_back() -> None:
    sim = Sim(PlanConfig(starvation_seconds=60))
    zones(sim, {"zone-a": [4, 4], "zone-b": [4, 4]})
    sim.add_gang("wide", size=10, created=0, pack={"required": ZONE})
    sim.add_gang("small", size=2, created=10)
    decision = sim.full(now=1000)
    assert admitted_names(decision) == ["small"]
    wide = only(decision, "wide")
    assert (wide.reason, wide.unsatisfiable, wide.starving) == (pg.REASON_TOPOLOGY, True, False)


def test_admitted_gang_with_nothing_released_after_a_restart_queues_again() -> None:
    """The Admitted condition was written, then the admitter stopped before releasing any pod: nothing of
    the gang is placed, so it is un-admitted and queues again, all or nothing (here: in zone-b, the only
    zone that holds it whole)."""
    sim = Sim()
    zones(sim, {"zone-a": [2], "zone-b": [4, 4]})
    sim.add_gang("g", size=5, pack={"required": ZONE}, admitted_at=0)
    decision = sim.full(now=1)
    assert decision.unadmit == (Unadmit(NS, "g", UNADMITTED),)
    assert decision.admit == () and decision.release == () and decision.blocked == ()
    sim.execute(decision, now=1)
    (admit,) = sim.full(now=2).admit
    assert {label_of(sim, n, ZONE) for n in admit.placements.values()} == {"zone-b"}
    assert len(admit.placements) == 5


def test_admitted_gang_partly_released_after_a_restart_keeps_to_its_domain() -> None:
    """One pod was released (into zone-a) before the restart: the rest are its replacements, placed all
    together in zone-a or not at all, even though zone-b could hold them."""
    sim = Sim()
    zones(sim, {"zone-a": [2], "zone-b": [4, 4]})
    sim.add_gang("g", size=3, pack={"required": ZONE}, admitted_at=0)
    sim.release("g-w-0", "zone-a-0", bind=False)
    decision = sim.full(now=1)
    assert decision.release == () and decision.unadmit == ()
    (blocked,) = decision.restore_blocked
    assert (blocked.reason, blocked.replacements, blocked.needed, blocked.fitting) == (
        pg.REASON_TOPOLOGY,
        True,
        2,
        1,
    )
    assert blocked.message == (
        "needs 2 replacement pods (1 cpu, 1Gi each) in podgroup w; gang runs in "
        "topology.kubernetes.io/zone=zone-a, which has room for only 1 of these 2 pods"
    )
    sim.nodes["zone-a-0"]["status"]["allocatable"]["cpu"] = "3"
    sim.model.upsert_node(sim.nodes["zone-a-0"])
    again = sim.full(now=2)
    assert [(r.pod, r.node) for r in again.release] == [("g-w-1", "zone-a-0"), ("g-w-2", "zone-a-0")]

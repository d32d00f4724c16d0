"""Admitted gangs below their minimum: replacements all together or none, and gangs whose every pod was
recreated queue again. Each pass is checked against a long-lived incremental Planner too."""

from __future__ import annotations

import copy
from typing import Any

from admitter.core.decision import Decision, Release, Reset, Unadmit
from admitter.core.plan import PlanConfig, Planner
from grove_api import constants as c
from grove_api import podgang as pg

from .builders import NS, Sim, admitted_names, blocked_names

ZONE, RACK = "topology.kubernetes.io/zone", "topology.grove.io/rack"
UNADMITTED = (
    "no pod of the gang is bound or released any more (its pods were recreated): "
    "it queues again as a new gang, all or nothing"
)


class Run:
    """A Sim with a Planner that lives through every pass; each pass must equal a full pass."""

    def __init__(self, *cpus: int, config: PlanConfig | None = None, **node_kw: Any) -> None:
        self.sim = Sim(config)
        for i, cpu in enumerate(cpus):
            self.sim.add_node(f"n{i}", cpu=cpu, **node_kw)
        self.planner: Planner | None = None

    def plan(self, now: float = 0.0, settled: bool = True) -> Decision:
        if self.planner is None:
            self.planner = Planner(self.sim.config, self.sim.model)
        gangs = self.sim.gangs()
        decision = self.planner.plan(gangs, now, settled)
        assert decision == self.sim.full(now, settled)
        return decision

    def step(self, now: float = 0.0, settled: bool = True) -> Decision:
        decision = self.plan(now, settled)
        self.sim.execute(decision, now=now)
        return decision


def replace_pods(sim: Sim, names: list[str], created: float) -> None:
    """Pods of a running gang fail and are recreated (gated, same spec) by the reconciler."""
    for name in names:
        old = sim.pods[name]
        sim.delete_pod(name)
        requests = old["spec"]["containers"][0]["resources"]["requests"]
        labels = old["metadata"]["labels"]
        sim.add_pod(
            name,
            gang=labels[c.LABEL_PODGANG],
            clique=labels[c.LABEL_PODCLIQUE],
            cpu=requests.get("cpu"),
            memory=requests.get("memory"),
            created=created,
        )


# --- replacements: all or nothing ----------------------------------------------------------------------


def test_two_replacements_with_room_for_one_release_none_then_both_in_one_pass() -> None:
    run = Run(2, 2)
    sim = run.sim
    sim.add_gang("g", size=4)
    run.step()  # g-w-0, g-w-1 on n0; g-w-2, g-w-3 on n1
    replace_pods(sim, ["g-w-2", "g-w-3"], created=100)
    sim.add_pod("hog", cpu="1", gated=False, node_name="n1")  # someone took half of n1 meanwhile
    decision = run.plan(now=100)
    assert decision.release == () and decision.reset == () and decision.unadmit == ()
    (blocked,) = decision.restore_blocked
    assert (blocked.key, blocked.reason, blocked.needed, blocked.fitting, blocked.replacements) == (
        (NS, "g"),
        pg.REASON_UNSCHEDULABLE,
        2,
        1,
        True,
    )
    assert blocked.message == (
        "needs 2 replacement pods (1 cpu, 1Gi each) in podgroup w; only 1 fit (on 1 node): 1 node lacks cpu"
    )
    assert all(sim.model.pod(NS, p).state.value == "gated" for p in ("g-w-2", "g-w-3"))  # type: ignore[union-attr]
    sim.delete_pod("hog")
    again = run.plan(now=101)
    assert again.release == (Release(NS, "g", "g-w-2", "n1"), Release(NS, "g", "g-w-3", "n1"))
    assert again.restore_blocked == ()


def test_replacements_go_before_new_gangs_and_blocked_ones_do_not_hold_them() -> None:
    run = Run(2, 2)
    sim = run.sim
    sim.add_gang("g", size=4)
    run.step()
    replace_pods(sim, ["g-w-3"], created=100)
    sim.add_gang("new", size=1, created=-5)  # older than g's replacement, but a new gang
    decision = run.plan(now=100)
    assert decision.release == (Release(NS, "g", "g-w-3", "n1"),)
    assert blocked_names(decision) == ["new"]
    # two replacements, room for one: no head-of-line blocking, the new gang takes the free cpu
    run.sim.execute(decision, now=100)
    replace_pods(sim, ["g-w-2", "g-w-3"], created=110)
    sim.add_pod("hog", cpu="1", gated=False, node_name="n1")
    decision = run.plan(now=110)
    assert [b.gang for b in decision.restore_blocked] == ["g"] and admitted_names(decision) == ["new"]


def test_replacements_of_a_scaling_group_replica_stay_together_in_one_rack() -> None:
    """A scaling-group replica (podgroups b and c, packed into one rack) was recreated while podgroup a
    runs on: its pods choose a rack that holds both, where releasing them one by one would put the first
    on the tightest node (rack r0) and leave the second gated."""
    run = Run()
    sim = run.sim
    for name, rack in (("r0-n0", "r0"), ("r1-n0", "r1"), ("r1-n1", "r1"), ("r2-n0", "r2")):
        sim.add_node(name, cpu=1, labels={RACK: rack})
    sim.add_gang(
        "g", [("a", 1, 1), ("b", 1, 1), ("c", 1, 1)], configs=[("sg", ["b", "c"], {"required": RACK})]
    )
    sim.podgangs["g"] = sim.podgangs["g"] | {
        "status": {
            "conditions": [
                {"type": "Admitted", "status": "True", "lastTransitionTime": "1970-01-01T00:00:00Z"}
            ]
        }
    }
    sim.release("g-a-0", "r2-n0", bind=True)
    decision = run.plan(now=1)
    assert sorted((r.pod, r.node) for r in decision.release) == [("g-b-0", "r1-n0"), ("g-c-0", "r1-n1")]


def test_replacements_keep_to_the_zone_of_the_running_pods() -> None:
    run = Run()
    sim = run.sim
    for zone, cpus in (("zone-a", [2, 2]), ("zone-b", [4, 4])):
        for i, cpu in enumerate(cpus):
            sim.add_node(f"{zone}-{i}", cpu=cpu, labels={ZONE: zone})
    sim.add_gang("g", size=4, pack={"required": ZONE})
    run.step()  # the tightest zone that holds it: zone-a
    replace_pods(sim, ["g-w-2", "g-w-3"], created=100)
    sim.add_pod("hog", cpu="1", gated=False, node_name="zone-a-1")
    (blocked,) = run.plan(now=100).restore_blocked
    assert blocked.reason == pg.REASON_TOPOLOGY and blocked.best_domain == ("zone-a", 1)
    assert blocked.message == (
        "needs 2 replacement pods (1 cpu, 1Gi each) in podgroup w; gang runs in "
        "topology.kubernetes.io/zone=zone-a, which has room for only 1 of these 2 pods"
    )
    sim.delete_pod("hog")
    assert {r.node for r in run.plan(now=101).release} == {"zone-a-1"}


def test_preferred_zone_replacements_fall_back_to_anywhere() -> None:
    run = Run()
    sim = run.sim
    for zone, cpus in (("zone-a", [2, 2]), ("zone-b", [4, 4])):
        for i, cpu in enumerate(cpus):
            sim.add_node(f"{zone}-{i}", cpu=cpu, labels={ZONE: zone})
    sim.add_gang("g", size=4, pack={"preferred": ZONE})
    run.step()
    assert {sim.pods[f"g-w-{i}"]["spec"]["nodeName"] for i in range(4)} == {"zone-a-0", "zone-a-1"}
    replace_pods(sim, ["g-w-2", "g-w-3"], created=100)
    sim.add_pod("hog", cpu="1", gated=False, node_name="zone-a-1")
    # zone-a has room for one only: the pair is placed without the constraint (best fit), in one pass
    assert [r.node for r in run.plan(now=100).release] == ["zone-a-1", "zone-b-0"]


def test_replacements_wait_until_all_of_them_exist_and_missing_pods_do_not_reset() -> None:
    """A pod not recreated yet is on its way (as a young one is): no reset, even long after admission, and
    nothing is released until every replacement exists."""
    run = Run(4, config=PlanConfig(bind_timeout_seconds=60))
    sim = run.sim
    sim.add_gang("g", size=3)
    run.step()
    sim.delete_pod("g-w-1")
    sim.delete_pod("g-w-2")
    assert run.plan(now=1000) == Decision()
    sim.add_pod("g-w-1", gang="g", clique="w", created=1000)
    assert run.plan(now=1000) == Decision()
    sim.add_pod("g-w-2", gang="g", clique="w", created=1001)
    assert [r.pod for r in run.plan(now=1001).release] == ["g-w-1", "g-w-2"]


def test_extras_of_a_gang_with_blocked_replacements_wait() -> None:
    run = Run(2, 1)
    sim = run.sim
    sim.add_gang("g", [("a", 2, 2), ("b", 1, 2)], group_requests={"a": {"cpu": "2"}})
    run.step()  # a on n0 (2 cpu) ... only one a fits: the gang is blocked; make room
    sim.nodes["n0"]["status"]["allocatable"]["cpu"] = "4"
    sim.model.upsert_node(sim.nodes["n0"])
    first = run.step(now=1)
    assert admitted_names(first) == ["g"] and sorted(first.admit[0].placements) == [
        "g-a-0",
        "g-a-1",
        "g-b-0",
    ]
    replace_pods(sim, ["g-a-1"], created=100)
    sim.add_pod("hog", cpu="1", gated=False, node_name="n0")  # n0 now has 1 cpu free; n1 has 1
    decision = run.plan(now=100)
    assert [b.gang for b in decision.restore_blocked] == ["g"]
    assert decision.release == ()  # b's extra (1 cpu) would fit, but the gang is below its minimum


def test_blocked_replacements_defer_lower_tiers_until_capacity_settles() -> None:
    run = Run(2, 2)
    sim = run.sim
    sim.add_gang("g", size=4)
    run.step()
    replace_pods(sim, ["g-w-2", "g-w-3"], created=100)
    sim.add_pod("hog", cpu="1", gated=False, node_name="n1")
    sim.add_gang("new", size=1, created=50)
    early = run.plan(now=100, settled=False)
    assert early.deferred and early.admit == () and early.blocked == ()
    late = run.plan(now=100, settled=True)
    assert not late.deferred and admitted_names(late) == ["new"]


def test_starving_replacements_hold_newer_gangs_back() -> None:
    run = Run(2, 2, config=PlanConfig(starvation_seconds=30, bind_timeout_seconds=60))
    sim = run.sim
    sim.add_gang("g", size=4)
    run.step()
    replace_pods(sim, ["g-w-2", "g-w-3"], created=100)
    sim.add_pod("hog", cpu="1", gated=False, node_name="n1")
    sim.add_gang("new", size=1, created=120)
    assert admitted_names(run.plan(now=110)) == ["new"]  # waited 10 s: not starving yet
    decision = run.plan(now=140)
    assert decision.admit == ()
    (restore,) = decision.restore_blocked
    assert restore.starving
    held = decision.blocked[0]
    assert (held.gang, held.reason, held.held_for) == ("new", pg.REASON_HELD, (NS, "g"))
    assert (
        held.message
        == "held back: capacity is kept for the replacement pods of default/g, which have waited 40 s"
    )


def test_replacements_blocked_past_the_bind_timeout_reset_the_gang_which_queues_again() -> None:
    run = Run(2, 2, config=PlanConfig(bind_timeout_seconds=60))
    sim = run.sim
    sim.add_gang("g", size=4)
    run.step()
    replace_pods(sim, ["g-w-2", "g-w-3"], created=100)
    sim.add_pod("hog", cpu="1", gated=False, node_name="n1")
    assert run.plan(now=160).reset == ()
    decision = run.step(now=161)
    assert decision.reset == (
        Reset(NS, "g", "minimum not bound 60 s after admission: podgroup w has 2/4 pods bound", ()),
    )
    queued = run.plan(now=162)  # a new gang now, for its two missing pods: all or nothing
    (blocked,) = queued.blocked
    assert (blocked.gang, blocked.needed, blocked.fitting, blocked.replacements) == ("g", 2, 1, False)
    sim.delete_pod("hog")
    assert [(a.gang, sorted(a.placements)) for a in run.plan(now=163).admit] == [("g", ["g-w-2", "g-w-3"])]


# --- recreated gangs -------------------------------------------------------------------------------------


def test_recreated_gang_is_unadmitted_and_queues_again_all_or_nothing() -> None:
    run = Run(*[1] * 10, config=PlanConfig(starvation_seconds=60))
    sim = run.sim
    sim.add_gang("g", size=10)
    run.step()
    sim.recreate("g", now=100)  # gang termination: every pod deleted and recreated, the PodGang stays
    sim.add_pod("other", cpu="1", gated=False, node_name="n9")  # room for 9 of 10 now
    first = run.plan(now=100)
    assert first.unadmit == (Unadmit(NS, "g", UNADMITTED),)
    assert first.admit == () and first.release == () and first.restore_blocked == () and first.reset == ()
    sim.execute(first, now=100)
    second = run.step(now=101)
    assert second.admit == () and second.release == ()
    (blocked,) = second.blocked
    assert (blocked.gang, blocked.needed, blocked.fitting) == ("g", 10, 9)
    assert all(sim.pods[f"g-w-{i}"]["spec"]["schedulingGates"] for i in range(10))
    sim.delete_pod("other")
    third = run.step(now=102)
    assert admitted_names(third) == ["g"] and len(third.admit[0].placements) == 10
    assert run.plan(now=103) == Decision()


def test_gang_without_pods_is_left_alone_until_recreated_pods_appear() -> None:
    """Every pod gone (a teardown or scale-in, or pods between deletion and re-creation): no reset and no
    un-admission, so deleting a PodCliqueSet writes nothing per gang; once recreated pods wait, the gang
    is un-admitted (not reset) and queues as a new gang."""
    run = Run(4, config=PlanConfig(bind_timeout_seconds=60))
    sim = run.sim
    sim.add_gang("g", size=2)
    run.step()
    snapshot = {name: copy.deepcopy(sim.pods[name]) for name in ("g-w-0", "g-w-1")}
    for name in snapshot:
        sim.delete_pod(name)
    decision = run.plan(now=1000)  # long after admission: the reset would fire, but nothing is placed
    assert decision.unadmit == () and decision.reset == () and decision.release == ()
    for name, old in snapshot.items():  # recreated, gated
        sim.pods[name] = old
    sim.recreate("g", now=1000)
    decision = run.plan(now=1000)
    assert decision.unadmit == (Unadmit(NS, "g", UNADMITTED),) and decision.reset == ()


def test_gang_with_a_pod_still_bound_is_not_unadmitted() -> None:
    run = Run(4)
    sim = run.sim
    sim.add_gang("g", size=3)
    run.step()
    replace_pods(sim, ["g-w-1", "g-w-2"], created=100)
    decision = run.plan(now=100)
    assert decision.unadmit == ()
    assert [r.pod for r in decision.release] == ["g-w-1", "g-w-2"]


def test_readmitted_gang_gets_a_fresh_bind_timeout() -> None:
    """After the un-admission is recorded, admission is recorded afresh: its bind timeout counts from
    there, not from the first admission long ago."""
    run = Run(4, config=PlanConfig(bind_timeout_seconds=60))
    sim = run.sim
    sim.add_gang("g", size=2)
    run.step(now=0)
    sim.recreate("g", now=0)  # pods created at 0, recreated long before they are placed again
    run.step(now=500)  # un-admitted
    readmit = run.plan(now=600)
    assert admitted_names(readmit) == ["g"]
    sim.execute(readmit, now=600, bind=False)
    assert run.plan(now=601).reset == ()
    assert run.plan(now=661).reset != ()

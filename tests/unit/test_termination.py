"""Gang termination in the planner (docs/termination-and-updates.md), against the in-memory world with a
controlled clock: which PodCliques are recreated after terminationDelay, which are left alone, and that a
recycled gang is not recycled again while it waits for capacity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from grove_api import constants as c
from grove_api.refs import Ref
from reconciler.planner.plan import Plan
from tests import builders as b
from tests.fakes.world import World, create_pcs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def workload(
    pc_a: tuple[int, int] = (2, 2), pc_c: tuple[int, int] = (3, 3), group_min: int = 2, delay: str = "10s"
) -> dict:
    """Grove's e2e WL shape: pc-a standalone; sg-x = {pc-b x1, pc-c x3} with 2 replicas."""
    return b.pcs(
        "w",
        cliques=[
            b.clique("pc-a", replicas=pc_a[0], min_available=pc_a[1]),
            b.clique("pc-b", replicas=1, min_available=1),
            b.clique("pc-c", replicas=pc_c[0], min_available=pc_c[1]),
        ],
        groups=[b.group("sg-x", ["pc-b", "pc-c"], replicas=2, min_available=group_min)],
        termination_delay=delay,
    )


def step(world: World, run: bool = True) -> Plan:
    return world.step("default", "w", run)


def settle(world: World, run: bool = True, passes: int = 6) -> list[Plan]:
    return [step(world, run) for _ in range(passes)]


def running(doc: dict) -> World:
    world = World(clock=T0)
    create_pcs(world, doc)
    settle(world)
    return world


def uids(world: World, podclique_prefix: str = "") -> set[str]:
    return {
        p["metadata"]["uid"]
        for p in world.of_kind("Pod")
        if p["metadata"]["labels"][c.LABEL_PODCLIQUE].startswith(podclique_prefix)
    }


def kill(world: World, podclique: str, count: int = 1) -> None:
    pods = [p for p in world.of_kind("Pod") if p["metadata"]["labels"][c.LABEL_PODCLIQUE] == podclique]
    for pod in pods[:count]:
        world.delete(Ref("v1", "Pod", "default", pod["metadata"]["name"]))


def events(plans: list[Plan]) -> list[str]:
    return [e.reason for p in plans for e in p.events]


def test_breached_standalone_podclique_recreates_the_whole_replica_after_the_delay() -> None:
    world = running(workload())
    before = uids(world)
    kill(world, "w-0-pc-a")
    first = settle(world, run=False, passes=3)  # the replacement is not scheduled (no capacity)
    assert first[-1].requeue_after is not None and 0 < first[-1].requeue_after <= 10
    assert "PodCliqueSetReplicaDeleteSuccessful" not in events(first)
    pclq = world.get("PodClique", "default", "w-0-pc-a")
    assert pclq is not None
    breached = [x for x in pclq["status"]["conditions"] if x["type"] == c.CONDITION_MIN_AVAILABLE_BREACHED]
    assert breached[0]["status"] == "True" and breached[0]["reason"] == "ScheduledReplicasBelowMinAvailable"

    world.clock = T0 + timedelta(seconds=11)
    after = settle(world, run=False)
    assert "PodCliqueSetReplicaDeleteSuccessful" in events(after)
    assert len(world.of_kind("Pod")) == 10 and not uids(world) & before
    group = world.get("PodCliqueScalingGroup", "default", "w-0-sg-x")
    assert group is not None
    assert any(x["type"] == c.CONDITION_GANG_TERMINATION_IN_PROGRESS for x in group["status"]["conditions"])

    # Waiting for capacity, the recreated gang is never recycled again.
    world.clock = T0 + timedelta(seconds=60)
    again = settle(world, run=False)
    assert "PodCliqueSetReplicaDeleteSuccessful" not in events(again)
    # Capacity returns: whole again, the flag clears.
    settle(world)
    group = world.get("PodCliqueScalingGroup", "default", "w-0-sg-x")
    assert group is not None
    assert all(x["type"] != c.CONDITION_GANG_TERMINATION_IN_PROGRESS for x in group["status"]["conditions"])


def test_pod_loss_within_the_minimum_terminates_nothing() -> None:
    world = running(workload(pc_a=(2, 1), pc_c=(3, 1), group_min=1))
    before = uids(world)
    kill(world, "w-0-pc-a")
    world.clock = T0 + timedelta(seconds=30)
    plans = settle(world, run=False)
    assert not events(plans)
    assert len(before - uids(world)) == 1  # only the killed pod is gone (its replacement is new)


def test_breached_group_replica_is_recreated_alone_when_the_group_keeps_its_minimum() -> None:
    world = running(workload(pc_a=(2, 1), pc_c=(3, 1), group_min=1))
    keep = uids(world, "w-0-pc-a") | uids(world, "w-0-sg-x-1-")
    kill(world, "w-0-sg-x-0-pc-c", count=3)
    settle(world, run=False, passes=3)
    world.clock = T0 + timedelta(seconds=11)
    plans = settle(world, run=False)
    assert events(plans).count("PodCliqueScalingGroupReplicaDeleteSuccessful") == 2  # on the PCSG and PCS
    assert "PodCliqueSetReplicaDeleteSuccessful" not in events(plans)
    assert keep <= uids(world)
    assert world.get("PodClique", "default", "w-0-sg-x-0-pc-c") is not None


def test_breached_group_below_its_minimum_recreates_the_whole_replica() -> None:
    world = running(workload())  # sg-x minAvailable 2 of 2 replicas
    before = uids(world)
    kill(world, "w-0-sg-x-0-pc-c")
    settle(world, run=False, passes=3)
    group = world.get("PodCliqueScalingGroup", "default", "w-0-sg-x")
    assert group is not None
    breached = [x for x in group["status"]["conditions"] if x["type"] == c.CONDITION_MIN_AVAILABLE_BREACHED]
    assert breached[0]["status"] == "True"
    world.clock = T0 + timedelta(seconds=11)
    plans = settle(world, run=False)
    assert "PodCliqueSetReplicaDeleteSuccessful" in events(plans)
    assert "PodCliqueScalingGroupReplicaDeleteSuccessful" not in events(plans)
    assert not uids(world) & before


def test_never_scheduled_gang_is_left_alone() -> None:
    world = World(clock=T0)
    create_pcs(world, workload())
    settle(world, run=False)  # no capacity from the start: nothing ever scheduled
    before = uids(world)
    world.clock = T0 + timedelta(hours=1)
    plans = settle(world, run=False)
    assert not events(plans) and uids(world) == before


def test_recreated_podclique_comes_back_with_its_template_replicas() -> None:
    world = running(workload())
    pclq = world.get("PodClique", "default", "w-0-pc-a")
    assert pclq is not None
    pclq["spec"]["replicas"] = 4  # kubectl scale pclq
    settle(world)
    kill(world, "w-0-pc-a", count=3)
    settle(world, run=False, passes=3)
    world.clock = T0 + timedelta(seconds=11)
    settle(world, run=False)
    pclq = world.get("PodClique", "default", "w-0-pc-a")
    assert pclq is not None and pclq["spec"]["replicas"] == 2


def test_no_termination_while_the_podclique_is_updating() -> None:
    """A rolling update reports MinAvailableBreached=Unknown, so the pod it takes down is no breach."""
    world = running(workload(pc_c=(3, 3)))
    pcs = world.get("PodCliqueSet", "default", "w")
    assert pcs is not None
    pcs["spec"]["template"]["cliques"][0]["spec"]["podSpec"]["containers"][0]["env"] = [
        {"name": "UPDATE_TRIGGER", "value": "1"}
    ]
    plans = settle(world, run=False, passes=3)  # the replacement never becomes Ready
    world.clock = T0 + timedelta(seconds=60)
    plans += settle(world, run=False, passes=3)
    assert "PodCliqueSetReplicaDeleteSuccessful" not in events(plans)
    pclq = world.get("PodClique", "default", "w-0-pc-a")
    assert pclq is not None
    breached = [x for x in pclq["status"]["conditions"] if x["type"] == c.CONDITION_MIN_AVAILABLE_BREACHED]
    assert breached[0]["status"] == "Unknown"

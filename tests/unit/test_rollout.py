"""Rolling updates in the planner (docs/termination-and-updates.md), against the in-memory world: one
PodCliqueSet replica at a time, one Ready pod per standalone PodClique and one replica per scaling group at a
time, OnDelete, progress and conditions, capacity-aware replacement, and no restart of pods whose template did
not change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from grove_api import constants as c
from grove_api import hashing
from grove_api.refs import Ref
from reconciler.planner.actions import Delete
from reconciler.planner.plan import Plan
from reconciler.planner.snapshot import PodKey
from tests import builders as b
from tests.fakes.world import World, create_pcs


def workload(replicas: int = 2, strategy: str | None = None) -> dict[str, Any]:
    doc = b.pcs(
        "w",
        replicas=replicas,
        cliques=[
            b.clique("pc-a", replicas=2, min_available=1),
            b.clique("pc-b", replicas=1, min_available=1),
            b.clique("pc-c", replicas=3, min_available=1),
        ],
        groups=[b.group("sg-x", ["pc-b", "pc-c"], replicas=2, min_available=1)],
    )
    if strategy:
        doc["spec"]["updateStrategy"] = {"type": strategy}
    return doc


def step(world: World, run: bool = True) -> Plan:
    return world.step("default", "w", run)


def running(doc: dict[str, Any]) -> World:
    world = World()
    create_pcs(world, doc)
    for _ in range(6):
        step(world)
    return world


def pcs(world: World) -> dict[str, Any]:
    obj = world.get("PodCliqueSet", "default", "w")
    assert obj is not None
    return obj


def trigger(world: World, cliques: Sequence[int] = (0,), value: str = "1") -> None:
    for i in cliques:
        container = pcs(world)["spec"]["template"]["cliques"][i]["spec"]["podSpec"]["containers"][0]
        container["env"] = [{"name": "UPDATE_TRIGGER", "value": value}]


def pods(world: World) -> list[dict[str, Any]]:
    return world.of_kind("Pod")


def label(pod: dict[str, Any], key: str) -> str:
    return str(pod["metadata"]["labels"].get(key, ""))


def deleted(result: Plan, kind: str) -> list[str]:
    return [a.ref.name for a in result.actions if isinstance(a, Delete) and a.ref.kind == kind]


def run_update(world: World, passes: int = 60) -> list[Plan]:
    plans = []
    for _ in range(passes):
        result = step(world)
        plans.append(result)
        if not result.actions and not result.held_statuses:
            return plans
    raise AssertionError("update did not converge")


def test_rolling_recreate_one_replica_one_pod_one_group_replica_at_a_time() -> None:
    world = running(workload())
    trigger(world, cliques=(0, 2))
    hashes = hashing.clique_template_hashes(pcs(world))
    by_name = {p["metadata"]["name"]: p for p in pods(world)}
    replicas_touched: list[int] = []
    for result in run_update(world):
        pod_deletes = [by_name[n] for n in deleted(result, "Pod") if n in by_name]
        standalone = [p for p in pod_deletes if not label(p, c.LABEL_PCSG)]
        # One Ready pod per standalone PodClique per pass, one scaling-group replica per group.
        per_clique = [label(p, c.LABEL_PODCLIQUE) for p in standalone]
        assert len(per_clique) == len(set(per_clique))
        group_replicas = {(label(p, c.LABEL_PCSG), label(p, c.LABEL_PCSG_REPLICA_INDEX)) for p in pod_deletes}
        group_replicas = {g for g in group_replicas if g[0]}
        assert len({g for g, _ in group_replicas}) == len(group_replicas)
        touched = {int(label(p, c.LABEL_PCS_REPLICA_INDEX)) for p in pod_deletes}
        assert len(touched) <= 1, "two PodCliqueSet replicas updated at once"
        replicas_touched += sorted(touched)
        by_name.update({p["metadata"]["name"]: p for p in pods(world)})
    # Replica 0 finished before replica 1 began.
    assert replicas_touched == sorted(replicas_touched) and set(replicas_touched) == {0, 1}
    for pod in pods(world):
        clique = label(pod, c.LABEL_PODCLIQUE).rsplit("-", 2)[-2:]
        assert label(pod, c.LABEL_POD_TEMPLATE_HASH) == hashes["-".join(clique)]
    status = pcs(world)["status"]
    assert (
        status["updateProgress"].get("updateEndedAt") and "currentlyUpdating" not in status["updateProgress"]
    )
    assert status["updatedReplicas"] == 2
    (condition,) = [x for x in status["conditions"] if x["type"] == "UpdateInProgress"]
    assert (condition["status"], condition["reason"]) == ("False", "UpdateComplete")


def test_unchanged_templates_restart_nothing() -> None:
    world = running(workload())
    before = {p["metadata"]["uid"] for p in pods(world)}
    doc = pcs(world)
    doc["spec"]["template"]["cliques"][0]["spec"]["minAvailable"] = 2
    doc["spec"]["template"]["podCliqueScalingGroups"][0]["replicas"] = 3
    run_update(world)
    assert {p["metadata"]["uid"] for p in pods(world)} == before
    assert not [x for x in pcs(world)["status"].get("conditions") or [] if x["type"] == "UpdateInProgress"]


class NoRoom:
    def __init__(self) -> None:
        self.asked: list[Sequence[tuple[PodKey | None, Mapping[str, Any]]]] = []

    def fits(self, pairs: Sequence[tuple[PodKey | None, Mapping[str, Any]]]) -> bool:
        self.asked.append(pairs)
        return False


def test_no_room_for_the_replacement_deletes_nothing_and_says_so() -> None:
    world = running(workload())
    world.gang_admission, world.room = True, (room := NoRoom())
    trigger(world)
    before = {p["metadata"]["uid"] for p in pods(world)}
    plans = [step(world) for _ in range(4)]
    assert {p["metadata"]["uid"] for p in pods(world)} == before
    assert room.asked and all(len(pairs) == 1 for pairs in room.asked)
    assert plans[-1].requeue_after is not None
    (condition,) = [x for x in pcs(world)["status"]["conditions"] if x["type"] == "UpdateInProgress"]
    assert (condition["status"], condition["reason"]) == ("True", "WaitingForCapacity")
    assert "no room for the replacement of pod" in condition["message"]
    assert [e.reason for p in plans for e in p.events].count("WaitingForCapacity") == 1
    world.room = None  # capacity is back
    run_update(world)
    assert pcs(world)["status"]["updateProgress"].get("updateEndedAt")


def test_on_delete_deletes_nothing_and_new_pods_take_the_new_template() -> None:
    world = running(workload(strategy=c.UPDATE_ON_DELETE))
    before = {p["metadata"]["uid"] for p in pods(world)}
    trigger(world, cliques=(0, 2))
    run_update(world)
    assert {p["metadata"]["uid"] for p in pods(world)} == before
    progress = pcs(world)["status"]["updateProgress"]
    assert progress["updateStartedAt"] and progress["updateEndedAt"] and "currentlyUpdating" not in progress
    new_hash = hashing.clique_template_hashes(pcs(world))["pc-a"]
    victim = next(p for p in pods(world) if label(p, c.LABEL_PODCLIQUE) == "w-0-pc-a")
    world.delete(Ref("v1", "Pod", "default", victim["metadata"]["name"]))
    run_update(world)
    pc_a = [p for p in pods(world) if label(p, c.LABEL_PODCLIQUE) == "w-0-pc-a"]
    assert sorted(label(p, c.LABEL_POD_TEMPLATE_HASH) == new_hash for p in pc_a) == [False, True]
    # Scale-in takes the outdated pod.
    pclq = world.get("PodClique", "default", "w-0-pc-a")
    assert pclq is not None
    pclq["spec"]["replicas"] = 1
    run_update(world)
    (left,) = [p for p in pods(world) if label(p, c.LABEL_PODCLIQUE) == "w-0-pc-a"]
    assert label(left, c.LABEL_POD_TEMPLATE_HASH) == new_hash
    # Group members are patched in place (no replica recreated) under OnDelete.
    member = world.get("PodClique", "default", "w-0-sg-x-0-pc-c")
    assert member is not None
    assert (
        member["metadata"]["labels"][c.LABEL_POD_TEMPLATE_HASH]
        == hashing.clique_template_hashes(pcs(world))["pc-c"]
    )


def test_a_restarted_operator_carries_on_with_the_replica_it_began() -> None:
    world = running(workload())
    trigger(world)
    step(world)  # replica 0 selected, its first pc-a pod replaced
    step(world)
    status = pcs(world)["status"]
    assert status["updateProgress"]["currentlyUpdating"][0]["replicaIndex"] == 0
    # The selection is lost (say the status write never landed before a crash): replica 0 has begun, so it
    # is still the one to finish first.
    del status["updateProgress"]["currentlyUpdating"]
    result = step(world)
    assert pcs(world)["status"]["updateProgress"]["currentlyUpdating"][0]["replicaIndex"] == 0
    assert all(n.startswith("w-0-") for n in deleted(result, "Pod"))
    run_update(world)
    assert pcs(world)["status"]["updateProgress"].get("updateEndedAt")


def test_scale_out_during_the_update_is_built_new_and_not_recycled() -> None:
    world = running(workload(replicas=1))
    trigger(world)
    step(world)
    pcs(world)["spec"]["replicas"] = 2
    plans = run_update(world)
    assert not any(n.startswith("w-1-") for p in plans for n in deleted(p, "Pod"))
    assert pcs(world)["status"]["updatedReplicas"] == 2


class AlwaysRoom:
    def fits(self, pairs: Sequence[tuple[PodKey | None, Mapping[str, Any]]]) -> bool:
        return True


def test_a_gang_waiting_for_capacity_does_not_hold_the_update() -> None:
    """Nothing of it runs (its PodGang is not admitted): its pods are simply rebuilt on the new template,
    and the update goes on instead of waiting for them to become Ready."""
    world = World()
    create_pcs(world, workload(replicas=1))
    world.gang_admission, world.room = True, AlwaysRoom()
    for _ in range(6):
        step(world, run=False)
    trigger(world, cliques=(0, 2))
    for _ in range(12):
        step(world, run=False)
    hashes = hashing.clique_template_hashes(pcs(world))
    assert len(pods(world)) == 10
    for pod in pods(world):
        assert label(pod, c.LABEL_POD_TEMPLATE_HASH) == hashes[label(pod, c.LABEL_PODCLIQUE)[-4:]]
    assert pcs(world)["status"]["updateProgress"].get("updateEndedAt")


def test_podcliques_not_yet_updated_keep_their_current_hashes() -> None:
    world = running(workload())
    old = {q["metadata"]["name"]: dict(q["status"]) for q in world.of_kind("PodClique")}
    trigger(world)
    step(world)
    step(world)
    generation = hashing.generation_hash(pcs(world))
    waiting = world.get("PodClique", "default", "w-1-pc-a")  # replica 1 is not being updated yet
    assert waiting is not None
    assert waiting["status"]["currentPodCliqueSetGenerationHash"] != generation
    assert waiting["status"]["currentPodTemplateHash"] == old["w-1-pc-a"]["currentPodTemplateHash"]
    run_update(world)
    done = world.get("PodClique", "default", "w-1-pc-a")
    assert done is not None and done["status"]["currentPodCliqueSetGenerationHash"] == generation
    assert "readyPodsSelectedToUpdate" not in done["status"]["updateProgress"]


def test_templates_patched_in_a_row_keep_the_replica_being_updated() -> None:
    """RU-9: a new generation while replica 0 is mid-update. Replica 0 stays the one being updated, even
    when the PodCliqueSet status in the cache lags (no selection recorded) and replica 1 still reports a
    breach from before (a PodClique status written late): one replica in flight at a time."""
    world = running(workload())
    trigger(world, cliques=(0,))
    first = step(world, run=False)  # replica 0 selected, a pc-a pod deleted (its replacement not Ready)
    assert {n.split("-")[1] for n in deleted(first, "Pod")} == {"0"}
    step(world, run=False)
    trigger(world, cliques=(0,), value="2")  # patched again: replica 0's new pod is old already
    stale = pcs(world)["status"]["updateProgress"]
    stale.pop("currentlyUpdating", None)
    other = world.get("PodClique", "default", "w-1-pc-a")
    assert other is not None
    other["status"]["conditions"] = [
        {**x, "status": "True", "reason": "InsufficientReadyPods"}
        if x["type"] == "MinAvailableBreached"
        else x
        for x in other["status"]["conditions"]
    ]
    for _ in range(3):
        result = step(world, run=False)
        assert all(n.startswith("w-0-") for n in deleted(result, "Pod")), deleted(result, "Pod")
    assert pcs(world)["status"]["updateProgress"]["currentlyUpdating"][0]["replicaIndex"] == 0
    for _ in range(20):
        step(world)
    assert pcs(world)["status"]["updateProgress"].get("updateEndedAt")


def test_a_replaced_scaling_group_replica_takes_its_unbound_pods_along() -> None:
    """Pods not bound yet (gated, or released and waiting for the scheduler) are deleted with their
    PodClique, not left to the garbage collector: until it came they kept their gang's labels, and the gang
    admitter counted them with the gang's new pods (a gang seen partly released for seconds)."""
    world = running(workload(replicas=1))
    waiting = next(p for p in pods(world) if p["metadata"]["name"].startswith("w-0-sg-x-0-pc-c-"))
    waiting["spec"].pop("nodeName")
    waiting["spec"]["schedulingGates"] = [{"name": c.SCHEDULING_GATE_PODGANG_PENDING}]
    waiting["status"] = {"phase": "Pending"}
    replica = {p["metadata"]["name"] for p in pods(world) if p["metadata"]["name"].startswith("w-0-sg-x-0-")}
    trigger(world, cliques=(2,))
    result = step(world, run=False)
    assert set(deleted(result, "PodClique")) == {"w-0-sg-x-0-pc-b", "w-0-sg-x-0-pc-c"}
    assert waiting["metadata"]["name"] in deleted(result, "Pod")
    assert {n for n in deleted(result, "Pod") if n.startswith("w-0-sg-x-0-")} == replica

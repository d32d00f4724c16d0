"""The chaos suite's convergence check (tests/chaos/invariants.py): silent on exactly the intended state,
and it names each way a namespace can differ from it."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from grove_api import constants as c
from grove_api import naming
from tests.chaos.invariants import Expected, problems
from tests.chaos.lab import PHASES
from tests.chaos.run import phases_for
from tests.chaos.workload import GROUP, IMAGES, NAME, Shape

SHAPE = Shape(replicas=2, routers=2, groups=3, group_min=2, workers=2)
JSON = dict[str, Any]


def _obj(kind: str, name: str, owner: JSON | None, **extra: Any) -> JSON:
    meta: JSON = {"name": name, "uid": f"uid-{kind}-{name}", "generation": 1, "labels": {}}
    if owner is not None:
        meta["ownerReferences"] = [{"uid": owner["metadata"]["uid"], "controller": True}]
    return {"kind": kind, "metadata": meta, "spec": {}, "status": {"observedGeneration": 1}, **extra}


def world(expected: Expected) -> dict[str, list[JSON]]:
    """The objects of a namespace where the operator did everything right."""
    root = _obj("PodCliqueSet", NAME, None)
    root["status"]["availableReplicas"] = expected.replicas
    objects: dict[str, list[JSON]] = {"PodCliqueSet": [root]}
    names = expected.names()
    for kind in names:
        if kind in ("PodCliqueSet", "PodClique", "PodCliqueScalingGroup"):
            continue
        objects[kind] = [_obj(kind, n, root) for n in sorted(names[kind])]
    for gang in objects["PodGang"]:
        gang["status"]["phase"] = "Running"
    objects["PodCliqueScalingGroup"] = []
    for i in range(expected.replicas):
        sg = _obj("PodCliqueScalingGroup", naming.scaling_group(NAME, i, GROUP), root)
        sg["metadata"]["labels"][c.LABEL_PCS_REPLICA_INDEX] = str(i)
        sg["spec"]["replicas"] = sg["status"]["availableReplicas"] = expected.group_replicas(i)
        objects["PodCliqueScalingGroup"].append(sg)
    objects["PodClique"], objects["Pod"] = [], []
    for name, pods in expected.podcliques().items():
        pclq = _obj("PodClique", name, root)
        pclq["spec"]["replicas"] = pclq["status"]["readyReplicas"] = pods
        objects["PodClique"].append(pclq)
        for index in range(pods):
            pod = _obj("Pod", f"{name}-{index}x", pclq)
            pod["metadata"]["labels"] = {c.LABEL_PODCLIQUE: name, c.LABEL_POD_INDEX: str(index)}
            pod["spec"] = {"containers": [{"image": expected.image}], "nodeName": "node-1"}
            pod["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
            objects["Pod"].append(pod)
    ready = {"type": "Ready", "status": "True"}
    objects["Node"] = [{"metadata": {"name": "node-1"}, "spec": {}, "status": {"conditions": [ready]}}]
    return objects


def find(objects: dict[str, list[JSON]], kind: str, name_part: str = "") -> JSON:
    return next(o for o in objects[kind] if name_part in o["metadata"]["name"])


EXPECTED = Expected(SHAPE, replicas=2, image=IMAGES[0], groups={0: 4})


def test_the_intended_state_has_no_problems_and_counts_every_child() -> None:
    objects = world(EXPECTED)
    assert problems(EXPECTED, objects) == []
    assert len(objects["Pod"]) == SHAPE.routers * 2 + (4 + 3) * (1 + SHAPE.workers)
    assert len(objects["PodGang"]) == 2 + (4 - 2) + (3 - 2)  # base gangs + scaled gangs
    assert problems(Expected(SHAPE, replicas=0, image=IMAGES[0], deleted=True), {}) == []


def _duplicate_pod(o: dict[str, list[JSON]]) -> None:
    twin = copy.deepcopy(o["Pod"][0])
    twin["metadata"]["name"] += "-twin"
    o["Pod"].append(twin)


def _orphan(o: dict[str, list[JSON]]) -> None:
    o["PodClique"].append(_obj("PodClique", f"{NAME}-7-router", {"metadata": {"uid": "gone"}}))


def _leftover_finalizer(o: dict[str, list[JSON]]) -> None:
    find(o, "PodClique")["metadata"].update(deletionTimestamp="t", finalizers=[c.FINALIZER_PODCLIQUE])


@pytest.mark.parametrize(
    ("break_it", "says"),
    [
        (lambda o: o["Pod"].pop(), "pod indices"),
        (_duplicate_pod, "duplicate pod indices"),
        (_orphan, "not expected"),
        (_orphan, "is not a live object"),
        (_leftover_finalizer, "still being deleted"),
        (lambda o: o["Secret"].clear(), "Secret: 1 missing"),
        (lambda o: o["HorizontalPodAutoscaler"].pop(), "HorizontalPodAutoscaler: 1 missing"),
        (lambda o: find(o, "Pod")["status"].clear(), "pods not Ready"),
        (lambda o: find(o, "Pod")["spec"].update(schedulingGates=[{"name": "g"}]), "pods not Ready"),
        (lambda o: find(o, "Pod")["spec"].update(containers=[{"image": IMAGES[1]}]), "not on"),
        (lambda o: find(o, "PodGang")["status"].clear(), "PodGangs not Running"),
        (lambda o: o["Node"].clear(), "pods not on a Ready node"),
        (lambda o: o["Node"][0]["status"]["conditions"][0].update(status="Unknown"), "not on a Ready node"),
        (lambda o: find(o, "PodClique")["status"].update(readyReplicas=0), "readyReplicas 0"),
        (lambda o: find(o, "PodClique")["metadata"].update(generation=2), "observedGeneration"),
        (lambda o: find(o, "PodCliqueScalingGroup")["spec"].update(replicas=3), "spec.replicas 3, want 4"),
        (lambda o: find(o, "PodCliqueSet")["status"].update(availableReplicas=1), "availableReplicas 1"),
        (lambda o: find(o, "Role")["metadata"].update(finalizers=["x/y"]), "unexpected finalizers"),
    ],
)
def test_each_difference_is_named(break_it: Any, says: str) -> None:
    objects = world(EXPECTED)
    break_it(objects)
    found = problems(EXPECTED, objects)
    assert any(says in p for p in found), found


def test_after_delete_anything_left_is_a_problem() -> None:
    gone = Expected(SHAPE, replicas=0, image=IMAGES[0], deleted=True)
    leftovers = world(EXPECTED)
    found = problems(gone, {"Pod": leftovers["Pod"][:1], "Role": leftovers["Role"]})
    assert any("Pod: 1 not expected" in p for p in found) and any("Role: 1 not expected" in p for p in found)


def test_a_profile_with_fewer_phases_per_fault_still_covers_every_phase() -> None:
    chosen = [phases_for(index, 2) for index in range(1, 10)]  # the nine faults after the baseline
    assert all(len(set(phases)) == 2 for phases in chosen)
    counts = Counter(phase for phases in chosen for phase in phases)
    assert set(counts) == set(PHASES) and min(counts.values()) >= 4
    assert phases_for(3, 2) == ("create", "delete")  # in lifecycle order, as the rows come
    assert phases_for(3, 4) == PHASES  # the full profile: all four, whatever the start

"""The planner against an in-memory apiserver: Grove's tutorial examples produce the objects the docs
describe, the tutorials' scaling commands give the documented results, and a converged PodCliqueSet
needs no writes."""

from __future__ import annotations

import copy
import dataclasses
import re
from collections import Counter
from typing import Any

import pytest

from admitter.core.cluster import ClusterModel
from admitter.core.room import ReplacementRoom
from grove_api import constants as c
from reconciler.planner.actions import Action, Apply, Create, PatchStatus, ReplaceSpec
from reconciler.planner.plan import PODS_STARTED_PER_SECOND, STATUS_HOLD_SECONDS, Plan, plan
from tests.fakes.world import World, create_pcs
from tests.samples import TUTORIAL_PODS, runnable_samples

SAMPLES = runnable_samples()
POD_SUFFIX = r"-[a-z0-9]{5}$"


def converge(name: str) -> World:
    world = World()
    create_pcs(world, SAMPLES[name])
    pcs = SAMPLES[name]["metadata"]["name"]
    world.reconcile("default", pcs)
    return world


def pod_names(world: World) -> list[str]:
    return sorted(p["metadata"]["name"] for p in world.of_kind("Pod"))


def prefixes(world: World) -> Counter[str]:
    return Counter(re.sub(POD_SUFFIX, "", n) for n in pod_names(world))


def names(world: World, kind: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in world.of_kind(kind))


@pytest.mark.parametrize(("sample", "pods"), TUTORIAL_PODS.items())
def test_tutorial_examples_produce_the_documented_pods(sample: str, pods: dict[str, int]) -> None:
    world = converge(sample)
    assert dict(prefixes(world)) == pods
    assert sorted(names(world, "PodClique")) == sorted(pods)
    pcs = SAMPLES[sample]["metadata"]["name"]
    for pod in world.of_kind("Pod"):
        labels = pod["metadata"]["labels"]
        assert labels[c.LABEL_PART_OF] == pcs
        assert labels[c.LABEL_MANAGED_BY] == "grove-operator"
        assert pod["spec"]["hostname"] == f"{labels[c.LABEL_PODCLIQUE]}-{labels[c.LABEL_POD_INDEX]}"
        assert pod["spec"]["subdomain"] == f"{pcs}-{labels[c.LABEL_PCS_REPLICA_INDEX]}"


def test_complete_pipeline_has_11_pods_and_grove_gangs() -> None:
    world = converge("complete-inference-pipeline")
    assert len(pod_names(world)) == 11
    assert names(world, "PodCliqueScalingGroup") == [
        "comp-inf-ppln-0-decode-cluster",
        "comp-inf-ppln-0-prefill",
    ]
    (gang,) = world.of_kind("PodGang")
    assert gang["metadata"]["name"] == "comp-inf-ppln-0"
    groups = {g["name"]: g for g in gang["spec"]["podgroups"]}
    assert list(groups) == [
        "comp-inf-ppln-0-frontend",
        "comp-inf-ppln-0-vision-encoder",
        "comp-inf-ppln-0-prefill-0-pleader",
        "comp-inf-ppln-0-prefill-0-pworker",
        "comp-inf-ppln-0-decode-cluster-0-dleader",
        "comp-inf-ppln-0-decode-cluster-0-dworker",
    ]
    assert [len(g["podReferences"]) for g in groups.values()] == [2, 1, 1, 4, 1, 2]
    assert groups["comp-inf-ppln-0-prefill-0-pworker"]["minReplicas"] == 4


def test_scaled_gangs_for_group_replicas_beyond_min_available() -> None:
    world = converge("multi-node-disaggregated")
    assert names(world, "PodGang") == ["multinode-disaggregated-0", "multinode-disaggregated-0-prefill-0"]
    scaled = world.get("PodGang", "default", "multinode-disaggregated-0-prefill-0")
    assert scaled is not None
    assert [g["name"] for g in scaled["spec"]["podgroups"]] == [
        "multinode-disaggregated-0-prefill-1-pleader",
        "multinode-disaggregated-0-prefill-1-pworker",
    ]
    assert scaled["metadata"]["labels"][c.LABEL_BASE_PODGANG] == "multinode-disaggregated-0"  # ours
    base = world.get("PodGang", "default", "multinode-disaggregated-0")
    assert base is not None and c.LABEL_BASE_PODGANG not in base["metadata"]["labels"]
    member = world.get("PodClique", "default", "multinode-disaggregated-0-prefill-1-pworker")
    assert member is not None
    assert member["metadata"]["labels"][c.LABEL_BASE_PODGANG] == "multinode-disaggregated-0"
    assert member["metadata"]["ownerReferences"][0]["kind"] == "PodCliqueScalingGroup"


def test_first_pass_creates_pods_with_their_podclique_and_a_podgang_that_lists_them() -> None:
    world = World()
    create_pcs(world, SAMPLES["single-node-aggregated"])
    first = world.step("default", "single-node-aggregated", run=False)
    pods = [a.obj for a in first.actions if isinstance(a, Create) and a.obj["kind"] == "Pod"]
    (gang,) = [a.obj for a in first.actions if isinstance(a, Create) and a.obj["kind"] == c.KIND_PODGANG]
    listed = [r["name"] for g in gang["spec"]["podgroups"] for r in g["podReferences"]]
    assert sorted(listed) == sorted(p["metadata"]["name"] for p in pods) and len(pods) == 2
    assert all(re.fullmatch(r"single-node-aggregated-0-model-worker-[b-z2-9]{5}", n) for n in listed)
    # The owner's uid is left to the executor (it comes back from the PodClique's create).
    assert {p["metadata"]["ownerReferences"][0]["uid"] for p in pods} == {""}
    later: list[Action] = []
    for _ in range(5):
        later += world.step("default", "single-node-aggregated").actions
    assert not [a for a in later if isinstance(a, Apply) and a.obj["kind"] == c.KIND_PODGANG]
    initialized = [a for a in later if isinstance(a, PatchStatus) and a.ref.kind == c.KIND_PODGANG]
    assert [x["status"] for a in initialized for x in a.status["conditions"]] == ["True"]
    assert sorted(names(world, "Pod")) == sorted(listed)


def test_a_status_change_of_counts_only_waits_one_hold_and_a_condition_change_does_not() -> None:
    world = converge("single-node-aggregated")
    name = "single-node-aggregated-0-model-worker"
    pclq = world.get("PodClique", "default", name)
    assert pclq is not None
    pclq["spec"]["minAvailable"] = 1  # one pod less Ready then changes no condition
    pod = next(p for p in world.of_kind("Pod") if p["metadata"]["labels"][c.LABEL_PODCLIQUE] == name)
    pod["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "False"},
    ]

    def status_writes(result: Plan) -> list[dict[str, Any]]:
        return [a.status for a in result.actions if isinstance(a, PatchStatus) and a.ref.name == name]

    snap = world.snapshot("default", "single-node-aggregated")
    first = plan(snap)
    assert status_writes(first) == [] and first.held_statuses == {name: STATUS_HOLD_SECONDS}
    assert first.requeue_after == STATUS_HOLD_SECONDS
    still = plan(dataclasses.replace(snap, status_holds={name: 0.5}))
    assert status_writes(still) == [] and still.held_statuses == {name: 0.5} and still.requeue_after == 0.5
    later = plan(dataclasses.replace(snap, status_holds={name: 0.0}))
    (written,) = status_writes(later)
    assert written["readyReplicas"] == 1 and later.held_statuses == {}

    # A crashed container below the minimum flips MinAvailableBreached: written at once.
    pclq["spec"]["minAvailable"] = 2
    pod["status"]["containerStatuses"] = [{"name": "c", "lastState": {"terminated": {"exitCode": 1}}}]
    breached = status_writes(plan(world.snapshot("default", "single-node-aggregated")))
    assert len(breached) == 1 and breached[0]["readyReplicas"] == 1 and "conditions" in breached[0]


def test_progress_of_many_podcliques_waits_longer_and_a_podclique_at_rest_is_written_at_once() -> None:
    doc = copy.deepcopy(SAMPLES["single-node-aggregated"])
    doc["spec"]["replicas"] = 150
    doc["spec"]["template"]["cliques"][0]["spec"]["minAvailable"] = 1
    world = World()
    create_pcs(world, doc)
    world.step("default", "single-node-aggregated", run=False)  # PodCliques and their pods
    snap = world.snapshot("default", "single-node-aggregated")
    first = plan(snap)
    # 150 new PodCliques' first statuses: they wait as long as their 300 pods take to start, not the 2 s
    # minimum.
    hold = 300 / PODS_STARTED_PER_SECOND
    assert hold > STATUS_HOLD_SECONDS
    assert first.held_statuses == dict.fromkeys(first.held_statuses, hold) and len(first.held_statuses) == 150
    assert first.requeue_after == hold and not clique_status_writes(first)
    left = dict.fromkeys(first.held_statuses, hold - STATUS_HOLD_SECONDS)
    assert plan(dataclasses.replace(snap, status_holds=left)).held_statuses == left
    name = "single-node-aggregated-7-model-worker"
    pods = [p for p in world.of_kind("Pod") if p["metadata"]["labels"][c.LABEL_PODCLIQUE] == name]

    def later() -> Plan:
        return plan(
            dataclasses.replace(world.snapshot("default", "single-node-aggregated"), status_holds=left)
        )

    # One of its two pods Ready: progress, it waits; the PodCliqueSet counts the replica available now.
    world.run_pod(pods[0])
    result = later()
    assert not clique_status_writes(result) and name in result.held_statuses
    (pcs,) = [a.status for a in result.actions if isinstance(a, PatchStatus) and a.ref.kind == "PodCliqueSet"]
    assert pcs["availableReplicas"] == 1
    # Both Ready: at rest, written at once; the others still wait, as long as they were going to.
    world.run_pod(pods[1])
    result = later()
    (written,) = clique_status_writes(result)
    assert written.ref.name == name and written.status["readyReplicas"] == 2
    assert result.held_statuses == {n: t for n, t in left.items() if n != name}
    # Once the hold has run out, every waiting status goes.
    late = plan(dataclasses.replace(snap, status_holds=dict.fromkeys(first.held_statuses, 0.0)))
    assert late.held_statuses == {} and len(clique_status_writes(late)) == 150


def test_a_podgang_loses_spec_fields_the_desired_state_no_longer_has() -> None:
    """A PodGang created by a POST keeps fields a server-side apply leaves out (topology constraints of a
    binding that lost a level): its spec, all ours, is replaced whole; then nothing more is written."""
    world = converge("single-node-aggregated")
    (gang,) = world.of_kind("PodGang")
    desired = copy.deepcopy(gang["spec"])
    gang["spec"]["topologyConstraint"] = {"packConstraint": {"required": "kubernetes.io/hostname"}}
    gang["spec"]["podgroups"][0]["topologyConstraint"] = {"packConstraint": {"preferred": "zone"}}
    result = plan(world.snapshot("default", "single-node-aggregated"))
    (replace,) = [a for a in result.actions if isinstance(a, ReplaceSpec)]
    assert (replace.ref.kind, replace.ref.name, replace.spec) == (
        "PodGang",
        gang["metadata"]["name"],
        desired,
    )
    world.apply(replace)
    assert plan(world.snapshot("default", "single-node-aggregated")).actions == []


def test_a_podclique_loses_template_fields_and_keeps_its_scaled_replicas() -> None:
    world = converge("single-node-aggregated")
    name = "single-node-aggregated-0-model-worker"
    pclq = world.get("PodClique", "default", name)
    assert pclq is not None
    desired = copy.deepcopy(pclq["spec"])
    pclq["spec"]["replicas"] = 5  # kubectl scale pclq
    pclq["spec"]["podSpec"]["containers"][0]["workingDir"] = "/old"  # since taken out of the template
    result = plan(world.snapshot("default", "single-node-aggregated"))
    (replace,) = [a for a in result.actions if isinstance(a, ReplaceSpec)]
    assert replace.ref.name == name and replace.spec == {**desired, "replicas": 5}


def clique_status_writes(result: Plan) -> list[PatchStatus]:
    return [a for a in result.actions if isinstance(a, PatchStatus) and a.ref.kind == c.KIND_PODCLIQUE]


def test_converged_podcliqueset_needs_no_writes() -> None:
    world = converge("complete-inference-pipeline")
    assert plan(world.snapshot("default", "comp-inf-ppln")).actions == []


def _scale(world: World, kind: str, name: str, replicas: int) -> None:
    obj = world.get(kind, "default", name)
    assert obj is not None
    obj["spec"]["replicas"] = replicas


def test_tutorial_scaling_single_node_aggregated() -> None:
    """kubectl scale pclq …-0-model-worker --replicas=4, then kubectl scale pcs … --replicas=3: 4 + 2 + 2."""
    world = converge("single-node-aggregated")
    _scale(world, "PodClique", "single-node-aggregated-0-model-worker", 4)
    world.reconcile("default", "single-node-aggregated")
    assert prefixes(world) == {"single-node-aggregated-0-model-worker": 4}
    _scale(world, "PodCliqueSet", "single-node-aggregated", 3)
    world.reconcile("default", "single-node-aggregated")
    assert prefixes(world) == {
        "single-node-aggregated-0-model-worker": 4,
        "single-node-aggregated-1-model-worker": 2,
        "single-node-aggregated-2-model-worker": 2,
    }
    assert names(world, "Service") == [f"single-node-aggregated-{i}" for i in range(3)]
    _scale(world, "PodCliqueSet", "single-node-aggregated", 1)
    world.reconcile("default", "single-node-aggregated")
    assert prefixes(world) == {"single-node-aggregated-0-model-worker": 4}
    assert names(world, "Service") == ["single-node-aggregated-0"], "scaled-in replicas' Services are removed"


def test_tutorial_scaling_multi_node_aggregated() -> None:
    """kubectl scale pcsg …-0-model-instance --replicas=3 (12 pods), then pclq …-0-model-instance-0-worker to 4 (13)."""
    world = converge("multi-node-aggregated")
    _scale(world, "PodCliqueScalingGroup", "multinode-aggregated-0-model-instance", 3)
    world.reconcile("default", "multinode-aggregated")
    assert sum(prefixes(world).values()) == 12
    assert prefixes(world)["multinode-aggregated-0-model-instance-2-worker"] == 3
    _scale(world, "PodClique", "multinode-aggregated-0-model-instance-0-worker", 4)
    world.reconcile("default", "multinode-aggregated")
    assert sum(prefixes(world).values()) == 13
    assert names(world, "PodGang") == [
        "multinode-aggregated-0",
        "multinode-aggregated-0-model-instance-0",
        "multinode-aggregated-0-model-instance-1",
    ]


def test_scaling_down_then_up_reuses_indices() -> None:
    world = converge("single-node-aggregated")
    clique = "single-node-aggregated-0-model-worker"
    for replicas in (5, 2, 4):
        _scale(world, "PodClique", clique, replicas)
        world.reconcile("default", "single-node-aggregated")
    indices = sorted(int(p["metadata"]["labels"][c.LABEL_POD_INDEX]) for p in world.of_kind("Pod"))
    assert indices == [0, 1, 2, 3]


def test_template_replicas_only_seed_new_podcliques() -> None:
    world = converge("single-node-disaggregated")
    _scale(world, "PodClique", "single-node-disaggregated-0-prefill", 1)
    pcs = world.get("PodCliqueSet", "default", "single-node-disaggregated")
    assert pcs is not None
    pcs["spec"]["replicas"] = 2
    world.reconcile("default", "single-node-disaggregated")
    assert prefixes(world) == {
        "single-node-disaggregated-0-prefill": 1,
        "single-node-disaggregated-0-decode": 2,
        "single-node-disaggregated-1-prefill": 3,
        "single-node-disaggregated-1-decode": 2,
    }


def test_failed_pods_are_replaced() -> None:
    world = converge("single-node-aggregated")
    pod = world.of_kind("Pod")[0]
    pod["status"]["phase"] = "Failed"
    world.reconcile("default", "single-node-aggregated")
    assert len(world.of_kind("Pod")) == 2
    assert all(p["status"]["phase"] == "Running" for p in world.of_kind("Pod"))


def test_delete_removes_everything() -> None:
    world = converge("multi-node-disaggregated")
    pcs = world.get("PodCliqueSet", "default", "multinode-disaggregated")
    assert pcs is not None and c.FINALIZER_PODCLIQUESET in pcs["metadata"]["finalizers"]
    pcs["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    world.reconcile("default", "multinode-disaggregated")
    assert world.objects == {}


def test_autoscaling_configs_become_hpas_on_the_scale_subresources() -> None:
    world = World()
    doc = SAMPLES["multi-node-aggregated"]
    doc = {**doc, "spec": {**doc["spec"], "template": dict(doc["spec"]["template"])}}
    groups = [dict(g) for g in doc["spec"]["template"]["podCliqueScalingGroups"]]
    groups[0]["scaleConfig"] = {"minReplicas": 2, "maxReplicas": 5}
    doc["spec"]["template"]["podCliqueScalingGroups"] = groups
    create_pcs(world, doc)
    world.reconcile("default", "multinode-aggregated")
    (hpa,) = world.of_kind("HorizontalPodAutoscaler")
    assert hpa["metadata"]["name"] == "multinode-aggregated-0-model-instance"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "grove.io/v1alpha1",
        "kind": "PodCliqueScalingGroup",
        "name": "multinode-aggregated-0-model-instance",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["metadata"]["labels"][c.LABEL_COMPONENT] == "pcs-hpa"


def test_statuses_after_convergence() -> None:
    world = converge("multi-node-disaggregated")
    pcs = world.get("PodCliqueSet", "default", "multinode-disaggregated")
    assert pcs is not None
    assert pcs["status"]["availableReplicas"] == 1
    assert pcs["status"]["hpaPodSelector"] == (
        "app.kubernetes.io/managed-by=grove-operator,app.kubernetes.io/part-of=multinode-disaggregated"
    )
    pclq = world.get("PodClique", "default", "multinode-disaggregated-0-prefill-0-pworker")
    assert pclq is not None
    assert (
        pclq["status"]["replicas"],
        pclq["status"]["readyReplicas"],
        pclq["status"]["scheduledReplicas"],
    ) == (4, 4, 4)
    pcsg = world.get("PodCliqueScalingGroup", "default", "multinode-disaggregated-0-prefill")
    assert pcsg is not None and pcsg["status"]["availableReplicas"] == 2
    gang = world.get("PodGang", "default", "multinode-disaggregated-0")
    assert gang is not None and "phase" not in gang["status"]  # the gang admitter's
    assert {cond["type"]: cond["status"] for cond in gang["status"]["conditions"]}["Initialized"] == "True"


def test_startup_dependencies_annotated_with_each_parents_min_available() -> None:
    world = converge("dist-train")
    annotations = {
        q["metadata"]["name"]: (q["metadata"].get("annotations") or {}).get(c.ANNOTATION_STARTUP_DEPENDENCIES)
        for q in world.of_kind("PodClique", "default")
    }
    assert annotations == {
        f"dist-train-{i}-{name}": deps
        for i in (0, 1)
        for name, deps in [
            ("coordinator", f"dist-train-{i}-training-workers-0-parameter-server:1"),
            ("training-workers-0-parameter-server", None),
            ("training-workers-0-worker", f"dist-train-{i}-coordinator:1"),
            ("training-workers-1-parameter-server", None),
            ("training-workers-1-worker", None),  # scaled replica: only same-group parents
        ]
    }
    coordinator = next(
        p
        for p in world.of_kind("Pod", "default")
        if p["metadata"]["name"].startswith("dist-train-0-coordinator-")
    )
    assert coordinator["metadata"]["annotations"][c.ANNOTATION_STARTUP_DEPENDENCIES] == (
        "dist-train-0-training-workers-0-parameter-server:1"
    )


def test_with_gang_admission_the_reconciler_writes_no_podgang_status() -> None:
    """One writer per PodGang status field: with gang admission on, the gang admitter owns the whole status
    (Initialized included, whatever it decided: nothing yet, or Admitted=False), and the reconciler writes
    none of it; with gang admission off, the reconciler writes Initialized (and only that)."""
    world = converge("single-node-aggregated")
    gang = world.get("PodGang", "default", "single-node-aggregated-0")
    assert gang is not None

    def podgang_writes(result: Plan) -> list[Action]:
        return [a for a in result.actions if isinstance(a, PatchStatus) and a.ref.kind == c.KIND_PODGANG]

    for status in ({}, {"conditions": [{"type": "Admitted", "status": "False", "reason": "Unschedulable"}]}):
        gang["status"] = status
        snap = world.snapshot("default", "single-node-aggregated")
        (write,) = podgang_writes(plan(snap))  # gang admission off
        assert isinstance(write, PatchStatus) and write.apply
        assert [(x["type"], x["status"]) for x in write.status["conditions"]] == [("Initialized", "True")]
        on = dataclasses.replace(snap, gang_admission=True, room=ReplacementRoom(ClusterModel()))
        assert podgang_writes(plan(on)) == []
        assert podgang_writes(plan(dataclasses.replace(on, room=None))) == []

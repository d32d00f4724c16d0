"""The pure parts of localcluster.faults: flag rewriting and the manifest a deleted node is recreated from."""

from __future__ import annotations

from localcluster import faults, nodes


def test_apiserver_flags_sets_replaces_and_appends() -> None:
    argv = ["/bin/kube-apiserver", "--secure-port=6443", "--max-requests-inflight=400", "--profiling"]
    out = faults.apiserver_flags(
        argv, max_requests_inflight=10, profiling=False, enable_priority_and_fairness=False
    )
    assert out == [
        "/bin/kube-apiserver",
        "--secure-port=6443",
        "--max-requests-inflight=10",
        "--profiling=false",
        "--enable-priority-and-fairness=false",
    ]
    assert argv[2] == "--max-requests-inflight=400"  # a copy: the original is what restores


def test_apiserver_flags_keeps_one_value_of_a_repeated_flag() -> None:
    argv = ["apiserver", "--v=2", "--x=1", "--v=4"]
    assert faults.apiserver_flags(argv, v=6) == ["apiserver", "--v=6", "--x=1"]
    assert faults.apiserver_flags(argv) == argv


def test_throttled_sets_every_throttle_flag() -> None:
    out = faults.throttled(["apiserver", "--max-mutating-requests-inflight=200"])
    assert "--enable-priority-and-fairness=false" in out
    assert f"--max-requests-inflight={faults.THROTTLE_FLAGS['max_requests_inflight']}" in out
    limit = faults.THROTTLE_FLAGS["max_mutating_requests_inflight"]
    assert [a for a in out if a.startswith("--max-mutating")] == [f"--max-mutating-requests-inflight={limit}"]


def test_recreatable_node_keeps_identity_and_capacity_not_controller_state() -> None:
    node = nodes.node_manifest(3)
    node["metadata"] |= {"uid": "u", "resourceVersion": "9", "creationTimestamp": "2025-01-01T00:00:00Z"}
    node["spec"]["unschedulable"] = True
    node["spec"]["taints"].append({"key": nodes.UNREACHABLE_TAINT, "effect": "NoExecute"})
    node["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    out = faults.recreatable(node)
    assert out["metadata"] == {
        "name": "fake-node-003",
        "labels": node["metadata"]["labels"],
        "annotations": {nodes.KWOK_ANNOTATION: nodes.KWOK_ANNOTATION_VALUE},
    }
    assert out["spec"] == {
        "taints": [{"key": nodes.FAKE_TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "unschedulable": True,
    }
    assert out["status"] == {
        "capacity": node["status"]["capacity"],
        "allocatable": node["status"]["allocatable"],
    }


def test_node_readiness_needs_the_condition_and_no_not_ready_taint() -> None:
    node = nodes.node_manifest(0)
    assert nodes.ready_status(node) is None and not nodes.is_ready(node)
    node["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    node["spec"]["taints"] = []
    assert nodes.is_ready(node)
    node["spec"]["taints"] = [{"key": nodes.UNREACHABLE_TAINT, "effect": "NoExecute"}]
    assert nodes.ready_status(node) == "True" and not nodes.is_ready(node)

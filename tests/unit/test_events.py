"""Events summarise a reconcile pass on the PodCliqueSet: aggregated, not one per object."""

from datetime import UTC, datetime

from reconciler.events import events_for
from reconciler.kube.client import Invalid
from reconciler.kube.executor import Created, Failure, Report
from reconciler.planner.actions import Create, Ref

PCS = {"metadata": {"name": "demo", "namespace": "ns", "uid": "u1"}}
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def pod(name: str) -> Ref:
    return Ref("v1", "Pod", "ns", name)


def test_creates_and_deletes_are_aggregated_per_kind() -> None:
    report = Report(
        created=[Created(pod(f"demo-0-w-{i}"), f"uid{i}") for i in range(5)]
        + [Created(Ref("grove.io/v1alpha1", "PodClique", "ns", "demo-0-w"), "q")]
        + [Created(pod("already"), "x", existed=True)],
        deleted=[pod("old-1")],
    )
    events = events_for(PCS, report, NOW)
    messages = sorted(e["message"] for e in events)
    assert messages == [
        "Created 1 PodClique: demo-0-w",
        "Created 5 Pods: demo-0-w-0, demo-0-w-1, demo-0-w-2 and 2 more",
        "Deleted 1 Pod: old-1",
    ]
    assert {e["type"] for e in events} == {"Normal"}
    assert all(
        e["involvedObject"]
        == {
            "apiVersion": "grove.io/v1alpha1",
            "kind": "PodCliqueSet",
            "name": "demo",
            "namespace": "ns",
            "uid": "u1",
        }
        for e in events
    )
    assert events[0]["firstTimestamp"] == "2026-11-25T12:00:00Z"


def test_failures_are_warnings_with_the_apiserver_message() -> None:
    action = Create(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo-0", "namespace": "ns"}}
    )
    report = Report(errors=[Failure(action, Invalid("spec.selector: Required value"))] * 5)
    events = events_for(PCS, report, NOW)
    assert [e["type"] for e in events] == ["Warning"] * 4
    assert "Create Service ns/demo-0" in events[0]["message"]
    assert "spec.selector: Required value" in events[0]["message"]
    assert events[-1]["message"] == "2 more actions failed (see the operator's log)"

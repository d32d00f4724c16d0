"""Events summarise a reconcile pass on the PodCliqueSet: aggregated, not one per object."""

from datetime import UTC, datetime

from grove_api.refs import Ref
from kube.client import Forbidden, Invalid
from reconciler.events import events_for, last_errors, same_errors
from reconciler.executor import Created, Failure, Report
from reconciler.planner.actions import Create

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


def test_last_errors_name_what_failed_and_clear_when_nothing_did() -> None:
    failed = Create({"kind": "Pod", "metadata": {"generateName": "demo-0-w-", "namespace": "ns"}})
    report = Report(errors=[Failure(failed, Forbidden("exceeded quota: pods=1", status=403))])
    (error,) = last_errors(report, NOW) or []
    assert error["code"] == "ERR_SYNC_POD"
    assert "Create Pod ns/demo-0-w-*" in error["description"]
    assert "exceeded quota" in error["description"]
    assert error["observedAt"] == "2026-11-25T12:00:00Z"
    assert last_errors(Report(), NOW) is None


def test_the_same_failures_are_not_rewritten() -> None:
    failed = Create({"kind": "Pod", "metadata": {"generateName": "demo-0-w-", "namespace": "ns"}})
    first = last_errors(
        Report(errors=[Failure(failed, Forbidden('pods "demo-0-w-abcde" is forbidden'))]), NOW
    )
    again = last_errors(
        Report(errors=[Failure(failed, Forbidden('pods "demo-0-w-fghij" is forbidden'))]), NOW
    )
    assert same_errors(first, again)
    assert not same_errors(first, None)
    assert same_errors(None, None) and same_errors([], None)

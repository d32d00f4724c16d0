"""Executor with a fake client (slow start, report contents) and Expectations (observe, races, timeout)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from grove_api import constants as c
from grove_api.refs import Ref
from kube.client import AlreadyExists, Forbidden, Invalid, NotFound
from reconciler.executor import (
    OWNER_TEXT_LIMIT,
    Executor,
    Expectations,
    NameTaken,
    observe_events,
    pod_ref_key,
    podclique_key,
)
from reconciler.planner.actions import Action, Apply, Create, Delete, PatchStatus, RemoveFinalizer

JSON = dict[str, Any]
NS = "ns"


def pod(clique: str = "pc", name: str | None = None) -> JSON:
    meta: JSON = {"namespace": NS, "labels": {c.LABEL_PODCLIQUE: clique}}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{clique}-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": []}}


OWNER = {
    "apiVersion": c.API_VERSION,
    "kind": c.KIND_PODCLIQUESET,
    "name": "x",
    "uid": "pcs-uid",
    "controller": True,
}


def svc(name: str) -> JSON:
    meta = {"name": name, "namespace": NS, "ownerReferences": [OWNER]}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta}


class FakeClient:
    """Records calls; `fail_create_at` makes the n-th pod create (1-based, in call order) fail."""

    def __init__(self, *, fail_create_at: set[int] | None = None, delay: float = 0.0) -> None:
        self.fail_create_at = fail_create_at or set()
        self.delay = delay
        self.calls: list[tuple[str, Any]] = []
        self.creates = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.batches: list[int] = []  # pod creates in flight together, per wave
        self._uids = itertools.count(1)
        self.on_create: Any = None

    async def _enter(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)

    async def create(self, obj: JSON) -> JSON:
        self.creates += 1
        n = self.creates
        self.calls.append(("create", obj))
        await self._enter()
        try:
            if n in self.fail_create_at:
                raise Forbidden("exceeded quota", status=403, reason="Forbidden")
            meta = dict(obj["metadata"])
            if meta.get("name") == "exists":
                err = AlreadyExists("exists")
                err.existing = {**obj, "metadata": {**meta, "uid": "old-uid"}}
                raise err
            uid = f"uid-{next(self._uids)}"
            meta.setdefault("name", f"{meta.get('generateName', '')}{uid}")
            out = {**obj, "metadata": {**meta, "uid": uid}}
            if self.on_create is not None:
                self.on_create(out)
            return out
        finally:
            self.in_flight -= 1

    async def apply(self, obj: JSON, field_manager: str | None = None, force: bool = True) -> JSON:
        self.calls.append(("apply", obj))
        await self._enter()
        self.in_flight -= 1
        if obj["metadata"]["name"] == "bad":
            raise Invalid('Service "bad" is invalid: spec.ports: Required value', status=422)
        return obj

    async def delete(self, ref: Ref, uid: str | None = None, propagation: str = "Background") -> bool:
        self.calls.append(("delete", ref))
        await self._enter()
        self.in_flight -= 1
        return ref.name != "gone"

    async def patch_status(self, ref: Ref, status: JSON) -> JSON:
        self.calls.append(("patch_status", ref))
        if ref.name == "missing":
            raise NotFound("not found", status=404)
        return {"status": status}

    async def remove_finalizer(self, ref: Ref, name: str, resource_version: str = "") -> JSON | None:
        self.calls.append(("remove_finalizer", (ref, name, resource_version)))
        return None


class BatchRecorder(FakeClient):
    """Measures slow-start waves: creates that overlap in time form one batch."""

    async def create(self, obj: JSON) -> JSON:
        if self.in_flight == 0:
            self.batches.append(0)
        self.batches[-1] += 1
        return await super().create(obj)


async def test_pod_creates_use_slow_start_batches() -> None:
    client = BatchRecorder(delay=0.002)
    report = await Executor(client).run([Create(pod()) for _ in range(20)])
    assert client.batches == [1, 2, 4, 8, 5]
    assert len(report.created) == 20 and report.ok
    assert len({cr.uid for cr in report.created}) == 20
    assert all(cr.ref.name.startswith("pc-uid-") and cr.ref.kind == "Pod" for cr in report.created)


async def test_slow_start_stops_after_the_first_failing_batch() -> None:
    # Creates 1 | 2 3 | 4 5 6 7: the 5th fails, so batch 3 completes and nothing more is tried.
    client = BatchRecorder(fail_create_at={5}, delay=0.002)
    actions = [Create(pod()) for _ in range(20)]
    report = await Executor(client).run(actions)
    assert client.batches == [1, 2, 4]
    assert client.creates == 7
    assert len(report.created) == 6
    assert len(report.errors) == 1
    assert isinstance(report.errors[0].error, Forbidden)
    assert "exceeded quota" in str(report.errors[0])
    assert len(report.skipped) == 13 and not report.ok


async def test_first_create_failing_skips_the_rest() -> None:
    client = FakeClient(fail_create_at={1})
    report = await Executor(client).run([Create(pod()) for _ in range(5)])
    assert client.creates == 1 and len(report.skipped) == 4 and len(report.errors) == 1


async def test_slow_start_is_per_podclique() -> None:
    client = FakeClient(fail_create_at={1})
    actions = [Create(pod("a")) for _ in range(3)]
    report = await Executor(client).run(actions + [Create(pod("b")) for _ in range(3)])
    # whichever clique hit the failure stops; the other completes
    assert len(report.created) == 3 and len(report.skipped) == 2 and len(report.errors) == 1


async def test_other_kinds_run_fully_concurrently_under_the_limit() -> None:
    client = FakeClient(delay=0.01)
    actions = [Apply(svc(f"s{i}")) for i in range(40)]
    report = await Executor(client, concurrency=16).run(actions)
    assert client.max_in_flight == 16
    assert len(report.applied) == 40


async def test_report_lists_every_outcome_and_never_raises() -> None:
    client = FakeClient()
    ref = Ref("grove.io/v1alpha1", "PodCliqueSet", NS, "x")
    actions: list[Action] = [
        Create(svc("exists")),
        Create(svc("new")),
        Apply(svc("ok")),
        Apply(svc("bad")),
        Delete(Ref("v1", "Pod", NS, "pc-abcde"), uid="u1"),
        Delete(Ref("v1", "Pod", NS, "gone"), uid="u2"),
        PatchStatus(ref, {"replicas": 1}),
        PatchStatus(Ref("grove.io/v1alpha1", "PodCliqueSet", NS, "missing"), {}),
        RemoveFinalizer(ref, c.FINALIZER_PODCLIQUESET, "42"),
    ]
    report = await Executor(client).run(actions)
    assert [(cr.ref.name, cr.uid, cr.existed) for cr in report.created if cr.existed] == [
        ("exists", "old-uid", True)
    ]
    assert any(cr.ref.name == "new" and not cr.existed for cr in report.created)
    assert report.applied == [Ref("v1", "Service", NS, "ok")]
    assert report.deleted == [Ref("v1", "Pod", NS, "pc-abcde")]
    assert report.already_gone == [Ref("v1", "Pod", NS, "gone")]
    assert report.status_patched == [ref]
    assert report.finalizers_removed == [ref]
    assert sorted(type(f.error).__name__ for f in report.errors) == ["Invalid", "NotFound"]
    assert ("remove_finalizer", (ref, c.FINALIZER_PODCLIQUESET, "42")) in client.calls
    assert "errors 2" in report.summary()


async def test_executor_records_expectations_for_pods() -> None:
    exp = Expectations()
    client = FakeClient()
    report = await Executor(client, expectations=exp).run(
        [Create(pod("pc")) for _ in range(3)] + [Delete(Ref("v1", "Pod", NS, "pc-zzzzz"), uid="old")]
    )
    assert exp.pending(f"{NS}/pc")
    assert exp.counts(f"{NS}/pc") == (3, 1)
    for cr in report.created:
        exp.observe({"metadata": {"namespace": NS, "uid": cr.uid, "labels": {c.LABEL_PODCLIQUE: "pc"}}})
    assert exp.counts(f"{NS}/pc") == (0, 1)
    exp.observe(
        {"metadata": {"namespace": NS, "uid": "old", "labels": {c.LABEL_PODCLIQUE: "pc"}}}, deleted=True
    )
    assert not exp.pending(f"{NS}/pc")


async def test_expectation_survives_the_watch_event_arriving_before_the_response() -> None:
    exp = Expectations()
    handler = observe_events(exp)
    client = FakeClient()
    client.on_create = lambda obj: handler("ADDED", obj)  # the informer saw it before the POST returned
    await Executor(client, expectations=exp).run([Create(pod("pc"))])
    assert not exp.pending(f"{NS}/pc")


async def test_failed_creates_and_deletes_raise_no_expectations() -> None:
    exp = Expectations()
    client = FakeClient(fail_create_at={1})
    await Executor(client, expectations=exp).run(
        [Create(pod("pc")), Delete(Ref("v1", "Pod", NS, "gone"), uid="u")]
    )
    assert not exp.pending(f"{NS}/pc")
    assert exp.keys() == []


def test_expectations_observe_and_deletion_timestamp() -> None:
    exp = Expectations()
    exp.expect_create("ns/a", "u1")
    exp.expect_delete("ns/a", "u2")
    labels = {c.LABEL_PODCLIQUE: "a"}
    exp.observe({"metadata": {"namespace": "ns", "uid": "other", "labels": labels}})
    assert exp.counts("ns/a") == (1, 1)
    exp.observe({"metadata": {"namespace": "ns", "uid": "u1", "labels": labels}})
    assert exp.counts("ns/a") == (0, 1) and exp.pending("ns/a")
    # A terminating pod counts as deleted (graceful deletion keeps it in the cache for a while).
    exp.observe(
        {
            "metadata": {
                "namespace": "ns",
                "uid": "u2",
                "labels": labels,
                "deletionTimestamp": "2026-01-01T00:00:00Z",
            }
        }
    )
    assert not exp.pending("ns/a")
    exp.observe({"metadata": {"namespace": "ns", "uid": "x"}})  # no clique label: ignored


def test_expectations_time_out() -> None:
    now = [1000.0]
    exp = Expectations(timeout=300.0, clock=lambda: now[0])
    exp.expect_create("ns/a", "u1")
    now[0] += 299.0
    assert exp.pending("ns/a")
    exp.expect_create("ns/a", "u2")  # a new expectation restarts the clock
    now[0] += 299.0
    assert exp.pending("ns/a")
    now[0] += 2.0
    assert not exp.pending("ns/a")  # dropped, like client-go's expired expectations
    assert exp.keys() == []


def test_keys() -> None:
    assert podclique_key(pod("x")) == f"{NS}/x"
    assert podclique_key(svc("s")) is None
    assert pod_ref_key(Ref("v1", "Pod", "ns", "pcs-0-worker-ab12c")) == "ns/pcs-0-worker"
    assert pod_ref_key(Ref("v1", "Service", "ns", "pcs-0")) is None


@pytest.mark.parametrize(
    ("owners", "held"),
    [
        (
            [{"kind": "Deployment", "name": "my-llm", "uid": "d-uid", "controller": True}],
            "controlled by Deployment my-llm",
        ),
        ([], "not controlled by any owner"),
        ([{**OWNER, "controller": False}], "not controlled by any owner"),
    ],
)
async def test_a_name_taken_by_someone_elses_object_is_a_conflict_not_a_success(
    owners: list[JSON], held: str
) -> None:
    """Never adopted: only an object with the controller ours would have counts as already created."""
    client = FakeClient()
    wanted = svc("exists")

    async def create(obj: JSON) -> JSON:
        err = AlreadyExists("exists")
        err.existing = {**obj, "metadata": {**obj["metadata"], "uid": "their-uid", "ownerReferences": owners}}
        raise err

    client.create = create  # type: ignore[method-assign]
    report = await Executor(client).run([Create(wanted)])
    assert report.created == [] and len(report.errors) == 1
    error = report.errors[0].error
    assert isinstance(error, NameTaken)
    assert error.message == (
        f"Service {NS}/exists exists and is not this PodCliqueSet's ({held}): left alone; rename the "
        "PodCliqueSet or remove that object"
    )


def test_text_from_someone_elses_object_is_truncated() -> None:
    theirs = {"metadata": {"ownerReferences": [{"kind": "K" * 500, "name": "n" * 500, "controller": True}]}}
    message = NameTaken.of(svc("s"), theirs).message
    assert (
        len(message) < 500
        and f"{'K' * OWNER_TEXT_LIMIT}... ({500 - OWNER_TEXT_LIMIT} more characters)" in message
    )

"""The Kubernetes layer (kube/) on the real apiserver: informer (list, watch, label index, 410 relist), the client facade on
a PodCliqueSet, and the executor creating and deleting pods with generateName."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from grove_api import constants as c
from grove_api.refs import Ref
from kube import resources
from kube.client import AlreadyExists, Conflict, Forbidden, Invalid, KubeClient, NotFound
from kube.informer import Informer
from reconciler.executor import Executor, Expectations, observe_events
from reconciler.planner.actions import Create, Delete
from tests import builders

JSON = dict[str, Any]
PART_OF = c.LABEL_PART_OF


@pytest.fixture
async def kube(api_client: ApiClient) -> KubeClient:
    return KubeClient(api_client)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def __call__(self, event_type: str, obj: JSON) -> None:
        self.events.append((event_type, obj["metadata"]["name"]))

    def clear(self) -> None:
        self.events.clear()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def configmap(namespace: str, name: str, labels: dict[str, str] | None = None, **data: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "data": data,
    }


@pytest.fixture
async def informers() -> AsyncIterator[list[Informer]]:
    started: list[Informer] = []
    yield started
    for inf in started:
        await inf.close()


# --- informer ----------------------------------------------------------------------------------------------
async def test_informer_lists_then_watches(
    kube: KubeClient, namespace: str, informers: list[Informer]
) -> None:
    await kube.create(configmap(namespace, "one", {PART_OF: "x"}, v="1"))
    await kube.create(configmap(namespace, "two", {PART_OF: "y"}))
    rec = Recorder()
    inf = Informer(kube, resources.CONFIG_MAP, namespace=namespace, on_event=rec)
    informers.append(inf)
    await inf.start(timeout=10)
    assert inf.has_synced
    # The first list reports every object as ADDED (kube-root-ca.crt is made by the controller manager).
    assert {"one", "two"} <= {name for t, name in rec.events if t == "ADDED"}
    assert inf.get(namespace, "one")["data"] == {"v": "1"}  # type: ignore[index]
    assert inf.get(namespace, "one")["kind"] == "ConfigMap"  # type: ignore[index]
    assert [o["metadata"]["name"] for o in inf.by_label(PART_OF, "x")] == ["one"]
    rec.clear()

    await kube.create(configmap(namespace, "three", {PART_OF: "x"}))
    await kube.apply(configmap(namespace, "one", {PART_OF: "y"}, v="2"))  # label moves x -> y
    await kube.delete(Ref("v1", "ConfigMap", namespace, "two"))
    await eventually(lambda: ("DELETED", "two") in rec.events)
    mine = [e for e in rec.events if e[1] in ("one", "two", "three")]  # kube-root-ca.crt may come and go
    assert mine == [("ADDED", "three"), ("MODIFIED", "one"), ("DELETED", "two")]
    assert inf.get(namespace, "two") is None
    assert inf.get(namespace, "one")["data"] == {"v": "2"}  # type: ignore[index]
    assert sorted(o["metadata"]["name"] for o in inf.by_label(PART_OF, "x")) == ["three"]
    assert sorted(o["metadata"]["name"] for o in inf.by_label(PART_OF, "y")) == ["one"]
    assert inf.by_label(PART_OF, "y", namespace="elsewhere") == []
    assert [o["metadata"]["name"] for o in inf.list(namespace, {PART_OF: "y"})] == ["one"]
    assert {o["metadata"]["name"] for o in inf.list(namespace)} - {"kube-root-ca.crt"} == {"one", "three"}
    assert len(inf.list(namespace)) == len(inf)
    assert inf.watches == 1 and inf.relists == 1


def podgang(namespace: str, name: str, labels: dict[str, str] | None = None) -> JSON:
    return {
        "apiVersion": c.SCHEDULER_API_VERSION,
        "kind": c.KIND_PODGANG,
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"podgroups": [{"name": "g", "podReferences": [], "minReplicas": 1}]},
    }


async def test_informer_relists_on_410_and_synthesises_events(
    kube: KubeClient, namespace: str, grove_crds: Any
) -> None:
    """A watch from resourceVersion 1 is answered 410: the watch cache of a CRD installed after the apiserver
    started begins later. The informer re-lists and reports what it missed. (PodGangs without Grove labels:
    nothing else in the cluster touches them.)"""
    for name in ("keep", "change", "vanish"):
        await kube.create(podgang(namespace, name))
    rec = Recorder()
    inf = Informer(kube, resources.PODGANG, namespace=namespace, on_event=rec)
    await inf.relist()  # synced, but not watching: the changes below are missed
    assert sorted(rec.events) == [("ADDED", "change"), ("ADDED", "keep"), ("ADDED", "vanish")]
    rec.clear()
    await kube.create(podgang(namespace, "new"))
    await kube.apply(podgang(namespace, "change", {"v": "2"}))
    assert await kube.delete(Ref.of(podgang(namespace, "vanish")))

    rv = await asyncio.wait_for(inf.watch_step("1"), 10)
    assert inf.relists == 2
    assert rv == inf.resource_version and int(rv) > 1
    assert rec.events[0] == ("DELETED", "vanish")  # with the last state the informer knew
    assert sorted(rec.events[1:]) == [("ADDED", "new"), ("MODIFIED", "change")]
    assert sorted(o["metadata"]["name"] for o in inf.list()) == ["change", "keep", "new"]
    assert inf.get(namespace, "change")["metadata"]["labels"] == {"v": "2"}  # type: ignore[index]


# --- client facade -----------------------------------------------------------------------------------------
async def test_client_facade_on_a_podcliqueset(
    kube: KubeClient, namespace: str, grove_crds: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create / AlreadyExists / apply / patch_status / remove_finalizer / delete with a uid precondition.

    The operator running in the cluster may reconcile this PodCliqueSet meanwhile (its own finalizer, status
    writes): assertions only rely on what our own calls return, and retry on Conflict where that is the
    documented behaviour."""
    doc = builders.pcs("facade", namespace=namespace)
    ref = Ref.of(doc)
    created = await kube.create(doc)
    uid = created["metadata"]["uid"]
    assert created["spec"]["template"]["cliques"][0]["name"] == "a"
    assert created["spec"]["template"]["cliques"][0]["spec"]["podSpec"][
        "containers"
    ]  # webhook-defaulted object

    with pytest.raises(AlreadyExists) as exists:
        await kube.create(doc)
    assert exists.value.existing is not None and exists.value.existing["metadata"]["uid"] == uid

    applied = await kube.apply(
        builders.pcs("facade", namespace=namespace, metadata={"labels": {"team": "a"}})
    )
    assert applied["metadata"]["labels"]["team"] == "a"
    assert any(m["manager"] == c.FIELD_MANAGER for m in applied["metadata"]["managedFields"])

    # podGangStatuses: a status field the operator never writes, so its passes cannot race this check.
    gangs = [{"name": "facade-0", "phase": "Pending"}]
    patched = await kube.patch_status(ref, {"podGangStatuses": gangs, "observedGeneration": 1})
    assert patched["status"]["podGangStatuses"] == gangs and patched["status"]["observedGeneration"] == 1
    patched = await kube.patch_status(ref, {"observedGeneration": 2})  # merge patch: other fields stay
    assert patched["status"]["podGangStatuses"] == gangs and patched["status"]["observedGeneration"] == 2

    await kube.apply(
        builders.pcs(
            "facade", namespace=namespace, metadata={"finalizers": ["test.grove.io/a", "test.grove.io/b"]}
        ),
        field_manager="test",
    )
    with pytest.raises(Conflict):
        await kube.remove_finalizer(ref, "test.grove.io/a", resource_version="1")
    for _ in range(20):  # guarded by the current resourceVersion; a concurrent writer means Conflict: retry
        rv = (await kube.get(ref))["metadata"]["resourceVersion"]
        try:
            out = await kube.remove_finalizer(ref, "test.grove.io/a", resource_version=rv)
            break
        except Conflict:
            await asyncio.sleep(0.05)
    else:
        pytest.fail("remove_finalizer kept conflicting")
    assert out is not None
    assert "test.grove.io/a" not in out["metadata"]["finalizers"]
    assert "test.grove.io/b" in out["metadata"]["finalizers"]
    # The object changes between remove_finalizer's read and its patch: the `test` op fails -> Conflict.
    stale = await kube.get(ref)
    await kube.apply(
        builders.pcs("facade", namespace=namespace, metadata={"labels": {"x": "1"}}), field_manager="x"
    )

    async def stale_get(_: Ref) -> JSON:
        return stale

    with monkeypatch.context() as m:
        m.setattr(kube, "get", stale_get)
        with pytest.raises(Conflict, match="changed concurrently"):
            await kube.remove_finalizer(
                ref, "test.grove.io/b", resource_version=stale["metadata"]["resourceVersion"]
            )
    out = await kube.remove_finalizer(ref, "test.grove.io/b")
    assert out is not None and "test.grove.io/b" not in (out["metadata"].get("finalizers") or [])

    # delete: a wrong uid precondition must not delete; the right one does
    assert await kube.delete(ref, uid="00000000-0000-0000-0000-000000000000") is False
    assert (await kube.get(ref))["metadata"]["uid"] == uid
    assert await kube.delete(ref, uid=uid) is True
    with contextlib.suppress(NotFound):  # or still there, held by the operator's finalizer
        assert (await kube.get(ref))["metadata"].get("deletionTimestamp")
    missing = Ref(ref.api_version, ref.kind, namespace, "missing")
    assert await kube.delete(missing) is False
    assert await kube.remove_finalizer(missing, "x") is None
    with pytest.raises(NotFound):
        await kube.get(missing)


async def test_client_maps_admission_and_validation_errors(
    kube: KubeClient, namespace: str, grove_crds: Any
) -> None:
    bad = builders.edit(builders.pcs("bad", namespace=namespace), "spec.template.cliques.0.spec.replicas", -1)
    with pytest.raises((Invalid, Forbidden)) as err:
        await kube.create(bad)
    assert "replicas" in err.value.message and err.value.status in (400, 403, 422)
    with pytest.raises(Invalid) as err2:
        await kube.create(configmap(namespace, "Not_A_Name"))
    assert err2.value.status == 422 and "Not_A_Name" in err2.value.message


# --- executor ----------------------------------------------------------------------------------------------
def pod(namespace: str, clique: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{clique}-",
            "namespace": namespace,
            "labels": {c.LABEL_PODCLIQUE: clique},
        },
        # No toleration for the fake nodes' taint: the pods stay Pending, which is all we need.
        "spec": {"containers": [{"name": "main", "image": "busybox"}], "terminationGracePeriodSeconds": 0},
    }


async def test_executor_creates_and_deletes_pods_with_expectations(
    kube: KubeClient, namespace: str, informers: list[Informer]
) -> None:
    exp = Expectations()
    inf = Informer(
        kube,
        resources.POD,
        namespace=namespace,
        on_event=observe_events(exp),
        index_labels=(c.LABEL_PODCLIQUE,),
    )
    informers.append(inf)
    await inf.start(timeout=10)
    executor = Executor(kube, concurrency=32, expectations=exp)
    key = f"{namespace}/work"

    started = time.monotonic()
    report = await executor.run([Create(pod(namespace, "work")) for _ in range(50)])
    elapsed = time.monotonic() - started
    assert report.ok, report.errors
    assert len(report.created) == 50
    uids = {cr.uid for cr in report.created}
    assert len(uids) == 50 and "" not in uids
    assert all(
        cr.ref.name.startswith("work-") and len(cr.ref.name) == len("work-") + 5 for cr in report.created
    )
    listed, _ = await kube.list_all(resources.POD, namespace=namespace)
    assert {p["metadata"]["uid"] for p in listed} == uids
    await eventually(lambda: not exp.pending(key))
    assert {o["metadata"]["uid"] for o in inf.by_label(c.LABEL_PODCLIQUE, "work")} == uids
    print(f"50 pods created with slow start in {elapsed:.2f} s")

    report = await executor.run([Delete(cr.ref, uid=cr.uid) for cr in report.created])
    assert report.ok and len(report.deleted) == 50
    await eventually(lambda: not exp.pending(key) and len(inf) == 0)


async def test_executor_stops_pod_slow_start_on_failure(kube: KubeClient, namespace: str) -> None:
    bad = pod(namespace, "bad")
    bad["spec"]["containers"] = []  # invalid: every create fails
    report = await Executor(kube).run([Create(bad) for _ in range(10)])
    assert len(report.errors) == 1 and isinstance(report.errors[0].error, Invalid)
    assert len(report.skipped) == 9 and not report.created


# --- informer resilience (a scripted list/watch client; no apiserver needed) -------------------------------
class _Lines:
    def __init__(self, lines: list[bytes], hang: bool = False) -> None:
        self.lines = lines
        self.hang = hang

    async def readline(self) -> bytes:
        if self.lines:
            return self.lines.pop(0)
        if self.hang:
            await asyncio.sleep(3600)
        return b""


class _Stream:
    def __init__(self, lines: list[bytes], hang: bool = False) -> None:
        self.content = _Lines(lines, hang)
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _ev(event_type: str, name: str, rv: int) -> bytes:
    obj = {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


class ScriptedClient:
    """list_all returns the next listing; watch plays the next script entry (an exception or lines)."""

    def __init__(self, listings: list[list[JSON]], watches: list[Any]) -> None:
        self.listings = listings
        self.watches = watches
        self.watch_rvs: list[str] = []

    async def list_all(self, resource: Any, **_: Any) -> tuple[list[JSON], str]:
        items = self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]
        return [dict(i) for i in items], "100"

    async def watch(self, resource: Any, *, resource_version: str, **_: Any) -> _Stream:
        self.watch_rvs.append(resource_version)
        step = self.watches.pop(0) if self.watches else None
        if step is None:
            return _Stream([], hang=True)
        if isinstance(step, BaseException):
            raise step
        return _Stream(list(step))


def _obj(name: str, rv: int) -> JSON:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}


async def test_informer_survives_errors_and_relists_on_http_410() -> None:
    from kube.client import Gone, Unavailable

    client = ScriptedClient(
        listings=[[_obj("a", 1), _obj("b", 2)], [_obj("a", 1), _obj("c", 150)]],
        watches=[
            [_ev("ADDED", "d", 101), b"\n", _ev("BOOKMARK", "", 120)],  # ends normally
            Unavailable("connection reset"),  # backs off, watches again from 120
            [b'{"type":"ERROR","object":{"kind":"Status","code":500,"message":"boom"}}\n'],
            Gone("too old", status=410),  # HTTP 410: relist
        ],
    )
    rec = Recorder()
    inf = Informer(client, resources.POD, on_event=rec, backoff=(0.001, 0.002))
    await inf.start(timeout=5)
    await eventually(lambda: inf.relists == 2, timeout=5)
    await eventually(lambda: len(client.watch_rvs) == 5, timeout=5)
    await inf.close()
    assert client.watch_rvs == ["100", "120", "120", "120", "100"]
    assert rec.events[:3] == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "d")]
    # After the relist: b and d vanished (deleted), c is new, a unchanged.
    assert sorted(rec.events[3:]) == [("ADDED", "c"), ("DELETED", "b"), ("DELETED", "d")]
    assert sorted(o["metadata"]["name"] for o in inf.list()) == ["a", "c"]

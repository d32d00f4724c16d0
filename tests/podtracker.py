"""A pod event tracker for update tests (Grove's e2e `updateTracker`, made stricter).

`PodTracker` watches every pod of a namespace from one list+watch stream and keeps, per pod, when it was
first seen (ADDED), first seen Ready, first seen with a deletionTimestamp and seen DELETED, with the
labels that place it: PodClique, PodCliqueSet replica index, scaling group and its replica index, pod
index and template hash (`grove.io/pod-template-hash`). Times are `time.monotonic()` at receipt; events
of one watch stream arrive in resourceVersion order, so "A before B" in the tracker is "A before B" in
the apiserver.

A pod's *slot* is (PodClique, pod index): a replacement takes the index of the pod it replaces (also for
scaling-group members, whose PodCliques are recreated under the same names). A **replacement** is the
time during which a slot is disrupted: it opens when the old pod starts terminating and closes when the
next pod of that slot becomes Ready (or starts terminating itself, which opens the next replacement); a
slot nobody refills (scale-in) closes when the old pod is gone. Open replacements at the end are open
until "now". Grove counts a pod as in flight only until its replacement is *created*; here it stays in
flight until the replacement *serves*, which is what "one at a time" is for.

Queries: `max_in_flight(podclique)` (replacements of one PodClique open at the same moment),
`replica_windows()` (per PodCliqueSet replica, from its first replacement opening to its last closing;
`assert_replicas_one_at_a_time()` checks those windows do not overlap) and
`max_group_replicas_in_flight(pcsg)` (scaling-group replicas with a replacement open at the same moment).

The second half is shared by the update e2e modules: `Workload` (a PodCliqueSet on a private pool, driven
with kubectl; `trigger()` is Grove's update trigger, env `UPDATE_TRIGGER`; `wait_updated()` Grove's
completion criterion plus "every pod on its clique's current template"), `workloads()` (the pools behind
a test's `start` fixture) and `quiet()` (a short "nothing happens" check).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes_asyncio import client, watch

from grove_api import constants as c
from grove_api import hashing
from grove_api.conditions import get_condition
from tests.gang import node_pool
from tests.kube import kubectl
from tests.waiting import until


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conds)


@dataclass
class PodRecord:
    """One pod (by uid) as the tracker saw it."""

    name: str
    uid: str
    podclique: str
    pcs_replica: int | None
    pcsg: str | None
    pcsg_replica: int | None
    index: int | None
    template_hash: str | None
    initial: bool  # present when the tracker started
    added: float
    seq: int  # order of first sight
    ready: float | None = None
    deleting: float | None = None  # deletionTimestamp first seen (or DELETED, whichever came first)
    deleted: float | None = None
    node: str | None = None

    @property
    def slot(self) -> tuple[str, int | None]:
        return (self.podclique, self.index)

    @property
    def live(self) -> bool:
        return self.deleting is None

    @classmethod
    def of(cls, pod: dict[str, Any], now: float, seq: int, initial: bool) -> PodRecord:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        return cls(
            name=meta["name"],
            uid=meta["uid"],
            podclique=labels.get(c.LABEL_PODCLIQUE, ""),
            pcs_replica=_int(labels.get(c.LABEL_PCS_REPLICA_INDEX)),
            pcsg=labels.get(c.LABEL_PCSG),
            pcsg_replica=_int(labels.get(c.LABEL_PCSG_REPLICA_INDEX)),
            index=_int(labels.get(c.LABEL_POD_INDEX)),
            template_hash=labels.get(c.LABEL_POD_TEMPLATE_HASH),
            initial=initial,
            added=now,
            seq=seq,
        )


@dataclass(frozen=True)
class Replacement:
    """A disrupted slot: `old` started terminating at `start`; `new` (if any) refilled it, Ready at `end`
    (`math.inf` while still open)."""

    old: PodRecord
    new: PodRecord | None
    start: float
    end: float


@dataclass
class PodTracker:
    api: client.ApiClient
    namespace: str
    pods: dict[str, PodRecord] = field(default_factory=dict)  # by uid
    log: list[tuple[float, str, str]] = field(default_factory=list)  # (time, event, pod name)
    started: float = field(default_factory=time.monotonic)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _synced: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PodTracker:
        self._task = asyncio.create_task(self._watch())
        await asyncio.wait_for(self._synced.wait(), timeout=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- recording --------------------------------------------------------------------------------

    def _see(self, kind: str, pod: dict[str, Any], initial: bool = False) -> None:
        now = time.monotonic()
        meta = pod["metadata"]
        rec = self.pods.get(meta["uid"])
        if rec is None:
            rec = PodRecord.of(pod, now, next(self._seq), initial)
            self.pods[rec.uid] = rec
            self.log.append((now, "ADDED", rec.name))
        rec.node = (pod.get("spec") or {}).get("nodeName") or rec.node
        if kind == "DELETED":
            if rec.deleting is None:
                rec.deleting = now
                self.log.append((now, "DELETING", rec.name))
            rec.deleted = now
            self.log.append((now, "DELETED", rec.name))
            return
        if meta.get("deletionTimestamp") and rec.deleting is None:
            rec.deleting = now
            self.log.append((now, "DELETING", rec.name))
        if rec.ready is None and rec.deleting is None and _ready(pod):
            rec.ready = now
            self.log.append((now, "READY", rec.name))

    async def _watch(self) -> None:
        core = client.CoreV1Api(self.api)
        version: str | None = None
        while True:
            if version is None:
                listed = await core.list_namespaced_pod(self.namespace)
                version = listed.metadata.resource_version
                items = self.api.sanitize_for_serialization(listed)["items"]
                seen = {p["metadata"]["uid"] for p in items}
                for rec in self.pods.values():  # gone while we were not watching
                    if rec.deleted is None and rec.uid not in seen:
                        self._see("DELETED", {"metadata": {"name": rec.name, "uid": rec.uid}})
                for pod in items:
                    self._see("ADDED", pod, initial=not self._synced.is_set())
                self._synced.set()
            try:
                async with watch.Watch().stream(
                    core.list_namespaced_pod,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=300,
                ) as stream:
                    async for event in stream:
                        raw = event.get("raw_object") or self.api.sanitize_for_serialization(event["object"])
                        version = raw["metadata"].get("resourceVersion") or version
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            self._see(event["type"], raw)
            except client.ApiException as err:
                if err.status != 410:
                    raise
                version = None

    # --- simple views ------------------------------------------------------------------------------

    def records(self, where: Callable[[PodRecord], bool] = lambda r: True) -> list[PodRecord]:
        return sorted((r for r in self.pods.values() if where(r)), key=lambda r: r.seq)

    def initial(self) -> list[PodRecord]:
        return self.records(lambda r: r.initial)

    def disturbed(self) -> list[PodRecord]:
        """Pods that were present at the start and have started terminating since."""
        return self.records(lambda r: r.initial and r.deleting is not None)

    def created(self) -> list[PodRecord]:
        """Pods created after the tracker started."""
        return self.records(lambda r: not r.initial)

    def live(self) -> list[PodRecord]:
        return self.records(lambda r: r.live)

    def describe(self, last: int = 60) -> str:
        t0 = self.started
        return "\n".join(f"  {t - t0:7.2f}s {kind:8s} {name}" for t, kind, name in self.log[-last:])

    # --- replacements ------------------------------------------------------------------------------

    def replacements(self) -> list[Replacement]:
        by_slot: dict[tuple[str, int | None], list[PodRecord]] = defaultdict(list)
        for rec in self.records():
            by_slot[rec.slot].append(rec)
        out = []
        for recs in by_slot.values():
            for i, old in enumerate(recs):
                if old.deleting is None:
                    continue
                new = recs[i + 1] if i + 1 < len(recs) else None
                if new is None:
                    end = old.deleted if old.deleted is not None else math.inf
                else:
                    ends = [t for t in (new.ready, new.deleting) if t is not None]
                    end = min(ends) if ends else math.inf
                out.append(Replacement(old, new, old.deleting, max(end, old.deleting)))
        return sorted(out, key=lambda r: r.start)

    @staticmethod
    def _max_concurrent(
        items: Iterable[Replacement], key: Callable[[Replacement], Hashable]
    ) -> tuple[int, list[Hashable]]:
        """Most distinct keys with a replacement open at one moment, and those keys."""
        items = list(items)
        best: tuple[int, list[Hashable]] = (0, [])
        for t in sorted({r.start for r in items}):
            open_keys = {key(r) for r in items if r.start <= t < r.end}
            if len(open_keys) > best[0]:
                best = (len(open_keys), sorted(open_keys, key=str))
        return best

    def max_in_flight(self, podclique: str | None = None) -> tuple[int, list[Hashable]]:
        """Pods (of one PodClique, or of any) being replaced at the same moment, and which."""
        items = [r for r in self.replacements() if podclique is None or r.old.podclique == podclique]
        return self._max_concurrent(items, lambda r: r.old.slot)

    def max_group_replicas_in_flight(self, pcsg: str) -> tuple[int, list[Hashable]]:
        """Replicas of scaling group `pcsg` with a replacement open at the same moment."""
        items = [r for r in self.replacements() if r.old.pcsg == pcsg]
        return self._max_concurrent(items, lambda r: r.old.pcsg_replica)

    def replica_windows(self) -> dict[int, tuple[float, float]]:
        """Per PodCliqueSet replica: (first replacement opened, last replacement closed), seconds since
        the tracker started."""
        spans: dict[int, list[Replacement]] = defaultdict(list)
        for r in self.replacements():
            if r.old.pcs_replica is not None:
                spans[r.old.pcs_replica].append(r)
        return {
            i: (min(r.start for r in rs) - self.started, max(r.end for r in rs) - self.started)
            for i, rs in sorted(spans.items())
        }

    def assert_replicas_one_at_a_time(self) -> None:
        """No PodCliqueSet replica starts being replaced before the previous one is done."""
        windows = sorted(self.replica_windows().items(), key=lambda kv: kv[1][0])
        for (i, (_, end)), (j, (start, _)) in itertools.pairwise(windows):
            assert end <= start, (
                f"replica {j} started being replaced at {start:.2f}s while replica {i} was until {end:.2f}s; "
                f"windows {self.replica_windows()}\n{self.describe()}"
            )


# --- PodCliqueSet updates on a private pool (shared by the rolling-update and OnDelete e2e modules) -----


UPDATE_TRIGGER = "UPDATE_TRIGGER"


class Pending(str):
    """A check's answer while the condition does not hold yet: falsy for `until`, and what it says ends up
    in the timeout message."""

    def __bool__(self) -> bool:
        return False


def clique_of(podclique: str, cliques: Iterable[str]) -> str | None:
    """The template clique a PodClique (or a pod's `grove.io/podclique` label) was made from."""
    matches = [q for q in cliques if podclique.endswith(f"-{q}")]
    return max(matches, key=len) if matches else None


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    containers = (pod.get("spec") or {}).get("containers") or []
    return {e["name"]: e.get("value", "") for e in (containers[0].get("env") or [])} if containers else {}


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return get_condition((obj.get("status") or {}).get("conditions"), kind)


@dataclass
class Workload:
    """One PodCliqueSet (Grove's e2e workload) on a test's own node pool, driven the way a user would:
    `kubectl apply`, `kubectl patch`, `kubectl scale`, `kubectl delete pod`."""

    api: client.ApiClient
    kubeconfig: Any
    namespace: str
    pool: Any  # tests.gang.Pool
    doc: dict[str, Any]
    triggers: int = 0

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])

    async def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return await asyncio.to_thread(kubectl, self.kubeconfig, "-n", self.namespace, *args, stdin=stdin)

    async def apply(self, doc: dict[str, Any] | None = None) -> None:
        if doc is not None:
            self.doc = doc
        await self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(self.doc))

    async def patch(self, ops: list[dict[str, Any]]) -> None:
        """A JSON patch of the PodCliqueSet."""
        await self.kubectl("patch", "pcs", self.name, "--type=json", "-p", json.dumps(ops))

    async def merge(self, patch: dict[str, Any]) -> None:
        await self.kubectl("patch", "pcs", self.name, "--type=merge", "-p", json.dumps(patch))

    async def trigger(self, *cliques: str) -> str:
        """Grove's update trigger: set env `UPDATE_TRIGGER` (a new value each time) in the first container
        of each clique, in one patch (one new generation). Returns the value."""
        self.triggers += 1
        value = f"{time.time_ns()}-{self.triggers}"
        pcs = await self.get()
        names = [q["name"] for q in pcs["spec"]["template"]["cliques"]]
        env = [{"name": UPDATE_TRIGGER, "value": value}]
        path = "/spec/template/cliques/{}/spec/podSpec/containers/0/env"
        await self.patch([{"op": "add", "path": path.format(names.index(q)), "value": env} for q in cliques])
        return value

    async def scale(self, kind: str, name: str, replicas: int) -> None:
        await self.kubectl("scale", kind, name, f"--replicas={replicas}")

    async def delete_pod(self, name: str) -> None:
        await self.kubectl("delete", "pod", name, "--wait=false")

    async def get(self, plural: str = c.PLURAL_PODCLIQUESET, name: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = await client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, plural, name or self.name
        )
        return obj

    async def pods(self) -> list[dict[str, Any]]:
        """Live pods (not terminating, not finished)."""
        listed = await client.CoreV1Api(self.api).list_namespaced_pod(self.namespace)
        items: list[dict[str, Any]] = self.api.sanitize_for_serialization(listed)["items"]
        return [
            p
            for p in items
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]

    async def events(self, reason: str) -> list[dict[str, Any]]:
        """Events with this reason on the PodCliqueSet."""
        listed = await client.CoreV1Api(self.api).list_namespaced_event(
            self.namespace, field_selector=f"reason={reason},involvedObject.name={self.name}"
        )
        items: list[dict[str, Any]] = self.api.sanitize_for_serialization(listed)["items"]
        return items

    async def uids(self) -> dict[str, str]:
        return {p["metadata"]["uid"]: p["metadata"]["name"] for p in await self.pods()}

    async def wait_running(
        self, count: int, timeout: float = 120, gone: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Exactly `count` live pods, every one bound and Ready, none of them with a uid in `gone`."""
        gone = set(gone)

        async def check() -> list[dict[str, Any]] | str:
            items = await self.pods()
            ready = sum(bool(p["spec"].get("nodeName")) and _ready(p) for p in items)
            if still := [p["metadata"]["name"] for p in items if p["metadata"]["uid"] in gone]:
                return Pending(f"still there: {still}")
            return items if len(items) == count == ready else Pending(f"{len(items)} live, {ready} ready")

        result = await until(f"{count} pods running and Ready", check, timeout=timeout)
        assert isinstance(result, list)
        return result

    async def wait_current(self, timeout: float = 60) -> dict[str, Any]:
        """The operator has seen the latest spec: observedGeneration and currentGenerationHash current."""

        async def check() -> dict[str, Any] | str:
            pcs = await self.get()
            st = pcs.get("status") or {}
            if st.get("observedGeneration") != pcs["metadata"]["generation"]:
                return Pending(
                    f"observedGeneration {st.get('observedGeneration')} of {pcs['metadata']['generation']}"
                )
            if st.get("currentGenerationHash") != hashing.generation_hash(pcs):
                return Pending("currentGenerationHash not current")
            return pcs

        result = await until("the PodCliqueSet status to be current", check, timeout=timeout)
        assert isinstance(result, dict)
        return result

    async def outdated(self, pcs: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
        """Live pods whose template hash is not their clique's current one."""
        hashes = hashing.clique_template_hashes(pcs)
        out = []
        for pod in items:
            labels = pod["metadata"].get("labels") or {}
            clique = clique_of(labels.get(c.LABEL_PODCLIQUE, ""), hashes)
            if clique is None or labels.get(c.LABEL_POD_TEMPLATE_HASH) != hashes[clique]:
                out.append(pod["metadata"]["name"])
        return out

    async def wait_updated(self, replicas: int, pods: int, timeout: float = 180) -> dict[str, Any]:
        """Grove's completion criterion (`status.updatedReplicas == replicas`, `updateProgress.updateEndedAt`
        set, observedGeneration current) plus: the generation hash is the current one, and exactly `pods`
        live pods run, all Ready and all on their clique's current template."""

        async def check() -> dict[str, Any] | str:
            pcs = await self.get()
            st = pcs.get("status") or {}
            progress = st.get("updateProgress") or {}
            if st.get("observedGeneration") != pcs["metadata"]["generation"]:
                return Pending(
                    f"observedGeneration {st.get('observedGeneration')} of {pcs['metadata']['generation']}"
                )
            if st.get("currentGenerationHash") != hashing.generation_hash(pcs):
                return Pending("currentGenerationHash not current")
            if st.get("updatedReplicas") != replicas or not progress.get("updateEndedAt"):
                cond = condition(pcs, "UpdateInProgress") or {}
                return Pending(
                    f"updatedReplicas {st.get('updatedReplicas')}, progress {progress}, "
                    f"UpdateInProgress {cond.get('reason')}: {cond.get('message')}"
                )
            items = await self.pods()
            ready = sum(bool(p["spec"].get("nodeName")) and _ready(p) for p in items)
            if not len(items) == pods == ready:
                return Pending(f"{len(items)} live pods, {ready} ready")
            if old := await self.outdated(pcs, items):
                return Pending(f"pods on an old template: {old}")
            return pcs

        result = await until(f"update complete on {replicas} replicas, {pods} pods", check, timeout=timeout)
        assert isinstance(result, dict)
        return result

    async def wait_podclique(self, name: str, timeout: float = 60) -> dict[str, Any]:
        """PodClique `name` has taken its clique's current template: its updateProgress targets the current
        generation and template hash (OnDelete: the progress is finished at once)."""

        async def check() -> dict[str, Any] | str:
            pcs = await self.get()
            hashes = hashing.clique_template_hashes(pcs)
            pclq = await self.get(c.PLURAL_PODCLIQUE, name)
            progress = (pclq.get("status") or {}).get("updateProgress") or {}
            clique = clique_of(name, hashes)
            if (
                clique is not None
                and progress.get("podTemplateHash") == hashes[clique]
                and progress.get("podCliqueSetGenerationHash") == hashing.generation_hash(pcs)
            ):
                return pclq
            return Pending(f"updateProgress {progress}")

        result = await until(f"PodClique {name} on the current template", check, timeout=timeout)
        assert isinstance(result, dict)
        return result

    async def wait_condition(
        self, kind: str, status: str, reason: str, timeout: float = 60
    ) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            cond = condition(await self.get(), kind)
            return cond if cond and cond["status"] == status and cond["reason"] == reason else None

        result = await until(f"{kind}={status}/{reason}", check, timeout=timeout)
        assert isinstance(result, dict)
        return result


Start = Callable[..., Awaitable[Workload]]  # the `start` fixture (tests/e2e/conftest.py)


async def quiet(tracker: PodTracker, seconds: float) -> None:
    """A short "nothing happens" check: no pod present at the tracker's start starts terminating and no
    pod is created for `seconds`."""
    await asyncio.sleep(seconds)
    assert not tracker.disturbed(), f"pods disturbed: {[r.name for r in tracker.disturbed()]}"
    assert not tracker.created(), f"pods created: {[r.name for r in tracker.created()]}"


@contextlib.asynccontextmanager
async def workloads(
    cluster: Any, api: client.ApiClient, namespace: str, invariant: Any
) -> AsyncIterator[Callable[..., Awaitable[Workload]]]:
    """`await start(doc_factory, nodes=N, pods=P, spare=S, **kw)`: a pool of N + S nodes (one pod each), the
    first N schedulable, the S spare ones cordoned; the workload `doc_factory("wl", namespace, pool, **kw)`
    applied and its P pods running, its first templates rolled out."""
    pools: list[Any] = []

    async def start(
        factory: Callable[..., dict[str, Any]], nodes: int, pods: int, spare: int = 0, **kw: Any
    ) -> Workload:
        pool_cm = node_pool(api, f"p{uuid.uuid4().hex[:6]}", nodes + spare)
        pool = await pool_cm.__aenter__()
        pools.append(pool_cm)
        await pool.uncordon(nodes)
        w = Workload(api, cluster.kubeconfig, namespace, pool, factory("wl", namespace, pool.name, **kw))
        await w.apply()
        await w.wait_running(pods)
        await w.wait_updated(int(w.doc["spec"]["replicas"]), pods)
        return w

    try:
        yield start
        assert invariant.events > 0, "the invariant checker saw no pod events"
    finally:
        for pool_cm in reversed(pools):
            await pool_cm.__aexit__(None, None, None)

"""The reconciler at run time: informers feed one work queue keyed by PodCliqueSet; workers turn a
snapshot of the caches into a plan and run it.

Every child of a PodCliqueSet carries `app.kubernetes.io/part-of=<pcs>`, so any event maps to exactly one
key `(namespace, pcs)`; the queue deduplicates bursts (a thousand pod events become a handful of passes).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

from grove_api import conditions as cond
from grove_api import constants as c
from grove_api.defaulting import default_podcliqueset
from grove_api.operatorconfig import OperatorConfiguration
from grove_api.pod_admission import admitted_on_create_copy
from grove_api.refs import Ref
from kube import resources
from kube.client import KubeClient, KubeError, NamespaceTerminating
from kube.events import event
from kube.informers import InformerFactory, selects
from kube.tombstones import Tombstones
from kube.workqueue import WorkQueue, run_workers
from reconciler.events import COMPONENT, events_for, last_errors, same_errors
from reconciler.executor import Executor, Expectations, NameTaken, Report
from reconciler.planner import registry
from reconciler.planner.actions import Action, Create, Delete, kind_of
from reconciler.planner.plan import Event, plan
from reconciler.planner.pods import with_owner_uid
from reconciler.planner.snapshot import Obj, Room, Snapshot
from reconciler.planner.topology import levels_of, topology_name

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, PodCliqueSet name)
# Pod events wake their PodCliqueSet this much later (see Manager._on_pod). A pass over 500 replicas costs
# about 50 ms of planning; at 0.25 s the operator planned a fifth of the time during a 1,000-pod start, and
# Ready came 10-15 % later than at 0.5 s (1.0 s measured no better).
POD_EVENT_BATCH_SECONDS = 0.5
# After a create was refused because its namespace is being deleted, creates there wait this long: the
# namespace controller deletes the children one by one and every deletion wakes the PodCliqueSet, which
# would otherwise try to put them back (and fail) tens of times a second until it is deleted itself.
NAMESPACE_TERMINATING_PAUSE_SECONDS = 5.0
# A pass whose only failures are names taken by objects of someone else's is tried again this often (not
# with the growing backoff of other failures): nothing tells us when such an object goes (it is not
# labelled, so not watched), and the user who removes it should not wait minutes for ours.
NAME_CONFLICT_RECHECK_SECONDS = 15.0


def _managed(obj: Obj) -> bool:
    return selects(c.MANAGED_SELECTOR, (obj.get("metadata") or {}).get("labels"))


def _sooner(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _is_pod(action: Action) -> bool:
    if isinstance(action, Create):
        return bool(action.obj["kind"] == "Pod")
    return isinstance(action, Delete) and action.ref.kind == "Pod"


class AdmitOnCreate(Protocol):
    """The gang admitter's admission on create (`admitter.on_create.AdmitOnCreate`): new gangs that fit now
    are admitted before their pods are created, and those pods are created pinned and ungated."""

    def admit(self, podgangs: Sequence[Obj], pods: Sequence[Obj]) -> dict[tuple[str, str], str]: ...
    def forget(self, keys: Iterable[tuple[str, str]]) -> None: ...


def admit_on_create(
    pods: list[Action], rest: Sequence[Action], on_create: AdmitOnCreate
) -> tuple[list[Action], set[tuple[str, str]]]:
    """Ask the admitter to admit on create the PodGangs this pass creates, with the pods it creates for them;
    the pod creates (those admitted now pinned and ungated) and the pods admitted."""
    gangs = [a.obj for a in rest if isinstance(a, Create) and a.obj["kind"] == c.KIND_PODGANG]
    if not gangs:
        return pods, set()
    referenced = {
        (g["metadata"]["namespace"], ref["name"])
        for g in gangs
        for group in g["spec"].get("podgroups") or []
        for ref in group.get("podReferences") or []
    }
    new = [a.obj for a in pods if isinstance(a, Create) and _pod_key(a.obj) in referenced]
    placed = on_create.admit(gangs, new)
    if not placed:
        return pods, set()
    out: list[Action] = [
        Create(admitted_on_create_copy(a.obj, placed[_pod_key(a.obj)]), a.reason)
        if isinstance(a, Create) and _pod_key(a.obj) in placed
        else a
        for a in pods
    ]
    return out, set(placed)


def without_secret_data(obj: Obj) -> Obj:
    """A token Secret as the reconciler keeps it: no `data`/`stringData`. It only checks that the Secret
    exists and is ours (the token controller fills the token in), so the token of every grove-initc in the
    cluster never sits in the operator's memory, heap dumps or debug output."""
    return {k: v for k, v in obj.items() if k not in ("data", "stringData")}


def _can_wait(event: str, obj: Obj) -> bool:
    """A change that needs no pass at once: a modification that is no deletion and brings no spec the
    reconciler has not reconciled (`status.observedGeneration`, where the kind has one, equals
    `metadata.generation`): a status written by us or the gang admitter, mostly."""
    meta = obj.get("metadata") or {}
    if event != "MODIFIED" or meta.get("deletionTimestamp"):
        return False
    observed = (obj.get("status") or {}).get("observedGeneration")
    return observed is None or observed == meta.get("generation")


@contextlib.contextmanager
def _timed(stages: dict[str, float], stage: str) -> Iterator[None]:
    """Record how long the block took under `stage` (logged with each pass that writes)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        stages[stage] = time.perf_counter() - started


def _pod_key(obj: Obj) -> tuple[str, str]:
    return (obj["metadata"]["namespace"], obj["metadata"]["name"])


class ReconcileError(Exception):
    """Some actions of a pass failed; the key is retried with backoff."""


RECONCILES = Counter(
    "grove_reconcile_total", "PodCliqueSet reconcile passes, by result (noop, ok, error).", ["result"]
)
RECONCILE_LATENCY = Histogram(
    "grove_reconcile_duration_seconds", "Duration of one reconcile pass that wrote."
)
WRITES = Counter(
    "grove_reconcile_writes_total", "API writes of the reconciler, by action and kind.", ["action", "kind"]
)
QUEUE_DEPTH = Gauge("grove_workqueue_depth", "PodCliqueSets waiting in the reconciler's work queue.")


class Manager:
    def __init__(
        self,
        client: KubeClient,
        config: OperatorConfiguration,
        room: Callable[[], Room | None] | None = None,
        on_create: Callable[[], AdmitOnCreate | None] | None = None,
        progressed: Callable[[], None] = lambda: None,
        informers: InformerFactory | None = None,
    ) -> None:
        """`room`: free capacity for a rolling update's replacements (the gang admitter's model), asked
        once per pass; without it an update replaces pods without asking (Grove's behaviour).
        `on_create`: the gang admitter's admission on create, asked to admit new gangs before their pods
        are created (without it, their pods are created gated and the admitter releases them later).
        Whether gang admission is on at all is `config.gang_admission.enabled` (`Snapshot.gang_admission`).
        `progressed`: called when a pass ends and on every event of a PodCliqueSet or a child, for the
        liveness probe (a long pass shows its progress through the events of its own writes); cheap.
        `informers`: the process's shared informers (pods, PodGangs and PodCliques are the gang admitter's
        too); without it the manager has informers of its own."""
        self.client = client
        self.config = config
        self.room = room
        self.on_create = on_create
        self.progressed = progressed
        self.queue: WorkQueue[Key] = WorkQueue(name="podcliqueset")
        self.expectations = Expectations()
        self.tombstones = Tombstones()  # children deleted, their deletion not in the cache yet
        self._terminating: dict[str, float] = {}  # namespace -> when a create there was refused for it
        # PodCliqueSet -> PodClique -> time.monotonic() when the hold on its progress-only status change ends
        self._status_holds: dict[Key, dict[str, float]] = {}
        # PodCliqueSet -> its children whose names objects of someone else's have (Snapshot.conflicts)
        self._conflicts: dict[Key, dict[str, str]] = {}
        self.executor = Executor(client, concurrency=32, expectations=self.expectations)
        QUEUE_DEPTH.set_function(lambda: len(self.queue))
        self._own_informers = informers is None
        factory = InformerFactory(client) if informers is None else informers
        self.podcliquesets = factory.informer(resources.PODCLIQUESET)
        # One informer per kind of child (reconciler/planner/registry.py), by the kind's snapshot key.
        # Pods and core objects of other workloads are not needed, only what we manage; a shared informer
        # may hold more (the gang admitter's pods are all the cluster's): reads and events are filtered.
        self.children = {
            kind.key: factory.informer(
                resources.lookup(kind.api_version, kind.kind),
                label_selector=c.MANAGED_SELECTOR,
                transform=without_secret_data if kind is registry.SECRETS else None,
            )
            for kind in registry.CHILD_KINDS
        }
        # Cluster-scoped and few: the levels of the binding a PodCliqueSet's topology constraints name.
        self.topologies = factory.informer(resources.CLUSTERTOPOLOGYBINDING)
        # Added now (a shared informer that has listed already replays its cache to them), removed when
        # `run` ends.
        self._removers = [
            self.podcliquesets.add_handler(self._on_podcliqueset),
            self.topologies.add_handler(self._on_topology),
            *(
                i.add_handler(self._on_pod if i.resource is resources.POD else self._on_child)
                for i in self.children.values()
            ),
        ]

    # -- events -> keys --------------------------------------------------------------------------------

    def _wake(self, key: Key, event: str, obj: Obj) -> None:
        """A change that can wait (`_can_wait`) wakes the PodCliqueSet as pod events do, a moment later:
        every pass that writes statuses would otherwise be followed at once by another, woken by its own
        writes. Anything else (a new spec, a creation, a deletion) is looked at now."""
        self.progressed()
        if _can_wait(event, obj):
            self.queue.add_after(key, POD_EVENT_BATCH_SECONDS)
        else:
            self.queue.add(key)

    def _on_podcliqueset(self, event: str, obj: Obj) -> None:
        meta = obj.get("metadata", {})
        self._wake((meta.get("namespace", ""), meta.get("name", "")), event, obj)

    def _on_child(self, event: str, obj: Obj) -> None:
        if not _managed(obj):
            return
        self.tombstones.observe(obj, deleted=event == "DELETED")
        meta = obj.get("metadata", {})
        pcs = (meta.get("labels") or {}).get(c.LABEL_PART_OF)
        if pcs:
            self._wake((meta.get("namespace", ""), pcs), event, obj)

    def _on_pod(self, event: str, obj: Obj) -> None:
        """Pod events come in storms (every pod of a large PodCliqueSet goes gated → released → bound →
        Ready within seconds); they wake the PodCliqueSet after a short batching delay, so a storm makes a
        few passes over the whole tree rather than one per event, leaving the CPU to the admitter."""
        self.progressed()
        self.expectations.observe(obj, deleted=event == "DELETED")
        meta = obj.get("metadata", {})
        pcs = (meta.get("labels") or {}).get(c.LABEL_PART_OF)
        if pcs:
            self.queue.add_after((meta.get("namespace", ""), pcs), POD_EVENT_BATCH_SECONDS)

    def _on_topology(self, event: str, obj: Obj) -> None:
        """A binding appeared, changed or went: the PodCliqueSets whose constraints name it."""
        name = obj.get("metadata", {}).get("name")
        for pcs in self.podcliquesets.list():
            if topology_name(pcs.get("spec", {}).get("template", {})) == name:
                self._on_podcliqueset(event, pcs)

    def has_work(self) -> bool:
        """PodCliqueSets waiting for a worker or being reconciled (not those due later): for the liveness
        probe, which also needs progress to be missing before it fails."""
        return len(self.queue) > 0 or bool(self.queue.processing())

    # -- one pass --------------------------------------------------------------------------------------

    async def _pass(self, key: Key) -> float | None:
        """`reconcile`, and a finished pass (whatever its result) is progress."""
        try:
            return await self.reconcile(key)
        finally:
            self.progressed()

    def snapshot(self, key: Key) -> Snapshot | None:
        namespace, name = key
        pcs = self.podcliquesets.get(namespace, name)
        if pcs is None:
            return None
        pcs = {"apiVersion": c.API_VERSION, "kind": c.KIND_PODCLIQUESET, **pcs}
        defaulted = default_podcliqueset(pcs)
        defaulted["metadata"] = pcs["metadata"]
        children: dict[str, dict[str, Obj]] = {}
        for kind, informer in self.children.items():
            objs = [o for o in informer.by_label(c.LABEL_PART_OF, name, namespace=namespace) if _managed(o)]
            if informer.resource is resources.POD:  # deleted gracefully, and Expectations cover them
                children[kind] = {o["metadata"]["name"]: o for o in objs}
            else:
                children[kind] = {o["metadata"]["name"]: self.tombstones.mark(o) for o in objs}
        pending = frozenset(
            pclq
            for pclq in children.get(registry.PODCLIQUES.key, {})
            if self.expectations.pending(f"{namespace}/{pclq}")
        )
        return Snapshot(
            pcs=defaulted,
            now=datetime.now(UTC),
            pending=pending,
            topology_levels=self._topology_levels(defaulted),
            gang_admission=self.config.gang_admission.enabled,
            room=self.room() if self.room is not None else None,
            nonce=secrets.token_hex(4),
            status_holds={n: t - time.monotonic() for n, t in self._status_holds.get(key, {}).items()},
            conflicts=self._conflicts.get(key, {}),
            children=children,
        )

    def _record_holds(self, key: Key, held: Mapping[str, float]) -> None:
        before = self._status_holds.pop(key, {})
        if held:
            now = time.monotonic()
            self._status_holds[key] = {name: before.get(name, now + left) for name, left in held.items()}

    def _record_conflicts(self, key: Key, report: Report) -> None:
        """The names this pass found taken by someone else's objects: what the next pass's NameConflict
        condition reports (every pass tries the creates again, so a name freed since is taken then)."""
        found = {
            f"{kind_of(f.action)} {f.action.obj['metadata'].get('name', '')}": f.message
            for f in report.errors
            if isinstance(f.error, NameTaken) and isinstance(f.action, Create)
        }
        if found:
            self._conflicts[key] = found
        else:
            self._conflicts.pop(key, None)

    def _topology_levels(self, pcs: Obj) -> dict[str, str] | None:
        """domain -> node label key of the binding the PodCliqueSet's constraints name; None when
        topology-aware scheduling is disabled or there is no such binding."""
        if not self.config.topology_aware_scheduling.enabled:
            return None
        name = topology_name(pcs["spec"].get("template", {}))
        binding = self.topologies.get(None, name) if name else None
        return levels_of(binding) if binding is not None else None

    async def reconcile(self, key: Key) -> float | None:
        snap = self.snapshot(key)
        if snap is None:
            self._status_holds.pop(key, None)
            self._conflicts.pop(key, None)
            self._terminating.pop(key[0], None)
            return None
        started = time.perf_counter()
        stages: dict[str, float] = {}
        with _timed(stages, "plan"):
            result = plan(snap)
        self._record_holds(key, result.held_statuses)
        if not result.actions:
            self._conflicts.pop(key, None)  # nothing to create: no name is in the way
            RECONCILES.labels("noop").inc()
            await self._record(snap, Report(), result.events)
            return result.requeue_after
        actions, paused = self._without_creates_in_terminating(key[0], result.actions)
        report = await self._execute(actions, stages)
        self._record_conflicts(key, report)
        for action in actions:
            WRITES.labels(type(action).__name__, kind_of(action)).inc()
        if self._namespace_terminating(key[0], report):
            paused = NAMESPACE_TERMINATING_PAUSE_SECONDS
        if not paused:  # else nothing for people to read there any more (and Events cannot be created)
            await self._record(snap, report, result.events)
        await self._last_errors(snap, report, result.invalid)
        elapsed = time.perf_counter() - started
        RECONCILE_LATENCY.observe(elapsed)
        RECONCILES.labels("ok" if report.ok else "error").inc()
        log.info(
            "reconciled",
            extra={
                "podcliqueset": f"{key[0]}/{key[1]}",
                "actions": len(actions),
                "writes": dict(collections.Counter(f"{type(a).__name__} {kind_of(a)}" for a in actions)),
                "ms": round(elapsed * 1000, 1),
                "stages_ms": {stage: round(t * 1000, 1) for stage, t in stages.items()},
                "ok": report.ok,
            },
        )
        if (
            report.errors
            and not report.skipped
            and all(isinstance(f.error, NameTaken) for f in report.errors)
        ):
            return _sooner(result.requeue_after, NAME_CONFLICT_RECHECK_SECONDS)
        if not report.ok:
            raise ReconcileError(report.summary())
        return _sooner(result.requeue_after, paused) if paused else result.requeue_after

    def _without_creates_in_terminating(
        self, namespace: str, actions: list[Action]
    ) -> tuple[list[Action], float]:
        """The actions minus creates while creates in `namespace` wait (NAMESPACE_TERMINATING_PAUSE_SECONDS),
        and how much longer they wait (0: not waiting)."""
        since = self._terminating.get(namespace)
        if since is None:
            return actions, 0.0
        left = NAMESPACE_TERMINATING_PAUSE_SECONDS - (time.monotonic() - since)
        if left <= 0:
            del self._terminating[namespace]
            return actions, 0.0
        return [a for a in actions if not isinstance(a, Create)], left

    def _namespace_terminating(self, namespace: str, report: Report) -> bool:
        """Creates refused because the namespace is being deleted: not errors to retry (the PodCliqueSet
        goes with the namespace); creates there wait for a while. Removes them from `report`."""
        refused = [f for f in report.errors if isinstance(f.error, NamespaceTerminating)]
        if not refused:
            return False
        if namespace not in self._terminating:
            log.info("namespace is being deleted: creates there wait", extra={"namespace": namespace})
        self._terminating[namespace] = time.monotonic()
        report.errors = [f for f in report.errors if f not in refused]
        report.skipped = []  # pod creates stopped after a refused one
        return True

    async def _record(self, snap: Snapshot, report: Report, decided: list[Event]) -> None:
        """Events for `kubectl describe`: what the pass did and what it decided (gang termination, rolling
        update steps); losing one is not worth failing the pass."""
        recorded = events_for(snap.pcs, report, snap.now) + [
            event(e.obj, e.type, e.reason, e.message, snap.now, component=COMPONENT) for e in decided
        ]
        for event_ in recorded:
            try:
                await self.client.create(event_)
            except KubeError as err:
                log.warning("could not record an event: %s", err)

    async def _last_errors(self, snap: Snapshot, report: Report, invalid: list[str]) -> None:
        """`status.lastErrors` of the PodCliqueSet: what the last pass could not do and why its spec cannot be
        acted on, cleared by a pass that did everything (so `kubectl get pcs -o yaml` shows why it is not
        converging)."""
        errors = last_errors(report, snap.now, invalid)
        if same_errors((snap.pcs.get("status") or {}).get("lastErrors"), errors):
            return
        ref = Ref(c.API_VERSION, c.KIND_PODCLIQUESET, snap.namespace, snap.name)
        try:
            await self.client.patch_status(ref, {"lastErrors": errors})
        except KubeError as err:
            log.warning("could not record lastErrors: %s", err)

    async def _execute(self, actions: list[Action], stages: dict[str, float] | None = None) -> Report:
        """In stages, so pods reach the scheduler (or go) as early as possible: new PodCliques first; then
        pods: those of the new PodCliques (the planner made them; their owner's uid comes back from the
        PodClique's create, no need to wait for the watch) and every other pod create or delete; then
        everything else: PodGangs first (they list the pods; the admitter waits for them), then Services,
        statuses. (Starting the first gangs sooner was measured no faster to Ready and
        much slower to create every pod, whether each new PodGang was created just before its pods, chained
        after its own PodCliques and pods, or gangs went in batches of doubling size: every request waits
        longer once admission and binding run alongside the creates. Creating each PodClique's pods as soon
        as its own create answered, with half the slots kept for pods, was slower too: 1,000 pods took
        7.2 s instead of 4.9 s, Ready 23.8 s instead of 20.4 s, medians of three rounds.) How long each
        stage took is logged with the pass (`stages_ms`)."""
        cliques = [a for a in actions if isinstance(a, Create) and a.obj["kind"] == c.KIND_PODCLIQUE]
        pods = [a for a in actions if _is_pod(a)]
        rest = [a for a in actions if not _is_pod(a) and a not in cliques]
        rest.sort(key=lambda a: not (isinstance(a, Create) and a.obj["kind"] == c.KIND_PODGANG))
        deletes = {a.uid for a in actions if isinstance(a, Delete) and not _is_pod(a) and a.uid}
        self.tombstones.record(deletes, cond.format_time(datetime.now(UTC)))
        stages = {} if stages is None else stages
        report = Report()
        if cliques:
            with _timed(stages, "podcliques"):
                created = await self.executor.run(cliques)
            report.merge(created)
            uids = {(r.ref.namespace, r.ref.name): r.uid for r in created.created if r.uid and not r.existed}
            pods = [owned for a in pods if (owned := with_owner_uid(a, uids)) is not None]
        on_create = self.on_create() if self.on_create is not None else None
        admitted: set[tuple[str, str]] = set()
        if on_create is not None:
            with _timed(stages, "admission"):
                pods, admitted = admit_on_create(pods, rest, on_create)
        with _timed(stages, "pods"):
            created = await self.executor.run(pods)
        report.merge(created)
        if on_create is not None and admitted:
            on_create.forget(admitted - {(r.ref.namespace, r.ref.name) for r in created.created})
        with _timed(stages, "rest"):
            report.merge(await self.executor.run(rest))
        self.tombstones.discard(
            f.action.uid for f in report.errors if isinstance(f.action, Delete) and f.action.uid in deletes
        )
        return report

    # -- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sync every cache, queue every PodCliqueSet, then work until cancelled."""
        informers = [self.podcliquesets, self.topologies, *self.children.values()]
        try:
            await asyncio.gather(*(i.start() for i in informers))
            log.info("caches synced", extra={"informers": [repr(i) for i in informers]})
            for pcs in self.podcliquesets.list():
                self._on_podcliqueset("SYNC", pcs)
            await run_workers(self.queue, self._pass, self.config.controllers.pod_clique_set.concurrent_syncs)
        finally:
            self.queue.shutdown()
            for remove in self._removers:
                remove()
            if self._own_informers:
                for informer in informers:
                    informer.stop()

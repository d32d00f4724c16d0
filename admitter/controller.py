"""The gang admitter's I/O: informers in, decisions out. Every decision is made by `admitter.core`.

Nodes, all pods (ours and everyone else's: they all use capacity), PodGangs and PriorityClasses are
cached by informers; every event updates the `ClusterModel` and wakes the admission loop, which runs one
pass (`Planner.decide`) over the whole queue and carries the decision out:

* **Admit** a gang: first its PodGang status records the admission (phase Admitted, condition
  Admitted=True), then every pod of its minimum is pinned to its planned node and released in one strategic
  merge patch each (nodeSelector `kubernetes.io/hostname` + removal of Grove's gate), all pods at once.
  Recording first makes the release restartable: after a crash the admitter knows the gang was granted and
  releases the rest of it (all together, as its replacements), instead of holding a half-released gang; if
  none was released, the gang is un-admitted and queues again (below).
* **Admit on creation** (`preadmit`, asked by the reconciler before it creates a new gang's pods): while
  nothing else waits, a new gang that fits is admitted before its pods exist; they are created pinned and
  ungated, and the admission is put on record (**Record**) once the PodGang exists and its pods run (phase
  Running in the same write), or once the PodGang is RECORD_WAIT_SECONDS old.
* **Release** a single pod of an admitted gang: its replacement pods (the planner releases those that bring
  it back to its minimum all together, or none), or pods beyond its minimum.
* **Replacements blocked**: an admitted gang's replacement pods do not all fit. The gang stays admitted
  (condition Admitted=True, reason `ReplacementsBlocked`, the message says why) and a Warning Event is
  recorded when the reason changes; once they are released (or no longer needed) the reason goes back to
  `GangAdmitted`.
* **Unadmit** an admitted gang none of whose pods is bound or released (all recreated, e.g. by gang
  termination): condition Admitted=False, reason `GangRecreated`, phase Pending; it then queues as a new
  gang.
* **Blocked / Waiting**: the PodGang's Admitted condition says why (False, with the reason and numbers), and
  an Event is recorded when the reason changes.
* **Reset** an admitted gang whose minimum did not get bound in time: its unbound pods are deleted (the
  reconciler recreates them, gated by the pod webhook) and the condition says so.

Our own patches are applied to the model as soon as the apiserver answers, so the next pass never counts
capacity twice; older watch events for the same pod are ignored (resourceVersion order).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from admitter.core.cluster import ClusterModel
from admitter.core.decision import REASON_RECREATED, REASON_RESET, Record
from admitter.core.plan import Admit, Blocked, Decision, PlanConfig, Planner, Reset, Unadmit, Waiting
from admitter.core.pods import essentials
from admitter.core.room import ReplacementRoom
from grove_api import conditions as cond
from grove_api import constants as c
from grove_api.operatorconfig import GangAdmission
from grove_api.pod_admission import HOSTNAME_LABEL, admitted_on_create_copy, with_gate
from grove_api.refs import Ref
from kube import resources
from kube.client import CONTENT_STRATEGIC_MERGE_PATCH, JSON, KubeClient, KubeError, NotFound
from kube.events import event
from kube.informers import InformerFactory
from reconciler.planner.status import REASON_REPLACEMENTS_BLOCKED, podgang_running, with_podgang_initialized

log = logging.getLogger(__name__)

PENDING = Gauge("grove_gangs_pending", "PodGangs not admitted, by the reason they wait.", ["reason"])
ADMITTED = Counter("grove_gangs_admitted_total", "PodGangs whose minimum was released to the scheduler.")
RESETS = Counter("grove_gang_resets_total", "Admitted PodGangs reset because they were not bound in time.")
RECREATED = Counter(
    "grove_gangs_recreated_total", "Admitted PodGangs un-admitted because all their pods were recreated."
)
REPLACEMENTS_BLOCKED = Gauge(
    "grove_gangs_replacements_blocked", "Admitted PodGangs whose replacement pods do not all fit now."
)
RELEASED = Counter("grove_pods_released_total", "Pods pinned and ungated by the gang admitter.")
PREADMITTED = Counter(
    "grove_gangs_admitted_on_create_total",
    "PodGangs admitted before their pods were created (created ungated).",
)
ADMISSION_LATENCY = Histogram(
    "grove_gang_admission_latency_seconds",
    "From a PodGang's creation to its admission.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0),
)
PASS_LATENCY = Histogram(
    "grove_gang_admission_pass_duration_seconds", "Time to decide one admission pass over the whole queue."
)

FIELD_MANAGER = "grove-gang-admitter"
COMPONENT = "grove-gang-admitter"
CONDITION_ADMITTED = c.CONDITION_PODGANG_ADMITTED
REASON_ADMITTED = "GangAdmitted"
REASON_GANGS_ADMITTED = "GangsAdmitted"  # on the PodCliqueSet: the gangs one pass admitted
# Admitted=True, but replacement pods do not all fit (the PodCliqueSet summary reports it as waiting)
PHASE_PENDING, PHASE_ADMITTED, PHASE_RUNNING = "Pending", "Admitted", "Running"
TICK_SECONDS = 2.0  # passes also run this often without events: timeouts and aging move with the clock
# Capacity counts as settled this long after it last grew (see admitter.core.plan, "Settling").
SETTLE_SECONDS = 1.0
DEBOUNCE_SECONDS = 0.01  # a burst of watch events makes one pass
CONCURRENCY = 32
STATUS_CONCURRENCY = 4
# A gang admitted as its pods were created is put on record once they all run (Admitted, Initialized and phase
# Running in one write), or once its PodGang is this old (phase Admitted, Running follows): written at once,
# most of a big start's gangs took a second write when they came to run, amid the start they report on.
RECORD_WAIT_SECONDS = 30.0
PHASE_WRITES_PER_SECOND = 20  # gangs marked Running (see Admitter._phase_budget)
QUIET_SECONDS = 10.0  # a new PodGang waiting for its pods gets its first condition only after this long


def release_patch(hostname: str) -> JSON:
    """Pin to the planned node and lift Grove's gate (other gates stay), in one request. The apiserver
    accepts nodeSelector additions on a gated pod, and the patch is rejected as a whole if the pod was
    pinned elsewhere meanwhile."""
    return {
        "spec": {
            "nodeSelector": {HOSTNAME_LABEL: hostname},
            "schedulingGates": [{"$patch": "delete", "name": c.SCHEDULING_GATE_PODGANG_PENDING}],
        }
    }


def _rv(obj: JSON) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _key(obj: JSON) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


class Admitter:
    def __init__(
        self,
        client: KubeClient,
        config: GangAdmission,
        progressed: Callable[[], None] = lambda: None,
        informers: InformerFactory | None = None,
    ) -> None:
        """`progressed`: called when a pass ends and when one of its writes lands, for the liveness probe
        (not on watch events: pods of the whole cluster keep coming while a pass may be stuck); cheap.
        `informers`: the process's shared informers (pods and PodGangs are the reconciler's too); without
        it the admitter has informers of its own."""
        self.client = client
        self.config = config
        self.progressed = progressed
        self.model = ClusterModel()
        self.planner = Planner(
            PlanConfig(
                bind_timeout_seconds=config.bind_timeout_seconds,
                starvation_seconds=config.starvation_seconds,
            )
        )
        self._wake = asyncio.Event()
        self._written: dict[tuple[str, str], int] = {}  # pod -> resourceVersion of our last patch
        self._priorities: dict[str, int] = {}
        self._own_informers = informers is None
        factory = InformerFactory(client) if informers is None else informers
        self.nodes = factory.informer(resources.NODE)
        # Every pod of the cluster uses capacity; of pods it keeps what the model reads (`essentials`).
        self.pods = factory.informer(resources.POD, transform=essentials)
        # Only the operator's PodGangs: their pods are the ones the pod webhook gates.
        self.podgangs = factory.informer(resources.PODGANG, label_selector=c.MANAGED_SELECTOR)
        self.priority_classes = factory.informer(resources.PRIORITY_CLASS)
        self._limit = asyncio.Semaphore(CONCURRENCY)  # pod releases: what the scheduler waits for
        # Conditions and phases of gangs that are not being released: a few at a time, so they never
        # crowd out releases.
        self._status_limit = asyncio.Semaphore(STATUS_CONCURRENCY)
        self._pending_reasons: set[str] = set()
        self._waiting_written: dict[
            tuple[str, str], float
        ] = {}  # gang -> when its waiting reason was written
        self._capacity: dict[str, tuple[Any, ...]] = {}  # node -> what its usable capacity was last seen as
        # gang -> resourceVersion of the PodGang when we last un-admitted it (reset or recreated): while the
        # informer still shows that version, it has not seen our write and the decision is not repeated.
        self._unadmitted: dict[tuple[str, str], int] = {}
        self._replacements_written: dict[tuple[str, str], int] = {}  # the same for ReplacementsBlocked
        self._phase_written: dict[tuple[str, str], int] = {}  # the same for phase Running
        self._recorded: dict[tuple[str, str], int] = {}  # the same for admissions put on record
        # Gangs whose record waits for their pods to run, and gangs whose pods or PodGang changed since the
        # last pass: a waiting gang is looked at again only when touched (or when its wait is over).
        self._record_waits: set[tuple[str, str]] = set()
        self._touched: set[tuple[str, str]] = set()
        # PodCliqueSet uid -> gangs put on record (and their pods) not yet told in an Event
        self._unreported: dict[str, list[tuple[JSON, int]]] = {}
        self._placeholders: set[tuple[str, str]] = set()  # pods admitted before creation, not seen yet
        self.synced = False
        self._grew_at = 0.0  # time.monotonic() when some node's usable capacity last grew
        self._phase_tokens, self._phase_refilled = float(PHASE_WRITES_PER_SECOND), time.monotonic()
        self.model.add_listener(self._on_capacity)
        # Added last (a shared informer that has listed already replays its cache to them, and the handlers
        # use everything above); removed when `run` ends.
        self._removers = [
            self.nodes.add_handler(self._on_node),
            self.pods.add_handler(self._on_pod),
            self.podgangs.add_handler(self._on_podgang),
            self.priority_classes.add_handler(self._on_priority),
        ]

    # -- events -> model ---------------------------------------------------------------------------------

    def _on_node(self, kind: str, node: JSON) -> None:
        if kind == "DELETED":
            self.model.delete_node(node["metadata"]["name"])
        else:
            self.model.upsert_node(node)
        self._wake.set()

    def _on_pod(self, kind: str, pod: JSON) -> None:
        key = _key(pod)
        self._placeholders.discard(key)
        if kind == "DELETED":
            self._written.pop(key, None)
            self.model.delete_pod(*key)
        elif _rv(pod) >= self._written.get(key, 0):
            self.model.upsert_pod(pod)
        gang = pod["metadata"].get("labels", {}).get(c.LABEL_PODGANG)
        if gang:
            self._touched.add((key[0], gang))
        self._wake.set()

    def _on_podgang(self, kind: str, podgang: JSON) -> None:
        if kind == "DELETED":
            self._waiting_written.pop(_key(podgang), None)
            self._unadmitted.pop(_key(podgang), None)
            self._replacements_written.pop(_key(podgang), None)
            self._phase_written.pop(_key(podgang), None)
            self._recorded.pop(_key(podgang), None)
            self._record_waits.discard(_key(podgang))
        self._touched.add(_key(podgang))
        self._wake.set()

    def _on_priority(self, kind: str, priority_class: JSON) -> None:
        name = priority_class["metadata"]["name"]
        if kind == "DELETED":
            self._priorities.pop(name, None)
        else:
            self._priorities[name] = int(priority_class.get("value") or 0)
        self._wake.set()

    def _on_capacity(self, name: str) -> None:
        """Remember when capacity last grew: freed requests, a node uncordoned, Ready, untainted, added."""
        info = self.model.node(name)
        if info is None:
            self._capacity.pop(name, None)
            return
        free = self.model.free(name)
        now = (free, info.unschedulable, info.ready, frozenset(info.taints))
        old = self._capacity.get(name)
        self._capacity[name] = now
        if (
            old is None
            or any(free.get(r) > old[0].get(r) for r in free)
            or (old[1] and not info.unschedulable)
            or (info.ready and not old[2])
            or now[3] < old[3]
        ):
            self._grew_at = time.monotonic()

    def priority_of(self, podgang: JSON) -> int:
        name = (podgang.get("spec") or {}).get("priorityClassName")
        return self._priorities.get(name, 0) if name else 0

    # -- one pass ----------------------------------------------------------------------------------------

    def replacement_room(self) -> ReplacementRoom:
        """A fresh capacity oracle over the live model: would these new pods fit once those old pods are
        gone (see admitter.core.room)? One per reconcile pass."""
        return ReplacementRoom(self.model)

    def preadmit(self, podgangs: Sequence[JSON], pods: Sequence[JSON]) -> dict[tuple[str, str], str]:
        """Admit new gangs before their pods are created: pod -> hostname of the node to create it pinned
        to, ungated (`grove_api.pod_admission.admitted_on_create_copy`). Only while the admitter has
        nothing else to decide (no other gang waits, is blocked or is being released, capacity settled), so
        no gang ever overtakes another; the new gangs are then judged exactly as a pass would judge them
        once they exist (all or nothing, newest last), and those that do not fit are left out: their pods
        are created gated and queue as usual. Only pods being created are placed: a gang whose other pods
        already exist gated is left to the usual path too.

        The model counts the admitted pods on their nodes at once (the next pass sees the capacity taken);
        `forget` those whose creation fails. Nothing is written here: the admission is put on record once
        the PodGang exists (`decision.Record`), which also covers an operator stopped in between."""
        if not self.synced or not podgangs:
            return {}
        now = datetime.now(UTC)
        created = cond.format_time(now)
        new = [{**g, "metadata": {**g["metadata"], "creationTimestamp": created}} for g in podgangs]
        new_keys = {_key(g) for g in new}
        placeholders = [essentials(with_gate(p)) for p in pods]
        for pod in placeholders:
            self.model.upsert_pod(pod)
        decision = self.planner.decide(
            self.model, [*self.podgangs.list(), *new], now.timestamp(), self.priority_of, self.settled()
        )
        decided: list[Admit | Blocked | Waiting | Reset] = [
            *decision.admit,
            *decision.blocked,
            *decision.waiting,
            *decision.restore_blocked,
            *decision.reset,
        ]
        busy = (
            decision.deferred
            or any(x.key not in new_keys for x in decided)
            or any((r.namespace, r.gang) not in new_keys for r in decision.release)
        )
        placed: dict[tuple[str, str], str] = {}
        if busy:
            log.info(
                "admission on creation declined: other gangs wait",
                extra={
                    "gangs": sorted("/".join(k) for k in new_keys),
                    "deferred": decision.deferred,
                    "others": sorted({"/".join(x.key) for x in decided if x.key not in new_keys})[:5],
                },
            )
        else:
            planned = {_key(p) for p in placeholders}
            for admit in decision.admit:
                keys = {(admit.namespace, name): node for name, node in admit.placements.items()}
                # All or nothing: none of it is released by a patch later, and no pod of another
                # incarnation (left for the garbage collector) counts towards the minimum.
                others = {
                    p.key for p in self.model.gang_pods(admit.namespace, admit.gang) if p.active
                } - planned
                if keys.keys() <= planned and not others:
                    placed.update({k: self.model.hostname_of(n) for k, n in keys.items()})
                    PREADMITTED.inc()
        for pod in placeholders:
            key = _key(pod)
            if key in placed:
                self.model.upsert_pod(admitted_on_create_copy(pod, placed[key]))
                self._placeholders.add(key)
            else:
                self.model.delete_pod(*key)
        return placed

    def forget(self, keys: Iterable[tuple[str, str]]) -> None:
        """Pods `preadmit` placed that were not created after all: their capacity is free again."""
        for key in keys:
            if key in self._placeholders:
                self._placeholders.discard(key)
                self.model.delete_pod(*key)
        self._wake.set()

    def settled(self) -> bool:
        return time.monotonic() - self._grew_at >= SETTLE_SECONDS

    def has_work(self) -> bool:
        """Events wait for a pass (once the caches are synced): for the liveness probe, which also needs
        progress to be missing before it fails."""
        return self.synced and self._wake.is_set()

    def decide(self, now: datetime) -> Decision:
        return self.planner.decide(
            self.model, self.podgangs.list(), now.timestamp(), self.priority_of, self.settled()
        )

    async def run_pass(self) -> Decision:
        now = datetime.now(UTC)
        started = time.perf_counter()
        decision = self.decide(now)
        decided = time.perf_counter() - started
        PASS_LATENCY.observe(decided)
        waiting = collections.Counter(
            [*(b.reason for b in decision.blocked), *(w.reason for w in decision.waiting)]
        )
        for reason in self._pending_reasons | set(waiting):
            PENDING.labels(reason).set(waiting.get(reason, 0))
        self._pending_reasons |= set(waiting)
        REPLACEMENTS_BLOCKED.set(len(decision.restore_blocked))
        results = await asyncio.gather(
            *(self._admit(a, now) for a in decision.admit),
            *(self._release(r.namespace, r.pod, r.node) for r in decision.release),
            *(self._reset(r, now) for r in decision.reset),
            *(self._unadmit(u, now) for u in decision.unadmit),
        )
        await self._report_admitted([r for r in results[: len(decision.admit)] if r is not None], now)
        await self._record_waiting(decision, now)
        await self._record_replacements(decision, now)
        if decision.admit or decision.release or decision.reset or decision.unadmit:
            log.info(
                "admission pass",
                extra={
                    "admitted": [f"{a.namespace}/{a.gang}" for a in decision.admit],
                    "released": len(decision.release),
                    "reset": [f"{r.namespace}/{r.gang}" for r in decision.reset],
                    "recreated": [f"{u.namespace}/{u.gang}" for u in decision.unadmit],
                    "blocked": len(decision.blocked),
                    "replacements_blocked": len(decision.restore_blocked),
                    "decide_ms": round(decided * 1000, 2),
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
        await self._record_admissions(decision.record, now)
        await self._record_phases(now)
        return decision

    # -- carrying decisions out --------------------------------------------------------------------------

    async def _admit(self, admit: Admit, now: datetime) -> tuple[JSON, int] | None:
        """Record the admission, then release the pods; the PodGang and the number of pods released, or None
        when nothing was released. A gang that had to wait gets its own Event; the others are reported
        together on their PodCliqueSet (`_report_admitted`): an Event per gang would be 500 writes when a
        big PodCliqueSet starts, while the scheduler needs the apiserver most."""
        podgang = self.podgangs.get(admit.namespace, admit.gang)
        if podgang is None:
            return None
        waited = (cond.get_condition(_conditions(podgang), CONDITION_ADMITTED) or {}).get(
            "status"
        ) == cond.FALSE
        nodes = len(set(admit.placements.values()))
        pods = len(admit.placements)
        message = (
            f"{pods} pod{'s' if pods != 1 else ''} placed on {nodes} node{'s' if nodes != 1 else ''} "
            "and released"
        )
        try:
            await self._set_status(podgang, PHASE_ADMITTED, cond.TRUE, REASON_ADMITTED, message, now)
        except KubeError as err:  # nothing released: the next pass tries again
            log.warning("could not record admission of %s/%s: %s", admit.namespace, admit.gang, err)
            return None
        ADMITTED.inc()
        age = _age(podgang, now)
        if age != float("inf"):
            ADMISSION_LATENCY.observe(max(0.0, age))
        await asyncio.gather(
            *(self._release(admit.namespace, pod, node) for pod, node in admit.placements.items())
        )
        if waited:
            await self._event(podgang, "Normal", REASON_ADMITTED, f"Gang admitted: {message}", now)
        return podgang, pods

    async def _report_admitted(
        self, admitted: list[tuple[JSON, int]], now: datetime, how: str = "released"
    ) -> None:
        """One Normal Event per PodCliqueSet for the gangs this pass admitted (or put on record: their
        pods were created pinned)."""
        by_owner: dict[str, tuple[JSON, list[tuple[str, int]]]] = {}
        for podgang, released in admitted:
            pcs = _podcliqueset_of(podgang)
            if pcs is not None:
                gang = (podgang["metadata"]["name"], released)
                by_owner.setdefault(pcs["metadata"]["uid"], (pcs, []))[1].append(gang)
        for pcs, gangs_of_pcs in by_owner.values():
            names = sorted(name for name, _ in gangs_of_pcs)
            pods = sum(released for _, released in gangs_of_pcs)
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            gangs = f"{len(names)} gang{'s' if len(names) != 1 else ''}"
            message = f"{gangs} admitted ({pods} pods {how}): {shown}"
            await self._create_event(
                event(pcs, "Normal", REASON_GANGS_ADMITTED, message, now, component=COMPONENT)
            )

    async def _release(self, namespace: str, pod: str, node: str) -> None:
        hostname = self.model.hostname_of(node)
        ref = Ref("v1", "Pod", namespace, pod)
        async with self._limit:
            try:
                updated = await self.client.patch(
                    ref, release_patch(hostname), content_type=CONTENT_STRATEGIC_MERGE_PATCH
                )
            except NotFound:
                return
            except KubeError as err:  # the bind timeout resets the gang if this pod never gets placed
                log.warning("could not release pod %s/%s to %s: %s", namespace, pod, node, err)
                return
        self.progressed()
        RELEASED.inc()
        self._written[(namespace, pod)] = _rv(updated)
        self.model.upsert_pod(updated)

    async def _requeue(self, key: tuple[str, str], reason: str, message: str, now: datetime) -> JSON | None:
        """Admitted=False with this reason, phase Pending: the gang queues again once the informer has it.
        The PodGang, or None when there is nothing (more) to do: gone, already written for this version of
        it, or the write failed (the next pass tries again)."""
        namespace, gang = key
        podgang = self.podgangs.get(namespace, gang)
        if podgang is None or self._unadmitted.get(key) == _rv(podgang):
            return None
        try:
            await self._set_status(podgang, PHASE_PENDING, cond.FALSE, reason, message, now)
        except KubeError as err:
            log.warning("could not queue %s/%s again (%s): %s", namespace, gang, reason, err)
            return None
        self._unadmitted[key] = _rv(podgang)
        return podgang

    async def _reset(self, reset: Reset, now: datetime) -> None:
        podgang = await self._requeue(reset.key, REASON_RESET, reset.reason, now)
        if podgang is None:
            return
        RESETS.inc()
        for pod in reset.pods:  # recreated gated by the reconciler and the pod webhook
            with contextlib.suppress(KubeError):
                await self.client.delete(Ref("v1", "Pod", reset.namespace, pod))
        await self._event(podgang, "Warning", REASON_RESET, f"Gang reset: {reset.reason}", now)

    async def _unadmit(self, unadmit: Unadmit, now: datetime) -> None:
        """A gang whose pods were all recreated (gang termination) queues again as a new gang."""
        podgang = await self._requeue(unadmit.key, REASON_RECREATED, unadmit.message, now)
        if podgang is None:
            return
        RECREATED.inc()
        await self._event(podgang, "Normal", REASON_RECREATED, f"Gang queued again: {unadmit.message}", now)

    async def _record_replacements(self, decision: Decision, now: datetime) -> None:
        """Admitted gangs whose replacement pods do not all fit: Admitted stays True, with reason
        ReplacementsBlocked and why (rewritten at most every QUIET_SECONDS while only its numbers move),
        and a Warning Event when that starts. Gangs that had that reason and are no longer blocked (their
        replacements were released, or are no longer needed) go back to GangAdmitted. Nothing is written
        for a PodGang the informer has not updated since our last such write."""
        clock = time.monotonic()
        blocked = {b.key: b for b in decision.restore_blocked}
        released = {(r.namespace, r.gang) for r in decision.release}
        gone = {r.key for r in decision.reset} | {u.key for u in decision.unadmit}

        async def write(podgang: JSON, reason: str, message: str, event: tuple[str, str] | None) -> None:
            phase = str((podgang.get("status") or {}).get("phase") or PHASE_ADMITTED)
            try:
                async with self._status_limit:
                    await self._set_status(podgang, phase, cond.TRUE, reason, message, now)
            except KubeError as err:
                log.warning("could not record replacements of %s: %s", "/".join(_key(podgang)), err)
                return
            self._replacements_written[_key(podgang)] = _rv(podgang)
            if event is not None:
                await self._event(podgang, event[0], reason, event[1], now)

        writes = []
        for key, item in blocked.items():
            podgang = self.podgangs.get(*key)
            if podgang is None or self._replacements_written.get(key) == _rv(podgang):
                continue
            current = cond.get_condition(_conditions(podgang), CONDITION_ADMITTED) or {}
            if current.get("status") != cond.TRUE:
                continue  # not admitted as far as the apiserver is concerned (the informer lags)
            if current.get("reason") == REASON_REPLACEMENTS_BLOCKED:
                recent = clock - self._waiting_written.get(key, 0.0) < QUIET_SECONDS
                if current.get("message") == item.message or recent:
                    continue
                event = None
            else:
                event = ("Warning", f"Replacement pods blocked: {item.message}")
            self._waiting_written[key] = clock
            writes.append(write(podgang, REASON_REPLACEMENTS_BLOCKED, item.message, event))
        for podgang in self.podgangs.list():
            key = _key(podgang)
            current = cond.get_condition(_conditions(podgang), CONDITION_ADMITTED) or {}
            if (
                key in blocked
                or key in gone
                or self._replacements_written.get(key) == _rv(podgang)
                or current.get("status") != cond.TRUE
                or current.get("reason") != REASON_REPLACEMENTS_BLOCKED
            ):
                continue
            if key in released:
                message = "replacement pods placed and released"
                writes.append(write(podgang, REASON_ADMITTED, message, ("Normal", message.capitalize())))
            else:
                writes.append(write(podgang, REASON_ADMITTED, "replacement pods no longer blocked", None))
        await asyncio.gather(*writes)

    async def _record_waiting(self, decision: Decision, now: datetime) -> None:
        """Blocked and waiting gangs: condition Admitted=False with the reason; an Event when it changes.
        A message whose numbers moved (pods created, nodes fitting) is rewritten at most every
        QUIET_SECONDS per gang: counting up while a big PodCliqueSet is created would cost a write per pod."""
        waiting: Iterable[Blocked | Waiting] = [*decision.blocked, *decision.waiting]
        clock = time.monotonic()

        async def record(item: Blocked | Waiting, podgang: JSON, current: dict[str, Any] | None) -> None:
            try:
                async with self._status_limit:
                    await self._set_status(podgang, PHASE_PENDING, cond.FALSE, item.reason, item.message, now)
            except KubeError as err:
                log.warning("could not record why %s/%s waits: %s", item.namespace, item.gang, err)
                return
            if isinstance(item, Blocked) and (current or {}).get("reason") != item.reason:
                await self._event(podgang, "Warning", item.reason, item.message, now)

        writes = []
        for item in waiting:
            podgang = self.podgangs.get(item.namespace, item.gang)
            if podgang is None:
                continue
            current = cond.get_condition(_conditions(podgang), CONDITION_ADMITTED)
            if current is None and isinstance(item, Waiting) and _age(podgang, now) < QUIET_SECONDS:
                continue  # pods still being created: not worth a write per gang (nor `kubectl get` noise)
            if current and current.get("reason") == item.reason and current.get("status") == cond.FALSE:
                recent = clock - self._waiting_written.get(item.key, 0.0) < QUIET_SECONDS
                if current.get("message") == item.message or recent:
                    continue
            self._waiting_written[item.key] = clock
            writes.append(record(item, podgang, current))
        await asyncio.gather(*writes)

    async def _record_admissions(self, records: Iterable[Record], now: datetime) -> None:
        """Gangs admitted in fact (their pods were created admitted, see `preadmit`) get Admitted=True, with
        phase Running, once their pods run (or once RECORD_WAIT_SECONDS have passed). Not on anyone's critical
        path: a few at a time. One Event per PodCliqueSet once all its gangs are on record."""

        async def record(podgang: JSON, message: str, running: bool) -> tuple[JSON, int] | None:
            async with self._status_limit:
                try:
                    phase = PHASE_RUNNING if running else PHASE_ADMITTED
                    await self._set_status(podgang, phase, cond.TRUE, REASON_ADMITTED, message, now)
                except KubeError as err:
                    log.warning("could not record admission of %s: %s", "/".join(_key(podgang)), err)
                    return None
            self._recorded[_key(podgang)] = _rv(podgang)
            if running:
                self._phase_written[_key(podgang)] = _rv(podgang)
            ADMITTED.inc()
            return podgang, len(_references(podgang))

        writes = []
        later: set[str] = set()  # PodCliqueSets with gangs still to be put on record
        touched, self._touched = self._touched, set()
        for item in records:
            podgang = self.podgangs.get(*item.key)
            if podgang is None or self._recorded.get(item.key) == _rv(podgang):
                continue
            waited = _age(podgang, now) >= RECORD_WAIT_SECONDS
            if waited or item.key in touched or item.key not in self._record_waits:
                running = self._runs(podgang)
                if running or waited:
                    self._record_waits.discard(item.key)
                    writes.append(record(podgang, item.message, running))
                    continue
                self._record_waits.add(item.key)
            later.add(_owner_uid(podgang))
        for done in await asyncio.gather(*writes):
            if done is not None:
                self._unreported.setdefault(_owner_uid(done[0]), []).append(done)
        told = [uid for uid in self._unreported if uid not in later]
        gangs = [gang for uid in told for gang in self._unreported.pop(uid)]
        await self._report_admitted(gangs, now, how="created pinned")

    def _runs(self, podgang: JSON) -> bool:
        """Every pod of the gang is bound and Running."""
        namespace = podgang["metadata"]["namespace"]
        pods = [self.pods.get(namespace, ref["name"]) for ref in _references(podgang)]
        return podgang_running(podgang, [p for p in pods if p is not None])

    async def _record_phases(self, now: datetime) -> None:
        """Admitted gangs become Running once every referenced pod is bound and Running."""

        async def running(podgang: JSON) -> None:
            current = cond.get_condition(_conditions(podgang), CONDITION_ADMITTED) or {}
            message = str(current.get("message") or "admitted")
            async with self._status_limit:
                with contextlib.suppress(KubeError):
                    await self._set_status(podgang, PHASE_RUNNING, cond.TRUE, REASON_ADMITTED, message, now)
                    self._phase_written[_key(podgang)] = _rv(podgang)

        writes: list[Coroutine[Any, Any, None]] = []
        budget = self._phase_budget()
        for podgang in self.podgangs.list():
            if len(writes) >= budget:
                break  # the rest in a later pass
            if (podgang.get("status") or {}).get("phase") != PHASE_ADMITTED:
                continue
            if self._phase_written.get(_key(podgang)) == _rv(podgang):
                continue  # written; the informer has not shown it yet
            if self._runs(podgang):
                writes.append(running(podgang))
        self._phase_tokens -= len(writes)
        await asyncio.gather(*writes)

    def _phase_budget(self) -> int:
        """Phase writes allowed now (a token bucket of PHASE_WRITES_PER_SECOND): when a big PodCliqueSet
        starts, its gangs turning Running would otherwise add a write per gang while the apiserver is still
        binding and starting the later pods; the phase is for people, a few seconds late costs nothing."""
        now = time.monotonic()
        refill = (now - self._phase_refilled) * PHASE_WRITES_PER_SECOND
        self._phase_tokens = min(float(PHASE_WRITES_PER_SECOND), self._phase_tokens + refill)
        self._phase_refilled = now
        return int(self._phase_tokens)

    async def _set_status(
        self, podgang: JSON, phase: str, status: str, reason: str, message: str, now: datetime
    ) -> None:
        conds = cond.set_condition(_conditions(podgang), CONDITION_ADMITTED, status, reason, message, now)
        if status == cond.TRUE and not cond.is_true(conds, c.CONDITION_PODGANG_INITIALIZED):
            # Admitted means every pod exists: Initialized=True goes with it (one write fewer per gang, the
            # reconciler then finds it written), exactly as the reconciler would have written it.
            conds = with_podgang_initialized(conds, now)
        # Initialized is carried in every later write too (it only ever is True): with server-side apply, a
        # condition this manager wrote and then left out would be removed.
        ours = [
            x
            for x in conds
            if x["type"] == CONDITION_ADMITTED
            or (x["type"] == c.CONDITION_PODGANG_INITIALIZED and x.get("status") == cond.TRUE)
        ]
        ref = Ref(c.SCHEDULER_API_VERSION, c.KIND_PODGANG, *_key(podgang))
        await self.client.apply_status(ref, {"phase": phase, "conditions": ours}, FIELD_MANAGER)
        self.progressed()

    async def _event(self, podgang: JSON, type_: str, reason: str, message: str, now: datetime) -> None:
        """On the PodGang; warnings also on its PodCliqueSet (what `kubectl describe pcs` shows)."""
        meta = podgang["metadata"]
        await self._create_event(
            event(
                {"apiVersion": c.SCHEDULER_API_VERSION, "kind": c.KIND_PODGANG, **podgang},
                type_,
                reason,
                message,
                now,
                component=COMPONENT,
            )
        )
        pcs = _podcliqueset_of(podgang)
        if pcs is not None and type_ == "Warning":
            await self._create_event(
                event(pcs, type_, reason, f"PodGang {meta['name']}: {message}", now, component=COMPONENT)
            )

    async def _create_event(self, body: JSON) -> None:
        try:
            await self.client.create(body)
        except KubeError as err:
            log.warning("could not record an event: %s", err)

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sync the caches, then one pass per burst of events (and at least every TICK_SECONDS)."""
        informers = [self.nodes, self.pods, self.podgangs, self.priority_classes]
        wait = TICK_SECONDS
        try:
            await asyncio.gather(*(i.start() for i in informers))
            log.info("gang admitter caches synced", extra={"informers": [repr(i) for i in informers]})
            self.synced = True
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                await asyncio.sleep(DEBOUNCE_SECONDS)
                self._wake.clear()
                wait = TICK_SECONDS
                try:
                    decision = await self.run_pass()
                except KubeError as err:
                    log.warning("admission pass failed: %s", err)
                    continue
                finally:
                    self.progressed()
                if decision.deferred:  # look again as soon as capacity has settled
                    wait = max(0.0, self._grew_at + SETTLE_SECONDS - time.monotonic()) + DEBOUNCE_SECONDS
        finally:
            for remove in self._removers:
                remove()
            if self._own_informers:
                for informer in informers:
                    informer.stop()


def _owner_uid(podgang: JSON) -> str:
    pcs = _podcliqueset_of(podgang)
    return pcs["metadata"]["uid"] if pcs is not None else ""


def _podcliqueset_of(podgang: JSON) -> JSON | None:
    """The PodCliqueSet that controls the PodGang, as an object reference Events can name."""
    meta = podgang["metadata"]
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == c.KIND_PODCLIQUESET and owner.get("controller"):
            return {
                "apiVersion": c.API_VERSION,
                "kind": c.KIND_PODCLIQUESET,
                "metadata": {"name": owner["name"], "namespace": meta["namespace"], "uid": owner["uid"]},
            }
    return None


def _age(obj: JSON, now: datetime) -> float:
    created = cond.parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return (now - created).total_seconds() if created is not None else float("inf")


def _conditions(obj: JSON) -> list[dict[str, Any]]:
    return list((obj.get("status") or {}).get("conditions") or [])


def _references(podgang: JSON) -> list[dict[str, str]]:
    return [
        r for g in (podgang.get("spec") or {}).get("podgroups") or [] for r in g.get("podReferences") or []
    ]

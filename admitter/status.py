"""The PodGang status writer. While gang admission is on, the gang admitter owns a PodGang's whole status:
`phase`, the `Admitted` condition and the `Initialized` condition (the reconciler writes none of it; see
`grove_api.podgang` and docs/gang-admission.md, "Status ownership").

Every write is one server-side apply under FIELD_MANAGER of all three, as they are to be (a condition this
manager wrote and then left out would be removed): phase and Admitted as the write decides, Initialized as
the reconciler would have computed it (`grove_api.podgang.all_pods_created` over the PodClique and pod
caches; True never goes back to False). So a gang's Initialized goes with the write its admission makes
anyway, and costs no write of its own in the common case.

The writers, each with its de-duplication (an unchanged condition is not written again, and most writers
skip a PodGang the informer has not updated since their last write of it) and its rate:

* `write`, `record_admission`, `requeue`: for `admitter.executor` (an admission recorded before the pods are
  released; a reset or recreated gang queued again).
* `record_waiting`: blocked and waiting gangs, `Admitted=False` with the reason, an Event when a blocked
  gang's reason changes; a message whose numbers moved at most every QUIET_SECONDS, and a new gang waiting
  for its pods only once it is QUIET_SECONDS old.
* `record_replacements`: admitted gangs whose replacement pods do not all fit, and back.
* `record_admitted_on_create`: gangs admitted on create, put on record once their pods run.
* `record_phases`: admitted gangs become Running (at most PHASE_WRITES_PER_SECOND).
* `record_initialized`: Initialized where no other write carried it: False for a gang whose pods are not
  all created INITIALIZED_GRACE_SECONDS after its PodGang was, True once they are (for a gang that already
  has an Admitted condition; before that its admission write carries it).

All but the executor's writes go a few at a time (STATUS_CONCURRENCY), so they never crowd out releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from admitter.core.cluster import GangKey
from admitter.core.decision import Blocked, Decision, RecordAdmittedOnCreate, Waiting
from grove_api import conditions as cond
from grove_api import constants as c
from grove_api.podgang import (
    CONDITION_ADMITTED,
    CONDITION_INITIALIZED,
    PHASE_ADMITTED,
    PHASE_PENDING,
    PHASE_RUNNING,
    REASON_ADMITTED,
    REASON_REPLACEMENTS_BLOCKED,
    admission_pending,
    all_pods_created,
    conditions,
    podgang_running,
    references,
    with_initialized,
)
from grove_api.refs import Ref
from kube.client import KubeClient, KubeError
from kube.informer import Informer

from .budget import TokenBucket
from .events import GangEvents, owner_uid
from .objects import JSON, age, key, log, rv

ADMITTED = Counter("grove_gangs_admitted_total", "PodGangs whose minimum was released to the scheduler.")

FIELD_MANAGER = "grove-gang-admitter"
STATUS_CONCURRENCY = 4
# A gang admitted on create is put on record once its pods all run (Admitted, Initialized and phase Running in
# one write), or once its PodGang is this old (phase Admitted, Running follows): written at once, most of a
# big start's gangs took a second write when they came to run, amid the start they report on.
RECORD_WAIT_SECONDS = 30.0
PHASE_WRITES_PER_SECOND = 20  # gangs marked Running (see StatusWriter._phase_budget)
# A new PodGang waiting for its pods gets its first Admitted condition only after this long.
QUIET_SECONDS = 10.0
# A PodGang is created after its pods (in the same reconcile pass), but pods and PodGangs come on watches of
# their own: one whose pods are not all in the cache this long after its creation is reported
# Initialized=False. Creation times have whole seconds, so that is 1 to 2 s after the PodGang was created (the
# loop wakes then, see `initialized_due`). The reconciler, which wrote Initialized before gang admission owned
# it, told a pod not created yet from one not seen yet by its own expectations, and wrote it on its next
# pass, within about a second.
INITIALIZED_GRACE_SECONDS = 2.0
_OURS = (CONDITION_ADMITTED, CONDITION_INITIALIZED)  # the conditions of every write, in this order


class StatusWriter:
    def __init__(
        self,
        client: KubeClient,
        podgangs: Informer,
        podcliques: Informer,
        pods: Informer,
        events: GangEvents,
        progressed: Callable[[], None],
    ) -> None:
        self.client = client
        self.podgangs = podgangs
        self.podcliques = podcliques
        self.pods = pods
        self.events = events
        self.progressed = progressed
        self._limit = asyncio.Semaphore(STATUS_CONCURRENCY)
        self._waiting_written: dict[GangKey, float] = {}  # gang -> when its waiting reason was written
        # gang -> resourceVersion of the PodGang when we last un-admitted it (reset or recreated): while the
        # informer still shows that version, it has not seen our write and the decision is not repeated.
        self._unadmitted: dict[GangKey, int] = {}
        self._replacements_written: dict[GangKey, int] = {}  # the same for ReplacementsBlocked
        self._phase_written: dict[GangKey, int] = {}  # the same for phase Running
        self._recorded: dict[GangKey, int] = {}  # the same for admissions put on record
        self._written: dict[GangKey, int] = {}  # the same for any write (see record_initialized)
        self._initialized: set[GangKey] = set()  # gangs we wrote Initialized=True for (never back to False)
        # Gangs whose record waits for their pods to run: looked at again only when touched (or when their
        # wait is over).
        self._record_waits: set[GangKey] = set()
        # Phase writes (see record_phases): when a big PodCliqueSet starts, its gangs turning Running would
        # otherwise add a write per gang while the apiserver is still binding and starting the later pods; the
        # phase is for people, a few seconds late costs nothing.
        self._phase_budget = TokenBucket(PHASE_WRITES_PER_SECOND, PHASE_WRITES_PER_SECOND)
        # Seconds until the next Initialized=False is due (see record_initialized): the loop looks again then.
        self.initialized_due = float("inf")
        # Gangs `record_initialized` looks at again in the next pass though nothing touched them: their grace
        # period runs, or the write failed.
        self._initialized_waits: set[GangKey] = set()

    def forget(self, gang: GangKey) -> None:
        """The PodGang was deleted."""
        for written in (
            self._waiting_written,
            self._unadmitted,
            self._replacements_written,
            self._phase_written,
            self._recorded,
            self._written,
        ):
            written.pop(gang, None)
        self._record_waits.discard(gang)
        self._initialized.discard(gang)
        self._initialized_waits.discard(gang)

    # -- one write -----------------------------------------------------------------------------------

    async def write(
        self, podgang: JSON, phase: str, status: str, reason: str, message: str, now: datetime
    ) -> None:
        """Phase and the Admitted condition as given, Initialized as it is now. Raises KubeError."""
        conds = cond.set_condition(conditions(podgang), CONDITION_ADMITTED, status, reason, message, now)
        await self._apply(podgang, phase, conds, now)

    async def record_admission(self, podgang: JSON, phase: str, message: str, now: datetime) -> None:
        """Admitted=True/GangAdmitted: the gang's admission on record (grove_gangs_admitted_total)."""
        await self.write(podgang, phase, cond.TRUE, REASON_ADMITTED, message, now)
        ADMITTED.inc()

    async def _apply(
        self, podgang: JSON, phase: str | None, conds: list[dict[str, Any]], now: datetime
    ) -> None:
        """Apply `phase` (None: not written) and our conditions of `conds`, Initialized computed afresh."""
        gang = key(podgang)
        conds = with_initialized(conds, now, gang in self._initialized or self._all_pods_created(podgang))
        ours = sorted((x for x in conds if x["type"] in _OURS), key=lambda x: _OURS.index(x["type"]))
        body: JSON = {"conditions": ours} if phase is None else {"phase": phase, "conditions": ours}
        ref = Ref(c.SCHEDULER_API_VERSION, c.KIND_PODGANG, *gang)
        await self.client.apply_status(ref, body, FIELD_MANAGER)
        self._written[gang] = rv(podgang)
        if cond.is_true(ours, CONDITION_INITIALIZED):
            self._initialized.add(gang)
        self.progressed()

    def _all_pods_created(self, podgang: JSON) -> bool:
        namespace = podgang["metadata"].get("namespace", "")
        return all_pods_created(
            podgang,
            lambda name: self.podcliques.get(namespace, name),
            lambda name: self.pods.get(namespace, name),
        )

    def _runs(self, podgang: JSON) -> bool:
        """Every pod of the gang is bound and Running."""
        namespace = podgang["metadata"]["namespace"]
        pods = [self.pods.get(namespace, ref["name"]) for ref in references(podgang)]
        return podgang_running(podgang, [p for p in pods if p is not None])

    # -- the executor's ------------------------------------------------------------------------------

    async def requeue(self, gang: GangKey, reason: str, message: str, now: datetime) -> JSON | None:
        """Admitted=False with this reason, phase Pending: the gang queues again once the informer has it.
        The PodGang, or None when there is nothing (more) to do: gone, already written for this version of
        it, or the write failed (the next pass tries again)."""
        namespace, name = gang
        podgang = self.podgangs.get(namespace, name)
        if podgang is None or self._unadmitted.get(gang) == rv(podgang):
            return None
        try:
            await self.write(podgang, PHASE_PENDING, cond.FALSE, reason, message, now)
        except KubeError as err:
            log.warning("could not queue %s/%s again (%s): %s", namespace, name, reason, err)
            return None
        self._unadmitted[gang] = rv(podgang)
        return podgang

    # -- after the decisions are carried out ---------------------------------------------------------

    async def record_waiting(self, decision: Decision, now: datetime) -> list[Blocked | Waiting]:
        """Blocked and waiting gangs: condition Admitted=False with the reason; an Event when it changes.
        A message whose numbers moved (pods created, nodes fitting) is rewritten at most every
        QUIET_SECONDS per gang: counting up while a big PodCliqueSet is created would cost a write per pod.
        Returns the gangs whose waiting is on record, or about to be (all but new gangs whose pods are
        still being created): the ones their pods are told about (`admitter.events.PodEvents`)."""
        waiting: Iterable[Blocked | Waiting] = [*decision.blocked, *decision.waiting]
        announced: list[Blocked | Waiting] = []
        clock = time.monotonic()

        async def record(item: Blocked | Waiting, podgang: JSON, current: dict[str, Any] | None) -> None:
            try:
                async with self._limit:
                    await self.write(podgang, PHASE_PENDING, cond.FALSE, item.reason, item.message, now)
            except KubeError as err:
                log.warning("could not record why %s/%s waits: %s", item.namespace, item.gang, err)
                return
            if isinstance(item, Blocked) and (current or {}).get("reason") != item.reason:
                await self.events.on_podgang(podgang, "Warning", item.reason, item.message, now)

        writes = []
        for item in waiting:
            podgang = self.podgangs.get(item.namespace, item.gang)
            if podgang is None:
                continue
            current = cond.get_condition(conditions(podgang), CONDITION_ADMITTED)
            if current is None and isinstance(item, Waiting) and age(podgang, now) < QUIET_SECONDS:
                continue  # pods still being created: not worth a write per gang (nor `kubectl get` noise)
            announced.append(item)
            if current and current.get("reason") == item.reason and current.get("status") == cond.FALSE:
                recent = clock - self._waiting_written.get(item.key, 0.0) < QUIET_SECONDS
                if current.get("message") == item.message or recent:
                    continue
            self._waiting_written[item.key] = clock
            writes.append(record(item, podgang, current))
        await asyncio.gather(*writes)
        return announced

    async def record_replacements(self, decision: Decision, now: datetime) -> None:
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
                async with self._limit:
                    await self.write(podgang, phase, cond.TRUE, reason, message, now)
            except KubeError as err:
                log.warning("could not record replacements of %s: %s", "/".join(key(podgang)), err)
                return
            self._replacements_written[key(podgang)] = rv(podgang)
            if event is not None:
                await self.events.on_podgang(podgang, event[0], reason, event[1], now)

        writes = []
        for gang, item in blocked.items():
            podgang = self.podgangs.get(*gang)
            if podgang is None or self._replacements_written.get(gang) == rv(podgang):
                continue
            current = cond.get_condition(conditions(podgang), CONDITION_ADMITTED) or {}
            if current.get("status") != cond.TRUE:
                continue  # not admitted as far as the apiserver is concerned (the informer lags)
            if current.get("reason") == REASON_REPLACEMENTS_BLOCKED:
                recent = clock - self._waiting_written.get(gang, 0.0) < QUIET_SECONDS
                if current.get("message") == item.message or recent:
                    continue
                event = None
            else:
                event = ("Warning", f"Replacement pods blocked: {item.message}")
            self._waiting_written[gang] = clock
            writes.append(write(podgang, REASON_REPLACEMENTS_BLOCKED, item.message, event))
        for podgang in self.podgangs.list():
            gang = key(podgang)
            current = cond.get_condition(conditions(podgang), CONDITION_ADMITTED) or {}
            if (
                gang in blocked
                or gang in gone
                or self._replacements_written.get(gang) == rv(podgang)
                or current.get("status") != cond.TRUE
                or current.get("reason") != REASON_REPLACEMENTS_BLOCKED
            ):
                continue
            if gang in released:
                message = "replacement pods placed and released"
                writes.append(write(podgang, REASON_ADMITTED, message, ("Normal", message.capitalize())))
            else:
                writes.append(write(podgang, REASON_ADMITTED, "replacement pods no longer blocked", None))
        await asyncio.gather(*writes)

    async def record_admitted_on_create(
        self, records: Iterable[RecordAdmittedOnCreate], touched: set[GangKey], now: datetime
    ) -> None:
        """Gangs admitted in fact (their pods were created admitted, see `admitter.on_create`) get
        Admitted=True, with phase Running, once their pods run (or once RECORD_WAIT_SECONDS have passed). A
        gang that waits for its pods is looked at again only when `touched` (its pods or PodGang changed).
        Not on anyone's critical path: a few at a time. One Event per PodCliqueSet once all its gangs are on
        record."""

        async def record(podgang: JSON, message: str, running: bool) -> tuple[JSON, int] | None:
            async with self._limit:
                try:
                    phase = PHASE_RUNNING if running else PHASE_ADMITTED
                    await self.record_admission(podgang, phase, message, now)
                except KubeError as err:
                    log.warning("could not record admission of %s: %s", "/".join(key(podgang)), err)
                    return None
            self._recorded[key(podgang)] = rv(podgang)
            if running:
                self._phase_written[key(podgang)] = rv(podgang)
            return podgang, len(references(podgang))

        writes = []
        later: set[str] = set()  # PodCliqueSets with gangs still to be put on record
        for item in records:
            podgang = self.podgangs.get(*item.key)
            if podgang is None or self._recorded.get(item.key) == rv(podgang):
                continue
            waited = age(podgang, now) >= RECORD_WAIT_SECONDS
            if waited or item.key in touched or item.key not in self._record_waits:
                running = self._runs(podgang)
                if running or waited:
                    self._record_waits.discard(item.key)
                    writes.append(record(podgang, item.message, running))
                    continue
                self._record_waits.add(item.key)
            later.add(owner_uid(podgang))
        recorded = [done for done in await asyncio.gather(*writes) if done is not None]
        await self.events.admitted_on_create(recorded, later, now)

    async def record_phases(self, now: datetime) -> None:
        """Admitted gangs become Running once every referenced pod is bound and Running."""

        async def running(podgang: JSON) -> None:
            current = cond.get_condition(conditions(podgang), CONDITION_ADMITTED) or {}
            message = str(current.get("message") or "admitted")
            async with self._limit:
                with contextlib.suppress(KubeError):
                    await self.write(podgang, PHASE_RUNNING, cond.TRUE, REASON_ADMITTED, message, now)
                    self._phase_written[key(podgang)] = rv(podgang)

        writes: list[Coroutine[Any, Any, None]] = []
        budget = self._phase_budget.available()
        for podgang in self.podgangs.list():
            if len(writes) >= budget:
                break  # the rest in a later pass
            if (podgang.get("status") or {}).get("phase") != PHASE_ADMITTED:
                continue
            if self._phase_written.get(key(podgang)) == rv(podgang):
                continue  # written; the informer has not shown it yet
            if self._runs(podgang):
                writes.append(running(podgang))
        self._phase_budget.take(len(writes))
        await asyncio.gather(*writes)

    async def record_initialized(self, touched: set[GangKey], now: datetime) -> None:
        """Initialized where no write of this pass or an earlier one carried it as it is now, for the gangs
        `touched` since the last pass (their pods or PodGang changed: the only way the answer can change)
        and those looked at before and due again (runs last in a pass; nothing is written for a PodGang the
        informer has not updated since any write of ours: its event touches it again):

        * False/PodGangPodsCreationPending for a gang whose pods are not all created once its PodGang is
          INITIALIZED_GRACE_SECONDS old (`initialized_due`: when the loop should look again for the next);
        * True/PodGangPodsCreated once they are, for a gang with an Admitted condition already (a gang
          without one gets it with its admission, or with its first waiting or blocked condition).

        Phase and Admitted are carried as they are (phase not at all while the PodGang has none)."""

        async def write(podgang: JSON, conds: list[dict[str, Any]]) -> None:
            phase = (podgang.get("status") or {}).get("phase")
            async with self._limit:
                try:
                    await self._apply(podgang, str(phase) if phase else None, conds, now)
                except KubeError as err:
                    self._initialized_waits.add(key(podgang))  # the next pass tries again
                    log.warning(
                        "could not record whether the pods of %s exist: %s", "/".join(key(podgang)), err
                    )

        writes = []
        due = float("inf")
        candidates, self._initialized_waits = touched | self._initialized_waits, set()
        for gang in sorted(candidates):
            podgang = self.podgangs.get(*gang)
            if (
                podgang is None
                or podgang["metadata"].get("deletionTimestamp")
                or self._written.get(gang) == rv(podgang)
            ):
                continue
            conds = conditions(podgang)
            current = cond.get_condition(conds, CONDITION_INITIALIZED) or {}
            if current.get("status") == cond.TRUE:
                continue  # never back to False
            created = gang in self._initialized or self._all_pods_created(podgang)
            if created and admission_pending(podgang):
                continue  # the admission write (or the first waiting one) carries it
            wanted = cond.get_condition(with_initialized(conds, now, created), CONDITION_INITIALIZED) or {}
            if cond.condition_key(wanted) == cond.condition_key(current):
                continue
            if not created:
                wait = INITIALIZED_GRACE_SECONDS - age(podgang, now)
                if wait > 0:
                    due = min(due, wait)
                    self._initialized_waits.add(gang)
                    continue
            writes.append(write(podgang, conds))
        self.initialized_due = due
        await asyncio.gather(*writes)

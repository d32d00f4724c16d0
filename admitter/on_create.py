"""Admission on create: the reconciler, in the same process, asks before it creates the pods of new PodGangs
(`reconciler.manager.admit_on_create`), and the gangs that fit now are admitted before their pods exist.
Their pods are then created pinned to the planned node and ungated (`grove_api.pod_admission.
admitted_on_create_copy`), so the scheduler binds them as they arrive.

Nothing is written here: once the PodGang exists, a pass finds a gang admitted in fact but not on record and
puts it on record (`admitter.core.decision.RecordAdmittedOnCreate`, `StatusWriter.record_admitted_on_create`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from prometheus_client import Counter

from admitter.core.cluster import ClusterModel
from admitter.core.decision import Admit, Blocked, Reset, Unpin, Waiting
from admitter.core.plan import Planner
from admitter.core.pods import essentials
from grove_api import conditions as cond
from grove_api.pod_admission import admitted_on_create_copy, with_gate
from kube.informer import Informer

from .feed import Feed
from .objects import JSON, key, log

ADMITTED_ON_CREATE = Counter(
    "grove_gangs_admitted_on_create_total",
    "PodGangs admitted before their pods were created (created ungated).",
)


class AdmitOnCreate:
    def __init__(
        self,
        model: ClusterModel,
        planner: Planner,
        podgangs: Informer,
        feed: Feed,
        synced: Callable[[], bool],
    ) -> None:
        """`synced`: whether the admitter's caches are synced (nothing is admitted before)."""
        self.model = model
        self.planner = planner
        self.podgangs = podgangs
        self.feed = feed
        self.synced = synced

    def admit(self, podgangs: Sequence[JSON], pods: Sequence[JSON]) -> dict[tuple[str, str], str]:
        """Admit new gangs before their pods are created: pod -> hostname of the node to create it pinned
        to, ungated. Only while the admitter has nothing else to decide (no other gang waits, is blocked or
        is being released, capacity settled), so no gang ever overtakes another; the new gangs are then
        judged exactly as a pass would judge them once they exist (all or nothing, newest last), and those
        that do not fit are left out: their pods are created gated and queue as usual. Only pods being
        created are placed: a gang whose other pods already exist gated is left to the usual path too.

        The model counts the admitted pods on their nodes at once (the next pass sees the capacity taken);
        `forget` those whose creation fails. Nothing is written here: the admission is put on record once
        the PodGang exists (`RecordAdmittedOnCreate`), which also covers an operator stopped in between."""
        if not self.synced() or not podgangs:
            return {}
        now = datetime.now(UTC)
        created = cond.format_time(now)
        new = [{**g, "metadata": {**g["metadata"], "creationTimestamp": created}} for g in podgangs]
        new_keys = {key(g) for g in new}
        placeholders = [essentials(with_gate(p)) for p in pods]
        for pod in placeholders:
            self.model.upsert_pod(pod)
        decision = self.planner.decide(
            self.model,
            [*self.podgangs.list(), *new],
            now.timestamp(),
            self.feed.priority_of,
            self.feed.settled(),
        )
        decided: list[Admit | Blocked | Waiting | Reset | Unpin] = [
            *decision.admit,
            *decision.blocked,
            *decision.waiting,
            *decision.restore_blocked,
            *decision.reset,
            *decision.unpin,
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
            planned = {key(p) for p in placeholders}
            for admit in decision.admit:
                keys = {(admit.namespace, name): node for name, node in admit.placements.items()}
                # All or nothing: none of it is released by a patch later, and no pod of another
                # incarnation (left for the garbage collector) counts towards the minimum.
                others = {
                    p.key for p in self.model.gang_pods(admit.namespace, admit.gang) if p.active
                } - planned
                if keys.keys() <= planned and not others:
                    placed.update({k: self.model.hostname_of(n) for k, n in keys.items()})
                    ADMITTED_ON_CREATE.inc()
        for pod in placeholders:
            pod_key = key(pod)
            if pod_key in placed:
                self.model.upsert_pod(admitted_on_create_copy(pod, placed[pod_key]))
                self.feed.placeholders.add(pod_key)
            else:
                self.model.delete_pod(*pod_key)
        return placed

    def forget(self, keys: Iterable[tuple[str, str]]) -> None:
        """Pods `admit` placed that were not created after all: their capacity is free again."""
        for pod_key in keys:
            if pod_key in self.feed.placeholders:
                self.feed.placeholders.discard(pod_key)
                self.model.delete_pod(*pod_key)
        self.feed.wake_up()

"""The gang admitter's Events, grouped per PodCliqueSet where there would be one per gang.

* On a PodGang (`GangEvents.on_podgang`): a gang admitted after it waited, reset, queued again, blocked, its
  replacement pods blocked and released. Warnings go to its PodCliqueSet too (what `kubectl describe pcs`
  shows).
* On a PodCliqueSet (`GangEvents.admitted`): one `GangsAdmitted` Event for the gangs of it a pass admitted;
  an Event per gang would be 500 writes when a big PodCliqueSet starts, while the scheduler needs the
  apiserver most. Gangs admitted on create are told once all the PodCliqueSet's gangs are on record
  (`admitted_on_create`).
* On each gated pod of a waiting or blocked gang (`PodEvents`): why it is still gated, once per episode,
  at a bounded rate (POD_EVENTS_PER_SECOND): `kubectl describe pod` and tools that look at pending pods'
  Events see it where they look first.

Losing an Event is not worth failing anything: a refused one is logged (a pod's is tried again later).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from prometheus_client import Gauge

from admitter.core.cluster import ClusterModel, GangKey
from admitter.core.decision import Blocked, Waiting
from admitter.core.pods import PodState
from grove_api import constants as c
from grove_api.podgang import REASON_POD_GANG_BLOCKED, REASON_POD_GANG_WAITING
from grove_api.refs import Ref
from kube.client import CONTENT_MERGE_PATCH, KubeClient, KubeError, NotFound
from kube.events import event, repeated
from kube.informer import Informer

from .budget import TokenBucket
from .objects import JSON, log

COMPONENT = "grove-gang-admitter"
REASON_GANGS_ADMITTED = "GangsAdmitted"  # on the PodCliqueSet: the gangs one pass admitted
# Events on waiting pods: 500 blocked gangs of 8 pods are told in about 400 s, one pod of every gang first
# (see `round_robin`), for about 10 Event writes a second; a single blocked gang of up to 50 pods at once.
POD_EVENTS_PER_SECOND = 10.0
POD_EVENTS_BURST = 50
POD_EVENT_CONCURRENCY = 4

POD_EVENTS_DEFERRED = Gauge(
    "grove_gang_pod_events_deferred",
    "Events owed to gated pods of waiting or blocked gangs that the last pass held back for the rate bound "
    "(later passes write them).",
)

T = TypeVar("T")


class GangEvents:
    def __init__(self, client: KubeClient) -> None:
        self.client = client
        # PodCliqueSet uid -> gangs admitted on create put on record (and their pods), not yet told
        self._unreported: dict[str, list[tuple[JSON, int]]] = {}

    async def on_podgang(self, podgang: JSON, type_: str, reason: str, message: str, now: datetime) -> None:
        """On the PodGang; warnings also on its PodCliqueSet (what `kubectl describe pcs` shows)."""
        meta = podgang["metadata"]
        await self._create(
            event(
                {"apiVersion": c.SCHEDULER_API_VERSION, "kind": c.KIND_PODGANG, **podgang},
                type_,
                reason,
                message,
                now,
                component=COMPONENT,
            )
        )
        pcs = podcliqueset_of(podgang)
        if pcs is not None and type_ == "Warning":
            await self._create(
                event(pcs, type_, reason, f"PodGang {meta['name']}: {message}", now, component=COMPONENT)
            )

    async def admitted(self, admitted: list[tuple[JSON, int]], now: datetime, how: str = "released") -> None:
        """One Normal Event per PodCliqueSet for the gangs this pass admitted (or put on record: their
        pods were created pinned); `admitted`: each PodGang and its pods released."""
        by_owner: dict[str, tuple[JSON, list[tuple[str, int]]]] = {}
        for podgang, released in admitted:
            pcs = podcliqueset_of(podgang)
            if pcs is not None:
                gang = (podgang["metadata"]["name"], released)
                by_owner.setdefault(pcs["metadata"]["uid"], (pcs, []))[1].append(gang)
        for pcs, gangs_of_pcs in by_owner.values():
            names = sorted(name for name, _ in gangs_of_pcs)
            pods = sum(released for _, released in gangs_of_pcs)
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            gangs = f"{len(names)} gang{'s' if len(names) != 1 else ''}"
            message = f"{gangs} admitted ({pods} pods {how}): {shown}"
            await self._create(event(pcs, "Normal", REASON_GANGS_ADMITTED, message, now, component=COMPONENT))

    async def admitted_on_create(
        self, recorded: Iterable[tuple[JSON, int]], waiting: set[str], now: datetime
    ) -> None:
        """Gangs admitted on create just put on record (each PodGang and its pods): told in one Event per
        PodCliqueSet once none of its gangs waits to be put on record (`waiting`: their uids)."""
        for done in recorded:
            self._unreported.setdefault(owner_uid(done[0]), []).append(done)
        told = [uid for uid in self._unreported if uid not in waiting]
        gangs = [gang for uid in told for gang in self._unreported.pop(uid)]
        await self.admitted(gangs, now, how="created pinned")

    async def _create(self, body: JSON) -> None:
        try:
            await self.client.create(body)
        except KubeError as err:
            log.warning("could not record an event: %s", err)


@dataclass
class _Told:
    """What the gated pods of one waiting gang were told."""

    reason: str  # the gang's reason in this episode (a condition reason, grove_api.podgang.REASON_*)
    pods: set[str] = field(default_factory=set)  # pods told in this episode
    # The gang's pod generation (ClusterModel.gang_generation) when no gated pod of it was left untold: until
    # it moves, there is nothing to look at.
    settled_at: int | None = None
    # (pod, reason) -> (Event name, count): a reason told again in a later episode (Unschedulable, then
    # HeldForStarvingGang, then Unschedulable) counts up the same Event, as client-go aggregates.
    events: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)


class PodEvents:
    """A Warning Event on each gated pod of a gang that waits (`GangWaiting`: for its pods or its base gang)
    or is blocked (`GangBlocked`: capacity, topology, a pinned node, a starving gang, or an admitted gang's
    replacements): the gang's reason and message, which otherwise only its PodGang carries.

    * Once per episode: when the gang starts waiting, or its reason changes; pods created or recreated
      during an episode are told too. A changed message alone (its numbers move) is not told again.
    * Bounded: at most POD_EVENTS_PER_SECOND overall (POD_EVENTS_BURST at once); what is left waits for later
      passes, one pod of each gang in queue order before a second pod of any (`round_robin`), and is never
      dropped while the gang still waits. A write that fails is tried again in a later pass.
    * An episode ends when the gang is no longer among the waiting ones (admitted, deleted): no more Events.
    """

    def __init__(
        self,
        client: KubeClient,
        model: ClusterModel,
        pods: Informer,
        budget: TokenBucket | None = None,
    ) -> None:
        """`budget`: the rate bound (POD_EVENTS_PER_SECOND, POD_EVENTS_BURST unless given)."""
        self.client = client
        self.model = model
        self.pods = pods
        self._budget = budget or TokenBucket(POD_EVENTS_PER_SECOND, POD_EVENTS_BURST)
        self._limit = asyncio.Semaphore(POD_EVENT_CONCURRENCY)
        self._gangs: dict[GangKey, _Told] = {}

    async def tell(self, waiting: Sequence[Blocked | Waiting], complete: bool, now: datetime) -> None:
        """`waiting`: the gangs that wait in this pass, in queue order, each with its reason and message.
        `complete`: every waiting gang is in it (a deferred pass leaves lower tiers out): the gangs missing
        from it no longer wait and are forgotten."""
        if complete:
            current = {item.key for item in waiting}
            self._gangs = {gang: told for gang, told in self._gangs.items() if gang in current}
        owed: list[list[tuple[Blocked | Waiting, JSON]]] = []
        for item in waiting:
            told = self._gangs.get(item.key)
            if told is None or told.reason != item.reason:  # a new episode
                told = _Told(item.reason, events=told.events if told is not None else {})
                self._gangs[item.key] = told
            generation = self.model.gang_generation(*item.key)
            if told.settled_at == generation:
                continue
            gated = self._gated(*item.key)
            names = {pod["metadata"]["name"] for pod in gated}
            told.pods &= names  # released or deleted pods are never told again: forget them
            told.events = {k: v for k, v in told.events.items() if k[0] in names}
            untold = [(item, pod) for pod in gated if pod["metadata"]["name"] not in told.pods]
            if untold:
                owed.append(untold)
            else:
                told.settled_at = generation
        picked = round_robin(owed, self._budget.available())
        self._budget.take(len(picked))
        POD_EVENTS_DEFERRED.set(sum(map(len, owed)) - len(picked))
        await asyncio.gather(*(self._tell(item, pod, now) for item, pod in picked))

    def _gated(self, namespace: str, gang: str) -> list[JSON]:
        """The gang's pods that still carry our gate (as the pod informer has them), by name."""
        out = []
        for info in self.model.gang_pods(namespace, gang):
            pod = self.pods.get(*info.key) if info.state is PodState.GATED and info.active else None
            if pod is not None:
                out.append(pod)
        return out

    async def _tell(self, item: Blocked | Waiting, pod: JSON, now: datetime) -> None:
        told = self._gangs[item.key]
        name = pod["metadata"]["name"]
        reason = REASON_POD_GANG_WAITING if isinstance(item, Waiting) else REASON_POD_GANG_BLOCKED
        message = f"PodGang {item.gang} waits ({item.reason}): {item.message}"
        told_before = (name, item.reason)
        try:
            async with self._limit:
                told.events[told_before] = await self._record(
                    pod, told.events.get(told_before), reason, message, now
                )
        except KubeError as err:
            log.warning("could not tell pod %s/%s why it waits: %s", item.namespace, name, err)
            return
        told.pods.add(name)

    async def _record(
        self, pod: JSON, earlier: tuple[str, int] | None, reason: str, message: str, now: datetime
    ) -> tuple[str, int]:
        """Count up the Event `earlier` (name, count) or, without one (or when it is gone: Events live an
        hour by default), create one. The Event's name and count; raises KubeError."""
        if earlier is not None:
            name, count = earlier
            ref = Ref("v1", "Event", pod["metadata"]["namespace"], name)
            with contextlib.suppress(NotFound):
                await self.client.patch(
                    ref, repeated(count + 1, message, now), content_type=CONTENT_MERGE_PATCH
                )
                return name, count + 1
        about = {"apiVersion": "v1", "kind": "Pod", **pod}
        created = await self.client.create(event(about, "Warning", reason, message, now, component=COMPONENT))
        return str(created["metadata"]["name"]), 1


def round_robin(queues: Sequence[Sequence[T]], budget: int) -> list[T]:
    """Up to `budget` items: the first of every queue in order, then the second of every queue, and so on.
    With more waiting pods than the rate allows, every gang gets one pod that says why before any gets two."""
    out: list[T] = []
    for i in range(max(map(len, queues), default=0)):
        for queue in queues:
            if len(out) >= budget:
                return out
            if i < len(queue):
                out.append(queue[i])
    return out


def owner_uid(podgang: JSON) -> str:
    pcs = podcliqueset_of(podgang)
    return pcs["metadata"]["uid"] if pcs is not None else ""


def podcliqueset_of(podgang: JSON) -> JSON | None:
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

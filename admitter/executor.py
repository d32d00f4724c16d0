"""Carrying out what a pass decided (`admitter.core.decision`): admit, release, reset, un-admit.

* **Admit** a gang: first its PodGang status records the admission (phase Admitted, condition
  Admitted=True), then every pod of its minimum is pinned to its planned node and released in one strategic
  merge patch each (`release_patch`), all pods at once. Recording first makes the release restartable:
  after a crash the admitter knows the gang was granted and releases the rest of it (all together, as its
  replacements), instead of holding a half-released gang; if none was released, the gang is un-admitted
  and queues again.
* **Release** a single pod of an admitted gang: its replacement pods, or pods beyond its minimum.
* **Reset** an admitted gang whose minimum did not get bound in time: Admitted=False (GangReset), phase
  Pending, then its unbound pods are deleted (the reconciler recreates them, gated by the pod webhook).
* **Unpin** released pods of an admitted gang pinned to a node that was deleted: they are deleted (the
  reconciler recreates them gated) and placed again; the gang stays admitted.
* **Unadmit** an admitted gang none of whose pods is bound or released (all recreated, e.g. by gang
  termination): Admitted=False (GangRecreated), phase Pending; it then queues as a new gang.

Our own patches go into the model as soon as the apiserver answers (`Feed.applied`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Counter, Histogram

from admitter.core.cluster import ClusterModel
from admitter.core.decision import Admit, Reset, Unadmit, Unpin
from grove_api import conditions as cond
from grove_api import constants as c
from grove_api.pod_admission import HOSTNAME_LABEL
from grove_api.podgang import (
    CONDITION_ADMITTED,
    PHASE_ADMITTED,
    REASON_ADMITTED,
    REASON_PINNED_NODE_GONE,
    REASON_RECREATED,
    REASON_RESET,
)
from grove_api.podgang import conditions as conditions_of
from grove_api.refs import Ref
from kube.client import CONTENT_STRATEGIC_MERGE_PATCH, KubeClient, KubeError, NotFound
from kube.informer import Informer

from .events import GangEvents
from .feed import Feed
from .objects import JSON, age, log
from .status import StatusWriter

RESETS = Counter(
    "grove_gang_resets_total", "Admitted PodGangs reset: not bound in time, or pinned to a node that is gone."
)
UNPINNED = Counter(
    "grove_pods_unpinned_total", "Released pods deleted because the node they were pinned to is gone."
)
RECREATED = Counter(
    "grove_gangs_recreated_total", "Admitted PodGangs un-admitted because all their pods were recreated."
)
RELEASED = Counter("grove_pods_released_total", "Pods pinned and ungated by the gang admitter.")
ADMISSION_LATENCY = Histogram(
    "grove_gang_admission_latency_seconds",
    "From a PodGang's creation to its admission.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0),
)

CONCURRENCY = 32  # pod releases at once: what the scheduler waits for


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


class Executor:
    def __init__(
        self,
        client: KubeClient,
        model: ClusterModel,
        feed: Feed,
        podgangs: Informer,
        status: StatusWriter,
        events: GangEvents,
        progressed: Callable[[], None],
    ) -> None:
        self.client = client
        self.model = model
        self.feed = feed
        self.podgangs = podgangs
        self.status = status
        self.events = events
        self.progressed = progressed
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def admit(self, admit: Admit, now: datetime) -> tuple[JSON, int] | None:
        """Record the admission, then release the pods; the PodGang and the number of pods released, or None
        when nothing was released. A gang that had to wait gets its own Event; the others are reported
        together on their PodCliqueSet (`GangEvents.admitted`)."""
        podgang = self.podgangs.get(admit.namespace, admit.gang)
        if podgang is None:
            return None
        waited = (cond.get_condition(conditions_of(podgang), CONDITION_ADMITTED) or {}).get(
            "status"
        ) == cond.FALSE
        nodes = len(set(admit.placements.values()))
        pods = len(admit.placements)
        message = (
            f"{pods} pod{'s' if pods != 1 else ''} placed on {nodes} node{'s' if nodes != 1 else ''} "
            "and released"
        )
        try:
            await self.status.record_admission(podgang, PHASE_ADMITTED, message, now)
        except KubeError as err:  # nothing released: the next pass tries again
            log.warning("could not record admission of %s/%s: %s", admit.namespace, admit.gang, err)
            return None
        waited_seconds = age(podgang, now)
        if waited_seconds != float("inf"):
            ADMISSION_LATENCY.observe(max(0.0, waited_seconds))
        await asyncio.gather(
            *(self.release(admit.namespace, pod, node) for pod, node in admit.placements.items())
        )
        if waited:
            await self.events.on_podgang(podgang, "Normal", REASON_ADMITTED, f"Gang admitted: {message}", now)
        return podgang, pods

    async def release(self, namespace: str, pod: str, node: str) -> None:
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
        self.feed.applied(updated)

    async def reset(self, reset: Reset, now: datetime) -> None:
        podgang = await self.status.requeue(reset.key, REASON_RESET, reset.reason, now)
        if podgang is None:
            return
        RESETS.inc()
        for pod in reset.pods:  # recreated gated by the reconciler and the pod webhook
            with contextlib.suppress(KubeError):
                await self.client.delete(Ref("v1", "Pod", reset.namespace, pod))
        await self.events.on_podgang(podgang, "Warning", REASON_RESET, f"Gang reset: {reset.reason}", now)

    async def unpin(self, unpin: Unpin, now: datetime) -> None:
        """Delete released pods pinned to a node that is gone; the reconciler recreates them gated."""
        for pod in unpin.pods:
            with contextlib.suppress(KubeError):
                await self.client.delete(Ref("v1", "Pod", unpin.namespace, pod))
        UNPINNED.inc(len(unpin.pods))
        podgang = self.podgangs.get(unpin.namespace, unpin.gang)
        if podgang is not None:
            message = (
                f"{len(unpin.pods)} released pod(s) were pinned to {', '.join(unpin.nodes)}, which no longer "
                "exist(s): deleted, to be recreated and placed again"
            )
            await self.events.on_podgang(podgang, "Warning", REASON_PINNED_NODE_GONE, message, now)

    async def unadmit(self, unadmit: Unadmit, now: datetime) -> None:
        """A gang whose pods were all recreated (gang termination) queues again as a new gang."""
        podgang = await self.status.requeue(unadmit.key, REASON_RECREATED, unadmit.message, now)
        if podgang is None:
            return
        RECREATED.inc()
        message = f"Gang queued again: {unadmit.message}"
        await self.events.on_podgang(podgang, "Normal", REASON_RECREATED, message, now)

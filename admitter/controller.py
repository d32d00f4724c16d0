"""The gang admitter at run time: informers in, one admission pass per burst of events, decisions out. Every
decision is made by the pure core (`admitter.core`); this module runs the loop (`Admitter.run`, `run_pass`)
and composes the parts, one job each:

* `admitter.feed`: watch events of nodes, pods, PodGangs and PriorityClasses into the `ClusterModel`; when
  capacity last grew (settling), PriorityClass values, the gangs touched since the last pass.
* `admitter.on_create`: admission on create, asked in-process by the reconciler before it creates a new
  gang's pods (`AdmitOnCreate.admit`, `forget`).
* `admitter.executor`: carrying a decision out: admit (record, then release the pods), release, reset,
  un-admit.
* `admitter.status`: the PodGang status (phase, Admitted, Initialized: all of it while gang admission is
  on), its writers with their de-duplication and rate limits.
* `admitter.events`: Events, one per PodCliqueSet for the gangs admitted together, per PodGang otherwise,
  and on the gated pods of waiting and blocked gangs (once per episode, rate-bounded).

One pass: decide (`Planner.decide` over the whole queue); carry out the admissions, releases, resets and
un-admissions, all at once; one `GangsAdmitted` Event per PodCliqueSet; then the status writers in order:
waiting and blocked gangs, blocked replacements, the Events that tell those gangs' gated pods why they
wait, gangs admitted on create put on record, Running phases, Initialized where nothing else carried it.
docs/gang-admission.md tells the whole story.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import Gauge, Histogram

from admitter.core.cluster import ClusterModel
from admitter.core.plan import Decision, PlanConfig, Planner
from admitter.core.pods import essentials
from admitter.core.room import ReplacementRoom
from grove_api import constants as c
from grove_api.operatorconfig import GangAdmission
from kube import resources
from kube.client import KubeClient, KubeError
from kube.informers import InformerFactory

from .events import GangEvents, PodEvents
from .executor import Executor
from .feed import SETTLE_SECONDS, Feed
from .objects import log
from .on_create import AdmitOnCreate
from .status import StatusWriter

PENDING = Gauge("grove_gangs_pending", "PodGangs not admitted, by the reason they wait.", ["reason"])
REPLACEMENTS_BLOCKED = Gauge(
    "grove_gangs_replacements_blocked", "Admitted PodGangs whose replacement pods do not all fit now."
)
PASS_LATENCY = Histogram(
    "grove_gang_admission_pass_duration_seconds", "Time to decide one admission pass over the whole queue."
)

TICK_SECONDS = 2.0  # passes also run this often without events: timeouts and aging move with the clock
DEBOUNCE_SECONDS = 0.01  # a burst of watch events makes one pass
# While no pod carries our gate, a pass can admit, release or un-admit nothing: it only puts on record what
# happened (gangs admitted on create, Running phases, Initialized) and resets gangs not bound in time
# (bind_timeout_seconds). Such passes run at most this often: a 1,000-pod PodCliqueSet admitted on create
# made ~10 passes per second of ~8 ms each (a quarter of the operator's CPU) while its pods were bound and
# started. An event while some pod is gated (or that gates one) ends the wait at once.
PACED_SECONDS = 0.5


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
        `informers`: the process's shared informers (pods, PodGangs and PodCliques are the reconciler's
        too); without it the admitter has informers of its own."""
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
        self._own_informers = informers is None
        factory = InformerFactory(client) if informers is None else informers
        self.nodes = factory.informer(resources.NODE)
        # Every pod of the cluster uses capacity; of pods it keeps what the model reads (`essentials`).
        self.pods = factory.informer(resources.POD, transform=essentials)
        # Only the operator's PodGangs: their pods are the ones the pod webhook gates.
        self.podgangs = factory.informer(resources.PODGANG, label_selector=c.MANAGED_SELECTOR)
        # Read (no events) for a PodGang's Initialized condition, computed as the reconciler computes it.
        self.podcliques = factory.informer(resources.PODCLIQUE, label_selector=c.MANAGED_SELECTOR)
        self.priority_classes = factory.informer(resources.PRIORITY_CLASS)
        self.synced = False

        def beat() -> None:
            self.progressed()

        self.events = GangEvents(client)
        self.pod_events = PodEvents(client, self.model, self.pods)
        self.status = StatusWriter(client, self.podgangs, self.podcliques, self.pods, self.events, beat)
        self.feed = Feed(self.model, forget=self.status.forget)
        self.executor = Executor(client, self.model, self.feed, self.podgangs, self.status, self.events, beat)
        self.on_create = AdmitOnCreate(
            self.model, self.planner, self.podgangs, self.feed, lambda: self.synced
        )
        self._pending_reasons: set[str] = set()
        # Added last (a shared informer that has listed already replays its cache to them, and the handlers
        # use everything above); removed when `run` ends.
        self._removers = [
            self.nodes.add_handler(self.feed.on_node),
            self.pods.add_handler(self.feed.on_pod),
            self.podgangs.add_handler(self.feed.on_podgang),
            self.priority_classes.add_handler(self.feed.on_priority),
        ]

    def replacement_room(self) -> ReplacementRoom:
        """A fresh capacity oracle over the live model: would these new pods fit once those old pods are
        gone (see admitter.core.room)? One per reconcile pass."""
        return ReplacementRoom(self.model)

    def has_work(self) -> bool:
        """Events wait for a pass (once the caches are synced): for the liveness probe, which also needs
        progress to be missing before it fails."""
        return self.synced and self.feed.wake.is_set()

    def decide(self, now: datetime) -> Decision:
        return self.planner.decide(
            self.model, self.podgangs.list(), now.timestamp(), self.feed.priority_of, self.feed.settled()
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
        execute = self.executor
        results = await asyncio.gather(
            *(execute.admit(a, now) for a in decision.admit),
            *(execute.release(r.namespace, r.pod, r.node) for r in decision.release),
            *(execute.reset(r, now) for r in decision.reset),
            *(execute.unadmit(u, now) for u in decision.unadmit),
            *(execute.unpin(u, now) for u in decision.unpin),
        )
        await self.events.admitted([r for r in results[: len(decision.admit)] if r is not None], now)
        on_record = await self.status.record_waiting(decision, now)
        await self.status.record_replacements(decision, now)
        await self.pod_events.tell([*on_record, *decision.restore_blocked], not decision.deferred, now)
        if decision.admit or decision.release or decision.reset or decision.unadmit or decision.unpin:
            log.info(
                "admission pass",
                extra={
                    "admitted": [f"{a.namespace}/{a.gang}" for a in decision.admit],
                    "released": len(decision.release),
                    "reset": [f"{r.namespace}/{r.gang}" for r in decision.reset],
                    "recreated": [f"{u.namespace}/{u.gang}" for u in decision.unadmit],
                    "unpinned": sum(len(u.pods) for u in decision.unpin),
                    "blocked": len(decision.blocked),
                    "replacements_blocked": len(decision.restore_blocked),
                    "decide_ms": round(decided * 1000, 2),
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
        touched = self.feed.take_touched()
        await self.status.record_admitted_on_create(decision.record_admitted_on_create, touched, now)
        await self.status.record_phases(now)
        await self.status.record_initialized(touched, now)
        return decision

    async def run(self) -> None:
        """Sync the caches, then one pass per burst of events (and at least every TICK_SECONDS); while no pod
        carries our gate, at most one pass per PACED_SECONDS (see PACED_SECONDS)."""
        informers = [self.nodes, self.pods, self.podgangs, self.podcliques, self.priority_classes]
        wait = TICK_SECONDS
        last_pass = -float("inf")
        try:
            await asyncio.gather(*(i.start() for i in informers))
            log.info("gang admitter caches synced", extra={"informers": [repr(i) for i in informers]})
            self.synced = True
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self.feed.wake.wait()
                await asyncio.sleep(DEBOUNCE_SECONDS)
                paced = last_pass + PACED_SECONDS - time.monotonic()
                if paced > 0 and not self.model.gated_pods:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(paced):
                            await self.feed.urgent.wait()
                self.feed.wake.clear()
                self.feed.urgent.clear()
                last_pass = time.monotonic()
                wait = TICK_SECONDS
                try:
                    decision = await self.run_pass()
                except KubeError as err:
                    log.warning("admission pass failed: %s", err)
                    continue
                finally:
                    self.progressed()
                if decision.deferred:  # look again as soon as capacity has settled
                    wait = max(0.0, self.feed.grew_at + SETTLE_SECONDS - time.monotonic()) + DEBOUNCE_SECONDS
                # ... and when a PodGang whose pods are missing is due its Initialized=False
                wait = min(wait, self.status.initialized_due + DEBOUNCE_SECONDS)
        finally:
            for remove in self._removers:
                remove()
            if self._own_informers:
                for informer in informers:
                    informer.stop()

"""The informer feed: watch events of nodes, pods, PodGangs and PriorityClasses into the `ClusterModel`, and
what the admission loop needs to know about them.

Every event updates the model (nodes and pods) or what a pass reads next to it (PriorityClass values) and
wakes the loop (`wake`). The feed also remembers:

* when some node's usable capacity last grew (`grew_at`, `settled`): freed requests, a node uncordoned,
  Ready, untainted or added (see *Settling* in `admitter.core.plan`);
* the gangs whose pods or PodGang changed since the last pass (`take_touched`): a gang whose admission on
  create waits to be put on record is looked at again only then;
* our own pod patches (`applied`): applied to the model as soon as the apiserver answers, so the next pass
  never counts capacity twice; older watch events of the same pod are then ignored (resourceVersion order);
* the pods admitted on create that the informer has not shown yet (`placeholders`, see `admitter.on_create`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from admitter.core.cluster import ClusterModel, GangKey
from grove_api import constants as c

from .objects import JSON, key, rv

# Capacity counts as settled this long after it last grew (see admitter.core.plan, "Settling").
SETTLE_SECONDS = 1.0


class Feed:
    def __init__(self, model: ClusterModel, forget: Callable[[GangKey], None] = lambda gang: None) -> None:
        """`forget`: called with a PodGang's key when it is deleted (what is kept per gang elsewhere goes)."""
        self.model = model
        self.forget = forget
        self.wake = asyncio.Event()  # set by every event: the loop runs a pass
        self.urgent = asyncio.Event()  # set by an event while some pod carries our gate (see Admitter.run)
        self.written: dict[tuple[str, str], int] = {}  # pod -> resourceVersion of our last patch
        self.priorities: dict[str, int] = {}  # PriorityClass -> value
        self.capacity: dict[str, tuple[Any, ...]] = {}  # node -> what its usable capacity was last seen as
        self.grew_at = 0.0  # time.monotonic() when some node's usable capacity last grew
        self.touched: set[GangKey] = set()  # gangs whose pods or PodGang changed since the last pass
        self.placeholders: set[tuple[str, str]] = set()  # pods admitted on create, not seen yet
        model.add_listener(self.on_capacity)

    def on_node(self, kind: str, node: JSON) -> None:
        if kind == "DELETED":
            self.model.delete_node(node["metadata"]["name"])
        else:
            self.model.upsert_node(node)
        self.wake_up()

    def on_pod(self, kind: str, pod: JSON) -> None:
        pod_key = key(pod)
        self.placeholders.discard(pod_key)
        if kind == "DELETED":
            self.written.pop(pod_key, None)
            self.model.delete_pod(*pod_key)
        elif rv(pod) >= self.written.get(pod_key, 0):
            self.model.upsert_pod(pod)
        gang = pod["metadata"].get("labels", {}).get(c.LABEL_PODGANG)
        if gang:
            self.touched.add((pod_key[0], gang))
        self.wake_up()

    def on_podgang(self, kind: str, podgang: JSON) -> None:
        if kind == "DELETED":
            self.forget(key(podgang))
        self.touched.add(key(podgang))
        self.wake_up()

    def on_priority(self, kind: str, priority_class: JSON) -> None:
        name = priority_class["metadata"]["name"]
        if kind == "DELETED":
            self.priorities.pop(name, None)
        else:
            self.priorities[name] = int(priority_class.get("value") or 0)
        self.wake_up()

    def wake_up(self) -> None:
        """Ask for a pass: a prompt one while some pod carries our gate (see `admitter.controller`)."""
        self.wake.set()
        if self.model.gated_pods:
            self.urgent.set()

    def on_capacity(self, name: str) -> None:
        """Remember when capacity last grew: freed requests, a node uncordoned, Ready, untainted, added."""
        info = self.model.node(name)
        if info is None:
            self.capacity.pop(name, None)
            return
        free = self.model.free(name)
        now = (free, info.unschedulable, info.ready, frozenset(info.taints))
        old = self.capacity.get(name)
        self.capacity[name] = now
        if (
            old is None
            or any(free.get(r) > old[0].get(r) for r in free)
            or (old[1] and not info.unschedulable)
            or (info.ready and not old[2])
            or now[3] < old[3]
        ):
            self.grew_at = time.monotonic()

    def applied(self, pod: JSON) -> None:
        """A pod as the apiserver answered our patch: into the model at once, and watch events older than it
        are ignored."""
        self.written[key(pod)] = rv(pod)
        self.model.upsert_pod(pod)

    def take_touched(self) -> set[GangKey]:
        """The gangs touched since the last call."""
        touched, self.touched = self.touched, set()
        return touched

    def priority_of(self, podgang: JSON) -> int:
        name = (podgang.get("spec") or {}).get("priorityClassName")
        return self.priorities.get(name, 0) if name else 0

    def settled(self) -> bool:
        return time.monotonic() - self.grew_at >= SETTLE_SECONDS

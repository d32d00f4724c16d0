"""The pure core of grove-initc: which parents to wait for, and whether they are ready yet.

Nothing here does I/O, so every rule (flag syntax, what counts as a ready pod, when the wait is over) is
tested without a cluster; `initc.main` only feeds pod events in and acts on `satisfied()`.

Two deliberate differences from Grove's grove-initc (docs/startup-ordering.md, docs/decisions.md):

* A pod belongs to a parent when its `grove.io/podclique` label equals the parent's name. Grove matches
  name prefixes, so the pods of `x-0-worker-big` would count for a parent `x-0-worker`.
* The ready sets are keyed by pod name and a pod is re-filed on every event, so a pod that changes clique,
  becomes Terminating, loses readiness or vanishes stops counting at once: only the state at the moment of
  the check decides, never a readiness that was seen once and later lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grove_api import constants as c
from grove_api.validation.k8s import label_value

Pod = Mapping[str, Any]

DELETED = "DELETED"


class FlagError(ValueError):
    """A command-line value is malformed; the message names the flag, the value and what is allowed."""


@dataclass(frozen=True)
class Parent:
    """One parent PodClique: its name (the pods' `grove.io/podclique` label) and how many must be Ready."""

    name: str
    min_available: int

    def __str__(self) -> str:
        return f"{self.name}:{self.min_available}"


def parse_parent(text: str) -> Parent:
    """`<name>:<minAvailable>` as the operator writes it into `--podcliques`.

    The count is split off at the last colon; the name must be a valid label value, since pods are matched
    by label and a value that can never be a label would make the wait endless instead of failing here.
    """
    where = f'--podcliques "{text}"'
    name, sep, count = text.rpartition(":")
    if not sep:
        raise FlagError(f"{where}: expected <podclique>:<minAvailable>, e.g. 'my-pcs-0-prefill:2'")
    if not name:
        raise FlagError(f"{where}: the PodClique name before ':' is empty")
    problems = label_value(name)
    if problems:
        raise FlagError(f"{where}: PodClique name {name!r} {'; '.join(problems)}")
    try:
        min_available = int(count, 10)
    except ValueError:
        raise FlagError(f"{where}: minAvailable must be a positive integer, got {count!r}") from None
    if min_available < 1:
        raise FlagError(f"{where}: minAvailable must be a positive integer, got {count!r}")
    return Parent(name, min_available)


def parse_parents(texts: Sequence[str]) -> tuple[Parent, ...]:
    """Every `--podcliques` value, in order. A parent named twice keeps its larger count (the stricter
    requirement wins: the operator never repeats a parent, and failing the pod for it would gain nothing)."""
    if not texts:
        raise FlagError("at least one --podcliques <podclique>:<minAvailable> is required")
    merged: dict[str, int] = {}
    for text in texts:
        parent = parse_parent(text)
        merged[parent.name] = max(merged.get(parent.name, 0), parent.min_available)
    return tuple(Parent(name, count) for name, count in merged.items())


def _meta(pod: Pod) -> Mapping[str, Any]:
    meta = pod.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def is_terminating(pod: Pod) -> bool:
    """Deletion has begun: such a pod is on its way out and must not let a dependent start."""
    return bool(_meta(pod).get("deletionTimestamp"))


def is_ready(pod: Pod) -> bool:
    """The pod's `Ready` condition is True and it is not terminating."""
    if is_terminating(pod):
        return False
    status = pod.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    return any(
        isinstance(cond, Mapping) and cond.get("type") == "Ready" and cond.get("status") == "True"
        for cond in conditions or ()
    )


class Readiness:
    """Per-parent sets of ready pod names, folded from pod events (or replaced by a full listing).

    `podgang`, when given, is checked on every pod as well: the watch already selects by it, but a fake or
    misconfigured source must not make pods of another gang count.
    """

    def __init__(self, parents: Iterable[Parent], podgang: str | None = None) -> None:
        self.parents: dict[str, Parent] = {p.name: p for p in parents}
        self.podgang = podgang
        self._ready: dict[str, set[str]] = {name: set() for name in self.parents}
        self._counted_for: dict[str, str] = {}  # pod name -> parent whose ready set holds it

    def _parent_of(self, pod: Pod) -> str | None:
        labels = _meta(pod).get("labels")
        if not isinstance(labels, Mapping):
            return None
        if self.podgang is not None and labels.get(c.LABEL_PODGANG) != self.podgang:
            return None
        clique = labels.get(c.LABEL_PODCLIQUE)
        return clique if isinstance(clique, str) and clique in self.parents else None

    def observe(self, event_type: str, pod: Pod) -> bool:
        """Fold one watch event (ADDED, MODIFIED or DELETED) in; whether any ready count changed."""
        name = _meta(pod).get("name")
        if not isinstance(name, str) or not name:
            return False
        target = None if event_type == DELETED or not is_ready(pod) else self._parent_of(pod)
        current = self._counted_for.get(name)
        if current == target:
            return False
        if current is not None:
            self._ready[current].discard(name)
            del self._counted_for[name]
        if target is not None:
            self._ready[target].add(name)
            self._counted_for[name] = target
        return True

    def replace(self, pods: Iterable[Pod]) -> bool:
        """Start over from a complete listing; whether any ready count changed."""
        before = self.counts()
        self._ready = {name: set() for name in self.parents}
        self._counted_for = {}
        for pod in pods:
            self.observe("ADDED", pod)
        return self.counts() != before

    def ready_pods(self, parent: str) -> frozenset[str]:
        return frozenset(self._ready[parent])

    def counts(self) -> dict[str, int]:
        """Ready pods per parent, in flag order."""
        return {name: len(pods) for name, pods in self._ready.items()}

    def satisfied(self) -> bool:
        """Every parent has at least its minAvailable ready pods right now."""
        return all(len(self._ready[name]) >= p.min_available for name, p in self.parents.items())

    def progress(self) -> dict[str, str]:
        """`{"<parent>": "<ready>/<minAvailable> ready"}` for every parent: what the logs show."""
        return {name: f"{len(self._ready[name])}/{p.min_available} ready" for name, p in self.parents.items()}

    def not_ready(self) -> dict[str, str]:
        """`progress()` restricted to the parents still short of their minAvailable."""
        return {
            name: text
            for name, text in self.progress().items()
            if len(self._ready[name]) < self.parents[name].min_available
        }

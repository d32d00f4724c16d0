"""PodGangs as units of admission: `Gang` (what the PodGang asks for) and `Members` (its pods right now).

A `Gang` is immutable and made from the PodGang object alone (plus its resolved priority), so the I/O layer
rebuilds it only when the PodGang changes. Which pods belong to it is looked up in the `ClusterModel` at
planning time (`members`): pods labelled `grove.io/podgang=<gang>` whose `grove.io/podclique` names a
podgroup, and pods named in `podReferences` (which the operator fills in after creating the pods, so labels
are the faster source and references a fallback).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from grove_api import constants as c

# Admitted is written True by the I/O layer before it releases any pod of the gang, so a restart knows it was
# granted (or, for a gang admitted on create, once its PodGang exists: see decision.RecordAdmittedOnCreate).
from grove_api.podgang import CONDITION_ADMITTED, REASON_BASE_PENDING, REASON_PODS_PENDING

from .cluster import ClusterModel, GangKey
from .pods import PodInfo, PodKey, PodState, epoch_seconds

PriorityLookup = Mapping[str, int] | Callable[[str], int | None]


@dataclass(frozen=True, slots=True)
class Pack:
    """A pack constraint: node label keys the pods must (required) or should (preferred) share a value of."""

    required: str | None = None
    preferred: str | None = None

    @classmethod
    def from_constraint(cls, constraint: Mapping[str, Any] | None) -> Pack | None:
        pack = (constraint or {}).get("packConstraint") or {}
        required, preferred = pack.get("required") or None, pack.get("preferred") or None
        return cls(required, preferred) if required or preferred else None


@dataclass(frozen=True, slots=True)
class PodGroup:
    name: str  # the PodClique
    min_replicas: int
    refs: tuple[PodKey, ...] = ()
    pack: Pack | None = None


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """A set of podgroups packed together (a scaling-group replica)."""

    name: str
    podgroups: tuple[str, ...]
    pack: Pack | None = None


@dataclass(frozen=True, slots=True)
class Gang:
    key: GangKey
    podgroups: tuple[PodGroup, ...]
    priority: int = 0
    created: float = 0.0
    base: GangKey | None = None  # set for a scaled gang: admissible once its base gang is scheduled
    admitted: bool = False
    admitted_at: float | None = None
    # No decision on record (no Admitted condition, or one saying it waits for its pods): released or bound
    # pods then mean the gang was admitted (see decision.RecordAdmittedOnCreate).
    undecided: bool = True
    pack: Pack | None = None
    group_configs: tuple[GroupConfig, ...] = ()
    # Admission order: higher priority first, then older, then by name.
    queue_key: tuple[int, float, str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "queue_key", (-self.priority, self.created, self.key[0], self.key[1]))

    @classmethod
    def from_podgang(
        cls,
        podgang: Mapping[str, Any],
        priorities: PriorityLookup | None = None,
        priority: int | None = None,
    ) -> Gang:
        """From a PodGang object. `priorities` maps `spec.priorityClassName` to its value (a mapping or a
        function; unknown or absent classes give 0); `priority`, when given, is the value itself."""
        meta = podgang.get("metadata") or {}
        spec = podgang.get("spec") or {}
        namespace = meta.get("namespace") or ""
        podgroups = tuple(
            PodGroup(
                name=g.get("name") or "",
                min_replicas=int(g.get("minReplicas") or 0),
                refs=tuple(
                    (r.get("namespace") or namespace, r.get("name") or "")
                    for r in g.get("podReferences") or ()
                ),
                pack=Pack.from_constraint(g.get("topologyConstraint")),
            )
            for g in spec.get("podgroups") or ()
        )
        configs = tuple(
            GroupConfig(
                name=g.get("name") or "",
                podgroups=tuple(g.get("podGroupNames") or ()),
                pack=Pack.from_constraint(g.get("topologyConstraint")),
            )
            for g in spec.get("topologyConstraintGroupConfigs") or ()
        )
        base = (meta.get("labels") or {}).get(c.LABEL_BASE_PODGANG)
        admitted, admitted_at, undecided = _admission(podgang)
        return cls(
            key=(namespace, meta.get("name") or ""),
            podgroups=podgroups,
            priority=priority
            if priority is not None
            else _priority(spec.get("priorityClassName"), priorities),
            created=epoch_seconds(meta.get("creationTimestamp")) or 0.0,
            base=(namespace, base) if base else None,
            admitted=admitted,
            admitted_at=admitted_at,
            undecided=undecided,
            pack=Pack.from_constraint(spec.get("topologyConstraint")),
            group_configs=configs,
        )

    @property
    def label(self) -> str:
        return f"{self.key[0]}/{self.key[1]}"


def _priority(class_name: str | None, priorities: PriorityLookup | None) -> int:
    if not class_name or priorities is None:
        return 0
    found = priorities.get(class_name) if isinstance(priorities, Mapping) else priorities(class_name)
    return int(found or 0)


def _admission(podgang: Mapping[str, Any]) -> tuple[bool, float | None, bool]:
    """Admitted, since when, and whether nothing was decided yet (see `Gang.undecided`)."""
    for cond in (podgang.get("status") or {}).get("conditions") or ():
        if cond.get("type") == CONDITION_ADMITTED:
            if cond.get("status") == "True":
                return True, epoch_seconds(cond.get("lastTransitionTime")), False
            return False, None, cond.get("reason") in (REASON_PODS_PENDING, REASON_BASE_PENDING)
    return False, None, True


@dataclass(frozen=True, slots=True)
class GroupMembers:
    """The active pods of one podgroup, by state. `gated` is in release order: pods already pinned to a
    node first (they have no choice of node), then by name."""

    group: PodGroup
    bound: tuple[PodInfo, ...]
    released: tuple[PodInfo, ...]
    gated: tuple[PodInfo, ...]
    unbound_created: tuple[float, ...]  # creation times of released/gated pods, sorted

    @property
    def active(self) -> int:
        return len(self.bound) + len(self.released) + len(self.gated)

    @property
    def placed(self) -> int:
        """Pods the scheduler has or will soon have: bound or released."""
        return len(self.bound) + len(self.released)

    @property
    def missing(self) -> int:
        """Pods still to be released for the minimum."""
        return max(0, self.group.min_replicas - self.placed)

    def young_unbound(self, since: float) -> int:
        """Unbound pods created at or after `since` (replacements still on their way)."""
        return len(self.unbound_created) - bisect.bisect_left(self.unbound_created, since)


@dataclass(frozen=True, slots=True)
class Members:
    """A gang's pods per podgroup, with the facts a pass asks about every time (computed once)."""

    gang: Gang
    groups: tuple[GroupMembers, ...]
    complete: bool  # every podgroup has at least minReplicas pods (the whole minimum can be judged)
    scheduled: bool  # every podgroup has at least minReplicas pods bound or released
    min_bound: bool  # every podgroup has at least minReplicas pods bound
    created: int  # pods there towards the minimum ("waiting for pods: 3/5 created")
    needed: int  # pods the minimum has

    @classmethod
    def of(cls, gang: Gang, groups: tuple[GroupMembers, ...]) -> Members:
        return cls(
            gang,
            groups,
            complete=all(g.active >= g.group.min_replicas for g in groups),
            scheduled=all(g.placed >= g.group.min_replicas for g in groups),
            min_bound=all(len(g.bound) >= g.group.min_replicas for g in groups),
            created=sum(min(g.active, g.group.min_replicas) for g in groups),
            needed=sum(g.group.min_replicas for g in groups),
        )


def members(model: ClusterModel, gang: Gang) -> Members:
    """The gang's active pods, per podgroup (see the module docstring for how pods are found)."""
    namespace, name = gang.key
    by_group: dict[str, list[PodInfo]] = {g.name: [] for g in gang.podgroups}
    seen: set[PodKey] = set()
    for group in gang.podgroups:
        for ref in group.refs:
            pod = model.pods.get(ref)
            if pod is not None and ref not in seen:
                seen.add(ref)
                by_group[group.name].append(pod)
    for pod in model.gang_pods(namespace, name):
        if pod.key not in seen and pod.podclique in by_group:
            seen.add(pod.key)
            by_group[pod.podclique].append(pod)
    return Members.of(gang, tuple(_group_members(g, by_group[g.name]) for g in gang.podgroups))


def _group_members(group: PodGroup, pods: list[PodInfo]) -> GroupMembers:
    active = sorted((p for p in pods if p.active), key=lambda p: p.key)
    gated = sorted((p for p in active if p.state is PodState.GATED), key=lambda p: (p.pin is None, p.key))
    return GroupMembers(
        group=group,
        bound=tuple(p for p in active if p.state is PodState.BOUND),
        released=tuple(p for p in active if p.state is PodState.RELEASED),
        gated=tuple(gated),
        unbound_created=tuple(sorted(p.created for p in active if p.state is not PodState.BOUND)),
    )

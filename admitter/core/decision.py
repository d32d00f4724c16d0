"""What one admission pass decides (`Decision`) and what the I/O layer does with each part.

All types are frozen and hold only plain values, so a decision can be compared (the incremental planner
must produce exactly what a full pass would) and logged. Pods are named within their gang's namespace.
`Blocked` and `Waiting` carry a condition `reason` (a stable CamelCase word: `grove_api.podgang.REASON_*`)
and a human `message`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .cluster import GangKey


@dataclass(frozen=True, slots=True)
class Admit:
    """The gang's minimum fits: write the `Admitted` condition (status True) first, then release every
    placement (one strategic-merge patch per pod: nodeSelector `kubernetes.io/hostname` of the node, see
    `ClusterModel.hostname_of`, and removal of the gate). `placements` maps pod name to node name; it may
    lack minimum pods that were bound or released before, and includes `extras`."""

    namespace: str
    gang: str
    placements: Mapping[str, str]
    extras: tuple[str, ...] = ()  # pods beyond the minimum, placed because they fit

    @property
    def key(self) -> GangKey:
        return (self.namespace, self.gang)

    @property
    def minimum(self) -> dict[str, str]:
        extras = set(self.extras)
        return {pod: node for pod, node in self.placements.items() if pod not in extras}


@dataclass(frozen=True, slots=True)
class Release:
    """A gated pod of an already admitted gang that is placed now: one of its replacement pods (those that
    bring its podgroups back to their minimum are released all together, in one pass, or not at all) or a
    pod beyond its minimum (released one by one where it fits)."""

    namespace: str
    gang: str
    pod: str
    node: str


@dataclass(frozen=True, slots=True)
class Blocked:
    """The gang's minimum cannot be placed now; nothing of it is released. In `Decision.restore_blocked`:
    the replacement pods an admitted gang needs to be back at its minimum cannot all be placed now; none of
    them is released, and the gang stays admitted (see `Decision`)."""

    namespace: str
    gang: str
    reason: str  # grove_api.podgang: REASON_UNSCHEDULABLE, REASON_TOPOLOGY, REASON_PINNED or REASON_HELD
    message: str  # "needs 10 pods (1 cpu, 80Mi each) in podgroups a,b; only 7 fit: 3 nodes cordoned, ..."
    needed: int  # pods the minimum still needs released
    fitting: int  # of those, how many would fit now
    nodes: tuple[tuple[str, int], ...] = ()  # (reason key, node count) for the pods that do not fit
    topology_key: str | None = None  # the label of a required pack constraint that cannot be met
    best_domain: tuple[str, int] | None = None  # (label value, pods that would fit there)
    unsatisfiable: bool = False  # would not fit even on the empty cluster
    starving: bool = False  # waited longer than starvation_seconds: newer gangs are held for it
    held_for: GangKey | None = None  # REASON_HELD: the starving gang capacity is kept for
    replacements: bool = False  # an admitted gang's replacement pods (in Decision.restore_blocked)

    @property
    def key(self) -> GangKey:
        return (self.namespace, self.gang)

    @property
    def node_reasons(self) -> dict[str, int]:
        return dict(self.nodes)


@dataclass(frozen=True, slots=True)
class Waiting:
    """Not a candidate yet: pods of the minimum missing, or a scaled gang's base gang not scheduled."""

    namespace: str
    gang: str
    reason: str  # grove_api.podgang: REASON_PODS_PENDING or REASON_BASE_PENDING
    message: str  # "waiting for pods: 3/5 created"
    created: int  # pods that exist towards the minimum
    needed: int  # pods the minimum has
    base: GangKey | None = None

    @property
    def key(self) -> GangKey:
        return (self.namespace, self.gang)


@dataclass(frozen=True, slots=True)
class GangMessage:
    """A gang and a human message about it (the shape of RecordAdmittedOnCreate and Unadmit)."""

    namespace: str
    gang: str
    message: str

    @property
    def key(self) -> GangKey:
        return (self.namespace, self.gang)


@dataclass(frozen=True, slots=True)
class RecordAdmittedOnCreate(GangMessage):
    """A gang that is admitted in fact but not on record: its PodGang has no `Admitted` condition (or one
    saying it waited for its pods), yet some of its pods are released or bound. It was admitted on create
    (its pods were created pinned and ungated, `admitter.on_create`), or, the same to the record, the
    operator stopped between releasing its pods and writing the condition. Write `Admitted=True` now; the
    gang is treated as admitted meanwhile (its other gated pods are its replacements)."""


@dataclass(frozen=True, slots=True)
class Reset:
    """An admitted gang whose minimum did not bind in time: delete `pods` (released, not bound; they are
    recreated gated) and clear the `Admitted` condition, so the gang queues again. `reason` is the human
    explanation."""

    namespace: str
    gang: str
    reason: str
    pods: tuple[str, ...]

    @property
    def key(self) -> GangKey:
        return (self.namespace, self.gang)


@dataclass(frozen=True, slots=True)
class Unpin:
    """Released pods of an admitted gang whose minimum is bound, pinned to a node that no longer exists:
    they can never bind. Delete `pods` (the reconciler recreates them gated, and they are placed again as
    replacements or as pods beyond the minimum); the gang stays admitted. `nodes`: the hostnames gone."""

    namespace: str
    gang: str
    nodes: tuple[str, ...]
    pods: tuple[str, ...]

    @property
    def key(self) -> GangKey:
        return (self.namespace, self.gang)


@dataclass(frozen=True, slots=True)
class Unadmit(GangMessage):
    """An admitted gang none of whose pods is bound or released any more: every pod was deleted and
    recreated (gang termination recreates a PodCliqueSet replica's PodCliques while its PodGang stays), or
    none was released before a restart. Clear the `Admitted` condition (False, GangRecreated, `message`)
    and set phase Pending: the gang then queues as a new gang, all or nothing. It is not a candidate in the
    pass that un-admits it (its admission must be recorded afresh, so the bind timeout counts from then)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything one pass decided, each list in admission order (priority, age, name)."""

    admit: tuple[Admit, ...] = ()
    release: tuple[Release, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    reset: tuple[Reset, ...] = ()
    # Lower tiers (scaled gangs, pods beyond a minimum) were not looked at: a higher tier is blocked and
    # capacity is still arriving (not settled). The caller runs another pass once it has settled.
    deferred: bool = False
    unadmit: tuple[Unadmit, ...] = ()
    # Admitted gangs whose replacement pods (those that bring every podgroup back to its minimum) do not
    # all fit: none is released; the gang stays admitted (condition Admitted=True with its own reason).
    restore_blocked: tuple[Blocked, ...] = ()
    record_admitted_on_create: tuple[RecordAdmittedOnCreate, ...] = ()
    unpin: tuple[Unpin, ...] = ()

"""Nodes as the admitter sees them (`NodeInfo`) and whether a pod may go on one (`feasible`).

The admitter pins every pod it releases to a node, so it has to apply the same hard filters the
kube-scheduler applies there; otherwise it would pin pods to nodes that refuse them and the gang would never
bind. Filters: the node is Ready, not cordoned (unless the pod tolerates the cordon taint), every
NoSchedule/NoExecute taint is tolerated, `spec.nodeSelector` matches and the required node affinity matches.
Soft preferences (preferred affinity, PreferNoSchedule) do not decide feasibility.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .resources import Resources

HOSTNAME_LABEL = "kubernetes.io/hostname"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
HARD_EFFECTS = frozenset({"NoSchedule", "NoExecute"})

# Reason keys returned by `feasible`, in the order the checks run.
NOT_READY = "notReady"
UNSCHEDULABLE = "unschedulable"
TAINT = "taint"
NODE_SELECTOR = "nodeSelector"
AFFINITY = "affinity"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod's toleration, with the apiserver's matching rules (`ToleratesTaint`)."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Toleration:
        return cls(
            key=raw.get("key") or "",
            operator=raw.get("operator") or "Equal",
            value=str(raw.get("value") or ""),
            effect=raw.get("effect") or "",
        )

    def tolerates(self, taint: Taint) -> bool:
        """An empty effect matches every effect; an empty key (with Exists) matches every key."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.operator == "Equal" and self.value == taint.value


@dataclass(frozen=True, slots=True)
class Requirement:
    """One node selector requirement (`matchExpressions` on labels, `matchFields` on metadata.name)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Requirement:
        return cls(raw.get("key") or "", raw.get("operator") or "", tuple(raw.get("values") or ()))

    def matches(self, present: bool, actual: str) -> bool:
        op = self.operator
        if op == "In":
            return present and actual in self.values
        if op == "NotIn":
            return not present or actual not in self.values
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        if op in ("Gt", "Lt") and present and len(self.values) == 1:
            try:
                have, bound = int(actual), int(self.values[0])
            except ValueError:
                return False
            return have > bound if op == "Gt" else have < bound
        return False


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """Expressions and fields of one term are ANDed; an empty term matches no node (as in Kubernetes)."""

    match_expressions: tuple[Requirement, ...] = ()
    match_fields: tuple[Requirement, ...] = ()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> NodeSelectorTerm:
        return cls(
            tuple(Requirement.from_dict(r) for r in raw.get("matchExpressions") or ()),
            tuple(Requirement.from_dict(r) for r in raw.get("matchFields") or ()),
        )

    def matches(self, node: NodeInfo) -> bool:
        if not self.match_expressions and not self.match_fields:
            return False
        labels = node.labels
        for req in self.match_expressions:
            if not req.matches(req.key in labels, labels.get(req.key, "")):
                return False
        for req in self.match_fields:
            present = req.key == "metadata.name"
            if not req.matches(present, node.name if present else ""):
                return False
        return True


@dataclass(frozen=True, slots=True)
class PodSpecView:
    """The parts of a pod spec that decide which nodes it may run on. Hashable: pods with equal views have
    equal feasibility everywhere, so it is computed once per view and node, not once per pod."""

    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    # None: no required node affinity. Otherwise the ORed terms (an empty tuple matches no node).
    affinity: tuple[NodeSelectorTerm, ...] | None = None

    @classmethod
    def from_pod_spec(cls, spec: Mapping[str, Any]) -> PodSpecView:
        selector = tuple(sorted((str(k), str(v)) for k, v in (spec.get("nodeSelector") or {}).items()))
        tolerations = tuple(Toleration.from_dict(t) for t in spec.get("tolerations") or ())
        node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        terms = (
            None
            if required is None
            else tuple(NodeSelectorTerm.from_dict(t) for t in required.get("nodeSelectorTerms") or ())
        )
        return cls(selector, tolerations, terms)

    @property
    def pinned_hostname(self) -> str | None:
        """The `kubernetes.io/hostname` the nodeSelector pins this pod to, if any."""
        for key, val in self.node_selector:
            if key == HOSTNAME_LABEL:
                return val
        return None

    def tolerates(self, taint: Taint) -> bool:
        return any(t.tolerates(taint) for t in self.tolerations)


_CORDON = Taint(UNSCHEDULABLE_TAINT, "", "NoSchedule")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What placement needs of a Node object. A node without conditions counts as ready (KWOK and test
    nodes may have none yet); one whose Ready condition is not "True" does not."""

    name: str
    labels: Mapping[str, str]
    allocatable: Resources
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    ready: bool = True

    @classmethod
    def from_dict(cls, node: Mapping[str, Any]) -> NodeInfo:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        taints = tuple(
            Taint(t.get("key") or "", str(t.get("value") or ""), t.get("effect") or "")
            for t in spec.get("taints") or ()
        )
        ready = True
        for cond in status.get("conditions") or ():
            if cond.get("type") == "Ready":
                ready = cond.get("status") == "True"
        return cls(
            name=meta.get("name") or "",
            labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
            allocatable=Resources.from_k8s(status.get("allocatable")),
            taints=taints,
            unschedulable=bool(spec.get("unschedulable")),
            ready=ready,
        )

    @property
    def hostname(self) -> str | None:
        return self.labels.get(HOSTNAME_LABEL)


def feasible(view: PodSpecView, node: NodeInfo) -> str | None:
    """None when a pod with this view may run on the node (capacity aside), else the first reason key:
    "notReady", "unschedulable", "taint", "nodeSelector" or "affinity"."""
    if not node.ready:
        return NOT_READY
    if node.unschedulable and not view.tolerates(_CORDON):
        return UNSCHEDULABLE
    for taint in node.taints:
        if taint.effect in HARD_EFFECTS and not view.tolerates(taint):
            return TAINT
    labels = node.labels
    for key, val in view.node_selector:
        if labels.get(key) != val:
            return NODE_SELECTOR
    if view.affinity is not None and not any(term.matches(node) for term in view.affinity):
        return AFFINITY
    return None

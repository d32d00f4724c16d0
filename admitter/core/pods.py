"""Pods as the admitter sees them (`PodInfo`): which gang they belong to, where they stand (gated by us,
released, bound, finished) and what they take from a node.

Parsed once per informer event, so a pass over thousands of pods never touches raw JSON again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grove_api import conditions as cond
from grove_api import constants as c

from .exclusive import pod_demand
from .nodes import PodSpecView
from .resources import Resources

PodKey = tuple[str, str]  # (namespace, name)
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


class PodState(enum.Enum):
    """Where a pod stands, from the admitter's point of view."""

    GATED = "gated"  # still carries our gate: only the admitter can let it go
    RELEASED = "released"  # our gate is gone, not bound yet (pinned: it holds a reservation)
    BOUND = "bound"  # spec.nodeName is set: it takes node capacity
    TERMINAL = "terminal"  # Succeeded or Failed: takes nothing, counts for nothing


def epoch_seconds(text: str | None) -> float | None:
    """An RFC 3339 timestamp (as the apiserver writes it; `grove_api.conditions.parse_time`) in seconds since
    the epoch; None when absent or malformed."""
    parsed = cond.parse_time(text)
    return None if parsed is None else parsed.timestamp()


@dataclass(frozen=True, slots=True)
class PodInfo:
    key: PodKey
    state: PodState
    requests: Resources
    view: PodSpecView
    gang: str | None = None  # label grove.io/podgang
    podclique: str | None = None  # label grove.io/podclique
    node_name: str | None = None  # spec.nodeName (bound pods)
    pin: str | None = None  # nodeSelector kubernetes.io/hostname
    ungated: bool = True  # no scheduling gate at all (ours or anybody else's)
    deleting: bool = False  # metadata.deletionTimestamp is set
    created: float = 0.0  # metadata.creationTimestamp, epoch seconds
    generation: int = 0  # set by the ClusterModel: changes on every upsert

    @classmethod
    def from_dict(cls, pod: Mapping[str, Any], generation: int = 0) -> PodInfo:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        labels = meta.get("labels") or {}
        gates = [g.get("name") for g in spec.get("schedulingGates") or () if isinstance(g, Mapping)]
        node_name = spec.get("nodeName") or None
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            state = PodState.TERMINAL
        elif node_name:
            state = PodState.BOUND
        elif c.SCHEDULING_GATE_PODGANG_PENDING in gates:
            state = PodState.GATED
        else:
            state = PodState.RELEASED
        view = PodSpecView.from_pod_spec(spec)
        return cls(
            key=(meta.get("namespace") or "", meta.get("name") or ""),
            state=state,
            requests=pod_demand(pod),
            view=view,
            gang=labels.get(c.LABEL_PODGANG) or None,
            podclique=labels.get(c.LABEL_PODCLIQUE) or None,
            node_name=node_name,
            pin=view.pinned_hostname,
            ungated=not gates,
            deleting=bool(meta.get("deletionTimestamp")),
            created=epoch_seconds(meta.get("creationTimestamp")) or 0.0,
            generation=generation,
        )

    @property
    def active(self) -> bool:
        """Counts as a member of its gang: not finished and not being deleted."""
        return self.state is not PodState.TERMINAL and not self.deleting

    @property
    def reserving(self) -> bool:
        """Released, pinned and with no gate left: the scheduler will put it on its pinned node, so that
        node's capacity is spoken for even before the pod binds."""
        return self.state is PodState.RELEASED and self.ungated and self.pin is not None and not self.deleting


_SPEC_FIELDS = ("nodeName", "nodeSelector", "schedulingGates", "tolerations", "overhead", "resources")


def essentials(pod: dict[str, Any]) -> dict[str, Any]:
    """The part of a pod the admitter reads (PodInfo, the PodGang phase, and its controller for the PodGang's
    Initialized condition): what its informer caches. The admitter watches every pod of the cluster; the
    rest of a pod (env, commands, volumes, managed fields) would only cost memory."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    out_spec: dict[str, Any] = {k: spec[k] for k in _SPEC_FIELDS if k in spec}
    affinity = {
        k: v
        for k, v in (spec.get("affinity") or {}).items()
        if k in ("nodeAffinity", "podAntiAffinity") and v
    }
    if affinity:
        out_spec["affinity"] = affinity
    for key in ("containers", "initContainers"):
        if key in spec:
            out_spec[key] = [
                {k: x[k] for k in ("name", "resources", "restartPolicy", "ports") if k in x}
                for x in spec[key] or []
            ]
    out_meta = {
        k: meta[k]
        for k in (
            "name",
            "namespace",
            "uid",
            "labels",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
        )
        if k in meta
    }
    controller = [ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")]
    if controller:
        out_meta["ownerReferences"] = controller
    return {
        "apiVersion": pod.get("apiVersion", "v1"),
        "kind": pod.get("kind", "Pod"),
        "metadata": out_meta,
        "spec": out_spec,
        "status": {k: status[k] for k in ("phase", "conditions") if k in status},
    }

"""`ReplacementRoom`: would these new pods fit if those old pods were gone? The capacity oracle a rolling
update asks before it deletes a running pod, so an update never takes a pod down whose replacement could
not be placed.

A room is a cheap overlay on the live `ClusterModel` (create one per reconcile pass). It judges by the
admitter's own rules: what a pod requests (`pod_requests`: init containers, sidecars, overhead, one pod
slot), which nodes it may go on (`feasible`: Ready, cordon, taints, nodeSelector, required node affinity)
and which nodes can be pinned to at all (a unique `kubernetes.io/hostname`). Used capacity is the model's:
bound pods and the admitter's reservations (released, pinned pods not bound yet). Gated pods take nothing.

`fits(pairs)` places all the new pods at once (largest first, best fit) on the free capacity, with the old
pods' requests given back on their nodes. A node's given-back room only helps a new pod the node accepts
(a cordoned node's freed room is no use). On success the room keeps the placement: later calls on the
same room see the capacity as taken (and the old pods as gone), so two updates in one pass do not count
one free node twice. On failure nothing is kept.

The answer is an estimate of what the admitter will do, not a reservation: the admitter does not know
about the room, and the replacement pods queue as the replacements of their gang (see plan.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .board import SIZE_UNIT
from .cluster import ClusterModel
from .exclusive import is_exclusive, pod_demand
from .nodes import NodeInfo, PodSpecView, feasible
from .pods import PodKey
from .resources import ZERO, Resources

# (key (namespace, name) of the old pod that will be deleted, or None; the new pod as a raw dict)
Pair = tuple[PodKey | None, Mapping[str, Any]]


class ReplacementRoom:
    def __init__(self, model: ClusterModel) -> None:
        self.model = model
        self._delta: dict[str, Resources] = {}  # per node: room given back (+) and claimed (-) so far
        self._gone: set[PodKey] = set()  # old pods whose room was given back by an earlier call
        self._scale: dict[str, int] | None = None

    def free(self, node: str) -> Resources:
        """The node's free capacity as this room sees it (the model's, after earlier successful calls)."""
        free = self.model.free(node)
        delta = self._delta.get(node)
        return free + delta if delta else free

    def fits(self, pairs: Sequence[Pair]) -> bool:
        """Whether every new pod can be placed at once, the old pods being gone. True claims the room
        (see the module docstring); False claims nothing."""
        freed: dict[str, Resources] = {}
        gone: set[PodKey] = set()
        new: list[tuple[Resources, PodSpecView]] = []
        for old, pod in pairs:
            if old is not None and old not in self._gone and old not in gone:
                gone.add(old)
                taken = self.model.taken_by(*old)
                if taken is not None:
                    node, amount = taken
                    freed[node] = freed.get(node, ZERO) + amount
            spec = pod.get("spec") or {}
            new.append((pod_demand(pod), PodSpecView.from_pod_spec(spec)))
        placed = self._place(new, freed)
        if placed is None:
            return False
        for node, amount in freed.items():
            self._delta[node] = self._delta.get(node, ZERO) + amount
        for node, request in placed:
            self._delta[node] = self._delta.get(node, ZERO) - request
        self._gone |= gone
        return True

    def _place(
        self, pods: list[tuple[Resources, PodSpecView]], freed: Mapping[str, Resources]
    ) -> list[tuple[str, Resources]] | None:
        """Largest pods first (dominant share), each on the feasible node it leaves with the least room."""
        model = self.model
        nodes = sorted(
            (name, info)
            for name, info in model.nodes.items()
            if info.hostname is not None and model.node_for_hostname(info.hostname) == name
        )
        scale = self._scales()
        free: dict[str, Resources] = {}
        verdicts: dict[tuple[PodSpecView, str], bool] = {}
        placed: list[tuple[str, Resources]] = []
        order = sorted(range(len(pods)), key=lambda i: (-_share(pods[i][0], scale), i))
        for i in order:
            request, view = pods[i]
            best: tuple[int, str] | None = None
            for name, info in nodes:
                if not _accepts(view, name, info, verdicts):
                    continue
                room = free.get(name)
                if room is None:
                    room = free[name] = self.free(name) + freed.get(name, ZERO)
                if not request.fits(room):
                    continue
                left = (_size(room - request, scale), name)
                if best is None or left < best:
                    best = left
            if best is None:
                return None
            free[best[1]] = free[best[1]] - request
            placed.append((best[1], request))
        return placed

    def _scales(self) -> dict[str, int]:
        if self._scale is None:
            scale: dict[str, int] = {}
            for info in self.model.nodes.values():
                for res, amount in info.allocatable.items():
                    scale[res] = max(scale.get(res, 0), amount)
            self._scale = scale
        return self._scale


def _accepts(
    view: PodSpecView, name: str, info: NodeInfo, cache: dict[tuple[PodSpecView, str], bool]
) -> bool:
    found = cache.get((view, name))
    if found is None:
        found = cache[(view, name)] = feasible(view, info) is None
    return found


def _measured(amounts: Mapping[str, int], scale: Mapping[str, int]) -> list[int]:
    """Each resource as a share of the largest node's, exclusive units left out (as on the board)."""
    return [
        v * SIZE_UNIT // scale[r]
        for r, v in amounts.items()
        if v > 0 and scale.get(r) and not is_exclusive(r)
    ]


def _size(amounts: Mapping[str, int], scale: Mapping[str, int]) -> int:
    return sum(_measured(amounts, scale))


def _share(request: Mapping[str, int], scale: Mapping[str, int]) -> int:
    return max(_measured(request, scale), default=0)


__all__ = ["Pair", "ReplacementRoom"]

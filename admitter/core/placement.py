"""Placing pods on nodes, tentatively (`Placer` over a `Trial`), all-or-nothing per topology scope.

Greedy, largest pods first (by dominant share), best fit: each pod goes to the node with the least room
that still fits it, so the cluster packs and big holes stay open for big pods. Identical pods are placed
as a batch: the best node is filled as far as it goes, then the next one, which is exactly what placing
them one by one would do (filling a node only makes it a better fit).

Topology: a gang, a group config (set of podgroups) or a podgroup may carry a pack constraint. `required`
means all pods of that scope share one value of a node label (nodes without it are out); candidate domains
are tried tightest first (least free capacity that could still hold the scope) and the first where the
whole scope fits wins. `preferred` tries domains the same way and falls back to no constraint. Scopes
nest: a podgroup's domain is chosen inside its group config's, inside the gang's. The search is greedy (no
backtracking across sibling scopes), which keeps it linear in practice. A scope whose domain is already
decided (`fixed`: the replacements of an admitted gang go where its bound pods are) is placed in that
domain only (`required`), or there first and anywhere else if not (`preferred`).

Nothing here mutates the board: a `Trial` overlays the board's free capacity with its own changes and can
roll back to any mark. Every node read by a placement of a shape is in that shape's `fits` (see board.py),
which is what makes memoizing outcomes sound.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .board import Board, Free, NodeRec, Shape
from .gangs import Gang, Pack
from .nodes import feasible
from .pods import PodInfo
from .resources import Resources

SMALL_POOL = 64  # below this many candidate nodes, sort them; above, walk the board's size order

Items = tuple[tuple[str, int], ...]


class Trial:
    """Tentative placements over the board's live capacity."""

    __slots__ = ("assigned", "board", "free", "log", "sizes")

    def __init__(self, board: Board) -> None:
        self.board = board
        self.free: dict[str, Free] = {}
        self.sizes: dict[str, int] = {}
        self.log: list[tuple[str, Free | None, int]] = []
        self.assigned: list[tuple[PodInfo, str]] = []

    def free_of(self, name: str) -> Free:
        found = self.free.get(name)
        return found if found is not None else self.board.nodes[name].free

    def size_of(self, name: str) -> int:
        found = self.sizes.get(name)
        return found if found is not None else self.board.nodes[name].size

    def take(self, name: str, items: Items, pods: Sequence[PodInfo]) -> None:
        free = dict(self.free_of(name))
        for res, amount in items:
            free[res] = free.get(res, 0) - amount * len(pods)
        self.log.append((name, self.free.get(name), self.sizes.get(name, 0)))
        self.free[name] = free
        self.sizes[name] = self.board.size(free)
        self.assigned.extend((p, name) for p in pods)

    def mark(self) -> tuple[int, int]:
        return len(self.log), len(self.assigned)

    def undo(self, mark: tuple[int, int]) -> None:
        while len(self.log) > mark[0]:
            name, free, size = self.log.pop()
            if free is None:
                del self.free[name]
                del self.sizes[name]
            else:
                self.free[name] = free
                self.sizes[name] = size
        del self.assigned[mark[1] :]


@dataclass(slots=True, eq=False)
class Batch:
    """Identical pods of one podgroup."""

    shape: Shape
    pods: tuple[PodInfo, ...]
    group: str


@dataclass(slots=True, eq=False)
class Scope:
    """A set of pods placed together, with an optional pack constraint. `batches` and `pinned` are the
    pods not inside a constrained sub-scope (unconstrained sub-scopes are merged into their parent)."""

    label: str
    pack: Pack | None
    subscopes: list[Scope] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    pinned: list[PodInfo] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    demand: dict[Shape, int] = field(default_factory=dict)  # unpinned pods of the whole subtree
    pinned_all: list[PodInfo] = field(default_factory=list)  # pinned pods of the whole subtree

    @property
    def total(self) -> int:
        return sum(self.demand.values()) + len(self.pinned_all)


@dataclass(slots=True)
class Failure:
    """Why a placement failed (the outermost failure wins: it is recorded last)."""

    kind: str  # "capacity", "topology", "domain" (a fixed domain lacks room) or "pinned"
    scope: Scope
    batch: Batch | None = None
    key: str | None = None
    best: tuple[str, int] | None = None  # topology, domain: (domain value, pods that would fit there)
    detail: str = ""


def build_scope(gang: Gang, chosen: Mapping[str, Sequence[PodInfo]], board: Board) -> Scope:
    """The scope tree of a gang for the pods `chosen` per podgroup (gang > group configs > podgroups)."""
    leaves: dict[str, Scope] = {}
    for group in gang.podgroups:
        leaf = Scope(f"podgroup {group.name}", group.pack, groups=[group.name])
        pods = chosen.get(group.name, ())
        leaf.pinned = [p for p in pods if p.pin is not None]
        free_pods = [p for p in pods if p.pin is None]
        for (view, request), run in itertools.groupby(
            sorted(free_pods, key=lambda p: (id(board.shape(p.view, p.requests)), p.key)),
            key=lambda p: (p.view, p.requests),
        ):
            leaf.batches.append(Batch(board.shape(view, request), tuple(run), group.name))
        leaves[group.name] = leaf
    children: list[Scope] = []
    taken: set[str] = set()
    for config in gang.group_configs:
        members = [leaves[n] for n in config.podgroups if n in leaves and n not in taken]
        taken.update(s.groups[0] for s in members)
        children.append(_finish(Scope(f"group {config.name}", config.pack), members))
    children += [leaves[g.name] for g in gang.podgroups if g.name not in taken]
    return _finish(Scope("gang", gang.pack), [_finish(c, []) for c in children])


def _finish(scope: Scope, children: list[Scope]) -> Scope:
    for child in children:
        scope.groups += child.groups
        if child.pack is None:
            scope.subscopes += child.subscopes
            scope.batches += child.batches
            scope.pinned += child.pinned
        else:
            scope.subscopes.append(child)
    scope.batches.sort(key=lambda b: (-b.shape.share, -b.shape.size, b.group, b.pods[0].key))
    scope.subscopes.sort(key=lambda s: (-s.total, s.label))
    scope.demand = {}
    scope.pinned_all = list(scope.pinned)
    for batch in scope.batches:
        scope.demand[batch.shape] = scope.demand.get(batch.shape, 0) + len(batch.pods)
    for sub in scope.subscopes:
        for shape, n in sub.demand.items():
            scope.demand[shape] = scope.demand.get(shape, 0) + n
        scope.pinned_all += sub.pinned_all
    return scope


def request_items(request: Resources) -> Items:
    return tuple((k, v) for k, v in request.items() if v > 0)


class Placer:
    """Places scopes and batches into a `Trial`. In `partial` mode nothing fails: every batch places what
    fits (used to count how much of a blocked gang would fit, for its explanation). `fixed` maps a
    constrained scope (by `id`) to the value of its pack label it must (required) or should (preferred)
    stay in."""

    def __init__(self, board: Board, partial: bool = False, fixed: Mapping[int, str] | None = None) -> None:
        self.board = board
        self.trial = Trial(board)
        self.partial = partial
        self.fixed = fixed
        self.failure: Failure | None = None

    # --- scopes ---------------------------------------------------------------------------------------

    def place_scope(self, scope: Scope, allowed: set[str] | None) -> bool:
        pack = scope.pack
        key = (pack.required or pack.preferred) if pack is not None else None
        if pack is None or key is None:
            return self.place_contents(scope, allowed)
        value = self.fixed.get(id(scope)) if self.fixed else None
        if value is not None:
            return self._place_fixed(scope, allowed, key, value, bool(pack.required))
        domains, best = self.domains(scope, allowed, key)
        if self.partial:
            # Counting only: the first domain that could hold the scope, else the one that holds most.
            if domains:
                return self.place_contents(scope, domains[0][1])
            if pack.required and best is not None:
                return self.place_contents(scope, self._domain_nodes(allowed, key, best[0]))
            return self.place_contents(scope, allowed) if not pack.required else False
        for _value, nodes in domains:
            mark = self.trial.mark()
            if self.place_contents(scope, nodes):
                return True
            self.trial.undo(mark)
        if not pack.required:
            return self.place_contents(scope, allowed)
        self.failure = Failure("topology", scope, key=key, best=best)
        return False

    def _place_fixed(
        self, scope: Scope, allowed: set[str] | None, key: str, value: str, required: bool
    ) -> bool:
        nodes = self._domain_nodes(allowed, key, value)
        mark = self.trial.mark()
        if self.place_contents(scope, nodes):
            return True
        if not required:
            self.trial.undo(mark)
            return self.place_contents(scope, allowed)
        if not self.partial:
            self.trial.undo(mark)
            best = self.domains(scope, nodes, key)[1]
            fitting = best[1] if best is not None and best[0] == value else 0
            self.failure = Failure("domain", scope, key=key, best=(value, fitting))
        return False

    def place_contents(self, scope: Scope, allowed: set[str] | None) -> bool:
        ok = True
        for pod in scope.pinned:
            if not self.place_pinned(scope, pod, allowed):
                ok = False
                if not self.partial:
                    return False
        for sub in scope.subscopes:
            if not self.place_scope(sub, allowed):
                ok = False
                if not self.partial:
                    return False
        for batch in scope.batches:
            if self.place_batch(batch.shape, batch.pods, allowed) < len(batch.pods):
                if not self.partial:
                    self.failure = Failure("capacity", scope, batch=batch)
                    return False
                ok = False
        return ok

    # --- pods -----------------------------------------------------------------------------------------

    def place_batch(self, shape: Shape, pods: Sequence[PodInfo], allowed: set[str] | None) -> int:
        """Best fit, node by node; returns how many of `pods` were placed (in order)."""
        need = len(pods)
        placed = 0
        if need == 0 or not shape.fits:
            return 0
        trial = self.trial
        for name in self._candidates(shape, allowed):
            n = shape.count(trial.free_of(name))
            if n <= 0:
                continue
            n = min(n, need - placed)
            trial.take(name, shape.items, pods[placed : placed + n])
            placed += n
            if placed == need:
                break
        return placed

    def _candidates(self, shape: Shape, allowed: set[str] | None) -> Iterator[str]:
        """Nodes that may fit the shape, in best-fit order: (size, name) ascending."""
        trial = self.trial
        fits = shape.fits
        if allowed is not None or len(fits) <= SMALL_POOL:
            pool = fits if allowed is None else (fits & allowed)
            for _size, name in sorted((trial.size_of(n), n) for n in pool):
                yield name
            return
        touched = trial.free
        order = self.board.order
        start = bisect.bisect_left(order, (shape.size, ""))
        changed = sorted((trial.sizes[n], n) for n in touched if n in fits)
        live = (e for e in itertools.islice(order, start, None) if e[1] in fits and e[1] not in touched)
        for _size, name in heapq.merge(changed, live):
            yield name

    def place_pinned(self, scope: Scope | None, pod: PodInfo, allowed: set[str] | None) -> bool:
        """A pod pinned by its own nodeSelector goes on that node or nowhere."""
        rec = self.board.pinned_node(pod.pin or "")
        detail = self._pin_problem(pod, rec, allowed)
        if detail:
            if not self.partial and scope is not None:
                self.failure = Failure("pinned", scope, detail=f"pod {pod.key[0]}/{pod.key[1]} {detail}")
            return False
        assert rec is not None
        self.trial.take(rec.name, request_items(pod.requests), [pod])
        return True

    def _pin_problem(self, pod: PodInfo, rec: NodeRec | None, allowed: set[str] | None) -> str:
        if rec is None:
            return f"is pinned to hostname {pod.pin}, which no single usable node carries"
        if allowed is not None and rec.name not in allowed:
            return f"is pinned to node {rec.name}, outside the topology domain"
        reason = feasible(pod.view, rec.info)
        if reason is not None:
            return f"is pinned to node {rec.name}, which it cannot run on ({reason})"
        lacking = pod.requests.insufficient(self.trial.free_of(rec.name))
        if lacking:
            return f"is pinned to node {rec.name}, which lacks {', '.join(lacking)}"
        return ""

    # --- topology -------------------------------------------------------------------------------------

    def domains(
        self, scope: Scope, allowed: set[str] | None, key: str
    ) -> tuple[list[tuple[str, set[str]]], tuple[str, int] | None]:
        """Domains (values of label `key`) that could hold the whole scope, tightest first, each with the
        nodes worth trying there; and the best domain by how many of the scope's pods would fit."""
        board, trial = self.board, self.trial
        shapes = list(scope.demand)
        relevant: set[str] = set()
        for shape in shapes:
            relevant |= shape.fits
        if allowed is not None:
            relevant &= allowed
        pins: list[str] = []
        for pod in scope.pinned_all:
            rec = board.pinned_node(pod.pin or "")
            if rec is None:
                return [], None
            pins.append(rec.name)
        relevant.update(pins)
        stats: dict[str, tuple[list[int], Free, list[int], set[str]]] = {}
        for name in relevant:
            value = board.nodes[name].info.labels.get(key)
            if value is None:
                continue
            entry = stats.get(value)
            if entry is None:
                entry = stats[value] = ([0] * len(shapes), {}, [0], set())
            counts, total, size, members = entry
            free = trial.free_of(name)
            for i, shape in enumerate(shapes):
                if name in shape.fits:
                    counts[i] += shape.count(free)
            for res, amount in free.items():
                if amount > 0:
                    total[res] = total.get(res, 0) + amount
            size[0] += trial.size_of(name)
            members.add(name)
        demand_total: Free = {}
        for shape, n in scope.demand.items():
            for res, amount in shape.items:
                demand_total[res] = demand_total.get(res, 0) + amount * n
        for pod in scope.pinned_all:
            for res, amount in pod.requests.items():
                demand_total[res] = demand_total.get(res, 0) + amount
        pin_values = {board.nodes[n].info.labels.get(key) for n in pins}
        sufficient: list[tuple[int, str]] = []
        best: tuple[int, str] | None = None
        for value, (counts, total, size, _members) in stats.items():
            pinned_here = len(pins) if pin_values <= {value} else 0
            fitting = pinned_here + sum(min(c, scope.demand[s]) for c, s in zip(counts, shapes, strict=True))
            if best is None or (-fitting, value) < (-best[0], best[1]):
                best = (fitting, value)
            if pins and pin_values != {value}:
                continue
            if all(c >= scope.demand[s] for c, s in zip(counts, shapes, strict=True)) and all(
                total.get(r, 0) >= a for r, a in demand_total.items()
            ):
                sufficient.append((size[0], value))
        sufficient.sort()
        ordered = [(value, stats[value][3]) for _size, value in sufficient]
        return ordered, (best[1], best[0]) if best is not None else None

    def _domain_nodes(self, allowed: set[str] | None, key: str, value: str) -> set[str]:
        nodes = set(self.board.domain(key, value))
        return nodes & allowed if allowed is not None else nodes

"""`Board`: the planner's live view of free capacity per node, with per-`Shape` summaries kept up to date
on every change, so that deciding about a gang rarely needs to look at nodes at all.

A *shape* is a kind of pod: a scheduling view (tolerations, selectors, affinity) plus a request vector. Pods
of one podgroup share a shape, so a few dozen shapes describe thousands of pods. For each shape the board
keeps, incrementally (O(number of shapes) per node change):

- `fit_count`: how many pods of the shape would fit on all nodes together (each node counted on its own).
  For identical pods without topology this decides exactly whether they fit; for anything else it is a
  necessary condition, so a gang short of it is rejected without a placement attempt.
- `fits`: the nodes with room for at least one such pod (the only nodes a placement of the shape reads).
- `digest`: an XOR of (node, static version, free capacity) over `fits`. Placement is a deterministic
  function of what it reads, and it reads only the nodes in `fits` of its shapes, so if a gang's digests
  (and `rev`) are what they were last time, its outcome is too: the planner memoizes on them.
- `reasons`: per reason key ("taint", "insufficient:cpu", ...) how many nodes cannot take one such pod, and
  `empty_count`, how many would fit on an empty cluster; `rev` changes whenever either does. These feed the
  human explanation of a blocked gang.

Nodes are ordered by `size`, the sum over resources of free/scale (scale: the largest allocatable of that
resource), computed in integers so that a node with room for a pod never sorts below the pod's own size.
Best fit — the node left with the least room — is then the first node in that order, from the pod's size
on, that fits.

The board is mutated during a pass (gangs admitted earlier in the pass take capacity from later ones);
`sync` resets every node touched since the last sync to the model's state, so each pass starts from the
model. When the I/O layer has executed the previous pass, the model equals what the board already holds
and resetting costs nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .cluster import ClusterModel
from .exclusive import is_exclusive
from .nodes import NodeInfo, PodSpecView, feasible
from .resources import PODS, Resources

SIZE_UNIT = 1 << 20
NO_HOSTNAME = "noHostname"  # a node without a unique kubernetes.io/hostname label cannot be pinned to
INSUFFICIENT = "insufficient:"  # prefix of capacity reasons: "insufficient:cpu"

Free = dict[str, int]


@dataclass(slots=True, eq=False)
class NodeRec:
    name: str
    info: NodeInfo
    usable: bool  # has a hostname label no other node carries, so a pod can be pinned to it
    free: Free
    alloc: Free
    version: int  # changes whenever `info` or `usable` changes
    size: int = 0
    stamp: int = 0  # hash of (name, version, free): what a digest is made of

    @property
    def listed(self) -> bool:
        """Appears in the board's size order (could host some pod)."""
        return self.usable and self.info.ready


@dataclass(slots=True, eq=False)
class Sig:
    """One scheduling view and its static verdict on every node (None: the node is eligible)."""

    view: PodSpecView
    reasons: dict[str, str | None] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Shape:
    sig: Sig
    request: Resources
    items: tuple[tuple[str, int], ...]  # request as (resource, amount), pods last
    size: int = 0
    share: int = 0  # dominant share (largest single resource, scaled like size)
    fit_count: int = 0
    empty_count: int = 0
    fits: set[str] = field(default_factory=set)
    digest: int = 0
    rev: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def count(self, free: Mapping[str, int]) -> int:
        """How many such pods fit into `free`."""
        best: int | None = None
        for res, amount in self.items:
            n = free.get(res, 0) // amount
            if best is None or n < best:
                best = n
        return best if best is not None and best > 0 else 0

    def lacking(self, free: Mapping[str, int]) -> str:
        """Reason key for the first resource `free` has too little of."""
        for res, amount in self.items:
            if free.get(res, 0) < amount:
                return INSUFFICIENT + res
        return ""

    def verdict(self, reason: str | None, free: Mapping[str, int]) -> tuple[str | None, int]:
        """(why not, how many): one node's contribution to this shape's summary."""
        if reason is not None:
            return reason, 0
        n = self.count(free)
        return (None, n) if n > 0 else (self.lacking(free), 0)


@dataclass(slots=True)
class _State:
    """A node's state as the shape summaries saw it."""

    reasons: dict[int, str | None] | None  # id(Sig) -> static verdict; None: read the live Sig
    free: Free
    alloc: Free
    stamp: int


@dataclass(slots=True, eq=False)
class _DomainCapacity:
    """Per value of a label: how many pods of a shape its listed, eligible nodes hold when empty."""

    shape: Shape
    key: str
    counts: dict[str, int]
    best: int | None = None  # max of counts; None: to be recomputed


def _items(request: Resources) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(((k, v) for k, v in request.items() if v > 0), key=lambda kv: (kv[0] == PODS, kv[0])))


class Board:
    """Free capacity per node for one planner, kept in step with a `ClusterModel` (see the module
    docstring). `listen=False` for a one-off board that never syncs again."""

    def __init__(self, model: ClusterModel, listen: bool = True) -> None:
        self.model = model
        self.nodes: dict[str, NodeRec] = {}
        self.order: list[tuple[int, str]] = []
        self.scale: dict[str, int] = {}
        self.scale_version = 0
        self._sigs: dict[PodSpecView, Sig] = {}
        self._shapes: dict[tuple[PodSpecView, Resources], Shape] = {}
        self._domains: dict[str, dict[str, set[str]]] = {}
        self._capacities: dict[tuple[int, str], _DomainCapacity] = {}
        self._versions = 0
        self._dirty: set[str] = set(model.nodes)
        self._scratch: set[str] = set()
        self._listening = listen
        if listen:
            model.add_listener(self._dirty.add)
        self.sync()

    def close(self) -> None:
        if self._listening:
            self.model.remove_listener(self._dirty.add)
            self._listening = False

    # --- sizes -------------------------------------------------------------------------------------

    def size(self, amounts: Mapping[str, int]) -> int:
        total = 0
        scale = self.scale
        for res, amount in amounts.items():
            if amount > 0 and not is_exclusive(res):  # one unit per node: not a measure of room
                top = scale.get(res)
                if top:
                    total += amount * SIZE_UNIT // top
        return total

    def _share(self, request: Resources) -> int:
        return max(
            (
                amount * SIZE_UNIT // self.scale[res]
                for res, amount in request.items()
                if self.scale.get(res) and not is_exclusive(res)
            ),
            default=0,
        )

    def _set_scale(self) -> bool:
        scale: dict[str, int] = {}
        for rec in self.nodes.values():
            for res, amount in rec.alloc.items():
                if amount > scale.get(res, 0):
                    scale[res] = amount
        if scale == self.scale:
            return False
        self.scale = scale
        self.scale_version += 1
        for shape in self._shapes.values():
            shape.size = self.size(shape.request)
            shape.share = self._share(shape.request)
        return True

    # --- synchronisation with the model ------------------------------------------------------------

    def sync(self) -> None:
        """Bring every node changed in the model, or touched by the last pass, back to the model's state."""
        names = sorted(self._dirty | self._scratch)
        self._dirty.clear()
        self._scratch.clear()
        alloc_changed = False
        moved: list[tuple[NodeRec | None, int | None, str]] = []
        for name in names:
            rec = self.nodes.get(name)
            old_size = rec.size if rec is not None and rec.listed else None
            info = self.model.node(name)
            if info is None:
                if rec is not None:
                    self._retrack(name, self._state(rec), None)
                    self._index(rec, add=False)
                    del self.nodes[name]
                    for sig in self._sigs.values():
                        sig.reasons.pop(name, None)
                    self._versions += 1
                    alloc_changed = True
                moved.append((None, old_size, name))
                continue
            usable = self.model.node_for_hostname(info.hostname) == name if info.hostname else False
            free = self.model.free(name).as_dict()
            if rec is not None and rec.info == info and rec.usable == usable:
                if free != rec.free:
                    self._set_free(rec, free)
                    moved.append((rec, old_size, name))
                continue
            old = self._state(rec, snapshot=True) if rec is not None else None
            if rec is not None:
                self._index(rec, add=False)
                alloc_changed |= rec.alloc != info.allocatable.as_dict()
            else:
                alloc_changed = True
            self._versions += 1
            rec = NodeRec(name, info, usable, free, info.allocatable.as_dict(), self._versions)
            rec.stamp = hash((name, rec.version, tuple(sorted(free.items()))))
            self.nodes[name] = rec
            for sig in self._sigs.values():
                sig.reasons[name] = self._static(sig.view, rec)
            self._index(rec, add=True)
            self._retrack(name, old, self._state(rec))
            moved.append((rec, old_size, name))
        if alloc_changed and self._set_scale():
            for rec in self.nodes.values():
                rec.size = self.size(rec.free)
            self.order = sorted((r.size, r.name) for r in self.nodes.values() if r.listed)
            return
        for rec_or_none, old_size, name in moved:
            if old_size is not None:
                self._unlist(old_size, name)
            if rec_or_none is not None:
                rec_or_none.size = self.size(rec_or_none.free)
                if rec_or_none.listed:
                    bisect.insort(self.order, (rec_or_none.size, name))

    def _unlist(self, size: int, name: str) -> None:
        i = bisect.bisect_left(self.order, (size, name))
        if i < len(self.order) and self.order[i] == (size, name):
            del self.order[i]

    def _static(self, view: PodSpecView, rec: NodeRec) -> str | None:
        if not rec.usable:
            return NO_HOSTNAME
        return feasible(view, rec.info)

    def _state(self, rec: NodeRec, snapshot: bool = False) -> _State:
        reasons = {id(sig): sig.reasons.get(rec.name) for sig in self._sigs.values()} if snapshot else None
        return _State(reasons, rec.free, rec.alloc, rec.stamp)

    def _set_free(self, rec: NodeRec, free: Free) -> None:
        old = self._state(rec)
        rec.free = free
        rec.stamp = hash((rec.name, rec.version, tuple(sorted(free.items()))))
        self._retrack(rec.name, old, self._state(rec))

    def _retrack(self, name: str, old: _State | None, new: _State | None) -> None:
        """Move one node's contribution to every shape summary from `old` to `new` (None: absent)."""
        same_alloc = old is not None and new is not None and old.alloc is new.alloc
        for shape in self._shapes.values():
            o_reason: str | None = ""
            n_reason: str | None = ""
            o_count = n_count = o_empty = n_empty = 0
            if old is not None:
                static = (
                    shape.sig.reasons.get(name) if old.reasons is None else old.reasons.get(id(shape.sig))
                )
                o_reason, o_count = shape.verdict(static, old.free)
                if static is None and not same_alloc:
                    o_empty = shape.count(old.alloc)
                if o_count:
                    shape.digest ^= old.stamp
            if new is not None:
                static = shape.sig.reasons.get(name)
                n_reason, n_count = shape.verdict(static, new.free)
                if static is None and not same_alloc:
                    n_empty = shape.count(new.alloc)
                if n_count:
                    shape.digest ^= new.stamp
            if n_count:
                shape.fits.add(name)
            elif o_count:
                shape.fits.discard(name)
            shape.fit_count += n_count - o_count
            if o_reason != n_reason or o_empty != n_empty:
                shape.rev += 1
                shape.empty_count += n_empty - o_empty
                _bump(shape.reasons, o_reason, -1)
                _bump(shape.reasons, n_reason, 1)

    # --- shapes -----------------------------------------------------------------------------------

    def shape(self, view: PodSpecView, request: Resources) -> Shape:
        """The summary for pods with this view and request (created on first use, O(nodes))."""
        found = self._shapes.get((view, request))
        if found is not None:
            return found
        sig = self._sigs.get(view)
        if sig is None:
            sig = Sig(view, {name: self._static(view, rec) for name, rec in self.nodes.items()})
            self._sigs[view] = sig
        shape = Shape(sig, request, _items(request), self.size(request), self._share(request))
        self._shapes[(view, request)] = shape
        for name, rec in self.nodes.items():
            reason, n = shape.verdict(sig.reasons[name], rec.free)
            if n:
                shape.fits.add(name)
                shape.digest ^= rec.stamp
                shape.fit_count += n
            if sig.reasons[name] is None:
                shape.empty_count += shape.count(rec.alloc)
            _bump(shape.reasons, reason, 1)
        return shape

    def retain(self, shapes: Iterable[Shape]) -> None:
        """Forget every shape (and view) not in `shapes`: summaries cost time on every node change."""
        keep = {id(s) for s in shapes}
        self._shapes = {k: s for k, s in self._shapes.items() if id(s) in keep}
        self._capacities = {k: t for k, t in self._capacities.items() if k[0] in keep}
        views = {k[0] for k in self._shapes}
        self._sigs = {v: s for v, s in self._sigs.items() if v in views}

    @property
    def shape_count(self) -> int:
        return len(self._shapes)

    # --- changes made by a pass ---------------------------------------------------------------------

    def apply(self, changes: Mapping[str, Free]) -> None:
        """Take capacity on the live board (a gang admitted in this pass); undone by the next `sync`."""
        for name in sorted(changes):
            rec = self.nodes[name]
            if rec.listed:
                self._unlist(rec.size, name)
            self._set_free(rec, changes[name])
            rec.size = self.size(rec.free)
            if rec.listed:
                bisect.insort(self.order, (rec.size, name))
            self._scratch.add(name)

    # --- topology domains ---------------------------------------------------------------------------

    @property
    def static_version(self) -> int:
        """Changes whenever any node's description (not its free capacity) changes."""
        return self._versions

    def domain(self, key: str, value: str) -> set[str]:
        """Listed nodes labelled key=value."""
        return self.domain_index(key).get(value, set())

    def domain_index(self, key: str) -> dict[str, set[str]]:
        """Listed nodes by their value of label `key` (built on first use, then kept up to date)."""
        index = self._domains.get(key)
        if index is None:
            index = {}
            for rec in self.nodes.values():
                value = rec.info.labels.get(key)
                if value is not None and rec.listed:
                    index.setdefault(value, set()).add(rec.name)
            self._domains[key] = index
        return index

    def _index(self, rec: NodeRec, add: bool) -> None:
        """Add or remove a listed node in the domain indexes and domain capacities (call it with the
        node's static verdicts current)."""
        if not rec.listed:
            return
        labels = rec.info.labels
        for key, index in self._domains.items():
            value = labels.get(key)
            if value is None:
                continue
            if add:
                index.setdefault(value, set()).add(rec.name)
            else:
                members = index.get(value)
                if members is not None:
                    members.discard(rec.name)
                    if not members:
                        del index[value]
        for table in self._capacities.values():
            value = labels.get(table.key)
            if value is None or table.shape.sig.reasons.get(rec.name) is not None:
                continue
            amount = table.shape.count(rec.alloc)
            if amount:
                _bump(table.counts, value, amount if add else -amount)
                table.best = None

    def best_domain_capacity(self, shape: Shape, key: str) -> int:
        """The most pods of `shape` one value of label `key` could hold with every node empty."""
        table = self._capacities.get((id(shape), key))
        if table is None:
            table = _DomainCapacity(shape, key, {})
            for rec in self.nodes.values():
                value = rec.info.labels.get(key)
                if value is not None and rec.listed and shape.sig.reasons.get(rec.name) is None:
                    _bump(table.counts, value, shape.count(rec.alloc))
            self._capacities[(id(shape), key)] = table
        if table.best is None:
            table.best = max(table.counts.values(), default=0)
        return table.best

    def pinned_node(self, hostname: str) -> NodeRec | None:
        """The node a pod pinned to `hostname` would land on, if it is one we can place on."""
        name = self.model.node_for_hostname(hostname)
        rec = self.nodes.get(name) if name is not None else None
        return rec if rec is not None and rec.usable else None


def _bump(counts: dict[str, int], key: str | None, delta: int) -> None:
    if not key:
        return
    value = counts.get(key, 0) + delta
    if value:
        counts[key] = value
    else:
        counts.pop(key, None)

"""The admission pass: which gangs may have their gates lifted now, and where each released pod goes.

One pass, in order:

1. **Un-admissions and resets.** An admitted gang none of whose pods is bound or released any more (all
   were deleted and recreated: gang termination recreates a PodCliqueSet replica's PodCliques while its
   PodGang stays) is un-admitted (`Unadmit`) and queues again as a new gang from the next pass on, all or
   nothing, like any other. An admitted gang whose minimum is not bound `bind_timeout_seconds` after
   admission (and whose shortfall is not explained by pods created within that time or not created yet,
   i.e. replacements still on their way) is reset: its released-but-unbound pods are deleted and it
   queues again. Gated replacements that could not be placed for that long count as a shortfall too, so
   a gang whose replacements stay blocked is eventually reset and queues as a new gang (keeping its age,
   so it soon holds newer gangs back, see *Starvation*).
   Released pods pinned to a node that no longer exists (deleted) can never bind, and no timeout is
   waited for: a gang whose minimum is not bound is reset at once; one whose minimum is bound keeps its
   admission and only those pods are deleted (`Unpin`), to be recreated and placed again.
   A gang counts as admitted when its PodGang says so, or when nothing is on record yet (no `Admitted`
   condition, or one saying it waited for its pods) and some of its pods are released or bound: its pods
   were created already admitted (admission on create, `admitter.on_create`), or the operator stopped
   between releasing them and writing the condition. Such a gang is put on record
   (`RecordAdmittedOnCreate`) and treated as admitted.
2. **Running gangs whole again.** The gated pods that bring an admitted gang's podgroups back up to their
   minimum (replacements of failed or deleted pods) are placed together, all of them or none, before any
   new gang, once every podgroup has its pods (a replacement not created yet is waited for). Pods already
   bound stay where they are: a pack constraint whose scope has bound or released pods keeps the
   replacements in their domain (`required`), or tries it first (`preferred`). Replacements that do not
   all fit are reported (`Decision.restore_blocked`; the gang stays admitted) and none is released: a gang
   is never left partly released. While they are blocked, the gang's pods beyond its minimum wait too.
3. **New gangs, all or nothing, in tiers.** Candidates (not admitted, every podgroup has its minReplicas
   pods, and a scaled gang's base gang scheduled) in queue order: priority descending, then creation
   time, then name; base gangs (a PodCliqueSet replica's minimum) form the first tier, scaled gangs
   (scale-out of a scaling group) the second. The whole minimum of every podgroup is placed at once or
   nothing is; what is placed is taken from the pass's capacity so later gangs see it. A gang that does
   not fit is `Blocked` and the pass goes on to the next one: no head-of-line blocking, smaller gangs
   behind a big one still start.
   *Starvation:* that alone would let a stream of small gangs starve a big one forever. So once a gang has
   waited longer than `starvation_seconds` (since its PodGang was created; a gang un-admitted or reset
   keeps that age) and is blocked, the pass admits nothing further that is optional or new (those behind
   it are reported as held for it; only replacements of running gangs' pods still go ahead). Blocked
   replacements of an admitted gang starve the same way once the oldest of them has waited that long
   (since it was created). Capacity freed by finishing work then accumulates until the starving gang
   fits. A gang that would not fit even on the empty cluster never holds others back.
   *Deadlock freedom* follows from all-or-nothing: no gang ever holds part of what it needs while waiting
   for the rest, so two gangs that each need 60 % of the cluster cannot both hold 50 %.
4. **Extras.** Pods beyond a gang's minimum (of gangs admitted now or earlier) are released where they
   fit, after every minimum, so one gang's optional pods never keep another gang's minimum out.
5. **Settling.** Capacity often arrives in bursts (nodes uncordoned or added together, a job's pods
   finishing), but the admitter sees it one event at a time. While the caller says capacity has not
   `settled` and a tier (replacements included) is blocked, the lower tiers are not looked at
   (`Decision.deferred`): otherwise
   the first freed node would go to some gang's optional pods, and the blocked minimum waiting for the
   rest of the burst would never get it. Once settled, lower tiers take what the blocked gangs cannot use.

Speed: a `Planner` lives as long as the model and memoizes per gang (see board.py for why the memo is
sound): a pass after a small change re-examines only gangs whose shapes' capacity summaries changed, and
most of those are rejected in O(1) by counting. `plan()` is the same pass with a fresh planner; both give
identical decisions for the same model, gangs and time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from grove_api.podgang import (
    REASON_BASE_PENDING,
    REASON_HELD,
    REASON_PINNED,
    REASON_PODS_PENDING,
    REASON_TOPOLOGY,
    REASON_UNSCHEDULABLE,
)

from . import explain
from .board import Board, Free, Shape
from .cluster import ClusterModel, GangKey
from .decision import (
    Admit,
    Blocked,
    Decision,
    RecordAdmittedOnCreate,
    Release,
    Reset,
    Unadmit,
    Unpin,
    Waiting,
)
from .gangs import Gang, Members, members
from .nodes import feasible
from .placement import Batch, Placer, Scope, build_scope
from .pods import PodInfo, PodKey
from .resources import Resources

PodGangObj = TypeVar("PodGangObj", bound=Mapping[str, Any])  # a PodGang as the informer holds it


@dataclass(frozen=True, slots=True)
class PlanConfig:
    starvation_seconds: float = 60.0  # a blocked gang older than this holds newer gangs back
    bind_timeout_seconds: float = 60.0  # an admitted gang whose minimum is not bound by then is reset


@dataclass(slots=True)
class _Outcome:
    """A memoized attempt to place a gang's minimum: the placements and new node capacities, or why not."""

    assigned: tuple[tuple[PodInfo, str], ...] = ()
    changes: dict[str, Free] | None = None
    blocked: Blocked | None = None


@dataclass(slots=True, eq=False)
class _Job:
    """Gated pods of one gang placed all or nothing: a new gang's minimum, or an admitted gang's
    replacements (the pods that bring its podgroups back up to their minimum)."""

    chosen: dict[str, list[PodInfo]]  # per podgroup
    need: int
    replacements: bool = False
    scope: Scope | None = None
    packed: bool = False  # some scope has a pack constraint
    required_pack: bool = False  # some scope has a required pack constraint
    summary: str | None = None
    memo_key: Hashable = None
    memo: _Outcome | None = None


@dataclass(slots=True, eq=False)
class _Entry:
    """What the planner keeps per gang between passes; rebuilt when the gang or its pods change."""

    gang: Gang
    admitted: bool  # on record, or in fact (decision.RecordAdmittedOnCreate)
    generation: int
    refs: tuple[tuple[PodKey, int], ...]  # referenced pods outside the label index, with generations
    scale_version: int
    members: Members
    minimum: _Job  # not admitted: the gated pods released for the minimum
    restore: _Job  # admitted: the gated pods that bring it back up to its minimum
    extras: list[PodInfo]  # the other gated pods
    shapes: list[Shape]  # every shape of the gang's gated pods (kept alive on the board)
    extra_shapes: tuple[Shape, ...] = ()  # shapes of the unpinned extras
    extra_pinned: bool = False  # some extra is pinned by its own nodeSelector


@dataclass(frozen=True, slots=True)
class _Hold:
    """A starving gang (or an admitted gang's starving replacements) newer gangs are held back for."""

    gang: Gang
    since: float
    replacements: bool = False


class Planner:
    """Incremental admission over one `ClusterModel`: apply informer events to the model, then call
    `decide(model, podgangs, now)` (raw PodGang objects) or `plan(gangs, now)` (parsed `Gang`s). The
    planner listens to the model it is bound to (on first use, or `model=`); `close()` stops that."""

    def __init__(self, config: PlanConfig | None = None, model: ClusterModel | None = None) -> None:
        self.config = config or PlanConfig()
        self._model: ClusterModel | None = None
        self._board: Board | None = None
        self._entries: dict[GangKey, _Entry] = {}
        self._gangs: dict[GangKey, tuple[Mapping[str, Any], str, int, Gang]] = {}
        self._retained = 0  # shapes on the board after the last clean-up
        if model is not None:
            self.bind(model)

    def bind(self, model: ClusterModel, listen: bool = True) -> None:
        """Plan for `model` from now on (a different model starts from scratch)."""
        if self._model is model:
            return
        self.close()
        self._model = model
        self._board = Board(model, listen=listen)
        self._entries = {}

    def close(self) -> None:
        if self._board is not None:
            self._board.close()

    @property
    def model(self) -> ClusterModel:
        assert self._model is not None, "Planner is not bound to a ClusterModel"
        return self._model

    @property
    def board(self) -> Board:
        assert self._board is not None, "Planner is not bound to a ClusterModel"
        return self._board

    # --- the pass -------------------------------------------------------------------------------------

    def decide(
        self,
        model: ClusterModel,
        podgangs: Iterable[PodGangObj],
        now: float,
        priority_of: Callable[[PodGangObj], int] | None = None,
        settled: bool = True,
    ) -> Decision:
        """One pass over raw PodGang objects. `priority_of(podgang)` gives a gang's priority (default 0).
        Parsed gangs are cached by resourceVersion (or object identity), so unchanged PodGangs cost
        nothing to re-read."""
        self.bind(model)
        return self.plan(self._parse(podgangs, priority_of), now, settled)

    def _parse(
        self, podgangs: Iterable[PodGangObj], priority_of: Callable[[PodGangObj], int] | None
    ) -> list[Gang]:
        cache: dict[GangKey, tuple[Mapping[str, Any], str, int, Gang]] = {}
        out = []
        for obj in podgangs:
            meta = obj.get("metadata") or {}
            key = (meta.get("namespace") or "", meta.get("name") or "")
            version = str(meta.get("resourceVersion") or "")
            priority = priority_of(obj) if priority_of is not None else 0
            hit = self._gangs.get(key)
            if hit is not None and hit[2] == priority and (hit[0] is obj or (version and hit[1] == version)):
                gang = hit[3]
            else:
                gang = Gang.from_podgang(obj, priority=priority)
            cache[key] = (obj, version, priority, gang)
            out.append(gang)
        self._gangs = cache
        return out

    def plan(self, gangs: Iterable[Gang], now: float, settled: bool = True) -> Decision:
        """One pass (module docstring). `settled`: no capacity has been freed for a moment (the caller
        decides what a moment is); until then, lower tiers wait while a higher tier is blocked."""
        board = self.board
        board.sync()
        queue = sorted(gangs, key=lambda g: g.queue_key)
        entries, rebuilt = self._refresh(queue)
        by_key = {e.gang.key: e for e in entries}
        resets: list[Reset] = []
        unpins: list[Unpin] = []
        unadmits: list[Unadmit] = []
        releases: list[Release] = []
        waiting: list[Waiting] = []
        candidates: list[_Entry] = []
        restoring: list[_Entry] = []  # admitted gangs below their minimum whose replacements all exist
        whole: list[_Entry] = []  # admitted gangs at their minimum (or restored in this pass)
        restored: dict[GangKey, dict[PodKey, str]] = {}  # replacements placed in this pass
        records: list[RecordAdmittedOnCreate] = []
        for e in entries:
            if e.admitted:
                if not e.gang.admitted:
                    records.append(_record(e))
                if not any(g.placed for g in e.members.groups):
                    # Recreated pods waiting (gated): queue again. No pod at all (the PodCliqueSet is being
                    # deleted or scaled in, or the pods are between deletion and re-creation): nothing to
                    # write, or a teardown would write a status and an Event per gang.
                    if any(g.gated for g in e.members.groups):
                        unadmits.append(self._unadmit(e))
                    continue
                stranded = self._stranded(e)
                reset = self._reset(e, now, stranded)
                if reset is not None:
                    resets.append(reset)
                    continue
                if stranded:
                    gone = tuple(sorted({p.pin or "" for p in stranded}))
                    unpins.append(Unpin(*e.gang.key, gone, tuple(sorted(p.key[1] for p in stranded))))
                if e.members.scheduled:
                    whole.append(e)
                elif e.members.complete:
                    restoring.append(e)
                continue
            wait = self._waiting(e, by_key)
            if wait is not None:
                waiting.append(wait)
            else:
                candidates.append(e)
        held_for: _Hold | None = None
        restore_blocked: list[Blocked] = []
        for e in restoring:
            outcome = self._evaluate(e, e.restore)
            if outcome.blocked is None:
                if outcome.changes:
                    board.apply(outcome.changes)
                ns, name = e.gang.key
                for pod, node in sorted(outcome.assigned, key=lambda pn: pn[0].key):
                    releases.append(Release(ns, name, pod.key[1], node))
                whole.append(e)
                restored[e.gang.key] = {p.key: n for p, n in outcome.assigned}
                continue
            result = replace(outcome.blocked, replacements=True)
            since = min(p.created for pods in e.restore.chosen.values() for p in pods)
            if now - since > self.config.starvation_seconds and not result.unsatisfiable:
                result = replace(result, starving=True)
                if held_for is None:
                    held_for = _Hold(e.gang, since, replacements=True)
            restore_blocked.append(result)
        # Replacements are the first tier: while they are blocked and capacity is arriving, wait for it.
        deferred = not settled and bool(restore_blocked)
        admitted: list[tuple[_Entry, tuple[tuple[PodInfo, str], ...]]] = []
        blocked: list[Blocked] = []
        for tier in (
            [e for e in candidates if e.gang.base is None],
            [e for e in candidates if e.gang.base is not None],
        ):
            if deferred:
                break
            tier_blocked: list[Blocked] = []
            held_for = self._admit_tier(tier, now, held_for, admitted, tier_blocked)
            blocked += tier_blocked
            # Even a gang that does not fit the schedulable nodes at all defers: the burst may be the
            # uncordoning (or adding) of the very nodes it waits for. Deferring costs one settling time.
            deferred = not settled and any(b.reason != REASON_HELD for b in tier_blocked)
        extras_allowed = not deferred and held_for is None
        if extras_allowed:
            order = {e.gang.key: i for i, e in enumerate(entries)}
            for e in sorted(whole, key=lambda e: order[e.gang.key]):
                if e.extras and (e.extra_pinned or any(s.fits for s in e.extra_shapes)):
                    ns, name = e.gang.key
                    placed = restored.get(e.gang.key, {})
                    for p, n in self._place_each(e, e.extras, dict(placed)):
                        releases.append(Release(ns, name, p.key[1], n))
        admits = []
        for e, assigned in admitted:
            placements = {p.key[1]: n for p, n in assigned}
            extras: list[str] = []
            if extras_allowed and (e.extra_pinned or any(s.fits for s in e.extra_shapes)):
                for p, n in self._place_each(e, e.extras, {p.key: n for p, n in assigned}):
                    placements[p.key[1]] = n
                    extras.append(p.key[1])
            admits.append(Admit(e.gang.key[0], e.gang.key[1], placements, tuple(extras)))
        if rebuilt and board.shape_count > 2 * self._retained + 32:
            board.retain(s for e in entries for s in e.shapes)
            self._retained = board.shape_count
        return Decision(
            tuple(admits),
            tuple(releases),
            tuple(blocked),
            tuple(waiting),
            tuple(resets),
            deferred,
            tuple(unadmits),
            tuple(restore_blocked),
            tuple(records),
            tuple(unpins),
        )

    def _admit_tier(
        self,
        tier: Sequence[_Entry],
        now: float,
        held_for: _Hold | None,
        admitted: list[tuple[_Entry, tuple[tuple[PodInfo, str], ...]]],
        blocked: list[Blocked],
    ) -> _Hold | None:
        """All-or-nothing minimums of one tier, in queue order; returns the starving gang, if any."""
        board = self.board
        for e in tier:
            if held_for is not None:
                blocked.append(self._held(e, held_for, now))
                continue
            outcome = self._evaluate(e, e.minimum)
            if outcome.blocked is None:
                if outcome.changes:
                    board.apply(outcome.changes)
                admitted.append((e, outcome.assigned))
                continue
            result = outcome.blocked
            if now - e.gang.created > self.config.starvation_seconds and not result.unsatisfiable:
                result = replace(result, starving=True)
                held_for = _Hold(e.gang, e.gang.created)
            blocked.append(result)
        return held_for

    # --- per-gang state -------------------------------------------------------------------------------

    def _refresh(self, queue: Sequence[Gang]) -> tuple[list[_Entry], bool]:
        """The entry of every gang, reusing those whose gang, pods and board scale are unchanged."""
        model, board = self.model, self.board
        old = self._entries
        fresh: dict[GangKey, _Entry] = {}
        rebuilt = len(old) != len(queue)
        for gang in queue:
            e = old.get(gang.key)
            if (
                e is None
                or not (e.gang is gang or e.gang == gang)
                or e.generation != model.gang_generation(*gang.key)
                or e.scale_version != board.scale_version
                or (e.refs and any(_generation(model, k) != g for k, g in e.refs))
            ):
                e = self._build(gang)
                rebuilt = True
            fresh[gang.key] = e
        self._entries = fresh
        return list(fresh.values()), rebuilt

    def _build(self, gang: Gang) -> _Entry:
        model, board = self.model, self.board
        found = members(model, gang)
        admitted = gang.admitted or (gang.undecided and any(g.placed for g in found.groups))
        labelled = {p.key for p in model.gang_pods(*gang.key)}
        refs = tuple(
            (ref, _generation(model, ref))
            for group in gang.podgroups
            for ref in group.refs
            if ref not in labelled
        )
        chosen: dict[str, list[PodInfo]] = {}
        extras: list[PodInfo] = []
        need = 0
        for group in found.groups:
            take = min(group.missing, len(group.gated))
            chosen[group.group.name] = list(group.gated[:take])
            extras += group.gated[take:]
            need += take
        job = _Job(chosen, need, replacements=admitted)
        nothing = _Job({g.group.name: [] for g in found.groups}, 0, replacements=not admitted)
        shapes = list(
            dict.fromkeys(
                board.shape(p.view, p.requests) for g in found.groups for p in g.gated if p.pin is None
            )
        )
        return _Entry(
            gang=gang,
            admitted=admitted,
            generation=model.gang_generation(*gang.key),
            refs=refs,
            scale_version=board.scale_version,
            members=found,
            minimum=nothing if admitted else job,
            restore=job if admitted else nothing,
            extras=extras,
            shapes=shapes,
            extra_shapes=tuple(
                dict.fromkeys(board.shape(p.view, p.requests) for p in extras if p.pin is None)
            ),
            extra_pinned=any(p.pin is not None for p in extras),
        )

    def _waiting(self, e: _Entry, by_key: dict[GangKey, _Entry]) -> Waiting | None:
        have, needed = e.members.created, e.members.needed
        ns, name = e.gang.key
        if not e.members.complete:
            message = f"waiting for pods: {have}/{needed} created"
            return Waiting(ns, name, REASON_PODS_PENDING, message, have, needed)
        base = e.gang.base
        if base is None:
            return None
        base_entry = by_key.get(base)
        if base_entry is not None and base_entry.members.scheduled:
            return None
        state = "to be scheduled" if base_entry is not None else "(not found)"
        message = f"waiting for base gang {base[0]}/{base[1]} {state}"
        return Waiting(ns, name, REASON_BASE_PENDING, message, have, needed, base=base)

    def _unadmit(self, e: _Entry) -> Unadmit:
        message = (
            "no pod of the gang is bound or released any more (its pods were recreated): "
            "it queues again as a new gang, all or nothing"
        )
        return Unadmit(e.gang.key[0], e.gang.key[1], message)

    def _stranded(self, e: _Entry) -> list[PodInfo]:
        """Released pods pinned to a hostname no node carries any more (the node was deleted): the scheduler
        can never bind them, and no timeout should be needed to notice."""
        model = self.model
        return [p for g in e.members.groups for p in g.released if p.pin and not model.has_hostname(p.pin)]

    def _reset(self, e: _Entry, now: float, stranded: list[PodInfo]) -> Reset | None:
        found = e.members
        if found.min_bound:
            return None
        if stranded:  # part of the minimum can never bind: queue the gang again now
            gone = ", ".join(sorted({p.pin or "" for p in stranded}))
            pods = tuple(sorted(p.key[1] for g in found.groups for p in g.released))
            return Reset(*e.gang.key, f"pinned to node(s) {gone}, which no longer exist", pods)
        timeout = self.config.bind_timeout_seconds
        admitted_at = e.gang.admitted_at if e.gang.admitted_at is not None else e.gang.created
        if now - admitted_at <= timeout:
            return None
        # On their way: pods created within the timeout, and pods not created yet (a deleted pod's
        # replacement). Short: a podgroup whose other pods (released or gated) are older than that.
        short = [
            g
            for g in found.groups
            if len(g.bound) + g.young_unbound(now - timeout) + max(0, g.group.min_replicas - g.active)
            < g.group.min_replicas
        ]
        if not short:
            return None
        detail = ", ".join(
            f"podgroup {g.group.name} has {len(g.bound)}/{g.group.min_replicas} pods bound" for g in short
        )
        pods = tuple(sorted(p.key[1] for g in found.groups for p in g.released))
        reason = f"minimum not bound {timeout:g} s after admission: {detail}"
        return Reset(e.gang.key[0], e.gang.key[1], reason, pods)

    # --- placing a minimum ----------------------------------------------------------------------------

    def _evaluate(self, e: _Entry, job: _Job) -> _Outcome:
        """Place the job (the gang's minimum, or its replacements) on the pass's board, or say why not.
        Memoized on exactly what the outcome depends on: a job short of room for one of its shapes is
        rejected by counting (its outcome depends on the shapes' counts and reasons only); any other on the
        capacity of every node that could take one of its pods (the shapes' digests). Replacements also
        depend on where the gang's placed pods are (fixed with the entry, and the nodes' labels)."""
        board = self.board
        if job.scope is None:
            job.scope = build_scope(e.gang, job.chosen, board)
            packs = [s.pack for s in _scopes(job.scope) if s.pack is not None]
            job.packed = bool(packs)
            job.required_pack = any(p.required for p in packs)
        scope = job.scope
        fixed = self._fixed(e, scope) if job.replacements and job.packed else None
        pins = (
            tuple(
                (rec.stamp if rec is not None else None)
                for rec in (board.pinned_node(p.pin or "") for p in scope.pinned_all)
            )
            if scope.pinned_all
            else ()
        )
        bottleneck = None
        if job.need:
            for shape, n in scope.demand.items():
                if shape.fit_count < n:
                    bottleneck = shape
                    break
        # Whether a required pack constraint could ever be met depends on every node's description, and
        # so does the domain the placed pods of an admitted gang are in.
        static = board.static_version if job.required_pack or fixed is not None else 0
        domains = tuple(sorted(fixed.items())) if fixed else ()
        key: Hashable
        if bottleneck is not None:
            key = (0, tuple((s.fit_count, s.rev) for s in scope.demand), pins, static, domains)
        else:
            demand = tuple((s.digest, s.rev) for s in scope.demand)
            key = (1, board.scale_version, demand, pins, static, domains)
        if job.memo is not None and job.memo_key == key:
            return job.memo
        if bottleneck is not None:
            outcome = _Outcome(blocked=self._count_blocked(e, job, scope, bottleneck))
        else:
            outcome = self._attempt(e, job, scope, fixed)
        job.memo_key, job.memo = key, outcome
        return outcome

    def _attempt(self, e: _Entry, job: _Job, scope: Scope, fixed: dict[int, str] | None) -> _Outcome:
        if job.need == 0:
            return _Outcome()
        placer = Placer(self.board, fixed=fixed)
        if placer.place_scope(scope, None):
            return _Outcome(tuple(placer.trial.assigned), dict(placer.trial.free))
        return _Outcome(blocked=self._trial_blocked(e, job, scope, placer, fixed))

    def _fixed(self, e: _Entry, scope: Scope) -> dict[int, str]:
        """For each scope with a pack constraint that already has bound or released pods of the gang: the
        value of its label where they are (of the first such pod by name whose node has the label), by
        `id` of the scope. Their replacements go there too."""
        nodes = self._placed_nodes(e, {})
        group_of = {p.key: g.group.name for g in e.members.groups for p in (*g.bound, *g.released)}
        placed = sorted(k for k in nodes if k in group_of)
        out: dict[int, str] = {}
        for sub in _scopes(scope):
            pack = sub.pack
            key = (pack.required or pack.preferred) if pack is not None else None
            if key is None:
                continue
            groups = set(sub.groups)
            for pod_key in placed:
                if group_of[pod_key] not in groups:
                    continue
                rec = self.board.nodes.get(nodes[pod_key])
                value = rec.info.labels.get(key) if rec is not None else None
                if value is not None:
                    out[id(sub)] = value
                    break
        return out

    # --- explanations ---------------------------------------------------------------------------------

    def _summary(self, job: _Job, scope: Scope) -> str:
        """ "needs 10 pods (1 cpu, 80Mi each) in podgroups a,b" ("needs 2 replacement pods ...")."""
        if job.summary is None:
            job.summary = self._describe(job, scope)
        return job.summary

    def _describe(self, job: _Job, scope: Scope) -> str:
        requests: dict[Resources, int] = {}
        for shape, n in scope.demand.items():
            requests[shape.request] = requests.get(shape.request, 0) + n
        for pod in scope.pinned_all:
            requests[pod.requests] = requests.get(pod.requests, 0) + 1
        if len(requests) == 1:
            (request,) = requests
            sizes = f"{explain.amounts(request)} each"
        else:
            sizes = "; ".join(
                f"{n} x {explain.amounts(r)}"
                for r, n in sorted(requests.items(), key=lambda rn: (-rn[1], repr(rn[0])))
            )
        groups = explain.names(g for g, pods in job.chosen.items() if pods)
        noun = "podgroup" if "," not in groups else "podgroups"
        kind = "replacement pods" if job.replacements else "pods"
        return f"needs {job.need} {kind} ({sizes}) in {noun} {groups}"

    def _unsatisfiable(self, scope: Scope) -> bool:
        """Would the minimum not fit even with every node empty (so waiting cannot help)? Checked per
        kind of pod: its count on the empty cluster, and in the largest domain of each required pack
        constraint; a pinned pod's node must exist, accept it and be big enough."""
        board = self.board
        if any(shape.empty_count < n for shape, n in scope.demand.items()):
            return True
        for pod in scope.pinned_all:
            rec = board.pinned_node(pod.pin or "")
            if rec is None or feasible(pod.view, rec.info) is not None or not pod.requests.fits(rec.alloc):
                return True
        for sub in _scopes(scope):
            key = sub.pack.required if sub.pack is not None else None
            if key and any(board.best_domain_capacity(s, key) < n for s, n in sub.demand.items()):
                return True
        return False

    def _count_blocked(self, e: _Entry, job: _Job, scope: Scope, bottleneck: Shape) -> Blocked:
        fitting = sum(min(n, s.fit_count) for s, n in scope.demand.items())
        for pod in scope.pinned_all:
            rec = self.board.pinned_node(pod.pin or "")
            if rec is not None and feasible(pod.view, rec.info) is None and pod.requests.fits(rec.free):
                fitting += 1
        counts = tuple(sorted(bottleneck.reasons.items()))
        return self._blocked(e, job, scope, fitting, bottleneck, counts, len(bottleneck.fits))

    def _trial_blocked(
        self, e: _Entry, job: _Job, scope: Scope, placer: Placer, fixed: dict[int, str] | None
    ) -> Blocked:
        failure = placer.failure
        counter = Placer(self.board, partial=True, fixed=fixed)
        counter.place_scope(scope, None)
        fitting = len(counter.trial.assigned)
        if failure is None or failure.kind == "capacity":
            shape = failure.batch.shape if failure is not None and failure.batch is not None else None
            counts, room = self._reasons_in(shape, placer) if shape is not None else ((), 0)
            return self._blocked(e, job, scope, fitting, shape, counts, room)
        ns, name = e.gang.key
        if failure.kind == "pinned":
            message = f"{self._summary(job, scope)}; {failure.detail}"
            unsatisfiable = self._unsatisfiable(scope)
            return Blocked(ns, name, REASON_PINNED, message, job.need, fitting, unsatisfiable=unsatisfiable)
        best = failure.best
        if failure.kind == "domain" and best is not None:
            message = (
                f"{self._summary(job, scope)}; {failure.scope.label} runs in {failure.key}={best[0]}, "
                f"which has room for only {best[1]} of these {failure.scope.total} pods"
            )
        else:
            where = "" if failure.scope is scope else f" of {failure.scope.label}"
            if best is None:
                tail = "no node that could hold them has that label"
            else:
                tail = f"best: {best[0]} fits {best[1]}"
            message = (
                f"{self._summary(job, scope)}; no value of label {failure.key} has room for all "
                f"{failure.scope.total} pods{where} ({tail})"
            )
        return Blocked(
            ns,
            name,
            REASON_TOPOLOGY,
            message,
            job.need,
            fitting,
            topology_key=failure.key,
            best_domain=best,
            unsatisfiable=self._unsatisfiable(scope),
        )

    def _reasons_in(self, shape: Shape, placer: Placer) -> tuple[tuple[tuple[str, int], ...], int]:
        """The shape's per-reason node counts and nodes with room, corrected for what the trial took."""
        counts = dict(shape.reasons)
        room = len(shape.fits)
        trial = placer.trial
        for name, free in trial.free.items():
            rec = self.board.nodes[name]
            static = shape.sig.reasons.get(name)
            before, _ = shape.verdict(static, rec.free)
            after, _ = shape.verdict(static, free)
            if before != after:
                room += int(before is None) - int(after is None)
                if before:
                    counts[before] = counts.get(before, 0) - 1
                if after:
                    counts[after] = counts.get(after, 0) + 1
        return tuple(sorted((k, n) for k, n in counts.items() if n > 0)), room

    def _blocked(
        self,
        e: _Entry,
        job: _Job,
        scope: Scope,
        fitting: int,
        bottleneck: Shape | None,
        counts: tuple[tuple[str, int], ...],
        room: int,
    ) -> Blocked:
        """ "needs 10 pods (...) in podgroup w; only 7 fit (on 2 nodes): 3 nodes cordoned, 2 nodes lack cpu".
        With several kinds of pods, the node counts are for the kind that ran out of room."""
        why = explain.node_reasons(counts)
        nodes = "node" if room == 1 else "nodes"
        message = f"{self._summary(job, scope)}; only {fitting} fit"
        if (
            bottleneck is not None
            and len({s.request for s in scope.demand} | {p.requests for p in scope.pinned_all}) > 1
        ):
            groups = explain.names(b.group for b in _batches(scope) if b.shape is bottleneck)
            noun = "podgroup" if "," not in groups else "podgroups"
            message += f"; {noun} {groups} ({explain.amounts(bottleneck.request)}) fits on {room} {nodes}"
        else:
            message += f" (on {room} {nodes})"
        if counts:
            message += f": {why}"
        unsatisfiable = self._unsatisfiable(scope)
        if unsatisfiable:
            message += " (it would not fit even on the empty cluster)"
        ns, name = e.gang.key
        return Blocked(
            ns, name, REASON_UNSCHEDULABLE, message, job.need, fitting, counts, unsatisfiable=unsatisfiable
        )

    def _held(self, e: _Entry, hold: _Hold, now: float) -> Blocked:
        if hold.replacements:
            whom, verb = f"the replacement pods of {hold.gang.label}", "have"
        else:
            whom, verb = hold.gang.label, "has"
        message = f"held back: capacity is kept for {whom}, which {verb} waited {now - hold.since:.0f} s"
        ns, name = e.gang.key
        return Blocked(ns, name, REASON_HELD, message, e.minimum.need, 0, held_for=hold.gang.key)

    # --- one by one -----------------------------------------------------------------------------------

    def _place_each(
        self, e: _Entry, pods: Sequence[PodInfo], placed: dict[PodKey, str]
    ) -> list[tuple[PodInfo, str]]:
        """Release what fits of `pods` (gated pods of an admitted gang), keeping each podgroup inside the
        topology domain its placed pods already chose. While a constrained scope has no placed pod yet,
        one pod goes first (best fit) and chooses the domain for the others."""
        board = self.board
        placer = Placer(board, partial=True)
        assigned = placer.trial.assigned
        scope_nodes = self._placed_nodes(e, placed)
        group_of = {p.key: g.group.name for g in e.members.groups for p in g.gated}
        by_group: dict[str, list[PodInfo]] = {}
        for pod in pods:
            by_group.setdefault(group_of[pod.key], []).append(pod)
        for group in e.gang.podgroups:
            group_pods = by_group.get(group.name)
            if not group_pods:
                continue
            runs: dict[Shape | None, list[PodInfo]] = {}
            for pod in group_pods:
                runs.setdefault(None if pod.pin else board.shape(pod.view, pod.requests), []).append(pod)
            order = sorted(
                runs.items(), key=lambda sr: (sr[0] is not None, -(sr[0].share if sr[0] else 0), sr[1][0].key)
            )
            for shape, run in order:
                done = 0
                while done < len(run):
                    required, preferred, undecided = self._domains_for(e, group.name, scope_nodes)
                    chunk = run[done : done + 1] if undecided or shape is None else run[done:]
                    before = len(assigned)
                    if shape is None:
                        placer.place_pinned(None, chunk[0], required)
                    elif preferred is None:
                        placer.place_batch(shape, chunk, required)
                    else:
                        first = placer.place_batch(
                            shape, chunk, preferred & required if required is not None else preferred
                        )
                        if first < len(chunk):
                            placer.place_batch(shape, chunk[first:], required)
                    for pod, node in assigned[before:]:
                        scope_nodes[pod.key] = node
                    progress = len(assigned) - before
                    if progress == 0 and shape is not None:
                        break  # identical pods: if one does not fit now, none does
                    done += max(progress, 1) if shape is None else progress
                    if progress < len(chunk) and shape is not None:
                        break
        board.apply(placer.trial.free)
        return list(assigned)

    def _placed_nodes(self, e: _Entry, placed: dict[PodKey, str]) -> dict[PodKey, str]:
        """Node of every pod of the gang that is bound, reserved, or placed in this pass."""
        nodes = dict(placed)
        for group in e.members.groups:
            for pod in group.bound:
                if pod.node_name:
                    nodes[pod.key] = pod.node_name
            for pod in group.released:
                name = self.model.node_for_hostname(pod.pin) if pod.pin else None
                if name is not None:
                    nodes[pod.key] = name
        return nodes

    def _domains_for(
        self, e: _Entry, group: str, nodes: dict[PodKey, str]
    ) -> tuple[set[str] | None, set[str] | None, bool]:
        """(required, preferred, undecided) for more pods of `group`: for each enclosing scope with a pack
        constraint, the nodes of the domain its placed pods are in; `undecided` when some such scope has no
        placed pod yet (so the next pod decides its domain)."""
        gang = e.gang
        packs = [(gang.pack, [g.name for g in gang.podgroups])]
        packs += [(c.pack, list(c.podgroups)) for c in gang.group_configs if group in c.podgroups]
        packs += [(g.pack, [g.name]) for g in gang.podgroups if g.name == group]
        required: set[str] | None = None
        preferred: set[str] | None = None
        undecided = False
        member_groups = {g.group.name: g for g in e.members.groups}
        for pack, groups in packs:
            key = (pack.required or pack.preferred) if pack is not None else None
            if pack is None or key is None:
                continue
            value = None
            for pod_key in sorted(
                p.key
                for name in groups
                if name in member_groups
                for p in (
                    *member_groups[name].bound,
                    *member_groups[name].released,
                    *member_groups[name].gated,
                )
                if p.key in nodes
            ):
                rec = self.board.nodes.get(nodes[pod_key])
                value = rec.info.labels.get(key) if rec is not None else None
                if value is not None:
                    break
            if value is None:
                undecided = True
                continue
            domain = self.board.domain(key, value)
            if pack.required:
                required = set(domain) if required is None else required & domain
            else:
                preferred = set(domain) if preferred is None else preferred & domain
        return required, preferred, undecided


def _scopes(scope: Scope) -> Iterable[Scope]:
    yield scope
    for sub in scope.subscopes:
        yield from _scopes(sub)


def _batches(scope: Scope) -> Iterable[Batch]:
    for each in _scopes(scope):
        yield from each.batches


def _generation(model: ClusterModel, key: PodKey) -> int:
    pod = model.pods.get(key)
    return pod.generation if pod is not None else -1


def plan(
    model: ClusterModel,
    gangs: Iterable[Gang],
    now: float,
    config: PlanConfig | None = None,
    settled: bool = True,
) -> Decision:
    """One full admission pass from scratch (see the module docstring)."""
    planner = Planner(config)
    planner.bind(model, listen=False)
    return planner.plan(gangs, now, settled)


__all__ = [
    "Admit",
    "Blocked",
    "Decision",
    "PlanConfig",
    "Planner",
    "Release",
    "Reset",
    "Unadmit",
    "Waiting",
    "plan",
]


def _record(e: _Entry) -> RecordAdmittedOnCreate:
    placed = [p for g in e.members.groups for p in (*g.bound, *g.released)]
    nodes = {p.node_name or p.pin for p in placed}
    pods = f"{len(placed)} pod{'s' if len(placed) != 1 else ''}"
    where = f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}"
    message = f"{pods} placed on {where} (admitted as they were created)"
    return RecordAdmittedOnCreate(e.gang.key[0], e.gang.key[1], message)

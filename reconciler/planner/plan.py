"""Snapshot in, actions out: the whole decision for one PodCliqueSet in one pure function."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from grove_api import conditions as cond
from grove_api import constants as c
from grove_api import hashing, naming, podgang
from grove_api.refs import Ref
from grove_api.validation.actionable import unactionable

from . import children, gangs, registry, status, termination, update
from .actions import Action, Apply, Create, Delete, PatchStatus, RemoveFinalizer, ReplaceSpec
from .pods import delete_podclique, orphan_deletes, pod_actions
from .registry import ChildKind, Sync
from .snapshot import Obj, Snapshot, is_deleting, labels_of, name_of, uid_of

# Fields a PodClique's or scaling group's owner sets only at creation (kubectl scale / HPAs own them later).
_OWNED_BY_SCALERS = ("replicas",)


# A rolling update waiting for capacity looks again this often (node changes do not wake the reconciler).
ROLLOUT_RETRY_SECONDS = 5.0
# A PodClique status change that only reports progress (counts, conditions turning good, a new PodClique's
# first status; status.may_wait) is held back; it goes at once when it brings the PodClique to rest
# (status.at_rest) or with a change that reports trouble, and otherwise when its hold runs out. A hold's
# length is fixed when it begins: STATUS_HOLD_SECONDS, or as long as the pods of all the PodCliques whose
# holds begin in the same pass take to start at PODS_STARTED_PER_SECOND, whichever is longer (a 1,000-pod
# start: 25 s). Pods of a gang are bound, started and become Ready within moments of each other, and each step
# written alone is a write per PodClique per step: a PodClique status write costs the apiserver about twice a
# pod create, and a 1,000-pod start wrote ~1,500 of them with a fixed 2 s hold (~2,000 at 1 s, ~1,000 with a
# hold that shrank as PodCliques came to rest), slowing the very pods they report on; held until each
# PodClique is at rest, it is one write per PodClique.
STATUS_HOLD_SECONDS = 2.0
# kube-scheduler binds at most 50 pods a second at its default client rate; starting takes a little longer.
PODS_STARTED_PER_SECOND = 40.0


@dataclass(frozen=True)
class Event:
    """Something a user wants to see in `kubectl describe` of `obj` (the PodCliqueSet or a child)."""

    obj: Obj
    type: str
    reason: str
    message: str


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None
    events: list[Event] = field(default_factory=list)
    # PodCliques whose progress-only status change waits, and how many seconds are left on each hold
    held_statuses: Mapping[str, float] = field(default_factory=dict)
    # Why the spec cannot be acted on (`cannot_act`): for lastErrors
    invalid: list[str] = field(default_factory=list)


def contains(existing: Any, desired: Any) -> bool:
    """Everything in `desired` is in `existing` (the apiserver may have added defaults)."""
    if existing == desired:  # the usual case, compared at C speed (dicts of unequal size fail at once)
        return True
    if isinstance(desired, dict):
        return isinstance(existing, dict) and all(
            k in existing and contains(existing[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(desired)
            and all(map(contains, existing, desired))
        )
    return bool(existing == desired)


def _for_apply(obj: Obj) -> Obj:
    """The intent we server-side apply to an existing object: without the fields scalers own."""
    if obj["kind"] in (c.KIND_PODCLIQUE, c.KIND_PODCLIQUESCALINGGROUP):
        obj = {**obj, "spec": {k: v for k, v in obj["spec"].items() if k not in _OWNED_BY_SCALERS}}
    return obj


def sync(snap: Snapshot, desired: Iterable[Obj], existing: Mapping[str, Obj]) -> list[Action]:
    """Create what is missing, apply what differs; nothing when everything matches (no write on re-apply).
    A same-named object that we do not control is left alone."""
    actions: list[Action] = []
    for obj in desired:
        current = existing.get(obj["metadata"]["name"])
        if current is None:
            actions.append(Create(obj))
        elif snap.controls(current) and not is_deleting(current) and not contains(current, _for_apply(obj)):
            actions.append(Apply(_for_apply(obj)))
    return actions


def sync_whole_spec(snap: Snapshot, desired: Iterable[Obj], existing: Mapping[str, Obj]) -> list[Action]:
    """`sync` for a kind whose spec is all ours but for what scalers own (PodClique, scaling group, PodGang:
    no other writer; their defaults are the PodCliqueSet's, already in the desired state): a spec that has
    fields the desired one no longer has (an env var taken out of the template, topology constraints of a
    binding that lost a level) is replaced whole, keeping the scaled `replicas`; `sync`'s apply could not
    remove them."""
    actions = sync(snap, desired, existing)
    applied = {name_of(a.obj) for a in actions if isinstance(a, Apply)}
    for obj in desired:
        current = existing.get(name_of(obj))
        if current is None or name_of(obj) in applied or not snap.controls(current) or is_deleting(current):
            continue
        spec = {**obj["spec"], **{k: v for k, v in current["spec"].items() if k in _OWNED_BY_SCALERS}}
        if current.get("spec") != spec:
            actions.append(ReplaceSpec(Ref.of(obj), spec, reason="fields no longer desired"))
    return actions


def sync_kind(
    snap: Snapshot, kind: ChildKind, desired: Iterable[Obj], existing: Mapping[str, Obj]
) -> list[Action]:
    """`sync` or `sync_whole_spec`, as the kind's registry entry says."""
    if kind.sync is Sync.APPLY:
        return sync(snap, desired, existing)
    if kind.sync is Sync.REPLACE_SPEC:
        return sync_whole_spec(snap, desired, existing)
    raise ValueError(f"{kind.kind} is never synced in place")


def prune(
    snap: Snapshot, kind: ChildKind, desired: Iterable[Obj], existing: Mapping[str, Obj]
) -> list[Action]:
    """Delete children that are no longer wanted (scaled-in replicas, removed groups), if they are ours."""
    wanted = {o["metadata"]["name"] for o in desired}
    return [
        Delete(
            Ref(kind.api_version, kind.kind, str(o["metadata"].get("namespace", "")), name),
            uid_of(o),
            reason="no longer desired",
        )
        for name, o in existing.items()
        if name not in wanted and not is_deleting(o) and snap.controls(o)
    ]


def _pcs_ref(snap: Snapshot) -> Ref:
    return Ref(c.API_VERSION, c.KIND_PODCLIQUESET, snap.namespace, snap.name)


# A teardown pass that deleted something looks again this soon to take the finalizer off (the deletions'
# events wake it sooner).
TEARDOWN_RECHECK_SECONDS = 1.0


def teardown(snap: Snapshot) -> Plan:
    """The PodCliqueSet is being deleted: delete its pods and children ourselves, then let it go. (The
    garbage collector would get there too, through ownerReferences, but at its 20 requests/s and only after
    its discovery has caught up with our CRDs, and an apiserver restart can hold it up for minutes.) The
    finalizer comes off only in a pass with nothing left to delete (every child gone or being deleted): a
    delete that failed (a 403 while the apiserver's RBAC warms up after a restart) is tried again, not left
    to the garbage collector with the PodCliqueSet gone."""
    plan = Plan()
    for kind in sorted(registry.CHILD_KINDS, key=lambda k: k.teardown):
        plan.actions += [
            Delete(
                Ref(kind.api_version, kind.kind, snap.namespace, name),
                uid_of(o),
                reason="PodCliqueSet deleted",
            )
            for name, o in snap.existing(kind.key).items()
            if not is_deleting(o) and (kind.controlled_by_podclique or snap.controls(o))
        ]
    if plan.actions:
        plan.requeue_after = TEARDOWN_RECHECK_SECONDS
    elif c.FINALIZER_PODCLIQUESET in (snap.pcs["metadata"].get("finalizers") or []):
        plan.actions.append(
            RemoveFinalizer(
                _pcs_ref(snap), c.FINALIZER_PODCLIQUESET, str(snap.pcs["metadata"].get("resourceVersion", ""))
            )
        )
    return plan


def _finalizer(snap: Snapshot) -> list[Action]:
    """Our finalizer on the PodCliqueSet, when it lacks it (so its deletion waits for the teardown)."""
    if c.FINALIZER_PODCLIQUESET in (snap.pcs["metadata"].get("finalizers") or []):
        return []
    meta = {"name": snap.name, "namespace": snap.namespace, "finalizers": [c.FINALIZER_PODCLIQUESET]}
    return [Apply({"apiVersion": c.API_VERSION, "kind": c.KIND_PODCLIQUESET, "metadata": meta})]


def cannot_act(snap: Snapshot, problems: list[str]) -> Plan:
    """A stored spec the reconciler cannot act on (grove_api.validation.actionable): nothing is created,
    changed or deleted; the PodCliqueSet says why (condition SpecInvalid, an Event when it turns True,
    lastErrors) and is not looked at again until it changes. Its deletion still tears everything down."""
    current = snap.pcs.get("status") or {}
    was = cond.get_condition(current.get("conditions"), status.CONDITION_SPEC_INVALID)
    state = status.spec_invalid_condition(problems, had=was)
    assert state is not None  # there are problems
    desired = {
        "observedGeneration": snap.pcs["metadata"].get("generation"),
        "conditions": cond.set_condition(
            current.get("conditions"), status.CONDITION_SPEC_INVALID, *state, snap.now
        ),
    }
    result = Plan(actions=_finalizer(snap), invalid=problems)
    result.actions += _status_action(_typed(snap.pcs, c.API_VERSION, c.KIND_PODCLIQUESET), desired)
    if was is None or was.get("status") != cond.TRUE:
        message = f"the reconciler cannot act on this spec, and creates nothing until it is fixed: {state[2]}"
        result.events.append(Event(snap.pcs, "Warning", status.CONDITION_SPEC_INVALID, message))
    return result


def plan(snap: Snapshot) -> Plan:
    if is_deleting(snap.pcs):
        return teardown(snap)
    problems = unactionable(snap.pcs)
    if problems:
        return cannot_act(snap, [str(p) for p in problems])
    result = Plan()
    actions = result.actions
    actions += _finalizer(snap)
    for kind in registry.CHILD_KINDS:  # the kinds with a planner module of their own (registry.py)
        if kind.desired is None:
            continue  # structural: below
        desired = kind.desired(snap)
        existing = snap.existing(kind.key)
        actions += sync_kind(snap, kind, desired, existing)
        if kind.prune is not None:
            actions += prune(snap, kind, desired, _owned(existing, kind.prune))
    standalone = children.standalone_podcliques(snap)
    groups = children.scaling_groups(snap)
    members = children.group_member_podcliques(snap)
    wanted = {o["metadata"]["name"] for o in standalone + members}
    renewed = {
        name_of(o): _renewed(snap.podcliques[name_of(o)], o)
        for o in standalone + members
        if name_of(o) in snap.podcliques
    }
    generation = hashing.generation_hash(snap.pcs)
    seed = f"{snap.now.isoformat()}/{snap.nonce}"
    ends = termination.decide(snap, _updating_groups(snap))
    doomed = _terminated_podcliques(snap, ends)
    rollout = update.plan_update(
        snap, generation, renewed, frozenset(ends.terminated), frozenset(ends.counting)
    )
    # RollingRecreate replaces a scaling group's member PodCliques whole (docs/termination-and-updates.md,
    # "Rolling updates", step 2): an outdated member is left as it is until the update deletes it, then
    # created again from the new template.
    kept = {
        name
        for name in renewed
        if update.rolling(snap)
        and labels_of(snap.podcliques[name]).get(c.LABEL_COMPONENT) == c.COMPONENT_PCSG_PODCLIQUE
        and labels_of(snap.podcliques[name]).get(c.LABEL_POD_TEMPLATE_HASH)
        != labels_of(renewed[name]).get(c.LABEL_POD_TEMPLATE_HASH)
    }
    actions += sync_kind(
        snap,
        registry.PODCLIQUES,
        [o for o in standalone + members if name_of(o) not in kept | doomed.keys()],
        snap.podcliques,
    )
    actions += sync_kind(snap, registry.SCALING_GROUPS, groups, snap.scaling_groups)
    actions += prune(snap, registry.SCALING_GROUPS, groups, snap.scaling_groups)
    unwanted = {name_of(q): "scaled in" for q in _unwanted_podcliques(snap, standalone + members)}
    for name, reason in {**unwanted, **doomed}.items():
        pclq = snap.podcliques[name]
        actions += delete_podclique(pclq, snap.pods_of(pclq), reason)
    for name, pclq in snap.podcliques.items():
        if (
            name in wanted
            and name not in doomed
            and not is_deleting(pclq)
            and name not in snap.pending
            and snap.controls(pclq)
        ):
            actions += pod_actions(pclq if name in kept else renewed[name], snap.pods_of(pclq), seed)
    for obj in standalone + members:  # new PodCliques: their pods too (the executor fills in the owner uid)
        if name_of(obj) not in snap.podcliques:
            actions += pod_actions(obj, [], seed)
    actions += rollout.actions
    actions += orphan_deletes(snap)
    desired_gangs = gangs.podgangs(snap, _planned_pods(actions))
    actions += sync_kind(snap, registry.PODGANGS, desired_gangs, snap.podgangs)
    actions += prune(snap, registry.PODGANGS, desired_gangs, snap.podgangs)
    flagged = {name_of(g) for t in ends.replicas for g in _replica_groups(snap, t.replica)}
    written, held, hold_wait = _hold_progress(
        snap, statuses(snap, wanted - doomed.keys(), desired_gangs, rollout, flagged)
    )
    actions += written
    result.actions = _unique(actions)
    result.events = _events(snap, ends, rollout)
    result.held_statuses = held
    waits = [
        w for w in (ends.wait, ROLLOUT_RETRY_SECONDS if rollout.waiting else None, hold_wait) if w is not None
    ]
    result.requeue_after = min(waits) if waits else None
    return result


def _hold_progress(
    snap: Snapshot, actions: list[Action]
) -> tuple[list[Action], dict[str, float], float | None]:
    """The status actions to send now; the PodCliques whose progress-only change waits, with the seconds
    left on each hold (see STATUS_HOLD_SECONDS; `snap.status_holds`: the seconds left on the holds already
    running); and when to look again."""

    def progress_only(action: PatchStatus) -> bool:
        if action.ref.kind != c.KIND_PODCLIQUE:
            return False
        pclq = snap.podcliques.get(action.ref.name, {})
        return status.may_wait(pclq.get("status"), action.status) and not status.at_rest(pclq, action.status)

    waiting = [a.ref.name for a in actions if isinstance(a, PatchStatus) and progress_only(a)]
    starting = [n for n in waiting if n not in snap.status_holds]
    pods = sum(status.wanted_replicas(snap.podcliques.get(n, {})) for n in starting)
    hold = max(STATUS_HOLD_SECONDS, pods / PODS_STARTED_PER_SECOND)
    held = {n: left for n in waiting if (left := snap.status_holds.get(n, hold)) > 0}
    send = [
        a
        for a in actions
        if not (isinstance(a, PatchStatus) and a.ref.kind == c.KIND_PODCLIQUE and a.ref.name in held)
    ]
    return send, held, min(held.values()) if held else None


def _planned_pods(actions: Iterable[Action]) -> dict[str, list[str]]:
    """PodClique -> names of the pods the actions create."""
    planned: dict[str, list[str]] = {}
    for action in actions:
        if isinstance(action, Create) and action.obj["kind"] == "Pod":
            meta = action.obj["metadata"]
            planned.setdefault(meta["labels"][c.LABEL_PODCLIQUE], []).append(meta["name"])
    return planned


def _status_action(obj: Obj, desired: Obj) -> list[Action]:
    patch = status.status_patch(obj.get("status"), desired)
    if patch is None:
        return []
    meta = obj["metadata"]
    return [
        PatchStatus(
            Ref(obj.get("apiVersion") or "", obj.get("kind") or "", meta.get("namespace", ""), meta["name"]),
            patch,
        )
    ]


def statuses(
    snap: Snapshot,
    wanted_cliques: set[str],
    desired_gangs: list[Obj],
    rollout: update.Rollout | None = None,
    gang_terminated: set[str] | frozenset[str] = frozenset(),
) -> list[Action]:
    """Status of every existing child and of the PodCliqueSet, written only where it changed. Computed from
    this snapshot: what this pass creates shows up in the next pass's status. `rollout` carries the
    update's progress; `gang_terminated` names the scaling groups whose replica gang termination recreates
    this pass (they get GangTerminationInProgress)."""
    rollout = rollout or update.Rollout()
    generation = hashing.generation_hash(snap.pcs)
    hashes = snap.template_hashes
    actions: list[Action] = []
    live_cliques = [
        q
        for n, q in snap.podcliques.items()
        if n in wanted_cliques and not is_deleting(q) and snap.controls(q)
    ]
    # The children as this pass leaves them: their owners' statuses are computed from these, so a change
    # reaches the scaling group and the PodCliqueSet in the same pass (and does not wait for a held write).
    fresh: dict[str, Obj] = {}
    for pclq in live_cliques:
        fresh[name_of(pclq)] = pclq
        if name_of(pclq) in snap.pending:
            continue  # its pods are being created or deleted: counted once the cache has them
        labels = labels_of(pclq)
        # The template's hash, not the PodClique's label: in the pass after a template change the label is
        # still the old one, and the current hashes must not claim the new generation for old pods.
        clique = children.template_clique_of(snap, name_of(pclq))
        desired = status.podclique_status(
            _typed(pclq, c.API_VERSION, c.KIND_PODCLIQUE),
            snap.pods_of(pclq),
            expected_hash=hashes.get(
                str((clique or {}).get("name")), labels.get(c.LABEL_POD_TEMPLATE_HASH, "")
            ),
            pcs_generation_hash=generation,
            standalone=labels.get(c.LABEL_COMPONENT) == c.COMPONENT_PCS_PODCLIQUE,
            pcs_name=snap.name,
            now=snap.now,
            update_progress=rollout.clique_progress.get(name_of(pclq)),
        )
        actions += _status_action(_typed(pclq, c.API_VERSION, c.KIND_PODCLIQUE), desired)
        fresh[name_of(pclq)] = status.with_status(pclq, desired)
    groups = []
    for pcsg in snap.scaling_groups.values():
        if is_deleting(pcsg) or not snap.controls(pcsg):
            continue
        members = [q for q in fresh.values() if labels_of(q).get(c.LABEL_PCSG) == name_of(pcsg)]
        desired = status.scaling_group_status(
            pcsg,
            members,
            pcs_generation_hash=generation,
            pcs_name=snap.name,
            now=snap.now,
            expected_hashes=hashes,
            update_progress=rollout.group_progress.get(name_of(pcsg)),
            gang_terminated=name_of(pcsg) in gang_terminated,
        )
        actions += _status_action(_typed(pcsg, c.API_VERSION, c.KIND_PODCLIQUESCALINGGROUP), desired)
        groups.append(status.with_status(pcsg, desired))
    standalone = [
        q for q in fresh.values() if labels_of(q).get(c.LABEL_COMPONENT) == c.COMPONENT_PCS_PODCLIQUE
    ]
    desired_pcs = status.podcliqueset_status(
        snap.pcs,
        standalone,
        groups,
        generation_hash=generation,
        now=snap.now,
        podgangs=[g for g in snap.podgangs.values() if snap.controls(g)],
        update_progress=rollout.progress,
        update_condition=rollout.condition,
        conflicts=snap.conflicts,
    )
    actions += _status_action(_typed(snap.pcs, c.API_VERSION, c.KIND_PODCLIQUESET), desired_pcs)
    if not snap.gang_admission:  # else the gang admitter owns the PodGangs' status (grove_api.podgang)
        actions += _podgang_statuses(snap, desired_gangs)
    return actions


def _podgang_statuses(snap: Snapshot, desired_gangs: list[Obj]) -> list[Action]:
    """The Initialized condition of every existing PodGang, while gang admission is off."""
    actions: list[Action] = []
    pods = {name_of(p): p for p in snap.pods}
    for gang in desired_gangs:
        existing = snap.podgangs.get(gang["metadata"]["name"])
        if existing is None or is_deleting(existing) or not snap.controls(existing):
            continue
        if any(g["name"] in snap.pending for g in gang["spec"]["podgroups"]):
            continue  # its pods are being created or deleted: judged once the cache has them
        # Pods this pass only creates are not in the snapshot yet: they count from the next pass on.
        created = podgang.all_pods_created(gang, snap.podcliques.get, pods.get)
        desired = status.podgang_status(existing, created, snap.now)
        ours = [
            x
            for x in (existing.get("status") or {}).get("conditions") or []
            if x.get("type") == c.CONDITION_PODGANG_INITIALIZED
        ]
        if status.status_patch({"conditions": ours}, desired) is not None:
            ref = Ref(c.SCHEDULER_API_VERSION, c.KIND_PODGANG, snap.namespace, name_of(existing))
            actions.append(PatchStatus(ref, desired, apply=True))
    return actions


def _typed(obj: Obj, api_version: str, kind: str) -> Obj:
    """List responses omit apiVersion/kind on items."""
    return obj if obj.get("kind") else {**obj, "apiVersion": api_version, "kind": kind}


def _owned(objs: Mapping[str, Obj], component: str) -> dict[str, Obj]:
    return {n: o for n, o in objs.items() if labels_of(o).get(c.LABEL_COMPONENT) == component}


def _unwanted_podcliques(snap: Snapshot, desired: list[Obj]) -> list[Obj]:
    """Our PodCliques that are no longer desired (scaled-in replicas, removed groups), deleted directly
    rather than left to the garbage collector."""
    wanted = {o["metadata"]["name"] for o in desired}
    return [
        pclq
        for name, pclq in snap.podcliques.items()
        if name not in wanted and not is_deleting(pclq) and snap.controls(pclq)
    ]


def _renewed(existing: Obj, desired: Obj) -> Obj:
    """An existing PodClique as this pass wants it (labels, annotations, spec; its replicas kept), with
    its identity: what its new pods are built from."""
    spec = dict(desired["spec"])
    if existing.get("spec", {}).get("replicas") is not None:
        spec["replicas"] = existing["spec"]["replicas"]
    meta = {
        **existing["metadata"],
        "labels": desired["metadata"]["labels"],
        "annotations": desired["metadata"].get("annotations") or {},
    }
    return {**existing, "metadata": meta, "spec": spec}


def _updating_groups(snap: Snapshot) -> frozenset[str]:
    """Scaling groups with a rolling update in progress (as stored): their own gang termination is off."""
    return frozenset(
        name
        for name, g in snap.scaling_groups.items()
        if (p := (g.get("status") or {}).get("updateProgress")) and not p.get("updateEndedAt")
    )


def _replica_groups(snap: Snapshot, replica: int) -> list[Obj]:
    names = {naming.scaling_group(snap.name, replica, g["name"]) for g in children.group_configs(snap)}
    return [g for n, g in snap.scaling_groups.items() if n in names and not is_deleting(g)]


def _terminated_podcliques(snap: Snapshot, ends: termination.Terminations) -> dict[str, str]:
    """PodCliques gang termination deletes this pass, with the reason."""
    out: dict[str, str] = {}
    for t in ends.replicas:
        for name, q in snap.podcliques.items():
            labels = labels_of(q)
            if (
                labels.get(c.LABEL_PCS_REPLICA_INDEX) == str(t.replica)
                and not is_deleting(q)
                and snap.controls(q)
            ):
                out[name] = f"gang termination of replica {t.replica}"
    for g in ends.group_replicas:
        for name, q in snap.podcliques.items():
            labels = labels_of(q)
            if (
                labels.get(c.LABEL_PCSG) == g.group
                and labels.get(c.LABEL_PCSG_REPLICA_INDEX) == str(g.replica)
                and not is_deleting(q)
                and snap.controls(q)
            ):
                out[name] = f"gang termination of {g.group} replica {g.replica}"
    return out


def _unique(actions: list[Action]) -> list[Action]:
    """One delete per object (scale-in, gang termination and the update may pick the same pod)."""
    seen: set[Ref] = set()
    out: list[Action] = []
    for action in actions:
        if isinstance(action, Delete):
            if action.ref in seen:
                continue
            seen.add(action.ref)
        out.append(action)
    return out


def _events(snap: Snapshot, ends: termination.Terminations, rollout: update.Rollout) -> list[Event]:
    delay = snap.template.get("terminationDelay")
    out = [
        Event(
            snap.pcs,
            "Warning",
            "PodCliqueSetReplicaDeleteSuccessful",
            f"gang termination: replica {t.replica} was below its minimum for longer than terminationDelay "
            f"({delay}); every PodClique of it is recreated. " + "; ".join(b.describe() for b in t.breaches),
        )
        for t in ends.replicas
    ]
    for g in ends.group_replicas:
        pcsg = snap.scaling_groups.get(g.group)
        message = (
            f"gang termination: replica {g.replica} was below its minimum for longer than terminationDelay "
            f"({delay}); its PodCliques are recreated. " + "; ".join(b.describe() for b in g.breaches)
        )
        for obj in (pcsg, snap.pcs):
            if obj is not None:
                out.append(
                    Event(
                        _typed(obj, c.API_VERSION, obj.get("kind") or c.KIND_PODCLIQUESCALINGGROUP),
                        "Warning",
                        "PodCliqueScalingGroupReplicaDeleteSuccessful",
                        message,
                    )
                )
    out += [Event(snap.pcs, type_, reason, message) for type_, reason, message in rollout.events]
    return out

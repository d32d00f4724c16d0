"""Rolling updates (docs/termination-and-updates.md, "Rolling updates"): a change of the PodCliqueSet's
generation hash rolls the new pod templates through its replicas.

* **RollingRecreate** (default): one PodCliqueSet replica at a time; inside it, each standalone PodClique
  replaces one Ready pod at a time and each scaling group one replica (all its member PodCliques) at a
  time, in parallel across PodCliques and groups. Old pods that are not Ready go at once (they serve
  nothing). A replica is done when none of its pods is on an old template and every PodClique has its
  minimum Ready (every scaling group its minimum available); then the next replica is taken: one with a
  pod being replaced or not Ready, else one whose update already began, else one with no pod scheduled,
  else one whose gang is breached, else the lowest. A new generation in the middle keeps the replica being updated.
* **OnDelete**: nothing is deleted; PodCliques get the new template at once, so a pod deleted by a user (or
  replaced for failing, or added by scale-out) comes back on it, and scale-in takes outdated pods first.

Where Grove is fragile, this module decides from what exists rather than from remembered selections: what
is "in flight" (a pod or scaling-group replica deleted and not yet back and Ready) is read from the pods, so
an operator restarted mid-update carries on exactly where the cluster is, and a scale-out or scale-in during
the update needs no special case: new pods and replicas are built from the new template and are
never recycled again, vanished ones are simply no longer waited for. A gang that waits for admission
(nothing of it runs) holds nothing up: its pods are rebuilt on the new template and the update moves on
rather than waiting for capacity that is not the update's to wait for.

**No capacity, no delete.** Grove deletes first and hopes the replacement finds room; on a full cluster
that takes a serving pod down for nothing (e2e RU-10 stalls with one pod gone). Here, when the gang
admitter runs, a Ready pod (or a scaling-group replica with bound pods) is only deleted when its
replacement fits (`Snapshot.room`: the admitter's free-capacity model, counting the room the old pod gives
back). Otherwise nothing is touched, the PodCliqueSet's `UpdateInProgress` condition says
`WaitingForCapacity` and what does not fit, and the update goes on when capacity returns. So an update never
leaves a gang partly admitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from grove_api import conditions as cond
from grove_api import constants as c
from grove_api import naming, podstate

from . import status
from .actions import Action, Delete
from .children import group_configs, standalone_cliques, template_clique_of
from .pods import build_pod, delete_podclique, pod_index, pod_ref
from .snapshot import Obj, PodKey, Snapshot, is_deleting, labels_of, name_of, uid_of

CONDITION_UPDATE_IN_PROGRESS: Final = status.CONDITION_UPDATE_IN_PROGRESS
REASON_UPDATING: Final = "Updating"
REASON_WAITING_FOR_CAPACITY: Final = "WaitingForCapacity"
REASON_UPDATE_COMPLETE: Final = "UpdateComplete"


def strategy(snap: Snapshot) -> str:
    return str((snap.spec.get("updateStrategy") or {}).get("type") or c.UPDATE_ROLLING_RECREATE)


def rolling(snap: Snapshot) -> bool:
    return strategy(snap) == c.UPDATE_ROLLING_RECREATE


@dataclass
class Rollout:
    """What the update does this pass, and the status it reports."""

    progress: dict[str, Any] | None = None  # PodCliqueSet updateProgress (counts are added by status)
    actions: list[Action] = field(default_factory=list)
    clique_progress: dict[str, dict[str, Any]] = field(default_factory=dict)  # PodClique name -> progress
    group_progress: dict[str, dict[str, Any]] = field(default_factory=dict)  # scaling group -> progress
    condition: tuple[str, str, str] | None = None  # (status, reason, message) of UpdateInProgress
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message) on the PCS
    waiting: bool = False  # blocked on capacity: look again later (capacity changes do not wake us)

    @property
    def updating_groups(self) -> frozenset[str]:
        return frozenset(n for n, p in self.group_progress.items() if not p.get("updateEndedAt"))


# --- what a PodClique / a scaling-group replica looks like to the update -----------------------------


def _created(pod: Obj) -> str:
    return str(pod.get("metadata", {}).get("creationTimestamp") or "")


@dataclass
class _Clique:
    """A standalone PodClique's pods, split by template."""

    pclq: Obj
    expected: str
    old: list[Obj]  # live pods on another template, oldest first
    in_flight: bool  # a pod being replaced: terminating, missing, or new and not Ready yet
    ready: int
    min_available: int
    waiting: bool  # its gang waits for admission: nothing runs, nothing to wait for

    @property
    def done(self) -> bool:
        return not self.old and not self.in_flight and (self.ready >= self.min_available or self.waiting)


def waiting_gang(snap: Snapshot, obj: Mapping[str, Any]) -> bool:
    """The gang of this PodClique has not been admitted (the admitter waits for capacity): its new pods
    are not replacements in flight, and the update does not wait for them to become Ready. Without gang
    admission (`snap.gang_admission` off) every gang counts as admitted."""
    if not snap.gang_admission:
        return False
    gang = snap.podgangs.get(labels_of(obj).get(c.LABEL_PODGANG, ""))
    return gang is None or not cond.is_true(
        (gang.get("status") or {}).get("conditions"), c.CONDITION_PODGANG_ADMITTED
    )


def _clique(snap: Snapshot, pclq: Obj, pods: list[Obj], expected: str) -> _Clique:
    live = [p for p in pods if podstate.is_active(p)]
    old = sorted(
        (p for p in live if podstate.template_hash(p) != expected), key=lambda p: (_created(p), name_of(p))
    )
    want = int(pclq.get("spec", {}).get("replicas") or 0)
    waiting = waiting_gang(snap, pclq)
    in_flight = (
        any(podstate.is_terminating(p) for p in pods)
        or len(live) < want
        or (
            not waiting
            and any(podstate.template_hash(p) == expected and not podstate.is_ready(p) for p in live)
        )
    )
    return _Clique(
        pclq,
        expected,
        old,
        in_flight,
        sum(1 for p in live if podstate.is_ready(p)),
        status.podclique_min_available(pclq),
        waiting,
    )


@dataclass
class _GroupReplica:
    index: int
    members: list[Mapping[str, Any]]  # member PodCliques that exist (terminating ones included)
    complete: bool  # every clique present and not terminating
    old: bool  # some member (or one of its pods) on another template
    available: bool  # every member has its minimum Ready
    bound: list[Obj]  # bound pods of the members
    waiting: bool  # its gang waits for admission


@dataclass
class _Group:
    pcsg: Obj
    replicas: list[_GroupReplica]

    @property
    def in_flight(self) -> bool:
        return any(not r.complete or (not r.old and not r.available and not r.waiting) for r in self.replicas)

    @property
    def available(self) -> int:
        return sum(1 for r in self.replicas if r.complete and r.available)

    @property
    def done(self) -> bool:
        need = min(status.scaling_group_min_available(self.pcsg), len(self.replicas))
        settled = sum(1 for r in self.replicas if r.complete and (r.available or r.waiting))
        return not any(r.old for r in self.replicas) and not self.in_flight and settled >= need


def _group(snap: Snapshot, pcsg: Obj, expected: Mapping[str, str]) -> _Group:
    members = [
        q
        for q in snap.podcliques.values()
        if snap.controls(q) and labels_of(q).get(c.LABEL_PCSG) == name_of(pcsg)
    ]
    cliques = list(pcsg.get("spec", {}).get("cliqueNames") or [])
    out = []
    for j, by_clique in status.group_members(pcsg, members).items():
        found = list(by_clique.values())
        live = {q: m for q, m in by_clique.items() if not is_deleting(m)}
        old = any(
            labels_of(m).get(c.LABEL_POD_TEMPLATE_HASH) != expected.get(q)
            or any(
                podstate.is_active(p) and podstate.template_hash(p) != expected.get(q)
                for p in snap.pods_of(m)
            )
            for q, m in live.items()
        )
        available = all(
            sum(1 for p in snap.pods_of(m) if podstate.is_active(p) and podstate.is_ready(p))
            >= status.podclique_min_available(m)
            for m in live.values()
        )
        bound = [p for m in found for p in snap.pods_of(m) if podstate.is_active(p) and podstate.is_bound(p)]
        waiting = any(waiting_gang(snap, m) for m in live.values())
        out.append(_GroupReplica(j, found, len(live) == len(cliques), old, available, bound, waiting))
    return _Group(pcsg, out)


@dataclass
class _Replica:
    index: int
    cliques: list[_Clique]
    groups: list[_Group]

    @property
    def done(self) -> bool:
        return all(q.done for q in self.cliques) and all(g.done for g in self.groups)

    @property
    def begun(self) -> bool:
        """Some pod already on the new template next to old ones: an update that was under way."""
        return any(
            q.old and len(q.old) < int(q.pclq["spec"].get("replicas") or 0) for q in self.cliques
        ) or any(any(r.old for r in g.replicas) and any(not r.old for r in g.replicas) for g in self.groups)

    @property
    def unsettled(self) -> bool:
        """A pod or scaling-group replica of it is being replaced or is not Ready: whatever the records say
        (a status not yet seen in the cache), this is the replica being updated, or a broken one."""
        return any(
            q.in_flight or q.ready < int(q.pclq["spec"].get("replicas") or 0) for q in self.cliques
        ) or any(g.in_flight or not all(r.available for r in g.replicas) for g in self.groups)

    def scheduled(self, snap: Snapshot) -> int:
        pods = [p for q in self.cliques for p in snap.pods_of(q.pclq)]
        pods += [p for g in self.groups for r in g.replicas for m in r.members for p in snap.pods_of(m)]
        return sum(1 for p in pods if podstate.is_scheduled(p))


def _replicas(snap: Snapshot, desired_cliques: Mapping[str, Obj]) -> list[_Replica]:
    hashes = snap.template_hashes
    out = []
    for i in range(snap.replicas):
        cliques = []
        for clique in standalone_cliques(snap):
            name = naming.standalone_podclique(snap.name, i, clique["name"])
            pclq = snap.podcliques.get(name)
            if pclq is None or is_deleting(pclq) or not snap.controls(pclq):
                continue
            cliques.append(
                _clique(snap, desired_cliques.get(name, pclq), snap.pods_of(pclq), hashes[clique["name"]])
            )
        groups = []
        for cfg in group_configs(snap):
            pcsg = snap.scaling_groups.get(naming.scaling_group(snap.name, i, cfg["name"]))
            if pcsg is not None and not is_deleting(pcsg) and snap.controls(pcsg):
                groups.append(_group(snap, pcsg, hashes))
        out.append(_Replica(i, cliques, groups))
    return out


# --- the pass ----------------------------------------------------------------------------------------


def plan_update(
    snap: Snapshot,
    generation: str,
    desired_cliques: Mapping[str, Obj],
    excluded: frozenset[int] = frozenset(),
    counting: frozenset[int] = frozenset(),
) -> Rollout:
    """The update's part of this pass. `desired_cliques`: the PodCliques as this pass wants them (pods
    are built from them); `excluded`: replicas gang termination recreates this pass; `counting`: replicas
    with a breach still counting down (updated early: docs/termination-and-updates.md, "Rolling updates",
    step 1)."""
    now = cond.format_time(snap.now)
    current = snap.pcs.get("status") or {}
    stored = current.get("currentGenerationHash")
    progress = dict(current.get("updateProgress") or {})
    progress = {
        k: v for k, v in progress.items() if k in ("updateStartedAt", "updateEndedAt", "currentlyUpdating")
    }
    out = Rollout()
    conditions = current.get("conditions")
    if stored is None or not progress:
        # A new PodCliqueSet: its first templates are no update (an already finished progress).
        started = snap.pcs["metadata"].get("creationTimestamp") or now
        out.progress = progress or {"updateStartedAt": started, "updateEndedAt": started}
        return out
    if stored != generation:
        # The update follows the newest templates, but the replica being updated stays the one: starting
        # over from the lowest would put a second replica in flight (templates patched in a row, RU-9).
        carried = [] if progress.get("updateEndedAt") else progress.get("currentlyUpdating") or []
        progress = {"updateStartedAt": now}
        if carried and carried[0].get("replicaIndex") is not None:
            progress["currentlyUpdating"] = [
                {"replicaIndex": carried[0]["replicaIndex"], "updateStartedAt": now}
            ]
        out.events.append(
            (
                "Normal",
                "RollingUpdateStarted",
                f"pod templates changed ({strategy(snap)}); generation {generation}",
            )
        )
    if not rolling(snap):
        if not progress.get("updateEndedAt"):
            progress = {"updateStartedAt": progress["updateStartedAt"], "updateEndedAt": now}
        out.progress = progress
        _on_delete_progress(snap, generation, out, now)
        if cond.get_condition(conditions, CONDITION_UPDATE_IN_PROGRESS) is not None or stored != generation:
            out.condition = (
                cond.FALSE,
                REASON_UPDATE_COMPLETE,
                "OnDelete: pods take the new template when they are replaced",
            )
        return out
    if progress.get("updateEndedAt"):
        out.progress = progress
        return out

    replicas = _replicas(snap, desired_cliques)
    selected = (progress.get("currentlyUpdating") or [{}])[0]
    index = selected.get("replicaIndex")
    by_index = {r.index: r for r in replicas}
    target = by_index.get(index) if index is not None and index not in excluded else None
    if target is None or target.done:
        if target is not None:  # finished: close its PodCliques' and groups' progress
            _roll_replica(snap, target, generation, desired_cliques, out, now)
            out.events.append(
                ("Normal", "ReplicaUpdated", f"replica {target.index} is on generation {generation}")
            )
        left = [r for r in replicas if not r.done and r.index not in excluded]
        if not left:
            out.progress = {"updateStartedAt": progress["updateStartedAt"], "updateEndedAt": now}
            out.condition = (
                cond.FALSE,
                REASON_UPDATE_COMPLETE,
                f"all {snap.replicas} replicas on generation {generation}",
            )
            out.events.append(
                (
                    "Normal",
                    "RollingUpdateCompleted",
                    f"all {snap.replicas} replicas on generation {generation}",
                )
            )
            return out
        target = min(
            left,
            key=lambda r: (
                not r.unsettled,
                not r.begun,
                r.scheduled(snap) > 0,
                r.index not in counting,
                r.index,
            ),
        )
        selected = {"replicaIndex": target.index, "updateStartedAt": now}
    out.progress = {"updateStartedAt": progress["updateStartedAt"], "currentlyUpdating": [selected]}
    blocked = _roll_replica(snap, target, generation, desired_cliques, out, now)
    if blocked:
        out.waiting = True
        out.condition = (
            cond.TRUE,
            REASON_WAITING_FOR_CAPACITY,
            f"replica {target.index}: " + "; ".join(blocked),
        )
    else:
        out.condition = (
            cond.TRUE,
            REASON_UPDATING,
            f"updating replica {target.index} to generation {generation}",
        )
    previous = cond.get_condition(conditions, CONDITION_UPDATE_IN_PROGRESS) or {}
    if blocked and previous.get("reason") != REASON_WAITING_FOR_CAPACITY:
        out.events.append(("Warning", REASON_WAITING_FOR_CAPACITY, out.condition[2]))
    return out


def _roll_replica(
    snap: Snapshot, replica: _Replica, generation: str, desired: Mapping[str, Obj], out: Rollout, now: str
) -> list[str]:
    """Deletes for one replica this pass; returns what waits for capacity."""
    blocked: list[str] = []
    for q in replica.cliques:
        name = name_of(q.pclq)
        if name in snap.pending:
            continue
        previous = (snap.podcliques[name].get("status") or {}).get("updateProgress") or {}
        progress = _restart(previous, generation, now) | {"podTemplateHash": q.expected}
        if q.done:  # finished: the selection is cleared (docs/termination-and-updates.md, step 4)
            if not previous.get("updateEndedAt") or previous.get("podCliqueSetGenerationHash") != generation:
                progress.pop("readyPodsSelectedToUpdate", None)
                out.clique_progress[name] = {**progress, "updateEndedAt": now}
            continue
        selection = dict(progress.get("readyPodsSelectedToUpdate") or {})
        # Old pods that serve nothing go at once (unbound ones hold no node; others need room to come back).
        for pod in [p for p in q.old if not podstate.is_ready(p)]:
            if podstate.is_bound(pod) and not _fits(snap, [pod], q.pclq):
                blocked.append(f"no room for the replacement of pod {name_of(pod)}")
                continue
            out.actions.append(
                Delete(pod_ref(pod), uid_of(pod), reason=f"{name}: rolling update (not Ready)")
            )
        ready_old = [p for p in q.old if podstate.is_ready(p)]
        if ready_old and not q.in_flight and q.ready >= q.min_available:
            pod = ready_old[0]
            if _fits(snap, [pod], q.pclq):
                out.actions.append(Delete(pod_ref(pod), uid_of(pod), reason=f"{name}: rolling update"))
                done = list(selection.get("completed") or [])
                if selection.get("current"):
                    done.append(selection["current"])
                selection = {"current": name_of(pod), "completed": done}
            else:
                blocked.append(f"no room for the replacement of pod {name_of(pod)} of {name}")
        out.clique_progress[name] = {k: v for k, v in progress.items() if k != "updateEndedAt"} | (
            {"readyPodsSelectedToUpdate": selection} if selection else {}
        )
    for g in replica.groups:
        blocked += _roll_group(snap, g, generation, desired, out, now)
    return blocked


def _roll_group(
    snap: Snapshot, g: _Group, generation: str, desired: Mapping[str, Obj], out: Rollout, now: str
) -> list[str]:
    name = name_of(g.pcsg)
    previous = (g.pcsg.get("status") or {}).get("updateProgress") or {}
    progress = _restart(previous, generation, now)
    total = len(g.replicas) * len(g.pcsg.get("spec", {}).get("cliqueNames") or [])
    progress["totalPodCliquesCount"] = total
    progress["updatedPodCliquesCount"] = sum(
        len(r.members) for r in g.replicas if r.complete and not r.old and r.available
    )
    if g.done:  # finished: the selection is cleared (docs/termination-and-updates.md, step 4)
        if not previous.get("updateEndedAt") or previous.get("podCliqueSetGenerationHash") != generation:
            progress.pop("readyReplicaIndicesSelectedToUpdate", None)
            out.group_progress[name] = {**progress, "updateEndedAt": now}
        return []
    blocked: list[str] = []
    selection = dict(progress.get("readyReplicaIndicesSelectedToUpdate") or {})
    for r in g.replicas:
        if r.old and r.complete and not r.available:
            if r.bound and not _fits_replica(snap, r, desired):
                blocked.append(f"no room for replica {r.index} of {name}")
                continue
            out.actions += _delete_members(
                snap, r, f"{name}: rolling update (replica {r.index} not available)"
            )
    ready_old = [r for r in g.replicas if r.old and r.complete and r.available]
    need = status.scaling_group_min_available(g.pcsg)
    if ready_old and not g.in_flight and g.available >= need:
        r = ready_old[0]
        if _fits_replica(snap, r, desired):
            out.actions += _delete_members(snap, r, f"{name}: rolling update (replica {r.index})")
            done = list(selection.get("completed") or [])
            if selection.get("current") is not None:
                done.append(selection["current"])
            selection = {"current": r.index, "completed": done}
        else:
            blocked.append(f"no room for replica {r.index} of {name}")
    out.group_progress[name] = {k: v for k, v in progress.items() if k != "updateEndedAt"} | (
        {"readyReplicaIndicesSelectedToUpdate": selection} if selection else {}
    )
    return blocked


def _restart(previous: Mapping[str, Any], generation: str, now: str) -> dict[str, Any]:
    """A PodClique's or group's progress towards `generation`: the running one, or a new one."""
    if previous.get("podCliqueSetGenerationHash") == generation:
        return dict(previous)
    return {"updateStartedAt": now, "podCliqueSetGenerationHash": generation}


def _delete_members(snap: Snapshot, r: _GroupReplica, reason: str) -> list[Action]:
    return [a for m in r.members if not is_deleting(m) for a in delete_podclique(m, snap.pods_of(m), reason)]


def _owned_by(pod: Obj, pclq: Mapping[str, Any]) -> bool:
    return any(ref.get("uid") == uid_of(pclq) for ref in pod["metadata"].get("ownerReferences") or [])


def _fits(snap: Snapshot, pods: list[Obj], pclq: Obj) -> bool:
    """Room for these pods' replacements (built from `pclq`, the PodClique as this pass wants it)."""
    if snap.room is None:
        return True
    pairs = [
        ((p["metadata"].get("namespace", ""), name_of(p)), build_pod(pclq, pod_index(p) or 0)) for p in pods
    ]
    return snap.room.fits(pairs)


def _fits_replica(snap: Snapshot, r: _GroupReplica, desired: Mapping[str, Obj]) -> bool:
    """Room for the whole scaling-group replica rebuilt from the new template (its bound pods go)."""
    if snap.room is None:
        return True
    pairs: list[tuple[PodKey | None, Mapping[str, Any]]] = []
    for m in r.members:
        want = desired.get(name_of(m), m)
        bound = [p for p in r.bound if _owned_by(p, m)]
        pairs += [
            ((p["metadata"].get("namespace", ""), name_of(p)), build_pod(want, pod_index(p) or 0))
            for p in bound
        ]
        count = int(want.get("spec", {}).get("replicas") or 0)
        pairs += [(None, build_pod(want, k)) for k in range(len(bound), count)]
    return snap.room.fits(pairs)


def _on_delete_progress(snap: Snapshot, generation: str, out: Rollout, now: str) -> None:
    """OnDelete: every PodClique and group gets an already finished progress for the new generation."""
    hashes = snap.template_hashes
    for name, pclq in snap.podcliques.items():
        if is_deleting(pclq) or not snap.controls(pclq):
            continue
        previous = (pclq.get("status") or {}).get("updateProgress") or {}
        if previous.get("podCliqueSetGenerationHash") == generation:
            continue
        clique = template_clique_of(snap, name)
        if clique is None:
            continue
        out.clique_progress[name] = {
            "updateStartedAt": now,
            "updateEndedAt": now,
            "podCliqueSetGenerationHash": generation,
            "podTemplateHash": hashes[clique["name"]],
        }
    for name, pcsg in snap.scaling_groups.items():
        previous = (pcsg.get("status") or {}).get("updateProgress") or {}
        if (
            is_deleting(pcsg)
            or not snap.controls(pcsg)
            or previous.get("podCliqueSetGenerationHash") == generation
        ):
            continue
        out.group_progress[name] = {
            "updateStartedAt": now,
            "updateEndedAt": now,
            "podCliqueSetGenerationHash": generation,
        }

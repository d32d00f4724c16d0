"""Desired ``status`` of every kind, computed from raw objects (camelCase dicts, as the apiserver returns
them). Pure: no I/O, no clock (``now`` is passed in), inputs are never mutated.

Each ``*_status`` function returns only the status fields the operator owns. In the returned dict a key
that is **absent** means "not ours here, leave it alone" and a key whose value is **None** means "remove
it"; :func:`status_patch` turns the desired dict into the JSON merge patch to send (or None when nothing
changed semantically, so a reconcile does not trigger itself through its own watch events).

What each field and condition means: docs/api.md, "Status fields" (counts, hashes, selectors) and
"PodGangs" (their status); docs/termination-and-updates.md, "Availability conditions" (types, reasons).

Rolling updates (``update.py``) decide each ``updateProgress``; the functions here take it as
``update_progress`` (an update in progress reports MinAvailableBreached=Unknown and freezes the current
hashes; a finished one supplies the hashes) and add the counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from grove_api import conditions as cond
from grove_api import constants as c
from grove_api import naming, podstate
from grove_api.hashing import clique_template_hashes
from grove_api.podgang import (
    CONDITION_ADMITTED,
    CONDITION_INITIALIZED,
    REASON_REPLACEMENTS_BLOCKED,
    with_initialized,
)

Obj = Mapping[str, Any]

# Reasons (Grove's identifiers; docs/termination-and-updates.md, "Availability conditions") and messages
# (Grove's wording, counts included).
REASON_UPDATE_IN_PROGRESS: Final = "UpdateInProgress"
REASON_SCHEDULED_BELOW_MIN: Final = "ScheduledReplicasBelowMinAvailable"
REASON_INSUFFICIENT_READY_PODS: Final = "InsufficientReadyPods"
REASON_SUFFICIENT_READY_PODS: Final = "SufficientReadyPods"
REASON_SUFFICIENT_SCHEDULED_PODS: Final = "SufficientScheduledPods"
REASON_INSUFFICIENT_SCHEDULED_PODS: Final = "InsufficientScheduledPods"
REASON_PCSG_INSUFFICIENT: Final = "InsufficientAvailablePodCliqueScalingGroupReplicas"
REASON_PCSG_SUFFICIENT: Final = "SufficientAvailablePodCliqueScalingGroupReplicas"
REASON_GANG_TERMINATION_ACTIVE: Final = "GangTerminationActive"
REASON_ALL_REPLICAS_AVAILABLE: Final = "AllReplicasAvailable"
REASON_REPLICAS_UNAVAILABLE: Final = "ReplicasUnavailable"

MSG_UPDATE_IN_PROGRESS: Final = "Update is in progress"
MSG_IDLE: Final = "PodClique is intentionally idle with replicas 0"


# --- small readers -------------------------------------------------------------------------------------
def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Obj | None) -> Mapping[str, Any]:
    return (obj or {}).get("status") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _terminating(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def _labels(obj: Obj) -> Mapping[str, str]:
    labels: Mapping[str, str] = _meta(obj).get("labels") or {}
    return labels


def _selector(pcs_name: str, extra: Mapping[str, str] | None = None) -> str:
    """A label selector string, in the order Grove prints it (keys sorted, as labels.Set.String does)."""
    match = {c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE, c.LABEL_PART_OF: pcs_name, **(extra or {})}
    return ",".join(f"{k}={match[k]}" for k in sorted(match))


def _update_in_progress(status: Mapping[str, Any]) -> bool:
    """An auto (RollingRecreate) update runs: updateProgress set and updateEndedAt not (OnDelete sets
    updateEndedAt at once, so it never counts as in progress)."""
    progress = status.get("updateProgress") or {}
    return bool(progress) and not progress.get("updateEndedAt")


def _replace(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch value that makes the stored object exactly `desired` (keys it drops are nulled)."""
    return {**{k: None for k in current or {} if k not in desired}, **desired}


def podclique_min_available(pclq: Obj) -> int:
    """``spec.minAvailable``; the defaulting webhook always sets it, else it defaults to replicas."""
    spec = _spec(pclq)
    return _int(spec.get("minAvailable"), _int(spec.get("replicas"), 1))


def scaling_group_min_available(pcsg: Obj) -> int:
    return _int(_spec(pcsg).get("minAvailable"), 1)


def group_replica_count(pcsg: Obj) -> int:
    return _int(_spec(pcsg).get("replicas"), 1)


def podclique_updated(pclq: Obj, expected_template_hash: str | None, pcs_generation_hash: str | None) -> bool:
    """Grove's "PodClique is updated": label hash, current template hash and current PodCliqueSet
    generation hash are the expected ones, and ready and updated pods are both at least minAvailable."""
    st = _status(pclq)
    if pcs_generation_hash is None or st.get("currentPodCliqueSetGenerationHash") != pcs_generation_hash:
        return False
    if expected_template_hash is not None and (
        _labels(pclq).get(c.LABEL_POD_TEMPLATE_HASH) != expected_template_hash
        or st.get("currentPodTemplateHash") != expected_template_hash
    ):
        return False
    m = podclique_min_available(pclq)
    return _int(st.get("readyReplicas"), 0) >= m and _int(st.get("updatedReplicas"), 0) >= m


# --- PodClique -----------------------------------------------------------------------------------------
def _idle(pclq: Obj) -> bool:
    """Scaled to zero on purpose (kubectl scale / an HPA): scheduled and not breached, whatever its
    minAvailable (as in later Grove versions)."""
    return _int(_spec(pclq).get("replicas"), 1) == 0


def min_available_breached(
    pclq: Obj, *, scheduled: int, erroneous: int, started_not_ready: int, update_in_progress: bool
) -> tuple[str, str, str]:
    """(status, reason, message) of a PodClique's MinAvailableBreached."""
    if update_in_progress:
        return cond.UNKNOWN, REASON_UPDATE_IN_PROGRESS, MSG_UPDATE_IN_PROGRESS
    if _idle(pclq):
        return cond.FALSE, REASON_SUFFICIENT_READY_PODS, MSG_IDLE
    m = podclique_min_available(pclq)
    if scheduled < m:
        return (
            cond.TRUE,
            REASON_SCHEDULED_BELOW_MIN,
            f"Scheduled replicas ({scheduled}) below MinAvailable ({m})",
        )
    ready_or_starting = scheduled - erroneous - started_not_ready
    if ready_or_starting < m:
        return (
            cond.TRUE,
            REASON_INSUFFICIENT_READY_PODS,
            f"Insufficient ready or starting pods. expected at least: {m}, found: {ready_or_starting}",
        )
    return (
        cond.FALSE,
        REASON_SUFFICIENT_READY_PODS,
        f"Either sufficient ready or starting pods found. expected at least: {m}, found: {ready_or_starting}",
    )


def podclique_scheduled(pclq: Obj, *, scheduled: int) -> tuple[str, str, str]:
    """(status, reason, message) of a PodClique's PodCliqueScheduled: True iff scheduled >= minAvailable."""
    if _idle(pclq):
        return cond.TRUE, REASON_SUFFICIENT_SCHEDULED_PODS, MSG_IDLE
    m = podclique_min_available(pclq)
    if scheduled < m:
        return (
            cond.FALSE,
            REASON_INSUFFICIENT_SCHEDULED_PODS,
            f"Insufficient scheduled pods. expected at least: {m}, found: {scheduled}",
        )
    return (
        cond.TRUE,
        REASON_SUFFICIENT_SCHEDULED_PODS,
        f"Sufficient scheduled pods found. expected at least: {m}, found: {scheduled}",
    )


def podclique_status(
    pclq: Obj,
    pods: Iterable[Obj],
    *,
    expected_hash: str,
    pcs_generation_hash: str | None,
    standalone: bool,
    pcs_name: str,
    now: datetime,
    update_progress: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Desired status of a PodClique from its pods (all pods it controls, terminating ones included).

    ``expected_hash`` is the pod-template hash of the clique's template now; ``pcs_generation_hash`` the
    PodCliqueSet's ``status.currentGenerationHash`` (None: not computed yet, current hashes stay).
    The planner asks only once the PodClique's pods are made (never for one whose creates or deletes are
    not in the cache yet), so conditions are always computed (Grove computes them once observedGeneration
    is written, which it does just before).

    Counting (docs/api.md, "Status fields"): ``replicas`` = non-terminating pods; ``readyReplicas``,
    ``scheduledReplicas``, ``scheduleGatedReplicas`` count terminating pods too (Grove's rule);
    ``updatedReplicas`` counts non-terminating pods whose hash label is the target
    (``updateProgress.podTemplateHash`` while a progress exists, else ``expected_hash``) — ours: Grove also
    counts terminating pods, which can make updated exceed replicas.
    """
    pods = list(pods)
    current = _status(pclq)
    if update_progress is not None:  # the rolling update moves this pass
        current = {**current, "updateProgress": dict(update_progress)}
    live = [p for p in pods if not podstate.is_terminating(p)]
    progress = current.get("updateProgress") or None
    in_progress = _update_in_progress(current)

    replicas = len(live)
    ready = sum(1 for p in pods if podstate.is_ready(p))
    scheduled = sum(1 for p in pods if podstate.is_scheduled(p))
    gated = sum(1 for p in pods if podstate.is_gated(p))
    target = (progress or {}).get("podTemplateHash") or expected_hash
    updated = sum(1 for p in live if podstate.template_hash(p) == target)

    status: dict[str, Any] = {
        "observedGeneration": _meta(pclq).get("generation"),
        "replicas": replicas,
        "readyReplicas": ready,
        "scheduledReplicas": scheduled,
        "scheduleGatedReplicas": gated,
        "updatedReplicas": updated,
        "hpaPodSelector": (_selector(pcs_name, {c.LABEL_PODCLIQUE: _name(pclq)}) if standalone else None),
    }
    if update_progress is not None:
        status["updateProgress"] = _replace(_status(pclq).get("updateProgress"), update_progress)

    # Current hashes (docs/api.md, "Status fields"): frozen while an auto update runs or not every pod is on
    # the target.
    cur_tpl = current.get("currentPodTemplateHash")
    cur_gen = current.get("currentPodCliqueSetGenerationHash")
    if not in_progress and updated == replicas and pcs_generation_hash is not None:
        if progress is None:
            if _labels(pclq).get(c.LABEL_POD_TEMPLATE_HASH) == expected_hash:
                cur_tpl, cur_gen = expected_hash, pcs_generation_hash
        else:  # the last update completed
            cur_tpl = progress.get("podTemplateHash") or cur_tpl
            cur_gen = progress.get("podCliqueSetGenerationHash") or cur_gen
    if cur_tpl is not None:
        status["currentPodTemplateHash"] = cur_tpl
    if cur_gen is not None:
        status["currentPodCliqueSetGenerationHash"] = cur_gen

    if not current.get("firstScheduledAt") and scheduled > 0 and scheduled >= podclique_min_available(pclq):
        status["firstScheduledAt"] = cond.format_time(now)
    erroneous = sum(1 for p in pods if podstate.is_erroneous(p))
    started = sum(1 for p in pods if podstate.is_started_not_ready(p))
    conds: list[dict[str, Any]] = list(current.get("conditions") or [])
    conds = cond.set_condition(
        conds,
        c.CONDITION_PODCLIQUE_SCHEDULED,
        *podclique_scheduled(pclq, scheduled=scheduled),
        now,
    )
    conds = cond.set_condition(
        conds,
        c.CONDITION_MIN_AVAILABLE_BREACHED,
        *min_available_breached(
            pclq,
            scheduled=scheduled,
            erroneous=erroneous,
            started_not_ready=started,
            update_in_progress=in_progress,
        ),
        now,
    )
    status["conditions"] = conds
    return status


# --- PodCliqueScalingGroup -----------------------------------------------------------------------------
def group_members(pcsg: Obj, members: Iterable[Obj]) -> dict[int, dict[str, Obj]]:
    """Member PodCliques by scaling-group replica index and clique name, strays pruned (docs/api.md, "Status
    fields"): only the names ``<pcsg>-<j>-<clique>`` with ``j < spec.replicas`` and ``clique`` in
    ``spec.cliqueNames``. Terminating members are kept (callers decide)."""
    spec = _spec(pcsg)
    name = _name(pcsg)
    replicas = group_replica_count(pcsg)
    cliques: Sequence[str] = spec.get("cliqueNames") or []
    expected = {f"{name}-{j}-{q}": (j, q) for j in range(replicas) for q in cliques}
    out: dict[int, dict[str, Obj]] = {j: {} for j in range(replicas)}
    for member in members:
        pos = expected.get(_name(member))
        if pos is None:
            continue
        j, q = pos
        existing = out[j].get(q)
        # Two objects of one name only happen across a delete and re-create; prefer the live one.
        if existing is None or _terminating(existing):
            out[j][q] = member
    return out


def scaling_group_status(
    pcsg: Obj,
    members: Iterable[Obj],
    *,
    pcs_generation_hash: str | None,
    pcs_name: str,
    now: datetime,
    expected_hashes: Mapping[str, str] | None = None,
    update_progress: Mapping[str, Any] | None = None,
    gang_terminated: bool = False,
) -> dict[str, Any]:
    """Desired status of a scaling group from its member PodCliques (raw, with their status).

    ``expected_hashes`` (clique name → pod-template hash, e.g. from
    :func:`grove_api.hashing.clique_template_hashes`) makes "member updated" also check the members'
    label and current template hashes, as Grove does; without it only the generation hash is checked.
    """
    spec = _spec(pcsg)
    current = _status(pcsg)
    if update_progress is not None:  # the rolling update moves this pass
        current = {**current, "updateProgress": dict(update_progress)}
    replicas = group_replica_count(pcsg)
    cliques: Sequence[str] = spec.get("cliqueNames") or []
    min_available = scaling_group_min_available(pcsg)
    in_progress = _update_in_progress(current)
    grouped = group_members(pcsg, members)

    def member_updated(q: str, m: Obj) -> bool:
        return podclique_updated(m, (expected_hashes or {}).get(q), pcs_generation_hash)

    def member_current(q: str, m: Obj) -> bool:
        """On the PodCliqueSet's generation (and, when known, the clique's template hash)."""
        if _status(m).get("currentPodCliqueSetGenerationHash") != pcs_generation_hash:
            return False
        if expected_hashes is None:
            return True
        want = expected_hashes.get(q)
        return (
            _labels(m).get(c.LABEL_POD_TEMPLATE_HASH) == want
            and _status(m).get("currentPodTemplateHash") == want
        )

    scheduled = available = updated = healthy = 0
    all_current = True
    for j in range(replicas):
        by_clique = grouped[j]
        live = {q: m for q, m in by_clique.items() if not _terminating(m)}
        complete = len(live) == len(cliques)
        if not complete or not all(member_current(q, m) for q, m in live.items()):
            all_current = False
        if not complete:
            continue
        members_ = list(live.values())
        # Healthy: every member has judged itself and is not breached (a member just created has no
        # condition yet: it is not healthy, or a recreated replica would clear GangTerminationInProgress).
        if all(
            cond.condition_status(_status(m).get("conditions"), c.CONDITION_MIN_AVAILABLE_BREACHED)
            in (cond.FALSE, cond.UNKNOWN)
            for m in members_
        ):
            healthy += 1
        if not all(
            cond.is_true(_status(m).get("conditions"), c.CONDITION_PODCLIQUE_SCHEDULED) for m in members_
        ):
            continue
        scheduled += 1
        if not all(_int(_status(m).get("readyReplicas"), 0) >= podclique_min_available(m) for m in members_):
            continue
        available += 1
        if all(member_updated(q, m) for q, m in live.items()):
            updated += 1

    status: dict[str, Any] = {
        "observedGeneration": _meta(pcsg).get("generation"),
        "replicas": replicas,
        "scheduledReplicas": scheduled,
        "availableReplicas": available,
        "updatedReplicas": updated,
        "selector": _selector(pcs_name, {c.LABEL_PCSG: _name(pcsg)}),
    }
    if update_progress is not None:
        status["updateProgress"] = _replace(_status(pcsg).get("updateProgress"), update_progress)

    conds: list[dict[str, Any]] = list(current.get("conditions") or [])
    if in_progress:
        conds = cond.set_condition(
            conds,
            c.CONDITION_MIN_AVAILABLE_BREACHED,
            cond.UNKNOWN,
            REASON_UPDATE_IN_PROGRESS,
            MSG_UPDATE_IN_PROGRESS,
            now,
        )
    elif healthy < min_available:
        conds = cond.set_condition(
            conds,
            c.CONDITION_MIN_AVAILABLE_BREACHED,
            cond.TRUE,
            REASON_PCSG_INSUFFICIENT,
            f"Insufficient PodCliqueScalingGroup ready replicas, expected at least: {min_available}, "
            f"found: {healthy}",
            now,
        )
    else:
        conds = cond.set_condition(
            conds,
            c.CONDITION_MIN_AVAILABLE_BREACHED,
            cond.FALSE,
            REASON_PCSG_SUFFICIENT,
            f"Sufficient PodCliqueScalingGroup ready replicas, expected at least: {min_available}, "
            f"found: {healthy}",
            now,
        )
        # Recovered: the PCS-level gang termination flag is cleared.
        conds = cond.remove_condition(conds, c.CONDITION_GANG_TERMINATION_IN_PROGRESS)
    if gang_terminated:
        conds = cond.set_condition(
            conds,
            c.CONDITION_GANG_TERMINATION_IN_PROGRESS,
            cond.TRUE,
            REASON_GANG_TERMINATION_ACTIVE,
            "The PodCliqueSet replica's PodCliques were deleted for gang termination and are being recreated",
            now,
        )
    status["conditions"] = conds

    if not current.get("firstAvailableAt") and not in_progress and healthy >= max(min_available, 1):
        status["firstAvailableAt"] = cond.format_time(now)  # MinAvailableBreached is False
    cur_gen = current.get("currentPodCliqueSetGenerationHash")
    if not in_progress and all_current and pcs_generation_hash is not None:
        cur_gen = pcs_generation_hash
    if cur_gen is not None:
        status["currentPodCliqueSetGenerationHash"] = cur_gen
    return status


# --- PodCliqueSet --------------------------------------------------------------------------------------
def _template(pcs: Obj) -> Mapping[str, Any]:
    return _spec(pcs).get("template") or {}


def standalone_clique_names(pcs: Obj) -> list[str]:
    """Cliques in no scaling group, in template order."""
    template = _template(pcs)
    grouped = {q for g in template.get("podCliqueScalingGroups") or [] for q in g.get("cliqueNames") or []}
    return [str(q.get("name")) for q in template.get("cliques") or [] if q.get("name") not in grouped]


def scaling_group_config_names(pcs: Obj) -> list[str]:
    return [str(g.get("name")) for g in _template(pcs).get("podCliqueScalingGroups") or []]


def podcliqueset_available(replicas: int, available: int) -> tuple[str, str, str]:
    """(status, reason, message) of the PodCliqueSet's ``Available`` condition (ours, docs/decisions.md), what
    `kubectl wait --for=condition=Available` waits for: True when every one of the ``spec.replicas``
    replicas is available (``status.availableReplicas``, whatever template a replica runs), and so at 0
    replicas, where nothing is missing. The condition carries no observedGeneration of its own, so kubectl
    takes ``status.observedGeneration``: a True from before the operator saw a new spec does not count.

    The message quotes the two counts the same status carries, so it only changes in a write made anyway
    for ``availableReplicas`` or ``replicas``: no extra status write while a big PodCliqueSet starts."""
    message = f"{available} of {replicas} replicas available"
    if available >= replicas:
        return cond.TRUE, REASON_ALL_REPLICAS_AVAILABLE, message
    return cond.FALSE, REASON_REPLICAS_UNAVAILABLE, message


def podcliqueset_status(
    pcs: Obj,
    standalone: Iterable[Obj],
    groups: Iterable[Obj],
    *,
    generation_hash: str,
    now: datetime,
    podgangs: Iterable[Obj] = (),
    update_progress: Mapping[str, Any] | None = None,
    update_condition: tuple[str, str, str] | None = None,
    conflicts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Desired status of a PodCliqueSet from its standalone PodCliques and scaling groups (raw, with
    status). Children are matched by their generated names; strays are ignored. ``podgangs`` give the
    ``PodGangsAdmitted`` condition (`gang_admission_condition`); the counts give ``Available``
    (`podcliqueset_available`).

    ``updateProgress``: the times and ``currentlyUpdating`` come from the rolling update
    (``update_progress``, see ``update.py``; the stored ones when not given), the counts of updated
    PodCliques and scaling groups are computed here. A PodCliqueSet without one gets an already finished
    progress (``updateStartedAt`` = ``updateEndedAt`` = creation time), so nothing mistakes it for an
    update in progress. ``update_condition`` is the (status, reason, message) of ``UpdateInProgress``.
    ``conflicts`` (child -> message) give ``NameConflict`` (`name_conflict_condition`).
    """
    name = _name(pcs)
    replicas = _int(_spec(pcs).get("replicas"), 0)
    tpl_hashes = clique_template_hashes(pcs)
    st_cliques = standalone_clique_names(pcs)
    sg_configs = scaling_group_config_names(pcs)

    live_pclqs = {_name(o): o for o in standalone if not _terminating(o)}
    live_groups = {_name(o): o for o in groups if not _terminating(o)}

    available = updated = 0
    pclqs_updated = groups_updated = 0
    for i in range(replicas):
        pclqs = {q: live_pclqs.get(naming.standalone_podclique(name, i, q)) for q in st_cliques}
        sgs = [live_groups.get(naming.scaling_group(name, i, g)) for g in sg_configs]
        pclq_updated = {
            q: p is not None and podclique_updated(p, tpl_hashes.get(q), generation_hash)
            for q, p in pclqs.items()
        }
        sg_updated = [
            g is not None and _status(g).get("currentPodCliqueSetGenerationHash") == generation_hash
            for g in sgs
        ]
        pclqs_updated += sum(pclq_updated.values())
        groups_updated += sum(sg_updated)

        is_available = all(
            p is not None and _int(_status(p).get("readyReplicas"), 0) >= podclique_min_available(p)
            for p in pclqs.values()
        ) and all(
            g is not None and _int(_status(g).get("availableReplicas"), 0) >= scaling_group_min_available(g)
            for g in sgs
        )
        if not is_available:
            continue
        available += 1
        if all(pclq_updated.values()) and all(sg_updated):
            updated += 1

    current = _status(pcs)
    stored = current.get("updateProgress") or {}
    progress = dict(update_progress) if update_progress is not None else dict(stored)
    if not progress.get("updateStartedAt"):
        started = _meta(pcs).get("creationTimestamp") or cond.format_time(now)
        progress = {"updateStartedAt": started, "updateEndedAt": started}
    progress.update(
        {
            "updatedPodCliquesCount": pclqs_updated,
            "totalPodCliquesCount": replicas * len(st_cliques),
            "updatedPodCliqueScalingGroupsCount": groups_updated,
            "totalPodCliqueScalingGroupsCount": replicas * len(sg_configs),
        }
    )
    out: dict[str, Any] = {
        "observedGeneration": _meta(pcs).get("generation"),
        "replicas": replicas,
        "availableReplicas": available,
        "updatedReplicas": updated,
        "hpaPodSelector": _selector(name),
        "currentGenerationHash": generation_hash,
    }
    out["updateProgress"] = _replace(stored, progress)
    conds = cond.set_condition(
        current.get("conditions"), c.CONDITION_AVAILABLE, *podcliqueset_available(replicas, available), now
    )
    admission = gang_admission_condition(podgangs)
    if admission is not None:
        conds = cond.set_condition(conds, *admission, now)
    if update_condition is not None:
        conds = cond.set_condition(conds, CONDITION_UPDATE_IN_PROGRESS, *update_condition, now)
    conflict = name_conflict_condition(
        conflicts or {}, had=cond.get_condition(conds, CONDITION_NAME_CONFLICT)
    )
    if conflict is not None:
        conds = cond.set_condition(conds, CONDITION_NAME_CONFLICT, *conflict, now)
    invalid = spec_invalid_condition([], had=cond.get_condition(conds, CONDITION_SPEC_INVALID))
    if invalid is not None:
        conds = cond.set_condition(conds, CONDITION_SPEC_INVALID, *invalid, now)
    out["conditions"] = conds
    return out


CONDITION_NAME_CONFLICT: Final = "NameConflict"
REASON_NAME_TAKEN: Final = "ChildNameTaken"
REASON_NO_CONFLICT: Final = "NoConflict"
CONDITION_SPEC_INVALID: Final = "SpecInvalid"
REASON_CANNOT_ACT: Final = "CannotBeActedOn"
REASON_SPEC_ACTIONABLE: Final = "SpecActionable"
MAX_PROBLEMS_SHOWN = 3


def problem_condition(
    problems: Sequence[str], had: Mapping[str, Any] | None, reasons: tuple[str, str], cleared: str
) -> tuple[str, str, str] | None:
    """(status, reason, message) of a condition that reports problems (NameConflict, SpecInvalid): True with
    the first few while there are any (`reasons[0]`), False once there are none after it was True
    (`reasons[1]`, message `cleared`); None (absent) when it never was."""
    if problems:
        more = len(problems) - MAX_PROBLEMS_SHOWN
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN]) + (f"; and {more} more" if more > 0 else "")
        return cond.TRUE, reasons[0], shown
    if had is None:
        return None
    return cond.FALSE, reasons[1], cleared


def name_conflict_condition(
    conflicts: Mapping[str, str], had: Mapping[str, Any] | None
) -> tuple[str, str, str] | None:
    """NameConflict: some child's name is taken by an object of someone else's."""
    return problem_condition(
        [conflicts[k] for k in sorted(conflicts)],
        had,
        (REASON_NAME_TAKEN, REASON_NO_CONFLICT),
        "every child's name is free or this PodCliqueSet's",
    )


def spec_invalid_condition(
    problems: Sequence[str], had: Mapping[str, Any] | None
) -> tuple[str, str, str] | None:
    """SpecInvalid: the stored spec is one the reconciler cannot act on (grove_api.validation.actionable)."""
    return problem_condition(
        problems, had, (REASON_CANNOT_ACT, REASON_SPEC_ACTIONABLE), "the reconciler acts on the spec"
    )


CONDITION_PODGANGS_ADMITTED: Final = "PodGangsAdmitted"
CONDITION_UPDATE_IN_PROGRESS: Final = "UpdateInProgress"
REASON_ALL_ADMITTED: Final = "AllPodGangsAdmitted"


def gang_admission_condition(podgangs: Iterable[Obj]) -> tuple[str, str, str, str] | None:
    """(type, status, reason, message) of ``PodGangsAdmitted`` on the PodCliqueSet, summarising the gang
    admitter's ``Admitted`` condition of each PodGang, so `kubectl describe pcs` says why pods wait.
    None while no PodGang has been looked at by the admitter (or it is disabled)."""
    gangs = sorted((g for g in podgangs if not _terminating(g)), key=_name)
    verdicts = [(g, cond.get_condition(_status(g).get("conditions"), CONDITION_ADMITTED)) for g in gangs]
    if not any(v for _, v in verdicts):
        return None
    # A running gang whose replacements do not fit is admitted, but waiting all the same.
    waiting = [
        (g, v)
        for g, v in verdicts
        if not v or v.get("status") != cond.TRUE or v.get("reason") == REASON_REPLACEMENTS_BLOCKED
    ]
    admitted = sum(1 for _, v in verdicts if v and v.get("status") == cond.TRUE)
    summary = f"{admitted} of {len(gangs)} PodGangs admitted"
    if not waiting:
        return (CONDITION_PODGANGS_ADMITTED, cond.TRUE, REASON_ALL_ADMITTED, summary)
    gang, verdict = waiting[0]
    reason = str((verdict or {}).get("reason") or "Pending")
    detail = str((verdict or {}).get("message") or "not looked at yet")
    return (CONDITION_PODGANGS_ADMITTED, cond.FALSE, reason, f"{summary}; {_name(gang)}: {detail}")


# --- PodGang -------------------------------------------------------------------------------------------
def podgang_status(podgang: Obj, all_pods_created: bool, now: datetime) -> dict[str, Any]:
    """A PodGang's status as the reconciler writes it while gang admission is off (with it on, the gang
    admitter owns the whole status: grove_api.podgang): only the ``Initialized`` condition,
    False/PodGangPodsCreationPending until every constituent pod has been created, then
    True/PodGangPodsCreated, never back to False. Written with server-side apply."""
    conds = with_initialized((podgang.get("status") or {}).get("conditions"), now, all_pods_created)
    return {"conditions": [x for x in conds if x.get("type") == CONDITION_INITIALIZED]}


# --- the patch -----------------------------------------------------------------------------------------
def _strip_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    return value


def _diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, want in desired.items():
        have = current.get(key)
        if want is None:
            if have is not None:
                out[key] = None
        elif key == "conditions" and isinstance(want, list):
            if not (isinstance(have, list) and cond.conditions_equal(have, want)):
                out[key] = want
        elif isinstance(want, Mapping) and isinstance(have, Mapping):
            sub = _diff(have, want)
            if sub:
                out[key] = sub
        elif have != want:
            out[key] = _strip_none(want)
    return out


# PodClique status fields that only count pods: a change to these alone may wait a moment (plan.py).
COUNT_FIELDS: Final = frozenset(
    {"replicas", "readyReplicas", "scheduledReplicas", "scheduleGatedReplicas", "updatedReplicas"}
)
# Condition statuses that report trouble: a PodClique turning to one of them is written at once.
_TROUBLE: Final = {
    c.CONDITION_MIN_AVAILABLE_BREACHED: cond.TRUE,
    c.CONDITION_PODCLIQUE_SCHEDULED: cond.FALSE,
}


def may_wait(current: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> bool:
    """The patch only reports progress, so it may wait a moment (plan.STATUS_HOLD_SECONDS): it moves
    counts, sets `firstScheduledAt` (then the time it is written, at most that moment late), and its
    conditions either keep their status and reason (their messages quote the counts) or
    turn good (scheduled, minimum available). A condition turning to trouble (MinAvailableBreached=True,
    PodCliqueScheduled=False) goes at once: gang termination and people act on it.

    A new PodClique's first status (none written yet) may wait as a whole: its pods were only just
    created, none was ever scheduled, so nothing acts on its conditions yet (gang termination only
    counts PodCliques that were scheduled once)."""
    if not current:
        return bool(patch)
    if not patch or not patch.keys() <= COUNT_FIELDS | {"conditions", "firstScheduledAt"}:
        return False
    before = {x.get("type"): x for x in current.get("conditions") or []}
    for x in patch.get("conditions") or []:
        old = before.get(x.get("type"))
        if old is None:
            return False
        if (old.get("status"), old.get("reason")) == (x.get("status"), x.get("reason")):
            continue
        if x.get("status") == _TROUBLE.get(str(x.get("type"))) or x.get("type") not in _TROUBLE:
            return False
    return True


def at_rest(pclq: Obj, patch: Mapping[str, Any]) -> bool:
    """With `patch` written, every pod the PodClique wants is there, Ready and on the current template, and
    none is gated: the state its start or update was heading for, which nothing changes without a
    new cause (a progress change that reaches it is written at once: what people and `kubectl wait`
    wait for)."""
    st = {**_status(pclq), **patch}
    want = wanted_replicas(pclq)
    complete = st.get("replicas") == st.get("readyReplicas") == st.get("updatedReplicas") == want
    return complete and not st.get("scheduleGatedReplicas")


def wanted_replicas(pclq: Obj) -> int:
    """The pods a PodClique wants (its `spec.replicas`)."""
    return _int(_spec(pclq).get("replicas"), 0)


def with_status(obj: Obj, desired: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` as it is once `desired` (a status as the planner computes it, None = remove) is written."""
    merged = {k: v for k, v in {**_status(obj), **desired}.items() if v is not None}
    return {**obj, "status": merged}


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch of ``status`` that turns ``current`` into ``desired``, or None when they are
    semantically equal.

    Keys absent from ``desired`` are left alone; a None value removes the field. Nested objects are
    diffed key by key; lists are replaced whole. ``conditions`` count as equal when they have the same
    type/status/reason/message (in any order): a difference in ``lastTransitionTime`` or
    ``observedGeneration`` alone sends nothing; when something did change, the whole list is sent.
    """
    patch = _diff(current or {}, desired)
    return patch or None

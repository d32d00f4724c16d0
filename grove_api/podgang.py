"""A PodGang's status: its vocabulary (phases, condition types, reasons and messages) and the pure rules its
writer applies. Pure: no I/O, no clock (``now`` is passed in), inputs are never mutated.

Each field has one writer, chosen by whether gang admission is on (`OperatorConfiguration.gangAdmission`;
docs/gang-admission.md, "Status ownership"):

=========================  ============================  =============================
field                      gang admission on             gang admission off
=========================  ============================  =============================
``phase``                  the gang admitter             nobody
condition ``Admitted``     the gang admitter             nobody
condition ``Initialized``  the gang admitter             the reconciler
=========================  ============================  =============================

Both writers compute ``Initialized`` with the same two functions: `all_pods_created` and `with_initialized`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from . import conditions as cond
from . import constants as c
from . import podstate

Obj = Mapping[str, Any]

# --- phase (the gang admitter's) ---------------------------------------------------------------------
PHASE_PENDING: Final = "Pending"  # waiting for its pods or for capacity, or queued again
PHASE_ADMITTED: Final = "Admitted"  # ours: the minimum was released to the scheduler (pinned, ungated)
PHASE_RUNNING: Final = "Running"  # every referenced pod is bound and Running

# --- condition types ---------------------------------------------------------------------------------
CONDITION_INITIALIZED: Final = c.CONDITION_PODGANG_INITIALIZED  # every constituent pod has been created
CONDITION_ADMITTED: Final = c.CONDITION_PODGANG_ADMITTED  # ours: the gang admitter's decision

# --- Initialized: reasons and messages (Grove's wording) ---------------------------------------------
REASON_PODS_CREATION_PENDING: Final = "PodGangPodsCreationPending"
REASON_PODS_CREATED: Final = "PodGangPodsCreated"
MSG_PODS_CREATION_PENDING: Final = "Not all constituent pods have been created yet"
MSG_PODS_CREATED: Final = "PodGang is fully initialized"

# --- Admitted=True: reasons --------------------------------------------------------------------------
REASON_ADMITTED: Final = "GangAdmitted"  # the minimum was placed and released (or created pinned)
# Still admitted, but the replacement pods that bring it back to its minimum do not all fit now.
REASON_REPLACEMENTS_BLOCKED: Final = "ReplacementsBlocked"

# --- Admitted=False: reasons (a gang that is blocked, waits, or was queued again) --------------------
REASON_UNSCHEDULABLE: Final = "Unschedulable"  # the minimum does not fit the free capacity
REASON_TOPOLOGY: Final = "TopologyUnsatisfiable"  # a required pack constraint cannot be met
REASON_PINNED: Final = "PinnedNodeUnavailable"  # a pod pinned by its own nodeSelector cannot go there
REASON_HELD: Final = "HeldForStarvingGang"  # not tried: capacity is kept for an older gang
REASON_PODS_PENDING: Final = "PodsPending"  # not all pods of the minimum exist yet
REASON_BASE_PENDING: Final = "BaseGangPending"  # a scaled gang whose base gang is not scheduled yet
# None of an admitted gang's pods is bound or released any more (all were recreated): queued again.
REASON_RECREATED: Final = "GangRecreated"
REASON_RESET: Final = "GangReset"  # an admitted gang's minimum was not bound in time: queued again
# Released pods of an admitted gang were pinned to a node that is gone: deleted, to be placed again.
REASON_PINNED_NODE_GONE: Final = "PinnedNodeGone"

# --- Events on a gated pod (the gang admitter's): why it is still gated, the gang's reason in the message ----
# Warning on each gated pod of a gang blocked on capacity, topology, a pinned node or a starving gang, and on
# an admitted gang's gated pods while its replacements are blocked (`kubectl describe pod`).
REASON_POD_GANG_BLOCKED: Final = "GangBlocked"
# Warning on each gated pod of a gang waiting for its other pods or for its base gang.
REASON_POD_GANG_WAITING: Final = "GangWaiting"


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def conditions(podgang: Obj) -> list[dict[str, Any]]:
    """The PodGang's status conditions (a new list)."""
    return list((podgang.get("status") or {}).get("conditions") or [])


def references(podgang: Obj) -> list[dict[str, str]]:
    """Every pod reference of every podgroup."""
    return [
        r for g in (podgang.get("spec") or {}).get("podgroups") or [] for r in g.get("podReferences") or []
    ]


def admission_pending(podgang: Obj) -> bool:
    """The gang admitter has not written its decision on this PodGang yet (no Admitted condition)."""
    return cond.get_condition(conditions(podgang), CONDITION_ADMITTED) is None


def podgang_running(podgang: Obj, pods: Iterable[Obj]) -> bool:
    """Every referenced pod exists, is not terminating, is bound to a node and Running, and every podgroup
    references at least its minReplicas pods (and the gang references at least one pod)."""
    namespace = str(_meta(podgang).get("namespace", ""))
    by_key = {(str(_meta(p).get("namespace", namespace)), str(_meta(p).get("name", ""))): p for p in pods}
    total = 0
    for group in (podgang.get("spec") or {}).get("podgroups") or []:
        refs = group.get("podReferences") or []
        if len(refs) < int(group.get("minReplicas") or 0):
            return False
        for ref in refs:
            pod = by_key.get((str(ref.get("namespace") or namespace), str(ref.get("name"))))
            if (
                pod is None
                or podstate.is_terminating(pod)
                or not podstate.is_bound(pod)
                or podstate.phase(pod) != podstate.PHASE_RUNNING
            ):
                return False
            total += 1
    return total > 0


def all_pods_created(
    podgang: Obj, podclique: Callable[[str], Obj | None], pod: Callable[[str], Obj | None]
) -> bool:
    """Every PodClique of the gang (a podgroup is named after its PodClique) exists, and the gang references at
    least `spec.replicas` of that PodClique's active pods (Grove's rule for Initialized). `podclique` and
    `pod` look a PodClique and a pod up by name in the PodGang's namespace (None: not there)."""
    for group in (podgang.get("spec") or {}).get("podgroups") or []:
        pclq = podclique(str(group.get("name", "")))
        if pclq is None:
            return False
        uid = str(_meta(pclq).get("uid", ""))
        listed = 0
        for ref in group.get("podReferences") or []:
            found = pod(str(ref.get("name", "")))
            if found is not None and podstate.is_active(found) and _controller_uid(found) == uid:
                listed += 1
        if listed < int((pclq.get("spec") or {}).get("replicas") or 0):
            return False
    return True


def _controller_uid(obj: Obj) -> str | None:
    for owner in _meta(obj).get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("uid", ""))
    return None


def with_initialized(
    conds: Iterable[Mapping[str, Any]] | None, now: datetime, created: bool = True
) -> list[dict[str, Any]]:
    """`conds` with the Initialized condition as Grove sets it: False/PodGangPodsCreationPending until every
    constituent pod has been created (`created`, see `all_pods_created`), then True/PodGangPodsCreated,
    never back to False (gang termination and scale-out make pods missing again)."""
    if created or cond.is_true(conds, CONDITION_INITIALIZED):
        return cond.set_condition(
            conds, CONDITION_INITIALIZED, cond.TRUE, REASON_PODS_CREATED, MSG_PODS_CREATED, now
        )
    return cond.set_condition(
        conds, CONDITION_INITIALIZED, cond.FALSE, REASON_PODS_CREATION_PENDING, MSG_PODS_CREATION_PENDING, now
    )

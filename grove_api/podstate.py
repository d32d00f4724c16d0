"""What state a pod is in, read from the raw pod dict (camelCase, as the apiserver returns it).

These are Grove's pod categories (``CategorizePodsByConditionType``): Ready, Scheduled, schedule-gated,
terminating, "has a container whose last termination had a non-zero exit code" and "has a container
that started but is not ready". Pure functions; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grove_api import constants as c

POD_READY = "Ready"
POD_SCHEDULED = "PodScheduled"
REASON_SCHEDULING_GATED = "SchedulingGated"
PHASE_RUNNING = "Running"
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"

Pod = Mapping[str, Any]


def _status(pod: Pod) -> Mapping[str, Any]:
    return pod.get("status") or {}


def pod_condition(pod: Pod, type_: str) -> Mapping[str, Any] | None:
    for cond in _status(pod).get("conditions") or ():
        if cond.get("type") == type_:
            return cond  # type: ignore[no-any-return]
    return None


def phase(pod: Pod) -> str:
    return str(_status(pod).get("phase") or "")


def labels(pod: Pod) -> Mapping[str, str]:
    value: Mapping[str, str] = (pod.get("metadata") or {}).get("labels") or {}
    return value


def template_hash(pod: Pod) -> str | None:
    """The pod's ``grove.io/pod-template-hash`` label."""
    value = labels(pod).get(c.LABEL_POD_TEMPLATE_HASH)
    return None if value is None else str(value)


def is_terminating(pod: Pod) -> bool:
    """``metadata.deletionTimestamp`` is set."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_ready(pod: Pod) -> bool:
    """Condition Ready=True."""
    cond = pod_condition(pod, POD_READY)
    return cond is not None and cond.get("status") == "True"


def is_scheduled(pod: Pod) -> bool:
    """Condition PodScheduled=True."""
    cond = pod_condition(pod, POD_SCHEDULED)
    return cond is not None and cond.get("status") == "True"


def is_bound(pod: Pod) -> bool:
    """Bound to a node (``spec.nodeName`` set)."""
    return bool((pod.get("spec") or {}).get("nodeName"))


def has_scheduling_gates(pod: Pod) -> bool:
    return bool((pod.get("spec") or {}).get("schedulingGates"))


def is_gated(pod: Pod) -> bool:
    """Held by a scheduling gate: PodScheduled=False with reason SchedulingGated, or (a pod the scheduler
    has not looked at yet) ``spec.schedulingGates`` non-empty and no PodScheduled condition at all."""
    cond = pod_condition(pod, POD_SCHEDULED)
    if cond is None:
        return has_scheduling_gates(pod)
    return cond.get("status") == "False" and cond.get("reason") == REASON_SCHEDULING_GATED


def is_active(pod: Pod) -> bool:
    """Not terminating and not finished (Succeeded/Failed): the pod holds its index."""
    return not is_terminating(pod) and phase(pod) not in (PHASE_SUCCEEDED, PHASE_FAILED)


def _last_exit_nonzero(statuses: Any) -> bool:
    for cs in statuses or ():
        terminated = (cs.get("lastState") or {}).get("terminated")
        if terminated is not None and (terminated.get("exitCode") or 0) != 0:
            return True
    return False


def has_failed_container(pod: Pod) -> bool:
    """Some init (incl. sidecar) or main container's *last* termination had a non-zero exit code.

    ``lastState`` is used, not ``state``: a crash-looping container oscillates between waiting and
    terminated, while its last termination stays put until it starts properly.
    """
    st = _status(pod)
    return _last_exit_nonzero(st.get("initContainerStatuses")) or _last_exit_nonzero(
        st.get("containerStatuses")
    )


def started_not_ready(pod: Pod) -> bool:
    """Some main container has ``started: true`` and ``ready: false``."""
    return any(
        cs.get("started") is True and not cs.get("ready")
        for cs in _status(pod).get("containerStatuses") or ()
    )


def is_erroneous(pod: Pod) -> bool:
    """Grove's category E: not Ready and has a container whose last exit code was non-zero."""
    return not is_ready(pod) and has_failed_container(pod)


def is_started_not_ready(pod: Pod) -> bool:
    """Grove's category N: not Ready, not in E, and some main container started but is not ready."""
    return not is_ready(pod) and not has_failed_container(pod) and started_not_ready(pod)

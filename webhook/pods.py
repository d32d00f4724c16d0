"""Pod mutating webhook: every pod of a PodGang is created behind Grove's scheduling gate.

The gang admitter (`admitter/`) lifts the gate only when the whole gang's minimum fits the cluster, so the
stock kube-scheduler never sees a partial gang. The gate is added here, at CREATE, and nowhere else: the
apiserver allows removing scheduling gates but never adding them after creation, so a managed pod that
slipped through ungated could not be held back any more. The webhook's objectSelector matches only pods
carrying Grove's labels (managed-by and `grove.io/podgang`), so no other workload depends on it.

The rules are pure functions of the pod (`gate_ops`); the handler only wraps them.
"""

from __future__ import annotations

from typing import Any

from grove_api import constants as c
from webhook.admission import AdmissionRequest, AdmissionResponse, allow, deny, patched

GATE = {"name": c.SCHEDULING_GATE_PODGANG_PENDING}


def is_gang_pod(pod: dict[str, Any]) -> bool:
    """A pod the operator created for a PodGang (what the webhook's objectSelector also selects)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get(c.LABEL_MANAGED_BY) == c.MANAGED_BY_VALUE and bool(labels.get(c.LABEL_PODGANG))


def gate_ops(pod: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """JSON patch ops that add Grove's gate (keeping every other gate), and warnings. Idempotent: a pod
    that already carries the gate gets no ops. A pod created with `spec.nodeName` skips the scheduler
    altogether and cannot be gated (the apiserver refuses gates on it): it is left alone, with a warning."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return [], [
            f"pod is created with spec.nodeName {spec['nodeName']!r}: it bypasses the scheduler, "
            "so gang admission cannot hold it back"
        ]
    gates = spec.get("schedulingGates")
    if not gates:
        return [{"op": "add", "path": "/spec/schedulingGates", "value": [GATE]}], []
    if any(isinstance(g, dict) and g.get("name") == GATE["name"] for g in gates):
        return [], []
    return [{"op": "add", "path": "/spec/schedulingGates/-", "value": GATE}], []


class PodMutatingHandler:
    """CREATE of a gang pod: add the gate. Anything else is allowed unchanged. With `gate` off (gang
    admission disabled in the operator configuration) nothing gates: no admitter would lift the gate."""

    def __init__(self, gate: bool = True) -> None:
        self.gate = gate

    async def __call__(self, request: AdmissionRequest) -> AdmissionResponse:
        pod = request.object
        if not self.gate or request.operation != "CREATE" or pod is None or not is_gang_pod(pod):
            return allow()
        if not isinstance(pod.get("spec"), dict):
            return deny("spec: Required value: a pod needs a spec", code=422, reason="Invalid")
        ops, warnings = gate_ops(pod)
        return patched(ops, warnings)

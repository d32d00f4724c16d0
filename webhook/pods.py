"""Pod mutating webhook: every pod of a PodGang is created behind Grove's scheduling gate, and pods of
cliques with startup dependencies get the grove-initc init container.

The gang admitter (`admitter/`) lifts the gate only when the whole gang's minimum fits the cluster, so the
stock kube-scheduler never sees a partial gang. The gate is added at CREATE and nowhere else: the
apiserver allows removing scheduling gates but never adding them after creation, so a managed pod that
slipped through ungated could not be held back any more. The webhook's objectSelector matches only pods
carrying Grove's labels (managed-by and `grove.io/podgang`), so no other workload depends on it.

The rules are pure functions of the pod (`grove_api.pod_admission`); the handler only wraps them. The
webhook's match condition (`webhook.registration.pod_needs_mutation`) skips the call for a pod that already
has what the webhook would add.
"""

from __future__ import annotations

from grove_api.operatorconfig import InitContainer
from grove_api.pod_admission import gate_ops, initc_ops, is_gang_pod
from webhook.admission import AdmissionRequest, AdmissionResponse, allow, deny, malformed_metadata, patched


class PodMutatingHandler:
    """CREATE of a gang pod: add the gate and grove-initc. Anything else is allowed unchanged. With `gate`
    off (gang admission disabled in the operator configuration) nothing gates: no admitter would lift it.
    `operator`: the operator's username, the only requester whose pods admitted on creation stay ungated
    (None: nobody's; the operator's pods are then gated and released as usual)."""

    def __init__(
        self, gate: bool = True, initc: InitContainer | None = None, operator: str | None = None
    ) -> None:
        self.gate = gate
        self.initc = initc or InitContainer()
        self.operator = operator

    async def __call__(self, request: AdmissionRequest) -> AdmissionResponse:
        pod = request.object
        if request.operation != "CREATE" or pod is None:
            return allow()
        if (malformed := malformed_metadata(request)) is not None:
            return malformed
        if not is_gang_pod(pod):
            return allow()
        if not isinstance(pod.get("spec"), dict):
            return deny("spec: Required value: a pod needs a spec", code=422, reason="Invalid")
        initc = initc_ops(pod, self.initc.image, self.initc.command)
        if isinstance(initc, str):
            return deny(initc, code=422, reason="Invalid")
        by_operator = self.operator is not None and request.username == self.operator
        ops, warnings = gate_ops(pod, by_operator=by_operator) if self.gate else ([], [])
        return patched(ops + initc, warnings)

"""What the pod webhook adds to a gang pod, as pure functions: Grove's scheduling gate and grove-initc.

Applied by the pod mutating webhook (`webhook.pods`) to every gang pod created without them; the webhook's
match condition (`webhook.registration.pod_needs_mutation`) lets a pod that already has them through
without a call.

grove-initc (docs/startup-ordering.md, "The mechanism"): the reconciler annotates PodCliques that start
after others with `grove.io/startup-dependencies` ("<parent>:<minAvailable>,…"; pods inherit it); it becomes
the init container `grove-initc` with one `--podcliques=<parent>:<minAvailable>` flag per parent, the
downward-API volume `pod-info-vol` (namespace, PodGang name) and the PodCliqueSet's initc token Secret
mounted over the init container's service-account directory, so grove-initc watches pods with its own
narrow RBAC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grove_api import constants as c
from grove_api import naming

GATE = {"name": c.SCHEDULING_GATE_PODGANG_PENDING}
HOSTNAME_LABEL = "kubernetes.io/hostname"
POD_INFO_VOLUME = "pod-info-vol"
POD_INFO_PATH = "/var/grove/pod-info"
TOKEN_VOLUME = "sa-token-secret-vol"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def is_gang_pod(pod: dict[str, Any]) -> bool:
    """A pod the operator created for a PodGang (what the webhook's objectSelector also selects)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get(c.LABEL_MANAGED_BY) == c.MANAGED_BY_VALUE and bool(labels.get(c.LABEL_PODGANG))


def admitted_on_create(pod: dict[str, Any]) -> bool:
    """The operator created this pod for a gang the admitter had already admitted (and pinned it to its
    planned node): it is not gated."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(c.ANNOTATION_ADMITTED_ON_CREATE) == "true"


def with_gate(pod: dict[str, Any]) -> dict[str, Any]:
    """A copy of `pod` carrying Grove's gate (as the webhook would create it)."""
    spec = pod.get("spec") or {}
    gates = [g for g in spec.get("schedulingGates") or [] if g.get("name") != GATE["name"]]
    return {**pod, "spec": {**spec, "schedulingGates": [*gates, GATE]}}


def admitted_on_create_copy(pod: dict[str, Any], hostname: str) -> dict[str, Any]:
    """A copy of `pod` to create for a gang admitted before its pods exist: pinned to `hostname` (the
    nodeSelector a release patch sets), without Grove's gate, and annotated so the webhook adds none."""
    meta = pod.get("metadata") or {}
    spec = dict(pod.get("spec") or {})
    gates = [g for g in spec.pop("schedulingGates", None) or [] if g.get("name") != GATE["name"]]
    if gates:
        spec["schedulingGates"] = gates
    spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), HOSTNAME_LABEL: hostname}
    annotations = {**(meta.get("annotations") or {}), c.ANNOTATION_ADMITTED_ON_CREATE: "true"}
    return {**pod, "metadata": {**meta, "annotations": annotations}, "spec": spec}


def gate_ops(pod: dict[str, Any], *, by_operator: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """JSON patch ops that add Grove's gate (keeping every other gate), and warnings. Idempotent: a pod
    that already carries the gate gets no ops, nor does a pod admitted on creation that the operator itself
    creates (`by_operator`: the request's user is the operator's identity). The annotation alone proves
    nothing (anyone who may create pods can write it): on anybody else's pod it is ignored, with a warning.
    A pod created with `spec.nodeName` skips the scheduler altogether and cannot be gated (the apiserver
    refuses gates on it): it is left alone, with a warning."""
    warnings: list[str] = []
    if admitted_on_create(pod):
        if by_operator:
            return [], []
        warnings.append(
            f"annotation {c.ANNOTATION_ADMITTED_ON_CREATE} is honoured only on pods the grove operator "
            "creates: this pod is gated until its gang is admitted"
        )
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return [], [
            f"pod is created with spec.nodeName {spec['nodeName']!r}: it bypasses the scheduler, "
            "so gang admission cannot hold it back"
        ]
    gates = spec.get("schedulingGates")
    if not gates:
        return [{"op": "add", "path": "/spec/schedulingGates", "value": [GATE]}], warnings
    if any(isinstance(g, dict) and g.get("name") == GATE["name"] for g in gates):
        return [], warnings
    return [{"op": "add", "path": "/spec/schedulingGates/-", "value": GATE}], warnings


def _dependencies(pod: dict[str, Any]) -> list[str] | str:
    """The `--podcliques` values from the annotation, or an error message."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(c.ANNOTATION_STARTUP_DEPENDENCIES, "")
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.rpartition(":")
        if not name or not count.isdigit() or int(count) < 1:
            return (
                f"metadata.annotations[{c.ANNOTATION_STARTUP_DEPENDENCIES}]: Invalid value: {item!r}: "
                "expected <PodClique name>:<minAvailable ≥ 1>, comma-separated"
            )
        out.append(f"{name}:{int(count)}")
    return out


def token_file_mode(pod: dict[str, Any]) -> int:
    """The mode of the token Secret's files: the tightest grove-initc can still read. The kubelet writes a
    Secret volume's files owned by root. grove-initc runs as the pod's user (the operator image's is
    65532), so it needs the files readable by others, unless the pod has an fsGroup: then the kubelet makes
    them group-owned by it, and every container of the pod has it as a supplementary group. Never writable
    (the volume is read-only anyway), never readable by others when the group suffices (docs/security.md)."""
    security = (pod.get("spec") or {}).get("securityContext") or {}
    return 0o440 if security.get("fsGroup") is not None else 0o444


def _append(spec: dict[str, Any], field: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not spec.get(field):
        return [{"op": "add", "path": f"/spec/{field}", "value": items}]
    return [{"op": "add", "path": f"/spec/{field}/-", "value": item} for item in items]


def initc_ops(pod: dict[str, Any], image: str, command: Sequence[str] = ()) -> list[dict[str, Any]] | str:
    """JSON patch ops adding grove-initc and its volumes (none when the pod has no dependencies or already
    has the container: idempotent), or an error message for a malformed annotation. `command` is what runs
    in `image` (the operator's image has both entry points); empty: the image's entrypoint."""
    deps = _dependencies(pod)
    if isinstance(deps, str) or not deps:
        return deps if isinstance(deps, str) else []
    spec = pod.get("spec") or {}
    if any(x.get("name") == c.INIT_CONTAINER_NAME for x in spec.get("initContainers") or []):
        return []
    labels = (pod.get("metadata") or {}).get("labels") or {}
    container: dict[str, Any] = {
        "name": c.INIT_CONTAINER_NAME,
        "image": image,
        **({"command": list(command)} if command else {}),
        "args": [f"--podcliques={d}" for d in deps],
        "volumeMounts": [
            {"name": POD_INFO_VOLUME, "mountPath": POD_INFO_PATH, "readOnly": True},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_PATH, "readOnly": True},
        ],
    }
    volumes = [
        {
            "name": POD_INFO_VOLUME,
            "downwardAPI": {
                "items": [
                    {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}},
                    {
                        "path": "podgangname",
                        "fieldRef": {"fieldPath": f"metadata.labels['{c.LABEL_PODGANG}']"},
                    },
                ]
            },
        },
        {
            "name": TOKEN_VOLUME,
            "secret": {
                "secretName": naming.initc_token_secret(labels.get(c.LABEL_PART_OF, "")),
                "defaultMode": token_file_mode(pod),
            },
        },
    ]
    return _append(spec, "initContainers", [container]) + _append(spec, "volumes", volumes)

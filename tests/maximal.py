"""Build a manifest that sets every field a model declares (a "maximal" object).

Created on the real apiserver and read back, it proves the CRD schema keeps every field the model has
(a field the schema lacked would be pruned) and accepts every value shape the model produces.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel

from grove_api.crdgen import unwrap
from grove_api.models.base import Crd, K8sModel, ObjectMeta

# Small valid values for the embedded Kubernetes types the models keep opaque.
EMBEDDED_EXAMPLES: dict[str, Any] = {
    "io.k8s.api.core.v1.PodSpec": {
        "containers": [{"name": "main", "image": "nginx:latest", "resources": {"requests": {"cpu": "1"}}}],
        "tolerations": [{"key": "fake-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    },
    "io.k8s.api.autoscaling.v2.MetricSpec": {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
    },
    "io.k8s.api.resource.v1.ResourceClaimTemplateSpec": {
        "spec": {
            "devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}]}
        }
    },
}
# Fields left out on purpose, with the reason.
SKIPPED = {
    # Refused on new objects by the CRD's own CEL rule (deprecated); tested separately.
    "pack_domain",
}
TIMESTAMP = "2026-01-01T00:00:00Z"


def value_for(tp: Any, name: str, markers: list[Crd]) -> Any:
    tp, inner = unwrap(tp)
    marker = {k: v for m in [*markers, *inner] for k, v in vars(m).items() if v}
    if "embedded" in marker:
        return EMBEDDED_EXAMPLES[marker["embedded"]]
    if "enum" in marker:
        return marker["enum"][-1]
    if tp is ObjectMeta:
        return {"name": "maximal"}
    if isinstance(tp, type) and issubclass(tp, K8sModel):
        return maximal(tp)
    if tp is str:
        if "pattern" in marker:
            return "rack"
        return TIMESTAMP if name.endswith(("_at", "_time")) else f"{name.replace('_', '-')}-value"
    if tp is bool:
        return False  # not the CRD default (true), so a kept value is visibly ours
    if tp is int:
        return 2
    if tp is float:
        return 0.5
    if get_origin(tp) is list:
        return [value_for(get_args(tp)[0], name, [])]
    if get_origin(tp) is dict:
        return {"example.com/key": "value"}
    raise TypeError(tp)


def maximal(model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in SKIPPED:
            continue
        wire = field.alias or name
        out[wire] = value_for(field.annotation, name, [m for m in field.metadata if isinstance(m, Crd)])
    return out

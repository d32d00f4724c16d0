"""Vendor the Kubernetes OpenAPI definitions our CRDs embed (PodSpec, MetricSpec, ResourceClaimTemplateSpec).

Run against a live kube-apiserver of the version we target (the local cluster):
    KUBECONFIG=.grove/cluster/kubeconfig .venv/bin/python tools/vendor_openapi.py
It writes grove_api/openapi/definitions.json: the transitive closure of the root definitions, nothing else.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

DOCUMENTS = ("/openapi/v3/api/v1", "/openapi/v3/apis/autoscaling/v2", "/openapi/v3/apis/resource.k8s.io/v1")
ROOTS = (
    "io.k8s.api.core.v1.PodSpec",
    "io.k8s.api.autoscaling.v2.MetricSpec",
    "io.k8s.api.resource.v1.ResourceClaimTemplateSpec",
)
OUT = Path(__file__).resolve().parent.parent / "grove_api" / "openapi" / "definitions.json"
PREFIX = "#/components/schemas/"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].removeprefix(PREFIX)] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def main() -> None:
    schemas: dict[str, Any] = {}
    for doc in DOCUMENTS:
        raw = subprocess.run(
            ["kubectl", "get", "--raw", doc], check=True, capture_output=True, text=True
        ).stdout
        schemas.update(json.loads(raw)["components"]["schemas"])
    keep: dict[str, Any] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep[name] = schemas[name]
            todo += _refs(schemas[name])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dict(sorted(keep.items())), indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(keep)} definitions to {OUT}")


if __name__ == "__main__":
    main()

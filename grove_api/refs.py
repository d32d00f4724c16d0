"""An object's identity, as every layer names it: the planner in its actions, the Kubernetes layer in its
requests, the admitter in its writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ref:
    """An object's identity (namespaced unless `namespace` is empty)."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Ref:
        meta = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta.get("name", ""))

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

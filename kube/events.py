"""Core v1 Events, as every controller here writes them (`kubectl describe` shows them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from grove_api.conditions import format_time

JSON = dict[str, Any]


def event(
    obj: JSON, type_: str, reason: str, message: str, now: datetime, *, component: str
) -> dict[str, Any]:
    """A core v1 Event about `obj` (which needs apiVersion, kind and metadata with name, namespace, uid)."""
    meta = obj["metadata"]
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }

"""Core v1 Events, as every controller here writes them (`kubectl describe` shows them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from grove_api.conditions import format_time

JSON = dict[str, Any]
MAX_MESSAGE = 1024  # longer messages are cut (the apiserver's limit is larger; describe output is not)


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
        "message": message[:MAX_MESSAGE],
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def repeated(count: int, message: str, now: datetime) -> JSON:
    """A merge patch that records the Event happened again, as client-go's recorder aggregates a repeat of
    an Event it wrote: `count` and `lastTimestamp` move on (`kubectl describe` shows "x<count> over …")."""
    return {"count": count, "lastTimestamp": format_time(now), "message": message[:MAX_MESSAGE]}

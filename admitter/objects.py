"""Small readers of Kubernetes objects (JSON as the informers hold them) that the admitter's modules share."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from grove_api import conditions as cond

JSON = dict[str, Any]

# The one logger of the admitter's I/O modules (named after the module that loops and composes them).
log = logging.getLogger("admitter.controller")


def key(obj: JSON) -> tuple[str, str]:
    """(namespace, name)."""
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


def rv(obj: JSON) -> int:
    """`metadata.resourceVersion` as a number (0 when absent): to tell whether the informer has shown a
    version newer than the one a write of ours was based on."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def age(obj: JSON, now: datetime) -> float:
    """Seconds since the object's creation (infinite when it has no creation time)."""
    created = cond.parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return (now - created).total_seconds() if created is not None else float("inf")

"""metav1.Condition helpers on raw status dicts (camelCase, as the apiserver returns them).

Semantics are apimachinery's ``meta.SetStatusCondition``: a condition is identified by ``type``;
``lastTransitionTime`` moves only when ``status`` flips; ``reason``, ``message`` and ``observedGeneration``
are always updated. Gang-termination timers are measured from ``lastTransitionTime``, so it must not move
on reason- or message-only changes. Functions never mutate their arguments and never read the clock: the
caller passes ``now``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"


@functools.lru_cache(maxsize=256)
def format_time(now: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and second precision (metav1.Time's wire format).

    A naive datetime is taken to be UTC. Cached: a pass formats its one `now` for every condition it sets.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def parse_time(value: str | None) -> datetime | None:
    """Parse an RFC 3339 timestamp as written by the apiserver (``Z`` or an offset); None if absent or bad.
    Cached: pods created together share their creation second, and every watch event parses it again."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def get_condition(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    """The condition of that type (a copy), or None."""
    for cond in conditions or ():
        if cond.get("type") == type_:
            return dict(cond)
    return None


def condition_status(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> str | None:
    """``True``/``False``/``Unknown`` of the condition of that type, or None when it is absent."""
    cond = get_condition(conditions, type_)
    return None if cond is None else str(cond.get("status"))


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    return condition_status(conditions, type_) == TRUE


def set_condition(
    conditions: Iterable[Mapping[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[dict[str, Any]]:
    """A new list with the condition of ``type_`` set (added at the end, or updated in place).

    ``lastTransitionTime`` is ``now`` for a new condition or a status flip, else kept.
    ``observedGeneration`` is written when given and dropped when not (as SetStatusCondition does).
    """
    if status not in (TRUE, FALSE, UNKNOWN):
        raise ValueError(f"condition status must be True, False or Unknown, not {status!r}")
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions or ():
        if cond.get("type") != type_ or found:
            out.append(dict(cond))
            continue
        found = True
        updated = dict(cond)
        if updated.get("status") != status or not updated.get("lastTransitionTime"):
            updated["lastTransitionTime"] = format_time(now)
        updated["status"] = status
        updated["reason"] = reason
        updated["message"] = message
        if observed_generation is None:
            updated.pop("observedGeneration", None)
        else:
            updated["observedGeneration"] = observed_generation
        out.append(updated)
    if not found:
        new: dict[str, Any] = {
            "type": type_,
            "status": status,
            "lastTransitionTime": format_time(now),
            "reason": reason,
            "message": message,
        }
        if observed_generation is not None:
            new["observedGeneration"] = observed_generation
        out.append(new)
    return out


def remove_condition(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> list[dict[str, Any]]:
    """A new list without conditions of that type."""
    return [dict(c) for c in conditions or () if c.get("type") != type_]


def condition_key(cond: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """What makes two conditions semantically equal: type, status, reason, message (not the times)."""
    return (
        str(cond.get("type", "")),
        str(cond.get("status", "")),
        str(cond.get("reason", "")),
        str(cond.get("message", "")),
    )


def conditions_equal(a: Iterable[Mapping[str, Any]] | None, b: Iterable[Mapping[str, Any]] | None) -> bool:
    """Equal by type/status/reason/message, ignoring order, lastTransitionTime and observedGeneration."""
    return sorted(condition_key(c) for c in a or ()) == sorted(condition_key(c) for c in b or ())

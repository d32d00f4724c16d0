"""Events on the PodCliqueSet for what a user looks for in `kubectl describe pcs`: what a reconcile pass
created, deleted or failed to do. One Event per (reason, kind) per pass, with counts and a few names,
so a 1,000-pod PodCliqueSet yields a handful of Events, not thousands."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from grove_api import constants as c
from grove_api.conditions import format_time
from kube.events import event
from reconciler.executor import Failure, NameTaken, Report, describe
from reconciler.planner.actions import kind_of
from reconciler.planner.snapshot import Obj

COMPONENT = c.OPERATOR_NAME
MAX_NAMES = 3


def _summary(kind: str, names: list[str], verb: str) -> str:
    shown = ", ".join(names[:MAX_NAMES]) + (
        f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    )
    noun = kind if len(names) == 1 else f"{kind}s"
    return f"{verb} {len(names)} {noun}: {shown}"


def events_for(pcs: Obj, report: Report, now: datetime) -> list[dict[str, Any]]:
    """Core v1 Events (Normal for what was done, Warning for what failed) about one reconcile pass."""
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for created in report.created:
        if not created.existed:
            grouped[("Normal", "SuccessfulCreate", created.ref.kind)].append(created.ref.name)
    for ref in report.deleted:
        grouped[("Normal", "SuccessfulDelete", ref.kind)].append(ref.name)
    out = []
    for (kind_of_event, reason, kind), names in sorted(grouped.items()):
        verb = "Created" if reason == "SuccessfulCreate" else "Deleted"
        out.append(_event(pcs, kind_of_event, reason, _summary(kind, names, verb), now))
    for failure in report.errors[:MAX_NAMES]:
        out.append(_event(pcs, "Warning", failure_reason(failure), _failure_message(failure), now))
    if len(report.errors) > MAX_NAMES:
        more = len(report.errors) - MAX_NAMES
        out.append(
            _event(
                pcs, "Warning", "ReconcileFailed", f"{more} more actions failed (see the operator's log)", now
            )
        )
    return out


REASON_NAME_CONFLICT = "NameConflict"


def failure_reason(failure: Failure) -> str:
    """The Event reason of a failed action: NameConflict for a name someone else's object has."""
    return REASON_NAME_CONFLICT if isinstance(failure.error, NameTaken) else "ReconcileFailed"


def _failure_message(failure: Failure) -> str:
    # NameTaken's message names the object already.
    return (
        failure.message
        if isinstance(failure.error, NameTaken)
        else f"{describe(failure.action)}: {failure.message}"
    )


MAX_LAST_ERRORS = 10
_ERROR_VERBS = {"Create": "SYNC", "Apply": "SYNC", "Delete": "DELETE", "PatchStatus": "UPDATE_STATUS"}


def error_code(failure: Failure) -> str:
    """A Grove-style error code for a failed action: ERR_SYNC_PODCLIQUE, ERR_DELETE_POD, ...; a name taken by
    someone else's object: ERR_NAME_CONFLICT_SERVICEACCOUNT, ..."""
    action = failure.action
    if isinstance(failure.error, NameTaken):
        return f"ERR_NAME_CONFLICT_{kind_of(action).upper()}"
    verb = _ERROR_VERBS.get(type(action).__name__, "REMOVE_FINALIZER")
    return f"ERR_{verb}_{kind_of(action).upper()}"


def last_errors(
    report: Report, now: datetime, invalid: list[str] | None = None
) -> list[dict[str, str]] | None:
    """`status.lastErrors` after a pass: what failed (a few, with codes) and why the spec cannot be acted on
    (`invalid`, code ERR_INVALID_SPEC), or None (clear) when nothing did."""
    if report.ok and not invalid:
        return None
    stamp = format_time(now)
    out = [{"code": "ERR_INVALID_SPEC", "description": d, "observedAt": stamp} for d in invalid or []]
    out += [
        {
            "code": error_code(f),
            "description": _failure_message(f),
            "observedAt": stamp,
        }
        for f in report.errors
    ]
    out = out[:MAX_LAST_ERRORS]
    if report.skipped and len(out) < MAX_LAST_ERRORS:
        out.append(
            {
                "code": "ERR_SYNC_POD",
                "description": f"pod writes not attempted after a failed batch: {len(report.skipped)}",
                "observedAt": stamp,
            }
        )
    return out


def same_errors(stored: list[dict[str, str]] | None, new: list[dict[str, str]] | None) -> bool:
    """The same failures (codes and actions), whatever the messages and times say: rewriting lastErrors
    only when this changes keeps a failing PodCliqueSet from waking itself through its own status (the
    apiserver's messages name generated pods, which differ on every attempt)."""

    def key(errors: list[dict[str, str]] | None) -> list[tuple[str, str]]:
        return [(e.get("code", ""), e.get("description", "").split(": ", 1)[0]) for e in errors or []]

    return key(stored) == key(new)


def _event(pcs: Obj, type_: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    return event(
        {"apiVersion": c.API_VERSION, "kind": c.KIND_PODCLIQUESET, **pcs},
        type_,
        reason,
        message,
        now,
        component=COMPONENT,
    )

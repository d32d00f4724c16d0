"""What the planner asks the executor to do. Plain data: the executor maps kinds to API calls. (`Ref`, an
object's identity, comes from the API package: the Kubernetes layer names objects with it too.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grove_api.refs import Ref


@dataclass(frozen=True)
class Create:
    """POST the object. AlreadyExists counts as done (the cache was behind). `generateName` objects
    (pods) are created as given; the executor records the created object's name and uid."""

    obj: dict[str, Any]
    reason: str = ""


@dataclass(frozen=True)
class Apply:
    """Server-side apply of the fields we own (field manager grove-operator, force)."""

    obj: dict[str, Any]
    reason: str = ""


@dataclass(frozen=True)
class ReplaceSpec:
    """Replace the whole spec (a JSON patch), for a kind whose spec is all ours (PodGang): fields the desired
    state no longer has go too, which a server-side apply cannot do for fields the object was created with
    by a POST (those belong to the POST's field manager entry, not to the apply's)."""

    ref: Ref
    spec: dict[str, Any]
    reason: str = ""


@dataclass(frozen=True)
class Delete:
    """DELETE with a uid precondition (so a newer object of the same name is never deleted); NotFound is
    success. Propagation: background.

    `orphan_of`: the delete of an orphan, a pod whose controller (this PodClique ref and uid) the caches no
    longer show alive. They may be behind (a PodClique created a moment ago is not in them yet), so the
    executor first reads the owner from the apiserver and deletes only when that uid is gone or being
    deleted (as the garbage collector checks before it deletes a dependent)."""

    ref: Ref
    uid: str = ""
    reason: str = ""
    orphan_of: tuple[Ref, str] | None = None


@dataclass(frozen=True)
class PatchStatus:
    """JSON merge patch of the status subresource; with `apply`, a server-side apply of just these fields
    instead, which leaves the rest of the status alone: a PodGang's `Initialized` condition, written by the
    reconciler only while gang admission is off (docs/gang-admission.md, "Status ownership"); conditions
    are a list map keyed by type, so the other conditions (an `Admitted` from when it was on) stay."""

    ref: Ref
    status: dict[str, Any] = field(default_factory=dict)
    apply: bool = False


@dataclass(frozen=True)
class RemoveFinalizer:
    """Remove one finalizer (JSON patch with a resourceVersion test)."""

    ref: Ref
    finalizer: str
    resource_version: str = ""


Action = Create | Apply | ReplaceSpec | Delete | PatchStatus | RemoveFinalizer


def kind_of(action: Action) -> str:
    """The kind of object an action writes."""
    if isinstance(action, Create | Apply):
        return str(action.obj.get("kind", ""))
    return action.ref.kind

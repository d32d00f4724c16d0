"""Managed-resource protection: Grove's "authorizer" webhook (docs/admission.md, "Managed-resource
protection").

Objects the operator creates for a PodCliqueSet (PodCliques, PodCliqueScalingGroups, PodGangs, Services,
Roles, …) carry `app.kubernetes.io/managed-by: grove-operator` (the webhook's objectSelector) and
`app.kubernetes.io/part-of: <pcs>`. Only the operator itself and a few exempt controllers (garbage
collector, HPA) may write them; anyone else is refused with a message that says who was refused, what
object, which PodCliqueSet manages it and how to make the change instead. Anyone may scale a PodClique or
scaling group, though, with a patch or an edit of spec.replicas alone as with `kubectl scale`. Creates are
covered too (for every kind, where Grove covers only its own kinds): nobody else may create an object that
claims to be the operator's, for an existing PodCliqueSet or for one not created yet (whose child names it
would pre-empt). An update or delete whose PodCliqueSet is gone is allowed with a warning, as in Grove.

The decision is a pure function (`decide`) of the request and what is known about the parent
PodCliqueSet; `handler` only fetches the parent through an injected lookup.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from grove_api import constants as c
from webhook.admission import AdmissionRequest, AdmissionResponse, Handler, allow, deny, malformed_metadata

log = logging.getLogger(__name__)

# PodCliqueSet name + namespace -> its metadata (labels, annotations, …), or None when it does not exist.
ParentLookup = Callable[[str, str], Awaitable[dict[str, Any] | None]]

SHORT_NAMES = {c.KIND_PODCLIQUE: "pclq", c.KIND_PODCLIQUESCALINGGROUP: "pcsg"}
VERBS = {"CREATE": "create", "UPDATE": "update", "DELETE": "delete"}


def service_account_username(namespace: str, name: str) -> str:
    """The username a ServiceAccount token authenticates as."""
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass(frozen=True)
class Identity:
    """Who may write managed resources: the operator's own ServiceAccount and the exempt usernames."""

    reconciler: str
    exempt: frozenset[str] = frozenset()

    @classmethod
    def of(cls, reconciler: str, exempt: Iterable[str] = ()) -> Identity:
        return cls(reconciler, frozenset(exempt))


@dataclass(frozen=True)
class Parent:
    """What the handler learnt about the parent PodCliqueSet (`name` None: no part-of label)."""

    name: str | None
    metadata: dict[str, Any] | None = None  # None: the PodCliqueSet does not exist

    @property
    def protection_disabled(self) -> bool:
        annotations = (self.metadata or {}).get("annotations") or {}
        return str(annotations.get(c.ANNOTATION_DISABLE_PROTECTION, "")).lower() == "true"


def subject_metadata(request: AdmissionRequest) -> dict[str, Any] | None:
    """The metadata that decides: the new object's on CREATE, the old object's on UPDATE and DELETE."""
    obj = request.object if request.operation == "CREATE" else request.old_object
    if obj is None:
        return None
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def parent_name(metadata: dict[str, Any]) -> str | None:
    labels = metadata.get("labels") or {}
    value = labels.get(c.LABEL_PART_OF)
    return str(value) if value else None


def _resource(request: AdmissionRequest, metadata: dict[str, Any]) -> str:
    name = metadata.get("name") or request.name
    namespace = metadata.get("namespace") or request.namespace
    return f"{namespace}/{name}" if namespace else str(name)


def _kind(request: AdmissionRequest) -> str:
    return request.kind.get("kind") or request.resource.get("resource") or "resource"


def denial_message(request: AdmissionRequest, metadata: dict[str, Any], pcs: str, identity: Identity) -> str:
    """Who was refused, what, why, and how to get the change made instead."""
    kind = _kind(request)
    verb = VERBS.get(request.operation, request.operation.lower())
    name = metadata.get("name") or request.name
    namespace = metadata.get("namespace") or request.namespace
    ns = f" -n {namespace}" if namespace else ""
    ways = [
        f"edit the PodCliqueSet (`kubectl edit pcs {pcs}{ns}`)",
        f"scale it (`kubectl scale pcs {pcs}{ns} --replicas=N`)",
    ]
    short = SHORT_NAMES.get(kind)
    if short and name:
        ways.append(f"scale this {kind} (`kubectl scale {short} {name}{ns} --replicas=N`)")
    ways.append(
        "turn the protection off for this PodCliqueSet "
        f"(`kubectl annotate pcs {pcs}{ns} {c.ANNOTATION_DISABLE_PROTECTION}=true`)"
    )
    return (
        f'user "{request.username or "<anonymous>"}" may not {verb} {kind} {_resource(request, metadata)}: '
        f"it is managed by PodCliqueSet {pcs}, and only the grove operator ({identity.reconciler}) "
        f"may change it. Instead, {', '.join(ways[:-1])}, or {ways[-1]}."
    )


def preemption_message(request: AdmissionRequest, metadata: dict[str, Any], pcs: str) -> str:
    """A create of an object labelled as the operator's for a PodCliqueSet that does not exist (yet): once
    it does, the operator would find the name taken (and never adopts what it did not create)."""
    namespace = metadata.get("namespace") or request.namespace
    return (
        f'user "{request.username or "<anonymous>"}" may not create {_kind(request)} '
        f"{_resource(request, metadata)} labelled {c.LABEL_MANAGED_BY}={c.MANAGED_BY_VALUE} for "
        f"PodCliqueSet {pcs}, which does not exist in {namespace}: only the grove operator creates objects "
        f"with that label, and this one would take a name it needs. Create it without the "
        f"{c.LABEL_MANAGED_BY} label, or create the PodCliqueSet and let the operator make its children."
    )


_SERVER_METADATA = ("resourceVersion", "generation", "managedFields")


def _apart_from_replicas(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` without spec.replicas and without what the apiserver itself changes on every update."""
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_METADATA}
    spec = obj.get("spec") or {}
    out["spec"] = {k: v for k, v in spec.items() if k != "replicas"} if isinstance(spec, dict) else spec
    return out


def scale_only(request: AdmissionRequest) -> bool:
    """An update that changes nothing but spec.replicas: what `kubectl scale` does through the scale
    subresource (which this webhook is not called for), done with a patch or an edit instead. The scalers
    own that field (the operator never puts it back), so it is the user's to change."""
    old, new = request.old_object, request.object
    return old is not None and new is not None and _apart_from_replicas(old) == _apart_from_replicas(new)


def decide(request: AdmissionRequest, parent: Parent, identity: Identity) -> AdmissionResponse:
    """The authorizer's decision, given what the handler found out about the parent PodCliqueSet."""
    if request.operation == "CONNECT":
        return allow("operation CONNECT is allowed")
    metadata = subject_metadata(request) or {}
    resource = _resource(request, metadata)
    if parent.name is None:
        return allow(
            warnings=[
                f"missing required label {c.LABEL_PART_OF} on resource {resource}, "
                "could not determine parent PodCliqueSet"
            ]
        )
    if parent.metadata is None:
        if request.operation == "CREATE" and request.username not in (identity.reconciler, *identity.exempt):
            return deny(preemption_message(request, metadata, parent.name))
        return allow(warnings=[f"parent PodCliqueSet {parent.name} not found for resource: {resource}"])
    namespace = metadata.get("namespace") or request.namespace
    if parent.protection_disabled:
        return allow(
            f"admission allowed, resource protection is disabled for PodCliqueSet: {namespace}/{parent.name}"
        )
    user = request.username
    if request.operation in ("CREATE", "UPDATE"):
        if user == identity.reconciler:
            return allow(
                f"admission allowed, creation/updation of resource: {resource} is initiated by the grove "
                "reconciler service account"
            )
        if user in identity.exempt:
            return allow(
                f"admission allowed, creation/updation of resource: {resource} is initiated by exempt "
                f"serviceaccount: {user}"
            )
        if request.operation == "UPDATE" and _kind(request) in SHORT_NAMES and scale_only(request):
            return allow(
                f"admission allowed, only spec.replicas of {_kind(request)} {resource} changes: a scale, "
                "as `kubectl scale` makes"
            )
        return deny(denial_message(request, metadata, parent.name, identity))
    if request.operation == "DELETE":
        if _kind(request) == "Pod":
            return allow(
                "admission allowed, deletion of resource: Pod is allowed for all users having sufficient RBAC"
            )
        if user == identity.reconciler:
            return allow(
                f"admission allowed, deletion of resource: {resource} is initiated by the grove reconciler "
                "service account"
            )
        if user in identity.exempt:
            return allow(
                f"admission allowed, deletion of resource: {resource} is initiated by exempt serviceaccount: {user}"
            )
        return deny(denial_message(request, metadata, parent.name, identity))
    return deny("Unhandled operation. Admission denied.")


async def find_parent(request: AdmissionRequest, lookup: ParentLookup) -> Parent:
    """The parent PodCliqueSet named by the subject's part-of label (errors from `lookup` propagate)."""
    metadata = subject_metadata(request) or {}
    name = parent_name(metadata)
    if name is None:
        return Parent(None)
    namespace = metadata.get("namespace") or request.namespace
    return Parent(name, await lookup(namespace, name))


def handler(identity: Identity, lookup: ParentLookup) -> Handler:
    """The admission handler for `paths.AUTHORIZER`."""

    async def handle(request: AdmissionRequest) -> AdmissionResponse:
        if request.operation == "CONNECT":
            return decide(request, Parent(None), identity)
        if subject_metadata(request) is None:
            which = "object" if request.operation == "CREATE" else "oldObject"
            return deny(
                f"could not decode the request: {which} is missing for {request.operation}",
                code=400,
                reason="BadRequest",
            )
        if (malformed := malformed_metadata(request)) is not None:
            return malformed
        try:
            parent = await find_parent(request, lookup)
        except Exception as err:
            log.warning("authorizer: looking up the parent PodCliqueSet failed: %s", err)
            return deny(
                f"could not look up the parent PodCliqueSet of {_resource(request, subject_metadata(request) or {})}: {err}",
                code=500,
                reason="InternalError",
            )
        return decide(request, parent, identity)

    return handle

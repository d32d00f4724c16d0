"""AdmissionReview v1 in and out: parsing, responses, JSON patches. Pure (no aiohttp, no I/O).

Handlers receive an `AdmissionRequest` and return an `AdmissionResponse`; the server turns malformed
bodies into HTTP 400 and handler failures into a denial, never into an HTTP 500.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class BadReview(ValueError):
    """The body is not a well-formed AdmissionReview v1 request (answered with HTTP 400)."""


@dataclass(frozen=True)
class AdmissionRequest:
    uid: str
    operation: str
    kind: dict[str, str]
    resource: dict[str, str]
    sub_resource: str
    name: str
    namespace: str
    username: str
    groups: tuple[str, ...]
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    dry_run: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def subject(self) -> dict[str, Any] | None:
        """The object a decision is about: the new one, or the old one on DELETE."""
        return self.object if self.object is not None else self.old_object


@dataclass(frozen=True)
class AdmissionResponse:
    allowed: bool
    message: str = ""
    code: int = 200
    reason: str = ""
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: tuple[str, ...] = ()


Handler = Callable[[AdmissionRequest], Awaitable[AdmissionResponse]]


def _dict_or_none(value: Any, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadReview(f"request.{what} must be an object, got {type(value).__name__}")
    return value


def parse_review(body: bytes | str) -> AdmissionRequest:
    """Parse a request body; raises BadReview with a message that says what is wrong."""
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadReview(f"body is not valid JSON: {err}") from None
    except RecursionError:
        raise BadReview("body is not a valid AdmissionReview: JSON nested too deeply") from None
    if not isinstance(review, dict):
        raise BadReview("body must be a JSON object (an AdmissionReview)")
    if review.get("kind") != KIND or review.get("apiVersion") != API_VERSION:
        raise BadReview(
            f"expected kind {KIND} apiVersion {API_VERSION}, got kind {review.get('kind')!r} "
            f"apiVersion {review.get('apiVersion')!r}"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid is required")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise BadReview(f"request.operation must be one of {', '.join(OPERATIONS)}, got {operation!r}")
    user = request.get("userInfo") or {}
    if not isinstance(user, dict):
        raise BadReview("request.userInfo must be an object")
    strings = {k: request.get(k) or "" for k in ("subResource", "name", "namespace")}
    if not all(isinstance(v, str) for v in strings.values()):
        raise BadReview("request.name, request.namespace and request.subResource must be strings")
    kind = request.get("kind") or {}
    resource = request.get("resource") or {}
    if not isinstance(kind, dict) or not isinstance(resource, dict):
        raise BadReview("request.kind and request.resource must be objects")
    groups = user.get("groups") or []
    return AdmissionRequest(
        uid=uid,
        operation=operation,
        kind={k: str(v) for k, v in kind.items()},
        resource={k: str(v) for k, v in resource.items()},
        sub_resource=strings["subResource"],
        name=strings["name"],
        namespace=strings["namespace"],
        username=str(user.get("username") or ""),
        groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        object=_dict_or_none(request.get("object"), "object"),
        old_object=_dict_or_none(request.get("oldObject"), "oldObject"),
        dry_run=bool(request.get("dryRun")),
        raw=request,
    )


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` has objects or arrays more than `limit` levels deep (iterative: a recursive walk
    would fail on the very input it looks for)."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def malformed_metadata(request: AdmissionRequest) -> AdmissionResponse | None:
    """A 400 for an object or oldObject whose metadata, labels or annotations are not objects of strings.
    The apiserver never sends one; a hand-made review that does gets a refusal that says so, not a handler's
    AttributeError (a 500)."""
    for what, obj in (("object", request.object), ("oldObject", request.old_object)):
        if obj is None:
            continue
        meta = obj.get("metadata", {})
        if not isinstance(meta, dict):
            return deny(f"request.{what}.metadata: must be an object", code=400, reason="BadRequest")
        for field_name in ("labels", "annotations"):
            values = meta.get(field_name) or {}
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                return deny(
                    f"request.{what}.metadata.{field_name}: must be an object of strings",
                    code=400,
                    reason="BadRequest",
                )
    return None


def allow(message: str = "", warnings: tuple[str, ...] | list[str] = ()) -> AdmissionResponse:
    return AdmissionResponse(allowed=True, message=message, warnings=tuple(warnings))


def deny(
    message: str, *, code: int = 403, reason: str = "Forbidden", warnings: tuple[str, ...] | list[str] = ()
) -> AdmissionResponse:
    return AdmissionResponse(
        allowed=False, message=message, code=code, reason=reason, warnings=tuple(warnings)
    )


def mutate(
    original: dict[str, Any], mutated: dict[str, Any], warnings: tuple[str, ...] | list[str] = ()
) -> AdmissionResponse:
    """Allow with the JSON patch that turns `original` into `mutated` (no patch when equal)."""
    return patched(jsonpatch.make_patch(original, mutated).patch, warnings)


def patched(ops: list[dict[str, Any]], warnings: tuple[str, ...] | list[str] = ()) -> AdmissionResponse:
    """Allow with a JSON patch computed by the caller."""
    return AdmissionResponse(allowed=True, patch=list(ops), warnings=tuple(warnings))


def review_response(uid: str, response: AdmissionResponse) -> dict[str, Any]:
    """The AdmissionReview the apiserver expects back (same apiVersion/kind, same uid)."""
    out: dict[str, Any] = {"uid": uid, "allowed": response.allowed}
    if response.patch:
        out["patchType"] = "JSONPatch"
        out["patch"] = base64.b64encode(json.dumps(response.patch).encode()).decode()
    if response.warnings:
        out["warnings"] = list(response.warnings)
    if not response.allowed or response.message:
        status: dict[str, Any] = {"code": response.code, "message": response.message}
        if response.reason:
            status["reason"] = response.reason
        out["status"] = status
    return {"apiVersion": API_VERSION, "kind": KIND, "response": out}

"""A small typed facade over one kubernetes_asyncio `ApiClient`: raw dicts in, raw dicts out.

Every call is one request on the `ApiClient`'s aiohttp session, on the generic REST path built from
`resources.Resource`, so core kinds and Grove's custom resources are handled alike and no model objects are
built. The library's `call_api` is bypassed: it walks every request body to "sanitize" it, which costs more than
the request itself at a thousand pods. `plain_session` makes that session skip aiohttp's per-request proxy and
~/.netrc lookups (a file read in a thread per request). This module checks the status itself and maps failures
to a small exception hierarchy carrying the apiserver's message:

    KubeError
      NotFound (404)   AlreadyExists (409, reason AlreadyExists)   Conflict (409 otherwise)
      Invalid (400, 422)   Forbidden (401, 403)   Gone (410: resourceVersion too old)
      Unavailable (429, 5xx, timeouts, connection errors: retry later)
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from kubernetes_asyncio.client import ApiClient

from grove_api import constants
from grove_api.refs import Ref
from kube.resources import Resource, lookup

JSON = dict[str, Any]

CONTENT_JSON = "application/json"
CONTENT_MERGE_PATCH = "application/merge-patch+json"
CONTENT_STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
CONTENT_JSON_PATCH = "application/json-patch+json"
CONTENT_APPLY = "application/apply-patch+yaml"


# --- errors ------------------------------------------------------------------------------------------------
class KubeError(Exception):
    """An API call failed. `status` is the HTTP code (0 when the request never completed)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    pass


class AlreadyExists(KubeError):
    """Create of a name that exists; `existing` is the stored object when it could be fetched."""

    def __init__(self, message: str, *, status: int = 409, reason: str = "AlreadyExists") -> None:
        super().__init__(message, status=status, reason=reason)
        self.existing: JSON | None = None


class Conflict(KubeError):
    """Optimistic-concurrency or precondition failure: re-read and retry."""


class Invalid(KubeError):
    """The request was rejected as invalid (422 or 400; also webhook denials that use those codes)."""


class Forbidden(KubeError):
    pass


class NamespaceTerminating(Forbidden):
    """403 to a create in a namespace that is being deleted: nothing new may appear there any more."""


class Gone(KubeError):
    """410: the requested resourceVersion is no longer available (a watch must re-list)."""


class Unavailable(KubeError):
    """Transient: throttled, server error, timeout or connection failure."""


def error_from_status(status: int, payload: JSON | None, context: str = "") -> KubeError:
    """Map an HTTP status and an optional `Status` object to the exception hierarchy."""
    payload = payload or {}
    reason = str(payload.get("reason", "") or "")
    message = str(payload.get("message", "") or "") or reason or f"HTTP {status}"
    if context:
        message = f"{context}: {message}"
    cls: type[KubeError]
    if status == 404:
        cls = NotFound
    elif status == 409 and reason == "AlreadyExists":
        return AlreadyExists(message, status=status, reason=reason)
    elif status == 409:
        cls = Conflict
    elif status in (400, 422):
        cls = Invalid
    elif status == 403 and _cause(payload, "NamespaceTerminating"):
        cls = NamespaceTerminating
    elif status in (401, 403):
        cls = Forbidden
    elif status == 410:
        cls = Gone
    elif status == 429 or status >= 500 or status == 0:
        cls = Unavailable
    else:
        cls = KubeError
    return cls(message, status=status, reason=reason)


def _cause(payload: JSON, kind: str) -> bool:
    """A `details.causes` entry of this kind (a StatusCause's type is serialized as `reason`)."""
    causes = (payload.get("details") or {}).get("causes") or []
    return any(isinstance(x, dict) and x.get("reason") == kind for x in causes)


def _error_from_body(status: int, body: bytes, context: str) -> KubeError:
    try:
        payload = orjson.loads(body) if body else None
    except ValueError:
        payload = {"message": body[:500].decode("utf-8", "replace")}
    return error_from_status(status, payload if isinstance(payload, dict) else None, context)


# --- helpers -----------------------------------------------------------------------------------------------
def resource_of(api_version: str, kind: str) -> Resource:
    return lookup(api_version, kind)


def _selector(selector: str | dict[str, str] | None) -> str | None:
    if selector is None or isinstance(selector, str):
        return selector or None
    return ",".join(f"{k}={v}" for k, v in selector.items()) or None


# --- client ------------------------------------------------------------------------------------------------
def plain_session(api: ApiClient) -> ApiClient:
    """Give `api` an aiohttp session that ignores the environment (call inside the event loop).

    kubernetes_asyncio opens its session with `trust_env=True`: then every request looks up proxy variables and
    reads ~/.netrc in the default thread pool, about a tenth of the operator's CPU during a 1,000-pod create.
    An operator talks to one apiserver whose address and credentials come from its kubeconfig or
    ServiceAccount, so it has no use for either. The connection pool (and its TLS settings) is kept.
    """
    rest = api.rest_client
    connector = rest.pool_manager.connector
    rest.pool_manager.detach()  # the old session lets go of the pool without closing it
    rest.pool_manager = aiohttp.ClientSession(connector=connector, trust_env=False, read_bufsize=2**21)
    return api


class KubeClient:
    """The operator's only path to the apiserver. One instance wraps one shared `ApiClient`.

    Connection pool: every running watch holds one pooled connection, so the ApiClient's
    `connection_pool_maxsize` (default 100) must exceed informers + executor concurrency.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        field_manager: str = constants.FIELD_MANAGER,
        request_timeout: float = 60.0,
    ) -> None:
        self.api = api
        self.field_manager = field_manager
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=10)

    # -- transport --
    async def open(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = CONTENT_JSON,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request and return the unread response (status checked: raises on non-2xx)."""
        conf = self.api.configuration
        headers = {
            "Accept": CONTENT_JSON,
            "Content-Type": content_type,
            "User-Agent": str(self.api.user_agent),
        }
        token = await conf.get_api_key_with_prefix("BearerToken") if "BearerToken" in conf.api_key else None
        if token:
            headers["Authorization"] = str(token)
        url = f"{conf.host}{path}" + (f"?{urlencode(list(query))}" if query else "")
        data = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
        try:
            resp: aiohttp.ClientResponse = await self.api.rest_client.pool_manager.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=timeout or self._timeout,
                server_hostname=conf.tls_server_name,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise Unavailable(f"{method} {path}: {err!r}") from err
        if not 200 <= resp.status < 300:
            try:
                data = await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                data = b""
            finally:
                resp.release()
            raise _error_from_body(resp.status, data, f"{method} {path}")
        return resp

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = CONTENT_JSON,
    ) -> JSON:
        """Send a request and return the decoded JSON response body."""
        resp = await self.open(method, path, query=query, body=body, content_type=content_type)
        try:
            data = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise Unavailable(f"{method} {path}: reading the response: {err!r}") from err
        finally:
            resp.release()
        out: JSON = orjson.loads(data) if data else {}
        return out

    # -- reads --
    async def get(self, ref: Ref) -> JSON:
        res = resource_of(ref.api_version, ref.kind)
        return await self.request("GET", res.object_path(ref.namespace, ref.name))

    async def list_page(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        limit: int = 500,
        continue_token: str | None = None,
        field_selector: str | None = None,
    ) -> JSON:
        """One page of a LIST (a raw `...List` dict; its items lack apiVersion/kind for core kinds)."""
        query: list[tuple[str, str]] = [("limit", str(limit))]
        sel = _selector(label_selector)
        if sel:
            query.append(("labelSelector", sel))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if continue_token:
            query.append(("continue", continue_token))
        return await self.request("GET", resource.collection_path(namespace), query=query)

    async def list_all(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        page_size: int = 500,
        field_selector: str | None = None,
    ) -> tuple[list[JSON], str]:
        """Every object (all pages), with apiVersion and kind filled in, and the list's resourceVersion."""
        items: list[JSON] = []
        token: str | None = None
        while True:
            page = await self.list_page(
                resource,
                namespace=namespace,
                label_selector=label_selector,
                limit=page_size,
                continue_token=token,
                field_selector=field_selector,
            )
            api_version, kind = resource.api_version, resource.kind
            for item in page.get("items") or ():
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                items.append(item)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                return items, str(meta.get("resourceVersion", ""))

    async def watch(
        self,
        resource: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        timeout_seconds: int = 300,
        bookmarks: bool = True,
        field_selector: str | None = None,
    ) -> aiohttp.ClientResponse:
        """Open a WATCH stream (newline-delimited JSON events). The caller reads it and must `close()` it.

        The server ends the stream after `timeout_seconds`; the client read timeout is 30 s longer, so a
        silently dead connection surfaces as a timeout instead of hanging forever (kubernetes_asyncio #360).
        """
        query: list[tuple[str, str]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        sel = _selector(label_selector)
        if sel:
            query.append(("labelSelector", sel))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        return await self.open("GET", resource.collection_path(namespace), query=query, timeout=timeout)

    # -- writes --
    async def create(self, obj: JSON) -> JSON:
        """POST the object; `AlreadyExists` (with `.existing` when fetchable) if the name is taken."""
        res = resource_of(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or None
        try:
            return await self.request("POST", res.collection_path(namespace), body=obj)
        except AlreadyExists as err:
            if meta.get("name"):
                with contextlib.suppress(KubeError):
                    err.existing = await self.request("GET", res.object_path(namespace, meta["name"]))
            raise

    async def apply(self, obj: JSON, field_manager: str | None = None, force: bool = True) -> JSON:
        """Server-side apply of `obj` (only the fields we own: no status, resourceVersion or managedFields)."""
        res = resource_of(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        query = [("fieldManager", field_manager or self.field_manager)]
        if force:
            query.append(("force", "true"))
        return await self.request(
            "PATCH",
            res.object_path(meta.get("namespace"), meta["name"]),
            query=query,
            body=obj,
            content_type=CONTENT_APPLY,
        )

    async def patch(self, ref: Ref, patch: Any, *, content_type: str, subresource: str = "") -> JSON:
        res = resource_of(ref.api_version, ref.kind)
        path = res.object_path(ref.namespace, ref.name, subresource)
        return await self.request("PATCH", path, body=patch, content_type=content_type)

    async def delete(self, ref: Ref, uid: str | None = None, propagation: str = "Background") -> bool:
        """DELETE, only if the stored object still has `uid` (when given).

        True if the apiserver accepted the deletion; False if the object was already gone (404) or the uid
        precondition failed (409: a newer object of the same name exists, which we must not delete).
        """
        res = resource_of(ref.api_version, ref.kind)
        body: JSON = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", res.object_path(ref.namespace, ref.name), body=body)
        except (NotFound, Conflict):
            return False
        return True

    async def replace_spec(self, ref: Ref, spec: JSON) -> JSON:
        """Replace `spec` whole (JSON patch)."""
        patch = [{"op": "replace", "path": "/spec", "value": spec}]
        return await self.patch(ref, patch, content_type=CONTENT_JSON_PATCH)

    async def patch_status(self, ref: Ref, status: JSON) -> JSON:
        """JSON merge patch of `status` (lists such as conditions are replaced whole: send them complete)."""
        res = resource_of(ref.api_version, ref.kind)
        sub = "status" if res.status_subresource else ""
        return await self.patch(ref, {"status": status}, content_type=CONTENT_MERGE_PATCH, subresource=sub)

    async def apply_status(self, ref: Ref, status: JSON, field_manager: str | None = None) -> JSON:
        """Server-side apply of the status fields this field manager owns (conditions merge by type, so
        another manager's conditions on the same object are left alone)."""
        res = resource_of(ref.api_version, ref.kind)
        body = {
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "metadata": {"name": ref.name, "namespace": ref.namespace},
            "status": status,
        }
        return await self.request(
            "PATCH",
            res.object_path(ref.namespace, ref.name, "status" if res.status_subresource else ""),
            query=[("fieldManager", field_manager or self.field_manager), ("force", "true")],
            body=body,
            content_type=CONTENT_APPLY,
        )

    async def remove_finalizer(self, ref: Ref, name: str, resource_version: str = "") -> JSON | None:
        """Remove finalizer `name` with a JSON patch guarded by `test` ops.

        With `resource_version`, the patch applies only to that version (else `Conflict`); without, only if
        the finalizer is still at the index read. Returns the updated object, the unchanged object if the
        finalizer was not there, or None if the object is gone.
        """
        try:
            current = await self.get(ref)
        except NotFound:
            return None
        meta = current.get("metadata") or {}
        if resource_version and meta.get("resourceVersion") != resource_version:
            raise Conflict(
                f"{ref}: resourceVersion is {meta.get('resourceVersion')}, expected {resource_version}",
                status=409,
                reason="Conflict",
            )
        finalizers = list(meta.get("finalizers") or ())
        if name not in finalizers:
            return current
        index = finalizers.index(name)
        ops: list[JSON] = []
        if resource_version:
            ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version})
        ops += [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": name},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            return await self.patch(ref, ops, content_type=CONTENT_JSON_PATCH)
        except NotFound:
            return None
        except Invalid as err:
            # A failed `test` op comes back as a bare 422 ("the server rejected our request due to an error in
            # our request"); the patch itself is well-formed, so to the caller this is a concurrent change.
            raise Conflict(
                f"{ref}: changed concurrently ({err.message})", status=409, reason="Conflict"
            ) from err

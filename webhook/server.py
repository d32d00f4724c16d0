"""The admission webhook HTTPS server (aiohttp): routing, error mapping, graceful shutdown, JSON logs.

Every admission path answers with one of:

* HTTP 200 + AdmissionReview carrying the request's uid: the handler's decision, or, when the handler
  raised, `allowed: false` with status code 500 and a message naming the error (the apiserver shows it
  to the user; an HTTP 500 would only produce an opaque "failed calling webhook"), or status code 400
  when the review nests deeper than any Kubernetes object (`MAX_NESTING`) and that made the handler fail;
* HTTP 400 + a `metav1.Status` body when the body is not an AdmissionReview v1 request (the message
  says what is wrong);
* HTTP 413 + a `metav1.Status` body when the body is larger than `max_body_bytes`.

`/healthz` is always 200 "ok"; `/readyz` is 200 while `ready()` is true (and the server is not stopping),
else 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Histogram

from webhook.admission import (
    AdmissionRequest,
    AdmissionResponse,
    BadReview,
    Handler,
    nested_deeper_than,
    parse_review,
    review_response,
)
from webhook.paths import HEALTHZ, READYZ
from webhook.tls import ReloadableTLS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024  # the apiserver's own request limit is 3 MiB
# No Kubernetes object nests this deep (the apiserver prunes what a CRD's schema does not declare); one that
# does makes the handlers' deep copies and pydantic's serializer give up (RecursionError, ValueError).
MAX_NESTING = 100
MAX_ERROR_MESSAGE = 2000
_READ_CHUNK = 64 * 1024

METRICS_PREFIX = "grove_webhook_"  # every metric of this module; a webhook child process exports these
REQUESTS = Counter(
    f"{METRICS_PREFIX}requests_total",
    "Admission requests answered, by path and verdict.",
    ["path", "allowed"],
)
LATENCY = Histogram(
    f"{METRICS_PREFIX}request_duration_seconds",
    "Time to answer one admission request (read, parse, decide, encode).",
    ["path"],
    buckets=(0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)

ReadyCheck = Callable[[], bool]
READY_KEY: web.AppKey[ReadyCheck] = web.AppKey("grove_ready")
HANDLERS_KEY: web.AppKey[dict[str, Handler]] = web.AppKey("grove_admission_handlers")


# ---------------------------------------------------------------------------------------------------------
# The application


def status_response(code: int, reason: str, message: str) -> web.Response:
    """A Kubernetes `Status` body: the apiserver's client decodes it into a readable error."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


async def _read_body(request: web.Request, limit: int) -> bytes | web.Response:
    too_large = status_response(
        413,
        "RequestEntityTooLarge",
        f"request body is larger than the webhook's limit of {limit} bytes",
    )
    if request.content_length is not None and request.content_length > limit:
        return too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                return too_large
            chunks.append(chunk)
    except Exception as err:  # malformed chunked/compressed payloads, client gone mid-body
        return status_response(
            400, "BadRequest", f"could not read the request body: {type(err).__name__}: {err}"
        )
    return b"".join(chunks)


def _error_message(path: str, err: BaseException) -> str:
    message = f"internal error in admission webhook {path}: {type(err).__name__}: {err}"
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[: MAX_ERROR_MESSAGE - 3] + "..."
    return message


def _request_fields(review: AdmissionRequest) -> dict[str, Any]:
    return {
        "uid": review.uid,
        "operation": review.operation,
        "kind": review.kind.get("kind", ""),
        "namespace": review.namespace,
        "object": review.name,
        "user": review.username,
    }


def _failure(
    path: str, fields: dict[str, Any], review: AdmissionRequest, err: Exception
) -> AdmissionResponse:
    """The answer when a handler raised: a 400 when the review nests deeper than any Kubernetes object
    (the input's fault: deep copies and pydantic's serializer give up on it; looked for only on failure, so
    no request pays for the walk), else an internal error (500), logged with its traceback."""
    if nested_deeper_than(review.raw, MAX_NESTING):
        log.warning("AdmissionReview nested too deeply for the handler", extra={"path": path, **fields})
        return AdmissionResponse(
            allowed=False,
            code=400,
            reason="BadRequest",
            message=f"malformed AdmissionReview: nested more than {MAX_NESTING} levels deep",
        )
    log.error(
        "admission handler failed",
        extra={"path": path, **fields, "error": f"{type(err).__name__}: {err}"},
        exc_info=err,
    )
    return AdmissionResponse(
        allowed=False, code=500, reason="InternalError", message=_error_message(path, err)
    )


def admission_view(
    path: str, handler: Handler, max_body_bytes: int
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp view for one admission path (exposed for tests and custom routing)."""

    async def view(request: web.Request) -> web.Response:
        started = time.perf_counter()
        body = await _read_body(request, max_body_bytes)
        if isinstance(body, web.Response):
            log.warning(
                "rejected admission request body",
                extra={"path": path, "http_status": body.status, "content_length": request.content_length},
            )
            return body
        try:
            review = parse_review(body)
        except BadReview as err:
            log.warning(
                "malformed AdmissionReview", extra={"path": path, "error": str(err), "http_status": 400}
            )
            return status_response(400, "BadRequest", f"malformed AdmissionReview: {err}")
        except RecursionError:  # json.loads on e.g. "[[[[…" thousands deep
            log.warning("AdmissionReview nested too deeply", extra={"path": path, "http_status": 400})
            return status_response(400, "BadRequest", "malformed AdmissionReview: JSON is nested too deeply")
        except Exception as err:  # a parser bug: still no HTTP 500 (there is no uid to answer with)
            log.error("could not parse AdmissionReview", extra={"path": path}, exc_info=True)
            return status_response(
                400, "BadRequest", f"could not parse AdmissionReview: {type(err).__name__}: {err}"
            )
        fields = _request_fields(review)
        try:
            response = await handler(review)
            if not isinstance(response, AdmissionResponse):
                raise TypeError(f"handler returned {type(response).__name__}, not an AdmissionResponse")
            text = json.dumps(review_response(review.uid, response))
        except Exception as err:
            response = _failure(path, fields, review, err)
            text = json.dumps(review_response(review.uid, response))
        elapsed = time.perf_counter() - started
        elapsed_ms = round(elapsed * 1000, 3)
        REQUESTS.labels(path, "true" if response.allowed else "false").inc()
        LATENCY.labels(path).observe(elapsed)
        log.log(
            logging.DEBUG if response.allowed else logging.INFO,
            "admission decision",
            extra={
                "path": path,
                **fields,
                "allowed": response.allowed,
                "code": response.code,
                "patch_ops": len(response.patch),
                "duration_ms": elapsed_ms,
            },
        )
        return web.Response(text=text, content_type="application/json")

    return view


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _readyz(request: web.Request) -> web.Response:
    try:
        ok = request.app[READY_KEY]()
    except Exception as err:
        log.warning("readiness check failed", extra={"error": f"{type(err).__name__}: {err}"})
        ok = False
    if ok:
        return web.Response(text="ok")
    return web.Response(status=503, text="not ready")


def build_app(
    handlers: Mapping[str, Handler], *, ready: ReadyCheck, max_body_bytes: int = MAX_BODY_BYTES
) -> web.Application:
    """POST `path` for each handler, GET /healthz and /readyz."""
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")
    for path in handlers:
        if not path.startswith("/") or path in (HEALTHZ, READYZ):
            raise ValueError(f"invalid admission path {path!r}")
    app = web.Application(client_max_size=max_body_bytes)
    app[READY_KEY] = ready
    app[HANDLERS_KEY] = dict(handlers)
    for path, handler in handlers.items():
        app.router.add_post(path, admission_view(path, handler, max_body_bytes))
    app.router.add_get(HEALTHZ, _healthz)
    app.router.add_get(READYZ, _readyz)
    return app


# ---------------------------------------------------------------------------------------------------------
# The server


class WebhookServer:
    """The webhook app on one HTTPS (or, for tests, HTTP) listener with graceful shutdown.

    `tls` is a `ReloadableTLS` (certificate rotation without restarting the listener), a plain
    `ssl.SSLContext`, or None for plain HTTP. `port=0` picks a free port; read `.port` after `start()`.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        host: str = "0.0.0.0",
        port: int = 9443,
        tls: ReloadableTLS | ssl.SSLContext | None,
        ready: ReadyCheck = lambda: True,
        max_body_bytes: int = MAX_BODY_BYTES,
        shutdown_timeout: float = 2.0,
    ) -> None:
        self.host = host
        self._port = port
        self.tls = tls
        self._ready = ready
        self._shutdown_timeout = shutdown_timeout
        self._stopping = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.app = build_app(handlers, ready=self.is_ready, max_body_bytes=max_body_bytes)
        self.app.middlewares.append(self._track)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        if isinstance(self.tls, ReloadableTLS):
            return self.tls.context
        return self.tls

    @property
    def port(self) -> int:
        """The bound port once started (also when constructed with port 0)."""
        if self._site is not None:
            return self._site.port
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def is_ready(self) -> bool:
        return self._runner is not None and not self._stopping and self._ready()

    @web.middleware
    async def _track(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self._in_flight += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("server already started")
        runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=self._shutdown_timeout
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site, self._stopping = runner, site, False
        handlers = self.app[HANDLERS_KEY]
        log.info("webhook server listening", extra={"url": self.url, "routes": sorted(handlers)})

    async def stop(self, drain_seconds: float = 10.0, *, unready_delay: float = 0.0) -> None:
        """Graceful stop: /readyz turns 503, (after `unready_delay`) the listener closes, in-flight
        requests get up to `drain_seconds` to finish, then remaining connections are closed."""
        runner, site = self._runner, self._site
        if runner is None:
            return
        self._stopping = True
        if unready_delay > 0:
            await asyncio.sleep(unready_delay)
        if site is not None:
            await site.stop()  # no new connections; open keep-alive connections are still served
        try:
            async with asyncio.timeout(drain_seconds):
                await self._idle.wait()
        except TimeoutError:
            log.warning("shutdown: abandoning in-flight requests", extra={"in_flight": self._in_flight})
        await runner.cleanup()
        self._runner = self._site = None
        log.info("webhook server stopped")

    async def __aenter__(self) -> WebhookServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

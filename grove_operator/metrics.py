"""Prometheus metrics of grove-operator, served on `server.metrics` (GET /metrics).

Plain HTTP by default; with `server.metrics.secure` HTTPS (the webhook serving certificate, reloaded with
it) and only for callers allowed to read it (`metricsauth`), as controller-runtime serves its metrics.

Each component defines the metrics it records, next to the code that records them, in prometheus_client's
process-wide default registry (as every Python exporter does): `webhook.server` (admission requests),
`reconciler.manager` (reconcile passes, writes, queue depth), the gang admitter's modules in `admitter/`
(gangs pending, admitted, reset, admission latency). Names follow Prometheus conventions: `grove_` prefix,
`_total` counters, `_seconds` histograms.

When the webhooks are answered by a child process (`grove_operator/webhooks.py`), their families
(`grove_webhook_…`) are counted there: `/metrics` asks the child for them and serves them in place of this
process's own (empty) ones, so one scrape still sees everything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from grove_operator.health import HttpServer
from grove_operator.metricsauth import Gate

METRICS_PATH = "/metrics"

# Families counted elsewhere: (their name prefix, a source of their exposition text; b"" when unavailable).
Borrowed = tuple[str, Callable[[], Awaitable[bytes]]]


def families(text: bytes, prefix: str, *, keep: bool) -> bytes:
    """The lines of Prometheus exposition `text` that belong to metric families named `prefix…` (`keep`),
    or all the other lines (not `keep`). Each line names its family: `# HELP name …`, `# TYPE name …`, or
    a sample `name{labels} value`."""
    out = []
    for line in text.splitlines(keepends=True):
        words = line.split(maxsplit=3) if line.startswith(b"#") else []
        name = words[2] if len(words) > 2 else line
        if name.startswith(prefix.encode()) == keep:
            out.append(line)
    return b"".join(out)


def _metrics_view(borrowed: Borrowed | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def view(_: web.Request) -> web.Response:
        body = generate_latest()
        if borrowed is not None:
            prefix, source = borrowed
            theirs = await source()
            if theirs:
                body = families(body, prefix, keep=False) + theirs
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return view


def _guarded_by(gate: Gate) -> Middleware:
    """Every request (any path: nothing is told to a caller who may not read) passes `gate` first."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        verdict = await gate.check(request.headers.get(hdrs.AUTHORIZATION), request.method, request.path)
        if verdict.allowed:
            return await handler(request)
        # RFC 7235: a 401 names the scheme that would work.
        headers = {hdrs.WWW_AUTHENTICATE: "Bearer"} if verdict.status == 401 else None
        return web.Response(status=verdict.status, text=verdict.message, headers=headers)

    return guard


def build_app(gate: Gate | None, borrowed: Borrowed | None = None) -> web.Application:
    """GET /metrics (with the `borrowed` families from their source); behind `gate` when given."""
    app = web.Application(middlewares=[_guarded_by(gate)] if gate is not None else [])
    app.router.add_get(METRICS_PATH, _metrics_view(borrowed))
    return app


def metrics_server(host: str, port: int, gate: Gate | None, borrowed: Borrowed | None = None) -> HttpServer:
    """GET /metrics, scraped by Prometheus; start it with the TLS context when `gate` is given."""
    return HttpServer(build_app(gate, borrowed), host, port)

"""Prometheus metrics of grove-operator, served on `server.metrics` (GET /metrics).

Plain HTTP by default; with `server.metrics.secure` HTTPS (the webhook serving certificate, reloaded with
it) and only for callers allowed to read it (`metricsauth`), as controller-runtime serves its metrics.

Each component defines the metrics it records, next to the code that records them, in prometheus_client's
process-wide default registry (as every Python exporter does): `webhook.server` (admission requests),
`reconciler.manager` (reconcile passes, writes, queue depth), the gang admitter's modules in `admitter/`
(gangs pending, admitted, reset, admission latency). Names follow Prometheus conventions: `grove_` prefix,
`_total` counters, `_seconds` histograms.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from grove_operator.health import HttpServer
from grove_operator.metricsauth import Gate

METRICS_PATH = "/metrics"


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


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


def build_app(gate: Gate | None) -> web.Application:
    """GET /metrics; behind `gate` when given."""
    app = web.Application(middlewares=[_guarded_by(gate)] if gate is not None else [])
    app.router.add_get(METRICS_PATH, _metrics)
    return app


def metrics_server(host: str, port: int, gate: Gate | None) -> HttpServer:
    """GET /metrics, scraped by Prometheus; start it with the TLS context when `gate` is given."""
    return HttpServer(build_app(gate), host, port)

"""Prometheus metrics of grove-operator, served on `server.metrics` (GET /metrics, plain HTTP).

Each component defines the metrics it records, next to the code that records them, in prometheus_client's
process-wide default registry (as every Python exporter does): `webhook.server` (admission requests),
`reconciler.manager` (reconcile passes, writes, queue depth), `admitter.controller` (gangs pending, admitted,
reset, admission latency). Names follow Prometheus conventions: `grove_` prefix, `_total` counters,
`_seconds` histograms.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from grove_operator.health import PlainServer


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_server(host: str, port: int) -> PlainServer:
    """GET /metrics, scraped by Prometheus."""
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    return PlainServer(app, host, port)

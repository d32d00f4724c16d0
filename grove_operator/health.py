"""Plain-HTTP health endpoints on `server.healthProbes` (kubelet probes, `grove-cluster` readiness wait).

/healthz: 200 while the process answers and no controller it runs is wedged (`liveness.Liveness`), else 500
with the reason in the body (kubelet restarts the container). /readyz: 200 only once the serving certificate
is in place and its CA is injected into the webhook configurations (and not any more while shutting down),
503 otherwise with the reason in the body.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from aiohttp import web

from webhook import paths

Probe = Callable[[], tuple[bool, str]]  # (passing, why not)


def _answering() -> tuple[bool, str]:
    """Live as long as the event loop answers: all a process without controllers can be asked."""
    return (True, "")


def build_app(readiness: Probe, liveness: Probe = _answering) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        live, why = liveness()
        return web.Response(text="ok" if live else why, status=200 if live else 500)

    async def readyz(_: web.Request) -> web.Response:
        ready, why = readiness()
        return web.Response(text="ok" if ready else why, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get(paths.HEALTHZ, healthz)
    app.router.add_get(paths.READYZ, readyz)
    return app


class HttpServer:
    """An aiohttp app on a port of its own, beside the webhook server: the probes (plain HTTP) and the
    metrics (plain HTTP, or HTTPS with the webhook's reloadable serving certificate)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        if self.port == 0:  # tests: the kernel picked one
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def health_server(readiness: Probe, liveness: Probe, host: str, port: int) -> HttpServer:
    return HttpServer(build_app(readiness, liveness), host, port)

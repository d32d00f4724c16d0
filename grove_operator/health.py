"""Plain-HTTP health endpoints on `server.healthProbes` (kubelet probes, `grove-cluster` readiness wait).

/healthz: the process serves requests. /readyz: 200 only once the serving certificate is in place and its
CA is injected into the webhook configurations (and not any more while shutting down), 503 otherwise with
the reason in the body.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from webhook import paths

Readiness = Callable[[], tuple[bool, str]]


def build_app(readiness: Readiness) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        ready, why = readiness()
        return web.Response(text="ok" if ready else why, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get(paths.HEALTHZ, healthz)
    app.router.add_get(paths.READYZ, readyz)
    return app


class PlainServer:
    """An aiohttp app on a plain-HTTP port (probes, metrics): not behind the webhook's TLS."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
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


def health_server(readiness: Readiness, host: str, port: int) -> PlainServer:
    return PlainServer(build_app(readiness), host, port)

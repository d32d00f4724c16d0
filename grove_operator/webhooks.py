"""Who answers the admission webhooks: this process, or a child process of their own (the default).

Why a child process (`server.webhooks.ownProcess`, on by default): Python runs one thread of bytecode at a
time per process. A reconcile pass over 500 replicas or an admission pass over 1,000 nodes holds the
operator's event loop for 100 to 500 ms, and every admission request that arrives meanwhile waits: straight to
the server, p99 7 → 467 ms while a 1,000-pod PodCliqueSet starts (README, "Benchmarks"). A thread does not
help (the passes hold the interpreter lock); a process does.

`grove-operator` (the parent) keeps the controllers, the certificates, the caBundle injection, the probes and
`/metrics`; `grove-operator --webhook-process` (the child, started by the parent with the same `--config`
and `--kubeconfig`) serves the HTTPS webhooks on `server.webhooks.port`:

* start: the parent starts the child once the serving certificate is in `serverCertDir`, and is not ready
  (and injects no caBundle) before the child answers. A child that exits first fails the startup, as an
  in-process server that cannot listen would.
* the child's private endpoint: it listens on 127.0.0.1 (a port of the kernel's choosing, written as the first
  line of its stdout) for `/readyz`, `/healthz` and `/metrics` (its `grove_webhook_…` families, which the
  parent's `/metrics` serves as its own).
* certificate rotation: the parent sends SIGHUP; the child reloads the files in place.
* crash: the parent restarts it after `RESTART_PAUSE`, not ready meanwhile.
* wedged: the parent asks the child every `PROBE_INTERVAL`; the operator's `/readyz` fails while the child
  does not answer, and its `/healthz` once it has not answered for `livenessStallSeconds`.
* shutdown: the parent sends SIGTERM; the child reports not ready, keeps answering for
  `shutdownDelaySeconds`, closes its listener, lets in-flight requests finish (`DRAIN_SECONDS`) and exits.
* the parent gone (SIGKILL, crash): the child's stdin, a pipe from the parent, reaches its end; the child
  stops at once and frees the port for the next operator.

The child runs in a session of its own: a terminal's Ctrl-C reaches the parent only, which stops it in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import generate_latest

from grove_api.operatorconfig import OperatorConfiguration
from grove_operator.health import HttpServer
from grove_operator.liveness import Liveness
from grove_operator.metrics import METRICS_PATH, families
from kube.plain import Connection, PlainReader
from webhook import authorizer, clustertopology, lookups, paths, pcs, pods
from webhook.admission import Handler
from webhook.lookups import Get
from webhook.server import METRICS_PREFIX, ReadyCheck, WebhookServer
from webhook.tls import ReloadableTLS

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0  # in-flight admission requests get this long to finish on shutdown
RESTART_PAUSE = 1.0  # seconds before a crashed webhook process is started again
START_TIMEOUT = 60.0  # seconds for a webhook process to start serving
PROBE_INTERVAL = 1.0  # seconds between the parent's questions to the child
PROBE_TIMEOUT = 2.0
PROCESS_FLAG = "--webhook-process"


def build_handlers(
    config: OperatorConfiguration, get: Get, reconciler_username: str | None
) -> dict[str, Handler]:
    """path -> admission handler, for every webhook this operator serves; `get` reads from the apiserver."""

    async def topologies(name: str) -> list[str] | None:
        return await lookups.topology_domains(get, name)

    async def parent(namespace: str, name: str) -> dict[str, Any] | None:
        return await lookups.podcliqueset_metadata(get, namespace, name)

    async def taken(namespace: str, name: str) -> list[str]:
        return await lookups.names_taken(get, namespace, name)

    handlers: dict[str, Handler] = {
        paths.DEFAULT_PODCLIQUESET: pcs.defaulting_handler(config),
        paths.VALIDATE_PODCLIQUESET: pcs.validating_handler(config, topologies, taken),
    }
    if config.authorizer.enabled:
        if reconciler_username is None:
            raise ValueError("the authorizer needs the operator's username")
        identity = authorizer.Identity.of(
            reconciler_username, config.authorizer.exempt_service_account_user_names
        )
        handlers[paths.AUTHORIZER] = authorizer.handler(identity, parent)
    handlers[paths.VALIDATE_CLUSTERTOPOLOGY] = clustertopology.handler(config)
    handlers[paths.MUTATE_POD] = pods.PodMutatingHandler(
        gate=config.gang_admission.enabled, initc=config.init_container, operator=reconciler_username
    )
    return handlers


def serving_server(
    config: OperatorConfiguration, handlers: Mapping[str, Handler], tls: ReloadableTLS, ready: ReadyCheck
) -> WebhookServer:
    hooks = config.server.webhooks
    return WebhookServer(handlers, host=hooks.bind_address, port=hooks.port, tls=tls, ready=ready)


class ServedHere:
    """The webhooks on this process's event loop (`ownProcess: false`, `--webhooks-only`, in-process tests)."""

    def __init__(self, server: WebhookServer) -> None:
        self.server = server

    async def start(self) -> None:
        await self.server.start()

    def unready(self) -> str:
        """Why the webhooks cannot be asked ("": they can). Served here: the operator's own readiness."""
        return ""

    def certificate_changed(self) -> None:
        """Nothing to do: the server shares this process's reloadable TLS context."""

    async def metrics(self) -> bytes:
        """Nothing to add: the webhook metrics are this process's own."""
        return b""

    async def stop(self, *, unready_delay: float) -> None:
        await self.server.stop(DRAIN_SECONDS, unready_delay=unready_delay)


class WebhookProcessError(RuntimeError):
    """The webhook process exited or did not start serving in time."""


class WebhookProcess:
    """The parent's side of the webhook child process: start, supervise, reload, ask, stop."""

    def __init__(self, argv: Sequence[str], connection: Connection, liveness: Liveness) -> None:
        self.argv = [*argv, PROCESS_FLAG]
        self.connection = connection
        self.liveness = liveness
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""  # the child's private endpoint
        self.answering = False
        self._session: aiohttp.ClientSession | None = None
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT))
        heartbeat = self.liveness.heartbeat()
        self.liveness.track("webhook process", heartbeat, lambda: True, symptom="not answering")
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(heartbeat.beat), name="webhook-process")

    async def _spawn(self) -> None:
        self.proc = proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None and proc.stdin is not None
        proc.stdin.write(self.connection.to_json() + b"\n")  # then the pipe stays open: see _watch_parent
        try:
            async with asyncio.timeout(START_TIMEOUT):
                line = await proc.stdout.readline()
                if not line:
                    code = await proc.wait()
                    raise WebhookProcessError(f"the webhook process exited with code {code} before serving")
                self.url = f"http://127.0.0.1:{int(json.loads(line)['port'])}"
                while not await self._ask(paths.READYZ):
                    if proc.returncode is not None:
                        raise WebhookProcessError(f"the webhook process exited with code {proc.returncode}")
                    await asyncio.sleep(0.05)
        except BaseException:
            await self._end(proc)
            raise
        self.answering = True
        log.info("webhook process serving", extra={"pid": proc.pid, "endpoint": self.url})

    async def _ask(self, path: str) -> bool:
        assert self._session is not None
        try:
            async with self._session.get(self.url + path) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _supervise(self, beat: Callable[[], None]) -> None:
        """Ask the child every PROBE_INTERVAL; start it again when it exits."""
        while True:
            proc = self.proc
            assert proc is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROBE_INTERVAL):
                    await proc.wait()
            if proc.returncode is None:
                self.answering = await self._ask(paths.READYZ)
                if self.answering:
                    beat()
                continue
            self.answering = False
            log.error(
                "the webhook process exited; starting it again",
                extra={"pid": proc.pid, "exit_code": proc.returncode, "pause_seconds": RESTART_PAUSE},
            )
            await asyncio.sleep(RESTART_PAUSE)
            try:
                await self._spawn()
            except (WebhookProcessError, OSError, ValueError, KeyError) as err:
                log.error(
                    "starting the webhook process failed", extra={"error": f"{type(err).__name__}: {err}"}
                )

    def unready(self) -> str:
        if self.answering:
            return ""
        return "the webhook process is not answering"

    def certificate_changed(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGHUP)

    async def metrics(self) -> bytes:
        assert self._session is not None
        try:
            async with self._session.get(self.url + METRICS_PATH) as response:
                return await response.read() if response.status == 200 else b""
        except (aiohttp.ClientError, TimeoutError):
            return b""

    async def stop(self, *, unready_delay: float) -> None:
        """SIGTERM: the child drains as an in-process server would; killed if it overstays."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self.answering = False
        if self.proc is not None:
            await self._end(self.proc, grace=unready_delay + DRAIN_SECONDS + 5)
        if self._session is not None:
            await self._session.close()

    @staticmethod
    async def _end(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await proc.wait()
            except TimeoutError:
                log.error("the webhook process did not stop in time; killing it", extra={"pid": proc.pid})
                proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


# -- the child ---------------------------------------------------------------------------------------------


def _private_app(server: WebhookServer) -> web.Application:
    async def readyz(_: web.Request) -> web.Response:
        ready = server.is_ready()
        return web.Response(text="ok" if ready else "not ready", status=200 if ready else 503)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=families(generate_latest(), METRICS_PREFIX, keep=True))

    app = web.Application()
    app.router.add_get(paths.READYZ, readyz)
    app.router.add_get(paths.HEALTHZ, healthz)
    app.router.add_get(METRICS_PATH, metrics)
    return app


async def _watch_parent(gone: asyncio.Event, stop: asyncio.Event) -> None:
    """Set both when stdin (the parent's pipe) reaches its end: the parent has exited."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    gone.set()
    stop.set()


async def serve_child(config: OperatorConfiguration, reconciler_username: str | None) -> int:
    """`grove-operator --webhook-process`: serve the webhooks until SIGTERM or the parent's end. The first line
    on stdin is the parent's connection to the apiserver (`kube.plain.Connection`)."""
    reader = PlainReader(Connection.from_json(sys.stdin.buffer.readline()))
    tls = ReloadableTLS(Path(config.server.webhooks.server_cert_dir))
    server = serving_server(
        config, build_handlers(config, reader.get, reconciler_username), tls, lambda: True
    )
    await server.start()
    private = HttpServer(_private_app(server), "127.0.0.1", 0)
    await private.start()
    loop = asyncio.get_running_loop()
    stop, parent_gone = asyncio.Event(), asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, tls)
    watcher = asyncio.create_task(_watch_parent(parent_gone, stop))
    sys.stdout.write(json.dumps({"port": private.port}) + "\n")
    sys.stdout.flush()
    os.dup2(
        sys.stderr.fileno(), sys.stdout.fileno()
    )  # the pipe carried that one line; anything else is a log
    await stop.wait()
    log.info("webhook process stopping", extra={"parent_gone": parent_gone.is_set()})
    watcher.cancel()
    delay = 0.0 if parent_gone.is_set() else config.server.webhooks.shutdown_delay_seconds
    await server.stop(DRAIN_SECONDS, unready_delay=delay)
    await private.stop()
    await reader.close()
    return 0


def _reload(tls: ReloadableTLS) -> None:
    try:
        tls.reload()
        log.info("webhook process: serving certificate reloaded", extra={"serial": tls.serial})
    except Exception as err:  # keep serving the previous certificate; the parent signals again next rotation
        log.error(
            "webhook process: reloading the certificate failed",
            extra={"error": f"{type(err).__name__}: {err}"},
        )

"""The operator process: certificates, the webhook server, caBundle injection, health, graceful shutdown.

Startup order (Grove's; docs/operations.md, "Startup"): health endpoints first (so probes get an answer),
then the serving certificate (auto: self-signed CA in Secret `server.webhooks.secretName`, mirrored to
`serverCertDir`; manual: user-provided), the metrics endpoint (HTTPS with the same certificate when
`server.metrics.secure`), the HTTPS webhook server (by default in a child process of its own:
`grove_operator/webhooks.py`), and the CA injected into our webhook configurations. Only then is the
operator ready. /healthz fails when the controllers this replica runs are wedged (`liveness`), or when the
webhook process stopped answering. After a certificate rotation the servers reload their certificate in
place and the CA bundle is injected again; a periodic check re-injects it if somebody re-applied a
configuration without it.

On SIGTERM/SIGINT: not ready at once, hand the Lease over, keep accepting webhook calls for
`server.webhooks.shutdownDelaySeconds` (while the Service stops routing here), then stop accepting
connections, let in-flight admission requests finish, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api

from admitter.controller import Admitter
from admitter.core import ClusterModel, ReplacementRoom
from admitter.core.pods import essentials
from certs.manager import CertError, CertManager
from grove_api import constants as c
from grove_api.operatorconfig import OperatorConfiguration
from grove_operator import apicalls
from grove_operator.health import health_server
from grove_operator.leader import LeaderElector
from grove_operator.liveness import Liveness
from grove_operator.metrics import metrics_server
from grove_operator.metricsauth import CachePolicy, DecisionCache, Gate
from grove_operator.webhooks import ServedHere, WebhookProcess, build_handlers, serving_server
from kube import resources
from kube.client import KubeClient
from kube.informers import InformerFactory, selects
from kube.plain import Connection, PlainReader
from reconciler.manager import Manager
from reconciler.planner.snapshot import Room
from webhook import paths
from webhook.admission import Handler
from webhook.server import METRICS_PREFIX
from webhook.tls import ReloadableTLS

log = logging.getLogger(__name__)


INJECT_RETRY = 2.0  # seconds between failed caBundle injections at startup
RECHECK_INTERVAL = 60.0  # seconds between caBundle checks once running
RESTART_PAUSE = 5.0  # seconds before the reconciler is restarted after a crash


def shared_informers(client: KubeClient, gang_admission: bool) -> InformerFactory:
    """The informers the controllers share. With gang admission, pods are watched cluster-wide (every pod
    uses capacity) and kept whole only where the reconciler reads them (ours); the others as the admitter
    reads them (`admitter.core.pods.essentials`). Without it, only ours."""
    factory = InformerFactory(client)
    if gang_admission:
        factory.informer(resources.POD, transform=_pod_view)
    else:
        factory.informer(resources.POD, label_selector=c.MANAGED_SELECTOR)
    return factory


def _pod_view(pod: dict[str, Any]) -> dict[str, Any]:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return pod if selects(c.MANAGED_SELECTOR, labels) else essentials(pod)


@dataclass
class Readiness:
    """Why the operator is not ready yet ("" = ready)."""

    reason: str = "starting"

    def __call__(self) -> tuple[bool, str]:
        return (not self.reason, self.reason)

    @property
    def ready(self) -> bool:
        return not self.reason


class Operator:
    def __init__(
        self,
        config: OperatorConfiguration,
        client: ApiClient,
        *,
        reconciler_username: str | None,
        handlers: Mapping[str, Handler] | None = None,
        controllers: bool = True,
        connection: Connection | None = None,
        webhook_process: Sequence[str] | None = None,
    ) -> None:
        """`connection`: how the webhooks read from the apiserver (default: `client`'s kubeconfig settings).
        `webhook_process`: the command line of a `grove-operator` that serves the webhooks as this process's
        child (`grove_operator/webhooks.py`); None serves them on this process's loop."""
        self.config = config
        self.client = client
        self.readiness = Readiness()
        hooks = config.server.webhooks
        secrets = CoreV1Api(client) if hooks.cert_provision_mode == "auto" else None
        self.certs = CertManager.from_config(hooks, secrets_api=secrets, on_rotated=self._on_rotated)
        self.webhook_process = list(webhook_process) if webhook_process is not None else None
        self.handlers = dict(handlers) if handlers is not None else None
        self.reconciler_username = reconciler_username
        self.connection = connection
        self.reader: PlainReader | None = None
        probes = config.server.health_probes
        self.liveness = Liveness(probes.liveness_stall_seconds)
        self.health = health_server(self._readiness, self.liveness, probes.bind_address, probes.port)
        endpoint = config.server.metrics
        gate = (
            Gate(partial(apicalls.create_review, client), DecisionCache(CachePolicy()))
            if endpoint.secure
            else None
        )
        self.metrics = metrics_server(
            endpoint.bind_address, endpoint.port, gate, (METRICS_PREFIX, self._webhook_metrics)
        )
        self.tls: ReloadableTLS | None = None
        self.webhooks: ServedHere | WebhookProcess | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._inject_lock = asyncio.Lock()
        self.controllers = controllers
        self.manager: Manager | None = None
        self.admitter: Admitter | None = None
        # Leader election (leaderElection.enabled): every replica serves the webhooks; only the lease holder
        # runs the controllers. Losing the lease ends the process (exit code 1), as client-go users do.
        self.elector: LeaderElector | None = None
        if controllers and config.leader_election.enabled:
            self.elector = LeaderElector.from_config(config, client)
        self.fatal = asyncio.Event()  # set when the process must exit (leadership lost)
        self.exit_code = 0

    # -- caBundle ----------------------------------------------------------------------------------------

    async def inject(self) -> dict[str, str]:
        if not self.certs.ca_bundle().strip():
            # Provided certificates without ca.crt: the caBundle comes from the install (e.g. the chart's
            # webhooks.caBundle); injecting nothing would erase it.
            log.warning("no ca.crt with the serving certificate: leaving the webhooks' caBundle alone")
            return {}
        async with self._inject_lock:
            outcome = await apicalls.inject_ca_bundle(
                self.client, self.certs.ca_bundle(), authorizer=self.config.authorizer.enabled
            )
        changed = {k: v for k, v in outcome.items() if v != "up to date"}
        if changed:
            log.info("caBundle injection", extra={"configurations": outcome})
        missing = [k for k, v in outcome.items() if v == "missing"]
        if missing:
            log.warning(
                "webhook configurations not found (install the chart or deploy/release/grove-py.yaml, or let "
                "grove-cluster register them)",
                extra={"missing": missing},
            )
        return outcome

    async def _inject_until_done(self) -> None:
        while True:
            try:
                await self.inject()
                return
            except Exception as err:
                log.error(
                    "caBundle injection failed; retrying", extra={"error": f"{type(err).__name__}: {err}"}
                )
                self.readiness.reason = f"caBundle injection failed: {err}"
                await asyncio.sleep(INJECT_RETRY)

    async def _ensure_certs(self) -> None:
        """Provision the certificates; API errors (apiserver restarting, RBAC not there yet) are retried,
        a configuration error (CertError: e.g. manual mode without certificates) is fatal."""
        while True:
            try:
                await self.certs.ensure()
                return
            except CertError:
                raise
            except Exception as err:
                log.error(
                    "provisioning certificates failed; retrying",
                    extra={"error": f"{type(err).__name__}: {err}"},
                )
                await asyncio.sleep(INJECT_RETRY)

    async def _on_rotated(self) -> None:
        """Certificates changed: serve the new one, then tell the apiserver about the (new) CA bundle."""
        if self.tls is not None:
            self.tls.reload()
        if self.webhooks is not None:
            self.webhooks.certificate_changed()
        await self.inject()  # raising makes the cert manager retry

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_INTERVAL)
            try:
                await self.inject()
            except Exception as err:
                log.error("caBundle check failed", extra={"error": f"{type(err).__name__}: {err}"})

    def _readiness(self) -> tuple[bool, str]:
        """/readyz: this process's own readiness, and the webhook process answering (when there is one)."""
        ready, why = self.readiness()
        if ready and self.webhooks is not None and (why := self.webhooks.unready()):
            return (False, why)
        return (ready, why)

    async def _connection(self) -> Connection:
        """How the webhooks read from the apiserver: as given, else `client`'s kubeconfig settings."""
        if self.connection is None:
            self.connection = await apicalls.connection(self.client, in_cluster=False)
        return self.connection

    async def _webhook_metrics(self) -> bytes:
        return await self.webhooks.metrics() if self.webhooks is not None else b""

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.health.start()
        log.info(
            "health endpoints listening",
            extra={
                "url": f"http://{self.health.host}:{self.health.port}",
                "paths": [paths.HEALTHZ, paths.READYZ],
            },
        )
        self.readiness.reason = "provisioning the webhook serving certificate"
        await self._ensure_certs()
        self.tls = ReloadableTLS(self.certs.cert_dir)
        secure = self.config.server.metrics.secure
        await self.metrics.start(self.tls.context if secure else None)
        log.info(
            "metrics endpoint listening",
            extra={
                "url": f"{'https' if secure else 'http'}://{self.metrics.host}:{self.metrics.port}/metrics",
                "secure": secure,
            },
        )
        if self.webhook_process is None:
            if self.handlers is None:
                self.reader = PlainReader(await self._connection())
                self.handlers = build_handlers(self.config, self.reader.get, self.reconciler_username)
            self.webhooks = ServedHere(
                serving_server(self.config, self.handlers, self.tls, lambda: self.readiness.ready)
            )
        else:
            self.webhooks = WebhookProcess(self.webhook_process, await self._connection(), self.liveness)
        self.readiness.reason = "starting the webhook server"
        await self.webhooks.start()
        self.readiness.reason = "injecting the CA bundle into the webhook configurations"
        await self._inject_until_done()
        await self.certs.start()  # periodic renewal from here on
        self._spawn(self._recheck(), "cabundle-recheck")
        self.readiness.reason = ""
        served_by = self.webhooks.pid if isinstance(self.webhooks, WebhookProcess) else "this process"
        log.info("grove-operator ready", extra={"webhooks_served_by": served_by})
        if self.controllers and self.elector is None:
            self._spawn(self._controllers(), "controllers")
        elif self.controllers:
            self._spawn(self._campaign(), "leader-election")

    async def _controllers(self) -> None:
        """The reconciler and the gang admitter (while this replica holds the lease, if elected), on one set
        of informers: each object is decoded once, and a controller restarted after a crash starts from
        the shared caches."""
        informers = shared_informers(KubeClient(self.client), self.config.gang_admission.enabled)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._forever("reconciler", partial(self._new_manager, informers)))
                if self.config.gang_admission.enabled:
                    group.create_task(self._forever("gang admitter", partial(self._new_admitter, informers)))
        finally:
            await informers.close()

    async def _campaign(self) -> None:
        """Wait for the lease and run the controllers while holding it; once it is lost, ask the process to
        exit (a new process campaigns again from clean caches)."""
        assert self.elector is not None
        try:
            await self.elector.run(
                self._controllers, lambda: log.error("leader election lost; exiting so the controllers stop")
            )
        except Exception:
            log.exception("the controllers failed")
        self.exit_code = 1
        self.fatal.set()

    def _new_manager(self, informers: InformerFactory) -> Manager:
        heartbeat = self.liveness.heartbeat()
        self.manager = Manager(
            KubeClient(self.client),
            self.config,
            room=self._room,
            on_create=lambda: self.admitter.on_create if self.admitter is not None else None,
            progressed=heartbeat.beat,
            informers=informers,
        )
        self.liveness.track("reconciler", heartbeat, self.manager.has_work)
        return self.manager

    def _room(self) -> Room | None:
        """The gang admitter's free capacity, for rolling updates: None when gang admission is off (pods
        are replaced as in Grove); no room at all until the admitter exists (its empty model fits nothing,
        so an update waits rather than guessing)."""
        if not self.config.gang_admission.enabled:
            return None
        if self.admitter is None:
            return ReplacementRoom(ClusterModel())
        return self.admitter.replacement_room()

    def _new_admitter(self, informers: InformerFactory) -> Admitter:
        heartbeat = self.liveness.heartbeat()
        self.admitter = Admitter(
            KubeClient(self.client), self.config.gang_admission, heartbeat.beat, informers=informers
        )
        self.liveness.track("gang admitter", heartbeat, self.admitter.has_work)
        return self.admitter

    async def _forever(self, what: str, new: Callable[[], Manager | Admitter]) -> None:
        """A controller; a crash (a bug, or the apiserver gone for long) restarts it, with fresh caches,
        after a pause."""
        while True:
            try:
                await new().run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; restarting it in %.0f s", what, RESTART_PAUSE)
                await asyncio.sleep(RESTART_PAUSE)

    async def stop(self) -> None:
        self.readiness.reason = "shutting down"
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.elector is not None:
            # The controllers have stopped (their task was awaited above): hand the lease to a standby now
            # rather than after it expires (client-go ReleaseOnCancel). A no-op if we do not hold it.
            await self.elector.release()
        await self.certs.stop()
        if self.webhooks is not None:
            await self.webhooks.stop(unready_delay=self.config.server.webhooks.shutdown_delay_seconds)
        if self.reader is not None:
            await self.reader.close()
        await self.metrics.stop()
        await self.health.stop()
        log.info("grove-operator stopped")


async def run(operator: Operator) -> int:
    """Start, serve until SIGTERM/SIGINT (or lost leadership), shut down gracefully; the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.create_task(operator.start())
        waiting = asyncio.create_task(stop.wait())
        fatal = asyncio.create_task(operator.fatal.wait())
        done, _ = await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if starting in done:
            starting.result()  # startup errors propagate
            log.info("serving until SIGTERM/SIGINT")
            await asyncio.wait({waiting, fatal}, return_when=asyncio.FIRST_COMPLETED)
        else:
            log.info("signal received during startup")
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for task in (waiting, fatal):
            task.cancel()
        await operator.stop()
    return operator.exit_code

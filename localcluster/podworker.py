"""One pod on the host node, from its first sight to the end of its deletion: the kubelet's pod worker.

`PodWorker` is what localcluster/hostnode.py starts for every pod bound to it: it writes the pod's volumes
(fetching ConfigMaps and Secrets, requesting bound ServiceAccount tokens and renewing them), makes its
network (localcluster/podnet.py), runs its init containers one by one and then its containers through the
sandbox helper (localcluster/sandbox.py), probes them, restarts them by the restartPolicy, writes the pod's
status, and on deletion stops them and finishes the deletion. The rules are podspec.py's; this is the I/O.

`container_argv` runs one container of a pod without a pod sandbox: the init runner's rootfs mode
(localcluster/initrunner.py) uses it for grove-initc on KWOK nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcluster import podnet, podspec, sandbox, versions
from localcluster.images import ImageRootfs
from localcluster.podspec import ContainerRecord, Obj, PodRuntime
from localcluster.securefile import write_atomic

if TYPE_CHECKING:
    from kube.client import JSON
    from localcluster.hostnode import HostNode

STATUS_SETTLE = 0.05  # container changes within this long go out as one status write
RETRY = 10.0  # a container or sandbox that could not be created is tried again after this long
LOG_TAIL = 65536
PROBE_USER_AGENT = f"kube-probe/{versions.K8S_VERSION.removeprefix('v').rsplit('.', 1)[0]}"
# The sandbox helper's own environment (the container's is in its spec): this checkout importable.
HELPER_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    "PYTHONDONTWRITEBYTECODE": "1",
}

log = logging.getLogger("hostnode")


@dataclass(frozen=True)
class _Planned:
    spec: sandbox.Spec
    probes: Mapping[str, podspec.Probe]
    termination_log: Path
    log_file: Path


@dataclass
class _Process:
    """A started container: its helper process, layer and the spec it was started with."""

    proc: asyncio.subprocess.Process
    planned: _Planned
    kill: asyncio.Event = field(default_factory=asyncio.Event)  # a failed liveness/startup probe
    kill_grace: float = 0.0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # its probes


class PodWorker:
    """Runs one pod (by uid) from its first sight to the end of its deletion."""

    def __init__(self, node: HostNode, pod: JSON) -> None:
        self.node = node
        self.pod = pod
        m = podspec.meta(pod)
        self.uid, self.namespace, self.name = str(m["uid"]), str(m.get("namespace")), str(m.get("name"))
        self.dir = node.pods_dir / self.uid
        s = podspec.spec(pod)
        waiting = "PodInitializing" if s.get("initContainers") else "ContainerCreating"
        self.init = [
            ContainerRecord(c["name"], c.get("image", ""), init=True) for c in s.get("initContainers") or ()
        ]
        self.regular = [
            ContainerRecord(c["name"], c.get("image", ""), reason=waiting) for c in s.get("containers") or ()
        ]
        self._seed(pod)
        status = pod.get("status") or {}
        self.runtime = PodRuntime(
            host_ip=str(node.pool.gateway), start_time=status.get("startTime") or podspec.now_rfc3339()
        )
        self.stopping = asyncio.Event()
        self.grace = float(podspec.grace_seconds(pod))
        self.deleting = False  # the pod has a deletionTimestamp: finish its deletion when stopped
        self.gone = False  # deleted from the API: nothing more to write
        self.ran = False  # containers were (to be) started: the status is ours to write
        self.netns: Path | None = None
        self.volumes: dict[str, podspec.Volume] = {}
        self.volume_dirs: dict[str, Path] = {}
        self.tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (volume, path) -> (token, issued)
        self._dirty = asyncio.Event()
        self._written: dict[str, Any] | None = None
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.status_task = asyncio.create_task(self._status_loop(), name=f"status {self}")
        self.task = asyncio.create_task(self._run(), name=f"pod {self}")
        self.update(pod)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _seed(self, pod: Obj) -> None:
        """After a host node restart: containers that ran before count a restart when they run again."""
        status = pod.get("status") or {}
        reported = {
            s.get("name"): s
            for s in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]
        }
        for record in [*self.init, *self.regular]:
            old = reported.get(record.name) or {}
            state = old.get("state") or {}
            if state.get("running") or state.get("terminated") or old.get("lastState"):
                record.restart_count = int(old.get("restartCount") or 0)
                record.last_state = {
                    "terminated": {"exitCode": 255, "reason": "Unknown", "message": "the host node stopped"}
                }

    # -- events --
    def update(self, pod: JSON) -> None:
        self.pod = pod
        m = podspec.meta(pod)
        if m.get("deletionTimestamp") and not self.deleting:
            self.deleting = True
            grace = m.get("deletionGracePeriodSeconds")
            self.stop(float(podspec.grace_seconds(pod, None if grace is None else int(grace))))

    def deleted(self) -> None:
        """The pod is gone from the API (force-deleted): stop it, write nothing more."""
        self.gone = True
        grace = podspec.meta(self.pod).get("deletionGracePeriodSeconds")
        self.stop(float(0 if grace is None else grace))

    def stop(self, grace: float) -> None:
        if not self.stopping.is_set() or grace < self.grace:
            self.grace = grace
        self.stopping.set()

    def mark_dirty(self) -> None:
        self._dirty.set()

    # -- the pod's life --
    def _should_run(self) -> bool:
        phase = (self.pod.get("status") or {}).get("phase")
        return not self.deleting and phase not in ("Succeeded", "Failed")

    async def _run(self) -> None:
        try:
            if self._should_run():
                self.ran = True
                self.mark_dirty()
                await self._sync()
        except Exception:
            log.exception("%s: running the pod failed", self)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(podnet.delete_pod_network, self.uid)
            self.runtime = PodRuntime(
                self.runtime.host_ip, self.runtime.pod_ip, self.runtime.start_time, False
            )
            if self.ran:
                self.mark_dirty()
        await self.stopping.wait()
        if self.deleting and not self.gone and not self.node.closing:
            await self._finish_deletion()
        self.status_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.status_task
        await asyncio.to_thread(shutil.rmtree, self.dir, True)
        self.node.forget(self)

    async def _sync(self) -> None:
        if not await self._prepare_volumes():
            return
        preferred = str((self.pod.get("status") or {}).get("podIP") or "")
        while True:
            try:
                address = self.node.pool.allocate(self.uid, preferred)
                self.netns = await asyncio.to_thread(
                    podnet.create_pod_network, self.node.pool, self.uid, address
                )
                break
            except (podnet.NetworkError, podnet.PoolExhausted) as err:
                log.warning("%s: no pod network (%s); retrying in %.0f s", self, err, RETRY)
                self._waiting(
                    [*self.init, *self.regular], "ContainerCreating", f"FailedCreatePodSandBox: {err}"
                )
                await self._pause(RETRY)
                if self.stopping.is_set():
                    return
        hostname = podspec.pod_hostname(self.pod)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "etc-hosts").write_text(podspec.hosts_file(self.pod, str(address), hostname))
        (self.dir / "etc-hostname").write_text(f"{hostname}\n")
        self.runtime = PodRuntime(self.runtime.host_ip, str(address), self.runtime.start_time, True)
        self.mark_dirty()
        log.info("%s: sandbox up, IP %s", self, address)
        if self.tokens:
            self._spawn(self._renew_tokens(), "tokens")
        containers = {c["name"]: c for c in podspec.all_containers(self.pod)}
        for record in self.init:
            if not await self._run_init(containers[record.name], record):
                return
        await asyncio.gather(*(self._supervise(containers[r.name], r) for r in self.regular))

    def _spawn(self, coro: Any, what: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"{what} {self}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pause(self, seconds: float) -> None:
        """Sleep, but no longer than until the pod is stopped."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), seconds)

    def _waiting(self, records: Iterable[ContainerRecord], reason: str, message: str) -> None:
        for record in records:
            if record.state == "waiting":
                record.reason, record.message = reason, message
        self.mark_dirty()

    # -- volumes --
    async def _objects(self, refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Obj | None]:
        """The ConfigMaps and Secrets named (None for those that do not exist)."""
        from kube.client import NotFound

        found: dict[tuple[str, str], Obj | None] = {}
        for kind, name in sorted(set(refs)):
            plural = "configmaps" if kind == podspec.CONFIG_MAP else "secrets"
            try:
                found[(kind, name)] = await self.node.kube.request(
                    "GET", f"/api/v1/namespaces/{self.namespace}/{plural}/{name}"
                )
            except NotFound:
                found[(kind, name)] = None
        return found

    async def _token(self, request: podspec.TokenRequest) -> str:
        account = podspec.spec(self.pod).get("serviceAccountName") or "default"
        path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token"
        answer = await self.node.kube.request(
            "POST", path, body=podspec.token_request_body(self.pod, request)
        )
        token = str((answer.get("status") or {}).get("token") or "")
        self.tokens[(request.volume, request.path)] = (token, time.monotonic())
        return token

    async def _prepare_volumes(self) -> bool:
        """Write every volume (waiting, as a kubelet does, for what is missing); False when stopped first."""
        from kube.client import KubeError

        delay = 1.0
        all_records = [*self.init, *self.regular]
        while not self.stopping.is_set():
            try:
                objects = await self._objects(podspec.referenced_objects(self.pod))
                tokens = {(r.volume, r.path): await self._token(r) for r in podspec.token_requests(self.pod)}
                volumes = [
                    podspec.render_volume(self.pod, v, objects, tokens)
                    for v in podspec.spec(self.pod).get("volumes") or ()
                ]
                await asyncio.to_thread(self._write_volumes, volumes)
                self.volumes = {v.name: v for v in volumes}
                return True
            except (podspec.MissingObject, podspec.ConfigError, KubeError) as err:
                message = f"MountVolume.SetUp failed: {err}"
                log.warning("%s: %s; retrying in %.0f s", self, message, delay)
                self._waiting(all_records, "ContainerCreating", message)
            await self._pause(delay)
            delay = min(RETRY, delay * 2)
        return False

    def _write_volumes(self, volumes: Sequence[podspec.Volume]) -> None:
        for volume in volumes:
            self.volume_dirs[volume.name] = write_volume(
                self.dir / "volumes" / volume.name, volume, podspec.fs_group(self.pod)
            )

    async def _renew_tokens(self) -> None:
        """Replace each projected token at 80 % of its life (the file is swapped atomically)."""
        from kube.client import KubeError

        group = podspec.fs_group(self.pod)
        requests = {(r.volume, r.path): r for r in podspec.token_requests(self.pod)}
        while True:
            due = min(
                issued + podspec.token_refresh_after(requests[key].expiration_seconds) - time.monotonic()
                for key, (_, issued) in self.tokens.items()
            )
            await asyncio.sleep(max(due, 1.0))
            for key, (_, issued) in list(self.tokens.items()):
                request = requests[key]
                if time.monotonic() < issued + podspec.token_refresh_after(request.expiration_seconds):
                    continue
                try:
                    token = await self._token(request)
                except KubeError as err:
                    log.warning("%s: renewing token %s/%s failed: %s", self, *key, err)
                    continue
                volume = self.volume_dirs[request.volume]
                mode = next(f.mode for f in self.volumes[request.volume].files if f.path == request.path)
                await asyncio.to_thread(_write_file, volume, request.path, token.encode(), mode, group)

    # -- containers --
    def _plan(
        self, container: Obj, image: ImageRootfs, objects: podspec.Objects, services: Mapping[str, str]
    ) -> _Planned:
        """The sandbox spec and probes of one start of `container` (ConfigError when it cannot start)."""
        name = str(container["name"])
        termination_log = self.dir / "containers" / f"{name}.termination-log"
        message_path = str(
            container.get("terminationMessagePath") or podspec.DEFAULT_TERMINATION_MESSAGE_PATH
        )
        spec = podspec.sandbox_spec(
            self.pod,
            container,
            image,
            volumes=self.volumes,
            volume_dirs={volume: str(path) for volume, path in self.volume_dirs.items()},
            services=services,
            objects=objects,
            pod_ip=self.runtime.pod_ip,
            host_ip=self.runtime.host_ip,
            passwd=_read_in(image.rootfs, "/etc/passwd"),
            group=_read_in(image.rootfs, "/etc/group"),
            layer=str(self.dir / "containers" / name),
            netns=str(self.netns),
            managed_files={
                "/etc/hosts": str(self.dir / "etc-hosts"),
                "/etc/hostname": str(self.dir / "etc-hostname"),
                message_path: str(termination_log),
            },
            parent_pid=os.getpid(),
        )
        probes = {
            kind: podspec.resolve_probe(container[f"{kind}Probe"], container, self.runtime.pod_ip)
            for kind in ("startup", "readiness", "liveness")
            if container.get(f"{kind}Probe")
        }
        log_file = self.node.logs_dir / f"{self.namespace}_{self.name}_{name}.log"
        return _Planned(spec, probes, termination_log, log_file)

    async def _start(self, container: Obj, record: ContainerRecord) -> _Process | None:
        """Start one run of `container`; None (the record says why) when it cannot be created."""
        from kube.client import KubeError

        image = self.node.images.get(str(container.get("image")))
        if image is None:
            message = f"image {container.get('image')!r} is not available on host node {self.node.name} (no --rootfs for it)"
            self._waiting([record], "ErrImagePull", message)
            return None
        try:
            objects = await self._objects(podspec.referenced_objects({"spec": {"containers": [container]}}))
            links = podspec.spec(self.pod).get("enableServiceLinks", True) is not False
            services = podspec.service_env(self.namespace, self.node.proxy.services.list(), links)
            planned = await asyncio.to_thread(self._prepare_layer, container, image, objects, services)
        except (podspec.ConfigError, KubeError, OSError) as err:
            self._waiting([record], "CreateContainerConfigError", str(err))
            return None
        spec_file = sandbox.write_spec(planned.spec)
        with planned.log_file.open("ab") as output:
            proc = await asyncio.create_subprocess_exec(
                *sandbox.run_argv(spec_file),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                env=HELPER_ENV,
                start_new_session=True,
            )
        pid_file = Path(planned.spec.layer) / sandbox.PID_FILE
        while not pid_file.exists() and proc.returncode is None:  # until the command runs (or fails)
            await asyncio.sleep(0.02)
        started = "startup" not in planned.probes
        record.begin(podspec.now_rfc3339(), f"hostnode://{self.uid}/{record.name}", started)
        record.ready = started and "readiness" not in planned.probes
        self.mark_dirty()
        log.info("%s: started %s (pid %d): %s", self, record.name, proc.pid, " ".join(planned.spec.argv))
        running = _Process(proc, planned)
        kinds = ("readiness", "liveness") if started else ("startup",)
        self._start_probes(running, record, planned.probes, kinds)
        return running

    def _prepare_layer(
        self, container: Obj, image: ImageRootfs, objects: podspec.Objects, services: Mapping[str, str]
    ) -> _Planned:
        """Plan the run and give it a fresh layer directory and termination log (in a thread: file I/O)."""
        planned = self._plan(container, image, objects, services)
        layer = Path(planned.spec.layer)
        if layer.exists():
            shutil.rmtree(layer)  # a restarted container starts from the image again
        layer.mkdir(parents=True)
        planned.termination_log.write_bytes(b"")
        os.chmod(planned.termination_log, 0o666)
        _make_sub_paths(planned.spec)
        planned.log_file.parent.mkdir(parents=True, exist_ok=True)
        return planned

    async def _run_once(self, container: Obj, record: ContainerRecord) -> int | None:
        """One run of the container to its end; its exit code, None when it could not be started."""
        running = await self._start(container, record)
        if running is None:
            return None
        planned, proc = running.planned, running.proc
        exited = asyncio.ensure_future(proc.wait())
        stop = asyncio.ensure_future(self.stopping.wait())
        kill = asyncio.ensure_future(running.kill.wait())
        try:
            await asyncio.wait({exited, stop, kill}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                grace = running.kill_grace if kill.done() and not stop.done() else self.grace
                await _terminate(proc, grace)
        finally:
            for task in (stop, kill, *running.tasks):
                task.cancel()
            await asyncio.gather(stop, kill, *running.tasks, return_exceptions=True)
        code = await exited
        code = 128 - code if code < 0 else code
        start_error = Path(planned.spec.layer) / sandbox.START_ERROR_FILE
        if code == sandbox.EXIT_START_ERROR and start_error.exists():
            reason, message = "StartError", start_error.read_text(errors="replace")
        else:
            reason = "Completed" if code == 0 else "Error"
            message = podspec.termination_message(
                _read_bytes(planned.termination_log, podspec.MAX_TERMINATION_MESSAGE),
                _tail(planned.log_file),
                str(container.get("terminationMessagePolicy") or "File"),
                code,
            )
        record.end(code, reason, message, podspec.now_rfc3339())
        self.mark_dirty()
        log.info("%s: %s exited %d (%s)", self, record.name, code, reason)
        return code

    async def _run_init(self, container: Obj, record: ContainerRecord) -> bool:
        """Run an init container until it succeeds; False when it failed for good or the pod stopped."""
        policy = str(podspec.spec(self.pod).get("restartPolicy") or "Always")
        streak = 0
        while not self.stopping.is_set():
            code = await self._run_once(container, record)
            if self.stopping.is_set():
                return False
            if code is None:
                await self._pause(RETRY)
                continue
            if code == 0:
                return True
            if not podspec.should_restart(policy, code, init=True):
                return False
            streak += 1
            await self._back_off(record, streak)
        return False

    async def _supervise(self, container: Obj, record: ContainerRecord) -> None:
        """Run a container, restarting it as the restartPolicy says, until the pod stops."""
        policy = str(podspec.spec(self.pod).get("restartPolicy") or "Always")
        loop = asyncio.get_running_loop()
        streak = 0
        while not self.stopping.is_set():
            began = loop.time()
            code = await self._run_once(container, record)
            if self.stopping.is_set():
                return
            if code is None:
                await self._pause(RETRY)
                continue
            if not podspec.should_restart(policy, code, init=False):
                return
            streak = 1 if loop.time() - began >= podspec.BACKOFF_RESET else streak + 1
            await self._back_off(record, streak)

    async def _back_off(self, record: ContainerRecord, streak: int) -> None:
        delay = podspec.restart_delay(streak)
        if delay:
            message = f"back-off {delay:.0f}s restarting failed container={record.name} pod={self.name}_{self.namespace}({self.uid})"
            record.wait("CrashLoopBackOff", message)
            self.mark_dirty()
        await self._pause(delay)

    # -- probes --
    def _start_probes(
        self,
        running: _Process,
        record: ContainerRecord,
        probes: Mapping[str, podspec.Probe],
        kinds: Sequence[str],
    ) -> None:
        for kind in kinds:
            if kind in probes:
                task = asyncio.create_task(
                    self._probe_loop(kind, probes, running, record), name=f"{kind} probe {self}/{record.name}"
                )
                running.tasks.append(task)

    async def _probe_loop(
        self, kind: str, probes: Mapping[str, podspec.Probe], running: _Process, record: ContainerRecord
    ) -> None:
        probe = probes[kind]
        initial = {"readiness": False, "liveness": True, "startup": None}[kind]
        state = podspec.ProbeState(probe.success_threshold, probe.failure_threshold, initial)
        await asyncio.sleep(probe.initial_delay)
        while True:
            ok = await self._probe(kind, probe, running)
            changed = state.record(ok)
            if kind == "readiness":
                if changed:
                    record.ready = bool(state.result)
                    log.info("%s: %s %s", self, record.name, "ready" if record.ready else "not ready")
                    self.mark_dirty()
            elif state.result is False:
                log.warning(
                    "%s: %s failed its %s probe %d times: restarting it",
                    self,
                    record.name,
                    kind,
                    state.failures,
                )
                running.kill_grace = float(podspec.grace_seconds(self.pod, probe.grace_seconds))
                running.kill.set()
                return
            elif kind == "startup" and state.result:
                record.started = True
                record.ready = "readiness" not in probes
                self.mark_dirty()
                self._start_probes(running, record, probes, ("readiness", "liveness"))
                return
            await asyncio.sleep(probe.period)

    async def _probe(self, kind: str, probe: podspec.Probe, running: _Process) -> bool:
        import aiohttp

        try:
            if probe.action == "http":
                url = f"{probe.scheme.lower()}://{probe.host}:{probe.port}{probe.path}"
                headers = {"User-Agent": PROBE_USER_AGENT, "Accept": "*/*", **dict(probe.headers)}
                timeout = aiohttp.ClientTimeout(total=probe.timeout)
                assert self.node.http is not None
                async with self.node.http.get(url, headers=headers, timeout=timeout, ssl=False) as response:
                    return podspec.http_probe_ok(response.status)
            if probe.action == "tcp":
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(probe.host, probe.port), probe.timeout
                )
                writer.close()
                return True
            return await self._exec_probe(kind, probe, running)
        except (OSError, TimeoutError, aiohttp.ClientError):
            return False

    async def _exec_probe(self, kind: str, probe: podspec.Probe, running: _Process) -> bool:
        layer = Path(running.planned.spec.layer)
        try:
            pid = int((layer / sandbox.PID_FILE).read_text())
        except (OSError, ValueError):
            return False
        spec_file = layer / f"probe-{kind}.json"
        spec_file.write_text(dataclasses.replace(running.planned.spec, argv=probe.command).to_json())
        proc = await asyncio.create_subprocess_exec(
            *sandbox.exec_argv(pid, spec_file),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=HELPER_ENV,
            start_new_session=True,
        )
        try:
            return await asyncio.wait_for(proc.wait(), probe.timeout) == 0
        except TimeoutError:
            await _terminate(proc, 0)
            return False

    # -- status and deletion --
    def status_doc(self) -> dict[str, Any]:
        previous = list((self.pod.get("status") or {}).get("conditions") or ())
        if self._written is not None:
            ours = {c["type"] for c in self._written["conditions"]}
            previous = [c for c in previous if c.get("type") not in ours] + list(self._written["conditions"])
        view = {**self.pod, "status": {"conditions": previous}}
        return podspec.pod_status(view, self.runtime, self.init, self.regular, podspec.now_rfc3339())

    async def write_status(self) -> None:
        """Write the current status when it changed (strategic merge: others' conditions stay)."""
        from grove_api.refs import Ref
        from kube.client import CONTENT_STRATEGIC_MERGE_PATCH, KubeError, NotFound, Unavailable

        async with self._write_lock:
            if self.gone or self.node.closing:
                return
            doc = self.status_doc()
            if doc == self._written:
                return
            patch = {"metadata": {"uid": self.uid}, "status": doc}
            try:
                await self.node.kube.patch(
                    Ref("v1", "Pod", self.namespace, self.name),
                    patch,
                    content_type=CONTENT_STRATEGIC_MERGE_PATCH,
                    subresource="status",
                )
                self._written = doc
            except Unavailable:
                raise
            except NotFound:
                self.gone = True
            except KubeError as err:
                log.warning("%s: status not written: %s", self, err)

    async def _status_loop(self) -> None:
        from kube.client import Unavailable

        failures = 0
        while True:
            await self._dirty.wait()
            await asyncio.sleep(STATUS_SETTLE)
            self._dirty.clear()
            try:
                await self.write_status()
                failures = 0
            except Unavailable as err:
                failures += 1
                log.warning("%s: writing the status failed (%s); retrying", self, err)
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))
                self._dirty.set()

    async def _finish_deletion(self) -> None:
        """The final status, then delete with grace 0 and a UID precondition (what a kubelet does once the
        pod's containers are gone)."""
        from kube.client import KubeError

        self.runtime = PodRuntime(
            self.runtime.host_ip, self.runtime.pod_ip, self.runtime.start_time, False, terminal=True
        )
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        for attempt in range(5):
            try:
                if self.ran:
                    await self.write_status()
                await self.node.kube.request(
                    "DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}", body=body
                )
                log.info("%s: deleted", self)
                return
            except KubeError as err:
                if err.status in (404, 409):  # gone already, or a new pod of that name
                    return
                log.warning("%s: finishing the deletion failed (%s)", self, err)
                await asyncio.sleep(0.5 * 2**attempt)


# --- helpers (files, processes) -------------------------------------------------------------------------------
def write_volume(folder: Path, volume: podspec.Volume, group: int | None) -> Path:
    """Make `volume` in `folder` (emptied first; a hostPath is used where it is); where it is on the host."""
    if volume.kind == "hostPath":
        return _host_path(volume)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if volume.kind == "emptyDir":
        os.chown(folder, 0, 0 if group is None else group)
        os.chmod(folder, 0o777 if group is None else 0o2777)
    for item in volume.files:
        _write_file(folder, item.path, item.data, item.mode, group)
    if volume.kind == "files":
        for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            os.chown(sub, 0, 0 if group is None else group)
            os.chmod(sub, podspec.volume_mode(0o755, group, True))
    return folder


def container_argv(
    pod: Obj,
    container: Obj,
    image: ImageRootfs,
    pod_dir: Path,
    objects: podspec.Objects,
    services: Mapping[str, str],
) -> list[str]:
    """One container of `pod` run outside any host node (the host's network, no pod sandbox): what the init
    runner does to run grove-initc from an image for a pod on a KWOK node. Writes the volumes the container
    mounts under `pod_dir`, and its sandbox spec; the helper's command line. ConfigError / MissingObject
    when it cannot start."""
    mounted = {m.get("name") for m in container.get("volumeMounts") or ()}
    volumes = [
        podspec.render_volume(pod, v, objects, {})
        for v in podspec.spec(pod).get("volumes") or ()
        if v.get("name") in mounted
    ]
    group = podspec.fs_group(pod)
    dirs = {v.name: str(write_volume(pod_dir / "volumes" / v.name, v, group)) for v in volumes}
    spec = podspec.sandbox_spec(
        pod,
        container,
        image,
        volumes={v.name: v for v in volumes},
        volume_dirs=dirs,
        services=services,
        objects=objects,
        pod_ip="",
        host_ip="",
        passwd=_read_in(image.rootfs, "/etc/passwd"),
        group=_read_in(image.rootfs, "/etc/group"),
        layer=str(pod_dir / "container"),
        parent_pid=os.getpid(),
    )
    _make_sub_paths(spec)
    return sandbox.run_argv(sandbox.write_spec(spec))


def _make_sub_paths(spec: sandbox.Spec) -> None:
    """Create missing mount sources: subPaths of writable volumes, as the kubelet creates them."""
    for mount in spec.mounts:
        if not os.path.exists(mount.source):
            os.makedirs(mount.source)


def _write_file(folder: Path, relative: str, data: bytes, mode: int, group: int | None) -> None:
    """Write a volume file atomically (a renewed token never appears half-written), and private until it has
    its final owner and mode (Secrets and tokens are in these files)."""
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = (0, 0 if group is None else group)
    write_atomic(path, data, mode=podspec.volume_mode(mode, group, False), owner=owner)


def _host_path(volume: podspec.Volume) -> Path:
    path = Path(volume.host_path)
    if volume.host_path_type == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif volume.host_path_type == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    elif volume.host_path_type and not path.exists():
        raise podspec.ConfigError(f"hostPath {path} ({volume.host_path_type}) does not exist")
    return path


def _read_in(root: Path, path: str) -> str:
    try:
        return Path(sandbox.resolve_in_root(str(root), path)).read_text(errors="replace")
    except OSError:
        return ""


def _read_bytes(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(limit)
    except OSError:
        return b""


def _tail(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - LOG_TAIL))
            return fh.read()
    except OSError:
        return b""


async def _terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM (the helper passes it to the container), SIGKILL after `grace` seconds."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    await proc.wait()

"""The init runner: real grove-initc processes for pods on KWOK nodes, which cannot run containers.

KWOK simulates kubelets, so nothing would ever execute a pod's `grove-initc` init container. The local
cluster closes that gap in two halves:

* KWOK's pod Stages (`kwok-grove-stages.yaml`, loaded by `grove-cluster up`) hold a bound pod that has an
  init container named `grove-initc` in its init phase (Pending, Initialized=False, grove-initc `running`)
  until the pod carries the annotation `grove.io/initc-succeeded: "true"` (SUCCEEDED_ANNOTATION); only then
  do they make it Running and Ready. Pods without grove-initc become Ready at once, as with KWOK's defaults.
* This process plays the kubelet's part for that one container. It watches the pods (all namespaces) that
  carry a `grove.io/podgang` label, and for each one that KWOK reports with grove-initc running and that
  lacks the annotation it runs the real `python -m initc.main` with the container's `args`, plus
  `--pod-info-dir` (the downward-API files `namespace` and `podgangname`, written to a directory under
  `--work-dir`) and `--kubeconfig` (the apiserver, its CA and the token of the pod's token Secret:
  the `sa-token-secret-vol` volume's Secret, else `<part-of>-ic-sat`). So grove-initc runs with the same
  per-PodCliqueSet identity and RBAC as in a real pod. Its output goes to this process's log, prefixed by
  the pod. Exit 0: the annotation is set (through `pods/status`, as a kubelet writes, which the
  managed-resource protection does not guard). Any other exit: run again after a backoff (a kubelet
  restarts a failed init container). Pod deleted, terminating or replaced: its process is stopped.

Ordering in `make demo` and in the e2e tests is therefore the real mechanism, not a simulation of it.
Waiting for KWOK's `running` state before starting keeps the order a kubelet has (container started, then
status), and makes sure KWOK's init-phase patch can never land after the Ready one.

One OS process per waiting pod is fine for a local cluster: a waiting grove-initc costs no CPU, but about
75 MB of private memory (measured: the Kubernetes client's modules), so a few hundred pods held at once
fit on a developer machine, thousands would not. Starting one (interpreter and imports) takes about a
CPU-second, so at most `--max-starts` processes are starting at once (see STARTED_LINES). The processes
run in this process's process group, so stopping the group (what `grove-cluster down` does) stops them
all; `stray_pids` finds any left behind by a crash (`up` stops those before it restarts a dead runner).

Rootfs mode (`--rootfs IMAGE=DIR`, optionally `--image-config IMAGE=FILE`; `grove-cluster up
--initc-rootfs`): when the image of a pod's grove-initc container is one of those, the runner runs that
container as its spec says instead: its `command` + `args` (or the image's entrypoint and cmd) with chroot in
the image's filesystem, as the container's user (runAsUser/runAsGroup, else the image's, e.g. 65532), with
the volumes it mounts written per pod and mounted where the pod spec says (pod-info-vol at
/var/grove/pod-info, the token Secret at /var/run/secrets/kubernetes.io/serviceaccount), so grove-initc
uses its in-cluster configuration. Pods on KWOK nodes have no network of their own and no service proxy, so
it runs in the host's network with KUBERNETES_SERVICE_HOST/PORT pointing at the apiserver's own address.
The host node's container machinery does it (localcluster/podworker.py `container_argv`, sandbox.py): a
private mount namespace per run, an overlay of the image, so runs of many pods never see each other's files.
It needs root, as the host node does.

The process-management half (spawn, readiness, strays) is used by `localcluster.cluster`; the runner half
runs with `python -m localcluster.initrunner --kubeconfig <admin kubeconfig> --work-dir <state>/initc
[--rootfs IMAGE=DIR [--image-config IMAGE=FILE]]...`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import random
import shlex
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from grove_api import constants as c
from grove_api import naming
from localcluster import images, podspec, processes, sandbox
from localcluster.images import ImageRootfs
from localcluster.podspec import ConfigError, MissingObject
from localcluster.securefile import write_atomic
from localcluster.state import ClusterInfo, Component

if TYPE_CHECKING:
    from kube.client import KubeClient
    from kube.informer import Informer

Pod = Mapping[str, Any]

# The annotation the runner sets when grove-initc exited 0; KWOK's Stages (kwok-grove-stages.yaml) key on it.
SUCCEEDED_ANNOTATION = "grove.io/initc-succeeded"
SUCCEEDED_VALUE = "true"
INIT_CONTAINER = c.INIT_CONTAINER_NAME
# The token volume as the pod webhook adds it (grove_api.pod_admission.TOKEN_VOLUME; not imported, to keep the
# `grove-cluster` commands quick to start: a unit test keeps the two equal).
TOKEN_VOLUME = "sa-token-secret-vol"
NAMESPACE_FILE = "namespace"
PODGANG_FILE = "podgangname"
KUBECONFIG_FILE = "kubeconfig"

STAGES_FILE = Path(__file__).with_name("kwok-grove-stages.yaml")
NAME = "initc-runner"
MODULE = "localcluster.initrunner"
WORK_DIR = "initc"
READY_FILE = "ready"
COMMAND_ENV = "GROVE_INITC_COMMAND"  # override the grove-initc command line (shell words), e.g. for a stub
ROOT = Path(__file__).resolve().parent.parent

MAX_STARTS = 4
# A start holds its slot until the process has logged STARTED_LINES lines (grove-initc logs "started", then
# "waiting for parents" once its client is set up: the interpreter start and imports are behind it), exits,
# or STARTUP_WINDOW seconds passed.
STARTED_LINES = 2
STARTUP_WINDOW = 5.0
BACKOFF = (1.0, 30.0)  # first and longest pause before running a failed grove-initc again
STOP_GRACE = 2.0  # SIGTERM, then SIGKILL after this long
READY_TIMEOUT = 60.0

log = logging.getLogger(NAME)


# --- which pods need a run, and what it gets (pure) -----------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One grove-initc run: the pod (by uid: a recreated pod of the same name is another run) and its inputs."""

    namespace: str
    name: str
    uid: str
    args: tuple[str, ...]
    podgang: str
    secret: str  # the token Secret's name

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def _meta(pod: Pod) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def init_container(pod: Pod) -> Mapping[str, Any] | None:
    """The pod's `grove-initc` init container, if it has one."""
    for container in (pod.get("spec") or {}).get("initContainers") or ():
        if container.get("name") == INIT_CONTAINER:
            return dict(container)
    return None


def initc_state(pod: Pod) -> str | None:
    """grove-initc's state in the pod status (`running`, `waiting`, `terminated`), None when not reported."""
    for status in (pod.get("status") or {}).get("initContainerStatuses") or ():
        if status.get("name") == INIT_CONTAINER:
            return next(iter(status.get("state") or {}), None)
    return None


def succeeded(pod: Pod) -> bool:
    return (_meta(pod).get("annotations") or {}).get(SUCCEEDED_ANNOTATION) == SUCCEEDED_VALUE


def token_secret_name(pod: Pod) -> str:
    """The Secret of the pod's `sa-token-secret-vol` volume, else the PodCliqueSet's `<part-of>-ic-sat`."""
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        if volume.get("name") == TOKEN_VOLUME and (volume.get("secret") or {}).get("secretName"):
            return str(volume["secret"]["secretName"])
    return naming.initc_token_secret((_meta(pod).get("labels") or {}).get(c.LABEL_PART_OF, ""))


def wanted_run(pod: Pod) -> Run | None:
    """The run this pod needs now: bound, not terminating or finished, with grove-initc, which KWOK reports
    running, and without the success annotation. None otherwise."""
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName") or meta.get("deletionTimestamp") or succeeded(pod):
        return None
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    container = init_container(pod)
    if container is None or initc_state(pod) != "running":
        return None
    return Run(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        args=tuple(str(a) for a in container.get("args") or ()),
        podgang=str((meta.get("labels") or {}).get(c.LABEL_PODGANG, "")),
        secret=token_secret_name(pod),
    )


def pod_info_files(run: Run) -> dict[str, str]:
    """The downward-API files of `pod-info-vol` (a missing label gives an empty file, as on a kubelet)."""
    return {NAMESPACE_FILE: run.namespace, PODGANG_FILE: run.podgang}


def token_from_secret(secret: Mapping[str, Any] | None) -> tuple[str, bytes | None] | None:
    """(token, ca.crt PEM or None) once the token controller has filled the Secret, else None."""
    data = (secret or {}).get("data") or {}
    if not data.get("token"):
        return None
    token = base64.b64decode(data["token"]).decode()
    ca = base64.b64decode(data["ca.crt"]) if data.get("ca.crt") else None
    return token, ca


def render_kubeconfig(server: str, ca_pem: bytes, token: str, namespace: str) -> dict[str, Any]:
    """A kubeconfig for grove-initc: the apiserver, its CA and the pod's ServiceAccount token."""
    user = f"{namespace}:initc"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": user, "namespace": namespace}}
        ],
        "current-context": "local",
        "preferences": {},
    }


def default_command() -> list[str]:
    """`$GROVE_INITC_COMMAND` (shell words) or this interpreter running `initc.main`."""
    override = os.environ.get(COMMAND_ENV, "").strip()
    return shlex.split(override) if override else [sys.executable, "-m", "initc.main"]


def initc_argv(command: Sequence[str], run: Run, pod_info_dir: Path, kubeconfig: Path) -> list[str]:
    """The command line: the container's args, then where its pod-info files and credentials are (last, so
    they win over any such flag in the args, as the mounts would in a pod)."""
    return [*command, *run.args, f"--pod-info-dir={pod_info_dir}", f"--kubeconfig={kubeconfig}"]


def backoff_delay(failures: int, backoff: tuple[float, float] = BACKOFF) -> float:
    """Pause before run number `failures + 1`: doubling from the first value, capped, jittered ±25 %."""
    base, cap = backoff
    return min(cap, base * 2.0 ** max(0, failures - 1)) * random.uniform(0.75, 1.25)


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the runner and of its grove-initc processes: this checkout importable, no
    KUBECONFIG (each process is told its credentials explicitly)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("KUBECONFIG", None)
    return env


# --- the runner (async) -------------------------------------------------------------------------------------
@dataclass
class _Active:
    run: Run
    task: asyncio.Task[None] | None = None
    pid: int | None = None
    attempts: int = 0


@dataclass
class InitRunner:
    """Watches pods and Secrets, keeps one grove-initc run per pod that needs one."""

    kube: KubeClient
    server: str
    ca_pem: bytes
    work_dir: Path
    command: Sequence[str] = field(default_factory=default_command)
    max_starts: int = MAX_STARTS
    backoff: tuple[float, float] = BACKOFF
    env: Mapping[str, str] = field(default_factory=child_env)
    images: Mapping[str, ImageRootfs] = field(default_factory=dict)  # rootfs mode for these images

    def __post_init__(self) -> None:
        from kube.informer import Informer
        from kube.resources import POD, SECRET

        self.active: dict[tuple[str, str], _Active] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # every run not finished yet, stopped ones included
        self.completed = 0
        self._starts = asyncio.Semaphore(self.max_starts)
        self._secrets_changed = asyncio.Event()
        self._stopping = False
        # Only pods of a PodGang: grove-initc reads the PodGang label, and other pods cost nothing here.
        self.pods: Informer = Informer(
            self.kube, POD, label_selector=c.LABEL_PODGANG, on_event=self._on_pod, index_labels=()
        )
        self.secrets: Informer = Informer(self.kube, SECRET, on_event=self._on_secret, index_labels=())

    # -- events --
    def _on_secret(self, event_type: str, secret: dict[str, Any]) -> None:
        changed, self._secrets_changed = self._secrets_changed, asyncio.Event()
        changed.set()

    def _on_pod(self, event_type: str, pod: dict[str, Any]) -> None:
        meta = _meta(pod)
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        run = None if event_type == "DELETED" else wanted_run(pod)
        current = self.active.get(key)
        if current is not None and (run is None or run.uid != current.run.uid):
            # Deleted, terminating, replaced, or already past its init phase: a kubelet stops the container.
            # (When our own annotation shows up the task has finished or is finishing: cancelling is harmless.)
            if current.task is not None and not current.task.done():
                current.task.cancel()
            self.active.pop(key, None)
            current = None
        if run is not None and current is None and not self._stopping:
            self._start(run)

    def _start(self, run: Run) -> None:
        active = _Active(run)
        self.active[run.key] = active
        active.task = asyncio.create_task(self._execute(active), name=f"grove-initc {run}")
        self._tasks.add(active.task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if self.active.get(run.key) is active:
                del self.active[run.key]
            if not task.cancelled() and task.exception() is not None:
                log.error("%s: run failed: %r", run, task.exception())

        active.task.add_done_callback(done)

    # -- one pod --
    async def _token(self, run: Run) -> tuple[str, bytes]:
        """The pod's token and CA; waits (as a kubelet would, ContainerCreating) until the Secret is there and
        the token controller has filled it."""
        waiting = False
        while True:
            changed = self._secrets_changed
            got = token_from_secret(self.secrets.get(run.namespace, run.secret))
            if got is not None:
                token, ca = got
                return token, ca or self.ca_pem
            if not waiting:
                log.info("%s: waiting for token Secret %s/%s", run, run.namespace, run.secret)
                waiting = True
            await changed.wait()

    def _prepare(self, run: Run, token: str, ca: bytes) -> tuple[Path, Path]:
        pod_dir = self.work_dir / run.namespace / run.uid
        pod_info = pod_dir / "pod-info"
        pod_info.mkdir(parents=True, exist_ok=True)
        for name, text in pod_info_files(run).items():
            (pod_info / name).write_text(text)
        kubeconfig = pod_dir / KUBECONFIG_FILE
        write_atomic(
            kubeconfig, yaml.safe_dump(render_kubeconfig(self.server, ca, token, run.namespace)).encode()
        )
        return pod_info, kubeconfig

    async def _pump(self, run: Run, stream: asyncio.StreamReader, started: asyncio.Event) -> None:
        """Log the process's output, prefixed by the pod; set `started` after STARTED_LINES lines or at EOF."""
        lines = 0
        while True:
            line = await stream.readline()
            lines += 1
            if not line or lines >= STARTED_LINES:
                started.set()
            if not line:
                return
            log.info("%s | %s", run, line.decode(errors="replace").rstrip())

    async def _process(self, active: _Active, argv: list[str]) -> int:
        """Run grove-initc once; its exit code. Cancelled: SIGTERM, then SIGKILL after STOP_GRACE."""
        run = active.run
        proc: asyncio.subprocess.Process | None = None
        pump: asyncio.Task[None] | None = None
        try:
            started = asyncio.Event()
            async with self._starts:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env=dict(self.env),
                )
                active.pid = proc.pid
                assert proc.stdout is not None
                pump = asyncio.create_task(self._pump(run, proc.stdout, started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(started.wait(), STARTUP_WINDOW)
            code = await proc.wait()
            await pump
            return code
        finally:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(asyncio.shield(proc.wait()), STOP_GRACE)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            if pump is not None and not pump.done():
                pump.cancel()
            active.pid = None

    async def _mark_succeeded(self, run: Run) -> None:
        """Set the annotation (with the pod's uid as precondition) through pods/status; retried while the
        apiserver is unavailable, given up when the pod is gone."""
        from grove_api.refs import Ref
        from kube.client import CONTENT_MERGE_PATCH, KubeError, Unavailable

        patch = {"metadata": {"uid": run.uid, "annotations": {SUCCEEDED_ANNOTATION: SUCCEEDED_VALUE}}}
        ref = Ref("v1", "Pod", run.namespace, run.name)
        failures = 0
        while True:
            try:
                await self.kube.patch(ref, patch, content_type=CONTENT_MERGE_PATCH, subresource="status")
                return
            except Unavailable as err:
                failures += 1
                log.warning("%s: setting %s failed (%s); retrying", run, SUCCEEDED_ANNOTATION, err.message)
                await asyncio.sleep(backoff_delay(failures, (0.2, 5.0)))
            except KubeError as err:  # gone or replaced: nothing to mark
                log.info("%s: not marked (%s)", run, err.message)
                return

    async def _execute(self, active: _Active) -> None:
        run = active.run
        failures = 0
        while True:
            token, ca = await self._token(run)
            active.attempts += 1
            try:
                code = await self._attempt(active, token, ca)
            finally:
                shutil.rmtree(self.work_dir / run.namespace / run.uid, ignore_errors=True)
            if code == 0:
                log.info("%s: grove-initc exited 0; marking the pod", run)
                await self._mark_succeeded(run)
                self.completed += 1
                return
            failures += 1
            delay = backoff_delay(failures, self.backoff)
            log.warning("%s: grove-initc exited %d; running it again in %.1f s", run, code, delay)
            await asyncio.sleep(delay)

    async def _attempt(self, active: _Active, token: str, ca: bytes) -> int:
        """One run; a container that cannot be made (its volumes' sources missing) counts as a failed run
        and is tried again after the back-off, as a kubelet retries."""
        run = active.run
        try:
            argv = self._argv(run, token, ca)
        except (ConfigError, MissingObject) as err:
            log.warning("%s: grove-initc cannot be started: %s", run, err)
            return sandbox.EXIT_START_ERROR
        log.info("%s: starting grove-initc (attempt %d): %s", run, active.attempts, shlex.join(argv))
        return await self._process(active, argv)

    def _argv(self, run: Run, token: str, ca: bytes) -> list[str]:
        """grove-initc's command line: from its image's filesystem when the runner has it (rootfs mode),
        else this checkout's grove-initc with the pod's files passed as flags."""
        pod = self.pods.get(run.namespace, run.name)
        container = init_container(pod) if pod is not None else None
        image = self.images.get(str((container or {}).get("image")))
        if pod is None or container is None or image is None:
            pod_info, kubeconfig = self._prepare(run, token, ca)
            return initc_argv(self.command, run, pod_info, kubeconfig)
        from localcluster import podworker

        volumes = (pod.get("spec") or {}).get("volumes") or []
        refs = podspec.referenced_objects({"spec": {"volumes": volumes, "containers": [container]}})
        objects = {
            (kind, name): self.secrets.get(run.namespace, name) if kind == podspec.SECRET else None
            for kind, name in refs
        }
        url = urlsplit(self.server)
        services = {
            "KUBERNETES_SERVICE_HOST": url.hostname or "",
            "KUBERNETES_SERVICE_PORT": str(url.port or 443),
        }
        pod_dir = self.work_dir / run.namespace / run.uid
        return podworker.container_argv(pod, container, image, pod_dir, objects, services)

    # -- lifecycle --
    async def start(self, timeout: float = 60.0) -> None:
        """Sync the Secrets (so tokens are there when the pods' runs start), then the pods."""
        await self.secrets.start(timeout)
        await self.pods.start(timeout)

    async def close(self) -> None:
        """Stop watching and stop every grove-initc process (SIGTERM, SIGKILL after STOP_GRACE)."""
        self._stopping = True
        await asyncio.gather(self.pods.close(), self.secrets.close())
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _cluster_of(kubeconfig: Path) -> tuple[str, bytes]:
    """The apiserver URL and CA (PEM) of a kubeconfig's current context."""
    doc = yaml.safe_load(kubeconfig.read_text())
    context = next(x["context"] for x in doc["contexts"] if x["name"] == doc["current-context"])
    cluster = next(x["cluster"] for x in doc["clusters"] if x["name"] == context["cluster"])
    if cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"])
    else:
        ca = Path(cluster["certificate-authority"]).read_bytes()
    return str(cluster["server"]), ca


async def _serve(args: argparse.Namespace) -> int:
    from kubernetes_asyncio import config as kube_config
    from kubernetes_asyncio.client import ApiClient, Configuration

    from kube.client import KubeClient

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server, ca = _cluster_of(args.kubeconfig)
    conf = Configuration()
    await kube_config.load_kube_config(config_file=str(args.kubeconfig), client_configuration=conf)
    work_dir: Path = args.work_dir
    shutil.rmtree(work_dir, ignore_errors=True)  # leftovers of an earlier runner
    work_dir.mkdir(parents=True)
    async with ApiClient(configuration=conf) as api:
        runner = InitRunner(
            KubeClient(api, request_timeout=30.0),
            server,
            ca,
            work_dir,
            command=args.initc_command,
            max_starts=args.max_starts,
            images=args.images,
        )
        try:
            await runner.start()
            (work_dir / READY_FILE).write_text(f"{os.getpid()}\n")
            log.info("watching pods; grove-initc command: %s", shlex.join(runner.command))
            await stop.wait()
            log.info("stopping (%d grove-initc process(es) running)", len(runner.active))
        finally:
            await runner.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Run grove-initc for pods on KWOK nodes and mark them when it succeeds.",
    )
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the runner's own (admin) kubeconfig")
    parser.add_argument("--work-dir", type=Path, required=True, help="per-pod files (emptied at start)")
    parser.add_argument(
        "--max-starts", type=int, default=MAX_STARTS, help="grove-initc processes starting at once"
    )
    parser.add_argument(
        "--initc-command",
        type=shlex.split,
        default=None,
        help=f"grove-initc command line (default: ${COMMAND_ENV} or `python -m initc.main`)",
    )
    parser.add_argument(
        "--rootfs",
        action="append",
        default=[],
        metavar="IMAGE=DIR",
        help="run grove-initc of this image from DIR",
    )
    parser.add_argument(
        "--image-config",
        action="append",
        default=[],
        metavar="IMAGE=FILE",
        help="the image's config (inspect JSON)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.images = images.load(args.rootfs, args.image_config)
    except images.ImageError as err:
        parser.error(str(err))
    if args.initc_command is None:
        args.initc_command = default_command()
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("reconciler").setLevel(logging.WARNING)  # the informers' routine lines
    return asyncio.run(_serve(args))


# --- process management (for localcluster.cluster) ----------------------------------------------------------
def work_dir(state_dir: Path) -> Path:
    return state_dir / WORK_DIR


def log_path(state_dir: Path) -> Path:
    return state_dir / "logs" / f"{NAME}.log"


def argv(info: ClusterInfo, rootfs: Sequence[str] = ()) -> list[str]:
    """The runner's command line; `rootfs`: its rootfs-mode flags (`images.flags`)."""
    return [
        sys.executable,
        "-m",
        MODULE,
        f"--kubeconfig={info.kubeconfig}",
        f"--work-dir={work_dir(info.state_dir)}",
        *rootfs,
    ]


def rootfs_flags(args: Sequence[str]) -> list[str]:
    """The rootfs-mode flags of a runner's recorded command line (kept when a dead runner is restarted)."""
    return [arg for arg in args if arg.startswith(("--rootfs=", "--image-config="))]


def spawn(info: ClusterInfo, rootfs: Sequence[str] = ()) -> Component:
    """Start the runner detached (like the other components); its readiness: `wait_ready`."""
    (work_dir(info.state_dir) / READY_FILE).unlink(missing_ok=True)
    args = argv(info, rootfs)
    log = log_path(info.state_dir)
    pid = processes.spawn(args, log, child_env())
    return Component(name=NAME, pid=pid, port=None, log=log, argv=args)


def ready(state_dir: Path, pid: int) -> bool:
    """The runner `pid` has synced its caches and is watching."""
    try:
        return (work_dir(state_dir) / READY_FILE).read_text().strip() == str(pid)
    except OSError:
        return False


def wait_ready(info: ClusterInfo, component: Component, timeout: float = READY_TIMEOUT) -> None:
    processes.wait_for(
        f"{NAME} to watch pods",
        lambda: ready(info.state_dir, component.pid),
        timeout,
        lambda: processes.exited_during_startup(NAME, component.pid, component.log),
    )


def stray_pids(state_dir: Path) -> list[int]:
    """Runner and grove-initc processes (rootfs mode: their sandbox helpers) of this cluster, recorded or not
    (their arguments name the work dir)."""
    marker = str(work_dir(state_dir))
    found = [
        pid
        for pid, args in processes.others()
        if any(marker in arg for arg in args)
        and (MODULE in args or sandbox.MODULE in args or any(a.startswith("--pod-info-dir=") for a in args))
    ]
    return [pid for pid in found if processes.is_alive(pid)]


if __name__ == "__main__":
    sys.exit(main())

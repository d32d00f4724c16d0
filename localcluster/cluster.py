"""Bringing the whole local cluster up and down: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK, plus the initial fake nodes and the init runner (which runs grove-initc for pods
on KWOK nodes, see localcluster/initrunner.py; KWOK gets our pod Stages, kwok-grove-stages.yaml).

Why each step exists:
- the controller manager is required: it removes the `node.kubernetes.io/not-ready` taint from new nodes
  (otherwise nothing schedules), garbage-collects owned objects and creates `default` ServiceAccounts;
- `up` waits for all of that, so a caller that gets a ClusterInfo back can schedule pods immediately;
- `up` is idempotent: a healthy recorded cluster is reused as is, a dead or partial one is cleaned away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localcluster import api, binaries, credentials, images, initrunner, nodes, ports, processes, versions
from localcluster import operator as grove_operator
from localcluster.binaries import Binaries
from localcluster.credentials import Credentials
from localcluster.images import ImageRootfs
from localcluster.nodes import DEFAULT_SHAPE, NodeShape
from localcluster.processes import ComponentFailed
from localcluster.state import ClusterInfo, Component, load, save

__all__ = [
    "ClusterInfo",
    "ClusterStatus",
    "ComponentFailed",
    "default_state_dir",
    "down",
    "load",
    "status",
    "up",
]

Progress = Callable[[str], None]

SERVICE_CIDR = "10.96.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
ETCD_TIMEOUT = 30.0
APISERVER_TIMEOUT = 90.0
NODES_TIMEOUT = 120.0
START_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_state_dir() -> Path:
    """`$GROVE_STATE_DIR`, else `./.grove/cluster`, made absolute (PIDs and paths are recorded absolute)."""
    return Path(os.environ.get("GROVE_STATE_DIR") or ".grove/cluster").expanduser().absolute()


def _state_lock(state_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise up/down on one state dir.

    The lock file can't live inside the dir (`down` removes it) and shouldn't litter the dir's parent,
    so it sits in the binary cache, named after a hash of the state dir's path. It is deleted (while still
    held) when the state dir is gone afterwards, so throwaway test clusters don't accumulate lock files.
    """
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
    lock = binaries.cache_root() / "locks" / f"state-{digest}.lock"
    return binaries.file_lock(lock, discard=lambda: not state_dir.exists())


state_lock = _state_lock  # for localcluster.operator


# --- probes ------------------------------------------------------------------------------------------


def apiserver_ready(info: ClusterInfo) -> bool:
    """`/readyz` answers ok."""
    try:
        code, body = api.get(f"{info.apiserver_url}/readyz", info.ssl_context())
    except OSError:
        return False
    return code == 200 and body.strip() == b"ok"


def etcd_healthy(port: int) -> bool:
    """etcd's `/health` says true (it has a leader and answers reads)."""
    data = api.get_json(f"http://{ports.HOST}:{port}/health")
    return bool(data.get("health") == "true")


def dead_component(info: ClusterInfo) -> str | None:
    """A description (with log tail) of the first recorded component that is no longer running."""
    for comp in info.components.values():
        dead = processes.exited_during_startup(comp.name, comp.pid, comp.log)
        if dead:
            return dead
    return None


def _all_alive(info: ClusterInfo) -> bool:
    marker = processes.marker(info.state_dir)
    return bool(info.components) and all(processes.belongs_to(p, marker) for p in info.pids.values())


def _kwok_has_stages(info: ClusterInfo) -> bool:
    """KWOK runs with our pod Stages (a cluster started by older code does not: it is replaced)."""
    kwok = info.components.get("kwok")
    suffix = initrunner.STAGES_FILE.name
    return kwok is not None and any(arg.endswith(suffix) for arg in kwok.argv)


def is_healthy(info: ClusterInfo) -> bool:
    """Recorded as complete, every component running, apiserver ready (cheap enough for a no-op `up`).

    The init runner is not checked here: `up` restarts it on its own (`_ensure_initrunner`)."""
    return (
        info.complete
        and set(info.components) == set(START_ORDER)
        and _all_alive(info)
        and _kwok_has_stages(info)
        and apiserver_ready(info)
    )


def wait_healthy(info: ClusterInfo, name: str) -> None:
    """Block until the just-started component `name` answers its health check: etcd `/health`, kube-apiserver
    `/readyz`. The others serve no probe here (`--secure-port=0`): for them only a quick death is caught.
    Raises ComponentFailed (with the log tail) when a component dies or the check times out."""
    port = info.components[name].port
    if name == "etcd" and port is not None:
        processes.wait_for(
            "etcd /health", lambda: etcd_healthy(port), ETCD_TIMEOUT, lambda: dead_component(info)
        )
    elif name == "kube-apiserver":
        processes.wait_for(
            "kube-apiserver /readyz",
            lambda: apiserver_ready(info),
            APISERVER_TIMEOUT,
            lambda: dead_component(info),
            interval=0.2,
        )
    else:
        dead = dead_component(info)
        if dead:
            raise ComponentFailed(dead)


# --- command lines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    kwok: int


def _allocate_ports(apiserver_port: int | None) -> _Ports:
    if apiserver_port is not None:
        ports.require_free(apiserver_port, "kube-apiserver")
    # Five distinct free ports, minus the requested one if the kernel happened to offer it: four remain.
    free = [port for port in ports.free_ports(5) if port != apiserver_port][:4]
    api_port = apiserver_port if apiserver_port is not None else free[3]
    return _Ports(etcd_client=free[0], etcd_peer=free[1], apiserver=api_port, kwok=free[2])


def _etcd_argv(binary: Path, state_dir: Path, p: _Ports) -> list[str]:
    client = f"http://{ports.HOST}:{p.etcd_client}"
    peer = f"http://{ports.HOST}:{p.etcd_peer}"
    return [
        str(binary),
        "--name=default",
        f"--data-dir={state_dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync",  # throwaway data: durability costs more than it is worth here
    ]


def _apiserver_argv(binary: Path, state_dir: Path, creds: Credentials, p: _Ports) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers=http://{ports.HOST}:{p.etcd_client}",
        f"--bind-address={ports.HOST}",
        f"--advertise-address={ports.HOST}",
        f"--secure-port={p.apiserver}",
        f"--cert-dir={state_dir / 'pki'}",
        f"--tls-cert-file={creds.apiserver_cert}",
        f"--tls-private-key-file={creds.apiserver_key}",
        f"--client-ca-file={creds.ca_cert}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={creds.sa_pub}",
        f"--service-account-signing-key-file={creds.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        # The apiserver listens on loopback only, and the `kubernetes` Service's Endpoints may not hold a
        # loopback address: left on, its reconciler fails every 10 s (an error in the log and a refused
        # POST in the request counts). Nothing here routes to that Service (no kube-proxy on KWOK nodes).
        "--endpoint-reconciler-type=none",
    ]


def _component_kubeconfig(state_dir: Path, server: str, creds: Credentials, user: str) -> Path:
    name = user.replace("system:", "")
    return credentials.write_kubeconfig(state_dir / f"{name}.kubeconfig", server, creds, user)


def _client_flags(kubeconfig: Path) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--secure-port=0",
    ]


def _controller_manager_argv(binary: Path, kubeconfig: Path, creds: Credentials) -> list[str]:
    return [
        str(binary),
        *_client_flags(kubeconfig),
        f"--service-account-private-key-file={creds.sa_key}",
        f"--root-ca-file={creds.ca_cert}",
        "--controllers=*,-nodeipam",
        # Each controller acts as its own ServiceAccount (kube-system:generic-garbage-collector, …), as on
        # kubeadm clusters: the operator's managed-resource protection exempts exactly those identities.
        "--use-service-account-credentials=true",
    ]


def _scheduler_argv(binary: Path, kubeconfig: Path) -> list[str]:
    return [str(binary), *_client_flags(kubeconfig)]


def _kwok_argv(binary: Path, kubeconfig: Path, p: _Ports, configs: Sequence[Path]) -> list[str]:
    argv = [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={nodes.KWOK_ANNOTATION}={nodes.KWOK_ANNOTATION_VALUE}",
        "--node-ip=10.0.0.1",
        "--node-lease-duration-seconds=40",
        f"--server-address={ports.HOST}:{p.kwok}",
    ]
    # Stage files (custom pod/node lifecycles) are passed as --config; the state-dir copy keeps the
    # cluster independent of the caller's working tree and makes the marker check match.
    for config in configs:
        argv.append(f"--config={config}")
    return argv


# --- up ----------------------------------------------------------------------------------------------


def _component_env(state_dir: Path, name: str) -> dict[str, str] | None:
    """Environment overrides a component runs with (None: ours). kwok always loads ~/.kwok/kwok.yaml when it
    exists; a private HOME keeps a user's file out."""
    if name != "kwok":
        return None
    home = state_dir / "kwok-home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home)}


def start_component(info: ClusterInfo, name: str, argv: list[str], port: int | None) -> None:
    """Spawn component `name` with `argv` (logging to `logs/<name>.log`, appended) and record it in the state
    file at once, replacing any earlier record of that name. Does not wait: see `wait_healthy`."""
    log = info.state_dir / "logs" / f"{name}.log"
    env = _component_env(info.state_dir, name)
    pid = processes.spawn(argv, log, {**os.environ, **env} if env else None)
    info.components[name] = Component(name=name, pid=pid, port=port, log=log, argv=argv)
    save(info)  # record the PID at once: a crash from here on must still be cleanable


async def _create_and_wait_nodes(info: ClusterInfo, count: int, shape: NodeShape, timeout: float) -> None:
    """Create the initial nodes, then wait until they are Ready and untainted and `default` SA exists."""
    from kubernetes_asyncio.client import CoreV1Api
    from kubernetes_asyncio.client.exceptions import ApiException

    async with info.api_client() as client:
        names = await nodes.create_nodes(client, count, shape) if count else []
        core = CoreV1Api(client)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            dead = dead_component(info)
            if dead:
                raise ComponentFailed(dead)
            by_name = {n["metadata"]["name"]: n for n in await nodes.list_node_dicts(client)}
            pending = [n for n in names if n not in by_name or not nodes.is_ready(by_name[n])]
            try:
                await core.read_namespaced_service_account("default", "default")
                sa_missing = False
            except ApiException as err:
                if err.status != 404:
                    raise
                sa_missing = True
            if not pending and not sa_missing:
                return
            if loop.time() >= deadline:
                what = f"{len(pending)} node(s) Ready" if pending else "the default ServiceAccount"
                raise ComponentFailed(
                    f"timed out after {timeout:.0f}s waiting for {what}; "
                    f"see logs in {info.state_dir / 'logs'}"
                )
            await asyncio.sleep(0.25)


def _start_initrunner(info: ClusterInfo, rootfs: Sequence[str] = ()) -> None:
    info.initrunner = initrunner.spawn(info, rootfs)
    save(info)


def _ensure_initrunner(info: ClusterInfo, progress: Progress, rootfs: Sequence[str] | None = None) -> None:
    """For `up` on a running cluster: restart the init runner when it is not running, or when `rootfs` (its
    rootfs-mode flags; None: keep the ones it runs with) differs from what it runs with."""
    runner = info.initrunner
    recorded = initrunner.rootfs_flags(runner.argv) if runner is not None else []
    wanted = recorded if rootfs is None else list(rootfs)
    alive = runner is not None and processes.belongs_to(runner.pid, processes.marker(info.state_dir))
    if alive and wanted == recorded:
        return
    progress(f"starting {initrunner.NAME} ({'with new rootfs flags' if alive else 'it was not running'})")
    # grove-initc processes a crashed runner left behind: the new runner starts its own.
    survivors = processes.stop(initrunner.stray_pids(info.state_dir), processes.marker(info.state_dir))
    if survivors:
        raise ComponentFailed(f"could not stop pids {survivors} of the old {initrunner.NAME}")
    _start_initrunner(info, wanted)
    assert info.initrunner is not None
    initrunner.wait_ready(info, info.initrunner)


def _stage_configs(state_dir: Path, configs: Sequence[Path]) -> list[Path]:
    staged = []
    for i, config in enumerate(configs):
        target = state_dir / f"kwok-{i}-{Path(config).name}"
        shutil.copyfile(config, target)
        staged.append(target)
    return staged


def _start_all(
    state_dir: Path,
    bins: Binaries,
    node_count: int,
    shape: NodeShape,
    apiserver_port: int | None,
    kwok_configs: Sequence[Path],
    progress: Progress,
    operator: bool = True,
    initc_rootfs: Sequence[str] = (),
) -> ClusterInfo:
    p = _allocate_ports(apiserver_port)  # first: a taken port must fail before anything is created
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    creds = credentials.generate(state_dir / "pki")
    server = f"https://{ports.HOST}:{p.apiserver}"
    kubeconfig = credentials.write_kubeconfig(state_dir / "kubeconfig", server, creds)
    info = ClusterInfo(
        state_dir=state_dir,
        kubeconfig=kubeconfig,
        apiserver_url=server,
        ca_file=creds.ca_cert,
        admin_cert_file=creds.admin_cert,
        admin_key_file=creds.admin_key,
    )
    save(info)
    try:
        progress(f"starting etcd on {ports.HOST}:{p.etcd_client}")
        start_component(info, "etcd", _etcd_argv(bins.etcd, state_dir, p), p.etcd_client)
        wait_healthy(info, "etcd")
        progress(f"starting kube-apiserver on {server}")
        start_component(
            info, "kube-apiserver", _apiserver_argv(bins.kube_apiserver, state_dir, creds, p), p.apiserver
        )
        wait_healthy(info, "kube-apiserver")
        progress(f"starting kube-controller-manager, kube-scheduler, kwok, {initrunner.NAME}")
        start_component(
            info,
            "kube-controller-manager",
            _controller_manager_argv(
                bins.kube_controller_manager,
                _component_kubeconfig(state_dir, server, creds, "system:kube-controller-manager"),
                creds,
            ),
            None,
        )
        scheduler_kubeconfig = _component_kubeconfig(state_dir, server, creds, "system:kube-scheduler")
        start_component(
            info, "kube-scheduler", _scheduler_argv(bins.kube_scheduler, scheduler_kubeconfig), None
        )
        configs = _stage_configs(state_dir, [initrunner.STAGES_FILE, *kwok_configs])
        start_component(info, "kwok", _kwok_argv(bins.kwok, kubeconfig, p, configs), p.kwok)
        _start_initrunner(info, initc_rootfs)
        progress(f"creating {node_count} fake node(s) and waiting until they are Ready")
        api.run_sync(_create_and_wait_nodes(info, node_count, shape, NODES_TIMEOUT))
        dead = dead_component(info)
        if dead:
            raise ComponentFailed(dead)
        assert info.initrunner is not None
        initrunner.wait_ready(info, info.initrunner)
        if operator:
            grove_operator.install(info, progress)
            grove_operator.ensure_running(info, progress)
    except BaseException:
        # Leave nothing half-running; the state dir (with logs) stays for inspection and the next `up`
        # cleans it away.
        processes.stop(info.all_pids, processes.marker(state_dir))
        raise
    info.nodes = node_count
    info.complete = True
    save(info)
    return info


def _cleanup(state_dir: Path) -> list[int]:
    """Kill whatever a previous run left (recorded PIDs and strays naming the dir), remove the dir."""
    marker = processes.marker(state_dir)
    recorded = load(state_dir)
    pids = set(recorded.all_pids) if recorded else set()
    pids |= set(processes.find(marker, versions.ALL_BINARIES))
    pids |= set(grove_operator.stray_pids(state_dir))
    pids |= set(initrunner.stray_pids(state_dir))
    ours = sorted(pid for pid in pids if processes.belongs_to(pid, marker))  # skip dead or reused PIDs
    survivors = processes.stop(ours, marker)
    if survivors:
        raise RuntimeError(f"could not stop pids {survivors} of the cluster in {state_dir}")
    shutil.rmtree(state_dir, ignore_errors=True)
    return ours


def _initc_flags(state_dir: Path, initc_images: Sequence[ImageRootfs] | None) -> list[str] | None:
    """The init runner's rootfs-mode flags for `initc_images` (None: not asked for); configs built in Python
    are written into the state dir, where the runner reads them."""
    return None if initc_images is None else images.flags(initc_images, state_dir / "image-configs")


def up(
    state_dir: Path | None = None,
    nodes: int = 20,
    *,
    apiserver_port: int | None = None,
    node_shape: NodeShape = DEFAULT_SHAPE,
    kwok_configs: Sequence[Path] = (),
    progress: Progress = _stderr,
    operator: bool = True,
    initc_images: Sequence[ImageRootfs] | None = None,
) -> ClusterInfo:
    """Start a cluster in `state_dir` (or return the healthy one already recorded there).

    A recorded cluster that is dead or was left half-started is stopped (by PID) and replaced.
    `kwok_configs` are KWOK config files (e.g. custom Stages) passed to kwok with `--config`.
    With `operator` (the default) the Grove CRDs are installed and the grove operator runs under its own
    ServiceAccount (see localcluster/operator.py); on a running cluster it is restarted if it is not running.
    `initc_images`: images whose grove-initc the init runner runs from their filesystem (its rootfs mode,
    localcluster/initrunner.py); None keeps what a running cluster's runner does (default mode when new).
    """
    state_dir = Path(state_dir).absolute() if state_dir is not None else default_state_dir()
    node_count = nodes
    with _state_lock(state_dir):
        existing = load(state_dir)
        if existing is not None and is_healthy(existing):
            _ensure_initrunner(existing, progress, _initc_flags(state_dir, initc_images))
            if operator:
                grove_operator.ensure_running(existing, progress)
            return existing
        if state_dir.exists():
            killed = _cleanup(state_dir)
            progress(
                f"removed stale cluster state in {state_dir}"
                + (f" (stopped pids {killed})" if killed else "")
            )
        bins = binaries.ensure(progress)
        initc = _initc_flags(state_dir, initc_images) or ()
        return _start_all(
            state_dir, bins, node_count, node_shape, apiserver_port, kwok_configs, progress, operator, initc
        )


# --- down / status -----------------------------------------------------------------------------------


def down(state_dir: Path | None = None) -> list[int]:
    """Stop every process of the cluster in `state_dir` and remove the dir; return the stopped PIDs."""
    state_dir = Path(state_dir).absolute() if state_dir is not None else default_state_dir()
    with _state_lock(state_dir):
        if not state_dir.exists():
            return []
        return _cleanup(state_dir)


@dataclass
class ComponentStatus:
    name: str
    pid: int
    alive: bool
    port: int | None
    log: Path


@dataclass
class ClusterStatus:
    """A snapshot for `grove-cluster status`."""

    state_dir: Path
    info: ClusterInfo | None
    components: list[ComponentStatus] = field(default_factory=list)
    apiserver_ready: bool = False
    nodes_total: int = 0
    nodes_ready: int = 0
    error: str | None = None
    operator: grove_operator.OperatorStatus | None = None
    initrunner: ComponentStatus | None = None

    @property
    def healthy(self) -> bool:
        return (
            self.info is not None
            and self.info.complete
            and len(self.components) == len(START_ORDER)
            and all(c.alive for c in self.components)
            and (self.initrunner is None or self.initrunner.alive)
            and self.apiserver_ready
            and self.nodes_ready == self.nodes_total
            and (self.operator is None or self.operator.stopped or self.operator.ready)
        )

    def format(self) -> str:
        if self.info is None:
            return f"no cluster recorded in {self.state_dir}"
        rows = [("COMPONENT", "PID", "ALIVE", "PORT", "LOG")]
        rows += [
            (c.name, str(c.pid), "yes" if c.alive else "NO", str(c.port or "-"), str(c.log))
            for c in [*self.components, *([self.initrunner] if self.initrunner else [])]
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
            for r in rows
        ]
        lines.append(
            f"apiserver: {self.info.apiserver_url} ({'ready' if self.apiserver_ready else 'NOT ready'})"
        )
        lines.append(f"nodes: {self.nodes_total} total, {self.nodes_ready} Ready")
        op = self.operator
        if op is not None:
            state = "stopped" if not op.alive and op.stopped else "ready" if op.ready else "NOT ready"
            lines.append(
                f"grove-operator: pid {op.pid} {state}, webhooks https://{ports.HOST}:{op.webhook_port}, "
                f"health http://{ports.HOST}:{op.health_port}, log {op.log}"
            )
        lines.append(f"kubeconfig: {self.info.kubeconfig}")
        if self.error:
            lines.append(f"error: {self.error}")
        lines.append("healthy" if self.healthy else "NOT healthy")
        return "\n".join(lines)


def status(state_dir: Path | None = None) -> ClusterStatus:
    """Component liveness, apiserver readiness and node counts for the cluster in `state_dir`."""
    state_dir = Path(state_dir).absolute() if state_dir is not None else default_state_dir()
    info = load(state_dir)
    result = ClusterStatus(state_dir=state_dir, info=info)
    if info is None:
        return result
    marker = processes.marker(state_dir)
    result.components = [
        ComponentStatus(c.name, c.pid, processes.belongs_to(c.pid, marker), c.port, c.log)
        for c in info.components.values()
    ]
    runner = info.initrunner
    if runner is not None:
        result.initrunner = ComponentStatus(
            runner.name, runner.pid, processes.belongs_to(runner.pid, marker), None, runner.log
        )
    result.apiserver_ready = apiserver_ready(info)
    result.operator = grove_operator.status(state_dir)
    if result.apiserver_ready:
        try:
            items = api.get_json(f"{info.apiserver_url}/api/v1/nodes", info.ssl_context()).get("items", [])
            result.nodes_total = len(items)
            result.nodes_ready = sum(1 for n in items if nodes.is_ready(n))
        except (OSError, ValueError) as err:
            result.error = f"listing nodes failed: {err}"
    return result

"""The host node: a kubelet stand-in that really runs the pods bound to it, on this machine, from images'
exported root filesystems, plus the service proxy (kube-proxy stand-in) they and the apiserver need.

KWOK's fake nodes run nothing, and these machines have no container runtime, but root can chroot into an
image's filesystem, create network namespaces, add addresses to `lo` and write iptables rules. That is
enough to run a pod the way its spec says, which is what proving a Helm chart "as its pod would run it"
needs: the chart's Deployment scheduled by the real scheduler, its containers started with the image's
files, user, command, environment and volumes, its probes deciding readiness, its Service reachable at its
ClusterIP (the apiserver calls webhooks there).

What it stands in for, and how:

- kubelet: registers Node `--node-name` (no KWOK annotation, so KWOK leaves it alone) with the label
  `grove.io/host-node: "true"` and the taint `grove.io/host-node=true:NoSchedule` (only pods that select
  and tolerate it land here: POD_NODE_SELECTOR, POD_TOLERATION), capacity from this machine, the Ready
  condition and spec.podCIDR; renews its Lease in kube-node-lease every 10 s and heartbeats its status, so
  the node lifecycle controller keeps it Ready. It watches the pods bound to it (spec.nodeName) and runs
  each (localcluster/podworker.py, with podspec.py's rules): volumes first (projected ServiceAccount tokens from real TokenRequests bound to the pod and renewed
  at 80 % of their life, configMap, secret, downwardAPI, emptyDir, hostPath), then the pod's network, then
  init containers in order, each to completion, then the containers; readiness, liveness and startup
  probes (httpGet, tcpSocket, exec); restarts by restartPolicy with the kubelet's crash-loop back-off; the
  status through `pods/status` (phase, conditions, container statuses, IPs, start time). A pod given a
  deletionTimestamp gets SIGTERM, SIGKILL after its grace period, its sandbox removed, and its deletion
  finished with gracePeriodSeconds=0 and a UID precondition, as a kubelet does. Container output goes to
  `<work-dir>/logs/<namespace>_<pod>_<container>.log` (there is no kubelet API: no `kubectl logs/exec`).
- container runtime: localcluster/sandbox.py (overlay of the image's rootfs per container, mount/PID/UTS/
  IPC namespaces, chroot, the container's user); images come only from `--rootfs IMAGE=DIR` (with
  `--image-config IMAGE=FILE` for the image's user, env, entrypoint and cmd: localcluster/images.py),
  nothing is pulled; an unknown image leaves the container Waiting with reason ErrImagePull.
- CNI: localcluster/podnet.py (a bridge with the pod CIDR's first address, a network namespace and veth per
  pod, in hairpin mode; no routing beyond this machine).
- kube-proxy: localcluster/serviceproxy.py, run in this process: iptables NAT rules as its iptables mode
  writes them (the `kubernetes` Service relayed in userspace to the apiserver).

How it differs from a real node: no cgroups (requests and limits are not enforced), capabilities, seccomp,
AppArmor, readOnlyRootFilesystem or user namespaces; no image pulls; no lifecycle hooks, gRPC probes,
ephemeral containers, native sidecars (init containers with restartPolicy Always), resourceFieldRef or
cluster DNS; ConfigMaps and Secrets in volumes are written once when the pod starts (tokens are renewed);
one host node per machine (it needs the machine's ClusterIP addresses: see `acquire_lock`). When it stops,
its containers stop too (a kubelet leaves them running): it reports the node NotReady, and when it starts
again it runs the pods still bound to it again (restart counts go up, as after a node reboot) and finishes
the deletion of those deleted meanwhile. docs/local-cluster.md has the whole picture.

Start it with `python -m localcluster.hostnode --kubeconfig <admin kubeconfig> --work-dir <dir>
--node-name grove-host --pod-cidr 10.244.250.0/24 --rootfs IMAGE=DIR ...` (as root) or `start(...)` from
Python; SIGTERM (`HostNodeProcess.stop`) stops it and removes its namespaces, bridge, addresses, iptables
chains and processes; `cleanup()` does the same after a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fcntl
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from localcluster import api, binaries, images, machine, podnet, podspec, processes, sandbox, versions
from localcluster.images import ImageRootfs
from localcluster.podnet import IPPool
from localcluster.podspec import Obj
from localcluster.podworker import HELPER_ENV, PodWorker
from localcluster.serviceproxy import Backend, ServiceProxy

if TYPE_CHECKING:
    import aiohttp

    from kube.client import JSON, KubeClient
    from kube.informer import Informer
    from kube.resources import Resource

NAME = "hostnode"
MODULE = "localcluster.hostnode"
DEFAULT_NODE_NAME = "grove-host"
DEFAULT_POD_CIDR = "10.244.250.0/24"
HOST_NODE_LABEL = "grove.io/host-node"
HOST_NODE_TAINT = {"key": HOST_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
# What a pod needs to land on the host node: select it and tolerate its taint.
POD_NODE_SELECTOR = {HOST_NODE_LABEL: "true"}
POD_TOLERATION = {"key": HOST_NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
LEASE_RENEW = 10.0
STATUS_HEARTBEAT = 60.0
STOP_GRACE = 10.0  # at most this long for a container to exit when the host node stops
READY_FILE = "ready"
PODS_DIR = "pods"
LOGS_DIR = "logs"
LOCK_FILE = "hostnode.lock"
READY_TIMEOUT = 60.0
# command -> Debian package: what the CNI and service-proxy parts run (podnet)
REQUIRED_COMMANDS = {
    "ip": "iproute2",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
}
MAX_PODS = 110

log = logging.getLogger(NAME)


# --- the Node and its Lease (pure) --------------------------------------------------------------------------
def node_labels(name: str) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        HOST_NODE_LABEL: "true",
    }


def node_conditions(ready: bool, now: str, message: str = "") -> list[dict[str, Any]]:
    """The kubelet's node conditions: no pressure, and Ready as given."""

    def condition(kind: str, status: bool, reason: str, text: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": "True" if status else "False",
            "reason": reason,
            "message": text,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return [
        condition("MemoryPressure", False, "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
        condition("DiskPressure", False, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        condition(
            "Ready",
            ready,
            "KubeletReady" if ready else "KubeletNotReady",
            message or ("kubelet is posting ready status" if ready else "host node stopped"),
        ),
    ]


def keep_transitions(conditions: list[dict[str, Any]], previous: Iterable[Obj]) -> list[dict[str, Any]]:
    """`conditions` with the lastTransitionTime of the previous condition of the same type and status."""
    old = {c.get("type"): c for c in previous}
    for condition in conditions:
        before = old.get(condition["type"])
        if before is not None and before.get("status") == condition["status"]:
            condition["lastTransitionTime"] = (
                before.get("lastTransitionTime") or condition["lastTransitionTime"]
            )
    return conditions


def node_status(
    name: str, pool: IPPool, capacity: Mapping[str, str], ready: bool, now: str, previous: Iterable[Obj] = ()
) -> dict[str, Any]:
    return {
        "capacity": dict(capacity),
        "allocatable": dict(capacity),
        "conditions": keep_transitions(node_conditions(ready, now), previous),
        "addresses": [
            {"type": "InternalIP", "address": str(pool.gateway)},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": os.uname().release,
            "osImage": "grove-py host node",
            "containerRuntimeVersion": "grove-py-sandbox://1",
            "kubeletVersion": versions.K8S_VERSION,
            "kubeProxyVersion": versions.K8S_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def node_manifest(name: str, pool: IPPool, capacity: Mapping[str, str], now: str) -> dict[str, Any]:
    """The Node as the host node registers it (no KWOK annotation: KWOK must not manage it)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels(name)},
        "spec": {"podCIDR": str(pool.cidr), "podCIDRs": [str(pool.cidr)], "taints": [dict(HOST_NODE_TAINT)]},
        "status": node_status(name, pool, capacity, True, now),
    }


def merged_taints(existing: Iterable[Obj]) -> list[dict[str, Any]]:
    """The taints of a re-registered node: ours, plus whatever others put there (not-ready taints of the
    node lifecycle controller, a user's)."""
    others = [dict(t) for t in existing if t.get("key") != HOST_NODE_TAINT["key"]]
    return [dict(HOST_NODE_TAINT), *others]


def lease_body(name: str, node_uid: str, now_micro: str) -> dict[str, Any]:
    """The node's Lease, owned by the Node (it goes when the Node is deleted), as a kubelet keeps it."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION, "renewTime": now_micro},
    }


def micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def machine_capacity(max_pods: int = MAX_PODS, storage: Path = Path("/")) -> dict[str, str]:
    """This machine's CPUs, memory and the size of the filesystem pods write to (`storage`): what a kubelet
    reports with no reservations. Charts request ephemeral-storage, so it must be there."""
    memory_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    fs = os.statvfs(storage)
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_kib}Ki",
        "ephemeral-storage": f"{fs.f_blocks * fs.f_frsize // 1024}Ki",
        "pods": str(max_pods),
    }


# --- pods bound to this node ---------------------------------------------------------------------------------
@dataclass
class FieldSelected:
    """A list+watch client for the informer that adds a field selector (the informer has none): the pods
    whose spec.nodeName is this node, as a kubelet watches them."""

    kube: KubeClient
    field_selector: str

    async def list_all(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        page_size: int = 500,
    ) -> tuple[list[JSON], str]:
        return await self.kube.list_all(
            resource,
            namespace=namespace,
            label_selector=label_selector,
            page_size=page_size,
            field_selector=self.field_selector,
        )

    async def watch(
        self,
        resource: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        timeout_seconds: int = 300,
        bookmarks: bool = True,
    ) -> aiohttp.ClientResponse:
        return await self.kube.watch(
            resource,
            resource_version=resource_version,
            namespace=namespace,
            label_selector=label_selector,
            timeout_seconds=timeout_seconds,
            bookmarks=bookmarks,
            field_selector=self.field_selector,
        )


# --- the node ----------------------------------------------------------------------------------------------
@dataclass
class HostNode:
    """The host node in one event loop: Node, Lease, pods, service proxy. `start`, then `close`."""

    kube: KubeClient
    name: str
    pool: IPPool
    work_dir: Path
    images: Mapping[str, ImageRootfs]
    apiserver: Backend
    capacity: Mapping[str, str] = field(default_factory=machine_capacity)
    stop_grace: float = STOP_GRACE

    def __post_init__(self) -> None:
        from kube.informer import Informer
        from kube.resources import POD

        self.pods_dir = self.work_dir / PODS_DIR
        self.logs_dir = self.work_dir / LOGS_DIR
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()  # uids whose deletion is done: late events about them change nothing
        self.closing = False
        self.proxy = ServiceProxy(self.kube, self.pool.cidr, self.apiserver)
        self.pods: Informer = Informer(
            FieldSelected(self.kube, f"spec.nodeName={self.name}"),
            POD,
            on_event=self._on_pod,
            index_labels=(),
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.node_uid = ""
        self.http: aiohttp.ClientSession | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Clean what an earlier run left, make the bridge, register the node, start the proxy, then the
        pods (each pod the informer lists starts its worker)."""
        import aiohttp

        await asyncio.to_thread(cleanup, self.work_dir)
        shutil.rmtree(self.pods_dir, ignore_errors=True)
        self.pods_dir.mkdir(parents=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(podnet.create_bridge, self.pool)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), trust_env=False)
        await self._register()
        self._tasks.append(asyncio.create_task(self._keep_alive(), name="lease"))
        await self.proxy.start(timeout)
        await self.pods.start(timeout)
        log.info("host node %s ready: pod CIDR %s, %d image(s)", self.name, self.pool.cidr, len(self.images))

    # -- node --
    async def _register(self) -> None:
        from kube.client import AlreadyExists, NotFound

        manifest = node_manifest(self.name, self.pool, self.capacity, podspec.now_rfc3339())
        path = f"/api/v1/nodes/{self.name}"
        try:
            node = await self.kube.request("POST", "/api/v1/nodes", body=manifest)
        except AlreadyExists:
            node = await self.kube.request("GET", path)
            if (node.get("spec") or {}).get("podCIDR") not in (None, str(self.pool.cidr)):
                log.info("node %s has another pod CIDR: replacing it", self.name)
                await self.kube.request("DELETE", path)
                while True:
                    try:
                        await self.kube.request("GET", path)
                    except NotFound:
                        break
                    await asyncio.sleep(0.2)
                node = await self.kube.request("POST", "/api/v1/nodes", body=manifest)
            else:
                patch = {
                    "metadata": {"labels": node_labels(self.name)},
                    "spec": {"taints": merged_taints((node.get("spec") or {}).get("taints") or ())},
                }
                node = await self.kube.request(
                    "PATCH", path, body=patch, content_type="application/merge-patch+json"
                )
        self.node_uid = str(node["metadata"]["uid"])
        await self._post_status(True)

    async def _post_status(self, ready: bool) -> None:
        from kube.client import CONTENT_STRATEGIC_MERGE_PATCH

        node = await self.kube.request("GET", f"/api/v1/nodes/{self.name}")
        previous = (node.get("status") or {}).get("conditions") or ()
        status = node_status(self.name, self.pool, self.capacity, ready, podspec.now_rfc3339(), previous)
        await self.kube.request(
            "PATCH",
            f"/api/v1/nodes/{self.name}/status",
            body={"status": status},
            content_type=CONTENT_STRATEGIC_MERGE_PATCH,
        )

    async def _renew_lease(self) -> None:
        from kube.client import NotFound

        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{self.name}"
        body = lease_body(self.name, self.node_uid, micro_now())
        try:
            await self.kube.request(
                "PATCH", path, body={"spec": body["spec"]}, content_type="application/merge-patch+json"
            )
        except NotFound:
            await self.kube.request(
                "POST", f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases", body=body
            )

    async def _keep_alive(self) -> None:
        """Renew the Lease every LEASE_RENEW seconds and post the status every STATUS_HEARTBEAT seconds."""
        from kube.client import KubeError

        loop = asyncio.get_running_loop()
        posted = loop.time()
        while True:
            try:
                await self._renew_lease()
                if loop.time() - posted >= STATUS_HEARTBEAT:
                    await self._post_status(True)
                    posted = loop.time()
            except KubeError as err:
                log.warning("node heartbeat failed: %s", err)
            await asyncio.sleep(LEASE_RENEW)

    # -- pods --
    def _on_pod(self, event_type: str, pod: JSON) -> None:
        uid = str(podspec.meta(pod).get("uid"))
        worker = self.workers.get(uid)
        if uid in self.finished:
            return
        if event_type == "DELETED":
            if worker is not None:
                worker.update(pod)
                worker.deleted()
            return
        if worker is not None:
            worker.update(pod)
        elif not self.closing:
            log.info(
                "pod %s/%s bound here", podspec.meta(pod).get("namespace"), podspec.meta(pod).get("name")
            )
            self.workers[uid] = PodWorker(self, pod)

    def forget(self, worker: PodWorker) -> None:
        if worker.deleting or worker.gone:
            self.finished.add(worker.uid)
        self.pool.release(worker.uid)
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]

    async def close(self) -> None:
        """Stop every pod (SIGTERM, SIGKILL after at most `stop_grace`), the proxy and the heartbeats; report
        the node NotReady; remove namespaces, bridge, addresses and iptables chains."""
        self.closing = True
        await self.pods.close()
        workers = list(self.workers.values())
        for worker in workers:
            worker.stop(min(worker.grace, self.stop_grace))
        await asyncio.gather(*(w.task for w in workers), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.proxy.close()
        with contextlib.suppress(Exception):
            await self._post_status(False)
        if self.http is not None:
            await self.http.close()
        await asyncio.to_thread(podnet.cleanup)


# --- machine-wide lock, strays, cleanup ----------------------------------------------------------------------
def lock_path() -> Path:
    return binaries.cache_root() / "locks" / LOCK_FILE


@contextlib.contextmanager
def acquire_lock(timeout: float) -> Iterator[IO[str]]:
    """One host node per machine: all use the same ClusterIP addresses (every local cluster's `kubernetes`
    Service is 10.96.0.1) and the same bridge. Waits up to `timeout` seconds for another one to stop."""
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with path.open("a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise RuntimeError(
                        f"another host node runs on this machine ({holder}; lock {path})"
                    ) from None
                time.sleep(0.5)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def stray_pids(work_dir: Path) -> list[int]:
    """Container helpers (their spec files are in `work_dir`) and container processes (their root is in it)
    of a host node with this work dir."""
    marker = str(work_dir) + os.sep
    found = []
    for pid, args in processes.others():
        try:
            root = os.readlink(f"/proc/{pid}/root")
        except OSError:
            root = ""
        if root.startswith(marker) or (sandbox.MODULE in args and any(a.startswith(marker) for a in args)):
            found.append(pid)
    return [pid for pid in found if processes.is_alive(pid)]


def cleanup(work_dir: Path) -> None:
    """Remove what a host node (running no more) left: its container helpers and everything of podnet's."""
    for pid in stray_pids(work_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    processes.wait_gone(stray_pids(work_dir), 5.0)
    podnet.cleanup()


def leftovers(work_dir: Path) -> list[str]:
    """What a stopped host node should not have left behind (empty when clean)."""
    return podnet.leftovers() + [f"container process {pid}" for pid in stray_pids(work_dir)]


# --- the process -------------------------------------------------------------------------------------------
def _apiserver(kubeconfig: Path) -> Backend:
    """The apiserver's address and port from a kubeconfig's current context (the `kubernetes` Service's
    backend)."""
    doc = yaml.safe_load(kubeconfig.read_text())
    context = next(x["context"] for x in doc["contexts"] if x["name"] == doc["current-context"])
    cluster = next(x["cluster"] for x in doc["clusters"] if x["name"] == context["cluster"])
    url = urlsplit(str(cluster["server"]))
    return Backend(url.hostname or "127.0.0.1", url.port or 443)


async def _serve(args: argparse.Namespace, loaded: Mapping[str, ImageRootfs]) -> int:
    from kubernetes_asyncio import config as kube_config
    from kubernetes_asyncio.client import ApiClient, Configuration

    from kube.client import KubeClient, plain_session

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    conf = Configuration()
    await kube_config.load_kube_config(config_file=str(args.kubeconfig), client_configuration=conf)
    work_dir: Path = args.work_dir
    (work_dir / READY_FILE).unlink(missing_ok=True)
    async with plain_session(ApiClient(configuration=conf)) as api:
        node = HostNode(
            KubeClient(api, request_timeout=30.0),
            args.node_name,
            IPPool.parse(args.pod_cidr),
            work_dir,
            loaded,
            _apiserver(args.kubeconfig),
            capacity=machine_capacity(args.max_pods, work_dir),
            stop_grace=args.stop_grace,
        )
        try:
            await node.start()
            (work_dir / READY_FILE).write_text(f"{os.getpid()}\n")
            await stop.wait()
            log.info("stopping (%d pod(s) running)", len(node.workers))
        finally:
            (work_dir / READY_FILE).unlink(missing_ok=True)
            await node.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Run the pods bound to one real node on this machine (a kubelet and kube-proxy stand-in; root).",
    )
    parser.add_argument("--kubeconfig", type=Path, help="an admin kubeconfig of the cluster")
    parser.add_argument("--work-dir", type=Path, required=True, help="pod files and container logs")
    parser.add_argument("--node-name", default=DEFAULT_NODE_NAME)
    parser.add_argument("--pod-cidr", default=DEFAULT_POD_CIDR)
    parser.add_argument(
        "--rootfs", action="append", default=[], metavar="IMAGE=DIR", help="an image's filesystem"
    )
    parser.add_argument(
        "--image-config",
        action="append",
        default=[],
        metavar="IMAGE=FILE",
        help="its config (image inspect JSON)",
    )
    parser.add_argument("--max-pods", type=int, default=MAX_PODS)
    parser.add_argument(
        "--stop-grace", type=float, default=STOP_GRACE, help="longest wait for a container on stop"
    )
    parser.add_argument(
        "--lock-timeout", type=float, default=0.0, help="wait this long for another host node to stop"
    )
    parser.add_argument(
        "--cleanup", action="store_true", help="only remove what a crashed host node left, then exit"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.work_dir = args.work_dir.absolute()
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("reconciler").setLevel(logging.WARNING)
    if os.geteuid() != 0:
        parser.error("the host node needs root (network namespaces, mounts, chroot)")
    if args.cleanup:
        with acquire_lock(args.lock_timeout):
            cleanup(args.work_dir)
        return 0
    if args.kubeconfig is None:
        parser.error("--kubeconfig is required")
    try:
        loaded = images.load(args.rootfs, args.image_config)
    except images.ImageError as err:
        parser.error(str(err))
    try:
        machine.ensure_commands(REQUIRED_COMMANDS, logging.getLogger(NAME).info)
    except machine.MissingCommand as err:
        parser.error(str(err))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    with acquire_lock(args.lock_timeout):
        return asyncio.run(_serve(args, loaded))


# --- starting and stopping it from Python (tests, tools) ------------------------------------------------------
@dataclass
class HostNodeProcess:
    """A running `python -m localcluster.hostnode`."""

    pid: int
    work_dir: Path
    log: Path
    node_name: str
    kubeconfig: Path

    def stop(self, timeout: float = 60.0, deregister: bool = False) -> None:
        """SIGTERM and wait for its orderly stop; SIGKILL and `cleanup` when it takes longer than `timeout`.
        With `deregister`, delete the Node too (its Lease goes with it, its pods' deletion is finished by
        the pod garbage collector): for a throwaway node, e.g. at the end of a test."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if processes.wait_gone([self.pid], timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            processes.wait_gone([self.pid], 10.0)
            cleanup(self.work_dir)
        if deregister:
            api.run_sync(delete_node(self.kubeconfig, self.node_name))


async def delete_node(kubeconfig: Path, name: str) -> None:
    """Delete Node `name` (nothing when it does not exist)."""
    from kubernetes_asyncio import config as kube_config
    from kubernetes_asyncio.client import ApiClient, Configuration

    from kube.client import KubeClient, NotFound

    conf = Configuration()
    await kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=conf)
    async with ApiClient(configuration=conf) as client:
        with contextlib.suppress(NotFound):
            await KubeClient(client).request("DELETE", f"/api/v1/nodes/{name}")


def start(
    kubeconfig: Path,
    work_dir: Path,
    *,
    node_name: str = DEFAULT_NODE_NAME,
    pod_cidr: str = DEFAULT_POD_CIDR,
    rootfs: Iterable[ImageRootfs] = (),
    lock_timeout: float = 0.0,
    timeout: float = READY_TIMEOUT,
) -> HostNodeProcess:
    """Start a host node process (detached, log `<work_dir>/hostnode.log`) and wait until it runs pods.
    Missing commands are installed first (here, not in the child, whose start is timed)."""
    machine.ensure_commands(REQUIRED_COMMANDS)
    work_dir = work_dir.absolute()
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / READY_FILE).unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        MODULE,
        f"--kubeconfig={kubeconfig}",
        f"--work-dir={work_dir}",
        f"--node-name={node_name}",
        f"--pod-cidr={pod_cidr}",
        f"--lock-timeout={lock_timeout}",
        *images.flags(rootfs, work_dir / "image-configs"),
    ]
    log_file = work_dir / f"{NAME}.log"
    pid = processes.spawn(
        argv, log_file, {**os.environ, **HELPER_ENV, "PATH": os.environ.get("PATH", HELPER_ENV["PATH"])}
    )
    handle = HostNodeProcess(pid, work_dir, log_file, node_name, kubeconfig)

    def ready() -> bool:
        try:
            return (work_dir / READY_FILE).read_text().strip() == str(pid)
        except OSError:
            return False

    try:
        processes.wait_for(
            f"host node {node_name}",
            ready,
            lock_timeout + timeout,
            lambda: processes.exited_during_startup(NAME, pid, log_file),
            interval=0.2,
        )
    except BaseException:
        handle.stop(10.0)
        raise
    return handle


if __name__ == "__main__":
    sys.exit(main())

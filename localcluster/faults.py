"""Fault primitives for the chaos suite (issue 21): the failures a real cluster brings, injected into the local
cluster's real processes and objects, so the operator meets the same errors (connection resets, 429, 410 Gone,
stalls, NotReady and vanished nodes) it would meet in production, from the real apiserver.

- `restart`: stop a control-plane process (SIGTERM, or SIGKILL when `hard`) and start it again, optionally
  with other flags (`apiserver_flags`, `THROTTLE_FLAGS`); the state file follows, so `down`/`status` still
  find it.
- `slow` / `pause` / `resume`: SIGSTOP/SIGCONT a process, so requests stall without failing.
- `expire_watches`: every client watch ends, and resuming it from the last resourceVersion gets 410 Gone.
- `not_ready` / `ready_again` / `delete_node` / `recreate_node`: KWOK nodes going NotReady or away.

Every fault has its undo (`restart` returns the argv to restore, `slow` always resumes), so a test can leave
the shared cluster as it found it; `heal` mends what a fault that failed half-way left.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from localcluster import api, cluster, nodes, ports, processes
from localcluster.processes import ComponentFailed
from localcluster.state import ClusterInfo

JSON = dict[str, Any]

# kube-apiserver stops serving at once on SIGTERM, then often lingers for many seconds (here: past 15 s) before
# it exits; etcd exits at once. Longer than this costs a restart time and buys nothing: then SIGKILL.
STOP_GRACE = 5.0
NODE_TIMEOUT = 90.0

# Flags that make the apiserver answer 429 under modest load while the control plane keeps working. The
# max-inflight filter only limits the classic way with priority and fairness off (with it on, these limits
# are only the total concurrency APF shares out, and requests queue instead of failing). Long-running
# requests (watches) are not counted, and neither are `system:masters` (the local admin and KWOK): a burst
# must come from another identity (the operator, a ServiceAccount) to be throttled. Values found by
# experiment, see tests/integration/test_faults.py: a burst of 100 concurrent creates gets hundreds of 429s
# with them, while the controller manager, the scheduler and KWOK still bring a ReplicaSet's pods to Running.
THROTTLE_FLAGS: dict[str, str | int | bool] = {
    "enable_priority_and_fairness": False,
    "max_requests_inflight": 10,
    "max_mutating_requests_inflight": 3,
}


# --- processes ------------------------------------------------------------------------------------------


def restart(info: ClusterInfo, name: str, *, argv: list[str] | None = None, hard: bool = False) -> list[str]:
    """Stop component `name` (SIGKILL when `hard`, a crash; else SIGTERM, SIGKILL after STOP_GRACE), start it
    again with `argv` (default: the argv it ran with), record it in the state file and wait until it is
    healthy (`cluster.wait_healthy`; after etcd also kube-apiserver's /readyz, which includes etcd, so the
    cluster serves again on return). Returns the argv it ran with before, for a caller to restore."""
    marker = processes.marker(info.state_dir)
    with cluster.state_lock(info.state_dir):
        old = info.components[name]
        stopped = processes.kill([old.pid], marker) if hard else processes.stop([old.pid], marker, STOP_GRACE)
        if stopped:
            raise ComponentFailed(f"could not stop {name} (pid {old.pid})")
        _wait_port_released(name, old.port)
        cluster.start_component(info, name, list(argv if argv is not None else old.argv), old.port)
    cluster.wait_healthy(info, name)
    if name == "etcd" and "kube-apiserver" in info.components:
        cluster.wait_healthy(info, "kube-apiserver")
    return list(old.argv)


def _wait_port_released(name: str, port: int | None) -> None:
    """Until nothing listens on `port` any more: the kernel may close a killed process's sockets a moment
    after it reports the process gone, and a new one started in that moment dies with "address already in
    use"."""
    if port is not None:
        processes.wait_for(
            f"{name}'s port {port} to be released", lambda: ports.is_free(port, reuse_address=True), 10.0
        )


def heal(info: ClusterInfo) -> list[str]:
    """Mend what a fault that went wrong half-way (a restart that failed, a pause not undone) left: every
    control-plane process resumed, those not running started again on the argv and port they ran with, then
    waited for until healthy; returns the names started. So the faults after it meet a whole cluster."""
    marker = processes.marker(info.state_dir)
    names = [name for name in cluster.START_ORDER if name in info.components]
    processes.send([info.components[name].pid for name in names], marker, signal.SIGCONT)
    dead = [name for name in names if not processes.belongs_to(info.components[name].pid, marker)]
    with cluster.state_lock(info.state_dir):
        for name in dead:  # all started before any is waited for: the wait fails while any is dead
            old = info.components[name]
            _wait_port_released(name, old.port)
            cluster.start_component(info, name, list(old.argv), old.port)
    for name in dead:
        cluster.wait_healthy(info, name)
    return dead


# The control plane's own clients of the apiserver (client-go programs).
CLIENTS = ("kube-controller-manager", "kube-scheduler", "kwok")


def restart_clients(info: ClusterInfo) -> None:
    """Restart the controller manager, the scheduler and KWOK, to undo what an apiserver or etcd restart left.

    They survive it, but slowly: their client-go watches back off exponentially while the apiserver is away or
    answers 403 (its RBAC cache warms up after /readyz already says ok), up to 30 s, and the backoff only resets
    after 2 minutes without failures, so after a few restarts they resume 30-60 s late (measured here). A new
    process starts without backoff: this is how a test gives the next one the cluster it found."""
    for name in CLIENTS:
        restart(info, name, hard=True)  # stateless clients: no grace to wait out


def apiserver_flags(argv: list[str], **flags: str | int | bool) -> list[str]:
    """A copy of `argv` with `--flag=value` set for each keyword (`max_requests_inflight=10` sets
    `--max-requests-inflight=10`; booleans as true/false): an earlier `--flag=…` or bare `--flag` is replaced
    in place (later duplicates dropped, so exactly one value is in effect), a new flag is appended."""
    out = list(argv)
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        at = [i for i, arg in enumerate(out) if arg == flag or arg.startswith(flag + "=")]
        if at:
            out[at[0]] = f"{flag}={text}"
            out = [arg for i, arg in enumerate(out) if i not in at[1:]]
        else:
            out.append(f"{flag}={text}")
    return out


def throttled(argv: list[str]) -> list[str]:
    """kube-apiserver's `argv` with THROTTLE_FLAGS: `restart(info, "kube-apiserver", argv=throttled(argv))`."""
    return apiserver_flags(argv, **THROTTLE_FLAGS)


def pause(info: ClusterInfo, name: str) -> None:
    """SIGSTOP component `name`: it keeps its sockets but answers nothing (clients see timeouts, not errors)."""
    pid = info.components[name].pid
    if not processes.send([pid], processes.marker(info.state_dir), signal.SIGSTOP):
        raise ComponentFailed(f"{name} (pid {pid}) is not running")


def resume(info: ClusterInfo, name: str) -> None:
    """SIGCONT component `name` (harmless when it runs)."""
    processes.send([info.components[name].pid], processes.marker(info.state_dir), signal.SIGCONT)


async def slow(info: ClusterInfo, name: str, *, paused: float, period: float, duration: float) -> None:
    """A slow component for `duration` seconds: stopped for `paused` seconds of every `period`, so requests
    stall up to `paused` seconds instead of failing. The process runs again on return, also when cancelled."""
    if not 0 < paused < period:
        raise ValueError(f"need 0 < paused < period, got {paused}, {period}")
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    try:
        while (left := end - loop.time()) > 0:
            pause(info, name)
            await asyncio.sleep(min(paused, left))
            resume(info, name)
            await asyncio.sleep(max(0.0, min(period - paused, end - loop.time())))
    finally:
        resume(info, name)


# --- watch expiry ---------------------------------------------------------------------------------------


def _etcd_url(info: ClusterInfo, path: str) -> str:
    return f"http://{ports.HOST}:{info.components['etcd'].port}{path}"


def etcd_revision(info: ClusterInfo) -> int:
    """etcd's current revision (every resourceVersion the apiserver hands out is one)."""
    status = api.post_json(_etcd_url(info, "/v3/maintenance/status"), {})
    return int(status["header"]["revision"])


def expire_watches(info: ClusterInfo) -> int:
    """Make every client watch end and fail with 410 Gone when it resumes; returns the compacted revision.

    Compacting etcd alone is not enough: the apiserver serves watches from its watch cache, which still holds
    the recent events, so a client resuming from a recent resourceVersion is served as if nothing happened.
    Restarting the apiserver ends every watch and empties the cache; the new cache starts at the current
    revision, so a watch from any older resourceVersion is answered 410 ("too old resource version"), and the
    compaction makes etcd refuse those revisions too (for reads that bypass the cache)."""
    revision = etcd_revision(info)
    api.post_json(_etcd_url(info, "/v3/kv/compaction"), {"revision": str(revision), "physical": True})
    restart(info, "kube-apiserver")
    return revision


# --- KWOK nodes -----------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _node(client: ApiClient, name: str) -> JSON:
    node: JSON = client.sanitize_for_serialization(await CoreV1Api(client).read_node(name))
    return node


def _tainted(node: JSON) -> bool:
    taints = node.get("spec", {}).get("taints") or []
    return any(t.get("key") in (nodes.NOT_READY_TAINT, nodes.UNREACHABLE_TAINT) for t in taints)


async def not_ready(client: ApiClient, name: str, timeout: float = NODE_TIMEOUT) -> None:
    """Node `name` goes NotReady as when its kubelet stops reporting: KWOK stops heartbeating it (its
    annotation is removed) and its Ready condition becomes Unknown. Returns once the node lifecycle controller
    has tainted it (`node.kubernetes.io/unreachable`), i.e. once the cluster treats it as NotReady."""
    core = CoreV1Api(client)
    # A dict body goes as a strategic merge patch: null removes the annotation, conditions merge by type.
    await core.patch_node(name, {"metadata": {"annotations": {nodes.KWOK_ANNOTATION: None}}})
    unknown = {
        "type": "Ready",
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status (fault injected).",
        "lastHeartbeatTime": _now(),
        "lastTransitionTime": _now(),
    }
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        node = await _node(client, name)
        if _tainted(node) and nodes.ready_status(node) != "True":
            return
        if nodes.ready_status(node) == "True":  # first pass, or a KWOK heartbeat that was already under way
            await core.patch_node_status(name, {"status": {"conditions": [unknown]}})
        if loop.time() >= deadline:
            raise TimeoutError(f"node {name} not tainted NotReady after {timeout:.0f}s")
        await asyncio.sleep(0.25)


async def ready_again(client: ApiClient, name: str, timeout: float = NODE_TIMEOUT) -> None:
    """Undo `not_ready`: KWOK manages node `name` again and reports it Ready; returns once it is Ready and the
    controller has removed its NotReady taints."""
    body = {"metadata": {"annotations": {nodes.KWOK_ANNOTATION: nodes.KWOK_ANNOTATION_VALUE}}}
    await CoreV1Api(client).patch_node(name, body)
    await nodes.wait_ready(client, [name], timeout)


def recreatable(node: JSON) -> JSON:
    """What it takes to create `node` again: its name, labels, annotations, unschedulable flag, its own taints
    (not the node.kubernetes.io/* ones the controllers manage) and capacity; KWOK reports the rest."""
    meta, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
    taints = [t for t in spec.get("taints") or [] if not t["key"].startswith("node.kubernetes.io/")]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": meta["name"],
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
        },
        "spec": {"taints": taints, **({"unschedulable": True} if spec.get("unschedulable") else {})},
        "status": {"capacity": status.get("capacity", {}), "allocatable": status.get("allocatable", {})},
    }


async def delete_node(client: ApiClient, name: str, timeout: float = NODE_TIMEOUT) -> JSON:
    """Delete node `name` (a machine gone for good) and wait until it is gone; returns the manifest
    `recreate_node` takes to bring it back."""
    core = CoreV1Api(client)
    manifest = recreatable(await _node(client, name))
    await core.delete_node(name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await core.read_node(name)
        except ApiException as err:
            if err.status == 404:
                return manifest
            raise
        if loop.time() >= deadline:
            raise TimeoutError(f"node {name} still there {timeout:.0f}s after its deletion")
        await asyncio.sleep(0.1)


async def recreate_node(client: ApiClient, manifest: JSON, timeout: float = NODE_TIMEOUT) -> None:
    """Create the node `delete_node` returned again and wait until it is Ready (KWOK heartbeats it again)."""
    await CoreV1Api(client).create_node(manifest)  # type: ignore[arg-type]  # dicts work; stubs say V1Node
    await nodes.wait_ready(client, [manifest["metadata"]["name"]], timeout)

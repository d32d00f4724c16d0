"""The init runner on the local cluster: real grove-initc processes hold pods on KWOK nodes in their init phase.

The pods are made here, without the operator: no `app.kubernetes.io/managed-by` label, so the pod webhook
leaves them alone, but grove-initc, its volumes and its flags come from the webhook's own `initc_ops`, and
the identity is what the reconciler would create for a PodCliqueSet (ServiceAccount `<pcs>`, a Role that may
read pods, its RoleBinding and the token Secret `<pcs>-ic-sat`). What is checked is the mechanism itself: the
runner executes the real `python -m initc.main` with that token, KWOK keeps the pod Pending and not Ready
until it exits 0, and a deleted pod's process is stopped.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jsonpatch
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from grove_api import constants as c
from grove_api.pod_admission import initc_ops
from localcluster import initrunner, nodes, processes
from localcluster.state import ClusterInfo
from tests.initc_identity import bind_initc_role, initc_identity
from tests.waiting import until

IMAGE = "grove-py/grove-initc:e2e"  # never pulled: KWOK runs no containers, the runner runs grove-initc


def _pcs() -> str:
    return f"pcs-{uuid.uuid4().hex[:6]}"


def _pod(name: str, pcs: str, clique: str, *, after: dict[str, int] | None = None) -> dict[str, Any]:
    """A pod of PodClique `clique` in PodGang `<pcs>-0`; with `after` (parent clique -> minAvailable) it gets
    grove-initc exactly as the pod webhook adds it."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {c.LABEL_PART_OF: pcs, c.LABEL_PODCLIQUE: clique, c.LABEL_PODGANG: f"{pcs}-0"},
            "annotations": {},
        },
        "spec": {
            "containers": [{"name": "main", "image": "busybox"}],
            "tolerations": [{"key": nodes.FAKE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 0,
        },
    }
    if after:
        deps = ",".join(f"{parent}:{count}" for parent, count in after.items())
        pod["metadata"]["annotations"][c.ANNOTATION_STARTUP_DEPENDENCIES] = deps
        ops = initc_ops(pod, IMAGE)
        assert isinstance(ops, list) and ops, ops
        pod = jsonpatch.apply_patch(pod, ops)
    return pod


async def _create(api: client.ApiClient, namespace: str, pod: Any) -> None:
    await client.CoreV1Api(api).create_namespaced_pod(namespace, pod)


async def _read(api: client.ApiClient, namespace: str, name: str) -> Any:
    return await client.CoreV1Api(api).read_namespaced_pod(name, namespace)


def _condition(pod: Any, kind: str) -> str | None:
    return next((x.status for x in pod.status.conditions or [] if x.type == kind), None)


def _initc_status(pod: Any) -> Any:
    return next(
        (s for s in pod.status.init_container_statuses or [] if s.name == c.INIT_CONTAINER_NAME), None
    )


def _ready(pod: Any) -> bool:
    return bool(pod.status.phase == "Running" and _condition(pod, "Ready") == "True")


def _held(pod: Any) -> bool:
    """In its init phase as KWOK's stage puts it: Pending, not initialized, not Ready, grove-initc running."""
    status = _initc_status(pod)
    return bool(
        pod.status.phase == "Pending"
        and _condition(pod, "Initialized") == "False"
        and _condition(pod, "Ready") == "False"
        and status is not None
        and status.state.running is not None
    )


def _runner_log(cluster: ClusterInfo) -> str:
    return initrunner.log_path(cluster.state_dir).read_text(errors="replace")


def _initc_pids(cluster: ClusterInfo, uid: str) -> list[int]:
    """grove-initc processes the runner started for the pod with `uid` (their --pod-info-dir names it)."""
    return [
        pid
        for pid in initrunner.stray_pids(cluster.state_dir)
        if any(a.startswith("--pod-info-dir=") and f"/{uid}/" in a for a in processes.cmdline(pid))
    ]


class ReadyAt:
    """When each pod was first seen Ready (monotonic, polled alongside the test's own waits)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def see(self, pod: Any) -> bool:
        if _ready(pod):
            self.times.setdefault(pod.metadata.name, time.monotonic())
            return True
        return False


async def test_pod_without_grove_initc_is_ready_at_once(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str
) -> None:
    pcs = _pcs()
    await _create(api_client, namespace, _pod("parent", pcs, f"{pcs}-0-a"))
    pod = await until("the pod Running and Ready", lambda: _ready_pod(api_client, namespace, "parent"), 30)
    assert _condition(pod, "Initialized") == "True" and _condition(pod, "ContainersReady") == "True"
    assert pod.status.pod_ip and not pod.status.init_container_statuses
    assert initrunner.SUCCEEDED_ANNOTATION not in (pod.metadata.annotations or {})


async def _ready_pod(api: client.ApiClient, namespace: str, name: str) -> Any:
    pod = await _read(api, namespace, name)
    return pod if _ready(pod) else None


async def test_dependent_waits_for_its_parent(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str
) -> None:
    """The dependant is created first and is held (grove-initc really running and waiting) until its parent
    is Ready; then grove-initc exits 0 and KWOK makes it Ready, after the parent."""
    pcs = _pcs()
    parent_clique = f"{pcs}-0-a"
    await initc_identity(api_client, namespace, pcs)
    dependent = _pod("dependent", pcs, f"{pcs}-0-b", after={parent_clique: 1})
    await _create(api_client, namespace, dependent)

    async def held() -> Any:
        pod = await _read(api_client, namespace, "dependent")
        return pod if _held(pod) else None

    pod = await until("the dependant held in its init phase", held, 30)
    uid = pod.metadata.uid
    # The real grove-initc runs and waits: its own log line, relayed by the runner, says so.
    await until(
        "grove-initc waiting for the parent (runner log)",
        _logged(cluster, f"{namespace}/dependent | ", "waiting for parents"),
        60,
    )
    assert _initc_pids(cluster, uid), "no grove-initc process for the pod"
    assert _held(await _read(api_client, namespace, "dependent"))

    ready_at = ReadyAt()
    await _create(api_client, namespace, _pod("parent", pcs, parent_clique))

    async def both_ready() -> bool:
        parent = ready_at.see(await _read(api_client, namespace, "parent"))
        child = ready_at.see(await _read(api_client, namespace, "dependent"))
        return parent and child

    await until("parent and dependant Ready", both_ready, 60, interval=0.05)
    assert ready_at.times["parent"] < ready_at.times["dependent"], ready_at.times
    pod = await _read(api_client, namespace, "dependent")
    status = _initc_status(pod)
    assert status.state.terminated is not None and status.state.terminated.exit_code == 0
    assert (pod.metadata.annotations or {})[initrunner.SUCCEEDED_ANNOTATION] == initrunner.SUCCEEDED_VALUE
    assert _condition(pod, "Initialized") == "True"
    assert not _initc_pids(cluster, uid)
    # The Ready condition's own timestamps agree (second precision).
    parent = await _read(api_client, namespace, "parent")
    assert _ready_since(parent) <= _ready_since(pod)


def _ready_since(pod: Any) -> Any:
    return next(x.last_transition_time for x in pod.status.conditions if x.type == "Ready")


def _logged(cluster: ClusterInfo, prefix: str, text: str) -> Any:
    async def check() -> bool:
        return any(prefix in line and text in line for line in _runner_log(cluster).splitlines())

    return check


async def test_grove_initc_acts_as_the_podcliquesets_service_account(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str
) -> None:
    """Without the RoleBinding grove-initc may not list pods (it uses the pod's token, not the runner's
    admin identity): the pod stays held although its parent is Ready, until the binding exists."""
    pcs = _pcs()
    parent_clique = f"{pcs}-0-a"
    await initc_identity(api_client, namespace, pcs, bind=False)
    await _create(api_client, namespace, _pod("parent", pcs, parent_clique))
    await until("the parent Ready", lambda: _ready_pod(api_client, namespace, "parent"), 30)
    await _create(api_client, namespace, _pod("dependent", pcs, f"{pcs}-0-b", after={parent_clique: 1}))
    user = f"system:serviceaccount:{namespace}:{pcs}"
    await until(
        "grove-initc refused by RBAC (runner log)", _logged(cluster, f"{namespace}/dependent | ", user), 60
    )
    assert _held(await _read(api_client, namespace, "dependent"))
    await bind_initc_role(api_client, namespace, pcs)
    await until("the dependant Ready", lambda: _ready_pod(api_client, namespace, "dependent"), 60)


async def test_deleting_a_held_pod_stops_its_grove_initc(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str
) -> None:
    pcs = _pcs()
    await initc_identity(api_client, namespace, pcs)
    await _create(api_client, namespace, _pod("dependent", pcs, f"{pcs}-0-b", after={f"{pcs}-0-a": 1}))

    await until(
        "grove-initc waiting for the parent (runner log)",
        _logged(cluster, f"{namespace}/dependent | ", "waiting for parents"),
        60,
    )
    pod = await _read(api_client, namespace, "dependent")
    assert _held(pod) and _initc_pids(cluster, pod.metadata.uid)
    await client.CoreV1Api(api_client).delete_namespaced_pod("dependent", namespace)

    async def gone() -> bool:
        try:
            await _read(api_client, namespace, "dependent")
        except ApiException as err:
            return err.status == 404
        return False

    await until("the pod deleted", gone, 30)
    pod_dir = initrunner.work_dir(cluster.state_dir) / namespace / pod.metadata.uid
    await until("its grove-initc process stopped", _stopped(cluster, pod.metadata.uid, pod_dir), 30)


def _stopped(cluster: ClusterInfo, uid: str, pod_dir: Path) -> Any:
    async def check() -> bool:
        return not _initc_pids(cluster, uid) and not pod_dir.exists()

    return check


def test_status_shows_the_runner(cluster: ClusterInfo) -> None:
    from localcluster import cluster as localcluster

    result = localcluster.status(cluster.state_dir)
    assert result.initrunner is not None and result.initrunner.alive, result.format()
    assert initrunner.NAME in result.format()
    assert Path(result.initrunner.log) == initrunner.log_path(cluster.state_dir)

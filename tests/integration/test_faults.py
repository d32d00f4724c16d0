"""The fault primitives of the chaos suite (localcluster/faults.py) on the real local cluster: each one does
what it says (real 410s, real 429s, a real stall, real NotReady taints), and its undo brings the cluster back.

The cluster is the session's shared one: every test restores what it changed in `finally` (the apiserver's
flags, a stopped process, the nodes it made), and checks that the operator kept running through the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes_asyncio.client import ApiClient, AppsV1Api, AuthorizationV1Api, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import REGISTRY

from grove_api.refs import Ref
from kube import resources
from kube.client import KubeClient, KubeError
from kube.informer import Informer
from localcluster import cluster as localcluster
from localcluster import faults, nodes, processes, state
from localcluster import operator as grove_operator
from localcluster.state import ClusterInfo
from tests.waiting import until

JSON = dict[str, Any]


def configmap(namespace: str, name: str, **data: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def process_state(pid: int) -> str:
    """The kernel's state letter for `pid`: R/S/D running or sleeping, T stopped (SIGSTOP), Z zombie."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def relists(resource: resources.Resource, reason: str) -> float:
    labels = {"resource": resource.plural, "reason": reason}
    return REGISTRY.get_sample_value("grove_informer_relists_total", labels) or 0.0


async def _controllers_resumed(info: ClusterInfo) -> None:
    """The controller manager serves again after an apiserver or etcd outage: its watches back off
    exponentially while the apiserver is away (client-go's reflector, up to 30 s), so the next test's
    namespace could otherwise wait for its `default` ServiceAccount past the fixture's timeout."""
    name = f"t-resumed-{uuid.uuid4().hex[:6]}"
    async with fresh_client(info) as client:
        core = CoreV1Api(client)
        await core.create_namespace({"metadata": {"name": name}})  # type: ignore[arg-type]
        try:
            await nodes.wait_default_service_account(client, name, timeout=90)
        finally:
            await core.delete_namespace(name)


@pytest.fixture
def operator_survives(cluster: ClusterInfo) -> Iterator[None]:
    """The operator runs through every fault here (the chaos suite relies on it): same process after."""
    pid = grove_operator.running_pid(cluster.state_dir)
    assert pid is not None
    yield
    assert grove_operator.running_pid(cluster.state_dir) == pid


@pytest.fixture
async def control_plane_restored(cluster: ClusterInfo, operator_survives: None) -> AsyncIterator[None]:
    """For tests that restart the apiserver or etcd: afterwards the controller manager, the scheduler and KWOK
    are restarted (`faults.restart_clients`: their client backoff would delay the next tests by up to a minute)
    and the controller manager is seen working again."""
    yield
    began = time.monotonic()
    await asyncio.to_thread(faults.restart_clients, cluster)
    await _controllers_resumed(cluster)
    print(f"\ncontrol plane clients restarted and serving in {time.monotonic() - began:.1f}s")


@contextlib.asynccontextmanager
async def fresh_client(info: ClusterInfo) -> AsyncIterator[ApiClient]:
    """A new ApiClient: pooled connections to an apiserver that was restarted are dead."""
    async with info.api_client() as client:
        yield client


def assert_recorded(info: ClusterInfo, name: str, argv: list[str]) -> int:
    """The state file names the running process of `name`, with `argv`; returns its pid."""
    recorded = state.load(info.state_dir)
    assert recorded is not None
    comp = recorded.components[name]
    assert comp.argv == argv and comp.pid == info.components[name].pid
    assert processes.belongs_to(comp.pid, processes.marker(info.state_dir))
    return comp.pid


# --- processes --------------------------------------------------------------------------------------------
async def test_etcd_hard_restart_keeps_data(
    cluster: ClusterInfo, namespace: str, control_plane_restored: None
) -> None:
    async with fresh_client(cluster) as client:
        await KubeClient(client).create(configmap(namespace, "before", v="1"))
    old_pid = cluster.components["etcd"].pid
    argv = cluster.components["etcd"].argv

    assert faults.restart(cluster, "etcd", hard=True) == argv

    assert assert_recorded(cluster, "etcd", argv) != old_pid
    async with fresh_client(cluster) as client:
        kube = KubeClient(client)
        assert (await kube.get(Ref("v1", "ConfigMap", namespace, "before")))["data"] == {"v": "1"}
        await kube.create(configmap(namespace, "after"))


async def test_apiserver_restart_serves_again(
    cluster: ClusterInfo, namespace: str, control_plane_restored: None
) -> None:
    old_pid = cluster.components["kube-apiserver"].pid
    argv = cluster.components["kube-apiserver"].argv

    assert faults.restart(cluster, "kube-apiserver") == argv

    assert assert_recorded(cluster, "kube-apiserver", argv) != old_pid
    assert localcluster.apiserver_ready(cluster)
    async with fresh_client(cluster) as client:
        await KubeClient(client).create(configmap(namespace, "after"))


async def test_heal_starts_what_a_failed_fault_left_dead_and_resumes_what_it_left_paused(
    cluster: ClusterInfo, control_plane_restored: None
) -> None:
    marker = processes.marker(cluster.state_dir)
    scheduler = cluster.components["kube-scheduler"]
    assert processes.kill([scheduler.pid], marker) == []  # a restart that stopped it and never started it
    faults.pause(cluster, "kube-controller-manager")  # a pause never undone
    paused = cluster.components["kube-controller-manager"].pid

    assert faults.heal(cluster) == ["kube-scheduler"]

    assert assert_recorded(cluster, "kube-scheduler", scheduler.argv) != scheduler.pid
    assert process_state(paused) != "T"
    assert faults.heal(cluster) == []  # a whole cluster: nothing to do


async def test_slow_apiserver_stalls_requests_and_always_resumes(
    cluster: ClusterInfo, namespace: str, operator_survives: None
) -> None:
    pid = cluster.components["kube-apiserver"].pid
    async with fresh_client(cluster) as client:
        core = CoreV1Api(client)

        async def latency() -> float:
            began = time.monotonic()
            await core.list_namespaced_config_map(namespace)
            return time.monotonic() - began

        baseline = max([await latency() for _ in range(3)])
        slowing = asyncio.create_task(
            faults.slow(cluster, "kube-apiserver", paused=1.0, period=1.5, duration=4.0)
        )
        latencies = []
        while not slowing.done():
            latencies.append(await latency())
        await slowing
        assert process_state(pid) != "T"
        assert max(latencies) > max(0.5, 5 * baseline), (baseline, latencies)
        assert await latency() < 0.5

        # Cancelled in the middle of a pause: the process runs on all the same.
        cancelled = asyncio.create_task(
            faults.slow(cluster, "kube-apiserver", paused=5.0, period=6.0, duration=30)
        )
        await until("the apiserver stopped", lambda: asyncio.sleep(0, process_state(pid) == "T"), timeout=5)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert process_state(pid) != "T"
        assert await latency() < 0.5


async def _watch_answer(kube: KubeClient, rv: str, namespace: str) -> int:
    """The HTTP status of a ConfigMap watch from `rv`, or the code of the ERROR event it begins with (the
    apiserver answers an expired resourceVersion either way)."""
    try:
        resp = await kube.watch(
            resources.CONFIG_MAP, resource_version=rv, namespace=namespace, timeout_seconds=5
        )
    except KubeError as err:
        return err.status
    try:
        line = await resp.content.readline()
    finally:
        resp.close()
    event = orjson.loads(line) if line.strip() else {}
    return int(event["object"]["code"]) if event.get("type") == "ERROR" else 200


# --- watch expiry ------------------------------------------------------------------------------------------
async def test_expire_watches_gets_informers_410_gone(
    cluster: ClusterInfo, namespace: str, control_plane_restored: None
) -> None:
    async with fresh_client(cluster) as client:
        kube = KubeClient(client)
        inf = Informer(kube, resources.CONFIG_MAP, namespace=namespace, backoff=(0.2, 2.0))
        await inf.start(timeout=10)
        try:
            await kube.create(configmap(namespace, "before"))
            await until("the informer sees `before`", lambda: asyncio.sleep(0, inf.get(namespace, "before")))
            old_rv = inf.resource_version
            expired = relists(resources.CONFIG_MAP, "expired")

            await asyncio.to_thread(faults.expire_watches, cluster)

            # The apiserver's own answer to a watch from before: 410 Gone (HTTP, or an ERROR event).
            async with fresh_client(cluster) as other:
                assert await _watch_answer(KubeClient(other), old_rv, namespace) == 410
                # The informer resumes from its last resourceVersion, is told 410, and re-lists.
                await until(
                    "the informer re-listed on 410 Gone",
                    lambda: asyncio.sleep(0, relists(resources.CONFIG_MAP, "expired") > expired),
                    timeout=60,
                )
                await KubeClient(other).create(configmap(namespace, "after"))
            await until(
                "the informer sees `after`", lambda: asyncio.sleep(0, inf.get(namespace, "after")), timeout=30
            )
        finally:
            await inf.close()


# --- throttling ---------------------------------------------------------------------------------------------
async def _burst_account(admin: ApiClient, namespace: str) -> None:
    """ServiceAccount `burst`, allowed to manage ConfigMaps in `namespace`: the burst must not come from the
    admin, who is in `system:masters`, which the apiserver's max-inflight filter never throttles."""
    kube = KubeClient(admin)
    rbac = "rbac.authorization.k8s.io"
    meta = {"name": "burst", "namespace": namespace}
    await kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}
    await kube.create({"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": meta, "rules": [rule]})
    await kube.create(
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "burst"},
            "subjects": [{"kind": "ServiceAccount", **meta}],
        }
    )


async def _burst_client(info: ClusterInfo, admin: ApiClient, namespace: str) -> ApiClient:
    """A client with a fresh token of ServiceAccount `burst`, with room for a whole burst at once."""
    body = {"spec": {"expirationSeconds": 3600}}
    token = await CoreV1Api(admin).create_namespaced_service_account_token("burst", namespace, body)  # type: ignore[arg-type]
    config = info.api_configuration()
    config.cert_file = config.key_file = None
    config.api_key, config.api_key_prefix = {"BearerToken": token.status.token}, {"BearerToken": "Bearer"}
    config.connection_pool_maxsize = 200  # the default (5 per CPU) would queue the burst in the client
    client = ApiClient(configuration=config)

    async def allowed() -> bool:  # the apiserver's RBAC cache learns of the new RoleBinding a moment later
        review = {
            "spec": {
                "resourceAttributes": {"namespace": namespace, "verb": "create", "resource": "configmaps"}
            }
        }
        answer = await AuthorizationV1Api(client).create_self_subject_access_review(review)  # type: ignore[arg-type]
        return bool(answer.status.allowed)

    await until("ServiceAccount burst may create ConfigMaps", allowed, timeout=30)
    return client


async def _burst(client: ApiClient, namespace: str, prefix: str, count: int = 100) -> dict[int, int]:
    """`count` concurrent ConfigMap creates; returns {HTTP status: how many} (201 created, 429 throttled)."""
    core = CoreV1Api(client)

    async def create(i: int) -> int:
        try:
            await core.create_namespaced_config_map(namespace, configmap(namespace, f"{prefix}-{i}"))  # type: ignore[arg-type]
        except ApiException as err:
            return int(err.status)
        return 201

    codes = await asyncio.gather(*(create(i) for i in range(count)))
    return {code: codes.count(code) for code in set(codes)}


def _replicaset(namespace: str, replicas: int) -> JSON:
    labels = {"app": "throttled"}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "throttled", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                    "tolerations": [{"key": nodes.FAKE_TAINT_KEY, "operator": "Exists"}],
                    "nodeSelector": {"type": "kwok"},
                },
            },
        },
    }


async def test_throttle_flags_give_429s_and_the_control_plane_still_works(
    cluster: ClusterInfo, namespace: str, control_plane_restored: None
) -> None:
    original = cluster.components["kube-apiserver"].argv
    try:
        assert faults.restart(cluster, "kube-apiserver", argv=faults.throttled(original)) == original
        await asyncio.to_thread(faults.restart_clients, cluster)  # working under throttling, not backing off
        async with fresh_client(cluster) as admin:
            await _burst_account(admin, namespace)
            async with await _burst_client(cluster, admin, namespace) as burster:
                throttled = await _burst(burster, namespace, "throttled")
            assert throttled.get(429, 0) >= 1, throttled
            # The controller manager (creates the pods), the scheduler and KWOK (runs them) keep working.
            await AppsV1Api(admin).create_namespaced_replica_set(namespace, _replicaset(namespace, 3))  # type: ignore[arg-type]
            core = CoreV1Api(admin)

            async def running() -> bool:
                pods = (await core.list_namespaced_pod(namespace, label_selector="app=throttled")).items
                return len(pods) == 3 and all(p.status.phase == "Running" for p in pods)

            began = time.monotonic()
            await until("the ReplicaSet's pods Running under throttling", running, timeout=60)
            print(
                f"\nReplicaSet's 3 pods Running {time.monotonic() - began:.1f}s after its creation, throttled"
            )
    finally:
        faults.restart(cluster, "kube-apiserver", argv=original)
    assert_recorded(cluster, "kube-apiserver", original)
    async with fresh_client(cluster) as admin, await _burst_client(cluster, admin, namespace) as burster:
        unthrottled = await _burst(burster, namespace, "unthrottled")
    assert unthrottled == {201: 100}, unthrottled
    print(f"\nburst of 100 creates: throttled {throttled}, restored {unthrottled}")


# --- nodes -----------------------------------------------------------------------------------------------
@pytest.fixture
async def own_node(cluster: ClusterInfo) -> AsyncIterator[str]:
    """A fake node of this test's own (the shared fake-node-000..004 stay untouched), deleted after."""
    async with fresh_client(cluster) as client:
        [name] = await nodes.create_nodes(client, 1, prefix=f"fault-{uuid.uuid4().hex[:6]}-")
        try:
            await nodes.wait_ready(client, [name], timeout=60)
            yield name
        finally:
            with contextlib.suppress(ApiException):
                await CoreV1Api(client).delete_node(name)


def _taints(node: JSON) -> set[str]:
    return {t["key"] for t in node.get("spec", {}).get("taints") or []}


async def _read(client: ApiClient, name: str) -> JSON:
    node: JSON = client.sanitize_for_serialization(await CoreV1Api(client).read_node(name))
    return node


async def test_node_not_ready_then_ready_again(
    cluster: ClusterInfo, own_node: str, operator_survives: None
) -> None:
    async with fresh_client(cluster) as client:
        began = time.monotonic()
        await faults.not_ready(client, own_node)
        tainted_after = time.monotonic() - began
        node = await _read(client, own_node)
        assert nodes.ready_status(node) != "True"
        assert _taints(node) & {nodes.UNREACHABLE_TAINT, nodes.NOT_READY_TAINT}
        assert nodes.KWOK_ANNOTATION not in (node["metadata"].get("annotations") or {})

        began = time.monotonic()
        await faults.ready_again(client, own_node)
        ready_after = time.monotonic() - began
        node = await _read(client, own_node)
        assert nodes.is_ready(node) and not _taints(node) & {nodes.UNREACHABLE_TAINT, nodes.NOT_READY_TAINT}
    print(
        f"\nnode {own_node}: tainted NotReady after {tainted_after:.1f}s, Ready again after {ready_after:.1f}s"
    )


async def test_node_deleted_then_recreated(
    cluster: ClusterInfo, own_node: str, operator_survives: None
) -> None:
    async with fresh_client(cluster) as client:
        before = await _read(client, own_node)
        manifest = await faults.delete_node(client, own_node)
        with pytest.raises(ApiException) as gone:
            await CoreV1Api(client).read_node(own_node)
        assert gone.value.status == 404

        await faults.recreate_node(client, manifest)
        after = await _read(client, own_node)
        assert after["metadata"]["uid"] != before["metadata"]["uid"]
        assert after["metadata"]["labels"] == before["metadata"]["labels"]
        assert after["status"]["capacity"] == before["status"]["capacity"]
        assert nodes.is_ready(after)

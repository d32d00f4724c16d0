"""End-to-end checks of the local cluster: real apiserver, scheduler, controller manager and KWOK nodes."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiClient, AppsV1Api, CoreV1Api, VersionApi

from localcluster import cluster as localcluster
from localcluster import nodes, processes, versions
from localcluster.ports import PortInUseError
from localcluster.processes import ComponentFailed
from localcluster.state import ClusterInfo
from tests.waiting import until

TOLERATION = {"key": nodes.FAKE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def _pod_ready(pod: Any) -> bool:
    conditions = pod.status.conditions or []
    return pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True" for c in conditions)


async def test_apiserver_version(cluster: ClusterInfo, api_client: ApiClient) -> None:
    info = await VersionApi(api_client).get_code()
    assert info.git_version == versions.K8S_VERSION


async def test_fake_nodes_ready_with_labels_taint_capacity(
    cluster: ClusterInfo, api_client: ApiClient
) -> None:
    by_name = {n["metadata"]["name"]: n for n in await nodes.list_node_dicts(api_client)}
    for i in range(5):
        node = by_name[nodes.node_name(i)]
        assert nodes.is_ready(node), node["status"].get("conditions")
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == nodes.node_name(i)
        assert labels["type"] == "kwok"
        assert labels[nodes.ZONE_LABEL] == "zone-0"
        assert labels[nodes.RACK_LABEL] == f"rack-{i // 4}"
        assert labels[nodes.BLOCK_LABEL] == "block-0"
        assert node["metadata"]["annotations"][nodes.KWOK_ANNOTATION] == "fake"
        taints = node["spec"]["taints"]
        assert {"key": "fake-node", "value": "true", "effect": "NoSchedule"} in taints
        assert all(t["key"] != nodes.NOT_READY_TAINT for t in taints)
        for field in ("capacity", "allocatable"):
            res = node["status"][field]
            assert (res["cpu"], res["memory"], res["pods"], res[nodes.GPU_RESOURCE]) == (
                "64",
                "512Gi",
                "110",
                "8",
            )


async def test_pod_scheduled_and_running_on_fake_node(api_client: ApiClient, namespace: str) -> None:
    core = CoreV1Api(api_client)
    pod = {
        "metadata": {"name": "p1"},
        "spec": {"tolerations": [TOLERATION], "containers": [{"name": "c", "image": "busybox"}]},
    }
    await core.create_namespaced_pod(namespace, pod)  # type: ignore[arg-type]  # dicts work at runtime
    async with asyncio.timeout(60), watch.Watch() as pod_watch:
        stream = pod_watch.stream(
            core.list_namespaced_pod, namespace, field_selector="metadata.name=p1", timeout_seconds=60
        )
        async for event in stream:
            obj = event["object"]
            if _pod_ready(obj):
                break
    assert obj.spec.node_name.startswith(nodes.DEFAULT_PREFIX)
    assert _pod_ready(obj)


async def test_deployment_pods_and_garbage_collection(api_client: ApiClient, namespace: str) -> None:
    apps, core = AppsV1Api(api_client), CoreV1Api(api_client)
    labels = {"app": "gc-demo"}
    deployment = {
        "metadata": {"name": "gc-demo"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"tolerations": [TOLERATION], "containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    await apps.create_namespaced_deployment(namespace, deployment)  # type: ignore[arg-type]

    async def ready_pods() -> list[Any]:
        pods = (await core.list_namespaced_pod(namespace, label_selector="app=gc-demo")).items
        return pods if len(pods) == 3 and all(_pod_ready(p) for p in pods) else []

    pods = await until("3 Ready deployment pods", ready_pods)
    assert all(p.metadata.owner_references[0].kind == "ReplicaSet" for p in pods)

    await apps.delete_namespaced_deployment("gc-demo", namespace)

    async def all_gone() -> bool:
        pods = (await core.list_namespaced_pod(namespace, label_selector="app=gc-demo")).items
        sets = (await apps.list_namespaced_replica_set(namespace)).items
        return not pods and not sets

    await until("ReplicaSet and pods garbage-collected", all_gone)


def test_nodes_add_cordon_uncordon(cluster: ClusterInfo) -> None:
    before = {n["metadata"]["name"] for n in nodes.list_nodes(cluster)}
    added = nodes.add(cluster, count=2, shape=nodes.NodeShape(gpus=4))
    try:
        start = nodes.next_index(before)
        assert added == [nodes.node_name(start), nodes.node_name(start + 1)]
        by_name = {n["metadata"]["name"]: n for n in nodes.list_nodes(cluster)}
        assert all(nodes.is_ready(by_name[name]) for name in added)
        assert by_name[added[0]]["status"]["capacity"][nodes.GPU_RESOURCE] == "4"

        nodes.cordon(cluster, [added[0]])
        by_name = {n["metadata"]["name"]: n for n in nodes.list_nodes(cluster)}
        assert by_name[added[0]]["spec"].get("unschedulable") is True
        assert not by_name[added[1]]["spec"].get("unschedulable")

        nodes.uncordon(cluster, [added[0]])
        by_name = {n["metadata"]["name"]: n for n in nodes.list_nodes(cluster)}
        assert not by_name[added[0]]["spec"].get("unschedulable")
    finally:

        async def delete() -> None:
            async with cluster.api_client() as client:
                await asyncio.gather(*(CoreV1Api(client).delete_node(name) for name in added))

        asyncio.run(delete())


def test_up_again_is_noop(cluster: ClusterInfo) -> None:
    again = localcluster.up(cluster.state_dir, nodes=5)
    assert again.pids == cluster.pids
    assert again.kubeconfig == cluster.kubeconfig


def test_status_healthy(cluster: ClusterInfo) -> None:
    result = localcluster.status(cluster.state_dir)
    assert result.healthy, result.format()
    assert result.nodes_total >= 5 and result.nodes_ready == result.nodes_total
    assert {c.name for c in result.components} == set(localcluster.START_ORDER)


def test_second_cluster_up_and_down(tmp_path: Path, cluster: ClusterInfo) -> None:
    state_dir = tmp_path / "second"
    info = localcluster.up(state_dir, nodes=1)
    try:
        assert info.apiserver_url != cluster.apiserver_url
        result = localcluster.status(state_dir)
        assert result.healthy, result.format()
        assert result.nodes_total == 1
        pids = list(info.pids.values())
        assert len(pids) == 5 and all(processes.is_alive(p) for p in pids)
    finally:
        localcluster.down(state_dir)
    assert not any(processes.is_alive(p) for p in pids)
    assert not state_dir.exists()
    assert localcluster.down(state_dir) == []  # safe when nothing runs


def test_requested_port_in_use_is_named(tmp_path: Path, cluster: ClusterInfo) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"{port}.*kube-apiserver.*pid \d+"):
            localcluster.up(tmp_path / "busy", nodes=1, apiserver_port=port)
    assert not (tmp_path / "busy").exists()


def test_component_dying_on_start_reports_log_and_stops_the_rest(
    tmp_path: Path, cluster: ClusterInfo
) -> None:
    bad = tmp_path / "bad-kwok.yaml"
    bad.write_text("kind: Stage\napiVersion: kwok.x-k8s.io/v1alpha1\nspec: [this is not a stage]\n")
    state_dir = tmp_path / "broken"
    with pytest.raises(ComponentFailed, match="kwok") as failure:
        localcluster.up(state_dir, nodes=1, kwok_configs=[bad])
    assert "last lines of" in str(failure.value)
    recorded = localcluster.load(state_dir)
    assert recorded is not None and not recorded.complete
    assert not any(processes.is_alive(p) for p in recorded.pids.values())
    localcluster.down(state_dir)
    assert not state_dir.exists()

"""Fake (KWOK-managed) nodes: the manifest, and creating/cordoning/listing them through the API.

KWOK is started with an annotation selector, so any Node carrying `kwok.x-k8s.io/node: fake` -- created
here or by anyone else -- gets its status and heartbeats from KWOK. Topology labels follow a fixed
zone ⊃ block ⊃ rack layout (16 / 8 / 4 nodes) so topology-aware scheduling has something to work with.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from localcluster import api

if TYPE_CHECKING:
    from localcluster.state import ClusterInfo

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
FAKE_TAINT_KEY = "fake-node"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_PREFIX = "fake-node-"
GPU_RESOURCE = "nvidia.com/gpu"
ZONE_LABEL = "topology.kubernetes.io/zone"
BLOCK_LABEL = "topology.grove.io/block"
RACK_LABEL = "topology.grove.io/rack"
NODES_PER_ZONE, NODES_PER_BLOCK, NODES_PER_RACK = 16, 8, 4
CREATE_CONCURRENCY = 32


@dataclass(frozen=True)
class NodeShape:
    """A node's capacity (= allocatable); defaults model an 8-GPU server."""

    cpu: str = "64"
    memory: str = "512Gi"
    pods: int = 110
    gpus: int = 8


DEFAULT_SHAPE = NodeShape()


def node_name(index: int, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}{index:03d}"


def node_manifest(
    index: int, shape: NodeShape = DEFAULT_SHAPE, prefix: str = DEFAULT_PREFIX
) -> dict[str, Any]:
    """The Node object for fake node number `index` (pure: no API access)."""
    name = node_name(index, prefix)
    capacity: dict[str, str] = {"cpu": shape.cpu, "memory": shape.memory, "pods": str(shape.pods)}
    if shape.gpus:
        capacity[GPU_RESOURCE] = str(shape.gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                ZONE_LABEL: f"zone-{index // NODES_PER_ZONE}",
                BLOCK_LABEL: f"block-{index // NODES_PER_BLOCK}",
                RACK_LABEL: f"rack-{index // NODES_PER_RACK}",
            },
        },
        "spec": {"taints": [{"key": FAKE_TAINT_KEY, "value": "true", "effect": "NoSchedule"}]},
        "status": {"capacity": dict(capacity), "allocatable": dict(capacity)},
    }


def next_index(names: Iterable[str], prefix: str = DEFAULT_PREFIX) -> int:
    """One past the highest `<prefix>NNN` among `names` (0 when none), so `add` continues the numbering."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    indices = [int(m.group(1)) for m in map(pattern.match, names) if m]
    return max(indices, default=-1) + 1


def ready_status(node: dict[str, Any]) -> str | None:
    """The status of the node's Ready condition ("True", "False", "Unknown"), None before it has one."""
    conditions = node.get("status", {}).get("conditions") or []
    return next((c.get("status") for c in conditions if c.get("type") == "Ready"), None)


def is_ready(node: dict[str, Any]) -> bool:
    """Ready condition True and the not-ready / unreachable taints gone (the controller manager removes them:
    a node that was NotReady is not usable again before)."""
    taints = node.get("spec", {}).get("taints") or []
    return ready_status(node) == "True" and not any(
        t.get("key") in (NOT_READY_TAINT, UNREACHABLE_TAINT) for t in taints
    )


# --- async API operations ----------------------------------------------------------------------------


async def list_node_dicts(client: ApiClient) -> list[dict[str, Any]]:
    """All nodes as plain camelCase dicts (what the pure helpers above take)."""
    node_list = await CoreV1Api(client).list_node()
    items: list[dict[str, Any]] = client.sanitize_for_serialization(node_list).get("items", [])
    return items


async def create_nodes(
    client: ApiClient, count: int, shape: NodeShape = DEFAULT_SHAPE, prefix: str = DEFAULT_PREFIX
) -> list[str]:
    """Create `count` fake nodes concurrently, numbered after the highest existing one; return names."""
    existing = [n["metadata"]["name"] for n in await list_node_dicts(client)]
    start = next_index(existing, prefix)
    core = CoreV1Api(client)
    limit = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create(index: int) -> str:
        async with limit:
            # The client accepts plain dicts at runtime; its stubs only know V1Node.
            await core.create_node(node_manifest(index, shape, prefix))  # type: ignore[arg-type]
        return node_name(index, prefix)

    return list(await asyncio.gather(*(create(i) for i in range(start, start + count))))


async def set_unschedulable(client: ApiClient, names: Iterable[str], unschedulable: bool) -> None:
    """Cordon (True) or uncordon (False) nodes, like `kubectl cordon`."""
    core = CoreV1Api(client)
    # A dict body goes as a strategic merge patch; null removes the field, like `kubectl uncordon`.
    body = {"spec": {"unschedulable": True if unschedulable else None}}
    await asyncio.gather(*(core.patch_node(name, body) for name in names))


async def wait_ready(client: ApiClient, names: Iterable[str], timeout: float) -> None:
    """Wait until every node in `names` is Ready without the not-ready taint (KWOK + controller manager)."""
    wanted = set(names)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        nodes = {n["metadata"]["name"]: n for n in await list_node_dicts(client)}
        pending = sorted(name for name in wanted if name not in nodes or not is_ready(nodes[name]))
        if not pending:
            return
        if loop.time() >= deadline:
            raise TimeoutError(
                f"{len(pending)} node(s) not Ready after {timeout:.0f}s: {', '.join(pending[:5])}"
            )
        await asyncio.sleep(0.25)


async def wait_default_service_account(client: ApiClient, namespace: str, timeout: float) -> None:
    """Wait for the controller manager to create `default` ServiceAccount (pods can't be created before)."""
    core = CoreV1Api(client)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await core.read_namespaced_service_account("default", namespace)
            return
        except ApiException as err:
            if err.status != 404 or loop.time() >= deadline:
                raise
        await asyncio.sleep(0.1)


# --- synchronous wrappers (CLI, sync fixtures) -------------------------------------------------------


async def _with_client(info: ClusterInfo, op: Any, *args: Any) -> Any:
    async with info.api_client() as client:
        return await op(client, *args)


def add(
    info: ClusterInfo,
    count: int = 1,
    shape: NodeShape = DEFAULT_SHAPE,
    prefix: str = DEFAULT_PREFIX,
    wait: bool = True,
    timeout: float = 60.0,
) -> list[str]:
    """Create `count` more fake nodes (optionally waiting until Ready) and return their names."""

    async def run(client: ApiClient) -> list[str]:
        names = await create_nodes(client, count, shape, prefix)
        if wait:
            await wait_ready(client, names, timeout)
        return names

    result: list[str] = api.run_sync(_with_client(info, run))
    return result


def cordon(info: ClusterInfo, names: Iterable[str]) -> None:
    api.run_sync(_with_client(info, set_unschedulable, list(names), True))


def uncordon(info: ClusterInfo, names: Iterable[str]) -> None:
    api.run_sync(_with_client(info, set_unschedulable, list(names), False))


def list_nodes(info: ClusterInfo) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api.run_sync(_with_client(info, list_node_dicts))
    return result

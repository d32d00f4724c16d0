"""Gang admission end to end (`python -m tools.bench_gang e2e`): what the gang guarantee costs.

On a throwaway local cluster with 200 KWOK nodes, 100 PodCliqueSets totalling 2,000 pods are applied at
once (each: a leader/worker scaling group of 5 replicas x (1 leader + 3 workers), minAvailable 2, so one
base gang of 8 pods and three scaled gangs of 4). Timed from the first create to every pod existing and to
every pod bound, twice in the same run: with gang admission (pods gated at creation, released gang by gang
by the admitter) and with it disabled in the operator configuration (pods created ungated, no gang
guarantees). Target (issue 6): bound with gangs <= 1.5x bound without.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client, watch

from grove_api import constants as c
from localcluster import cluster as localcluster
from localcluster import operator as grove_operator
from localcluster.state import ClusterInfo

NODES = 200
PODCLIQUESETS = 100
PODS_EACH = 20
TOLERATION = {"key": "fake-node", "operator": "Exists", "effect": "NoSchedule"}


def podcliqueset(name: str, namespace: str) -> dict[str, Any]:
    def clique(clique_name: str, replicas: int) -> dict[str, Any]:
        container = {
            "name": "main",
            "image": "busybox",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
        }
        return {
            "name": clique_name,
            "spec": {
                "roleName": clique_name,
                "replicas": replicas,
                "minAvailable": replicas,
                "podSpec": {"containers": [container], "tolerations": [TOLERATION]},
            },
        }

    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_PODCLIQUESET,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "template": {
                "cliques": [clique("leader", 1), clique("worker", 3)],
                "podCliqueScalingGroups": [
                    {"name": "lw", "cliqueNames": ["leader", "worker"], "replicas": 5, "minAvailable": 2}
                ],
            },
        },
    }


class PodCounter:
    """Watches a namespace's pods: when the expected number exist, and when they are all bound."""

    def __init__(self, api: client.ApiClient, namespace: str, expected: int) -> None:
        self.api, self.namespace, self.expected = api, namespace, expected
        self.nodes: dict[str, str | None] = {}
        self.created_at: float | None = None
        self.bound_at: float | None = None

    def _record(self, name: str, node: str | None, start: float) -> None:
        self.nodes[name] = node
        now = round(time.perf_counter() - start, 2)
        if self.created_at is None and len(self.nodes) >= self.expected:
            self.created_at = now
        if self.bound_at is None and sum(1 for n in self.nodes.values() if n) >= self.expected:
            self.bound_at = now

    async def run(self, start: float) -> None:
        """List, then watch from there; again whenever the apiserver ends the watch, until all are bound."""
        core = client.CoreV1Api(self.api)
        while self.bound_at is None:
            listed = await core.list_namespaced_pod(self.namespace)
            for pod in listed.items:
                self._record(pod.metadata.name, pod.spec.node_name, start)
            async with watch.Watch().stream(
                core.list_namespaced_pod,
                self.namespace,
                resource_version=listed.metadata.resource_version,
                timeout_seconds=120,
            ) as stream:
                async for event in stream:
                    pod = event["object"]
                    if event["type"] == "DELETED":
                        self.nodes.pop(pod.metadata.name, None)
                    else:
                        self._record(pod.metadata.name, pod.spec.node_name, start)
                    if self.bound_at is not None:
                        return


async def phase(api: client.ApiClient, namespace: str) -> dict[str, float | None]:
    core = client.CoreV1Api(api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    objects = client.CustomObjectsApi(api)
    counter = PodCounter(api, namespace, PODCLIQUESETS * PODS_EACH)
    start = time.perf_counter()
    watching = asyncio.create_task(counter.run(start))
    limit = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with limit:
            await objects.create_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, podcliqueset(f"pcs-{i:03d}", namespace)
            )

    await asyncio.gather(*(create(i) for i in range(PODCLIQUESETS)))
    await asyncio.wait_for(watching, 600)
    await core.delete_namespace(namespace)

    async def gone() -> None:
        while True:
            try:
                await core.read_namespace(namespace)
            except client.ApiException as err:
                if err.status == 404:
                    return
            await asyncio.sleep(0.5)

    await asyncio.wait_for(gone(), 600)
    return {"all_created_s": counter.created_at, "all_bound_s": counter.bound_at}


def set_gang_admission(info: ClusterInfo, enabled: bool) -> None:
    """Restart the operator with gangAdmission.enabled set (its pod webhook gates only when enabled)."""
    path = grove_operator.config_path(info)
    config = yaml.safe_load(path.read_text())
    config["gangAdmission"] = {"enabled": enabled}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    grove_operator.stop(info.state_dir)
    grove_operator.start(info.state_dir, progress=lambda _msg: None)


async def measure(info: ClusterInfo) -> dict[str, Any]:
    async with info.api_client() as api:
        gated = await phase(api, "gangs-on")
    set_gang_admission(info, False)
    async with info.api_client() as api:
        ungated = await phase(api, "gangs-off")
    return {"with_gang_admission": gated, "without_gang_admission": ungated}


def run_e2e(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="grove-bench-gang-") as tmp:
        state_dir = Path(tmp) / "cluster"
        info = localcluster.up(state_dir, nodes=args.nodes, progress=lambda _msg: None)
        try:
            result = asyncio.run(measure(info))
        finally:
            with contextlib.suppress(Exception):
                localcluster.down(state_dir)
    on, off = result["with_gang_admission"]["all_bound_s"], result["without_gang_admission"]["all_bound_s"]
    result["setup"] = {"nodes": args.nodes, "podcliquesets": PODCLIQUESETS, "pods": PODCLIQUESETS * PODS_EACH}
    result["bound_ratio"] = round(on / off, 2) if on and off else None
    result["target"] = {
        "bound_ratio_max": 1.5,
        "met": bool(result["bound_ratio"] and result["bound_ratio"] <= 1.5),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0

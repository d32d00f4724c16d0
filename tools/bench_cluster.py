"""Benchmark the local cluster and the API baseline the operator will be measured against.

    make bench            (python -m tools.bench_cluster --out bench-results/cluster.json)

Prints a table and writes JSON: cluster start (binaries cached), no-op `up`, CRD install, PodCliqueSet
create latency (sequential p50/p99) and throughput (concurrent), the raw Pod-create ceiling, component
memory, and `down`. A throwaway cluster in a temporary state dir is used; the user's cluster is untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client

from grove_api import constants as c
from localcluster import cluster as localcluster
from localcluster.state import ClusterInfo

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "concept-overview" / "single-node-aggregated.yaml"


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def install_crds(info: ClusterInfo) -> None:
    kubectl = ["kubectl", "--kubeconfig", str(info.kubeconfig)]
    crds = str(ROOT / "deploy" / "helm" / "grove-py" / "crds")
    subprocess.run([*kubectl, "apply", "--server-side", "-f", crds], check=True, capture_output=True)
    subprocess.run(
        [*kubectl, "wait", "--for", "condition=established", "--timeout=60s", "-f", crds],
        check=True,
        capture_output=True,
    )


async def _api_numbers(info: ClusterInfo, sequential: int, concurrent: int, pods: int) -> dict[str, Any]:
    sample = yaml.safe_load(SAMPLE.read_text())
    async with info.api_client() as api:
        core = client.CoreV1Api(api)
        objects = client.CustomObjectsApi(api)
        ns = "bench"
        await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

        def pcs(name: str) -> dict[str, Any]:
            doc = copy.deepcopy(sample)
            doc["metadata"] = {"name": name, "namespace": ns}
            return doc

        async def create(name: str) -> float:
            start = time.perf_counter()
            await objects.create_namespaced_custom_object(
                c.GROUP, c.VERSION, ns, c.PLURAL_PODCLIQUESET, pcs(name)
            )
            return time.perf_counter() - start

        latencies = [await create(f"seq-{i}") for i in range(sequential)]
        limit = asyncio.Semaphore(32)

        async def bounded(name: str) -> float:
            async with limit:
                return await create(name)

        start = time.perf_counter()
        await asyncio.gather(*(bounded(f"par-{i}") for i in range(concurrent)))
        pcs_elapsed = time.perf_counter() - start

        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "bench-", "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeName": "not-a-node"},
        }

        async def create_pod() -> None:
            async with limit:
                await core.create_namespaced_pod(ns, pod)

        start = time.perf_counter()
        await asyncio.gather(*(create_pod() for _ in range(pods)))
        pod_elapsed = time.perf_counter() - start
        await core.delete_namespace(ns)
    return {
        "pcs_create_sequential": {
            "count": sequential,
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        },
        "pcs_create_concurrent": {
            "count": concurrent,
            "concurrency": 32,
            "seconds": round(pcs_elapsed, 2),
            "per_second": round(concurrent / pcs_elapsed, 1),
        },
        "pod_create_concurrent": {
            "count": pods,
            "concurrency": 32,
            "seconds": round(pod_elapsed, 2),
            "per_second": round(pods / pod_elapsed, 1),
        },
    }


def run(nodes: int, sequential: int, concurrent: int, pods: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="grove-bench-") as tmp:
        state_dir = Path(tmp) / "cluster"
        quiet = lambda _msg: None  # noqa: E731
        info, up_cold = _timed(localcluster.up, state_dir, nodes=nodes, progress=quiet)
        _, up_noop = _timed(localcluster.up, state_dir, nodes=nodes, progress=quiet)
        _, crd_install = _timed(install_crds, info)
        try:
            api = asyncio.run(_api_numbers(info, sequential, concurrent, pods))
            memory = {name: _rss_mb(pid) for name, pid in info.pids.items()}
        finally:
            _, down = _timed(localcluster.down, state_dir)
    return {
        "nodes": nodes,
        "seconds": {
            "up_cold_binaries_cached": round(up_cold, 2),
            "up_noop": round(up_noop, 2),
            "crd_install": round(crd_install, 2),
            "down": round(down, 2),
        },
        **api,
        "rss_mb": {k: round(v, 1) for k, v in memory.items() if v is not None},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/cluster.json"))
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=500)
    parser.add_argument("--pods", type=int, default=1000)
    args = parser.parse_args()
    result = run(args.nodes, args.sequential, args.concurrent, args.pods)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

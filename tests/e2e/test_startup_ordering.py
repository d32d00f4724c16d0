"""Startup ordering, really executed: Grove's e2e scenarios SO-1 … SO-4.

Pods of cliques with dependencies carry grove-initc (injected by the pod webhook); on the local cluster the
init runner runs the real grove-initc process for each such pod, and KWOK keeps the pod in its init phase
until it exits 0. The test records the moment each pod is first seen Ready (a watch, millisecond precision;
condition timestamps only have seconds) and checks, for every dependency, that the parent's N-th Ready pod
(N = its minAvailable) came before the first Ready pod of the dependant. The dependency structure itself
(which PodClique waits for which, with what minimum; docs/startup-ordering.md) is checked first, so the
timing check cannot pass vacuously.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client, watch

from grove_api import constants as c
from tests.gang import node_pool, wl1, wl2
from tests.kube import kubectl
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("gang_invariant")

INORDER, EXPLICIT = "CliqueStartupTypeInOrder", "CliqueStartupTypeExplicit"


class ReadyTimes:
    """First time (monotonic) each pod of the namespace is seen Ready, by PodClique."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.first_ready: dict[str, tuple[str, float]] = {}  # pod -> (podclique, time)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReadyTimes:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        core = client.CoreV1Api(self.api)
        async with watch.Watch().stream(core.list_namespaced_pod, self.namespace, timeout_seconds=600) as s:
            async for event in s:
                pod = event["object"]
                ready = any(
                    cond.type == "Ready" and cond.status == "True" for cond in pod.status.conditions or []
                )
                if ready and pod.metadata.name not in self.first_ready:
                    clique = pod.metadata.labels.get(c.LABEL_PODCLIQUE, "")
                    self.first_ready[pod.metadata.name] = (clique, time.monotonic())

    def times(self, podclique: str) -> list[float]:
        return sorted(t for q, t in self.first_ready.values() if q == podclique)


@pytest.fixture
async def ordering(cluster: Any, api_client: client.ApiClient, namespace: str) -> AsyncIterator[Any]:
    async with node_pool(api_client, f"p{uuid.uuid4().hex[:6]}", 10) as pool:
        await pool.uncordon(10)
        async with ReadyTimes(api_client, namespace) as times:
            yield Path(cluster.kubeconfig), pool, times


async def run(
    api: client.ApiClient, kubeconfig: Path, namespace: str, doc: dict[str, Any], times: ReadyTimes
) -> dict[str, str | None]:
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))

    async def all_ready() -> bool:
        return len(times.first_ready) == 10

    await until("all 10 pods Ready", all_ready, timeout=120)
    listed = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUE
    )
    return {
        q["metadata"]["name"]: (q["metadata"].get("annotations") or {}).get(c.ANNOTATION_STARTUP_DEPENDENCIES)
        for q in listed["items"]
    }


def check_order(deps: dict[str, str | None], times: ReadyTimes) -> None:
    for child, spec in deps.items():
        for parent_min in (spec or "").split(",") if spec else []:
            parent, _, count = parent_min.rpartition(":")
            parent_times, child_times = times.times(parent), times.times(child)
            assert len(parent_times) >= int(count) and child_times, (child, parent, times.first_ready)
            assert parent_times[int(count) - 1] < child_times[0], (
                f"{child} became Ready {parent_times[int(count) - 1] - child_times[0]:.3f}s before its parent "
                f"{parent} had {count} Ready pods"
            )


def expected(pcs: str, edges: dict[str, str | None]) -> dict[str, str | None]:
    """PodClique suffix -> dependencies ("<suffix>:<min>,…") as full names."""
    out = {}
    for child, spec in edges.items():
        full = None
        if spec:
            full = ",".join(f"{pcs}-0-{part}" for part in spec.split(","))
        out[f"{pcs}-0-{child}"] = full
    return out


SCENARIOS = {
    "SO-1 InOrder, every minimum": (
        lambda ns, pool: wl1("so", ns, pool, startup=INORDER),
        {
            "pc-a": None,
            "sg-x-0-pc-b": "pc-a:2",
            "sg-x-1-pc-b": "pc-a:2",
            "sg-x-0-pc-c": "sg-x-0-pc-b:1,sg-x-1-pc-b:1",
            "sg-x-1-pc-c": "sg-x-0-pc-b:1,sg-x-1-pc-b:1",
        },
    ),
    "SO-2 InOrder, partial minimums": (
        lambda ns, pool: wl2("so", ns, pool, startup=INORDER),
        {
            "pc-a": None,
            "sg-x-0-pc-b": "pc-a:1",
            "sg-x-0-pc-c": "sg-x-0-pc-b:1",
            "sg-x-1-pc-b": None,  # scaled replica: the preceding clique is not in its group
            "sg-x-1-pc-c": "sg-x-1-pc-b:1",
        },
    ),
    "SO-3 Explicit, every minimum": (
        lambda ns, pool: wl1(
            "so", ns, pool, startup=EXPLICIT, starts_after={"pc-c": ["pc-a"], "pc-b": ["pc-c"]}
        ),
        {
            "pc-a": None,
            "sg-x-0-pc-c": "pc-a:2",
            "sg-x-1-pc-c": "pc-a:2",
            "sg-x-0-pc-b": "sg-x-0-pc-c:3,sg-x-1-pc-c:3",
            "sg-x-1-pc-b": "sg-x-0-pc-c:3,sg-x-1-pc-c:3",
        },
    ),
    "SO-4 Explicit, partial minimums": (
        lambda ns, pool: wl2(
            "so", ns, pool, startup=EXPLICIT, starts_after={"pc-b": ["pc-a"], "pc-c": ["pc-b"]}
        ),
        {
            "pc-a": None,
            "sg-x-0-pc-b": "pc-a:1",
            "sg-x-0-pc-c": "sg-x-0-pc-b:1",
            "sg-x-1-pc-b": None,
            "sg-x-1-pc-c": "sg-x-1-pc-b:1",
        },
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.split()[0] for s in SCENARIOS])
async def test_startup_order(
    scenario: str, ordering: Any, api_client: client.ApiClient, namespace: str
) -> None:
    kubeconfig, pool, times = ordering
    build, edges = SCENARIOS[scenario]
    deps = await run(api_client, kubeconfig, namespace, build(namespace, pool.name), times)
    assert deps == expected("so", edges)
    check_order(deps, times)
    pods = await client.CoreV1Api(api_client).list_namespaced_pod(namespace)
    for pod in pods.items:
        has_initc = any(x.name == c.INIT_CONTAINER_NAME for x in pod.spec.init_containers or [])
        assert has_initc == bool(deps[pod.metadata.labels[c.LABEL_PODCLIQUE]]), pod.metadata.name

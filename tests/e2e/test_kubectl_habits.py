"""What a platform team types right after installing the operator, on the local cluster: `kubectl get grove`
lists every Grove object (the CRDs' `grove` category), and `kubectl wait --for=condition=Available pcs/NAME`
waits until every replica is available (the PodCliqueSet's `Available` condition, docs/decisions.md).

kubectl runs with its own discovery cache directory: a cache left by an earlier cluster on the same port
(kubectl keeps it for hours) would not know the category yet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from grove_api import constants as c
from tests.builders import clique, group, pcs
from tests.gang import pool_pod_spec
from tests.kube import kubectl
from tests.podtracker import Start, condition

pytestmark = pytest.mark.usefixtures("gang_invariant")

AVAILABLE = f"--for=condition={c.CONDITION_AVAILABLE}"
Kubectl = Callable[..., Coroutine[Any, Any, str]]


@pytest.fixture
def run(cluster: Any, namespace: str, tmp_path: Path) -> Kubectl:
    """`await run(*args)`: kubectl in the test's namespace, with a fresh discovery cache."""

    async def run(*args: str, stdin: str | None = None) -> str:
        return await asyncio.to_thread(
            kubectl,
            Path(cluster.kubeconfig),
            "--cache-dir",
            str(tmp_path / "kube-cache"),
            "-n",
            namespace,
            *args,
            stdin=stdin,
        )

    return run


def names(output: str) -> set[str]:
    return set(output.split())


async def test_get_grove_lists_every_kind_and_wait_returns_once_the_pods_run(
    run: Kubectl, api_client: client.ApiClient, namespace: str
) -> None:
    assert names(await run("api-resources", f"--categories={c.CRD_CATEGORY}", "-o", "name")) == {
        f"{c.PLURAL_PODCLIQUESET}.{c.GROUP}",
        f"{c.PLURAL_PODCLIQUE}.{c.GROUP}",
        f"{c.PLURAL_PODCLIQUESCALINGGROUP}.{c.GROUP}",
        f"{c.PLURAL_PODGANG}.{c.SCHEDULER_GROUP}",
        f"{c.PLURAL_CLUSTERTOPOLOGYBINDING}.{c.GROUP}",
    }
    doc = pcs(
        "habits",
        namespace=namespace,
        cliques=[clique("front"), clique("leader"), clique("worker", replicas=2, min_available=2)],
        groups=[group("model", ["leader", "worker"])],
    )
    await run("apply", "-f", "-", stdin=yaml.safe_dump(doc))
    waited = await run("wait", AVAILABLE, "pcs", "--all", "--timeout=90s")  # as hack/demo.sh waits
    assert waited.strip() == "podcliqueset.grove.io/habits condition met"

    pods = (await client.CoreV1Api(api_client).list_namespaced_pod(namespace)).items
    assert len(pods) == 4 and all(p.status.phase == "Running" for p in pods), [
        (p.metadata.name, p.status.phase) for p in pods
    ]
    # `kubectl get grove` shows exactly what naming the four kinds shows (a cluster-scoped
    # ClusterTopologyBinding of another test may be listed too: the category holds it).
    listed = {n for n in names(await run("get", c.CRD_CATEGORY, "-o", "name")) if "clustertopology" not in n}
    kinds = (
        f"{c.PLURAL_PODCLIQUESET},{c.PLURAL_PODCLIQUE},{c.PLURAL_PODCLIQUESCALINGGROUP},{c.PLURAL_PODGANG}"
    )
    assert listed == names(await run("get", kinds, "-o", "name"))
    assert {n.split("/")[0] for n in listed} == {
        f"{c.KIND_PODCLIQUESET.lower()}.{c.GROUP}",
        f"{c.KIND_PODCLIQUE.lower()}.{c.GROUP}",
        f"{c.KIND_PODCLIQUESCALINGGROUP.lower()}.{c.GROUP}",
        f"{c.KIND_PODGANG.lower()}.{c.SCHEDULER_GROUP}",
    }
    assert listed <= names(await run("get", c.CRD_CATEGORY, "-A", "-o", "name"))
    table = await run("get", c.CRD_CATEGORY)  # the human view: one table per kind
    assert "podcliqueset.grove.io/habits" in table and "podgang.scheduler.grove.io/habits-0" in table


def two_pods(name: str, namespace: str, pool: str) -> dict[str, Any]:
    """One clique of two pods, both needed (minAvailable 2): a replica is two pool nodes."""
    work = clique("work", replicas=2, min_available=2, pod=pool_pod_spec(pool))
    return pcs(name, namespace=namespace, cliques=[work])


async def test_available_goes_false_when_a_replica_cannot_run_and_wait_waits_for_it(
    start: Start, run: Kubectl
) -> None:
    wl = await start(two_pods, nodes=2, pods=2, spare=2)
    await run("wait", AVAILABLE, f"pcs/{wl.name}", "--timeout=30s")

    # Scaled out beyond the pool: replica 1 cannot be placed, so the PodCliqueSet is not available, and
    # kubectl wait (which also wants status.observedGeneration to have caught up) keeps waiting.
    await wl.scale("pcs", wl.name, 2)
    with pytest.raises(AssertionError, match="timed out waiting for the condition"):
        await run("wait", AVAILABLE, f"pcs/{wl.name}", "--timeout=5s")
    unavailable = await wl.wait_condition(c.CONDITION_AVAILABLE, "False", "ReplicasUnavailable")
    assert unavailable["message"] == "1 of 2 replicas available"

    # Room for it: kubectl wait returns once replica 1 runs.
    waiting = asyncio.create_task(run("wait", AVAILABLE, f"pcs/{wl.name}", "--timeout=90s"))
    await wl.pool.uncordon(2)
    assert "condition met" in await waiting
    await wl.wait_running(4)
    available = condition(await wl.get(), c.CONDITION_AVAILABLE)
    assert available is not None
    assert (available["status"], available["reason"], available["message"]) == (
        "True",
        "AllReplicasAvailable",
        "2 of 2 replicas available",
    )

    # A running replica loses a pod and its node: below its minimum, so not available any more.
    pods = [p for p in await wl.pods() if p["metadata"]["labels"][c.LABEL_PCS_REPLICA_INDEX] == "1"]
    lost = pods[0]
    await wl.pool.cordon_nodes([lost["spec"]["nodeName"]])
    await wl.delete_pod(lost["metadata"]["name"])
    await run("wait", f"{AVAILABLE}=False", f"pcs/{wl.name}", "--timeout=60s")
    breached = await wl.wait_condition(c.CONDITION_AVAILABLE, "False", "ReplicasUnavailable")
    assert breached["message"] == "1 of 2 replicas available"

"""Fault injection: the operator is SIGKILLed at random moments while a 100-pod PodCliqueSet is created,
scaled and deleted, then restarted; every time the cluster converges to exactly the desired pods, with no
duplicate pod indices and no orphans. Rolling updates and gang termination carry on across kills too."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from kubernetes_asyncio import client

from grove_api import constants as c
from localcluster import operator
from tests.builders import many_small_pods
from tests.gang import wl1
from tests.podtracker import PodTracker, Start, condition
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("gang_invariant")


@pytest.fixture
def gang_windows() -> tuple[float, float]:
    """A SIGKILL between recording a gang's admission and releasing all of it leaves the gang partly
    released until the restarted operator finishes the release (docs/gang-admission.md)."""
    return (60.0, 90.0)


PODS_PER_CLIQUE = 2
NAME = "killme"


async def _state(api: client.ApiClient, namespace: str) -> tuple[list[Any], list[dict[str, Any]]]:
    pods = await client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"{c.LABEL_PART_OF}={NAME}"
    )
    cliques = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUE
    )
    return pods.items, cliques["items"]


def problems(pods: list[Any], cliques: list[dict[str, Any]], replicas: int) -> list[str]:
    """Why the namespace is not exactly `replicas` x 2 pods (empty list: converged)."""
    expected = {f"{NAME}-{i}-w" for i in range(replicas)}
    found: list[str] = []
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    names = {q["metadata"]["name"] for q in cliques if not q["metadata"].get("deletionTimestamp")}
    if names != expected:
        found.append(f"PodCliques {sorted(names ^ expected)} differ")
    per_clique: dict[str, list[str]] = {}
    for p in live:
        per_clique.setdefault(p.metadata.labels[c.LABEL_PODCLIQUE], []).append(
            p.metadata.labels[c.LABEL_POD_INDEX]
        )
    orphans = set(per_clique) - expected
    if orphans:
        found.append(f"orphan pods of {sorted(orphans)}")
    for name in expected:
        indices = per_clique.get(name, [])
        if sorted(indices) != [str(i) for i in range(PODS_PER_CLIQUE)]:
            found.append(f"{name}: pod indices {sorted(indices)}")
    duplicated = [
        k
        for k, n in Counter(
            (p.metadata.labels[c.LABEL_PODCLIQUE], p.metadata.labels[c.LABEL_POD_INDEX]) for p in live
        ).items()
        if n > 1
    ]
    if duplicated:
        found.append(f"duplicate pod indices {duplicated}")
    if replicas == 0 and pods:
        found.append(f"{len(pods)} pods left")
    return found


async def converge(api: client.ApiClient, namespace: str, replicas: int) -> None:
    async def done() -> bool:
        return not problems(*await _state(api, namespace), replicas)

    await until(f"{replicas * PODS_PER_CLIQUE} pods of {NAME}", done, timeout=120, interval=0.5)


async def kill_at_random(cluster: Any, rng: random.Random, window: float) -> None:
    await asyncio.sleep(rng.uniform(0, window))  # the kill point: a random moment inside the operation
    await asyncio.to_thread(operator.kill, cluster.state_dir)
    await asyncio.to_thread(operator.start, cluster.state_dir, lambda _msg: None)


@pytest.mark.timeout(900)
async def test_kill_points_during_create_scale_and_delete(
    cluster: Any, namespace: str, api_client: client.ApiClient
) -> None:
    rng = random.Random(20261125)
    objects = client.CustomObjectsApi(api_client)
    kills = 0
    try:
        for _ in range(5):  # create 100 pods, scale 50 -> 25 -> 50 replicas, delete: a kill inside each step
            await objects.create_namespaced_custom_object(
                c.GROUP,
                c.VERSION,
                namespace,
                c.PLURAL_PODCLIQUESET,
                many_small_pods(NAME, namespace, 50, PODS_PER_CLIQUE),
            )
            await kill_at_random(cluster, rng, 1.5)
            kills += 1
            await converge(api_client, namespace, 50)
            for target in (25, 50):  # scale in and out, each killed at a random moment
                await objects.patch_namespaced_custom_object_scale(
                    c.GROUP,
                    c.VERSION,
                    namespace,
                    c.PLURAL_PODCLIQUESET,
                    NAME,
                    {"spec": {"replicas": target}},
                    _content_type="application/merge-patch+json",
                )
                await kill_at_random(cluster, rng, 1.0)
                kills += 1
                await converge(api_client, namespace, target)
            await objects.delete_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, NAME
            )
            await kill_at_random(cluster, rng, 0.5)
            kills += 1
            await converge(api_client, namespace, 0)

            async def pcs_gone() -> bool:
                listed = await objects.list_namespaced_custom_object(
                    c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET
                )
                return not listed["items"]

            await until("the PodCliqueSet to be gone", pcs_gone, timeout=60)
    finally:
        await asyncio.to_thread(operator.start, cluster.state_dir, lambda _msg: None)
    assert kills >= 20


# --- rolling updates and gang termination survive a kill mid-way --------------------------------------


async def test_rolling_update_survives_kills(
    cluster: Any, api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    """Every clique changed on two PodCliqueSet replicas; the operator is SIGKILLed three times while the
    update runs. It still finishes with every pod on the new templates, one pod per PodClique and one
    PodCliqueSet replica in flight at a time: progress is read from the pods, not remembered."""
    w = await start(wl1, nodes=20, pods=20, replicas=2)
    rng = random.Random(8)
    try:
        async with PodTracker(api_client, namespace) as t:
            await w.trigger("pc-a", "pc-b", "pc-c")
            for _ in range(3):
                await kill_at_random(cluster, rng, 1.0)
            await w.wait_updated(2, 20)
    finally:
        await asyncio.to_thread(operator.start, cluster.state_dir, lambda _msg: None)
    assert len(t.disturbed()) == 20, t.describe()
    for pclq in ("wl-0-pc-a", "wl-1-pc-a"):
        assert t.max_in_flight(pclq)[0] == 1, (pclq, t.max_in_flight(pclq), t.describe())
    t.assert_replicas_one_at_a_time()


async def test_gang_termination_survives_a_kill(
    cluster: Any, api_client: client.ApiClient, namespace: str, start: Start
) -> None:
    """A gang breached (a pod killed, no room for its replacement) while the operator is down for most of
    terminationDelay is still recreated whole once the delay has passed: the timer is the condition's
    lastTransitionTime, not a clock in the process."""
    w = await start(wl1, nodes=10, pods=10, termination_delay="10s")
    before = set(await w.uids())
    await w.pool.cordon(10)  # running pods stay; a replacement cannot be placed
    victim = next(p for p in await w.pods() if p["metadata"]["labels"][c.LABEL_PODCLIQUE] == "wl-0-pc-a")
    await w.delete_pod(victim["metadata"]["name"])

    async def breached() -> bool:
        pclq = await w.get(c.PLURAL_PODCLIQUE, "wl-0-pc-a")
        found = condition(pclq, c.CONDITION_MIN_AVAILABLE_BREACHED) or {}
        return found.get("status") == "True"

    await until("pc-a to report MinAvailableBreached", breached, timeout=30, interval=0.2)
    await asyncio.to_thread(operator.kill, cluster.state_dir)
    try:
        await asyncio.sleep(6)  # down for most of the delay
    finally:
        await asyncio.to_thread(operator.start, cluster.state_dir, lambda _msg: None)

    async def recreated() -> bool:
        return len(await w.pods()) == 10 and not before & set(await w.uids())

    await until("every pod of the replica recreated", recreated, timeout=60, interval=0.5)
    assert await w.events("PodCliqueSetReplicaDeleteSuccessful")
    await w.pool.uncordon(10)
    await w.wait_running(10)

"""Leader failover with two operator replicas under load, on the shared cluster: replica "b" leads, "a"
stands by (and serves the webhooks). The leader is SIGKILLed and the PodCliqueSet scaled while the Lease
still names the dead replica; the standby takes over once the lease has expired by its clock (not before,
not much after) and the namespace converges to exactly the new pods, with no duplicate pod indices and
never two leaders at once. The killed replica comes back as a standby."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from grove_api import constants as c
from localcluster import operator as grove_operator
from localcluster.state import ClusterInfo
from tests.builders import many_small_pods
from tests.operator_pair import LEASE_NAME, LEASE_NAMESPACE, Pair, leader_pair
from tests.waiting import until

NAME = "failover"
PODS_PER_CLIQUE = 2
LEASE_SECONDS = 6.0
RETRY_SECONDS = LEASE_SECONDS / 6  # the pair's retryPeriod
# A standby polls every retry period (+ up to 1.2 of it as jitter) and counts the lease duration from when
# it first saw the dead leader's last renewal: at most two polls late, plus a read and a write.
TAKEOVER_MARGIN = 2 * RETRY_SECONDS * 2.2 + 2.0


async def problems(api: client.ApiClient, namespace: str, replicas: int) -> list[str]:
    """Why the namespace does not hold exactly `replicas` x PODS_PER_CLIQUE pods of NAME, one per index of
    each PodClique, all bound to a node (empty: converged)."""
    pods = (
        await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"{c.LABEL_PART_OF}={NAME}")
    ).items
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    expected = {f"{NAME}-{i}-w" for i in range(replicas)}
    found: list[str] = []
    keys = [
        (p.metadata.labels.get(c.LABEL_PODCLIQUE), p.metadata.labels.get(c.LABEL_POD_INDEX)) for p in live
    ]
    duplicated = sorted(k for k, n in Counter(keys).items() if n > 1)
    if duplicated:
        found.append(f"duplicate pod indices {duplicated}")
    wanted = {(q, str(i)) for q in expected for i in range(PODS_PER_CLIQUE)}
    if set(keys) != wanted:
        found.append(f"pods differ: missing {sorted(wanted - set(keys))}, extra {sorted(set(keys) - wanted)}")
    unbound = sorted(p.metadata.name for p in live if not p.spec.node_name)
    if unbound:
        found.append(f"not bound: {unbound}")
    if replicas == 0 and pods:
        found.append(f"{len(pods)} pods left")
    return found


async def converge(api: client.ApiClient, namespace: str, replicas: int, pair: Pair, timeout: float) -> None:
    last: list[str] = []

    async def done() -> bool:
        nonlocal last
        last = await problems(api, namespace, replicas)
        return not last

    try:
        await until(f"{replicas * PODS_PER_CLIQUE} pods of {NAME}", done, timeout=timeout, interval=0.3)
    except pytest.fail.Exception as err:
        raise AssertionError(f"{err}: {last}\n{pair.logs()}") from None


async def lease_exists(api: client.ApiClient) -> bool:
    try:
        await client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE)
    except client.exceptions.ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


async def test_standby_takes_over_a_killed_leader_under_load(
    cluster: ClusterInfo, namespace: str, api_client: client.ApiClient, tmp_path: Path
) -> None:
    objects = client.CustomObjectsApi(api_client)
    lease_before = await lease_exists(api_client)
    async with leader_pair(cluster, tmp_path, lease_seconds=LEASE_SECONDS) as pair:
        assert await pair.leader() == "b", pair.logs()
        await objects.create_namespaced_custom_object(
            c.GROUP,
            c.VERSION,
            namespace,
            c.PLURAL_PODCLIQUESET,
            many_small_pods(NAME, namespace, 2, PODS_PER_CLIQUE),
        )
        await converge(api_client, namespace, 2, pair, timeout=30)
        before = await pair.lease()
        assert before is not None and before.spec is not None

        killed = pair.kill_leader()
        killed_at = pair.killed_at(killed)
        assert killed == "b" and killed_at is not None
        dead = await pair.lease()
        assert dead is not None and dead.spec is not None
        assert dead.spec.holder_identity == pair.replicas["b"].identity(), pair.logs()
        # Scaled while the Lease still names the dead leader: nobody runs the controllers. (A merge patch:
        # the client's default for this call is a JSON patch, and its stubs don't know `_content_type`.)
        await objects.patch_namespaced_custom_object_scale(  # type: ignore[call-arg]
            c.GROUP,
            c.VERSION,
            namespace,
            c.PLURAL_PODCLIQUESET,
            NAME,
            {"spec": {"replicas": 4}},
            _content_type="application/merge-patch+json",
        )
        still = await pair.lease()
        assert still is not None and still.spec is not None
        assert (still.spec.holder_identity, still.spec.renew_time) == (
            dead.spec.holder_identity,
            dead.spec.renew_time,
        ), f"the lease moved or was renewed after the SIGKILL\n{pair.logs()}"

        started = await pair.wait_leader("a", timeout=LEASE_SECONDS + TAKEOVER_MARGIN + 5)
        takeover = started - killed_at
        since_renewal = started - dead.spec.renew_time.timestamp()
        print(
            f"takeover {takeover:.2f}s after the SIGKILL, {since_renewal:.2f}s after the last renewal "
            f"(lease {LEASE_SECONDS:.0f}s)"
        )
        # Not before the dead leader's last renewal expired by the standby's clock (it cannot have seen
        # it before it was written), and not much after the kill.
        assert since_renewal >= LEASE_SECONDS - 0.05, f"taken over too early\n{pair.logs()}"
        assert takeover <= LEASE_SECONDS + TAKEOVER_MARGIN, f"takeover took {takeover:.2f}s\n{pair.logs()}"
        await converge(api_client, namespace, 4, pair, timeout=40)

        after = await pair.lease()
        assert after is not None and after.spec is not None
        assert after.spec.holder_identity == pair.replicas["a"].identity()
        assert after.spec.lease_transitions == (before.spec.lease_transitions or 0) + 1, pair.logs()
        assert pair.overlaps() == [], f"two leaders at once: {pair.overlaps()}\n{pair.logs()}"
        assert [s.name for s in pair.leadership()] == ["b", "a"], pair.logs()

        # The crashed replica comes back as a standby; the leader keeps leading.
        await pair.restart("b")
        assert await pair.leader() == "a" and pair.replicas["a"].leads(), pair.logs()

        # Leave nothing behind: the leader removes the PodCliqueSet's pods and PodCliques.
        await objects.delete_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, NAME
        )

        async def gone() -> bool:
            left = await objects.list_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET
            )
            return not left["items"] and not await problems(api_client, namespace, 0)

        await until(f"{NAME} deleted", gone, timeout=30, interval=0.3)
        assert pair.overlaps() == [], pair.logs()
    # The session operator is back, as the other tests on this cluster expect it.
    assert grove_operator.running_pid(cluster.state_dir) is not None
    assert await lease_exists(api_client) == lease_before

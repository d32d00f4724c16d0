"""Pods that may not share a node, on the live local cluster: a clique spread one per node by a required
anti-affinity on `kubernetes.io/hostname`. Every pool node has room for all of its pods, so a placement that
ignored the anti-affinity would pin them together and the kube-scheduler would never bind the second (the
gang would then be reset after its bind timeout, again and again). The admitter places them one per node
and the scheduler binds every one of them. Runs under the GangInvariant."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes_asyncio import client

from grove_api import constants as c
from tests.builders import clique, pcs
from tests.gang import bound_node, node_pool, pod_dicts, pool_pod_spec
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("gang_invariant")


async def test_a_clique_spread_one_per_node_is_bound_one_per_node(
    api_client: client.ApiClient, namespace: str
) -> None:
    pool = f"x-{uuid.uuid4().hex[:6]}"
    spec: dict[str, Any] = pool_pod_spec(pool)
    spec["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}  # all three fit on any one node
    spec["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {c.LABEL_PODCLIQUE: "spread-0-w"}},
                }
            ]
        }
    }
    doc = pcs("spread", namespace=namespace, cliques=[clique("w", replicas=3, min_available=3, pod=spec)])
    async with node_pool(api_client, pool, 3) as nodes:
        await nodes.uncordon(3)
        objects = client.CustomObjectsApi(api_client)
        await objects.create_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, doc
        )

        async def bound() -> list[str] | None:
            where = [bound_node(p) for p in await pod_dicts(api_client, namespace)]
            return where if len(where) == 3 and all(where) else None

        where = await until("the 3 spread pods bound (before the 60 s bind timeout)", bound, 45)
        assert sorted(where) == sorted(nodes.nodes)  # one per node

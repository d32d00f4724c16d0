"""autoScalingConfig → HorizontalPodAutoscalers that the controller manager's real HPA controller drives
through our scale subresources.

The local cluster has no metrics server, but the HPA controller enforces its bounds before it looks at
metrics ("Current number of replicas below Spec.MinReplicas" / "above Spec.MaxReplicas"), so bounds outside
the current replicas prove the whole chain: our HPA object, its scaleTargetRef, the scale subresource, and
the reconciler creating and deleting pods for the new replica count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from grove_api import constants as c
from tests.builders import clique, group, pcs
from tests.kube import kubectl
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("gang_invariant")

HPA_TIMEOUT = 90  # the HPA controller syncs every 15 s


async def replicas(api: client.ApiClient, namespace: str, plural: str, name: str) -> int | None:
    obj = await client.CustomObjectsApi(api).get_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, plural, name
    )
    return int(obj["spec"]["replicas"])


async def running_pods(api: client.ApiClient, namespace: str, podclique_prefix: str) -> int:
    listed = await client.CoreV1Api(api).list_namespaced_pod(namespace)
    return sum(
        1
        for p in listed.items
        if p.metadata.deletion_timestamp is None
        and p.status.phase == "Running"
        and p.metadata.labels.get(c.LABEL_PODCLIQUE, "").startswith(podclique_prefix)
    )


async def test_hpas_scale_podcliques_and_scaling_groups(
    cluster: Any, api_client: client.ApiClient, namespace: str
) -> None:
    kubeconfig = Path(cluster.kubeconfig)
    doc = pcs(
        "auto",
        namespace=namespace,
        cliques=[
            clique("front", replicas=1, min_available=1, autoscaling={"minReplicas": 2, "maxReplicas": 3}),
            clique("worker", replicas=1, min_available=1),
        ],
        groups=[
            group(
                "grp",
                ["worker"],
                replicas=1,
                min_available=1,
                scaleConfig={"minReplicas": 2, "maxReplicas": 2},
            )
        ],
    )
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))

    hpas = client.AutoscalingV2Api(api_client)

    async def both_hpas() -> list[Any] | None:
        items = (await hpas.list_namespaced_horizontal_pod_autoscaler(namespace)).items
        return items if len(items) == 2 else None

    found = {h.metadata.name: h for h in await until("two HPAs", both_hpas, timeout=30)}
    assert found["auto-0-front"].spec.scale_target_ref.kind == c.KIND_PODCLIQUE
    assert found["auto-0-grp"].spec.scale_target_ref.kind == c.KIND_PODCLIQUESCALINGGROUP
    assert (found["auto-0-front"].spec.min_replicas, found["auto-0-front"].spec.max_replicas) == (2, 3)

    # Below minReplicas: the HPA controller scales both up through the scale subresources.
    async def scaled_up() -> bool:
        front = await replicas(api_client, namespace, c.PLURAL_PODCLIQUE, "auto-0-front")
        grp = await replicas(api_client, namespace, c.PLURAL_PODCLIQUESCALINGGROUP, "auto-0-grp")
        return (front, grp) == (2, 2)

    await until("the HPAs to scale front and grp to 2", scaled_up, timeout=HPA_TIMEOUT)

    async def pods_follow() -> bool:
        front = await running_pods(api_client, namespace, "auto-0-front")
        workers = await running_pods(api_client, namespace, "auto-0-grp-")
        return (front, workers) == (2, 2)

    await until("2 front pods and 2 grp replicas running", pods_follow, timeout=60)

    # Above maxReplicas (a user's kubectl scale): the HPA brings it back to 3.
    kubectl(kubeconfig, "-n", namespace, "scale", "pclq", "auto-0-front", "--replicas=5")

    async def capped() -> bool:
        return await replicas(api_client, namespace, c.PLURAL_PODCLIQUE, "auto-0-front") == 3

    await until("the HPA to cap front at 3", capped, timeout=HPA_TIMEOUT)

    async def three_front() -> bool:
        return await running_pods(api_client, namespace, "auto-0-front") == 3

    await until("3 front pods running", three_front, timeout=60)

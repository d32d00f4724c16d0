"""Deleting a namespace with a PodCliqueSet in it: the namespace controller deletes the pods, and the
operator must not fight it. Every deletion wakes the PodCliqueSet, which wants its pods back; the
apiserver refuses creates in a terminating namespace (403, cause NamespaceTerminating). Those refusals are
not errors to retry: the operator pauses creates there, and the PodCliqueSet goes with the namespace."""

from __future__ import annotations

from kubernetes_asyncio import client

from grove_api import constants as c
from localcluster import operator
from localcluster.state import ClusterInfo
from tests.builders import clique, pcs
from tests.waiting import until

HOLD = "example.com/hold"  # a finalizer nobody removes but the test: keeps the namespace Terminating


async def test_a_namespace_being_deleted_is_not_fought(
    api_client: client.ApiClient, cluster: ClusterInfo, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    doc = pcs("nsdel", namespace=namespace, replicas=2, cliques=[clique("w", replicas=2)])
    await custom.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, doc)

    async def four_pods() -> bool:
        return len((await core.list_namespaced_pod(namespace)).items) == 4

    await until("4 pods", four_pods)
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "hold", "finalizers": [HOLD]}})
    log = operator.log_path(cluster)
    offset = log.stat().st_size
    try:
        await core.delete_namespace(namespace)

        async def podcliqueset_gone() -> bool:
            try:
                await custom.get_namespaced_custom_object(
                    c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, "nsdel"
                )
            except client.ApiException as err:
                if err.status == 404:
                    return True
                raise
            return False

        await until("the PodCliqueSet gone", podcliqueset_gone)
        with log.open("rb") as f:
            f.seek(offset)
            written = f.read().decode(errors="replace")
        key = f"('{namespace}', 'nsdel')"
        retried = [line for line in written.splitlines() if "work item failed" in line and key in line]
        assert retried == [], retried[:3]
    finally:
        await core.patch_namespaced_config_map("hold", namespace, {"metadata": {"finalizers": None}})

"""A namespace being deleted refuses creates; the reconciler stops trying for a while instead of retrying
(and failing) at every deletion the namespace controller makes, and reports no error for it."""

from __future__ import annotations

from kube.client import Forbidden, NamespaceTerminating, error_from_status
from reconciler.manager import NAMESPACE_TERMINATING_PAUSE_SECONDS
from tests.fakes.cluster import FakeCluster, relisted
from tests.unit.test_rollout import running, workload

# As kube-apiserver 1.3x answers (seen on the local cluster).
REFUSED = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": 'pods "w-0-pc-a-abcde" is forbidden: unable to create new content in namespace default '
    "because it is being terminated",
    "reason": "Forbidden",
    "details": {
        "name": "w-0-pc-a-abcde",
        "kind": "pods",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace default is being terminated",
                "field": "metadata.namespace",
            }
        ],
    },
    "code": 403,
}


def test_the_apiserver_cause_names_the_error() -> None:
    assert isinstance(error_from_status(403, REFUSED), NamespaceTerminating)
    plain = error_from_status(403, {"reason": "Forbidden", "message": "RBAC says no"})
    assert isinstance(plain, Forbidden) and not isinstance(plain, NamespaceTerminating)


async def test_creates_in_a_terminating_namespace_pause_without_an_error() -> None:
    world = running(workload(replicas=1))
    # The namespace controller deleted the pods; the PodCliqueSet (held by its finalizer) is still there.
    cluster = FakeCluster([o for o in world.objects.values() if o["kind"] != "Pod"])
    cluster.refuse_creates = error_from_status(403, REFUSED)
    manager = await relisted(cluster)
    requeue = await manager.reconcile(("default", "w"))  # no ReconcileError: nothing to retry
    assert cluster.creates > 0
    assert requeue is not None and 0 < requeue <= NAMESPACE_TERMINATING_PAUSE_SECONDS
    tried = cluster.creates
    await manager.reconcile(("default", "w"))  # woken by the next deletion: no create is sent
    assert cluster.creates == tried
    cluster.objects = [o for o in cluster.objects if o["kind"] != "PodCliqueSet"]
    await manager.podcliquesets.relist()
    await manager.reconcile(("default", "w"))  # gone with its namespace: nothing kept for it
    assert manager._terminating == {}

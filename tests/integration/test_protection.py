"""Managed-resource protection on the real apiserver: the authorizer webhook as registered by `grove-cluster`.

Users (here the cluster admin, via kubectl) cannot create, change or delete what the operator manages for a
PodCliqueSet; the operator's own ServiceAccount (`<state>/operator.kubeconfig`) and the garbage collector
can. The objects are made directly, as the operator, under names the reconciler never generates (and
without a controller ownerReference), so the running reconciler leaves them alone.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from grove_api import constants as c
from localcluster import operator as grove_operator
from localcluster.state import ClusterInfo
from tests.kube import kubectl

pytestmark = pytest.mark.usefixtures("grove_crds", "operator_running")

MANAGED = {c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE}


@pytest.fixture(scope="module")
def operator_running(cluster: ClusterInfo) -> None:
    grove_operator.start(cluster.state_dir)  # no-op when `up` started it (the normal case)


@pytest.fixture(scope="module")
def as_operator(cluster: ClusterInfo) -> Path:
    """The operator's kubeconfig: its ServiceAccount token, not the admin certificate."""
    return grove_operator.kubeconfig_path(cluster)


def run(kubeconfig: Path, *args: str, doc: dict[str, Any] | None = None) -> tuple[bool, str]:
    """(succeeded, stdout or stderr) of kubectl."""
    stdin = yaml.safe_dump(doc) if doc is not None else None
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode == 0, proc.stdout + proc.stderr


POD_SPEC = {
    "containers": [{"name": "main", "image": "busybox"}],
    "tolerations": [{"key": "fake-node", "operator": "Exists", "effect": "NoSchedule"}],
}


def pcs_doc(namespace: str, name: str) -> dict[str, Any]:
    clique = {
        "name": "worker",
        "spec": {"roleName": "worker", "replicas": 2, "minAvailable": 1, "podSpec": POD_SPEC},
    }
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_PODCLIQUESET,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "template": {"cliques": [clique]}},
    }


def make_pcs(
    kubeconfig: Path, namespace: str, name: str, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    doc = pcs_doc(namespace, name)
    if annotations:
        doc["metadata"]["annotations"] = annotations
    kubectl(kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(doc))
    out: dict[str, Any] = json.loads(kubectl(kubeconfig, "get", "pcs", name, "-n", namespace, "-o", "json"))
    return out


def owner(pcs: dict[str, Any]) -> dict[str, Any]:
    """A non-controller owner: the garbage collector cascades, the reconciler does not adopt or prune."""
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_PODCLIQUESET,
        "name": pcs["metadata"]["name"],
        "uid": pcs["metadata"]["uid"],
        "controller": False,
        "blockOwnerDeletion": True,
    }


def labels(pcs_name: str | None, **extra: str) -> dict[str, str]:
    out = dict(MANAGED)
    if pcs_name is not None:
        out[c.LABEL_PART_OF] = pcs_name
    out.update(extra)
    return out


def podclique(
    namespace: str, name: str, pcs_name: str | None, owners: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels(pcs_name)}
    if owners:
        meta["ownerReferences"] = owners
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_PODCLIQUE,
        "metadata": meta,
        "spec": {"roleName": "worker", "replicas": 2, "minAvailable": 1, "podSpec": POD_SPEC},
    }


def podgang(namespace: str, name: str, pcs_name: str) -> dict[str, Any]:
    return {
        "apiVersion": c.SCHEDULER_API_VERSION,
        "kind": c.KIND_PODGANG,
        "metadata": {"name": name, "namespace": namespace, "labels": labels(pcs_name)},
        "spec": {
            "podgroups": [
                {"name": "worker", "minReplicas": 1, "podReferences": [{"namespace": namespace, "name": "p"}]}
            ]
        },
    }


def service(namespace: str, name: str, pcs_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(pcs_name)},
        "spec": {"clusterIP": "None", "selector": {c.LABEL_PART_OF: pcs_name}, "ports": [{"port": 80}]},
    }


def pod(namespace: str, name: str, pcs_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(pcs_name)},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "terminationGracePeriodSeconds": 0},
    }


RESOURCES = {"PodClique": "pclq", "PodGang": "pg", "Service": "service", "Pod": "pod"}


def short(doc: dict[str, Any]) -> str:
    return RESOURCES[doc["kind"]]


def exists(kubeconfig: Path, doc: dict[str, Any]) -> bool:
    ok, _ = run(kubeconfig, "get", short(doc), doc["metadata"]["name"], "-n", doc["metadata"]["namespace"])
    return ok


def assert_refused(out: str, verb: str, doc: dict[str, Any], pcs_name: str) -> None:
    ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    assert 'admission webhook "authorizer.webhooks.grove.io" denied the request' in out, out
    assert f'user "admin" may not {verb} {doc["kind"]} {ns}/{name}' in out, out
    assert f"managed by PodCliqueSet {pcs_name}" in out, out
    assert "system:serviceaccount:grove-system:grove-operator" in out, out
    assert f"kubectl edit pcs {pcs_name} -n {ns}" in out, out
    assert f"kubectl annotate pcs {pcs_name} -n {ns} {c.ANNOTATION_DISABLE_PROTECTION}=true" in out, out


@pytest.fixture
def pcs_name(kubeconfig: Path, namespace: str) -> str:
    name = f"pcs-{uuid.uuid4().hex[:5]}"
    make_pcs(kubeconfig, namespace, name)
    return name


@pytest.fixture
def cleanup(as_operator: Path) -> Iterator[list[dict[str, Any]]]:
    """Objects to delete (as the operator) after the test, so namespace deletion is never held up."""
    docs: list[dict[str, Any]] = []
    yield docs
    for doc in docs:
        run(
            as_operator,
            "delete",
            short(doc),
            doc["metadata"]["name"],
            "-n",
            doc["metadata"]["namespace"],
            "--ignore-not-found",
            "--wait=false",
        )


@pytest.mark.parametrize("kind", ["PodClique", "PodGang", "Service"])
def test_admin_cannot_create_managed_objects(
    kubeconfig: Path, namespace: str, pcs_name: str, kind: str
) -> None:
    """Services (and the other core kinds the operator makes) too: refusing only updates let anyone pre-empt
    the name of a PodCliqueSet's next replica's Service with an object that claims to be the operator's."""
    doc = {
        "PodClique": lambda: podclique(namespace, f"{pcs_name}-hand-pclq", pcs_name),
        "PodGang": lambda: podgang(namespace, f"{pcs_name}-hand-pg", pcs_name),
        "Service": lambda: service(namespace, f"{pcs_name}-9", pcs_name),
    }[kind]()
    ok, out = run(kubeconfig, "create", "-f", "-", doc=doc)
    assert not ok
    assert_refused(out, "create", doc, pcs_name)
    if kind == "PodClique":
        assert f"kubectl scale pclq {pcs_name}-hand-pclq -n {namespace} --replicas=N" in out
    assert not exists(kubeconfig, doc), "a refused create must store nothing"


def test_admin_cannot_update_or_delete_managed_objects(
    kubeconfig: Path, as_operator: Path, namespace: str, pcs_name: str, cleanup: list[dict[str, Any]]
) -> None:
    docs = [
        podclique(namespace, f"{pcs_name}-hand-pclq", pcs_name),
        podgang(namespace, f"{pcs_name}-hand-pg", pcs_name),
        service(namespace, f"{pcs_name}-hand-svc", pcs_name),
    ]
    for doc in docs:
        cleanup.append(doc)
        kubectl(as_operator, "create", "-f", "-", stdin=yaml.safe_dump(doc))
    for doc in docs:
        name = doc["metadata"]["name"]
        ok, out = run(kubeconfig, "label", short(doc), name, "-n", namespace, "touched=yes")
        assert not ok
        assert_refused(out, "update", doc, pcs_name)
        ok, out = run(kubeconfig, "delete", short(doc), name, "-n", namespace, "--wait=false")
        assert not ok
        assert_refused(out, "delete", doc, pcs_name)
        assert exists(kubeconfig, doc)


def test_operator_identity_may_create_update_delete(
    as_operator: Path, kubeconfig: Path, namespace: str, pcs_name: str
) -> None:
    who = kubectl(as_operator, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who == "system:serviceaccount:grove-system:grove-operator"
    docs = [
        podclique(namespace, f"{pcs_name}-hand-pclq", pcs_name),
        podgang(namespace, f"{pcs_name}-hand-pg", pcs_name),
        service(namespace, f"{pcs_name}-hand-svc", pcs_name),
        pod(namespace, f"{pcs_name}-hand-pod", pcs_name),
    ]
    for doc in docs:
        kubectl(as_operator, "create", "-f", "-", stdin=yaml.safe_dump(doc))
        name = doc["metadata"]["name"]
        kubectl(as_operator, "label", short(doc), name, "-n", namespace, "touched=yes")
        kubectl(as_operator, "delete", short(doc), name, "-n", namespace, "--wait=false")


def test_scale_subresource_still_works(
    kubeconfig: Path, as_operator: Path, namespace: str, pcs_name: str, cleanup: list[dict[str, Any]]
) -> None:
    doc = podclique(namespace, f"{pcs_name}-hand-pclq", pcs_name)
    cleanup.append(doc)
    kubectl(as_operator, "create", "-f", "-", stdin=yaml.safe_dump(doc))
    kubectl(kubeconfig, "scale", "pclq", doc["metadata"]["name"], "-n", namespace, "--replicas=3")
    replicas = kubectl(
        kubeconfig, "get", "pclq", doc["metadata"]["name"], "-n", namespace, "-o", "jsonpath={.spec.replicas}"
    )
    assert replicas == "3"


def test_a_patch_of_replicas_alone_is_a_scale_and_allowed(
    kubeconfig: Path, as_operator: Path, namespace: str, pcs_name: str, cleanup: list[dict[str, Any]]
) -> None:
    """What `kubectl scale` may do, a patch of spec.replicas may do too; with anything else in the same
    patch it is refused."""
    doc = podclique(namespace, f"{pcs_name}-hand-pclq", pcs_name)
    cleanup.append(doc)
    kubectl(as_operator, "create", "-f", "-", stdin=yaml.safe_dump(doc))
    name = doc["metadata"]["name"]
    kubectl(
        kubeconfig, "patch", "pclq", name, "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":4}}'
    )
    replicas = kubectl(kubeconfig, "get", "pclq", name, "-n", namespace, "-o", "jsonpath={.spec.replicas}")
    assert replicas == "4"
    both = '{"metadata":{"labels":{"touched":"yes"}},"spec":{"replicas":5}}'
    ok, out = run(kubeconfig, "patch", "pclq", name, "-n", namespace, "--type=merge", "-p", both)
    assert not ok
    assert_refused(out, "update", doc, pcs_name)
    replicas = kubectl(kubeconfig, "get", "pclq", name, "-n", namespace, "-o", "jsonpath={.spec.replicas}")
    assert replicas == "4"


def test_managed_pods_can_be_deleted_but_not_changed(
    kubeconfig: Path, as_operator: Path, namespace: str, pcs_name: str, cleanup: list[dict[str, Any]]
) -> None:
    doc = pod(namespace, f"{pcs_name}-hand-pod", pcs_name)
    cleanup.append(doc)
    kubectl(as_operator, "create", "-f", "-", stdin=yaml.safe_dump(doc))
    ok, out = run(kubeconfig, "label", "pod", doc["metadata"]["name"], "-n", namespace, "touched=yes")
    assert not ok
    assert_refused(out, "update", doc, pcs_name)
    kubectl(kubeconfig, "delete", "pod", doc["metadata"]["name"], "-n", namespace, "--wait=false")


def test_opt_out_annotation_allows_everything(kubeconfig: Path, namespace: str) -> None:
    name = f"pcs-{uuid.uuid4().hex[:5]}"
    make_pcs(kubeconfig, namespace, name, {c.ANNOTATION_DISABLE_PROTECTION: "true"})
    for doc in (podclique(namespace, f"{name}-hand-pclq", name), podgang(namespace, f"{name}-hand-pg", name)):
        kubectl(kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(doc))
        kubectl(kubeconfig, "label", short(doc), doc["metadata"]["name"], "-n", namespace, "touched=yes")
        kubectl(kubeconfig, "delete", short(doc), doc["metadata"]["name"], "-n", namespace)
    doc = service(namespace, f"{name}-hand-svc", name)
    kubectl(kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(doc))
    kubectl(kubeconfig, "delete", "service", f"{name}-hand-svc", "-n", namespace)


def test_objects_for_a_podcliqueset_not_created_yet_are_refused(kubeconfig: Path, namespace: str) -> None:
    """Its names are not pre-empted with its own labels; an object naming no PodCliqueSet is allowed with a
    warning (as in Grove)."""
    for doc in (podclique(namespace, "later-0-worker", "later"), service(namespace, "later-0", "later")):
        ok, out = run(kubeconfig, "create", "-f", "-", doc=doc)
        assert not ok and "for PodCliqueSet later, which does not exist" in out, out
        assert not exists(kubeconfig, doc)
    unlabelled = podclique(namespace, "unlabelled-0-worker", None)
    ok, out = run(kubeconfig, "create", "-f", "-", doc=unlabelled)
    assert ok, out
    assert f"Warning: missing required label {c.LABEL_PART_OF}" in out
    kubectl(kubeconfig, "delete", "pclq", "unlabelled-0-worker", "-n", namespace)


def test_unmanaged_objects_are_not_intercepted(kubeconfig: Path, namespace: str, pcs_name: str) -> None:
    """The objectSelector: without managed-by the webhook is not even called (a PCS label alone is not enough)."""
    doc = podclique(namespace, f"{pcs_name}-hand-pclq", pcs_name)
    del doc["metadata"]["labels"][c.LABEL_MANAGED_BY]
    kubectl(kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(doc))
    kubectl(kubeconfig, "delete", "pclq", doc["metadata"]["name"], "-n", namespace)


@pytest.mark.parametrize("cascade", ["background", "foreground"])
async def test_garbage_collector_deletes_children_of_a_deleted_podcliqueset(
    kubeconfig: Path, as_operator: Path, namespace: str, cascade: str
) -> None:
    """Foreground deletion keeps the PodCliqueSet until its children are gone, so the garbage collector's
    deletes are judged with the parent still present: they pass because its identity is exempt."""
    name = f"pcs-{uuid.uuid4().hex[:5]}"
    pcs = make_pcs(kubeconfig, namespace, name)
    children = [
        podclique(namespace, f"{name}-gc-a", name, [owner(pcs)]),
        podclique(namespace, f"{name}-gc-b", name, [owner(pcs)]),
    ]
    for doc in children:
        kubectl(as_operator, "create", "-f", "-", stdin=yaml.safe_dump(doc))
    kubectl(kubeconfig, "delete", "pcs", name, "-n", namespace, f"--cascade={cascade}", "--wait=false")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while any(exists(kubeconfig, doc) for doc in children):
        assert loop.time() < deadline, "the garbage collector did not delete the PodCliques"
        await asyncio.sleep(0.5)
    while True:
        ok, _ = run(kubeconfig, "get", "pcs", name, "-n", namespace)
        if not ok:
            break
        assert loop.time() < deadline, "the PodCliqueSet was not deleted"
        await asyncio.sleep(0.5)

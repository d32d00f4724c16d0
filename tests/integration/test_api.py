"""Grove's API on the real kube-apiserver: CRDs, short names, explain, scale subresources, schemas."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from grove_api import constants as c
from grove_api.kinds import ALL_KINDS, PODCLIQUE, PODCLIQUESCALINGGROUP, Kind
from reconciler.planner.plan import contains
from tests.kube import kubectl
from tests.maximal import maximal
from tests.samples import runnable_samples
from webhook.paths import CLUSTERTOPOLOGY_CONFIG, DEFAULTING_CONFIG, VALIDATING_CONFIG

pytestmark = pytest.mark.usefixtures("grove_crds")


def in_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = namespace
    return doc


def apply(kubeconfig: Path, doc: dict[str, Any]) -> str:
    return kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))


def get(kubeconfig: Path, namespace: str, resource: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        kubectl(kubeconfig, "get", resource, name, "-n", namespace, "-o", "json")
    )
    return out


async def test_server_is_a_real_kube_apiserver(api_client: client.ApiClient) -> None:
    version = await client.VersionApi(api_client).get_code()
    assert version.git_version == "v1.36.3"
    assert (version.major, version.minor) == ("1", "36")


def test_short_names_are_served(kubeconfig: Path) -> None:
    resources = kubectl(kubeconfig, "api-resources", "--api-group=grove.io", "--no-headers")
    resources += kubectl(kubeconfig, "api-resources", "--api-group=scheduler.grove.io", "--no-headers")
    lines = {line.split()[0]: line.split() for line in resources.splitlines()}
    assert lines["podcliquesets"][1] == "pcs"
    assert lines["podcliques"][1] == "pclq"
    assert lines["podcliquescalinggroups"][1] == "pcsg"
    assert lines["podgangs"][1] == "pg"
    assert lines["clustertopologybindings"][1] == "ct"
    kubectl(kubeconfig, "get", "pcs,pclq,pcsg,pg", "-A")


def test_explain_documents_fields(kubeconfig: Path) -> None:
    out = " ".join(kubectl(kubeconfig, "explain", "pcs.spec.template.cliques.spec.startsAfter").split())
    assert "must be Ready before pods of this clique start" in out
    out = kubectl(kubeconfig, "explain", "pcs.spec.template.cliques.spec.podSpec.containers.resources")
    assert "requests" in out and "limits" in out
    out = " ".join(kubectl(kubeconfig, "explain", "pg.spec.podgroups.minReplicas").split())
    assert "must be placed" in out


def test_runnable_samples_apply_and_list(kubeconfig: Path, namespace: str) -> None:
    samples = runnable_samples()
    for doc in samples.values():
        apply(kubeconfig, in_namespace(doc, namespace))
    listed = kubectl(kubeconfig, "get", "pcs", "-n", namespace, "-o", "name").split()
    assert sorted(listed) == sorted(
        f"podcliqueset.grove.io/{d['metadata']['name']}" for d in samples.values()
    )
    stored = get(kubeconfig, namespace, "pcs", "multinode-disaggregated")
    assert stored["spec"]["template"]["podCliqueScalingGroups"][0]["cliqueNames"] == ["pleader", "pworker"]


def test_crd_defaults_are_groves(kubeconfig: Path, namespace: str) -> None:
    doc = in_namespace(runnable_samples()["multi-node-aggregated"], namespace)
    del doc["spec"]["replicas"]
    del doc["spec"]["template"]["podCliqueScalingGroups"][0]["replicas"]
    doc["spec"]["template"]["headlessServiceConfig"] = {}
    doc["spec"]["updateStrategy"] = {}
    apply(kubeconfig, doc)
    spec = get(kubeconfig, namespace, "pcs", "multinode-aggregated")["spec"]
    assert spec["replicas"] == 0
    assert spec["updateStrategy"] == {"type": "RollingRecreate"}
    assert spec["template"]["cliqueStartupType"] == "CliqueStartupTypeAnyOrder"
    assert spec["template"]["headlessServiceConfig"] == {"publishNotReadyAddresses": True}
    group = spec["template"]["podCliqueScalingGroups"][0]
    assert (group["replicas"], group["minAvailable"]) == (1, 1)


def test_scale_subresource_of_podcliqueset(kubeconfig: Path, namespace: str) -> None:
    apply(kubeconfig, in_namespace(runnable_samples()["single-node-aggregated"], namespace))
    kubectl(kubeconfig, "scale", "pcs", "single-node-aggregated", "--replicas=3", "-n", namespace)
    assert get(kubeconfig, namespace, "pcs", "single-node-aggregated")["spec"]["replicas"] == 3


@pytest.mark.parametrize("kind", [PODCLIQUE, PODCLIQUESCALINGGROUP], ids=lambda k: k.kind)
async def test_scale_subresource_of_children(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient, kind: Kind
) -> None:
    """kubectl scale pclq|pcsg works; the scale selector comes from the kind's selector status field."""
    doc = maximal(kind.model)
    doc.update(apiVersion=kind.api_version, kind=kind.kind)
    doc["metadata"] = {"name": "scaled", "namespace": namespace}
    status = doc.pop("status")
    objects = client.CustomObjectsApi(api_client)
    await objects.create_namespaced_custom_object(kind.group, c.VERSION, namespace, kind.plural, doc)
    await objects.patch_namespaced_custom_object_status(
        kind.group,
        c.VERSION,
        namespace,
        kind.plural,
        "scaled",
        {"status": status},
        _content_type="application/merge-patch+json",
    )
    kubectl(kubeconfig, "scale", kind.short_names[0], "scaled", "--replicas=5", "-n", namespace)
    scale = await objects.get_namespaced_custom_object_scale(
        kind.group, c.VERSION, namespace, kind.plural, "scaled"
    )
    assert scale["spec"]["replicas"] == 5
    selector_field = "hpaPodSelector" if kind is PODCLIQUE else "selector"
    assert scale["status"]["selector"] == status[selector_field]


# Our admission webhooks refuse some maximal values (topology constraints while topology-aware scheduling
# is off, a scheduler binding to a backend that is not enabled). This test is about the schema, so the
# webhook configurations for the kind are set aside (and restored as they were) while it is created.
ADMISSION_CONFIGS = {
    c.KIND_PODCLIQUESET: [("mutating", DEFAULTING_CONFIG), ("validating", VALIDATING_CONFIG)],
    c.KIND_CLUSTERTOPOLOGYBINDING: [("validating", CLUSTERTOPOLOGY_CONFIG)],
}


@contextlib.asynccontextmanager
async def webhooks_set_aside(api_client: client.ApiClient, kind: Kind) -> AsyncIterator[None]:
    api = client.AdmissionregistrationV1Api(api_client)
    saved: list[tuple[str, dict[str, Any]]] = []
    for which, name in ADMISSION_CONFIGS.get(kind.kind, []):
        read = getattr(api, f"read_{which}_webhook_configuration")
        saved.append((which, api_client.sanitize_for_serialization(await read(name))))
        await getattr(api, f"delete_{which}_webhook_configuration")(name)
    try:
        yield
    finally:
        for which, body in saved:
            body["metadata"] = {k: body["metadata"][k] for k in ("name", "labels") if k in body["metadata"]}
            await getattr(api, f"create_{which}_webhook_configuration")(body)


async def until_admitted(create: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> None:
    """The apiserver notices a deleted webhook configuration a moment later: retry while it still calls it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await create()
            return
        except ApiException as err:
            if "admission webhook" not in (err.body or "") or loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
async def test_apiserver_keeps_every_model_field(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient, kind: Kind
) -> None:
    """A maximal object (every model field set) is stored without pruning anything, spec and status."""
    doc = maximal(kind.model)
    doc.update(apiVersion=kind.api_version, kind=kind.kind)
    name = f"maximal-{uuid.uuid4().hex[:6]}"
    doc["metadata"] = {"name": name} | ({"namespace": namespace} if kind.namespaced else {})
    status = doc.pop("status")
    objects = client.CustomObjectsApi(api_client)
    where = (kind.group, c.VERSION, namespace, kind.plural) if kind.namespaced else None
    if where:
        async with webhooks_set_aside(api_client, kind):
            await until_admitted(lambda: objects.create_namespaced_custom_object(*where, doc))
        # The running operator reconciles what we create (finalizer, status): write the status with a
        # fresh resourceVersion and judge the object the apiserver returns for exactly that write.
        while True:
            current = await objects.get_namespaced_custom_object(*where, name)
            try:
                stored = await objects.replace_namespaced_custom_object_status(
                    *where, name, {**current, "status": status}
                )
                break
            except ApiException as err:
                if err.status != 409:
                    raise
    else:
        args = (kind.group, c.VERSION, kind.plural)
        async with webhooks_set_aside(api_client, kind):
            await until_admitted(lambda: objects.create_cluster_custom_object(*args, doc))
        try:
            current = await objects.get_cluster_custom_object(*args, name)
            await objects.replace_cluster_custom_object_status(*args, name, {**current, "status": status})
            stored = await objects.get_cluster_custom_object(*args, name)
        finally:
            await objects.delete_cluster_custom_object(*args, name)
    assert contains(stored["spec"], doc["spec"]), json.dumps(stored["spec"], indent=1)
    assert contains(stored["status"], status), json.dumps(stored["status"], indent=1)
    assert kind.model.from_dict(stored).to_dict() == stored


async def test_deprecated_pack_domain_is_refused_on_create(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    doc = in_namespace(runnable_samples()["single-node-aggregated"], namespace)
    doc["spec"]["template"]["topologyConstraint"] = {"packDomain": "rack"}
    with pytest.raises(ApiException) as err:
        await client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, doc
        )
    assert err.value.status == 422
    assert "packDomain is deprecated and cannot be used on new workloads; use pack.required" in err.value.body


async def test_topology_constraint_needs_pack(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    doc = in_namespace(runnable_samples()["single-node-aggregated"], namespace)
    doc["spec"]["template"]["topologyConstraint"] = {"topologyName": "t"}
    with pytest.raises(ApiException) as err:
        await client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, doc
        )
    assert "topologyConstraint must specify pack or deprecated packDomain" in err.value.body

"""The reconciler on the local cluster: tutorial examples, scaling commands, cascade delete, no-op re-apply.

Pods run on KWOK nodes through the real kube-scheduler; every wait is on a condition."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from grove_api import constants as c
from grove_api import naming
from grove_api.podgang import PHASE_RUNNING
from tests.kube import kubectl
from tests.samples import TUTORIAL_PODS, runnable_samples
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("gang_invariant")

SAMPLES = runnable_samples()
POD = re.compile(r"^(?P<clique>.+)-[a-z0-9]{5}$")
GROVE_KINDS = [
    (c.GROUP, c.PLURAL_PODCLIQUE),
    (c.GROUP, c.PLURAL_PODCLIQUESCALINGGROUP),
    (c.SCHEDULER_GROUP, c.PLURAL_PODGANG),
]


@pytest.fixture
def kubeconfig(cluster: Any) -> Path:
    return Path(cluster.kubeconfig)


def apply_sample(kubeconfig: Path, name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLES[name])
    doc["metadata"]["namespace"] = namespace
    doc["spec"].update(spec)
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))
    return doc


def events_of(kubeconfig: Path, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The Events in `namespace` that the field selector picks (what `kubectl describe` shows)."""
    out = kubectl(kubeconfig, "get", "events", "-n", namespace, "--field-selector", selector, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


async def pods(api: client.ApiClient, namespace: str, pcs: str) -> list[Any]:
    listed = await client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"{c.LABEL_PART_OF}={pcs}"
    )
    return [p for p in listed.items if p.metadata.deletion_timestamp is None]


def by_clique(items: list[Any]) -> Counter[str]:
    return Counter(POD.match(p.metadata.name).group("clique") for p in items)  # type: ignore[union-attr]


def running(items: list[Any]) -> bool:
    return all(p.status.phase == "Running" for p in items)


async def wait_pods(api: client.ApiClient, namespace: str, pcs: str, expected: dict[str, int]) -> list[Any]:
    async def check() -> list[Any] | None:
        items = await pods(api, namespace, pcs)
        return items if by_clique(items) == Counter(expected) and running(items) else None

    return await until(f"pods of {pcs} to be {expected} and Running", check, timeout=90)


@pytest.mark.parametrize(("sample", "expected"), TUTORIAL_PODS.items())
async def test_tutorial_example_runs(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient, sample: str, expected: dict[str, int]
) -> None:
    pcs = SAMPLES[sample]["metadata"]["name"]
    apply_sample(kubeconfig, sample, namespace)
    items = await wait_pods(api_client, namespace, pcs, expected)
    for pod in items:
        labels = pod.metadata.labels
        assert labels[c.LABEL_PART_OF] == pcs
        assert pod.spec.hostname == f"{labels[c.LABEL_PODCLIQUE]}-{labels[c.LABEL_POD_INDEX]}"
        assert pod.spec.node_name.startswith("fake-node-")
    gangs = json.loads(
        kubectl(kubeconfig, "get", "pg", "-l", f"{c.LABEL_PART_OF}={pcs}", "-n", namespace, "-o", "json")
    )["items"]
    referenced = [
        r["name"] for g in gangs for group in g["spec"]["podgroups"] for r in group["podReferences"]
    ]
    assert sorted(referenced) == sorted(p.metadata.name for p in items), "every pod is in exactly one PodGang"
    events = events_of(kubeconfig, namespace, f"involvedObject.name={pcs}")
    assert any(e["reason"] == "SuccessfulCreate" and "Pod" in e["message"] for e in events), (
        "kubectl describe shows what was done"
    )


async def test_tutorial_scaling_commands(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    apply_sample(kubeconfig, "multi-node-aggregated", namespace)
    base = {
        "multinode-aggregated-0-model-instance-0-leader": 1,
        "multinode-aggregated-0-model-instance-0-worker": 3,
    }
    base |= {
        k.replace("-0-leader", "-1-leader").replace("-0-worker", "-1-worker"): v for k, v in base.items()
    }
    await wait_pods(api_client, namespace, "multinode-aggregated", base)
    kubectl(
        kubeconfig, "scale", "pcsg", "multinode-aggregated-0-model-instance", "--replicas=3", "-n", namespace
    )
    grown = base | {
        "multinode-aggregated-0-model-instance-2-leader": 1,
        "multinode-aggregated-0-model-instance-2-worker": 3,
    }
    await wait_pods(api_client, namespace, "multinode-aggregated", grown)
    kubectl(
        kubeconfig,
        "scale",
        "pclq",
        "multinode-aggregated-0-model-instance-0-worker",
        "--replicas=4",
        "-n",
        namespace,
    )
    await wait_pods(
        api_client,
        namespace,
        "multinode-aggregated",
        grown | {"multinode-aggregated-0-model-instance-0-worker": 4},
    )
    kubectl(
        kubeconfig,
        "scale",
        "pclq",
        "multinode-aggregated-0-model-instance-0-worker",
        "--replicas=2",
        "-n",
        namespace,
    )
    kubectl(
        kubeconfig, "scale", "pcsg", "multinode-aggregated-0-model-instance", "--replicas=1", "-n", namespace
    )
    await wait_pods(
        api_client,
        namespace,
        "multinode-aggregated",
        {
            "multinode-aggregated-0-model-instance-0-leader": 1,
            "multinode-aggregated-0-model-instance-0-worker": 2,
        },
    )
    kubectl(
        kubeconfig,
        "scale",
        "pclq",
        "multinode-aggregated-0-model-instance-0-worker",
        "--replicas=4",
        "-n",
        namespace,
    )
    items = await wait_pods(
        api_client,
        namespace,
        "multinode-aggregated",
        {
            "multinode-aggregated-0-model-instance-0-leader": 1,
            "multinode-aggregated-0-model-instance-0-worker": 4,
        },
    )
    workers = [p for p in items if p.metadata.labels[c.LABEL_PODCLIQUE].endswith("-worker")]
    assert sorted(int(p.metadata.labels[c.LABEL_POD_INDEX]) for p in workers) == [0, 1, 2, 3]
    kubectl(kubeconfig, "scale", "pcs", "multinode-aggregated", "--replicas=2", "-n", namespace)
    await until(
        "PodCliqueSet replica 1",
        lambda: _count(api_client, namespace, "multinode-aggregated", "multinode-aggregated-1-", 8),
        timeout=90,
    )


async def _count(api: client.ApiClient, namespace: str, pcs: str, prefix: str, n: int) -> bool:
    items = await pods(api, namespace, pcs)
    return len([p for p in items if p.metadata.name.startswith(prefix) and p.status.phase == "Running"]) == n


async def _leftovers(api: client.ApiClient, namespace: str, pcs: str) -> list[str]:
    selector = f"{c.LABEL_PART_OF}={pcs}"
    core = client.CoreV1Api(api)
    found = [
        f"pod/{p.metadata.name}"
        for p in (await core.list_namespaced_pod(namespace, label_selector=selector)).items
    ]
    found += [
        f"svc/{s.metadata.name}"
        for s in (await core.list_namespaced_service(namespace, label_selector=selector)).items
    ]
    found += [
        f"sa/{s.metadata.name}"
        for s in (await core.list_namespaced_service_account(namespace, label_selector=selector)).items
    ]
    found += [
        f"secret/{s.metadata.name}"
        for s in (await core.list_namespaced_secret(namespace, label_selector=selector)).items
    ]
    rbac = client.RbacAuthorizationV1Api(api)
    found += [
        f"role/{r.metadata.name}"
        for r in (await rbac.list_namespaced_role(namespace, label_selector=selector)).items
    ]
    found += [
        f"rolebinding/{r.metadata.name}"
        for r in (await rbac.list_namespaced_role_binding(namespace, label_selector=selector)).items
    ]
    objects = client.CustomObjectsApi(api)
    for group, plural in [*GROVE_KINDS, (c.GROUP, c.PLURAL_PODCLIQUESET)]:
        listed = await objects.list_namespaced_custom_object(group, c.VERSION, namespace, plural)
        found += [f"{plural}/{o['metadata']['name']}" for o in listed["items"]]
    return found


async def test_delete_leaves_nothing(kubeconfig: Path, namespace: str, api_client: client.ApiClient) -> None:
    apply_sample(kubeconfig, "dist-train", namespace)
    await until(
        "dist-train pods", lambda: _count(api_client, namespace, "dist-train", "dist-train-", 22), timeout=90
    )
    assert len(await _leftovers(api_client, namespace, "dist-train")) > 22
    kubectl(kubeconfig, "delete", "pcs", "dist-train", "-n", namespace, "--wait=false")

    async def gone() -> bool:
        return not await _leftovers(api_client, namespace, "dist-train")

    await until("every object of dist-train to be deleted", gone, timeout=90)


async def _resource_versions(api: client.ApiClient, namespace: str) -> dict[str, str]:
    objects = client.CustomObjectsApi(api)
    out = {}
    for group, plural in [*GROVE_KINDS, (c.GROUP, c.PLURAL_PODCLIQUESET)]:
        listed = await objects.list_namespaced_custom_object(group, c.VERSION, namespace, plural)
        out |= {
            f"{plural}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in listed["items"]
        }
    listed_pods = await client.CoreV1Api(api).list_namespaced_pod(namespace)
    out |= {f"pod/{p.metadata.name}": p.metadata.resource_version for p in listed_pods.items}
    return out


async def test_reapplying_the_same_manifest_writes_nothing(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    apply_sample(kubeconfig, "single-node-disaggregated", namespace)
    await wait_pods(
        api_client,
        namespace,
        "single-node-disaggregated",
        {"single-node-disaggregated-0-prefill": 3, "single-node-disaggregated-0-decode": 2},
    )

    async def settled() -> dict[str, str] | None:
        first = await _resource_versions(api_client, namespace)
        pcs = json.loads(
            kubectl(kubeconfig, "get", "pcs", "single-node-disaggregated", "-n", namespace, "-o", "json")
        )
        status = pcs.get("status", {})
        gangs = await client.CustomObjectsApi(api_client).list_namespaced_custom_object(
            c.SCHEDULER_GROUP, c.VERSION, namespace, c.PLURAL_PODGANG
        )
        # The gang admitter puts a gang admitted on create on record once its pods run, on its own paced
        # loop: at rest means that write is in too (its phase Running), not only the PodCliqueSet's status.
        done = (
            status.get("availableReplicas") == 1
            and status.get("observedGeneration") == pcs["metadata"]["generation"]
            and bool(gangs["items"])
            and all(g.get("status", {}).get("phase") == PHASE_RUNNING for g in gangs["items"])
        )
        return first if done and first == await _resource_versions(api_client, namespace) else None

    before = await until("the PodCliqueSet to settle", settled, timeout=60, interval=1.0)
    apply_sample(
        kubeconfig, "single-node-disaggregated", namespace
    )  # unchanged manifest: kubectl sends nothing
    # Make the operator reconcile it again without a spec change (Grove's trigger annotation).
    kubectl(
        kubeconfig,
        "annotate",
        "pcs",
        "single-node-disaggregated",
        f"{c.ANNOTATION_RECONCILE_TRIGGER}=1",
        "-n",
        namespace,
    )
    after = await until("a quiet period after the reconcile", settled, timeout=60, interval=1.0)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"podcliquesets/single-node-disaggregated"}, changed


async def test_last_errors_say_why_it_does_not_converge_and_clear_once_it_does(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    """A ResourceQuota lets 2 of the sample's 5 pods in: the apiserver refuses the others, and
    `status.lastErrors` says so; once the quota goes the PodCliqueSet converges and the errors clear."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "two-pods", "namespace": namespace},
        "spec": {"hard": {"pods": "2"}},
    }
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(quota))
    apply_sample(kubeconfig, "single-node-disaggregated", namespace)

    def last_errors() -> list[dict[str, str]]:
        pcs = json.loads(
            kubectl(kubeconfig, "get", "pcs", "single-node-disaggregated", "-n", namespace, "-o", "json")
        )
        return list(pcs.get("status", {}).get("lastErrors") or [])

    async def refused() -> list[dict[str, str]] | None:
        errors = last_errors()
        return (
            errors
            if any(e["code"] == "ERR_SYNC_POD" and "quota" in e["description"] for e in errors)
            else None
        )

    errors = await until("lastErrors to name the refused pods", refused, timeout=60)
    assert all(e["observedAt"] for e in errors)
    kubectl(kubeconfig, "delete", "resourcequota", "two-pods", "-n", namespace)
    await wait_pods(
        api_client,
        namespace,
        "single-node-disaggregated",
        {"single-node-disaggregated-0-prefill": 3, "single-node-disaggregated-0-decode": 2},
    )

    async def cleared() -> bool:
        return not last_errors()

    await until("lastErrors to clear", cleared, timeout=60)


async def test_a_name_taken_by_someone_elses_object_is_reported_and_left_alone(
    kubeconfig: Path, namespace: str
) -> None:
    """An app's ServiceAccount named like the PodCliqueSet: the webhook warns on create; the operator never
    adopts it (no labels or owner added), binds it or mints it a token, and says so (condition NameConflict,
    a NameConflict Event, lastErrors); once it is removed the operator makes its own, and the condition
    clears."""
    name = "single-node-disaggregated"
    kubectl(kubeconfig, "create", "serviceaccount", name, "-n", namespace)
    doc = copy.deepcopy(SAMPLES[name])
    doc["metadata"]["namespace"] = namespace
    applied = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
        input=yaml.safe_dump(doc),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert (
        f"Warning: ServiceAccount {namespace}/{name} exists and is not this PodCliqueSet's" in applied.stderr
    )

    def get(*what: str) -> dict[str, Any] | None:
        out = kubectl(kubeconfig, "get", *what, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def conflict() -> dict[str, Any] | None:
        pcs = get("pcs", name) or {}
        return next(
            (x for x in pcs.get("status", {}).get("conditions") or [] if x["type"] == "NameConflict"), None
        )

    async def reported() -> dict[str, Any] | None:
        found = conflict()
        return found if found is not None and found["status"] == "True" else None

    condition = await until("condition NameConflict", reported, timeout=60)
    assert condition["reason"] == "ChildNameTaken"
    assert f"ServiceAccount {namespace}/{name} exists and is not this PodCliqueSet's" in condition["message"]
    errors = (get("pcs", name) or {}).get("status", {}).get("lastErrors") or []
    assert any(e["code"] == "ERR_NAME_CONFLICT_SERVICEACCOUNT" for e in errors), errors
    events = events_of(kubeconfig, namespace, f"reason=NameConflict,involvedObject.name={name}")
    assert events and events[0]["type"] == "Warning"
    theirs = get("serviceaccount", name) or {}
    assert not theirs["metadata"].get("ownerReferences") and not theirs["metadata"].get("labels")
    assert get("rolebinding", naming.role(name)) is None
    assert get("secret", naming.initc_token_secret(name)) is None

    kubectl(kubeconfig, "delete", "serviceaccount", name, "-n", namespace)

    async def ours() -> bool:
        sa = get("serviceaccount", name)
        found = conflict()
        return bool(
            sa is not None
            and sa["metadata"].get("ownerReferences")
            and get("rolebinding", naming.role(name)) is not None
            and get("secret", naming.initc_token_secret(name)) is not None
            and found is not None
            and found["status"] == "False"
        )

    await until(
        "the operator's own ServiceAccount, RoleBinding and token, and the condition cleared",
        ours,
        timeout=90,
    )

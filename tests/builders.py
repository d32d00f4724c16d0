"""Small builders for PodCliqueSet documents in tests (plain dicts, as the apiserver sends them).

Defaults mirror Grove's webhook test builders: a PodCliqueSet with replicas 1, terminationDelay 4h,
startup type AnyOrder, and cliques with replicas 1 / minAvailable 1 / roleName dummy-<name>-role.
"""

from __future__ import annotations

import copy
from typing import Any

TOLERATION = {"key": "fake-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def pod_spec(**extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": "nginx:latest", "resources": {"requests": {"cpu": "10m"}}}],
        "tolerations": [TOLERATION],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
    }
    spec.update(extra)
    return spec


def clique(
    name: str,
    *,
    replicas: int | None = 1,
    min_available: int | None = 1,
    role: str | None = None,
    starts_after: list[str] | None = None,
    pod: dict[str, Any] | None = None,
    autoscaling: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"roleName": role if role is not None else f"dummy-{name}-role"}
    if replicas is not None:
        spec["replicas"] = replicas
    if min_available is not None:
        spec["minAvailable"] = min_available
    if starts_after is not None:
        spec["startsAfter"] = starts_after
    if autoscaling is not None:
        spec["autoScalingConfig"] = autoscaling
    spec["podSpec"] = pod if pod is not None else pod_spec()
    return {"name": name, **extra, "spec": spec}


def group(
    name: str, cliques: list[str], *, replicas: int | None = 1, min_available: int | None = 1, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "cliqueNames": cliques}
    if replicas is not None:
        out["replicas"] = replicas
    if min_available is not None:
        out["minAvailable"] = min_available
    out.update(extra)
    return out


def pcs(
    name: str = "pcs",
    *,
    cliques: list[dict[str, Any]] | None = None,
    groups: list[dict[str, Any]] | None = None,
    startup: str | None = "CliqueStartupTypeAnyOrder",
    replicas: int = 1,
    termination_delay: str | None = "4h",
    namespace: str = "default",
    metadata: dict[str, Any] | None = None,
    **template: Any,
) -> dict[str, Any]:
    tmpl: dict[str, Any] = {}
    if startup is not None:
        tmpl["cliqueStartupType"] = startup
    tmpl["cliques"] = cliques if cliques is not None else [clique("a")]
    if groups is not None:
        tmpl["podCliqueScalingGroups"] = groups
    if termination_delay is not None:
        tmpl["terminationDelay"] = termination_delay
    tmpl.update(template)
    return {
        "apiVersion": "grove.io/v1alpha1",
        "kind": "PodCliqueSet",
        "metadata": {"name": name, "namespace": namespace, **(metadata or {})},
        "spec": {"replicas": replicas, "template": tmpl},
    }


def many_small_pods(name: str, namespace: str, replicas: int, pods_per_replica: int) -> dict[str, Any]:
    """A PodCliqueSet of `replicas` replicas of one clique `w` of `pods_per_replica` pods that request 1m
    of cpu each: many pods that fit on any node, for tests that count pods while the operator is in
    trouble."""
    doc = pcs(
        name,
        namespace=namespace,
        replicas=replicas,
        cliques=[clique("w", replicas=pods_per_replica, min_available=None)],
    )
    doc["spec"]["template"]["cliques"][0]["spec"]["podSpec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "1m"}
    }
    return doc


def edit(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `doc` with the value at a dotted path ('spec.template.cliques.0.spec.replicas') replaced;
    value DELETE removes the key."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return out


DELETE = object()


def admission_review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    uid: str = "1",
    username: str = "alice",
    groups: tuple[str, ...] = ("system:authenticated",),
) -> dict[str, Any]:
    """An AdmissionReview v1 request as the apiserver sends it (kind, resource, name and namespace from the
    object, as far as it has them: fuzzed objects may have them of any type)."""
    subject = obj if obj is not None else old or {}

    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    kind = text(subject.get("kind"))
    group, _, version = text(subject.get("apiVersion")).rpartition("/")
    meta = subject.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": f"{kind.lower()}s"},
            "name": text(meta.get("name")),
            "namespace": text(meta.get("namespace")),
            "operation": operation,
            "userInfo": {"username": username, "groups": list(groups)},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
        },
    }

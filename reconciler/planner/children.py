"""The desired PodCliques and scaling groups of a PodCliqueSet, and the metadata every child shares.

Names and labels are Grove's (docs/api.md, "Names" and "Labels and annotations"). Each function returns
full objects; the planner compares them with what exists and writes only differences. `spec.replicas` of a
PodClique or scaling group comes from the template only when the object is created: afterwards
`kubectl scale` and HPAs own it. The other kinds of child have planner modules of their own (`services.py`,
`rbac.py`, `hpas.py`, `gangs.py`, `pods.py`); `registry.py` lists every kind.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from grove_api import constants as c
from grove_api import naming
from grove_api.hashing import pod_template_hash

from .snapshot import Obj, Snapshot, uid_of


def default_labels(pcs: str) -> dict[str, str]:
    return {c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE, c.LABEL_PART_OF: pcs}


def owner_ref(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"].get("uid", ""),  # "" for an owner created in the same pass
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_meta(
    snap: Snapshot, name: str, labels: dict[str, str], owner: Obj, annotations: dict[str, str] | None = None
) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": snap.namespace,
        "labels": labels,
        "ownerReferences": [owner_ref(owner)],
    }
    if annotations:
        meta["annotations"] = annotations
    return meta


def cliques_by_name(snap: Snapshot) -> dict[str, Obj]:
    return {str(q["name"]): q for q in snap.template.get("cliques") or []}


def group_configs(snap: Snapshot) -> list[Obj]:
    return list(snap.template.get("podCliqueScalingGroups") or [])


def group_of_clique(snap: Snapshot) -> dict[str, Obj]:
    return {name: g for g in group_configs(snap) for name in g.get("cliqueNames") or []}


def standalone_cliques(snap: Snapshot) -> list[Obj]:
    grouped = group_of_clique(snap)
    return [q for q in snap.template.get("cliques") or [] if q["name"] not in grouped]


def template_hash(snap: Snapshot, clique: Obj) -> str:
    """The clique's pod-template hash (computed once per snapshot)."""
    found = snap.template_hashes.get(str(clique.get("name")))
    return found if found is not None else pod_template_hash(clique, snap.template.get("priorityClassName"))


def _dependency_names(snap: Snapshot, clique_name: str, replica: int) -> list[str]:
    """The PodCliques a clique stands for as a parent in replica `replica`: those of it in the base gang
    (docs/startup-ordering.md, "Which PodClique waits for which")."""
    group = group_of_clique(snap).get(clique_name)
    if group is None:
        return [naming.standalone_podclique(snap.name, replica, clique_name)]
    return [
        naming.scaling_group_podclique(snap.name, replica, group["name"], k, clique_name)
        for k in range(int(group.get("minAvailable") or 1))
    ]


def starts_after(
    snap: Snapshot, clique: Obj, replica: int, group: Obj | None = None, group_replica: int = 0
) -> list[str]:
    """The PodClique's startsAfter as FQNs, from cliqueStartupType (docs/startup-ordering.md, "Which
    PodClique waits for which")."""
    startup = snap.template.get("cliqueStartupType") or c.STARTUP_ANY_ORDER
    cliques = [q["name"] for q in snap.template.get("cliques") or []]
    name = clique["name"]
    scaled = group is not None and group_replica >= int(group.get("minAvailable") or 1)
    if startup == c.STARTUP_IN_ORDER:
        position = cliques.index(name)
        if position == 0:
            return []
        previous = cliques[position - 1]
        if not scaled:
            return _dependency_names(snap, previous, replica)
        assert group is not None
        if previous in (group.get("cliqueNames") or []):
            return [
                naming.scaling_group_podclique(snap.name, replica, group["name"], group_replica, previous)
            ]
        return []
    if startup == c.STARTUP_EXPLICIT:
        deps = clique.get("spec", {}).get("startsAfter") or []
        if not scaled:
            return [fqn for d in deps for fqn in _dependency_names(snap, d, replica)]
        assert group is not None
        return [
            naming.scaling_group_podclique(snap.name, replica, group["name"], group_replica, d)
            for d in deps
            if d in (group.get("cliqueNames") or [])
        ]
    return []


def _clique_spec(clique: Obj, existing: Obj | None, deps: list[str]) -> Obj:
    # A shallow copy: the nested template is shared, never modified (podSpec is replaced, not edited).
    spec: Obj = dict(clique.get("spec", {}))
    if existing is not None and existing.get("spec", {}).get("replicas") is not None:
        spec["replicas"] = existing["spec"]["replicas"]
    if deps:
        spec["startsAfter"] = deps
    else:
        spec.pop("startsAfter", None)
    return spec


def _clique_annotations(snap: Snapshot, clique: Obj, deps: list[str]) -> dict[str, str]:
    """The template clique's annotations, and the startup dependencies with each parent's minAvailable
    (the pod webhook builds grove-initc's flags from them)."""
    annotations = dict(clique.get("annotations") or {})
    annotations.pop(c.ANNOTATION_TOPOLOGY_NAME, None)
    annotations.pop(c.ANNOTATION_STARTUP_DEPENDENCIES, None)
    if deps:
        annotations[c.ANNOTATION_STARTUP_DEPENDENCIES] = ",".join(
            f"{fqn}:{_parent_min_available(snap, fqn)}" for fqn in deps
        )
    return annotations


def template_clique_of(snap: Snapshot, fqn: str) -> Obj | None:
    """The template clique a PodClique name was made from: the clique whose name is the longest suffix
    of the name (Grove's name-suffix match)."""
    matches = [q for q in snap.template.get("cliques") or [] if fqn.endswith(f"-{q['name']}")]
    return max(matches, key=lambda q: len(q["name"])) if matches else None


def _parent_min_available(snap: Snapshot, fqn: str) -> int:
    """minAvailable of the template clique a dependency FQN was made from."""
    spec = (template_clique_of(snap, fqn) or {}).get("spec") or {}
    return int(spec.get("minAvailable") or spec.get("replicas") or 1)


def standalone_podcliques(snap: Snapshot) -> list[Obj]:
    out = []
    for i in range(snap.replicas):
        for clique in standalone_cliques(snap):
            name = naming.standalone_podclique(snap.name, i, clique["name"])
            deps = starts_after(snap, clique, i)
            labels = {
                **(clique.get("labels") or {}),
                **default_labels(snap.name),
                c.LABEL_NAME: name,
                c.LABEL_COMPONENT: c.COMPONENT_PCS_PODCLIQUE,
                c.LABEL_PCS_REPLICA_INDEX: str(i),
                c.LABEL_PODGANG: naming.base_podgang(snap.name, i),
                c.LABEL_POD_TEMPLATE_HASH: template_hash(snap, clique),
            }
            out.append(
                {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND_PODCLIQUE,
                    "metadata": child_meta(
                        snap, name, labels, snap.pcs, _clique_annotations(snap, clique, deps)
                    ),
                    "spec": _clique_spec(clique, snap.podcliques.get(name), deps),
                }
            )
    return out


def scaling_groups(snap: Snapshot) -> list[Obj]:
    out = []
    for i in range(snap.replicas):
        for group in group_configs(snap):
            name = naming.scaling_group(snap.name, i, group["name"])
            existing = snap.scaling_groups.get(name)
            replicas = existing["spec"].get("replicas") if existing else None
            labels = {
                **default_labels(snap.name),
                c.LABEL_NAME: name,
                c.LABEL_COMPONENT: c.COMPONENT_PCSG,
                c.LABEL_PCS_REPLICA_INDEX: str(i),
            }
            out.append(
                {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND_PODCLIQUESCALINGGROUP,
                    "metadata": child_meta(
                        snap, name, labels, snap.pcs, dict(group.get("annotations") or {})
                    ),
                    "spec": {
                        "replicas": replicas if replicas is not None else int(group.get("replicas") or 1),
                        "minAvailable": int(group.get("minAvailable") or 1),
                        "cliqueNames": list(group.get("cliqueNames") or []),
                    },
                }
            )
    return out


def _downward(name: str, label: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{label}']"}}}


def _with_env(pod_spec: Obj, env: list[Obj]) -> Obj:
    """Grove's env vars first (so $(VAR) in user values can use them); same-named template vars dropped."""
    names = {e["name"] for e in env}
    spec = copy.deepcopy(pod_spec)
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            container["env"] = env + [e for e in container.get("env") or [] if e.get("name") not in names]
    return spec


def group_member_podcliques(snap: Snapshot) -> list[Obj]:
    """Member PodCliques of every scaling group that exists (they are owned by it, so it must exist)."""
    cliques = cliques_by_name(snap)
    out = []
    for i in range(snap.replicas):
        for group in group_configs(snap):
            pcsg_name = naming.scaling_group(snap.name, i, group["name"])
            pcsg = snap.scaling_groups.get(pcsg_name)
            if pcsg is None or not uid_of(pcsg):
                continue
            members = [cliques[n] for n in group.get("cliqueNames") or [] if n in cliques]
            min_available = int(group.get("minAvailable") or 1)
            num_pods = sum(int(q.get("spec", {}).get("replicas") or 1) for q in members)
            env = [
                _downward(c.ENV_PCSG_NAME, c.LABEL_PCSG),
                {"name": c.ENV_PCSG_TEMPLATE_NUM_PODS, "value": str(num_pods)},
                _downward(c.ENV_PCSG_INDEX, c.LABEL_PCSG_REPLICA_INDEX),
            ]
            for j in range(int(pcsg["spec"].get("replicas") or 0)):
                scaled = j >= min_available
                gang = (
                    naming.scaled_podgang(snap.name, i, group["name"], j, min_available)
                    if scaled
                    else naming.base_podgang(snap.name, i)
                )
                for clique in members:
                    name = naming.scaling_group_podclique(snap.name, i, group["name"], j, clique["name"])
                    labels = {
                        **(clique.get("labels") or {}),
                        **default_labels(snap.name),
                        c.LABEL_NAME: name,
                        c.LABEL_COMPONENT: c.COMPONENT_PCSG_PODCLIQUE,
                        c.LABEL_PCSG: pcsg_name,
                        c.LABEL_PODGANG: gang,
                        c.LABEL_PCS_REPLICA_INDEX: str(i),
                        c.LABEL_PCSG_REPLICA_INDEX: str(j),
                        c.LABEL_POD_TEMPLATE_HASH: template_hash(snap, clique),
                    }
                    if scaled:
                        labels[c.LABEL_BASE_PODGANG] = naming.base_podgang(snap.name, i)
                    deps = starts_after(snap, clique, i, group, j)
                    spec = _clique_spec(clique, snap.podcliques.get(name), deps)
                    spec["podSpec"] = _with_env(spec.get("podSpec") or {}, env)
                    out.append(
                        {
                            "apiVersion": c.API_VERSION,
                            "kind": c.KIND_PODCLIQUE,
                            "metadata": child_meta(
                                snap, name, labels, pcsg, _clique_annotations(snap, clique, deps)
                            ),
                            "spec": spec,
                        }
                    )
    return out

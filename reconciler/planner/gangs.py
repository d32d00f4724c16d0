"""PodGangs of a PodCliqueSet (reference §2): which PodCliques form each gang and which pods it holds.

Base gang `<pcs>-<i>`: every standalone clique of replica i, then each scaling group's replicas below its
minAvailable. Each scaling-group replica at or beyond minAvailable is a scaled gang of its own.
"""

from __future__ import annotations

from grove_api import constants as c
from grove_api import naming

from .children import default_labels, group_configs, owner_ref, standalone_cliques
from .pods import is_active
from .snapshot import Obj, Snapshot, labels_of, name_of


def _podgroup(snap: Snapshot, pclq_name: str, min_replicas: int, gang: str) -> Obj:
    pclq = snap.podcliques.get(pclq_name)
    pods = snap.pods_of(pclq) if pclq else []
    refs = sorted(name_of(p) for p in pods if is_active(p) and labels_of(p).get(c.LABEL_PODGANG) == gang)
    return {
        "name": pclq_name,
        "podReferences": [{"namespace": snap.namespace, "name": n} for n in refs],
        "minReplicas": min_replicas,
    }


def _clique_min(snap: Snapshot, clique_name: str) -> int:
    for q in snap.template.get("cliques") or []:
        if q["name"] == clique_name:
            spec = q.get("spec", {})
            return int(spec.get("minAvailable") or spec.get("replicas") or 1)
    return 1


def podgangs(snap: Snapshot) -> list[Obj]:
    gangs: dict[str, list[Obj]] = {}
    for i in range(snap.replicas):
        base = naming.base_podgang(snap.name, i)
        groups = gangs.setdefault(base, [])
        for clique in standalone_cliques(snap):
            name = naming.standalone_podclique(snap.name, i, clique["name"])
            groups.append(_podgroup(snap, name, _clique_min(snap, clique["name"]), base))
        for group in group_configs(snap):
            min_available = int(group.get("minAvailable") or 1)
            pcsg = snap.scaling_groups.get(naming.scaling_group(snap.name, i, group["name"]))
            replicas = int(pcsg["spec"].get("replicas") or 0) if pcsg else int(group.get("replicas") or 1)
            for k in range(replicas):
                gang = (
                    base
                    if k < min_available
                    else naming.scaled_podgang(snap.name, i, group["name"], k, min_available)
                )
                for clique_name in group.get("cliqueNames") or []:
                    member = naming.scaling_group_podclique(snap.name, i, group["name"], k, clique_name)
                    gangs.setdefault(gang, []).append(
                        _podgroup(snap, member, _clique_min(snap, clique_name), gang)
                    )
    out = []
    for name, podgroups in gangs.items():
        labels = {**default_labels(snap.name), c.LABEL_NAME: name, c.LABEL_COMPONENT: c.COMPONENT_PODGANG}
        labels[c.LABEL_SCHEDULER_NAME] = c.SCHEDULER_DEFAULT
        spec: Obj = {"podgroups": podgroups}
        if snap.template.get("priorityClassName"):
            spec["priorityClassName"] = snap.template["priorityClassName"]
        out.append(
            {
                "apiVersion": c.SCHEDULER_API_VERSION,
                "kind": c.KIND_PODGANG,
                "metadata": {
                    "name": name,
                    "namespace": snap.namespace,
                    "labels": labels,
                    "ownerReferences": [owner_ref(snap.pcs)],
                },
                "spec": spec,
            }
        )
    return out


def all_pods_created(snap: Snapshot, gang: Obj) -> bool:
    """Every PodClique of the gang exists and has as many gang pods as replicas (§2.3 d)."""
    for group in gang["spec"]["podgroups"]:
        pclq = snap.podcliques.get(group["name"])
        if pclq is None:
            return False
        if len(group["podReferences"]) < int(pclq.get("spec", {}).get("replicas") or 0):
            return False
    return True

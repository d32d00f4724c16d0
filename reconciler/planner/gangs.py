"""PodGangs of a PodCliqueSet (docs/api.md, "PodGangs"): which PodCliques form each gang and which pods it
holds.

Base gang `<pcs>-<i>`: every standalone clique of replica i, then each scaling group's replicas below its
minAvailable. Each scaling-group replica at or beyond minAvailable is a scaled gang of its own.

Topology (docs/api.md, "PodGangs"; only when the snapshot has the binding's levels, see topology.py): a
base gang is packed by the PodCliqueSet's constraint and each of its scaling-group replicas by the group's
(one `topologyConstraintGroupConfigs` entry per replica); a scaled gang by its group's constraint, else the
PodCliqueSet's; every podgroup by its clique's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from grove_api import constants as c
from grove_api import naming
from grove_api.podstate import is_active

from . import topology
from .children import default_labels, group_configs, owner_ref, standalone_cliques
from .snapshot import Obj, Snapshot, labels_of, name_of

Planned = Mapping[str, Sequence[str]]  # PodClique -> names of the pods this pass creates


@dataclass
class _Gang:
    podgroups: list[Obj] = field(default_factory=list)
    base: str | None = None  # a scaled gang's base gang
    pack: Obj | None = None  # spec.topologyConstraint
    group_packs: list[Obj] = field(default_factory=list)  # spec.topologyConstraintGroupConfigs

    @property
    def packed(self) -> bool:
        return bool(self.pack or self.group_packs or any("topologyConstraint" in g for g in self.podgroups))


def _podgroup(snap: Snapshot, pclq_name: str, clique: Obj, gang: str, planned: Planned) -> Obj:
    """The podgroup of PodClique `pclq_name`: its active pods of this gang, and the pods this pass creates
    (their names are ours, so the PodGang lists them at once). While the PodClique's own creates and deletes
    are not in the cache yet, the PodGang's current list is kept: a half-filled cache would shrink it."""
    current = _current_refs(snap, gang, pclq_name) if pclq_name in snap.pending else None
    if current is not None:
        refs = current
    else:
        pclq = snap.podcliques.get(pclq_name)
        pods = snap.pods_of(pclq) if pclq else []
        found = {name_of(p) for p in pods if is_active(p) and labels_of(p).get(c.LABEL_PODGANG) == gang}
        refs = sorted(found | set(planned.get(pclq_name, ())))
    spec = clique.get("spec", {})
    group: Obj = {
        "name": pclq_name,
        "podReferences": [{"namespace": snap.namespace, "name": n} for n in refs],
        "minReplicas": int(spec.get("minAvailable") or spec.get("replicas") or 1),
    }
    pack = topology.translate(clique.get("topologyConstraint"), snap.topology_levels)
    if pack:
        group["topologyConstraint"] = pack
    return group


def _current_refs(snap: Snapshot, gang: str, pclq_name: str) -> list[str] | None:
    podgang = snap.podgangs.get(gang)
    for group in (podgang or {}).get("spec", {}).get("podgroups") or []:
        if group.get("name") == pclq_name:
            return [str(r.get("name")) for r in group.get("podReferences") or []]
    return None


def _clique(snap: Snapshot, clique_name: str) -> Obj:
    found: Obj = next((q for q in snap.template.get("cliques") or [] if q["name"] == clique_name), {})
    return found


def _add_scaling_group(snap: Snapshot, gangs: dict[str, _Gang], i: int, group: Obj, planned: Planned) -> None:
    """The replicas of scaling group `group` of PodCliqueSet replica i: below minAvailable into the base
    gang, each packed by the group's constraint as a group config; the others each a scaled gang, packed by
    the group's constraint, else the PodCliqueSet's."""
    base = naming.base_podgang(snap.name, i)
    pack = topology.translate(group.get("topologyConstraint"), snap.topology_levels)
    min_available = int(group.get("minAvailable") or 1)
    pcsg_name = naming.scaling_group(snap.name, i, group["name"])
    pcsg = snap.scaling_groups.get(pcsg_name)
    replicas = int(pcsg["spec"].get("replicas") or 0) if pcsg else int(group.get("replicas") or 1)
    cliques = group.get("cliqueNames") or []
    for k in range(replicas):
        members = [naming.scaling_group_podclique(snap.name, i, group["name"], k, q) for q in cliques]
        if k < min_available:
            name, gang = base, gangs[base]
            if pack:
                gang.group_packs.append(
                    {"name": f"{pcsg_name}-{k}", "podGroupNames": members, "topologyConstraint": pack}
                )
        else:
            name = naming.scaled_podgang(snap.name, i, group["name"], k, min_available)
            gang = gangs.setdefault(name, _Gang(base=base, pack=pack or gangs[base].pack))
        gang.podgroups += [
            _podgroup(snap, m, _clique(snap, q), name, planned) for m, q in zip(members, cliques, strict=True)
        ]


def podgangs(snap: Snapshot, planned: Planned | None = None) -> list[Obj]:
    """Every PodGang the PodCliqueSet should have; `planned`: names of the pods this pass creates, by
    PodClique."""
    planned = planned or {}
    gangs: dict[str, _Gang] = {}
    pcs_pack = topology.translate(snap.template.get("topologyConstraint"), snap.topology_levels)
    for i in range(snap.replicas):
        base = naming.base_podgang(snap.name, i)
        gangs[base] = _Gang(pack=pcs_pack)
        for clique in standalone_cliques(snap):
            pclq = naming.standalone_podclique(snap.name, i, clique["name"])
            gangs[base].podgroups.append(_podgroup(snap, pclq, clique, base, planned))
        for group in group_configs(snap):
            _add_scaling_group(snap, gangs, i, group, planned)
    topology_name = topology.topology_name(snap.template)
    return [_podgang(snap, name, gang, topology_name) for name, gang in gangs.items()]


def _podgang(snap: Snapshot, name: str, gang: _Gang, topology_name: str) -> Obj:
    labels = {**default_labels(snap.name), c.LABEL_NAME: name, c.LABEL_COMPONENT: c.COMPONENT_PODGANG}
    if gang.base:  # ours (Grove puts it on the PodCliques only): the gang admitter orders by it
        labels[c.LABEL_BASE_PODGANG] = gang.base
    labels[c.LABEL_SCHEDULER_NAME] = c.SCHEDULER_DEFAULT
    metadata: Obj = {
        "name": name,
        "namespace": snap.namespace,
        "labels": labels,
        "ownerReferences": [owner_ref(snap.pcs)],
    }
    if gang.packed and topology_name:
        metadata["annotations"] = {c.ANNOTATION_TOPOLOGY_NAME: topology_name}
    spec: Obj = {"podgroups": gang.podgroups}
    if gang.pack:
        spec["topologyConstraint"] = gang.pack
    if gang.group_packs:
        spec["topologyConstraintGroupConfigs"] = gang.group_packs
    if snap.template.get("priorityClassName"):
        spec["priorityClassName"] = snap.template["priorityClassName"]
    return {"apiVersion": c.SCHEDULER_API_VERSION, "kind": c.KIND_PODGANG, "metadata": metadata, "spec": spec}

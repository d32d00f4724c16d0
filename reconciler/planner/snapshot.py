"""An immutable view of one PodCliqueSet and everything labelled as part of it, read from the caches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from grove_api.hashing import clique_template_hashes

Obj = dict[str, Any]
PodKey = tuple[str, str]  # (namespace, name)


class Room(Protocol):
    """Free capacity for replacement pods (the gang admitter's model). `fits` says whether all the new pods
    can be placed at once once the old pods (keys; None for a pod that replaces nothing) are gone, and
    when they can, claims that room for the rest of the pass."""

    def fits(self, pairs: Sequence[tuple[PodKey | None, Mapping[str, Any]]]) -> bool: ...


def name_of(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("uid", ""))


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def controller_uid(obj: Mapping[str, Any]) -> str:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid", ""))
    return ""


def by_name(objs: Sequence[Obj]) -> dict[str, Obj]:
    return {name_of(o): o for o in objs}


@dataclass(frozen=True)
class Snapshot:
    """The PodCliqueSet (defaulted) and its children as the caches hold them."""

    pcs: Obj
    now: datetime
    # The children by kind (the key of the kind's entry in registry.py), each kind's by name. A kind a
    # snapshot lacks has none. `existing(key)` reads one kind; the structural kinds have attributes.
    children: Mapping[str, Mapping[str, Obj]] = field(default_factory=dict)
    # PodCliques whose pod creations/deletions the caches have not shown yet: no pod decisions for them.
    pending: frozenset[str] = frozenset()
    # Topology-aware scheduling: domain -> node label key of the ClusterTopologyBinding the PodCliqueSet's
    # constraints name; None when TAS is disabled or the binding does not exist (no PodGang topology then).
    topology_levels: Mapping[str, str] | None = None
    # Gang admission is on (`gangAdmission.enabled`): the gang admitter gates gangs and owns the PodGangs'
    # status (grove_api.podgang), so the planner writes none of it, and a gang it has not admitted runs
    # nothing.
    gang_admission: bool = False
    # Room for the replacements of a rolling update; None (no gang admitter): replace without asking.
    room: Room | None = None
    # Different on every pass (the manager draws it): new pods' names are made from it.
    nonce: str = ""
    # PodCliques whose progress-only status write is held back, and the seconds left on each hold (0 or less:
    # run out; the manager remembers when each hold ends; see plan.STATUS_HOLD_SECONDS).
    status_holds: Mapping[str, float] = field(default_factory=dict)
    # Children whose name an object of someone else's has ("Kind name" -> what the last pass found): the
    # executor leaves those alone; the PodCliqueSet's NameConflict condition says so.
    conflicts: Mapping[str, str] = field(default_factory=dict)

    def existing(self, key: str) -> Mapping[str, Obj]:
        """The children of one kind (its registry key), by name."""
        return self.children.get(key, {})

    # The structural kinds, which every planner module reads (keys of their registry entries).
    @cached_property
    def podcliques(self) -> Mapping[str, Obj]:
        return self.existing("podcliques")

    @cached_property
    def scaling_groups(self) -> Mapping[str, Obj]:
        return self.existing("scaling_groups")

    @cached_property
    def podgangs(self) -> Mapping[str, Obj]:
        return self.existing("podgangs")

    @cached_property
    def pods(self) -> Sequence[Obj]:
        return list(self.existing("pods").values())

    @property
    def name(self) -> str:
        return name_of(self.pcs)

    @property
    def namespace(self) -> str:
        return str(self.pcs["metadata"].get("namespace", ""))

    @property
    def uid(self) -> str:
        return uid_of(self.pcs)

    @property
    def spec(self) -> Obj:
        spec: Obj = self.pcs.get("spec", {})
        return spec

    @property
    def template(self) -> Obj:
        template: Obj = self.spec.get("template", {})
        return template

    @property
    def replicas(self) -> int:
        return int(self.spec.get("replicas") or 0)

    @cached_property
    def template_hashes(self) -> dict[str, str]:
        """Pod-template hash of every clique of the template, by clique name."""
        return clique_template_hashes(self.pcs)

    @cached_property
    def owner_uids(self) -> frozenset[str]:
        """The PodCliqueSet and its scaling groups: the controllers of everything we manage for it."""
        groups = {uid_of(g) for g in self.scaling_groups.values() if controller_uid(g) == self.uid}
        return frozenset({self.uid} | groups)

    def controls(self, obj: Mapping[str, Any]) -> bool:
        """Whether `obj` is ours to change or delete (a same-named object someone else made is not)."""
        return controller_uid(obj) in self.owner_uids

    @cached_property
    def _pods_by_owner(self) -> dict[str, list[Obj]]:
        index: dict[str, list[Obj]] = {}
        for pod in self.pods:
            for ref in pod["metadata"].get("ownerReferences") or []:
                if ref.get("controller"):
                    index.setdefault(str(ref.get("uid")), []).append(pod)
        return index

    def pods_of(self, podclique: Mapping[str, Any]) -> list[Obj]:
        """Pods controlled by this PodClique (by ownerReference uid)."""
        return self._pods_by_owner.get(uid_of(podclique), [])

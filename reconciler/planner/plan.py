"""Snapshot in, actions out: the whole decision for one PodCliqueSet in one pure function."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from grove_api import constants as c
from grove_api import hashing

from . import children, gangs, status
from .actions import Action, Apply, Create, Delete, PatchStatus, Ref, RemoveFinalizer
from .pods import is_active, pod_actions, pod_ref
from .snapshot import Obj, Snapshot, is_deleting, labels_of, name_of, uid_of

# Fields a PodClique's or scaling group's owner sets only at creation (kubectl scale / HPAs own them later).
_OWNED_BY_SCALERS = ("replicas",)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None


def contains(existing: Any, desired: Any) -> bool:
    """Everything in `desired` is in `existing` (the apiserver may have added defaults)."""
    if isinstance(desired, dict):
        return isinstance(existing, dict) and all(
            k in existing and contains(existing[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(desired)
            and all(map(contains, existing, desired))
        )
    return bool(existing == desired)


def _for_apply(obj: Obj) -> Obj:
    """The intent we server-side apply to an existing object: without the fields scalers own."""
    if obj["kind"] in (c.KIND_PODCLIQUE, c.KIND_PODCLIQUESCALINGGROUP):
        obj = {**obj, "spec": {k: v for k, v in obj["spec"].items() if k not in _OWNED_BY_SCALERS}}
    return obj


def sync(snap: Snapshot, desired: Iterable[Obj], existing: Mapping[str, Obj]) -> list[Action]:
    """Create what is missing, apply what differs; nothing when everything matches (no write on re-apply).
    A same-named object that we do not control is left alone."""
    actions: list[Action] = []
    for obj in desired:
        current = existing.get(obj["metadata"]["name"])
        if current is None:
            actions.append(Create(obj))
        elif snap.controls(current) and not is_deleting(current) and not contains(current, _for_apply(obj)):
            actions.append(Apply(_for_apply(obj)))
    return actions


def prune(
    snap: Snapshot, desired: Iterable[Obj], existing: Mapping[str, Obj], api_version: str, kind: str
) -> list[Action]:
    """Delete children that are no longer wanted (scaled-in replicas, removed groups), if they are ours."""
    wanted = {o["metadata"]["name"] for o in desired}
    return [
        Delete(
            Ref(api_version, kind, str(o["metadata"].get("namespace", "")), name),
            uid_of(o),
            reason="no longer desired",
        )
        for name, o in existing.items()
        if name not in wanted and not is_deleting(o) and snap.controls(o)
    ]


def _pcs_ref(snap: Snapshot) -> Ref:
    return Ref(c.API_VERSION, c.KIND_PODCLIQUESET, snap.namespace, snap.name)


def teardown(snap: Snapshot) -> Plan:
    """The PodCliqueSet is being deleted: delete its pods and children ourselves, then let it go. (The
    garbage collector would get there too, through ownerReferences, but at its 20 requests/s and only after
    its discovery has caught up with our CRDs.)"""
    plan = Plan()
    plan.actions += [
        Delete(pod_ref(p), uid_of(p), reason="PodCliqueSet deleted") for p in snap.pods if not is_deleting(p)
    ]
    children_by_kind = (
        (c.API_VERSION, c.KIND_PODCLIQUE, snap.podcliques),
        (c.API_VERSION, c.KIND_PODCLIQUESCALINGGROUP, snap.scaling_groups),
        (c.SCHEDULER_API_VERSION, c.KIND_PODGANG, snap.podgangs),
        ("v1", "Service", snap.services),
        ("v1", "ServiceAccount", snap.service_accounts),
        ("v1", "Secret", snap.secrets),
        (children.RBAC_V1, "Role", snap.roles),
        (children.RBAC_V1, "RoleBinding", snap.role_bindings),
        ("autoscaling/v2", "HorizontalPodAutoscaler", snap.hpas),
    )
    for api_version, kind, objs in children_by_kind:
        plan.actions += [
            Delete(Ref(api_version, kind, snap.namespace, name), uid_of(o), reason="PodCliqueSet deleted")
            for name, o in objs.items()
            if not is_deleting(o) and snap.controls(o)
        ]
    if c.FINALIZER_PODCLIQUESET in (snap.pcs["metadata"].get("finalizers") or []):
        plan.actions.append(
            RemoveFinalizer(
                _pcs_ref(snap), c.FINALIZER_PODCLIQUESET, str(snap.pcs["metadata"].get("resourceVersion", ""))
            )
        )
    return plan


def plan(snap: Snapshot) -> Plan:
    if is_deleting(snap.pcs):
        return teardown(snap)
    result = Plan()
    actions = result.actions
    if c.FINALIZER_PODCLIQUESET not in (snap.pcs["metadata"].get("finalizers") or []):
        actions.append(
            Apply(
                {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND_PODCLIQUESET,
                    "metadata": {
                        "name": snap.name,
                        "namespace": snap.namespace,
                        "finalizers": [c.FINALIZER_PODCLIQUESET],
                    },
                }
            )
        )
    rbac = children.initc_rbac(snap)
    by_kind: dict[str, Mapping[str, Obj]] = {
        "ServiceAccount": snap.service_accounts,
        "Role": snap.roles,
        "RoleBinding": snap.role_bindings,
        "Secret": snap.secrets,
    }
    for obj in rbac:
        actions += sync(snap, [obj], by_kind[obj["kind"]])
    services = children.headless_services(snap)
    actions += sync(snap, services, snap.services)
    actions += prune(snap, services, _owned(snap.services, c.COMPONENT_HEADLESS_SERVICE), "v1", "Service")
    hpas = children.autoscalers(snap)
    actions += sync(snap, hpas, snap.hpas)
    actions += prune(
        snap, hpas, _owned(snap.hpas, c.COMPONENT_HPA), "autoscaling/v2", "HorizontalPodAutoscaler"
    )
    standalone = children.standalone_podcliques(snap)
    groups = children.scaling_groups(snap)
    members = children.group_member_podcliques(snap)
    actions += sync(snap, standalone + members, snap.podcliques)
    actions += sync(snap, groups, snap.scaling_groups)
    actions += prune(snap, groups, snap.scaling_groups, c.API_VERSION, c.KIND_PODCLIQUESCALINGGROUP)
    unwanted_cliques = _unwanted_podcliques(snap, standalone + members)
    actions += [
        Delete(
            Ref(c.API_VERSION, c.KIND_PODCLIQUE, snap.namespace, name_of(q)), uid_of(q), reason="scaled in"
        )
        for q in unwanted_cliques
    ]
    # Pods of PodCliques that go are deleted directly too: the garbage collector would be slow (20 req/s).
    for q in unwanted_cliques:
        actions += [
            Delete(pod_ref(p), uid_of(p), reason="PodClique scaled in")
            for p in snap.pods_of(q)
            if is_active(p)
        ]
    wanted = {o["metadata"]["name"] for o in standalone + members}
    for name, pclq in snap.podcliques.items():
        if name in wanted and not is_deleting(pclq) and name not in snap.pending and snap.controls(pclq):
            actions += pod_actions(pclq, snap.pods_of(pclq))
    desired_gangs = gangs.podgangs(snap)
    actions += sync(snap, desired_gangs, snap.podgangs)
    actions += prune(snap, desired_gangs, snap.podgangs, c.SCHEDULER_API_VERSION, c.KIND_PODGANG)
    actions += statuses(snap, wanted, desired_gangs)
    return result


def _status_action(obj: Obj, desired: Obj) -> list[Action]:
    patch = status.status_patch(obj.get("status"), desired)
    if patch is None:
        return []
    meta = obj["metadata"]
    return [
        PatchStatus(
            Ref(obj.get("apiVersion") or "", obj.get("kind") or "", meta.get("namespace", ""), meta["name"]),
            patch,
        )
    ]


def statuses(snap: Snapshot, wanted_cliques: set[str], desired_gangs: list[Obj]) -> list[Action]:
    """Status of every existing child and of the PodCliqueSet, written only where it changed. Computed from
    this snapshot: what this pass creates shows up in the next pass's status."""
    generation = hashing.generation_hash(snap.pcs)
    hashes = hashing.clique_template_hashes(snap.pcs)
    actions: list[Action] = []
    live_cliques = [
        q
        for n, q in snap.podcliques.items()
        if n in wanted_cliques and not is_deleting(q) and snap.controls(q)
    ]
    for pclq in live_cliques:
        labels = labels_of(pclq)
        desired = status.podclique_status(
            _typed(pclq, c.API_VERSION, c.KIND_PODCLIQUE),
            snap.pods_of(pclq),
            expected_hash=labels.get(c.LABEL_POD_TEMPLATE_HASH, ""),
            pcs_generation_hash=generation,
            standalone=labels.get(c.LABEL_COMPONENT) == c.COMPONENT_PCS_PODCLIQUE,
            pcs_name=snap.name,
            now=snap.now,
        )
        actions += _status_action(_typed(pclq, c.API_VERSION, c.KIND_PODCLIQUE), desired)
    groups = [g for g in snap.scaling_groups.values() if not is_deleting(g) and snap.controls(g)]
    for pcsg in groups:
        members = [q for q in live_cliques if labels_of(q).get(c.LABEL_PCSG) == name_of(pcsg)]
        desired = status.scaling_group_status(
            pcsg,
            members,
            pcs_generation_hash=generation,
            pcs_name=snap.name,
            now=snap.now,
            expected_hashes=hashes,
        )
        actions += _status_action(_typed(pcsg, c.API_VERSION, c.KIND_PODCLIQUESCALINGGROUP), desired)
    standalone = [q for q in live_cliques if labels_of(q).get(c.LABEL_COMPONENT) == c.COMPONENT_PCS_PODCLIQUE]
    desired_pcs = status.podcliqueset_status(
        snap.pcs,
        standalone,
        groups,
        generation_hash=generation,
        now=snap.now,
        podgangs=[g for g in snap.podgangs.values() if snap.controls(g)],
    )
    actions += _status_action(_typed(snap.pcs, c.API_VERSION, c.KIND_PODCLIQUESET), desired_pcs)
    for gang in desired_gangs:
        existing = snap.podgangs.get(gang["metadata"]["name"])
        if existing is None or is_deleting(existing) or not snap.controls(existing):
            continue
        desired = status.podgang_status(existing, gangs.all_pods_created(snap, gang), snap.now)
        ours = [
            x
            for x in (existing.get("status") or {}).get("conditions") or []
            if x.get("type") == c.CONDITION_PODGANG_INITIALIZED
        ]
        if status.status_patch({"conditions": ours}, desired) is not None:
            ref = Ref(c.SCHEDULER_API_VERSION, c.KIND_PODGANG, snap.namespace, name_of(existing))
            actions.append(PatchStatus(ref, desired, apply=True))
    return actions


def _typed(obj: Obj, api_version: str, kind: str) -> Obj:
    """List responses omit apiVersion/kind on items."""
    return obj if obj.get("kind") else {**obj, "apiVersion": api_version, "kind": kind}


def _owned(objs: Mapping[str, Obj], component: str) -> dict[str, Obj]:
    return {n: o for n, o in objs.items() if labels_of(o).get(c.LABEL_COMPONENT) == component}


def _unwanted_podcliques(snap: Snapshot, desired: list[Obj]) -> list[Obj]:
    """Our PodCliques that are no longer desired (scaled-in replicas, removed groups), deleted directly
    rather than left to the garbage collector."""
    wanted = {o["metadata"]["name"] for o in desired}
    return [
        pclq
        for name, pclq in snap.podcliques.items()
        if name not in wanted and not is_deleting(pclq) and snap.controls(pclq)
    ]

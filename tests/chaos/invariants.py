"""What must hold once the operator has converged, computed from the workload's intended state alone.

`problems(expected, objects)` lists every way the namespace differs from `expected` (empty: converged). It
names the objects by Grove's naming contract (grove_api.naming) and counts them from the intended replica
numbers, never from what the operator planned, so an operator bug cannot hide behind its own plan. Checked
for every kind the operator writes: the exact set of names (nothing missing, no orphan, no extra), pod
indices 0..n-1 once each per PodClique (no duplicates), every pod Ready on the intended image and on a
Ready node, every
child's controller owner alive, only the operator's own finalizers and nothing being deleted, and every
status caught up (observedGeneration, ready/available counts, PodGangs Running). Once the PodCliqueSet is
deleted, nothing at all may be left."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grove_api import constants as c
from grove_api import naming
from grove_api.podgang import PHASE_RUNNING
from localcluster.nodes import is_ready
from tests.chaos.workload import GROUP, LEADER, NAME, ROUTER, WORKER, Shape

JSON = dict[str, Any]
OUR_FINALIZERS = {c.FINALIZER_PODCLIQUESET, c.FINALIZER_PODCLIQUE, c.FINALIZER_PODCLIQUESCALINGGROUP}
# Kinds as tools/chaos.py and the test list them (kube.resources kinds).
KINDS = (
    "PodCliqueSet",
    "PodClique",
    "PodCliqueScalingGroup",
    "PodGang",
    "Pod",
    "Service",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Secret",
    "HorizontalPodAutoscaler",
)


@dataclass
class Expected:
    """The intended state: `shape` as created, `replicas` PodCliqueSet replicas now, `groups` the scaling
    group's replicas of a PodCliqueSet replica where scaled apart from the template, every pod on `image`;
    `deleted`: the PodCliqueSet was deleted."""

    shape: Shape
    replicas: int
    image: str
    groups: dict[int, int] = field(default_factory=dict)
    deleted: bool = False

    def group_replicas(self, replica: int) -> int:
        return self.groups.get(replica, self.shape.groups)

    def podcliques(self) -> dict[str, int]:
        """PodClique name -> pods."""
        out = {}
        for i in range(self.replicas):
            out[naming.standalone_podclique(NAME, i, ROUTER)] = self.shape.routers
            for j in range(self.group_replicas(i)):
                out[naming.scaling_group_podclique(NAME, i, GROUP, j, LEADER)] = 1
                out[naming.scaling_group_podclique(NAME, i, GROUP, j, WORKER)] = self.shape.workers
        return out

    def names(self) -> dict[str, set[str]]:
        """Kind -> the names that must exist (and nothing else)."""
        if self.deleted:
            return {kind: set() for kind in KINDS}
        replicas = range(self.replicas)
        gangs = {naming.base_podgang(NAME, i) for i in replicas}
        for i in replicas:
            gangs |= {
                naming.scaled_podgang(NAME, i, GROUP, j, self.shape.group_min)
                for j in range(self.shape.group_min, self.group_replicas(i))
            }
        return {
            "PodCliqueSet": {NAME},
            "PodClique": set(self.podcliques()),
            "PodCliqueScalingGroup": {naming.scaling_group(NAME, i, GROUP) for i in replicas},
            "PodGang": gangs,
            "Service": {naming.headless_service(NAME, i) for i in replicas},
            "ServiceAccount": {naming.service_account(NAME)},
            "Role": {naming.role(NAME)},
            "RoleBinding": {naming.role(NAME)},
            "Secret": {naming.initc_token_secret(NAME)},
            "HorizontalPodAutoscaler": {naming.standalone_podclique(NAME, i, ROUTER) for i in replicas},
        }


def _name(obj: JSON) -> str:
    return str(obj["metadata"]["name"])


def _condition(obj: JSON, kind: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def _sample(names: Sequence[str] | set[str], limit: int = 5) -> str:
    ordered = sorted(names)
    more = f" (+{len(ordered) - limit} more)" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def _names_problems(expected: Expected, objects: Mapping[str, Sequence[JSON]]) -> list[str]:
    out = []
    for kind, want in expected.names().items():
        have = {_name(o) for o in objects.get(kind, ())}
        if missing := want - have:
            out.append(f"{kind}: {len(missing)} missing: {_sample(missing)}")
        if extra := have - want:
            out.append(f"{kind}: {len(extra)} not expected (orphans or leftovers): {_sample(extra)}")
    return out


def _lifecycle_problems(objects: Mapping[str, Sequence[JSON]]) -> list[str]:
    """Nothing being deleted, only our finalizers, every child's controller owner alive."""
    out = []
    uids = {o["metadata"].get("uid") for kind in KINDS for o in objects.get(kind, ())}
    for kind in KINDS:
        for obj in objects.get(kind, ()):
            meta = obj["metadata"]
            if meta.get("deletionTimestamp"):
                out.append(
                    f"{kind} {meta['name']}: still being deleted (finalizers {meta.get('finalizers')})"
                )
            if foreign := set(meta.get("finalizers") or ()) - OUR_FINALIZERS:
                out.append(f"{kind} {meta['name']}: unexpected finalizers {sorted(foreign)}")
            if kind == "PodCliqueSet":
                continue
            owners = [r for r in meta.get("ownerReferences") or () if r.get("controller")]
            if len(owners) != 1 or owners[0].get("uid") not in uids:
                out.append(f"{kind} {meta['name']}: controller owner {owners} is not a live object")
    return out


def _pod_problems(expected: Expected, pods: Sequence[JSON], nodes: Sequence[JSON]) -> list[str]:
    out = []
    want = expected.podcliques()
    usable = {_name(n) for n in nodes if is_ready(n)}
    by_clique: dict[str, list[str]] = {}
    not_ready, wrong_image, lost_node = [], [], []
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        by_clique.setdefault(labels.get(c.LABEL_PODCLIQUE, "?"), []).append(
            labels.get(c.LABEL_POD_INDEX, "?")
        )
        if _condition(pod, "Ready") != "True" or (pod.get("spec") or {}).get("schedulingGates"):
            not_ready.append(_name(pod))
        if {ct.get("image") for ct in pod["spec"]["containers"]} != {expected.image}:
            wrong_image.append(_name(pod))
        if pod["spec"].get("nodeName") not in usable:  # a pod on a deleted or NotReady node runs nowhere
            lost_node.append(_name(pod))
    for clique, indices in sorted(by_clique.items()):
        if clique not in want:
            out.append(f"pods of {clique}, which must not exist: {len(indices)}")
            continue
        if dup := sorted(i for i, n in Counter(indices).items() if n > 1):
            out.append(f"{clique}: duplicate pod indices {dup}")
        if sorted(set(indices)) != sorted(str(i) for i in range(want[clique])):
            out.append(f"{clique}: pod indices {sorted(indices, key=str)}, want 0..{want[clique] - 1}")
    if missing := set(want) - set(by_clique):
        out.append(f"{len(missing)} PodCliques without pods: {_sample(missing)}")
    if not_ready:
        out.append(f"{len(not_ready)} pods not Ready: {_sample(not_ready)}")
    if wrong_image:
        out.append(f"{len(wrong_image)} pods not on {expected.image}: {_sample(wrong_image)}")
    if lost_node:
        out.append(f"{len(lost_node)} pods not on a Ready node: {_sample(lost_node)}")
    return out


def _status_problems(expected: Expected, objects: Mapping[str, Sequence[JSON]]) -> list[str]:
    out = []

    def caught_up(kind: str, obj: JSON) -> bool:
        observed = (obj.get("status") or {}).get("observedGeneration")
        if observed != obj["metadata"].get("generation"):
            out.append(
                f"{kind} {_name(obj)}: observedGeneration {observed}, generation {obj['metadata'].get('generation')}"
            )
            return False
        return True

    for obj in objects.get("PodCliqueSet", ()):
        available = (obj.get("status") or {}).get("availableReplicas")
        if caught_up("PodCliqueSet", obj) and available != expected.replicas:
            out.append(f"PodCliqueSet: availableReplicas {available}, want {expected.replicas}")
    want = expected.podcliques()
    for obj in objects.get("PodClique", ()):
        replicas, ready = obj["spec"].get("replicas"), (obj.get("status") or {}).get("readyReplicas")
        if _name(obj) in want and replicas != want[_name(obj)]:
            out.append(f"PodClique {_name(obj)}: spec.replicas {replicas}, want {want[_name(obj)]}")
        elif caught_up("PodClique", obj) and ready != replicas:
            out.append(f"PodClique {_name(obj)}: readyReplicas {ready} of {replicas}")
    for obj in objects.get("PodCliqueScalingGroup", ()):
        replica = int(obj["metadata"].get("labels", {}).get(c.LABEL_PCS_REPLICA_INDEX, -1))
        replicas, available = obj["spec"].get("replicas"), (obj.get("status") or {}).get("availableReplicas")
        if replicas != expected.group_replicas(replica):
            out.append(
                f"PodCliqueScalingGroup {_name(obj)}: spec.replicas {replicas}, want {expected.group_replicas(replica)}"
            )
        elif caught_up("PodCliqueScalingGroup", obj) and available != replicas:
            out.append(f"PodCliqueScalingGroup {_name(obj)}: availableReplicas {available} of {replicas}")
    if not_running := [
        _name(g) for g in objects.get("PodGang", ()) if (g.get("status") or {}).get("phase") != PHASE_RUNNING
    ]:
        out.append(f"{len(not_running)} PodGangs not Running: {_sample(not_running)}")
    return out


def problems(expected: Expected, objects: Mapping[str, Sequence[JSON]]) -> list[str]:
    """Every difference between the namespace's objects (kind -> objects, see KINDS; "Node": the cluster's
    nodes) and `expected`."""
    found = _names_problems(expected, objects) + _lifecycle_problems(objects)
    if not expected.deleted:
        found += _pod_problems(expected, objects.get("Pod", ()), objects.get("Node", ()))
        found += _status_problems(expected, objects)
    return found

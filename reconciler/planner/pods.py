"""The pods of one PodClique: how many to create or delete, with which index, and what each looks like.

Like a ReplicaSet, but with stable per-clique pod indices (hostnames `<pclq>-<index>`): new pods take the
lowest indices not used by active pods, so scaling down and up again reuses indices. Failed or succeeded
pods are replaced (deleted and recreated): Grove counts them as present and never replaces an evicted pod.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from grove_api import constants as c
from grove_api import naming
from grove_api.podstate import PHASE_FAILED, PHASE_SUCCEEDED, is_active
from grove_api.refs import Ref

from .actions import Action, Create, Delete
from .children import owner_ref
from .snapshot import Obj, Snapshot, is_deleting, labels_of, name_of, uid_of

TERMINAL_PHASES = (PHASE_FAILED, PHASE_SUCCEEDED)


def pod_ref(pod: Obj) -> Ref:
    """List responses omit apiVersion/kind on items, so pods are referred to explicitly."""
    return Ref("v1", "Pod", str(pod["metadata"].get("namespace", "")), name_of(pod))


def delete_podclique(pclq: Mapping[str, Any], pods: list[Obj], reason: str) -> list[Action]:
    """Delete a PodClique and its active pods (`pods`: those it controls). The pods go directly, gated and
    unbound ones too: the garbage collector is slow (20 requests/s), and until it gets there they keep their
    gang's labels, so the gang admitter would count them as members of the gang's new pods."""
    meta = pclq["metadata"]
    ref = Ref(c.API_VERSION, c.KIND_PODCLIQUE, str(meta.get("namespace", "")), name_of(pclq))
    return [
        Delete(ref, uid_of(pclq), reason=reason),
        *(Delete(pod_ref(p), uid_of(p), reason=reason) for p in pods if is_active(p)),
    ]


def _podclique_controller(pod: Obj) -> Mapping[str, Any] | None:
    """The pod's only ownerReference when it is a controller reference to a PodClique (of our API group),
    else None: a pod with another owner as well stays while that one lives (the garbage collector's rule)."""
    refs = pod["metadata"].get("ownerReferences") or []
    if len(refs) != 1:
        return None
    ref = refs[0]
    group = str(ref.get("apiVersion", "")).partition("/")[0]
    ours = group == c.API_VERSION.partition("/")[0] and ref.get("kind") == c.KIND_PODCLIQUE
    return ref if ours and ref.get("controller") and ref.get("uid") and ref.get("name") else None


def orphan_deletes(snap: Snapshot) -> list[Action]:
    """Our pods whose PodClique is gone or being deleted, as the caches show it: deleted by us rather than
    left to the garbage collector (which an apiserver restart can hold up for minutes, while the orphans
    keep their PodClique's name and indices and serve an old template). A pod whose delete failed in the
    pass that deleted its PodClique (a 403 while the apiserver's RBAC warms up after a restart, say) is
    such an orphan, as is one created into a PodClique deleted meanwhile. Only pods in the snapshot (ours:
    labelled managed-by and part-of this PodCliqueSet, which only the operator may create) whose only owner
    is a PodClique; not those of a PodClique whose pod creates and deletes the caches have not shown yet.
    The executor checks the owner with a live read before it deletes (`Delete.orphan_of`)."""
    live = {uid_of(q) for q in snap.podcliques.values() if not is_deleting(q)}
    actions: list[Action] = []
    for pod in snap.pods:
        owner = _podclique_controller(pod)
        if owner is None or is_deleting(pod) or str(owner["uid"]) in live:
            continue
        clique = str(owner["name"])
        if clique in snap.pending or labels_of(pod).get(c.LABEL_PODCLIQUE, clique) in snap.pending:
            continue
        ref = Ref(c.API_VERSION, c.KIND_PODCLIQUE, str(pod["metadata"].get("namespace", "")), clique)
        actions.append(
            Delete(
                pod_ref(pod),
                uid_of(pod),
                reason=f"orphan: its PodClique {clique} (uid {owner['uid']}) is gone",
                orphan_of=(ref, str(owner["uid"])),
            )
        )
    return actions


def pod_index(pod: Obj) -> int | None:
    """The index in the pod's label (or, for pods made by Grove, the hostname's last segment)."""
    raw = labels_of(pod).get(c.LABEL_POD_INDEX)
    if raw is None:
        raw = str(pod.get("spec", {}).get("hostname", "")).rpartition("-")[2]
    try:
        return int(raw)
    except ValueError:
        return None


def free_indices(pods: list[Obj], count: int) -> list[int]:
    """The `count` lowest indices no active pod uses (holes first)."""
    used = {i for p in pods if is_active(p) and (i := pod_index(p)) is not None}
    out: list[int] = []
    candidate = 0
    while len(out) < count:
        if candidate not in used:
            out.append(candidate)
        candidate += 1
    return out


def _condition(pod: Obj, kind: str) -> str:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return ""


def deletion_order(pods: list[Obj], expected_hash: str) -> list[Obj]:
    """Pods in the order they should go on scale-in (Grove's order; docs/api.md, "Pods"): unscheduled, then
    Pending, Unknown, Running; not Ready before Ready; outdated template first; then the newest; equal ones:
    the higher pod index first."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}

    def key(pod: Obj) -> tuple[Any, ...]:
        status = pod.get("status", {})
        created = str(pod["metadata"].get("creationTimestamp") or "")
        return (
            bool(pod.get("spec", {}).get("nodeName")),
            phase_rank.get(str(status.get("phase")), 0),
            _condition(pod, "Ready") == "True",
            labels_of(pod).get(c.LABEL_POD_TEMPLATE_HASH) == expected_hash,
            created != "",
            _negate(created),
            -(pod_index(pod) or 0),
        )

    return sorted(pods, key=key)


def _negate(text: str) -> tuple[int, ...]:
    """Sort key that orders strings descending (newest RFC 3339 timestamp first)."""
    return tuple(-ord(ch) for ch in text)


def build_pod(pclq: Mapping[str, Any], index: int, pod_name: str = "") -> Obj:
    """A pod of the PodClique with the given index (docs/api.md, "Pods"; gates and grove-initc are added by
    the pod admission webhook), named `pod_name` (else generateName: for pods compared, never created)."""
    meta = pclq["metadata"]
    labels = labels_of(pclq)
    pcs = labels[c.LABEL_PART_OF]
    replica = int(labels[c.LABEL_PCS_REPLICA_INDEX])
    name = meta["name"]
    namespace = meta["namespace"]
    service = naming.headless_service(pcs, replica)
    env = [
        {"name": c.ENV_PCS_NAME, "value": pcs},
        {"name": c.ENV_PCS_INDEX, "value": str(replica)},
        {"name": c.ENV_PCLQ_NAME, "value": name},
        {"name": c.ENV_HEADLESS_SERVICE, "value": f"{service}.{namespace}.svc.cluster.local"},
        {
            "name": c.ENV_PCLQ_POD_INDEX,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{c.LABEL_POD_INDEX}']"}},
        },
    ]
    names = {e["name"] for e in env}
    spec = copy.deepcopy(pclq["spec"].get("podSpec") or {})
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            container["env"] = env + [e for e in container.get("env") or [] if e.get("name") not in names]
    spec["hostname"] = naming.pod_hostname(name, index)
    spec["subdomain"] = service
    pod_labels = {
        **labels,
        c.LABEL_PODCLIQUE: name,
        c.LABEL_POD_INDEX: str(index),
    }
    pod_labels.pop(c.LABEL_NAME, None)
    pod_labels.pop(c.LABEL_COMPONENT, None)
    pod_meta: Obj = {
        **({"name": pod_name} if pod_name else {"generateName": naming.pod_generate_name(name)}),
        "namespace": namespace,
        "labels": pod_labels,
        "ownerReferences": [owner_ref(pclq)],
    }
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def pod_actions(pclq: Obj, pods: list[Obj], nonce: str = "") -> list[Action]:
    """Creates and deletes that bring the PodClique's active pods to spec.replicas. New pods are named from
    the PodClique, the index and `nonce` (different on every pass: a pod recreated with the same index gets
    a new name, as with generateName)."""
    actions: list[Action] = []
    name = name_of(pclq)
    for pod in pods:
        if not is_deleting(pod) and pod.get("status", {}).get("phase") in TERMINAL_PHASES:
            actions.append(Delete(pod_ref(pod), uid_of(pod), reason=f"replace {pod['status']['phase']} pod"))
    active = [p for p in pods if is_active(p)]
    want = int(pclq.get("spec", {}).get("replicas") or 0)
    if len(active) < want:
        for index in free_indices(pods, want - len(active)):
            pod = build_pod(pclq, index, naming.pod_name(name, f"{index}/{nonce}"))
            actions.append(Create(pod, reason=f"{name}: {len(active)}/{want} pods"))
    elif len(active) > want:
        expected_hash = labels_of(pclq).get(c.LABEL_POD_TEMPLATE_HASH, "")
        for pod in deletion_order(active, expected_hash)[: len(active) - want]:
            actions.append(Delete(pod_ref(pod), uid_of(pod), reason=f"{name}: scale in to {want}"))
    return actions


def with_owner_uid(action: Action, uids: Mapping[tuple[str, str], str]) -> Action | None:
    """A pod the planner made for a PodClique created in the same pass, with its owner's uid (`uids`:
    (namespace, name) of the PodCliques created, from the creates' responses); None when that create failed
    or found the PodClique already there (the next pass makes its pods, from the cache). Other actions are
    returned as they are."""
    if not isinstance(action, Create):
        return action
    meta = action.obj["metadata"]
    owners = meta.get("ownerReferences") or []
    if not owners or owners[0].get("uid"):
        return action
    uid = uids.get((meta["namespace"], owners[0]["name"]))
    if uid is None:
        return None
    owner = {**owners[0], "uid": uid}
    return Create({**action.obj, "metadata": {**meta, "ownerReferences": [owner]}}, action.reason)

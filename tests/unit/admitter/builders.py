"""Kubernetes objects for admitter tests, and `Sim`: a model plus a stand-in for the I/O layer that carries
decisions out the way the controller does (pin + ungate, write Admitted, bind, delete on reset)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from admitter.core.cluster import ClusterModel
from admitter.core.decision import Decision
from admitter.core.gangs import Gang
from admitter.core.plan import PlanConfig, Planner, plan
from grove_api import constants as c
from grove_api.podgang import CONDITION_ADMITTED, REASON_RECREATED, REASON_RESET

JSON = dict[str, Any]
NS = "default"
HOSTNAME = "kubernetes.io/hostname"
GPU = "nvidia.com/gpu"


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata(name: str, namespace: str, labels: Mapping[str, str], created: float) -> JSON:
    return {"name": name, "namespace": namespace, "labels": dict(labels), "creationTimestamp": stamp(created)}


def node(
    name: str,
    cpu: str | int = 8,
    memory: str = "32Gi",
    pods: int = 110,
    gpu: int = 0,
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
    unschedulable: bool = False,
    ready: bool | None = True,
    hostname: str | None = "",
) -> JSON:
    allocatable: JSON = {"cpu": str(cpu), "memory": memory, "pods": str(pods)}
    if gpu:
        allocatable[GPU] = str(gpu)
    all_labels = dict(labels or {})
    if hostname is not None:
        all_labels[HOSTNAME] = hostname or name
    obj: JSON = {
        "metadata": {"name": name, "labels": all_labels},
        "spec": {"taints": list(taints)} if taints else {},
        "status": {"allocatable": allocatable},
    }
    if unschedulable:
        obj["spec"]["unschedulable"] = True
    if ready is not None:
        obj["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return obj


def pod(
    name: str,
    gang: str | None = None,
    clique: str | None = None,
    cpu: str | None = "1",
    memory: str | None = "1Gi",
    gpu: int = 0,
    gated: bool = True,
    node_name: str | None = None,
    pin: str | None = None,
    phase: str | None = None,
    created: float = 0.0,
    namespace: str = NS,
    spec: Mapping[str, Any] | None = None,
) -> JSON:
    requests: JSON = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    if gpu:
        requests[GPU] = str(gpu)
    labels = {}
    if gang:
        labels[c.LABEL_PODGANG] = gang
    if clique:
        labels[c.LABEL_PODCLIQUE] = clique
    body: JSON = {"containers": [{"name": "main", "image": "busybox", "resources": {"requests": requests}}]}
    if gated:
        body["schedulingGates"] = [{"name": c.SCHEDULING_GATE_PODGANG_PENDING}]
    if node_name:
        body["nodeName"] = node_name
    if pin:
        body["nodeSelector"] = {HOSTNAME: pin}
    body.update(spec or {})
    obj: JSON = {
        "metadata": metadata(name, namespace, labels, created),
        "spec": body,
        "status": {"phase": phase or ("Running" if node_name else "Pending")},
    }
    return obj


def not_admitted(reason: str, now: float) -> JSON:
    """The status the controller writes when it un-admits or resets a gang."""
    condition = {"type": c.CONDITION_PODGANG_ADMITTED, "status": "False", "reason": reason}
    return {"phase": "Pending", "conditions": [{**condition, "lastTransitionTime": stamp(now)}]}


def podgang(
    name: str,
    groups: Sequence[tuple[str, int, Sequence[str]]],
    created: float = 0.0,
    base: str | None = None,
    admitted_at: float | None = None,
    pack: Mapping[str, str] | None = None,
    group_packs: Mapping[str, Mapping[str, str]] | None = None,
    configs: Sequence[tuple[str, Sequence[str], Mapping[str, str]]] = (),
    priority_class: str | None = None,
    namespace: str = NS,
) -> JSON:
    """`groups`: (podclique, minReplicas, pod names); packs are {"required": key} / {"preferred": key}."""
    podgroups = []
    for clique, minimum, names in groups:
        group: JSON = {
            "name": clique,
            "minReplicas": minimum,
            "podReferences": [{"namespace": namespace, "name": n} for n in names],
        }
        if group_packs and clique in group_packs:
            group["topologyConstraint"] = {"packConstraint": dict(group_packs[clique])}
        podgroups.append(group)
    spec: JSON = {"podgroups": podgroups}
    if pack:
        spec["topologyConstraint"] = {"packConstraint": dict(pack)}
    if configs:
        spec["topologyConstraintGroupConfigs"] = [
            {"name": n, "podGroupNames": list(g), "topologyConstraint": {"packConstraint": dict(p)}}
            for n, g, p in configs
        ]
    if priority_class:
        spec["priorityClassName"] = priority_class
    labels = {c.LABEL_BASE_PODGANG: base} if base else {}
    obj: JSON = {
        "metadata": metadata(name, namespace, labels, created),
        "spec": spec,
    }
    if admitted_at is not None:
        obj["status"] = {
            "conditions": [
                {"type": CONDITION_ADMITTED, "status": "True", "lastTransitionTime": stamp(admitted_at)}
            ]
        }
    return obj


class Sim:
    """A cluster model with the objects behind it, and the I/O layer's side of decisions."""

    def __init__(self, config: PlanConfig | None = None) -> None:
        self.model = ClusterModel()
        self.config = config or PlanConfig()
        self.nodes: dict[str, JSON] = {}
        self.pods: dict[str, JSON] = {}
        self.podgangs: dict[str, JSON] = {}
        self.priorities: dict[str, int] = {}

    # --- objects ---

    def add_node(self, name: str, **kw: Any) -> JSON:
        obj = node(name, **kw)
        self.nodes[name] = obj
        self.model.upsert_node(obj)
        return obj

    def update_node(self, name: str, **changes: Any) -> None:
        obj = self.nodes[name]
        if "unschedulable" in changes:
            obj["spec"]["unschedulable"] = changes["unschedulable"]
        self.model.upsert_node(obj)

    def add_pod(self, name: str, **kw: Any) -> JSON:
        obj = pod(name, **kw)
        self.pods[name] = obj
        self.model.upsert_pod(obj)
        return obj

    def delete_node(self, name: str) -> None:
        del self.nodes[name]
        self.model.delete_node(name)

    def delete_pod(self, name: str) -> None:
        del self.pods[name]
        self.model.delete_pod(NS, name)

    def recreate(self, gang: str, now: float = 0.0) -> None:
        """Gang termination: every pod of the gang is deleted and recreated, gated (the PodGang stays)."""
        for name in sorted(self.pods):
            old = self.pods[name]
            if old["metadata"]["labels"].get(c.LABEL_PODGANG) != gang:
                continue
            self.delete_pod(name)
            self.pods[name] = fresh = copy.deepcopy(old)
            fresh["spec"]["schedulingGates"] = [{"name": c.SCHEDULING_GATE_PODGANG_PENDING}]
            fresh["spec"].pop("nodeSelector", None)
            fresh["spec"].pop("nodeName", None)
            fresh["status"]["phase"] = "Pending"
            fresh["metadata"]["creationTimestamp"] = stamp(now)
            self.model.upsert_pod(fresh)

    def set_phase(self, name: str, phase: str) -> None:
        self.pods[name]["status"]["phase"] = phase
        self.model.upsert_pod(self.pods[name])

    def add_gang(
        self,
        name: str,
        groups: Sequence[tuple[str, int, int]] | None = None,
        *,
        size: int = 0,
        cpu: str = "1",
        memory: str = "1Gi",
        gpu: int = 0,
        created: float = 0.0,
        pod_spec: Mapping[str, Any] | None = None,
        group_requests: Mapping[str, Mapping[str, Any]] | None = None,
        **gang_kw: Any,
    ) -> JSON:
        """A PodGang and its gated pods: `groups` as (clique, minReplicas, replicas), or one clique "w"
        with `size` pods all required."""
        specs = groups if groups is not None else [("w", size, size)]
        rows = []
        for clique, minimum, replicas in specs:
            names = [f"{name}-{clique}-{i}" for i in range(replicas)]
            requests = {"cpu": cpu, "memory": memory, "gpu": gpu, **(group_requests or {}).get(clique, {})}
            for n in names:
                self.add_pod(n, gang=name, clique=clique, created=created, spec=pod_spec, **requests)
            rows.append((clique, minimum, names))
        obj = podgang(name, rows, created=created, **gang_kw)
        self.podgangs[name] = obj
        return obj

    def gangs(self) -> list[Gang]:
        return [Gang.from_podgang(g, self.priorities) for g in self.podgangs.values()]

    # --- passes ---

    def full(self, now: float = 0.0, settled: bool = True) -> Decision:
        return plan(self.model, self.gangs(), now, self.config, settled)

    def planner(self) -> Planner:
        return Planner(self.config, self.model)

    # --- carrying a decision out ---

    def execute(self, decision: Decision, now: float = 0.0, bind: bool = True) -> None:
        """What the controller does: Admitted first, then pin + ungate; `bind` also plays the scheduler."""
        for admit in decision.admit:
            self.podgangs[admit.gang]["status"] = copy.deepcopy(
                podgang(admit.gang, [], admitted_at=now)["status"]
            )
            for pod_name, node_name in admit.placements.items():
                self.release(pod_name, node_name, bind)
        for rel in decision.release:
            self.release(rel.pod, rel.node, bind)
        for record in decision.record_admitted_on_create:
            self.podgangs[record.gang]["status"] = copy.deepcopy(
                podgang(record.gang, [], admitted_at=now)["status"]
            )
        for unadmit in decision.unadmit:
            self.podgangs[unadmit.gang]["status"] = not_admitted(REASON_RECREATED, now)
        for reset in decision.reset:
            self.podgangs[reset.gang]["status"] = not_admitted(REASON_RESET, now)
            for pod_name in reset.pods:
                self._recreate_gated(pod_name, now)
        for unpin in decision.unpin:
            for pod_name in unpin.pods:
                self._recreate_gated(pod_name, now)

    def _recreate_gated(self, pod_name: str, now: float) -> None:
        """A deleted pod as the reconciler and the pod webhook bring it back: gated, not pinned."""
        old = self.pods.pop(pod_name)
        self.model.delete_pod(NS, pod_name)
        labels = old["metadata"]["labels"]
        fresh = copy.deepcopy(old)
        fresh["spec"]["schedulingGates"] = [{"name": c.SCHEDULING_GATE_PODGANG_PENDING}]
        fresh["spec"].pop("nodeSelector", None)
        fresh["spec"].pop("nodeName", None)
        fresh["metadata"]["creationTimestamp"] = stamp(now)
        fresh["metadata"]["labels"] = labels
        self.pods[pod_name] = fresh
        self.model.upsert_pod(fresh)

    def release(self, pod_name: str, node_name: str, bind: bool) -> None:
        obj = self.pods[pod_name]
        obj["spec"]["schedulingGates"] = [
            g
            for g in obj["spec"].get("schedulingGates", [])
            if g["name"] != c.SCHEDULING_GATE_PODGANG_PENDING
        ]
        obj["spec"]["nodeSelector"] = {
            **obj["spec"].get("nodeSelector", {}),
            HOSTNAME: self.model.hostname_of(node_name),
        }
        self.model.upsert_pod(obj)
        if bind:
            self.bind(pod_name, node_name)

    def bind(self, pod_name: str, node_name: str) -> None:
        obj = self.pods[pod_name]
        obj["spec"]["nodeName"] = node_name
        obj["status"]["phase"] = "Running"
        self.model.upsert_pod(obj)


def admitted_names(decision: Decision) -> list[str]:
    return [a.gang for a in decision.admit]


def blocked_names(decision: Decision) -> list[str]:
    return [b.gang for b in decision.blocked]


def placements(decision: Decision) -> dict[str, str]:
    out: dict[str, str] = {}
    for admit in decision.admit:
        out.update(admit.placements)
    for rel in decision.release:
        out[rel.pod] = rel.node
    return out


def by_node(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pod_name, node_name in sorted(pairs):
        out.setdefault(node_name, []).append(pod_name)
    return out

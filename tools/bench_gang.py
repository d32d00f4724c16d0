"""Gang admission benchmarks.

    python -m tools.bench_gang core --out bench-results/gang-core.json
    python -m tools.bench_gang e2e --out bench-results/gang-e2e.json    (tools/bench_gang_e2e.py)

`core` times the pure decision core (admitter.core) on a synthetic cluster, with no apiserver:

(a) 1,000 nodes of mixed sizes (general, large, 8-GPU nodes with a GPU taint; some cordoned, some with a
    taint nobody tolerates; labelled with zone, block and rack) and 1,000 complete, gated gangs totalling
    10,000 pods (1-40 pods each, one to three podgroups of different shapes, cpu/memory/gpu requests,
    ~20 % with a required or preferred pack constraint, some with pods beyond the minimum).
(i) a full `plan` pass from scratch (target <= 1 s);
(ii) after the queue has stalled (passes carried out until nothing more is admitted), the time from one
    event applied to the model (a bound pod deleted, a node uncordoned) to the next decision of a
    long-lived `Planner` (target <= 10 ms); every decision is checked against a full pass;
(c) packing quality when the queue stalls: share of schedulable cpu (and gpu) in use, against total
    demand / capacity (no placement can do better) and against a plain first-fit, all-or-nothing pass
    over the same queue (nodes by name, first that fits).

`e2e` is part (b), on a local cluster: see tools/bench_gang_e2e.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from admitter.core.cluster import ClusterModel
from admitter.core.decision import Decision
from admitter.core.gangs import Gang
from admitter.core.nodes import NodeInfo, PodSpecView, feasible
from admitter.core.plan import PlanConfig, Planner, plan
from admitter.core.resources import CPU, Resources, pod_requests
from grove_api import constants as c
from grove_api.podgang import CONDITION_ADMITTED
from tools.bench_gang_e2e import NODES as NODES_E2E
from tools.bench_gang_e2e import run_e2e

JSON = dict[str, Any]
NS = "bench"
GPU = "nvidia.com/gpu"
HOSTNAME = "kubernetes.io/hostname"
ZONE, BLOCK, RACK = "topology.kubernetes.io/zone", "topology.grove.io/block", "topology.grove.io/rack"
GPU_TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
# (cpu, memory, gpu) per pod
CPU_SHAPES = [("500m", "1Gi", 0), ("1", "2Gi", 0), ("2", "4Gi", 0), ("4", "16Gi", 0), ("8", "32Gi", 0)]
BIG_SHAPES = [("16", "64Gi", 0), ("12", "48Gi", 0)]
GPU_SHAPES = [("8", "64Gi", 1), ("16", "128Gi", 2), ("30", "200Gi", 4), ("56", "400Gi", 8)]
NOW = 10_000.0


# --- the synthetic cluster ----------------------------------------------------------------------------


def make_nodes(count: int, rng: random.Random) -> list[JSON]:
    nodes = []
    for i in range(count):
        name = f"node-{i:04d}"
        kind = rng.random()
        if kind < 0.6:
            alloc = {"cpu": "32", "memory": "128Gi", "pods": "110"}
            taints: list[JSON] = []
        elif kind < 0.8:
            alloc = {"cpu": "64", "memory": "256Gi", "pods": "110"}
            taints = []
        else:
            alloc = {"cpu": "64", "memory": "512Gi", "pods": "110", GPU: "8"}
            taints = [{"key": GPU, "value": "present", "effect": "NoSchedule"}]
        if rng.random() < 0.04:
            taints = [*taints, {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]
        labels = {
            HOSTNAME: name,
            ZONE: f"zone-{i * 4 // count}",
            BLOCK: f"block-{i // 32}",
            RACK: f"rack-{i // 8}",
        }
        spec: JSON = {"taints": taints} if taints else {}
        if rng.random() < 0.03:
            spec["unschedulable"] = True
        nodes.append(
            {
                "metadata": {"name": name, "labels": labels},
                "spec": spec,
                "status": {"allocatable": alloc, "conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
    return nodes


def gang_sizes(gangs: int, pods: int, rng: random.Random) -> list[int]:
    """`gangs` sizes in 1..40 summing to `pods` (mostly small, a tail of big ones)."""
    sizes = [min(40, max(1, int(rng.expovariate(1 / (pods / gangs))))) for _ in range(gangs)]
    while sum(sizes) != pods:
        i = rng.randrange(gangs)
        if sum(sizes) < pods and sizes[i] < 40:
            sizes[i] += 1
        elif sum(sizes) > pods and sizes[i] > 1:
            sizes[i] -= 1
    return sizes


def make_workload(gangs: int, pods: int, rng: random.Random) -> tuple[list[JSON], list[JSON]]:
    podgangs, all_pods = [], []
    for g, size in enumerate(gang_sizes(gangs, pods, rng)):
        name = f"gang-{g:04d}"
        created = NOW - 3_000 + g * 2.0
        gpu = rng.random() < 0.3
        if gpu:
            catalog = GPU_SHAPES
        elif rng.random() < 0.2:
            catalog = BIG_SHAPES
        else:
            catalog = CPU_SHAPES
        groups = 1 if size < 3 else rng.choice([1, 2, 2, 3])
        counts = [1] * groups
        for _ in range(size - groups):
            counts[rng.randrange(groups)] += 1
        podgroups = []
        for k, replicas in enumerate(counts):
            clique = f"{name}-c{k}"
            cpu, memory, gpus = rng.choice(catalog) if k else catalog[0]
            minimum = replicas if rng.random() < 0.8 else max(1, replicas - rng.randint(1, 3))
            names = [f"{clique}-{i}" for i in range(replicas)]
            for pod_name in names:
                all_pods.append(make_pod(pod_name, name, clique, cpu, memory, gpus, created))
            podgroups.append(
                {
                    "name": clique,
                    "minReplicas": minimum,
                    "podReferences": [{"namespace": NS, "name": n} for n in names],
                }
            )
        spec: JSON = {"podgroups": podgroups}
        topo = rng.random()
        if topo < 0.08:
            spec["topologyConstraint"] = {"packConstraint": {"required": BLOCK if size > 8 else RACK}}
        elif topo < 0.14:
            spec["topologyConstraint"] = {"packConstraint": {"preferred": RACK}}
        elif topo < 0.20:
            spec["topologyConstraint"] = {"packConstraint": {"required": ZONE}}
            podgroups[-1]["topologyConstraint"] = {"packConstraint": {"preferred": BLOCK}}
        podgangs.append(
            {
                "metadata": {
                    "name": name,
                    "namespace": NS,
                    "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
                },
                "spec": spec,
                "_priority": rng.choice([0, 0, 0, 100]),
            }
        )
    return podgangs, all_pods


def make_pod(name: str, gang: str, clique: str, cpu: str, memory: str, gpus: int, created: float) -> JSON:
    requests: JSON = {"cpu": cpu, "memory": memory}
    spec: JSON = {
        "containers": [{"name": "main", "image": "busybox", "resources": {"requests": requests}}],
        "schedulingGates": [{"name": c.SCHEDULING_GATE_PODGANG_PENDING}],
    }
    if gpus:
        requests[GPU] = str(gpus)
        spec["tolerations"] = [GPU_TOLERATION]
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {c.LABEL_PODGANG: gang, c.LABEL_PODCLIQUE: clique},
            "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


# --- the I/O layer's side -----------------------------------------------------------------------------


class World:
    """The model plus the objects behind it; carries decisions out like the controller would (with the
    scheduler binding every released pod at once)."""

    def __init__(self, nodes: list[JSON], podgangs: list[JSON], pods: list[JSON]) -> None:
        nodes, podgangs, pods = copy.deepcopy((nodes, podgangs, pods))
        self.model = ClusterModel()
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.pods = {p["metadata"]["name"]: p for p in pods}
        self.podgangs = {g["metadata"]["name"]: g for g in podgangs}
        self.gangs = {name: self._gang(g) for name, g in self.podgangs.items()}
        for n in nodes:
            self.model.upsert_node(n)
        for p in pods:
            self.model.upsert_pod(p)

    @staticmethod
    def _gang(podgang: JSON) -> Gang:
        return Gang.from_podgang(podgang, priority=podgang["_priority"])

    def gang_list(self) -> list[Gang]:
        return list(self.gangs.values())

    def execute(self, decision: Decision) -> int:
        released = 0
        for admit in decision.admit:
            podgang = self.podgangs[admit.gang]
            podgang["status"] = {
                "conditions": [
                    {
                        "type": CONDITION_ADMITTED,
                        "status": "True",
                        "lastTransitionTime": "2024-01-01T00:00:00Z",
                    }
                ]
            }
            self.gangs[admit.gang] = self._gang(podgang)
            for pod_name, node in admit.placements.items():
                self.bind(pod_name, node)
                released += 1
        for rel in decision.release:
            self.bind(rel.pod, rel.node)
            released += 1
        return released

    def bind(self, pod_name: str, node: str) -> None:
        pod = dict(self.pods[pod_name])
        spec = dict(pod["spec"])
        spec.pop("schedulingGates", None)
        spec["nodeSelector"] = {HOSTNAME: self.model.hostname_of(node)}
        spec["nodeName"] = node
        pod["spec"] = spec
        pod["status"] = {"phase": "Running"}
        self.pods[pod_name] = pod
        self.model.upsert_pod(pod)


# --- measurements ---------------------------------------------------------------------------------------


def timed(fn: Callable[[], Decision]) -> tuple[Decision, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def usage(world: World) -> dict[str, float]:
    """Share of schedulable cpu and gpu requested by bound pods."""
    total: dict[str, int] = {}
    for node in world.model.nodes.values():
        if node.unschedulable or not node.ready:
            continue
        for res in (CPU, GPU):
            total[res] = total.get(res, 0) + node.allocatable.get(res)
    used = {CPU: 0, GPU: 0}
    for pod in world.model.pods.values():
        if pod.node_name:
            for res in used:
                used[res] += pod.requests.get(res)
    return {res: round(used[res] / total[res], 4) if total.get(res) else 0.0 for res in used}


def demand_bound(world: World) -> dict[str, float]:
    """Total demand of all gangs' minimums over schedulable capacity, capped at 1: no placement does better."""
    total: dict[str, int] = {CPU: 0, GPU: 0}
    for node in world.model.nodes.values():
        if not node.unschedulable and node.ready:
            for res in total:
                total[res] += node.allocatable.get(res)
    demand = {CPU: 0, GPU: 0}
    for gang in world.gangs.values():
        for group in gang.podgroups:
            for ref in group.refs[: group.min_replicas]:
                for res in demand:
                    demand[res] += world.model.pods[ref].requests.get(res)
    return {res: round(min(1.0, demand[res] / total[res]), 4) if total[res] else 0.0 for res in total}


def first_fit(nodes: list[JSON], podgangs: list[JSON], pods: dict[str, JSON]) -> dict[str, float]:
    """Baseline: the same queue, all or nothing per gang minimum, each pod on the first node (by name)
    that fits; no best fit, no topology. Share of schedulable cpu and gpu it uses when it stalls."""
    infos = [NodeInfo.from_dict(n) for n in sorted(nodes, key=lambda n: n["metadata"]["name"])]
    free = [i.allocatable.as_dict() for i in infos]
    queue = sorted(
        podgangs, key=lambda g: (-g["_priority"], g["metadata"]["creationTimestamp"], g["metadata"]["name"])
    )
    views: dict[int, list[bool]] = {}
    for podgang in queue:
        taken: list[tuple[int, Resources]] = []
        ok = True
        for group in podgang["spec"]["podgroups"]:
            for ref in group["podReferences"][: group["minReplicas"]]:
                pod = pods[ref["name"]]
                request = pod_requests(pod)
                view = PodSpecView.from_pod_spec(pod["spec"])
                if hash(view) not in views:
                    views[hash(view)] = [feasible(view, i) is None for i in infos]
                eligible = views[hash(view)]
                for idx, node_free in enumerate(free):
                    if eligible[idx] and request.fits(node_free):
                        for k, v in request.items():
                            node_free[k] = node_free.get(k, 0) - v
                        taken.append((idx, request))
                        break
                else:
                    ok = False
                    break
            if not ok:
                break
        if not ok:
            for idx, request in taken:
                for k, v in request.items():
                    free[idx][k] += v
    shares = {}
    for res in (CPU, GPU):
        cap = sum(i.allocatable.get(res) for i in infos if not i.unschedulable and i.ready)
        used = sum(
            i.allocatable.get(res) - f.get(res, 0)
            for i, f in zip(infos, free, strict=True)
            if not i.unschedulable
        )
        shares[res] = round(used / cap, 4) if cap else 0.0
    return shares


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def run_core(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    nodes = make_nodes(args.nodes, rng)
    podgangs, pods = make_workload(args.gangs, args.pods, rng)
    world = World(nodes, podgangs, pods)
    config = PlanConfig(starvation_seconds=1e9, bind_timeout_seconds=1e9)
    results: JSON = {
        "nodes": args.nodes,
        "gangs": args.gangs,
        "pods": args.pods,
        "seed": args.seed,
        "with_topology": sum(1 for g in podgangs if "topologyConstraint" in g["spec"]),
    }

    full, seconds = timed(lambda: plan(world.model, world.gang_list(), NOW, config))
    results["full_pass"] = {
        "seconds": round(seconds, 4),
        "admitted_gangs": len(full.admit),
        "blocked_gangs": len(full.blocked),
        "released_pods": sum(len(a.placements) for a in full.admit),
    }
    print(
        f"(i) full pass from scratch: {seconds * 1000:.0f} ms  ({len(full.admit)} gangs admitted, "
        f"{results['full_pass']['released_pods']} pods, {len(full.blocked)} blocked)"
    )

    planner = Planner(config, world.model)
    passes = 0
    warm = []
    while True:
        decision, seconds = timed(lambda: planner.plan(world.gang_list(), NOW))
        warm.append(seconds)
        passes += 1
        if not world.execute(decision):
            break
    stalled = decision
    results["until_stall"] = {"passes": passes, "pass_ms": [round(s * 1000, 2) for s in warm]}
    print(f"    queue stalls after {passes} passes carried out; {len(stalled.blocked)} gangs blocked")

    bound_pods = sorted(name for name, p in world.pods.items() if p["spec"].get("nodeName"))
    cordoned = sorted(name for name, n in world.nodes.items() if n["spec"].get("unschedulable"))
    samples: dict[str, list[float]] = {"pod_deleted": [], "node_uncordoned": []}
    admitted_after_event = 0
    mismatches = 0
    for i in range(args.events):
        kind = "node_uncordoned" if i % 5 == 4 and cordoned else "pod_deleted"
        if kind == "pod_deleted":
            victim = bound_pods.pop(rng.randrange(len(bound_pods)))
            world.model.delete_pod(NS, victim)
        else:
            name = cordoned.pop()
            world.nodes[name]["spec"]["unschedulable"] = False
            world.model.upsert_node(world.nodes[name])
        decision, seconds = timed(lambda: planner.plan(world.gang_list(), NOW))
        samples[kind].append(seconds)
        if i % max(1, args.events // 10) == 0 and decision != plan(
            world.model, world.gang_list(), NOW, config
        ):
            mismatches += 1
        admitted_after_event += len(decision.admit)
        world.execute(decision)
        planner.plan(world.gang_list(), NOW)  # the pass that sees the executed decision (not timed)
    results["per_event"] = {kind: {"events": len(s), **percentiles(s)} for kind, s in samples.items() if s}
    results["per_event"]["gangs_admitted_after_events"] = admitted_after_event
    results["per_event"]["checked_against_full_pass_mismatches"] = mismatches
    for kind, s in samples.items():
        if s:
            p = percentiles(s)
            print(
                f"(ii) {kind}: decision in median {p['median_ms']} ms, p95 {p['p95_ms']} ms, "
                f"max {p['max_ms']} ms over {len(s)} events"
            )
    print(
        f"    {admitted_after_event} gangs admitted after events; mismatches against a full pass: {mismatches}"
    )

    # Packing quality, on a fresh world carried to its stall.
    fresh = World(nodes, podgangs, pods)
    stall_planner = Planner(config, fresh.model)
    while fresh.execute(stall_planner.plan(fresh.gang_list(), NOW)):
        pass
    ours = usage(fresh)
    bound = demand_bound(fresh)
    baseline = first_fit(nodes, podgangs, {p["metadata"]["name"]: p for p in pods})
    results["packing"] = {"ours": ours, "demand_over_capacity": bound, "first_fit_baseline": baseline}
    print(
        f"(c) packing at stall: cpu {ours[CPU]:.1%} in use (first-fit baseline {baseline[CPU]:.1%}, "
        f"demand/capacity {bound[CPU]:.1%}); gpu {ours[GPU]:.1%} (baseline {baseline[GPU]:.1%}, "
        f"demand/capacity {bound[GPU]:.1%})"
    )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_gang", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    core = commands.add_parser("core", help="the pure decision core on a synthetic cluster")
    core.add_argument("--nodes", type=int, default=1000)
    core.add_argument("--gangs", type=int, default=1000)
    core.add_argument("--pods", type=int, default=10_000)
    core.add_argument("--events", type=int, default=50)
    core.add_argument("--seed", type=int, default=1)
    core.add_argument("--out", default="", help="write the results as JSON here")
    core.set_defaults(func=run_core)
    e2e = commands.add_parser("e2e", help="end to end on a local cluster: gated vs ungated, same pods")
    e2e.add_argument("--nodes", type=int, default=NODES_E2E)
    e2e.add_argument("--out", default="", help="write the results as JSON here")
    e2e.set_defaults(func=run_e2e)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())

"""The gang admitter's pure decision core: no I/O, no asyncio, no Kubernetes client.

The I/O layer (`admitter.feed`, `admitter.controller`) feeds a `ClusterModel` from informer events and asks
a `Planner` for a `Decision`, which `admitter.executor` and `admitter.status` carry out:

    model = ClusterModel()
    planner = Planner(PlanConfig(), model)
    model.upsert_node(node); model.upsert_pod(pod)          # from informer events
    decision = planner.decide(model, podgangs, time.time(), priority_of, settled)

Modules: quantity (resource quantities), resources (request vectors, what a pod requests), nodes (node
view and feasibility), pods (pod view and state), cluster (the model), gangs (PodGangs and their pods),
board (live capacity with per-shape summaries), placement (greedy best-fit with topology), plan (the
pass), decision (its result), explain (wording), room (would replacement pods fit: the capacity oracle of
rolling updates, `ReplacementRoom`). The reasons a decision gives are `grove_api.podgang`'s.
"""

from .cluster import ClusterModel, GangKey
from .decision import Admit, Blocked, Decision, Release, Reset, Unadmit, Waiting
from .gangs import Gang
from .plan import PlanConfig, Planner, plan
from .pods import PodInfo, PodKey, PodState
from .resources import Resources, pod_requests
from .room import ReplacementRoom

__all__ = [
    "Admit",
    "Blocked",
    "ClusterModel",
    "Decision",
    "Gang",
    "GangKey",
    "PlanConfig",
    "Planner",
    "PodInfo",
    "PodKey",
    "PodState",
    "Release",
    "ReplacementRoom",
    "Reset",
    "Resources",
    "Unadmit",
    "Waiting",
    "plan",
    "pod_requests",
]

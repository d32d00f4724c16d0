"""The gang admitter's pure decision core: no I/O, no asyncio, no Kubernetes client.

The I/O layer feeds a `ClusterModel` from informer events and asks a `Planner` for a `Decision`:

    model = ClusterModel()
    planner = Planner(PlanConfig(), model)
    model.upsert_node(node); model.upsert_pod(pod)          # from informer events
    decision = planner.decide(model, podgangs, time.time(), priority_of)

Modules: quantity (resource quantities), resources (request vectors, what a pod requests), nodes (node
view and feasibility), pods (pod view and state), cluster (the model), gangs (PodGangs and their pods),
board (live capacity with per-shape summaries), placement (greedy best-fit with topology), plan (the
pass), decision (its result), explain (wording).
"""

from .cluster import ClusterModel, GangKey
from .decision import Admit, Blocked, Decision, Release, Reset, Waiting
from .gangs import Gang
from .plan import PlanConfig, Planner, plan
from .pods import PodInfo, PodKey, PodState
from .resources import Resources, pod_requests

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
    "Reset",
    "Resources",
    "Waiting",
    "plan",
    "pod_requests",
]

"""The chaos workload: a PodCliqueSet with every kind of child the operator writes.

Per PodCliqueSet replica: a standalone clique `router` (autoscaled, hence an HPA), and a scaling group `sg`
of `leader` x1 + `worker` x N whose replicas beyond its minAvailable get PodGangs of their own. The
PodCliqueSet itself brings the headless Services and grove-initc's ServiceAccount, Role, RoleBinding and
token Secret. Pods ask for 10m CPU and run on a private pool of fake nodes (tests/gang.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.builders import clique, group, pcs
from tests.gang import pool_pod_spec

NAME = "chaos"
ROUTER, LEADER, WORKER, GROUP = "router", "leader", "worker", "sg"
IMAGES = ("registry.local/chaos:v1", "registry.local/chaos:v2")
POD_CPU = "10m"


@dataclass(frozen=True)
class Shape:
    replicas: int  # PodCliqueSet replicas
    routers: int  # router pods per replica
    groups: int  # scaling-group replicas per PodCliqueSet replica
    group_min: int  # the scaling group's minAvailable
    workers: int  # worker pods per scaling-group replica

    @property
    def pods_per_replica(self) -> int:
        return self.routers + self.groups * (1 + self.workers)

    @property
    def pods(self) -> int:
        return self.replicas * self.pods_per_replica


FULL = Shape(replicas=10, routers=4, groups=8, group_min=2, workers=11)  # 1,000 pods
SHORT = Shape(replicas=2, routers=2, groups=4, group_min=2, workers=11)  # 100 pods


def pod_spec(pool: str, image: str) -> dict[str, Any]:
    spec = pool_pod_spec(pool)
    container = spec["containers"][0]
    container["image"] = image
    container["resources"] = {"requests": {"cpu": POD_CPU}}
    return spec


def manifest(namespace: str, pool: str, shape: Shape, image: str = IMAGES[0]) -> dict[str, Any]:
    """The PodCliqueSet; `image` is every clique's image (a rolling update changes it)."""
    spec = pod_spec(pool, image)
    autoscaling = {"minReplicas": 1, "maxReplicas": 2 * shape.routers}
    return pcs(
        NAME,
        namespace=namespace,
        replicas=shape.replicas,
        cliques=[
            clique(ROUTER, replicas=shape.routers, min_available=1, pod=spec, autoscaling=autoscaling),
            clique(LEADER, replicas=1, min_available=1, pod=spec),
            clique(WORKER, replicas=shape.workers, min_available=1, pod=spec),
        ],
        groups=[group(GROUP, [LEADER, WORKER], replicas=shape.groups, min_available=shape.group_min)],
    )

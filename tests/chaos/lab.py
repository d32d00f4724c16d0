"""The chaos suite's hands and eyes on a cluster: the workload's operations, snapshots of everything the
operator writes, convergence waits, and the counters that prove a fault took (the apiserver's own request
counts, the operator's metrics)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from kubernetes_asyncio.client import ApiClient
from prometheus_client.parser import text_string_to_metric_families

from grove_api import constants as c
from grove_api import naming
from grove_api.refs import Ref
from kube import resources
from kube.client import KubeClient, KubeError, Unavailable
from localcluster import api as api_probe
from localcluster import operator
from localcluster.state import ClusterInfo
from tests.chaos.invariants import Expected, problems
from tests.chaos.workload import GROUP, IMAGES, NAME, Shape, manifest
from tests.gang import Pool

JSON = dict[str, Any]
T = TypeVar("T")
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PHASES = ("create", "scale", "update", "delete")
RESOURCES = {
    "PodCliqueSet": resources.PODCLIQUESET,
    "PodClique": resources.PODCLIQUE,
    "PodCliqueScalingGroup": resources.PODCLIQUESCALINGGROUP,
    "PodGang": resources.PODGANG,
    "Pod": resources.POD,
    "Service": resources.SERVICE,
    "ServiceAccount": resources.SERVICE_ACCOUNT,
    "Role": resources.ROLE,
    "RoleBinding": resources.ROLE_BINDING,
    "Secret": resources.SECRET,
    "HorizontalPodAutoscaler": resources.HPA,
}


@dataclass
class Lab:
    """One run: the cluster, an admin client, the private node pool, the seeded random source, and the
    namespace of the fault under way."""

    cluster: ClusterInfo
    api: ApiClient
    pool: Pool
    rng: random.Random
    shape: Shape
    converge_timeout: float
    namespace: str = ""
    say: Callable[[str], None] = print
    kube: KubeClient = field(init=False)

    def __post_init__(self) -> None:
        self.kube = KubeClient(self.api)

    def pcs_ref(self) -> Ref:
        return Ref(c.API_VERSION, c.KIND_PODCLIQUESET, self.namespace, NAME)

    # --- operations of the lifecycle -----------------------------------------------------------------
    async def act(self, phase: str, now: Expected | None) -> Expected:
        """Send the phase's request (retried while the apiserver throttles or is away, as a user's tooling
        would) and return the state it asks for."""
        shape = self.shape
        if phase == "create":
            doc = manifest(self.namespace, self.pool.name, shape)
            await retry(lambda: self.kube.create(doc))
            return Expected(shape, replicas=shape.replicas, image=IMAGES[0])
        assert now is not None
        if phase == "scale":  # a PodCliqueSet replica more, and one scaling group of replica 0 grown
            grown = {0: now.group_replicas(0) + 1}
            group = Ref(
                c.API_VERSION,
                c.KIND_PODCLIQUESCALINGGROUP,
                self.namespace,
                naming.scaling_group(NAME, 0, GROUP),
            )
            await retry(
                lambda: self.kube.patch(
                    self.pcs_ref(),
                    {"spec": {"replicas": now.replicas + 1}},
                    content_type=MERGE,
                    subresource="scale",
                )
            )
            await retry(
                lambda: self.kube.patch(
                    group, {"spec": {"replicas": grown[0]}}, content_type=MERGE, subresource="scale"
                )
            )
            return replace(now, replicas=now.replicas + 1, groups=grown)
        if phase == "update":  # every clique's image: a rolling update of every pod
            patch = [
                {
                    "op": "replace",
                    "path": f"/spec/template/cliques/{k}/spec/podSpec/containers/0/image",
                    "value": IMAGES[1],
                }
                for k in range(3)
            ]
            await retry(lambda: self.kube.patch(self.pcs_ref(), patch, content_type=JSON_PATCH))
            return replace(now, image=IMAGES[1])
        assert phase == "delete"
        await retry(lambda: self.kube.delete(self.pcs_ref()))
        return replace(now, deleted=True)

    # --- observing ----------------------------------------------------------------------------------
    async def snapshot(self) -> dict[str, list[JSON]]:
        """Every object of the namespace of the kinds the operator writes (the default ServiceAccount
        aside, which Kubernetes makes), and the nodes."""
        lists = await asyncio.gather(
            *(self.kube.list_all(r, namespace=self.namespace) for r in RESOURCES.values())
        )
        out = {kind: items for kind, (items, _) in zip(RESOURCES, lists, strict=True)}
        out["ServiceAccount"] = [o for o in out["ServiceAccount"] if o["metadata"]["name"] != "default"]
        out["Node"], _ = await self.kube.list_all(resources.NODE)
        return out

    async def converge(self, expected: Expected, started: float) -> tuple[bool, list[str]]:
        """Wait until the namespace is exactly `expected` (True, []) or the deadline passes (False and
        what is still wrong)."""
        left: list[str] = []
        while time.monotonic() - started < self.converge_timeout:
            try:
                left = problems(expected, await self.snapshot())
            except Unavailable as err:
                left = [f"apiserver unavailable: {err}"]
            if not left:
                return True, []
            await asyncio.sleep(1.0)
        return False, left

    async def apiserver_counter(self, name: str, **labels: str) -> float:
        """The sum of the apiserver's counter `name` over series matching `labels` (its /metrics)."""
        resp = await self.kube.open("GET", "/metrics")
        try:
            text = (await resp.read()).decode()
        finally:
            resp.release()
        return _sum(text, name, labels)

    async def operator_counter(self, name: str, **labels: str) -> float:
        """The sum of the session operator's counter `name` over series matching `labels`."""
        status, body = await asyncio.to_thread(api_probe.get, operator.metrics_url(self.cluster), None, 10)
        if status != 200:
            raise OSError(f"operator /metrics: HTTP {status}")
        return _sum(body.decode(), name, labels)


def _sum(text: str, name: str, labels: dict[str, str]) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def retry(call: Callable[[], Awaitable[T]], timeout: float = 120.0) -> T:
    """`call` until it is not refused for a transient reason (429, 5xx, connection, webhook away)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except Unavailable:
            if time.monotonic() > deadline:
                raise
        except KubeError as err:
            if "failed calling webhook" not in str(err) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.5)

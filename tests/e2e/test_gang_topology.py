"""Topology-aware gang admission on the live local cluster: a PodCliqueSet packed into one zone gets a PodGang
carrying the translated constraint (node label keys of its ClusterTopologyBinding), and the gang admitter
places the whole gang in one zone or holds it, fully gated, saying why.

Each test has its own ClusterTopologyBinding and a private pool of one-pod nodes in two zones (zone a has
the lower node indices, so an unconstrained best fit would start there). The PodCliqueSet is created while
every node is cordoned and capacity is uncordoned only once its PodGang carries the constraint, so the
placement never races the reconciler's binding cache. Every test runs under the GangInvariant.

Needs `topologyAwareScheduling.enabled: true` in the local cluster's OperatorConfiguration (the PodCliqueSet
webhook refuses topology constraints otherwise), which `grove-cluster up` writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from grove_api import constants as c
from grove_api.operatorconfig import load
from grove_api.podgang import REASON_TOPOLOGY
from localcluster import nodes as fake_nodes
from localcluster import operator as grove_operator
from localcluster.state import ClusterInfo
from tests.gang import GangInvariant, Pool, bound_node, gated, pod_dicts, pool_node, wl1
from tests.kube import kubectl
from tests.waiting import until

ZONE, RACK = fake_nodes.ZONE_LABEL, fake_nodes.RACK_LABEL
PODS = 6  # wl1 with one scaling-group replica: pc-a x2, pc-b x1, pc-c x3, every minimum = replicas
PER_ZONE = PODS
CTB = (c.GROUP, c.VERSION, c.PLURAL_CLUSTERTOPOLOGYBINDING)


@dataclass
class Zoned:
    """A test's ClusterTopologyBinding and its pool: one `Pool` of cordoned nodes per zone, one pod each."""

    api: client.ApiClient
    kubeconfig: Path
    namespace: str
    binding: str
    pool: str
    zones: dict[str, Pool]

    def zone_of(self, node: str) -> str:
        return next(zone for zone, pool in self.zones.items() if node in pool.nodes)

    def apply(self, doc: dict[str, Any]) -> None:
        kubectl(self.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))

    async def podgang(self, name: str) -> dict[str, Any] | None:
        with contextlib.suppress(client.ApiException):
            obj: dict[str, Any] = await client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                c.SCHEDULER_GROUP, c.VERSION, self.namespace, c.PLURAL_PODGANG, name
            )
            return obj
        return None

    async def admitted_condition(self, gang: str) -> dict[str, Any] | None:
        obj = await self.podgang(gang)
        for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
            if cond["type"] == "Admitted":
                return dict(cond)
        return None

    async def packed_by_zone(self, gang: str) -> dict[str, Any]:
        """The PodGang, once it carries the translated zone constraint and all its pods exist (gated)."""

        async def ready() -> dict[str, Any] | None:
            obj = await self.podgang(gang)
            pods = await pod_dicts(self.api, self.namespace)
            if obj is None or len(pods) < PODS:
                return None
            constraint = obj["spec"].get("topologyConstraint")
            return obj if constraint == {"packConstraint": {"required": ZONE}} else None

        obj = await until(f"PodGang {gang} with a zone pack constraint", ready, timeout=60)
        assert obj is not None
        assert obj["metadata"]["annotations"][c.ANNOTATION_TOPOLOGY_NAME] == self.binding
        assert "topologyConstraintGroupConfigs" not in obj["spec"]
        assert all("topologyConstraint" not in g for g in obj["spec"]["podgroups"])
        return obj

    async def running_in_one_zone(self) -> str:
        """Every pod of the workload bound; returns the one zone they all landed in."""

        async def all_bound() -> list[dict[str, Any]] | None:
            pods = await pod_dicts(self.api, self.namespace)
            return pods if len(pods) == PODS and all(bound_node(p) for p in pods) else None

        pods = await until(f"all {PODS} pods bound", all_bound, timeout=90)
        assert pods is not None
        zones = {self.zone_of(str(bound_node(p))) for p in pods}
        assert len(zones) == 1, {p["metadata"]["name"]: bound_node(p) for p in pods}
        return zones.pop()


@contextlib.asynccontextmanager
async def zoned_nodes(
    api: client.ApiClient, pool: str, zones: dict[str, int]
) -> AsyncIterator[dict[str, Pool]]:
    """Cordoned one-pod nodes of pool `pool` (tests/gang.py), `zones[z]` of them labelled with zone
    `<pool>-<z>` and two to a rack, numbered in zone order."""
    core = client.CoreV1Api(api)
    by_zone: dict[str, list[str]] = {}
    index = 0
    try:
        for zone, size in zones.items():
            for _ in range(size):
                node = pool_node(pool, index)
                node["metadata"]["labels"].update(
                    {ZONE: f"{pool}-{zone}", RACK: f"{pool}-{zone}-{index // 2}"}
                )
                node["spec"]["unschedulable"] = True
                await core.create_node(node)  # type: ignore[arg-type]
                by_zone.setdefault(zone, []).append(node["metadata"]["name"])
                index += 1
        await fake_nodes.wait_ready(api, [n for names in by_zone.values() for n in names], timeout=60)
        yield {zone: Pool(api, pool, names) for zone, names in by_zone.items()}
    finally:
        names = [n for names in by_zone.values() for n in names]
        await asyncio.gather(*(core.delete_node(n) for n in names), return_exceptions=True)


@pytest.fixture
async def zoned(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str, gang_invariant: GangInvariant
) -> AsyncIterator[Zoned]:
    """A ClusterTopologyBinding (zone, rack) and a pool of PER_ZONE cordoned nodes in each of zones a and b;
    the gang invariant watches the namespace."""
    config = load(grove_operator.config_path(cluster))
    assert config.topology_aware_scheduling.enabled, "grove-cluster up writes topologyAwareScheduling on"
    objects = client.CustomObjectsApi(api_client)
    binding = f"t-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_CLUSTERTOPOLOGYBINDING,
        "metadata": {"name": binding},
        "spec": {"levels": [{"domain": "zone", "key": ZONE}, {"domain": "rack", "key": RACK}]},
    }
    await objects.create_cluster_custom_object(*CTB, body)
    pool = f"p{uuid.uuid4().hex[:6]}"
    try:
        async with zoned_nodes(api_client, pool, {"a": PER_ZONE, "b": PER_ZONE}) as zones:
            yield Zoned(api_client, Path(cluster.kubeconfig), namespace, binding, pool, zones)
    finally:
        with contextlib.suppress(client.ApiException):
            await objects.delete_cluster_custom_object(*CTB, binding)


def packed_workload(z: Zoned) -> dict[str, Any]:
    constraint = {"topologyName": z.binding, "pack": {"required": "zone"}}
    return wl1("wl", z.namespace, z.pool, group_replicas=1, group_min=1, topologyConstraint=constraint)


async def test_gang_goes_to_the_zone_that_holds_all_of_it(zoned: Zoned) -> None:
    z = zoned
    z.apply(packed_workload(z))
    await z.packed_by_zone("wl-0")
    await z.zones["a"].uncordon(PODS - 2)  # first in node order, but too small for the gang
    await z.zones["b"].uncordon(PODS)
    assert await z.running_in_one_zone() == "b"


async def test_gang_waits_gated_until_one_zone_has_room(zoned: Zoned) -> None:
    z = zoned
    z.apply(packed_workload(z))
    await z.packed_by_zone("wl-0")
    await z.zones["a"].uncordon(PODS - 2)
    await z.zones["b"].uncordon(PODS - 2)  # room for more than the gang in all, not in one zone

    async def topology_blocked() -> dict[str, Any] | None:
        cond = await z.admitted_condition("wl-0")
        return cond if cond and cond["status"] == "False" and cond["reason"] == REASON_TOPOLOGY else None

    cond = await until("PodGang wl-0 to say no zone has room", topology_blocked, timeout=30)
    assert cond is not None
    assert ZONE in cond["message"], cond["message"]
    pods = await pod_dicts(z.api, z.namespace)
    assert len(pods) == PODS and all(gated(p) and not bound_node(p) for p in pods)

    await z.zones["b"].uncordon(2)
    assert await z.running_in_one_zone() == "b"


async def test_podgang_loses_a_constraint_its_binding_no_longer_has(zoned: Zoned) -> None:
    """The reconciler creates PodGangs with a POST, so a later server-side apply that leaves the constraint
    out would not remove it: the spec is replaced whole."""
    z = zoned
    z.apply(packed_workload(z))
    await z.packed_by_zone("wl-0")
    objects = client.CustomObjectsApi(z.api)
    levels = {"spec": {"levels": [{"domain": "rack", "key": RACK}]}}  # the zone level goes
    await objects.patch_cluster_custom_object(
        *CTB, z.binding, levels, _content_type="application/merge-patch+json"
    )

    async def unconstrained() -> dict[str, Any] | None:
        obj = await z.podgang("wl-0")
        return obj if obj is not None and "topologyConstraint" not in obj["spec"] else None

    obj = await until("PodGang wl-0 without its zone constraint", unconstrained, timeout=30)
    assert obj is not None and len(obj["spec"]["podgroups"]) >= 1

"""PodGang topology (docs/api.md, "PodGangs"): the pack constraints of a PodCliqueSet, its scaling groups and
cliques reach its PodGangs as node label keys of the ClusterTopologyBinding, only with topology-aware
scheduling enabled and the binding present; and the manager puts the binding's levels in the snapshot."""

from __future__ import annotations

import dataclasses
from typing import Any

from grove_api import constants as c
from grove_api.operatorconfig import OperatorConfiguration
from kube import resources
from kube.resources import Resource
from reconciler.manager import Manager
from reconciler.planner import topology
from reconciler.planner.actions import Apply
from reconciler.planner.plan import plan
from reconciler.planner.snapshot import Obj
from tests.builders import clique, group, pcs
from tests.fakes.world import World, create_pcs

ZONE, RACK, HOST = "topology.kubernetes.io/zone", "topology.grove.io/rack", "kubernetes.io/hostname"
LEVELS = {"zone": ZONE, "rack": RACK, "host": HOST}
BINDING = "dc"


def tc(required: str | None = None, preferred: str | None = None, **extra: Any) -> dict[str, Any]:
    pack = {k: v for k, v in (("required", required), ("preferred", preferred)) if v}
    return {"topologyName": BINDING, **({"pack": pack} if pack else {}), **extra}


def workload(
    *, pcs_tc: Obj | None = None, group_tc: Obj | None = None, clique_tc: Obj | None = None, replicas: int = 1
) -> Obj:
    """a (standalone, 2 pods) and scaling group sg = {b, w} with 3 replicas, minAvailable 2: per replica a
    base gang (a, sg-0, sg-1) and one scaled gang (sg-2)."""
    b, sg = clique("b"), group("sg", ["b", "w"], replicas=3, min_available=2)
    cliques = [clique("a", replicas=2, min_available=2), b, clique("w", replicas=2, min_available=2)]
    doc = pcs("wl", replicas=replicas, cliques=cliques, groups=[sg])
    for obj, constraint in ((doc["spec"]["template"], pcs_tc), (sg, group_tc), (b, clique_tc)):
        if constraint:
            obj["topologyConstraint"] = constraint
    return doc


def converge(doc: Obj, levels: dict[str, str] | None = LEVELS) -> World:
    """Plan and apply until nothing is left to do, with the binding's levels in every snapshot."""
    world = World()
    create_pcs(world, doc)
    for _ in range(20):
        actions = plan(dataclasses.replace(world.snapshot("default", "wl"), topology_levels=levels)).actions
        if not actions:
            return world
        for action in actions:
            world.apply(action)
        world.run_pods()
    raise AssertionError("no convergence")


def gangs(world: World) -> dict[str, Obj]:
    return {g["metadata"]["name"]: g for g in world.of_kind("PodGang")}


def topology_fields(gang: Obj) -> dict[str, Any]:
    spec = gang["spec"]
    return {
        "topologyConstraint": spec.get("topologyConstraint"),
        "topologyConstraintGroupConfigs": spec.get("topologyConstraintGroupConfigs"),
        "podgroups": {
            g["name"]: g["topologyConstraint"] for g in spec["podgroups"] if "topologyConstraint" in g
        },
        "annotation": (gang["metadata"].get("annotations") or {}).get(c.ANNOTATION_TOPOLOGY_NAME),
    }


NOTHING: dict[str, Any] = {
    "topologyConstraint": None,
    "topologyConstraintGroupConfigs": None,
    "podgroups": {},
    "annotation": None,
}
EVERYWHERE = workload(pcs_tc=tc("zone"), group_tc=tc("rack"), clique_tc=tc("host"))


def test_without_the_binding_levels_no_topology_reaches_the_podgangs() -> None:
    """TAS disabled, or the binding missing: the manager gives no levels, and nothing is translated."""
    world = converge(EVERYWHERE, levels=None)
    assert sorted(gangs(world)) == ["wl-0", "wl-0-sg-0"]
    for gang in gangs(world).values():
        assert topology_fields(gang) == NOTHING


def test_pcs_required_packs_the_base_gang_and_falls_back_to_the_scaled_gang() -> None:
    found = gangs(converge(workload(pcs_tc=tc("zone"))))
    zone = {"packConstraint": {"required": ZONE}}
    assert topology_fields(found["wl-0"]) == {**NOTHING, "topologyConstraint": zone, "annotation": BINDING}
    assert topology_fields(found["wl-0-sg-0"]) == {
        **NOTHING,
        "topologyConstraint": zone,
        "annotation": BINDING,
    }


def test_deprecated_pack_domain_is_required_and_preferred_is_translated() -> None:
    legacy = gangs(converge(workload(pcs_tc={"topologyName": BINDING, "packDomain": "rack"})))
    assert legacy["wl-0"]["spec"]["topologyConstraint"] == {"packConstraint": {"required": RACK}}
    both = gangs(converge(workload(pcs_tc=tc("zone", "rack"))))
    assert both["wl-0"]["spec"]["topologyConstraint"] == {
        "packConstraint": {"required": ZONE, "preferred": RACK}
    }
    soft = gangs(converge(workload(pcs_tc=tc(preferred="rack"))))
    assert soft["wl-0"]["spec"]["topologyConstraint"] == {"packConstraint": {"preferred": RACK}}


def test_scaling_group_constraint_packs_each_base_replica_and_each_scaled_gang() -> None:
    found = gangs(converge(workload(pcs_tc=tc("zone"), group_tc=tc("rack"), replicas=2)))
    rack = {"packConstraint": {"required": RACK}}
    for i in (0, 1):
        base = found[f"wl-{i}"]
        assert base["spec"]["topologyConstraint"] == {"packConstraint": {"required": ZONE}}
        assert base["spec"]["topologyConstraintGroupConfigs"] == [
            {
                "name": f"wl-{i}-sg-{k}",
                "podGroupNames": [f"wl-{i}-sg-{k}-b", f"wl-{i}-sg-{k}-w"],
                "topologyConstraint": rack,
            }
            for k in (0, 1)
        ]
        scaled = found[f"wl-{i}-sg-0"]
        assert [g["name"] for g in scaled["spec"]["podgroups"]] == [f"wl-{i}-sg-2-b", f"wl-{i}-sg-2-w"]
        assert topology_fields(scaled) == {**NOTHING, "topologyConstraint": rack, "annotation": BINDING}


def test_scaling_group_constraint_without_a_pcs_constraint() -> None:
    found = gangs(converge(workload(group_tc=tc("rack"))))
    assert "topologyConstraint" not in found["wl-0"]["spec"]
    assert len(found["wl-0"]["spec"]["topologyConstraintGroupConfigs"]) == 2
    assert found["wl-0"]["metadata"]["annotations"] == {c.ANNOTATION_TOPOLOGY_NAME: BINDING}
    assert found["wl-0-sg-0"]["spec"]["topologyConstraint"] == {"packConstraint": {"required": RACK}}


def test_clique_constraint_packs_its_podgroups_only() -> None:
    found = gangs(converge(workload(clique_tc=tc("host"))))
    host = {"packConstraint": {"required": HOST}}
    assert topology_fields(found["wl-0"]) == {
        **NOTHING,
        "podgroups": {"wl-0-sg-0-b": host, "wl-0-sg-1-b": host},
        "annotation": BINDING,
    }
    assert topology_fields(found["wl-0-sg-0"]) == {
        **NOTHING,
        "podgroups": {"wl-0-sg-2-b": host},
        "annotation": BINDING,
    }


def test_domains_missing_from_the_binding_are_omitted() -> None:
    levels = {"zone": ZONE}  # no rack, no host
    found = gangs(
        converge(workload(pcs_tc=tc("zone", "rack"), group_tc=tc("rack"), clique_tc=tc("host")), levels)
    )
    zone = {"packConstraint": {"required": ZONE}}
    assert topology_fields(found["wl-0"]) == {**NOTHING, "topologyConstraint": zone, "annotation": BINDING}
    # the scaled gang's own constraint translates to nothing: the PodCliqueSet's applies
    assert topology_fields(found["wl-0-sg-0"]) == {
        **NOTHING,
        "topologyConstraint": zone,
        "annotation": BINDING,
    }
    nothing = gangs(converge(workload(pcs_tc=tc("rack")), levels))
    assert topology_fields(nothing["wl-0"]) == NOTHING


def test_converged_with_topology_needs_no_writes() -> None:
    world = converge(EVERYWHERE)
    snap = dataclasses.replace(world.snapshot("default", "wl"), topology_levels=LEVELS)
    assert plan(snap).actions == []


def test_binding_appearing_later_adds_the_topology_to_existing_podgangs() -> None:
    world = converge(EVERYWHERE, levels=None)
    snap = dataclasses.replace(world.snapshot("default", "wl"), topology_levels=LEVELS)
    applied = {
        a.obj["metadata"]["name"]
        for a in plan(snap).actions
        if isinstance(a, Apply) and a.obj["kind"] == "PodGang"
    }
    assert applied == {"wl-0", "wl-0-sg-0"}


def test_topology_name_is_the_first_explicit_one() -> None:
    assert topology.topology_name(workload()["spec"]["template"]) == ""
    unnamed = {"pack": {"required": "rack"}}
    doc = workload(pcs_tc=unnamed, group_tc=unnamed, clique_tc={**unnamed, "topologyName": "x"})
    assert topology.topology_name(doc["spec"]["template"]) == "x"
    assert topology.topology_name(workload(group_tc=tc("rack"))["spec"]["template"]) == BINDING


# --- the manager: levels in the snapshot, binding events wake the PodCliqueSets that name it --------------


class FakeLister:
    """Enough of the list/watch client for `Informer.relist`."""

    def __init__(self, objects: dict[str, list[Obj]]) -> None:
        self.objects = objects

    async def list_all(self, resource: Resource, **_: Any) -> tuple[list[Obj], str]:
        return list(self.objects.get(resource.kind, [])), "1"

    async def watch(self, resource: Resource, **_: Any) -> Any:
        raise NotImplementedError


def binding(name: str, levels: dict[str, str]) -> Obj:
    return {
        "apiVersion": "grove.io/v1alpha1",
        "kind": c.KIND_CLUSTERTOPOLOGYBINDING,
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"levels": [{"domain": d, "key": k} for d, k in levels.items()]},
    }


async def manager_with(tas: bool, bindings: list[Obj]) -> Manager:
    doc = workload(pcs_tc=tc("zone"))
    doc["metadata"]["resourceVersion"] = "1"
    lister = FakeLister({resources.PODCLIQUESET.kind: [doc], resources.CLUSTERTOPOLOGYBINDING.kind: bindings})
    config = OperatorConfiguration.model_validate({"topologyAwareScheduling": {"enabled": tas}})
    manager = Manager(lister, config)  # type: ignore[arg-type]
    await manager.podcliquesets.relist()
    return manager


async def test_manager_snapshot_has_the_named_bindings_levels_only_with_tas_enabled() -> None:
    levels = {"zone": ZONE, "rack": RACK}
    enabled = await manager_with(True, [binding(BINDING, levels), binding("other", {"host": HOST})])
    await enabled.topologies.relist()
    snap = enabled.snapshot(("default", "wl"))
    assert snap is not None and snap.topology_levels == levels
    disabled = await manager_with(False, [binding(BINDING, levels)])
    await disabled.topologies.relist()
    snap = disabled.snapshot(("default", "wl"))
    assert snap is not None and snap.topology_levels is None
    missing = await manager_with(True, [binding("other", levels)])
    await missing.topologies.relist()
    snap = missing.snapshot(("default", "wl"))
    assert snap is not None and snap.topology_levels is None


async def test_manager_binding_events_enqueue_the_podcliquesets_naming_it() -> None:
    manager = await manager_with(True, [binding("other", {"host": HOST})])
    manager.queue = type(manager.queue)(name="test")
    await manager.topologies.relist()
    assert len(manager.queue) == 0  # nobody names "other"
    manager.topologies.client = FakeLister({c.KIND_CLUSTERTOPOLOGYBINDING: [binding(BINDING, LEVELS)]})
    await manager.topologies.relist()  # "other" deleted, "dc" added
    assert len(manager.queue) == 1

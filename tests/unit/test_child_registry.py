"""The registry of child kinds (reconciler/planner/registry.py): every entry is a kind the Kubernetes layer
serves, and a new kind is one entry plus its desired objects: the manager watches it, the snapshot holds
it, the planner creates, updates and prunes it and deletes it with its PodCliqueSet, and nothing else
changes (docs/reconciler.md, "Adding a child kind")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from grove_api import constants as c
from kube import resources
from reconciler.planner import children, registry
from reconciler.planner.actions import Apply, Create, Delete, RemoveFinalizer
from reconciler.planner.snapshot import Obj, Snapshot
from tests.fakes.cluster import FakeCluster, relisted
from tests.unit.test_rollout import pcs, running, step, workload

COMPONENT = "pcs-test-configmap"


def config_maps(snap: Snapshot) -> list[Obj]:
    """A new kind's planner module: one ConfigMap per PodCliqueSet replica."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": children.child_meta(
                snap,
                f"{snap.name}-{i}-cm",
                {**children.default_labels(snap.name), c.LABEL_COMPONENT: COMPONENT},
                snap.pcs,
            ),
            "data": {"replicas": str(snap.replicas)},
        }
        for i in range(snap.replicas)
    ]


CONFIG_MAPS = registry.ChildKind(
    "config_maps", "v1", "ConfigMap", teardown=10, desired=config_maps, prune=COMPONENT
)


@pytest.fixture
def with_config_maps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(registry, "CHILD_KINDS", (*registry.CHILD_KINDS, CONFIG_MAPS))
    yield


def test_every_entry_is_a_kind_the_kubernetes_layer_serves_once() -> None:
    kinds = registry.CHILD_KINDS
    for kind in kinds:
        assert resources.lookup(kind.api_version, kind.kind).namespaced
    assert len({k.key for k in kinds}) == len({k.kind for k in kinds}) == len(kinds)
    assert len({k.teardown for k in kinds}) == len(kinds), "teardown order is total"
    structural = [k for k in kinds if k.desired is None]
    assert structural == [registry.PODCLIQUES, registry.SCALING_GROUPS, registry.PODGANGS, registry.PODS]


def test_the_structural_accessors_read_their_entries() -> None:
    objs = {k.key: {f"{k.kind}-a": {"metadata": {"name": f"{k.kind}-a"}}} for k in registry.CHILD_KINDS}
    snap = Snapshot(pcs={"metadata": {"name": "w"}}, now=datetime.now(UTC), children=objs)
    assert snap.podcliques is objs[registry.PODCLIQUES.key]
    assert snap.scaling_groups is objs[registry.SCALING_GROUPS.key]
    assert snap.podgangs is objs[registry.PODGANGS.key]
    assert snap.pods == list(objs[registry.PODS.key].values())
    assert snap.existing(registry.HPAS.key) is objs[registry.HPAS.key]
    assert snap.existing("unknown") == {}


@pytest.mark.usefixtures("with_config_maps")
def test_a_new_kind_is_created_updated_pruned_and_torn_down() -> None:
    world = running(workload(replicas=2))
    assert [o["metadata"]["name"] for o in world.of_kind("ConfigMap")] == ["w-0-cm", "w-1-cm"]
    assert all(
        o["metadata"]["ownerReferences"][0]["kind"] == c.KIND_PODCLIQUESET for o in world.of_kind("ConfigMap")
    )
    assert not step(world).actions, "converged: no write for the new kind either"

    pcs(world)["spec"]["replicas"] = 1
    result = step(world)
    assert [a.ref.name for a in result.actions if isinstance(a, Delete) and a.ref.kind == "ConfigMap"] == [
        "w-1-cm"
    ]
    assert [
        a.obj["metadata"]["name"]
        for a in result.actions
        if isinstance(a, Apply) and a.obj["kind"] == "ConfigMap"
    ] == ["w-0-cm"]
    (cm,) = world.of_kind("ConfigMap")
    assert cm["data"] == {"replicas": "1"}

    pcs(world)["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    result = step(world)
    deletes = [a for a in result.actions if isinstance(a, Delete)]
    assert deletes[-1].ref.kind == "ConfigMap" and deletes[-1].ref.name == "w-0-cm", "teardown order 10: last"
    assert not any(isinstance(a, Create | RemoveFinalizer) for a in result.actions)
    assert isinstance(step(world).actions[-1], RemoveFinalizer), "once everything is deleted"
    world.reconcile("default", "w")
    assert world.objects == {}


@pytest.mark.usefixtures("with_config_maps")
async def test_the_manager_watches_a_new_kind_and_snapshots_it() -> None:
    world = running(workload(replicas=1))
    foreign = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "default"}}
    manager = await relisted(FakeCluster([*world.objects.values(), foreign]))
    assert manager.children[CONFIG_MAPS.key].resource is resources.CONFIG_MAP
    snap = manager.snapshot(("default", "w"))
    assert snap is not None
    assert list(snap.existing(CONFIG_MAPS.key)) == ["w-0-cm"], "only what is managed and part of it"


def test_without_the_entry_the_world_has_no_such_kind() -> None:
    assert CONFIG_MAPS not in registry.CHILD_KINDS
    assert not running(workload(replicas=1)).of_kind("ConfigMap")

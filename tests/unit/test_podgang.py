"""The PodGang status rules both of its writers apply (grove_api.podgang): when every pod has been created
(Initialized), and that the gang admitter, reading its trimmed pod cache, finds the same as the reconciler
reading its snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from admitter.core.pods import essentials
from grove_api import conditions as cond
from grove_api import podgang as pg
from reconciler.planner.snapshot import name_of
from tests.fakes.world import World, create_pcs
from tests.samples import runnable_samples

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
JSON = dict[str, Any]


def pclq(name: str, replicas: int) -> JSON:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"replicas": replicas},
    }


def pod(name: str, owner: str, phase: str = "Pending", terminating: bool = False) -> JSON:
    meta: JSON = {
        "name": name,
        "namespace": "ns",
        "ownerReferences": [
            {"kind": "ReplicaSet", "name": "x", "uid": "uid-x"},
            {"kind": "PodClique", "name": owner, "uid": f"uid-{owner}", "controller": True},
        ],
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-03-01T12:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


def gang(*groups: tuple[str, list[str]]) -> JSON:
    podgroups = [
        {"name": n, "podReferences": [{"namespace": "ns", "name": r} for r in refs]} for n, refs in groups
    ]
    return {"metadata": {"name": "g", "namespace": "ns"}, "spec": {"podgroups": podgroups}}


@pytest.mark.parametrize(
    ("cliques", "pods", "groups", "created"),
    [
        ([pclq("a", 2)], [pod("a-0", "a"), pod("a-1", "a")], [("a", ["a-0", "a-1"])], True),
        ([pclq("a", 2)], [pod("a-0", "a")], [("a", ["a-0", "a-1"])], False),  # a pod not created
        ([], [pod("a-0", "a")], [("a", ["a-0"])], False),  # its PodClique not created
        ([pclq("a", 2)], [pod("a-0", "a"), pod("a-1", "a")], [("a", ["a-0"])], False),  # not referenced
        ([pclq("a", 1)], [pod("a-0", "b")], [("a", ["a-0"])], False),  # another PodClique's pod
        ([pclq("a", 1)], [pod("a-0", "a", terminating=True)], [("a", ["a-0"])], False),
        ([pclq("a", 1)], [pod("a-0", "a", phase="Failed")], [("a", ["a-0"])], False),
        ([pclq("a", 1)], [pod("a-0", "a"), pod("a-1", "a")], [("a", ["a-0", "a-1"])], True),  # more is fine
        (
            [pclq("a", 1), pclq("b", 1)],
            [pod("a-0", "a"), pod("b-0", "b")],
            [("a", ["a-0"]), ("b", ["b-0"])],
            True,
        ),
        ([pclq("a", 1), pclq("b", 1)], [pod("a-0", "a")], [("a", ["a-0"]), ("b", ["b-0"])], False),
        ([pclq("a", 0)], [], [("a", [])], True),
    ],
)
def test_all_pods_created(cliques: list[JSON], pods: list[JSON], groups: list[Any], created: bool) -> None:
    by_clique = {name_of(q): q for q in cliques}
    by_pod = {name_of(p): p for p in pods}
    assert pg.all_pods_created(gang(*groups), by_clique.get, by_pod.get) is created
    trimmed = {name_of(p): essentials(p) for p in pods}  # the admitter's own pod cache keeps the controller
    assert pg.all_pods_created(gang(*groups), by_clique.get, trimmed.get) is created


def test_with_initialized_lifecycle() -> None:
    pending = pg.with_initialized([], NOW, created=False)
    assert [cond.condition_key(x) for x in pending] == [
        (
            "Initialized",
            "False",
            "PodGangPodsCreationPending",
            "Not all constituent pods have been created yet",
        )
    ]
    later = NOW + timedelta(minutes=1)
    done = pg.with_initialized(pending, later)
    assert [cond.condition_key(x) for x in done] == [
        ("Initialized", "True", "PodGangPodsCreated", "PodGang is fully initialized")
    ]
    assert done[0]["lastTransitionTime"] == cond.format_time(later)
    again = pg.with_initialized(done, later + timedelta(hours=1), created=False)  # never back to False
    assert again == done
    other = cond.set_condition(None, pg.CONDITION_ADMITTED, "True", "GangAdmitted", "m", NOW)
    assert [x["type"] for x in pg.with_initialized(other, NOW)] == ["Admitted", "Initialized"]
    assert not pg.admission_pending({"status": {"conditions": other}}) and pg.admission_pending({})


def test_references() -> None:
    assert [r["name"] for r in pg.references(gang(("a", ["a-0", "a-1"]), ("b", ["b-0"])))] == [
        "a-0",
        "a-1",
        "b-0",
    ]
    assert pg.references({}) == []


@pytest.mark.parametrize("sample", ["multi-node-disaggregated", "dist-train"])
def test_the_admitter_and_the_reconciler_find_the_same(sample: str) -> None:
    """Every PodGang of a converged sample, and again with a pod missing: the reconciler's lookups (its
    snapshot) and the admitter's (PodClique cache, trimmed pods) agree."""
    world = World()
    doc = runnable_samples()[sample]
    create_pcs(world, doc)
    world.reconcile("default", doc["metadata"]["name"])
    for missing in (None, world.of_kind("Pod", "default")[0]):
        pods = [p for p in world.of_kind("Pod", "default") if p is not missing]
        cliques = {name_of(q): q for q in world.of_kind("PodClique", "default")}
        whole = {name_of(p): p for p in pods}
        trimmed = {name_of(p): essentials(p) for p in pods}
        verdicts = [
            (pg.all_pods_created(g, cliques.get, whole.get), pg.all_pods_created(g, cliques.get, trimmed.get))
            for g in world.of_kind("PodGang", "default")
        ]
        assert verdicts and all(a == b for a, b in verdicts)
        assert all(a for a, _ in verdicts) is (missing is None)

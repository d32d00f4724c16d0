"""A stored spec the reconciler cannot act on (grove_api.validation.actionable; docs/decisions.md, "Specs the
reconciler cannot act on"): startsAfter to a clique that is not there, a cycle, a spec our models cannot
read. Nothing is created; the PodCliqueSet says why (condition, one Event, lastErrors); fixed, it runs."""

from __future__ import annotations

import pytest

from grove_api import conditions as cond
from grove_api import constants as c
from reconciler.planner import status
from reconciler.planner.plan import plan
from tests import builders as b
from tests.fakes.world import World, create_pcs

STARTUP = "CliqueStartupTypeExplicit"


def stored(fault: str) -> dict[str, object]:
    if fault == "missing":
        cliques = [b.clique("a", starts_after=["nowhere"]), b.clique("b")]
    elif fault == "cycle":
        cliques = [b.clique("a", starts_after=["b"]), b.clique("b", starts_after=["a"])]
    else:
        cliques = [b.clique("a"), b.clique("b")]
    doc = b.pcs("w", cliques=cliques, startup=STARTUP)
    if fault == "unreadable":
        doc["spec"]["template"]["cliques"][0]["spec"]["replicas"] = "many"
    return doc


def spec_invalid(world: World) -> dict[str, object] | None:
    pcs = world.get(c.KIND_PODCLIQUESET, "default", "w") or {}
    return cond.get_condition((pcs.get("status") or {}).get("conditions"), status.CONDITION_SPEC_INVALID)


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("missing", 'startsAfter[0]: Not found: "nowhere": unknown clique'),
        ("cycle", "clique must not have circular dependencies"),
        ("unreadable", "replicas"),
    ],
)
def test_nothing_is_created_and_the_podcliqueset_says_why_once(fault: str, said: str) -> None:
    world = World()
    create_pcs(world, stored(fault))
    first = world.step("default", "w")
    assert [e.reason for e in first.events] == [status.CONDITION_SPEC_INVALID] and said in first.events[
        0
    ].message
    assert first.invalid and said in " ".join(first.invalid) and first.requeue_after is None
    for _ in range(3):
        again = world.step("default", "w")
        assert again.actions == [] and again.events == []  # not retried, not told again
    condition = spec_invalid(world)
    assert condition is not None and condition["status"] == cond.TRUE and said in str(condition["message"])
    assert condition["reason"] == status.REASON_CANNOT_ACT
    assert not world.of_kind("PodClique") and not world.of_kind("Pod") and not world.of_kind("ServiceAccount")
    pcs = world.get(c.KIND_PODCLIQUESET, "default", "w")
    assert (
        pcs is not None and c.FINALIZER_PODCLIQUESET in pcs["metadata"]["finalizers"]
    )  # deletion still tears down

    fixed = stored("none")
    pcs["spec"] = {**pcs["spec"], "template": {**pcs["spec"]["template"], **fixed["spec"]["template"]}}
    world.reconcile("default", "w")
    assert world.of_kind("PodClique") and world.of_kind("Pod")
    condition = spec_invalid(world)
    assert condition is not None and condition["status"] == cond.FALSE
    assert condition["reason"] == status.REASON_SPEC_ACTIONABLE


def test_a_valid_spec_never_gets_the_condition() -> None:
    world = World()
    create_pcs(world, stored("none"))
    world.reconcile("default", "w")
    assert spec_invalid(world) is None
    assert plan(world.snapshot("default", "w")).invalid == []

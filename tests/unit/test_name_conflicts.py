"""Names taken by someone else's objects (docs/decisions.md, "Names taken by others"): the planner never
binds, gives a token to or changes an object that is not this PodCliqueSet's, and the PodCliqueSet's
NameConflict condition says which names are in the way (the executor's side: tests/unit/test_executor_unit.py)."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from grove_api import conditions as cond
from grove_api import constants as c
from grove_api import naming
from grove_api.refs import Ref
from reconciler.planner import status
from reconciler.planner.actions import PatchStatus
from reconciler.planner.plan import plan
from reconciler.planner.snapshot import Obj
from tests.fakes.world import World, create_pcs
from tests.unit.test_rollout import running, step, workload

SA = naming.service_account("w")
ROLE = naming.role("w")
TOKEN = naming.initc_token_secret("w")


def running_beside(theirs: Obj) -> tuple[World, Obj]:
    """The workload run to rest in a namespace where `theirs` was made first; `theirs` as stored."""
    world = World()
    stored = copy.deepcopy(world.put(theirs))
    create_pcs(world, workload())
    for _ in range(6):
        step(world)
    return world, stored


@pytest.mark.parametrize("labelled", [False, True])
def test_a_serviceaccount_of_someone_elses_is_never_bound_or_given_a_token(labelled: bool) -> None:
    """An app's ServiceAccount named like the PodCliqueSet (with or without our labels copied onto it)."""
    world = World()
    theirs = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": "default"}}
    if labelled:
        theirs["metadata"]["labels"] = {c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE, c.LABEL_PART_OF: "w"}
    world, stored = running_beside(theirs)
    assert world.get("ServiceAccount", "default", SA) == stored  # not adopted, not changed
    assert world.get("Role", "default", ROLE) is not None
    assert world.get("RoleBinding", "default", ROLE) is None
    assert world.get("Secret", "default", TOKEN) is None
    # Once it is gone, ours is made, then bound and given its token.
    world.delete(Ref("v1", "ServiceAccount", "default", SA))
    for _ in range(3):
        step(world)
    ours = world.get("ServiceAccount", "default", SA)
    assert ours is not None and ours["metadata"]["ownerReferences"][0]["kind"] == c.KIND_PODCLIQUESET
    assert world.get("RoleBinding", "default", ROLE) is not None
    assert world.get("Secret", "default", TOKEN) is not None


def test_a_role_of_someone_elses_is_never_bound() -> None:
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    meta = {"name": ROLE, "namespace": "default"}
    world, stored = running_beside(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": everything}
    )
    assert world.get("Role", "default", ROLE) == stored
    assert world.get("RoleBinding", "default", ROLE) is None
    assert world.get("Secret", "default", TOKEN) is not None  # the ServiceAccount is ours


def test_name_conflict_condition_names_the_first_few_and_clears() -> None:
    conflicts = {
        f"Service w-{i}": f"Service default/w-{i} exists and is not this PodCliqueSet's" for i in range(5)
    }
    state, reason, message = status.name_conflict_condition(conflicts, had=None) or ("", "", "")
    assert (state, reason) == (cond.TRUE, status.REASON_NAME_TAKEN)
    assert message.count("exists and is not") == status.MAX_PROBLEMS_SHOWN and message.endswith(
        "; and 2 more"
    )
    assert status.name_conflict_condition({}, had=None) is None  # never had one: no condition at all
    assert status.name_conflict_condition({}, had={"type": status.CONDITION_NAME_CONFLICT}) == (
        cond.FALSE,
        status.REASON_NO_CONFLICT,
        "every child's name is free or this PodCliqueSet's",
    )


def test_the_podcliqueset_status_carries_the_snapshots_conflicts() -> None:
    world = running(workload())
    taken = {"Service w-1": "Service default/w-1 exists and is not this PodCliqueSet's (no owner)"}
    result = plan(dataclasses.replace(world.snapshot("default", "w"), conflicts=taken))
    patches = [a for a in result.actions if isinstance(a, PatchStatus) and a.ref.kind == c.KIND_PODCLIQUESET]
    assert len(patches) == 1, "the condition is written"
    written = cond.get_condition(patches[0].status["conditions"], status.CONDITION_NAME_CONFLICT)
    assert (
        written is not None and written["status"] == cond.TRUE and taken["Service w-1"] in written["message"]
    )

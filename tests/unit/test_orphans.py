"""Pods whose PodClique is gone are the operator's to delete, not the garbage collector's (chaos run, seed
20261207: after an apiserver restart a rolling update deleted a scaling-group replica's PodCliques while a
pod delete of the same pass got a 403 from RBAC still warming up; the pod stayed for minutes on the old
image, with an index of the recreated PodClique, until the held-up garbage collector came). And a
PodCliqueSet's finalizer comes off only once all of its children are deleted."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from grove_api import constants as c
from grove_api.refs import Ref
from kube.client import Forbidden, NotFound
from reconciler.executor import Executor
from reconciler.planner.actions import Action, Delete, RemoveFinalizer
from reconciler.planner.plan import Plan, plan
from tests.fakes.world import World
from tests.unit.test_rollout import label, pcs, pods, running, trigger, workload

JSON = dict[str, Any]
NS = "default"


def orphan_deletes(result: Plan) -> list[Delete]:
    return [a for a in result.actions if isinstance(a, Delete) and a.orphan_of is not None]


def step_failing(world: World, fails: Callable[[Action], bool]) -> Plan:
    """One pass whose actions that `fails` picks are refused (a 403 while RBAC warms up)."""
    result = plan(world.snapshot(NS, "w"))
    world.held = result.held_statuses
    for action in result.actions:
        if not fails(action):
            world.apply(action)
    world.run_pods()
    return result


def indices(world: World) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pod in pods(world):
        out.setdefault(label(pod, c.LABEL_PODCLIQUE), []).append(label(pod, c.LABEL_POD_INDEX))
    return {k: sorted(v) for k, v in out.items()}


def owner_uid(pod: JSON) -> str:
    return str(pod["metadata"]["ownerReferences"][0]["uid"])


def test_a_pod_whose_delete_failed_with_its_podclique_is_deleted_as_an_orphan() -> None:
    world = running(workload(replicas=1))
    world.gc = False  # held up after the apiserver restart
    trigger(world, cliques=(2,))  # pc-c: a scaling-group member, so its group replicas are recreated
    victim = next(p for p in pods(world) if p["metadata"]["name"].startswith("w-0-sg-x-0-pc-c-"))
    name = victim["metadata"]["name"]
    step_failing(world, lambda a: isinstance(a, Delete) and a.ref.name == name)
    assert world.get("Pod", NS, name) is not None and world.get("PodClique", NS, "w-0-sg-x-0-pc-c") is None
    world.reconcile(NS, "w")
    assert world.get("Pod", NS, name) is None, "the orphan is deleted by the operator"
    live = {o["metadata"]["uid"] for o in world.of_kind("PodClique")}
    assert all(owner_uid(p) in live for p in pods(world))
    assert all(len(v) == len(set(v)) for v in indices(world).values()), indices(world)
    hashes = {label(q, c.LABEL_NAME): label(q, c.LABEL_POD_TEMPLATE_HASH) for q in world.of_kind("PodClique")}
    assert all(
        label(p, c.LABEL_POD_TEMPLATE_HASH) == hashes[label(p, c.LABEL_PODCLIQUE)] for p in pods(world)
    )


def test_a_pod_created_into_a_podclique_deleted_meanwhile_is_deleted() -> None:
    """The caches showed the PodClique (old uid) after it was gone: its pod names a dead owner."""
    world = running(workload(replicas=1))
    world.gc = False
    pod = next(p for p in pods(world) if label(p, c.LABEL_PODCLIQUE) == "w-0-sg-x-0-pc-b")
    stale = copy.deepcopy(pod)
    stale["metadata"].update(name=pod["metadata"]["name"] + "x", uid="stale-pod")
    stale["metadata"]["ownerReferences"][0]["uid"] = "uid-of-the-deleted-podclique"
    world.put(stale)
    (orphan,) = orphan_deletes(plan(world.snapshot(NS, "w")))
    assert orphan.ref == Ref("v1", "Pod", NS, stale["metadata"]["name"]) and orphan.uid == "stale-pod"
    assert orphan.orphan_of == (
        Ref(c.API_VERSION, c.KIND_PODCLIQUE, NS, "w-0-sg-x-0-pc-b"),
        "uid-of-the-deleted-podclique",
    )
    world.reconcile(NS, "w")
    assert world.get("Pod", NS, stale["metadata"]["name"]) is None
    assert world.get("Pod", NS, pod["metadata"]["name"]) is not None


def test_pods_of_a_podclique_being_deleted_are_orphans_too() -> None:
    world = running(workload(replicas=1))
    pclq = world.get("PodClique", NS, "w-0-pc-a")
    assert pclq is not None
    pclq["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"  # as the tombstones show one we deleted
    theirs = {p["metadata"]["name"] for p in pods(world) if label(p, c.LABEL_PODCLIQUE) == "w-0-pc-a"}
    assert {a.ref.name for a in orphan_deletes(plan(world.snapshot(NS, "w")))} == theirs


def test_what_is_not_provably_an_orphan_is_left_alone() -> None:
    world = running(workload(replicas=1))
    assert not orphan_deletes(plan(world.snapshot(NS, "w"))), "every owner alive"
    base = next(p for p in pods(world) if label(p, c.LABEL_PODCLIQUE) == "w-0-pc-a")

    def variant(suffix: str, change: Callable[[JSON], None]) -> str:
        pod = copy.deepcopy(base)
        pod["metadata"].update(name=f"{base['metadata']['name']}-{suffix}", uid=f"uid-{suffix}")
        pod["metadata"]["ownerReferences"][0]["uid"] = "dead"
        change(pod)
        world.put(pod)
        return str(pod["metadata"]["name"])

    shared = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "rs", "controller": False}
    variant("two-owners", lambda p: p["metadata"]["ownerReferences"].append(shared))
    variant("other-kind", lambda p: p["metadata"]["ownerReferences"][0].update(kind="ReplicaSet"))
    variant("other-group", lambda p: p["metadata"]["ownerReferences"][0].update(apiVersion="x.io/v1"))
    variant("not-controller", lambda p: p["metadata"]["ownerReferences"][0].update(controller=False))
    variant("no-owner", lambda p: p["metadata"].update(ownerReferences=[]))
    variant("deleting", lambda p: p["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"))
    assert not orphan_deletes(plan(world.snapshot(NS, "w")))
    orphan = variant("orphan", lambda p: None)
    snap = world.snapshot(NS, "w")
    assert [a.ref.name for a in orphan_deletes(plan(snap))] == [orphan]
    pending = dataclasses.replace(world.snapshot(NS, "w"), pending=frozenset({"w-0-pc-a"}))
    assert not orphan_deletes(plan(pending)), "its PodClique's pod creates and deletes not seen yet"


def test_the_finalizer_comes_off_only_when_every_child_is_deleted() -> None:
    world = running(workload(replicas=1))
    world.gc = False
    pcs(world)["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    name = pods(world)[0]["metadata"]["name"]
    first = step_failing(world, lambda a: isinstance(a, Delete) and a.ref.name == name)
    assert not any(isinstance(a, RemoveFinalizer) for a in first.actions)
    assert first.requeue_after is not None, "looks again to take the finalizer off"
    assert world.get("PodCliqueSet", NS, "w") is not None and world.get("Pod", NS, name) is not None
    second = world.step(NS, "w")
    assert [a.ref.name for a in second.actions if isinstance(a, Delete)] == [name]
    assert not any(isinstance(a, RemoveFinalizer) for a in second.actions)
    third = world.step(NS, "w")
    assert [type(a) for a in third.actions] == [RemoveFinalizer]
    assert world.objects == {}


# --- the executor: an orphan's owner is read live before the delete -------------------------------------


class Owners:
    """A client whose GETs return `owners` (by name) and which records deletes."""

    def __init__(self, owners: dict[str, JSON | Exception]) -> None:
        self.owners = owners
        self.gets: list[str] = []
        self.deletes: list[str] = []

    async def get(self, ref: Ref) -> JSON:
        self.gets.append(ref.name)
        found = self.owners.get(ref.name, NotFound("not found", status=404))
        if isinstance(found, Exception):
            raise found
        return found

    async def delete(self, ref: Ref, uid: str | None = None, propagation: str = "Background") -> bool:
        self.deletes.append(ref.name)
        return True


def orphan(pod: str, owner: str, uid: str) -> Delete:
    return Delete(
        Ref("v1", "Pod", NS, pod),
        f"uid-{pod}",
        orphan_of=(Ref(c.API_VERSION, c.KIND_PODCLIQUE, NS, owner), uid),
    )


def podclique(uid: str, deleting: bool = False) -> JSON:
    meta: JSON = {"name": "q", "namespace": NS, "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": c.API_VERSION, "kind": c.KIND_PODCLIQUE, "metadata": meta}


@pytest.mark.parametrize(
    ("owner", "deleted"),
    [
        (None, True),  # gone
        (podclique("new"), True),  # recreated: another uid
        (podclique("old", deleting=True), True),
        (podclique("old"), False),  # alive: the caches were behind
    ],
)
async def test_an_orphan_is_deleted_only_when_its_owner_is_not_alive(
    owner: JSON | None, deleted: bool
) -> None:
    client = Owners({"q": owner} if owner is not None else {})
    report = await Executor(client).run([orphan("q-abcde", "q", "old")])  # type: ignore[arg-type]
    assert client.deletes == (["q-abcde"] if deleted else [])
    assert report.ok
    assert report.not_orphans == ([] if deleted else [Ref("v1", "Pod", NS, "q-abcde")])


async def test_one_read_per_owner_and_a_failed_read_deletes_nothing() -> None:
    client = Owners({"r": Forbidden("RBAC: clusterrole not found", status=403)})
    actions: list[Action] = [orphan(f"q-{i}", "q", "old") for i in range(5)]
    actions += [orphan("r-1", "r", "old")]
    report = await Executor(client).run(actions)  # type: ignore[arg-type]
    assert sorted(client.gets) == ["q", "r"]
    assert sorted(client.deletes) == [f"q-{i}" for i in range(5)]
    (failure,) = report.errors
    assert isinstance(failure.error, Forbidden) and not report.ok

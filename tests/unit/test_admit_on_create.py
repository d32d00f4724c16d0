"""The reconciler's half of admission on create: which pods it offers the admitter, and how it creates the
ones admitted (pinned, ungated, annotated). The admitter is a fake; its half is in admitter/test_controller."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from grove_api import constants as c
from grove_api.refs import Ref
from reconciler.manager import admit_on_create
from reconciler.planner.actions import Action, Create, Delete, PatchStatus

JSON = dict[str, Any]


class FakeAdmitOnCreate:
    def __init__(self, fits: set[str]) -> None:
        self.fits = fits
        self.asked: list[tuple[list[str], list[str]]] = []

    def admit(self, podgangs: Sequence[JSON], pods: Sequence[JSON]) -> dict[tuple[str, str], str]:
        self.asked.append(([g["metadata"]["name"] for g in podgangs], [p["metadata"]["name"] for p in pods]))
        return {("ns", p["metadata"]["name"]): "host-1" for p in pods if p["metadata"]["name"] in self.fits}

    def forget(self, keys: Iterable[tuple[str, str]]) -> None:  # pragma: no cover - not called here
        raise AssertionError("not expected")


def pod(name: str) -> Create:
    return Create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns"}, "spec": {}}
    )


def gang(name: str, pods: list[str]) -> Create:
    refs = [{"namespace": "ns", "name": p} for p in pods]
    obj = {
        "apiVersion": c.SCHEDULER_API_VERSION,
        "kind": c.KIND_PODGANG,
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"podgroups": [{"name": "w", "minReplicas": len(pods), "podReferences": refs}]},
    }
    return Create(obj)


def test_pods_of_new_gangs_are_offered_and_the_admitted_ones_created_pinned() -> None:
    replacement = pod("old-w-1")  # a pod of an existing gang: not offered
    deleted = Delete(Ref("v1", "Pod", "ns", "old-w-0"), "uid")
    pods: list[Action] = [pod("a-w-0"), pod("a-w-1"), pod("b-w-0"), replacement, deleted]
    rest: list[Action] = [
        gang("a", ["a-w-0", "a-w-1"]),
        gang("b", ["b-w-0"]),
        PatchStatus(Ref("v1", "X", "ns", "x")),
    ]
    on_create = FakeAdmitOnCreate(fits={"a-w-0", "a-w-1"})
    out, admitted = admit_on_create(pods, rest, on_create)
    assert on_create.asked == [(["a", "b"], ["a-w-0", "a-w-1", "b-w-0"])]
    assert admitted == {("ns", "a-w-0"), ("ns", "a-w-1")}
    created = {a.obj["metadata"]["name"]: a.obj for a in out if isinstance(a, Create)}
    for name in ("a-w-0", "a-w-1"):
        assert created[name]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "host-1"}
        assert created[name]["metadata"]["annotations"] == {c.ANNOTATION_ADMITTED_ON_CREATE: "true"}
    assert created["b-w-0"] is pods[2].obj and created["old-w-1"] is replacement.obj  # type: ignore[union-attr]
    assert out[-1] is deleted


def test_nothing_is_asked_without_new_gangs() -> None:
    on_create = FakeAdmitOnCreate(fits={"a-w-0"})
    pods: list[Action] = [pod("a-w-0")]
    assert admit_on_create(pods, [], on_create) == (pods, set()) and on_create.asked == []

"""Enough of the apiserver for a `reconciler.manager.Manager` in unit tests: lists for its informers (from
a fixed set of objects) and the calls its executor makes. Writes do not reach the lists, like a watch that
has not delivered yet; `refuse` makes chosen calls fail."""

from __future__ import annotations

import copy
from typing import Any

from grove_api.operatorconfig import OperatorConfiguration
from grove_api.refs import Ref
from kube.client import KubeError, NotFound
from kube.resources import Resource
from reconciler.manager import Manager
from reconciler.planner.snapshot import Obj


class FakeCluster:
    def __init__(self, objects: list[Obj]) -> None:
        self.objects = objects
        self.refuse: set[str] = set()  # names whose DELETE fails (503)
        self.refuse_creates: KubeError | None = None  # every create fails with it
        self.creates = 0

    async def list_all(self, resource: Resource, **_: Any) -> tuple[list[Obj], str]:
        return [copy.deepcopy(o) for o in self.objects if o["kind"] == resource.kind], "1"

    async def watch(self, resource: Resource, **_: Any) -> Any:
        raise NotImplementedError

    async def create(self, obj: Obj) -> Obj:
        self.creates += 1
        if self.refuse_creates is not None:
            raise self.refuse_creates
        return {**obj, "metadata": {**obj["metadata"], "uid": f"new-{obj['metadata'].get('name')}"}}

    async def get(self, ref: Ref) -> Obj:
        for o in self.objects:
            meta = o["metadata"]
            if (o["kind"], meta.get("namespace"), meta["name"]) == (ref.kind, ref.namespace, ref.name):
                return copy.deepcopy(o)
        raise NotFound(f"{ref.kind} {ref.name} not found", status=404)

    async def apply(self, obj: Obj, field_manager: str | None = None, force: bool = True) -> Obj:
        return obj

    async def delete(self, ref: Ref, uid: str | None = None, propagation: str = "Background") -> bool:
        if ref.name in self.refuse:
            raise KubeError("the server is currently unable to handle the request", status=503)
        return True

    async def patch_status(self, ref: Ref, status: Obj) -> Obj:
        return {"status": status}

    async def apply_status(self, ref: Ref, status: Obj) -> Obj:
        return {"status": status}


async def relisted(cluster: FakeCluster) -> Manager:
    manager = Manager(cluster, OperatorConfiguration())  # type: ignore[arg-type]
    for informer in [manager.podcliquesets, *manager.children.values()]:
        await informer.relist()
    return manager

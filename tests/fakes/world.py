"""An in-memory stand-in for the apiserver, for pure planner tests: applies the planner's actions to a
store of raw objects (uids, generateName suffixes, garbage collection by ownerReference) so a test can
run plan -> apply until nothing is left to do and then look at the result."""

from __future__ import annotations

import copy
import itertools
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from grove_api.defaulting import default_podcliqueset
from grove_api.refs import Ref
from reconciler.planner import registry
from reconciler.planner.actions import (
    Action,
    Apply,
    Create,
    Delete,
    PatchStatus,
    RemoveFinalizer,
    ReplaceSpec,
)
from reconciler.planner.plan import Plan, plan
from reconciler.planner.pods import with_owner_uid
from reconciler.planner.snapshot import Obj, Room, Snapshot


def _merge(into: Obj, patch: Obj) -> None:
    """RFC 7386 JSON merge patch: objects merge, null removes, anything else replaces."""
    for k, v in patch.items():
        if v is None:
            into.pop(k, None)
        elif isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)


@dataclass
class World:
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)  # (kind, ns, name)
    writes: int = 0
    uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    passes: itertools.count[int] = field(default_factory=lambda: itertools.count(1))  # snapshot nonces
    held: Mapping[str, float] = field(default_factory=dict)  # PodCliques whose status the last pass held back
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    clock: datetime | None = None  # the planner's `now` (None: the real clock)
    gang_admission: bool = False  # the gang admitter runs (it owns the PodGangs' status)
    room: Room | None = None  # free capacity for rolling-update replacements (None: always room)
    gc: bool = True  # the garbage collector keeps up (False: it is held up, as after an apiserver restart)

    def put(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = meta["generateName"] + "".join(
                self.rng.choices(string.ascii_lowercase + string.digits, k=5)
            )
        meta.setdefault("uid", f"uid-{next(self.uids)}")
        meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta.setdefault("generation", 1)
        self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def get(self, kind: str, ns: str, name: str) -> Obj | None:
        return self.objects.get((kind, ns, name))

    def of_kind(self, kind: str, ns: str | None = None) -> list[Obj]:
        return [o for (k, n, _), o in sorted(self.objects.items()) if k == kind and (ns is None or n == ns)]

    def apply(self, action: Action) -> None:
        self.writes += 1
        if isinstance(action, Create) and action.obj["kind"] == "Pod":  # as the manager does
            created = {
                (n, o["metadata"]["name"]): o["metadata"]["uid"]
                for (k, n, _), o in self.objects.items()
                if k == "PodClique"
            }
            owned = with_owner_uid(action, created)
            if owned is None:
                return
            action = owned
        if isinstance(action, Create):
            key = (
                action.obj["kind"],
                action.obj["metadata"].get("namespace", ""),
                action.obj["metadata"].get("name", ""),
            )
            if key not in self.objects or not key[2]:
                self.put(action.obj)
        elif isinstance(action, Apply):
            meta = action.obj["metadata"]
            current = self.get(action.obj["kind"], meta.get("namespace", ""), meta["name"])
            if current is None:
                return
            patch = copy.deepcopy(action.obj)
            finalizers = patch["metadata"].pop("finalizers", None)
            _merge(current, patch)
            if finalizers:
                current["metadata"]["finalizers"] = sorted(
                    set(current["metadata"].get("finalizers") or []) | set(finalizers)
                )
        elif isinstance(action, ReplaceSpec):
            obj = self.get(action.ref.kind, action.ref.namespace, action.ref.name)
            if obj is not None:
                obj["spec"] = copy.deepcopy(action.spec)
        elif isinstance(action, Delete):
            if action.orphan_of is not None:  # as the executor does: only if the owner is not alive
                owner_ref, owner_uid = action.orphan_of
                owner = self.get(owner_ref.kind, owner_ref.namespace, owner_ref.name)
                meta = (owner or {}).get("metadata") or {}
                if meta.get("uid") == owner_uid and not meta.get("deletionTimestamp"):
                    return
            self.delete(action.ref)
        elif isinstance(action, RemoveFinalizer):
            obj = self.get(action.ref.kind, action.ref.namespace, action.ref.name)
            if obj is not None:
                obj["metadata"]["finalizers"] = [
                    f for f in obj["metadata"].get("finalizers") or [] if f != action.finalizer
                ]
                if obj["metadata"].get("deletionTimestamp") and not obj["metadata"]["finalizers"]:
                    self.delete(action.ref)
        elif isinstance(action, PatchStatus):
            obj = self.get(action.ref.kind, action.ref.namespace, action.ref.name)
            if obj is not None:
                current = obj.setdefault("status", {})
                if action.apply:  # server-side apply: conditions merge by type
                    applied = {x["type"]: x for x in action.status.get("conditions") or []}
                    kept = [x for x in current.get("conditions") or [] if x["type"] not in applied]
                    _merge(current, {**action.status, "conditions": kept + list(applied.values())})
                else:
                    _merge(current, action.status)

    def delete(self, ref: Ref) -> None:
        obj = self.get(ref.kind, ref.namespace, ref.name)
        if obj is None:
            return
        if obj["metadata"].get("finalizers"):
            obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            return
        del self.objects[(ref.kind, ref.namespace, ref.name)]
        self.collect_garbage()

    def collect_garbage(self) -> None:
        """Delete objects whose controller owner is gone (cascading), like the garbage collector."""
        while self.gc:
            uids = {o["metadata"]["uid"] for o in self.objects.values()}
            orphans = [
                key
                for key, o in self.objects.items()
                if any(r["uid"] not in uids for r in o["metadata"].get("ownerReferences") or [])
            ]
            if not orphans:
                return
            for key in orphans:
                del self.objects[key]

    def run_pods(self) -> None:
        """What the scheduler and KWOK do: every pod bound and Running and Ready."""
        for pod in self.of_kind("Pod"):
            if not pod["metadata"].get("deletionTimestamp"):
                self.run_pod(pod)

    @staticmethod
    def run_pod(pod: Obj) -> None:
        pod["spec"].setdefault("nodeName", "fake-node-000")
        pod["status"] = {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
        }

    def snapshot(self, ns: str, name: str) -> Snapshot:
        pcs = self.get("PodCliqueSet", ns, name)
        assert pcs is not None
        # Every kind of child the reconciler keeps (reconciler/planner/registry.py), by its snapshot key.
        children = {
            kind.key: {
                o["metadata"]["name"]: o
                for o in self.of_kind(kind.kind, ns)
                if o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == name
            }
            for kind in registry.CHILD_KINDS
        }
        return Snapshot(
            pcs={**default_podcliqueset(pcs), "metadata": pcs["metadata"]},
            now=self.clock or datetime.now(UTC),
            gang_admission=self.gang_admission,
            room=self.room,
            nonce=str(next(self.passes)),
            # A pass of this world stands for the hold's whole length: what one pass held, the next writes.
            status_holds=dict.fromkeys(self.held, 0.0),  # every hold has run out
            children=children,
        )

    def step(self, ns: str, name: str, run: bool = True) -> Plan:
        """One pass: plan, apply every action, and (`run`) let the scheduler and KWOK run every pod."""
        result = plan(self.snapshot(ns, name))
        self.held = result.held_statuses
        for action in result.actions:
            self.apply(action)
        if run:
            self.run_pods()
        return result

    def reconcile(self, ns: str, name: str, max_passes: int = 20) -> int:
        """Plan and apply until the planner has nothing left to do; returns the number of passes."""
        for n in range(1, max_passes + 1):
            if self.get("PodCliqueSet", ns, name) is None:
                return n
            result = plan(self.snapshot(ns, name))
            self.held, actions = result.held_statuses, result.actions
            if not actions and not self.held:
                return n
            for action in actions:
                self.apply(action)
            self.run_pods()
        raise AssertionError(f"no convergence after {max_passes} passes")


def create_pcs(world: World, doc: dict[str, Any], namespace: str = "default") -> Obj:
    doc = default_podcliqueset(doc)
    doc["metadata"]["namespace"] = namespace
    return world.put(doc)

"""Carry out the planner's actions against the apiserver, concurrently, and report what happened.

- All actions run concurrently under one semaphore (`concurrency`).
- Pod creates use slow start per PodClique (label `grove.io/podclique`), like Grove and the ReplicaSet
  controller: batches of 1, 2, 4, 8 … and no further batch once one has a failure, so a quota or webhook
  problem costs one failed request rather than hundreds. Actions not attempted are reported as `skipped`.
- A single failure never raises: it is recorded in the `Report` and the caller requeues.

`Expectations` remembers creations and deletions of pods until the informer shows them, so a reconcile that
runs against a lagging cache does not create or delete the same pods twice (client-go's
ControllerExpectations, keyed by uid as in Grove's `internal/expect`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from grove_api import constants
from grove_api.fielderrors import truncate
from grove_api.refs import Ref
from kube.client import JSON, AlreadyExists, KubeError, NotFound
from reconciler.planner.actions import (
    Action,
    Apply,
    Create,
    Delete,
    PatchStatus,
    RemoveFinalizer,
    ReplaceSpec,
)

log = logging.getLogger(__name__)


class ActionClient(Protocol):
    """What the executor needs from `client.KubeClient` (a fake in unit tests)."""

    async def create(self, obj: JSON) -> JSON: ...
    async def get(self, ref: Ref) -> JSON: ...
    async def apply(self, obj: JSON, field_manager: str | None = None, force: bool = True) -> JSON: ...
    async def replace_spec(self, ref: Ref, spec: JSON) -> JSON: ...
    async def delete(self, ref: Ref, uid: str | None = None, propagation: str = "Background") -> bool: ...
    async def patch_status(self, ref: Ref, status: JSON) -> JSON: ...
    async def apply_status(self, ref: Ref, status: JSON) -> JSON: ...
    async def remove_finalizer(self, ref: Ref, name: str, resource_version: str = "") -> JSON | None: ...


# --- expectations ------------------------------------------------------------------------------------------
def podclique_key(obj: JSON) -> str | None:
    """`<namespace>/<podclique>` for a Grove pod (label grove.io/podclique), else None."""
    meta = obj.get("metadata") or {}
    clique = (meta.get("labels") or {}).get(constants.LABEL_PODCLIQUE)
    if not clique:
        return None
    return f"{meta.get('namespace', '')}/{clique}"


def pod_ref_key(ref: Ref) -> str | None:
    """`<namespace>/<podclique>` for a pod reference: Grove pods are named `<podclique>-<5 random chars>`."""
    if ref.kind != "Pod" or "-" not in ref.name:
        return None
    return f"{ref.namespace}/{ref.name.rsplit('-', 1)[0]}"


@dataclass
class _Pending:
    creates: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    in_flight: int = 0  # creates sent whose uid we do not know yet
    seen_early: set[str] = field(default_factory=set)  # uids observed while creates were in flight
    since: float = 0.0  # last time an expectation was raised


class Expectations:
    """Per key (e.g. `ns/podclique`): uids we created or deleted and have not yet seen in the cache.

    Creates: `begin_create(key)` before the POST, `end_create(key, uid)` after (uid None on failure). A
    creation seen by the informer before `end_create` is remembered, so the race between the watch event and
    the POST's response cannot leave a stale expectation. Deletes: `expect_delete(key, uid)` before the
    DELETE (uid known), `delete_failed` if it fails. `observe(obj, deleted)` from informer events lowers
    them (a pod with a deletionTimestamp counts as deleted). After `timeout` seconds without a new
    expectation, a key's expectations are dropped (client-go's 5-minute expiry), so a lost event cannot
    block a PodClique forever.
    """

    def __init__(
        self,
        *,
        timeout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        key_of: Callable[[JSON], str | None] = podclique_key,
    ) -> None:
        self.timeout = timeout
        self.clock = clock
        self.key_of = key_of
        self._by_key: dict[str, _Pending] = {}

    def _entry(self, key: str) -> _Pending:
        entry = self._by_key.get(key)
        if entry is None:
            entry = self._by_key[key] = _Pending()
        entry.since = self.clock()
        return entry

    def _cleanup(self, key: str, entry: _Pending) -> None:
        if not entry.creates and not entry.deletes and not entry.in_flight:
            self._by_key.pop(key, None)

    def begin_create(self, key: str) -> None:
        self._entry(key).in_flight += 1

    def end_create(self, key: str, uid: str | None) -> None:
        entry = self._by_key.get(key)
        if entry is None:  # expired meanwhile: record the uid only
            if uid:
                self.expect_create(key, uid)
            return
        entry.in_flight = max(0, entry.in_flight - 1)
        if uid:
            if uid in entry.seen_early:
                entry.seen_early.discard(uid)
            else:
                entry.creates.add(uid)
                entry.since = self.clock()
        if not entry.in_flight:
            entry.seen_early.clear()
        self._cleanup(key, entry)

    def expect_create(self, key: str, uid: str) -> None:
        self._entry(key).creates.add(uid)

    def expect_delete(self, key: str, uid: str) -> None:
        self._entry(key).deletes.add(uid)

    def delete_failed(self, key: str, uid: str) -> None:
        entry = self._by_key.get(key)
        if entry is not None:
            entry.deletes.discard(uid)
            self._cleanup(key, entry)

    def observe(self, obj: JSON, deleted: bool = False) -> None:
        """Feed an informer event: the object exists (ADDED/MODIFIED) or is gone (DELETED)."""
        key = self.key_of(obj)
        if key is None:
            return
        entry = self._by_key.get(key)
        if entry is None:
            return
        meta = obj.get("metadata") or {}
        uid = meta.get("uid", "")
        if uid in entry.creates:
            entry.creates.discard(uid)
        elif entry.in_flight and not deleted:
            entry.seen_early.add(uid)
        if deleted or meta.get("deletionTimestamp"):
            entry.deletes.discard(uid)
        self._cleanup(key, entry)

    def pending(self, key: str) -> bool:
        """True while creates or deletes for `key` are unconfirmed (and not expired)."""
        entry = self._by_key.get(key)
        if entry is None:
            return False
        if self.clock() - entry.since > self.timeout:
            log.warning(
                "expectations expired",
                extra={"key": key, "creates": len(entry.creates), "deletes": len(entry.deletes)},
            )
            del self._by_key[key]
            return False
        return bool(entry.creates or entry.deletes or entry.in_flight)

    def counts(self, key: str) -> tuple[int, int]:
        """(unconfirmed creates incl. in flight, unconfirmed deletes)."""
        entry = self._by_key.get(key)
        if entry is None:
            return 0, 0
        return len(entry.creates) + entry.in_flight, len(entry.deletes)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)

    def keys(self) -> list[str]:
        return list(self._by_key)


# --- names taken by others ---------------------------------------------------------------------------------
OWNER_TEXT_LIMIT = 120  # characters of an owner's kind and name quoted in a message (names are the user's)


def _controller(obj: JSON) -> dict[str, Any] | None:
    return next(
        (r for r in obj.get("metadata", {}).get("ownerReferences") or [] if r.get("controller")), None
    )


def same_controller(existing: JSON, wanted: JSON) -> bool:
    """`existing` (found under the name of `wanted`) has the controller `wanted` would have: it is ours (the
    cache was behind), not someone else's object that happens to have the name."""
    ours, theirs = _controller(wanted), _controller(existing)
    return ours is not None and theirs is not None and theirs.get("uid") == ours.get("uid")


class NameTaken(KubeError):
    """A child's name is taken by an object that is not this PodCliqueSet's: it is left alone (never
    adopted, changed, bound, given a token or deleted) and reported."""

    @classmethod
    def of(cls, wanted: JSON, existing: JSON) -> NameTaken:
        theirs = _controller(existing)
        held = (
            f"controlled by {truncate(str(theirs.get('kind')), OWNER_TEXT_LIMIT)} "
            f"{truncate(str(theirs.get('name')), OWNER_TEXT_LIMIT)}"
            if theirs is not None
            else "not controlled by any owner"
        )
        return cls(
            f"{_obj_str(wanted)} exists and is not this PodCliqueSet's ({held}): left alone; rename the "
            "PodCliqueSet or remove that object",
            status=409,
            reason="AlreadyExists",
        )


# --- report ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Created:
    ref: Ref  # with the server-assigned name for generateName objects
    uid: str
    existed: bool = False  # AlreadyExists: counted as done; uid of the existing object if it was fetched


@dataclass(frozen=True)
class Failure:
    action: Action
    error: Exception

    @property
    def message(self) -> str:
        return self.error.message if isinstance(self.error, KubeError) else repr(self.error)

    def __str__(self) -> str:
        return f"{describe(self.action)}: {self.message}"


@dataclass
class Report:
    created: list[Created] = field(default_factory=list)
    applied: list[Ref] = field(default_factory=list)
    deleted: list[Ref] = field(default_factory=list)  # accepted by the apiserver
    already_gone: list[Ref] = field(default_factory=list)  # 404 or uid precondition failed
    status_patched: list[Ref] = field(default_factory=list)
    finalizers_removed: list[Ref] = field(default_factory=list)
    not_orphans: list[Ref] = field(default_factory=list)  # orphan deletes whose owner turned out alive
    errors: list[Failure] = field(default_factory=list)
    skipped: list[Action] = field(default_factory=list)  # not attempted (pod slow start stopped)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.skipped

    def merge(self, other: Report) -> None:
        """Add another run's results (runs done in stages for one reconcile)."""
        for f in fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))

    def summary(self) -> str:
        return (
            f"created {len(self.created)}, applied {len(self.applied)}, deleted {len(self.deleted)}, "
            f"status {len(self.status_patched)}, finalizers {len(self.finalizers_removed)}, "
            f"errors {len(self.errors)}, skipped {len(self.skipped)}"
        )


def describe(action: Action) -> str:
    if isinstance(action, Create | Apply):
        return f"{type(action).__name__} {_obj_str(action.obj)}"
    return f"{type(action).__name__} {action.ref}"


def _obj_str(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or f"{meta.get('generateName', '')}*"
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns}/{name}" if ns else f"{obj.get('kind')} {name}"


def _is_pod_create(action: Action) -> bool:
    return (
        isinstance(action, Create)
        and action.obj.get("kind") == "Pod"
        and action.obj.get("apiVersion") == "v1"
    )


# --- executor ----------------------------------------------------------------------------------------------
_Owners = dict[tuple[Ref, str], "asyncio.Future[bool]"]  # per run: owners read for orphan deletes


class Executor:
    def __init__(
        self,
        client: ActionClient,
        *,
        concurrency: int = 32,
        expectations: Expectations | None = None,
        delete_key: Callable[[Ref], str | None] = pod_ref_key,
    ) -> None:
        self.client = client
        self.concurrency = concurrency
        self.expectations = expectations
        self.delete_key = delete_key
        self._sem = asyncio.Semaphore(concurrency)

    async def run(self, actions: Sequence[Action]) -> Report:
        """Run every action; never raises for a failed action (see `Report.errors` / `Report.skipped`)."""
        report = Report()
        pods: dict[str | None, list[Create]] = defaultdict(list)
        others: list[Action] = []
        for action in actions:
            if _is_pod_create(action):
                assert isinstance(action, Create)
                pods[podclique_key(action.obj)].append(action)
            else:
                others.append(action)
        owners: _Owners = {}
        async with asyncio.TaskGroup() as tg:
            for action in others:
                tg.create_task(self._one(action, report, owners))
            for creates in pods.values():
                tg.create_task(self._slow_start(creates, report, owners))
        if report.errors:
            log.info(
                "executor finished with errors: %s",
                report.summary(),
                extra={"errors": [str(e) for e in report.errors[:10]]},
            )
        return report

    async def _slow_start(self, creates: list[Create], report: Report, owners: _Owners) -> None:
        """Batches 1, 2, 4 …; stop after the first batch with a failure."""
        batch, start = 1, 0
        while start < len(creates):
            chunk = creates[start : start + batch]
            results = await asyncio.gather(*(self._one(a, report, owners) for a in chunk))
            start += len(chunk)
            if not all(results):
                report.skipped.extend(creates[start:])
                return
            batch = min(2 * batch, len(creates) - start) if start < len(creates) else batch

    async def _one(self, action: Action, report: Report, owners: _Owners | None = None) -> bool:
        async with self._sem:
            try:
                await self._execute(action, report, {} if owners is None else owners)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                report.errors.append(Failure(action, err))
                if not isinstance(err, KubeError):
                    log.exception("unexpected error executing %s", describe(action))
                return False
            return True

    async def _owner_alive(self, owner: tuple[Ref, str], owners: _Owners) -> bool:
        """Whether the object `owner` (ref, uid) exists and is not being deleted, read from the apiserver
        (once per run for all the orphans of one owner)."""
        if owner not in owners:
            owners[owner] = asyncio.ensure_future(self._read_owner(*owner))
        return await asyncio.shield(owners[owner])

    async def _read_owner(self, ref: Ref, uid: str) -> bool:
        try:
            found = await self.client.get(ref)
        except NotFound:
            return False
        meta = found.get("metadata") or {}
        return bool(meta.get("uid") == uid and not meta.get("deletionTimestamp"))

    async def _execute(self, action: Action, report: Report, owners: _Owners) -> None:
        exp = self.expectations
        if isinstance(action, Create):
            key = podclique_key(action.obj) if exp is not None and _is_pod_create(action) else None
            if exp is not None and key is not None:
                exp.begin_create(key)
            uid: str | None = None
            try:
                created = await self.client.create(action.obj)
                uid = created.get("metadata", {}).get("uid", "")
                report.created.append(Created(Ref.of(_with_kind(created, action.obj)), uid or ""))
            except AlreadyExists as err:
                existing = err.existing or {}
                if existing and not same_controller(existing, action.obj):
                    raise NameTaken.of(action.obj, existing) from err
                ref = Ref.of(_with_kind(existing, action.obj)) if existing else Ref.of(action.obj)
                report.created.append(Created(ref, existing.get("metadata", {}).get("uid", ""), existed=True))
            finally:
                if exp is not None and key is not None:
                    exp.end_create(key, uid or None)
        elif isinstance(action, Apply):
            await self.client.apply(action.obj)
            report.applied.append(Ref.of(action.obj))
        elif isinstance(action, ReplaceSpec):
            await self.client.replace_spec(action.ref, action.spec)
            report.applied.append(action.ref)
        elif isinstance(action, Delete):
            if action.orphan_of is not None and await self._owner_alive(action.orphan_of, owners):
                report.not_orphans.append(action.ref)  # the caches were behind: its owner lives
                return
            key = self.delete_key(action.ref) if exp is not None and action.uid else None
            if exp is not None and key is not None:
                exp.expect_delete(key, action.uid)
            try:
                accepted = await self.client.delete(action.ref, action.uid or None)
            except BaseException:
                if exp is not None and key is not None:
                    exp.delete_failed(key, action.uid)
                raise
            if accepted:
                report.deleted.append(action.ref)
            else:
                report.already_gone.append(action.ref)
                if exp is not None and key is not None:
                    exp.delete_failed(key, action.uid)
        elif isinstance(action, PatchStatus):
            if action.apply:
                await self.client.apply_status(action.ref, action.status)
            else:
                await self.client.patch_status(action.ref, action.status)
            report.status_patched.append(action.ref)
        elif isinstance(action, RemoveFinalizer):
            await self.client.remove_finalizer(action.ref, action.finalizer, action.resource_version)
            report.finalizers_removed.append(action.ref)
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"unknown action {action!r}")


def _with_kind(obj: JSON, fallback: JSON) -> JSON:
    """Responses carry apiVersion/kind, but be tolerant of fakes that do not."""
    if "apiVersion" in obj and "kind" in obj:
        return obj
    return {"apiVersion": fallback.get("apiVersion"), "kind": fallback.get("kind"), **obj}


def observe_events(expectations: Expectations) -> Callable[[str, JSON], None]:
    """An informer `on_event` that feeds pod events into `expectations`."""

    def handler(event_type: str, obj: JSON) -> None:
        expectations.observe(obj, deleted=event_type == "DELETED")

    return handler

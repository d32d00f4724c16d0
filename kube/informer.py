"""LIST then WATCH one resource into an in-memory cache of raw dicts, and tell a handler about every change.

The loop (never exits until stopped):

1. LIST (paginated) and replace the cache; the first list emits ADDED for every object, later re-lists
   emit the difference to the old cache (DELETED for vanished objects, carrying their last known state;
   ADDED for new ones; MODIFIED where the resourceVersion changed).
2. WATCH from the list's resourceVersion with bookmarks and a jittered server timeout (240-300 s); the
   client read timeout is 30 s longer so a dead connection cannot hang the loop.
3. Stream ended normally: WATCH again from the last resourceVersion seen (bookmarks included).
   410 Gone (HTTP status or in-stream ERROR event): back to 1. Anything else: back off with jitter and
   WATCH again from the last resourceVersion.

Cache entries are the apiserver's dicts, shared with the handlers and every reader: treat them as immutable
(copy before changing). Handlers run synchronously after the cache has been updated, in the order they were
added. One informer per kind serves every controller of a process (`InformerFactory`): each object is
decoded once.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

import orjson
from kubernetes_asyncio.client import ApiClient
from prometheus_client import Counter

from grove_api import constants
from kube.client import JSON, Gone, KubeClient, error_from_status
from kube.resources import Resource

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace or "", name)
EventHandler = Callable[[str, JSON], None]
Transform = Callable[[JSON], JSON]

ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"

# Why an informer LISTs: its first sync ("initial"), its watch answered 410 Gone ("expired"), a LIST after a
# failed watch or connection ("error", initc's loop), or asked for outright ("resync"). A closed set: it is a
# metric label, and a storm of 410s should show as "expired" climbing, whichever resource it hits.
RelistReason = Literal["initial", "expired", "error", "resync"]
RELISTS = Counter(
    "grove_informer_relists_total",
    "Informer LISTs (each replaces the cache), by resource and why: initial, expired (410 Gone), error, resync.",
    ["resource", "reason"],
)


class Lines(Protocol):
    async def readline(self) -> bytes: ...


class WatchStream(Protocol):
    """An open watch response (`aiohttp.ClientResponse`): newline-delimited JSON events."""

    @property
    def content(self) -> Lines: ...

    def close(self) -> None: ...


class ListWatchClient(Protocol):
    """What an informer needs from `client.KubeClient` (a fake in tests)."""

    async def list_all(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        page_size: int = 500,
    ) -> tuple[list[JSON], str]: ...

    async def watch(
        self,
        resource: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        timeout_seconds: int = 300,
        bookmarks: bool = True,
    ) -> WatchStream: ...


def key_of(obj: JSON) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


def _labels(obj: JSON) -> dict[str, str]:
    labels: dict[str, str] | None = obj.get("metadata", {}).get("labels")
    return labels or {}


def _trim(obj: JSON) -> JSON:
    """Drop metadata.managedFields: nobody here reads them, and they are often the larger part of a small
    object (a pod touched by the kubelet, the scheduler and two of our field managers)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def _rv(obj: JSON | None) -> str:
    if not obj:
        return ""
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


class Informer:
    """A cache of one resource kind (in one namespace, or all), kept current by list + watch."""

    def __init__(
        self,
        client: ListWatchClient | ApiClient,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        on_event: EventHandler | None = None,
        transform: Transform | None = None,
        index_labels: Sequence[str] = (constants.LABEL_PART_OF,),
        watch_timeout: tuple[int, int] = (240, 300),
        page_size: int = 500,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.client: ListWatchClient = KubeClient(client) if isinstance(client, ApiClient) else client
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.label_selector = label_selector
        self.handlers: builtins.list[EventHandler] = [on_event] if on_event is not None else []
        self.transform = transform  # applied to every object before it is cached (e.g. keep what is read)
        self.index_labels = tuple(index_labels)
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.backoff = backoff
        self.resource_version = ""
        self._cache: dict[Key, JSON] = {}
        self._index: dict[str, dict[str, set[Key]]] = {label: {} for label in self.index_labels}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.relists = 0  # how many LISTs were done (1 after a clean start)
        self.watches = 0  # how many WATCH requests were opened

    def __repr__(self) -> str:
        where = self.namespace or "all namespaces"
        return f"Informer({self.resource}, {where}, {len(self._cache)} objects)"

    @property
    def _log_extra(self) -> dict[str, Any]:
        return {
            "resource": str(self.resource),
            "namespace": self.namespace or "",
            "rv": self.resource_version,
        }

    # -- lifecycle --
    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def start(self, timeout: float | None = None) -> None:
        """Start the list/watch loop and return once the first LIST is in the cache."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.resource}")
        synced = asyncio.ensure_future(self._synced.wait())
        try:
            done, _ = await asyncio.wait({synced, self._task}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            synced.cancel()
        if not self.has_synced:
            if self._task in done:
                self._task.result()  # raises what killed the loop
            raise TimeoutError(f"{self!r}: not synced after {timeout} s")

    def stop(self) -> None:
        """Stop the loop (the cache keeps its last state)."""
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> None:
        """Stop and wait until the loop (and its open watch) is gone."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def add_index(self, labels: Sequence[str]) -> None:
        """Index these labels too (for `by_label`); only before the first LIST."""
        missing = [label for label in labels if label not in self.index_labels]
        if not missing:
            return
        if self._task is not None:
            raise ValueError(f"{self!r}: cannot add index labels {missing} once started")
        self.index_labels += tuple(missing)
        self._index.update({label: {} for label in missing})

    # -- reads --
    def get(self, namespace: str | None, name: str) -> JSON | None:
        return self._cache.get((namespace or "", name))

    def __len__(self) -> int:
        return len(self._cache)

    def __contains__(self, key: object) -> bool:
        return key in self._cache

    def keys(self) -> builtins.list[Key]:
        return builtins.list(self._cache)

    def list(
        self, namespace: str | None = None, selector: dict[str, str] | None = None
    ) -> builtins.list[JSON]:
        """Objects in `namespace` (None: all) whose labels include every pair of `selector`."""
        candidates: Iterable[JSON]
        indexed = next((k for k in (selector or {}) if k in self._index), None)
        if selector and indexed is not None:
            keys = self._index[indexed].get(selector[indexed], ())
            candidates = [self._cache[k] for k in keys]
        else:
            candidates = self._cache.values()
        out = []
        for obj in candidates:
            meta = obj["metadata"]
            if namespace is not None and (meta.get("namespace") or "") != namespace:
                continue
            if selector:
                labels = meta.get("labels") or {}
                if any(labels.get(k) != v for k, v in selector.items()):
                    continue
            out.append(obj)
        return out

    def by_label(self, key: str, value: str, namespace: str | None = None) -> builtins.list[JSON]:
        """Objects with label `key`=`value` via the index: O(matches). `key` must be in `index_labels`."""
        try:
            keys = self._index[key].get(value, ())
        except KeyError:
            raise KeyError(f"label {key!r} is not indexed (index_labels={self.index_labels})") from None
        if namespace is None:
            return [self._cache[k] for k in keys]
        return [self._cache[k] for k in keys if k[0] == namespace]

    # -- cache maintenance --
    def _index_add(self, key: Key, obj: JSON) -> None:
        labels = _labels(obj)
        for label, values in self._index.items():
            value = labels.get(label)
            if value is not None:
                values.setdefault(value, set()).add(key)

    def _index_remove(self, key: Key, obj: JSON) -> None:
        labels = _labels(obj)
        for label, values in self._index.items():
            value = labels.get(label)
            if value is not None:
                keys = values.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del values[value]

    def _trim(self, obj: JSON) -> JSON:
        obj = _trim(obj)
        return self.transform(obj) if self.transform is not None else obj

    def _store(self, event_type: str, obj: JSON) -> None:
        key = key_of(obj)
        if event_type == DELETED:
            old = self._cache.pop(key, None)
            if old is not None:
                self._index_remove(key, old)
        else:
            old = self._cache.get(key)
            self._cache[key] = obj
            if old is not None:
                old_labels, new_labels = _labels(old), _labels(obj)
                if all(old_labels.get(label) == new_labels.get(label) for label in self.index_labels):
                    return
                self._index_remove(key, old)
            self._index_add(key, obj)

    def add_handler(self, handler: EventHandler) -> Callable[[], None]:
        """Tell `handler` about every change from now on, and, if the cache is already synced, about
        every object in it first (as ADDED), so a consumer that comes late (a controller restarted after
        a crash) builds the same state as one that was there from the start. Returns the function that
        removes it again."""
        self.handlers.append(handler)
        if self.has_synced:
            for obj in builtins.list(self._cache.values()):
                self._call(handler, ADDED, obj)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self.handlers.remove(handler)

        return remove

    def _emit(self, event_type: str, obj: JSON) -> None:
        for handler in self.handlers:
            self._call(handler, event_type, obj)

    def _call(self, handler: EventHandler, event_type: str, obj: JSON) -> None:
        try:
            handler(event_type, obj)
        except Exception:
            log.exception(
                "informer event handler failed",
                extra={**self._log_extra, "event": event_type, "object": key_of(obj)},
            )

    # -- list and watch --
    async def relist(self, reason: RelistReason = "resync") -> None:
        """LIST everything, replace the cache, and emit the difference to the previous cache."""
        items, rv = await self.client.list_all(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            page_size=self.page_size,
        )
        self.relists += 1
        RELISTS.labels(self.resource.plural, reason).inc()
        old = self._cache
        new = {key_of(obj): self._trim(obj) for obj in items}
        events: builtins.list[tuple[str, JSON]] = [(DELETED, obj) for k, obj in old.items() if k not in new]
        deleted = len(events)
        for k, obj in new.items():
            prev = old.get(k)
            if prev is None:
                events.append((ADDED, obj))
            elif _rv(prev) != _rv(obj):
                events.append((MODIFIED, obj))
        self._cache = new
        self._index = {label: {} for label in self.index_labels}
        for k, obj in new.items():
            self._index_add(k, obj)
        self.resource_version = rv
        self._synced.set()
        log.info(
            "informer listed",
            extra={
                **self._log_extra,
                "reason": reason,
                "objects": len(new),
                "deleted": deleted,
                "changed": len(events) - deleted,
            },
        )
        for event_type, obj in events:
            self._emit(event_type, obj)

    async def watch_step(self, resource_version: str | None = None) -> str:
        """One WATCH request from `resource_version` (default: the last one seen) until the server ends it.

        On 410 Gone (HTTP or in-stream) it re-lists instead. Returns the resourceVersion to continue from.
        Other failures raise (the loop backs off and calls again).
        """
        rv = self.resource_version if resource_version is None else resource_version
        lo, hi = self.watch_timeout
        try:
            resp = await self.client.watch(
                self.resource,
                resource_version=rv,
                namespace=self.namespace,
                label_selector=self.label_selector,
                timeout_seconds=random.randint(lo, hi),
            )
        except Gone as err:
            log.info("informer watch expired (HTTP 410)", extra={**self._log_extra, "error": err.message})
            await self.relist("expired")
            return self.resource_version
        self.watches += 1
        self.resource_version = rv
        api_version, kind = self.resource.api_version, self.resource.kind
        try:
            while True:
                line = await resp.content.readline()
                if not line:
                    break  # the server ended the watch (timeoutSeconds)
                if line.isspace():
                    continue
                event = orjson.loads(line)
                event_type: str = event.get("type", "")
                obj: JSON = event.get("object") or {}
                if event_type == ERROR:
                    failure = error_from_status(int(obj.get("code") or 0), obj, f"watch {self.resource}")
                    if isinstance(failure, Gone):
                        log.info("informer watch expired (410 event)", extra={**self._log_extra})
                        resp.close()
                        await self.relist("expired")
                        return self.resource_version
                    raise failure
                new_rv = _rv(obj)
                if event_type == BOOKMARK:
                    if new_rv:
                        self.resource_version = new_rv
                    continue
                if event_type not in (ADDED, MODIFIED, DELETED):
                    continue
                obj.setdefault("apiVersion", api_version)
                obj.setdefault("kind", kind)
                obj = self._trim(obj)
                self._store(event_type, obj)
                if new_rv:
                    self.resource_version = new_rv
                self._emit(event_type, obj)
        finally:
            resp.close()
        return self.resource_version

    async def _run(self) -> None:
        failures = 0
        short = 0  # consecutive watches that ended within a second (e.g. repeated 410s): do not spin
        base, cap = self.backoff
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not self.has_synced:
                    await self.relist("initial")
                began = loop.time()
                await self.watch_step()
                failures = 0
                short = short + 1 if loop.time() - began < 1.0 else 0
                log.debug("informer watch ended; watching again", extra=self._log_extra)
                if short > 1:
                    await asyncio.sleep(min(cap, base * 2 ** (short - 2)) * random.uniform(0.5, 1.0))
            except asyncio.CancelledError:
                raise
            except Exception as err:
                failures += 1
                delay = min(cap, base * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
                log.warning(
                    "informer %s failed; retrying in %.1f s",
                    "list" if not self.has_synced else "watch",
                    delay,
                    extra={**self._log_extra, "error": repr(err), "failures": failures},
                )
                await asyncio.sleep(delay)

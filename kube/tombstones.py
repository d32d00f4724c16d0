"""Children this process deleted whose deletion the informer cache has not shown yet.

A PodClique (or scaling group, PodGang, Service ...) has no finalizer: the DELETE removes it at once, but the
cache keeps it until the watch event arrives. A pass that runs in between (a status write of the same pass
wakes the key again) would plan from a ghost: a rolling update would see the scaling-group replica it just
deleted still complete and on the old template, conclude nothing is in flight and take the next replica, and
pods would be created into the deleted PodCliques. So the snapshot shows such an object as what it is, being
deleted (`metadata.deletionTimestamp` set), until the watch says it is gone. Pods do not need this: their
deletion is graceful (the cache sees the deletionTimestamp) and `Expectations` cover them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

JSON = dict[str, Any]


class Tombstones:
    """uid -> (deletionTimestamp to show, when recorded). `record` before the DELETE is sent (so its watch
    event cannot come first), `discard` if the DELETE failed, `observe` every informer event. An entry
    whose event never came (lost in a relist) expires after `timeout` seconds."""

    def __init__(self, *, timeout: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._by_uid: dict[str, tuple[str, float]] = {}

    def __len__(self) -> int:
        return len(self._by_uid)

    def record(self, uids: Iterable[str], deleted_at: str) -> None:
        now = self.clock()
        self._by_uid = {u: v for u, v in self._by_uid.items() if now - v[1] <= self.timeout}
        for uid in uids:
            if uid:
                self._by_uid[uid] = (deleted_at, now)

    def discard(self, uids: Iterable[str]) -> None:
        for uid in uids:
            self._by_uid.pop(uid, None)

    def observe(self, obj: Mapping[str, Any], deleted: bool) -> None:
        """An informer event: gone, or the cache now shows the deletion itself."""
        meta = obj.get("metadata") or {}
        if deleted or meta.get("deletionTimestamp"):
            self._by_uid.pop(meta.get("uid", ""), None)

    def mark(self, obj: JSON) -> JSON:
        """`obj` as the snapshot should see it: with a deletionTimestamp if we deleted it."""
        meta = obj.get("metadata") or {}
        entry = self._by_uid.get(meta.get("uid", ""))
        if entry is None or meta.get("deletionTimestamp"):
            return obj
        return {**obj, "metadata": {**meta, "deletionTimestamp": entry[0]}}

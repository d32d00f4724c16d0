"""A deduplicating, rate-limited work queue (client-go's workqueue semantics) in plain asyncio.

- `add(key)`: a key waiting in the queue is not added twice; a key being processed that is added again is
  queued once more when its worker calls `done(key)` (so one key is never processed concurrently, and no
  change is missed).
- `add_after(key, seconds)`: delayed add; if the key is already waiting for a timer, the earlier one wins.
- `retry(key)`: delayed add with per-key exponential backoff (5 ms doubling, capped at 1000 s, with jitter);
  `forget(key)` resets the key's failure count.
- `shutdown()`: getters (waiting or future) raise `ShutDown`; pending items and timers are dropped.

`run_workers` drives a queue with N concurrent workers in the controller-runtime style.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down."""


class ExponentialBackoff(Generic[K]):
    """Per-key failure counts → delay base·2^n, capped, with up to `jitter` (fraction) added on top."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0, jitter: float = 0.1) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        """The delay for this failure of `key` (and count it)."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = self.cap if n >= 64 else min(self.cap, self.base * 2**n)
        if self.jitter:
            delay = min(self.cap, delay * (1.0 + random.uniform(0.0, self.jitter)))
        return delay

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    def __init__(self, *, backoff: ExponentialBackoff[K] | None = None, name: str = "") -> None:
        self.name = name
        self.backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()  # keys that need processing (queued, or re-added while processing)
        self._processing: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutdown = False

    def __len__(self) -> int:
        """Keys ready to be handed out (not counting delayed or in-process keys)."""
        return len(self._queue)

    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    def waiting(self) -> int:
        """Keys waiting for a timer (add_after / retry)."""
        return len(self._timers)

    def _wake_one(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def add(self, key: K) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: K, seconds: float) -> None:
        if self._shutdown:
            return
        if seconds <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        existing = self._timers.get(key)
        if existing is not None:
            if existing[0] <= deadline:
                return
            existing[1].cancel()
        self._timers[key] = (deadline, loop.call_at(deadline, self._fire, key))

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: K) -> float:
        """Re-add `key` after its backoff delay; returns the delay."""
        delay = self.backoff.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self.backoff.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.backoff.failures(key)

    async def get(self) -> K:
        """The next key (which is then 'processing' until `done(key)`); raises `ShutDown`."""
        while not self._queue:
            if self._shutdown:
                raise ShutDown(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # If we were woken but cancelled, pass the wake-up on so the item is not stranded.
                if fut.done() and not fut.cancelled() and self._queue:
                    self._wake_one()
                raise
        if self._shutdown:
            raise ShutDown(self.name)
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        self._shutdown = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._queue.clear()
        self._dirty.clear()
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)


Worker = Callable[[K], Awaitable[float | None]]


async def run_workers(queue: WorkQueue[K], worker: Worker[K], concurrency: int) -> None:
    """Run `concurrency` workers until the queue is shut down.

    Worker result: None → success (`forget`); a float → success, process again after that many seconds
    (`forget` + `add_after`); an exception → logged and retried with the key's backoff.
    """

    async def loop() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                result = await worker(key)
            except asyncio.CancelledError:
                queue.done(key)
                raise
            except Exception as err:
                delay = queue.retry(key)
                log.warning(
                    "work item failed; retrying in %.3f s",
                    delay,
                    exc_info=err,
                    extra={"queue": queue.name, "key": str(key), "retries": queue.num_requeues(key)},
                )
            else:
                queue.forget(key)
                if result is not None:
                    queue.add_after(key, result)
            queue.done(key)

    async with asyncio.TaskGroup() as tg:
        for i in range(max(1, concurrency)):
            tg.create_task(loop(), name=f"worker {queue.name}#{i}")

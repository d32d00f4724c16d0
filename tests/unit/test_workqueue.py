"""WorkQueue semantics (client-go's workqueue): dedupe, re-add while processing, delays, backoff, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from kube.workqueue import ExponentialBackoff, ShutDown, WorkQueue, run_workers


async def drain(q: WorkQueue[str]) -> list[str]:
    out = []
    while len(q):
        key = await q.get()
        out.append(key)
        q.done(key)
    return out


async def test_add_dedupes_waiting_keys() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert await drain(q) == ["a", "b", "c"]


async def test_key_added_while_processing_is_requeued_once_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    assert key == "a" and q.processing() == {"a"}
    q.add("a")
    q.add("a")
    assert len(q) == 0  # not handed out while it is being processed
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0 and not q.processing()


async def test_get_waits_for_add() -> None:
    q: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_add_after_orders_by_deadline_and_keeps_the_earlier_timer() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("late", 0.06)
    q.add_after("early", 0.02)
    q.add_after("mid", 0.04)
    q.add_after("early", 0.5)  # a later deadline for a waiting key is ignored
    q.add_after("mid", 0.01)  # an earlier one replaces the timer
    assert q.waiting() == 3 and len(q) == 0
    got = [await asyncio.wait_for(q.get(), 1) for _ in range(3)]
    assert got == ["mid", "early", "late"]
    assert q.waiting() == 0


async def test_add_after_zero_is_immediate() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0)
    assert len(q) == 1


def test_backoff_grows_exponentially_and_caps() -> None:
    b: ExponentialBackoff[str] = ExponentialBackoff(base=0.005, cap=1000.0, jitter=0.0)
    delays = [b.when("k") for _ in range(20)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[17] == 0.005 * 2**17  # 655.36 s
    assert delays[18] == delays[19] == 1000.0
    assert b.failures("k") == 20
    assert b.when("other") == 0.005  # per key
    b.forget("k")
    assert b.failures("k") == 0 and b.when("k") == 0.005
    for _ in range(200):  # no overflow far past the cap
        assert b.when("k") <= 1000.0


def test_backoff_jitter_stays_within_bounds() -> None:
    b: ExponentialBackoff[str] = ExponentialBackoff(base=0.1, cap=1000.0, jitter=0.1)
    for n in range(10):
        delay = b.when("k")
        assert 0.1 * 2**n <= delay <= 0.1 * 2**n * 1.1


async def test_retry_uses_backoff_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(backoff=ExponentialBackoff(base=0.01, cap=1.0, jitter=0.0))
    assert q.retry("a") == 0.01
    assert q.retry("b") == 0.01
    assert q.num_requeues("a") == 1
    assert len(q) == 0
    assert {await asyncio.wait_for(q.get(), 1) for _ in range(2)} == {"a", "b"}
    assert q.retry("a") == 0.02
    q.forget("a")
    assert q.num_requeues("a") == 0


async def test_shutdown_wakes_getters_and_drops_work() -> None:
    q: WorkQueue[str] = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.add_after("later", 0.01)
    q.shutdown()
    for g in getters:
        with pytest.raises(ShutDown):
            await asyncio.wait_for(g, 1)
    q.add("x")  # ignored after shutdown
    assert len(q) == 0 and q.waiting() == 0
    with pytest.raises(ShutDown):
        await q.get()


async def test_cancelled_getter_does_not_strand_an_item() -> None:
    q: WorkQueue[str] = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("a")  # wakes `first` …
    first.cancel()  # … which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "a"


async def test_run_workers_success_requeue_and_retry() -> None:
    q: WorkQueue[str] = WorkQueue(backoff=ExponentialBackoff(base=0.005, cap=1.0, jitter=0.0))
    calls: dict[str, int] = {}
    active: set[str] = set()
    overlap: list[str] = []
    finished = asyncio.Event()

    async def worker(key: str) -> float | None:
        if key in active:
            overlap.append(key)
        active.add(key)
        calls[key] = calls.get(key, 0) + 1
        await asyncio.sleep(0.005)
        active.discard(key)
        n = calls[key]
        if key == "flaky" and n < 3:
            raise RuntimeError("transient")
        if key == "again" and n < 2:
            return 0.01
        if calls.get("flaky") == 3 and calls.get("again") == 2:
            finished.set()
        return None

    runner = asyncio.create_task(run_workers(q, worker, 4))
    for key in ("ok", "flaky", "again", "ok"):
        q.add(key)
    await asyncio.wait_for(finished.wait(), 2)
    q.shutdown()
    await asyncio.wait_for(runner, 1)
    assert calls == {"ok": 1, "flaky": 3, "again": 2}
    assert q.num_requeues("flaky") == 0  # forgotten after the success
    assert not overlap  # one key is never processed by two workers at once


async def test_run_workers_never_runs_one_key_concurrently() -> None:
    q: WorkQueue[int] = WorkQueue()
    running: set[int] = set()
    overlap = 0
    seen = 0

    async def worker(key: int) -> None:
        nonlocal overlap, seen
        if key in running:
            overlap += 1
        running.add(key)
        await asyncio.sleep(0.001)
        running.discard(key)
        seen += 1

    runner = asyncio.create_task(run_workers(q, worker, 8))
    for _ in range(20):
        for key in range(5):
            q.add(key)
        await asyncio.sleep(0.0005)
    while len(q) or q.processing():
        await asyncio.sleep(0.005)
    q.shutdown()
    await asyncio.wait_for(runner, 1)
    assert overlap == 0
    assert 5 <= seen <= 100

"""Waiting on conditions (never fixed sleeps): poll a check until it holds or a deadline passes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


async def until(
    what: str, check: Callable[[], Awaitable[T]], timeout: float = 60.0, interval: float = 0.2
) -> T:
    """The first truthy result of `check`; fails the test with `what` (and the last result) at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {result!r})")
        await asyncio.sleep(interval)

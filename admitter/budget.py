"""A token bucket: how many optional writes (Running phases, Events on waiting pods) a pass may make now.
Writes beyond it wait for a later pass, so a big start or a long queue of blocked gangs costs the apiserver
a bounded rate instead of a burst per pass."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up (full at the start)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._refilled = clock()

    def available(self) -> int:
        """Whole tokens available now (refills first)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        return int(self._tokens)

    def take(self, n: int) -> None:
        """Spend `n` tokens (at most `available()`)."""
        self._tokens -= n

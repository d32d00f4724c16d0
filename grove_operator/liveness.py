"""Liveness that means something: /healthz fails when a controller this replica runs is wedged.

Wedged: work waits for the controller (its `has_work()`) and it has made no progress for
`server.healthProbes.livenessStallSeconds`. Only both together: an idle controller has no work waiting, however
long the quiet lasts, and a busy one makes progress. The controllers record progress through a `Heartbeat`
the runtime hands them; `beat()` is one clock read, cheap enough for every watch event:

* the reconciler beats when a pass ends (whatever its result) and on every watch event it handles: a long pass
  (a 10,000-pod PodCliqueSet) shows its progress through the events its own writes cause;
* the gang admitter beats when a pass ends (it runs one at least every 2 s) and when a write of its pass
  lands. Its watch events do not count: it watches every pod of the cluster, whose events keep coming while
  its pass may be stuck.

A standby replica (not the lease holder: its controllers have not started) and a webhooks-only process track
no controller and are live as long as their event loop answers the probe (and, where the webhooks are served
by a child process, as long as that answers: `grove_operator/webhooks.py`). A controller restarted after a crash is
tracked afresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Heartbeat:
    """When a controller last made progress (monotonic seconds)."""

    __slots__ = ("clock", "last")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last = clock()

    def beat(self) -> None:
        self.last = self.clock()


WORK_WAITING = "work waiting and no progress"


def stall(
    name: str, has_work: bool, idle_seconds: float, stall_seconds: float, symptom: str = WORK_WAITING
) -> str:
    """Why controller `name` counts as wedged ("" if it does not): work waiting and no progress for more
    than `stall_seconds` (0: never)."""
    if not stall_seconds or not has_work or idle_seconds <= stall_seconds:
        return ""
    return f"{name}: {symptom} for {idle_seconds:.0f} s (livenessStallSeconds: {stall_seconds:g})"


class Liveness:
    """The /healthz probe over the controllers tracked so far: `()` -> (live, why not)."""

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self.clock = clock
        self._tracked: dict[str, tuple[Heartbeat, Callable[[], bool], str]] = {}

    def heartbeat(self) -> Heartbeat:
        """A heartbeat on this probe's clock, for a controller about to be created and `track`ed."""
        return Heartbeat(self.clock)

    def track(
        self, name: str, heartbeat: Heartbeat, has_work: Callable[[], bool], symptom: str = WORK_WAITING
    ) -> None:
        """Judge controller `name` from now on (replacing an earlier one of that name: a restart); `symptom`
        says what a stall of it means."""
        self._tracked[name] = (heartbeat, has_work, symptom)

    def __call__(self) -> tuple[bool, str]:
        now = self.clock()
        reasons = [
            why
            for name, (heartbeat, has_work, symptom) in self._tracked.items()
            if (why := stall(name, has_work(), now - heartbeat.last, self.stall_seconds, symptom))
        ]
        if reasons:
            log.error("liveness probe failing: controllers wedged", extra={"reasons": reasons})
            return (False, "; ".join(reasons))
        return (True, "")

"""The chaos suite's two profiles: `full` for `make chaos`, `short` for `make test` (the same faults on a
tenth of the pods, with shorter outages, each in two of the four phases)."""

from __future__ import annotations

from dataclasses import dataclass

from tests.chaos.workload import FULL, SHORT, Shape


@dataclass(frozen=True)
class Profile:
    name: str
    shape: Shape
    pool_nodes: int  # 110 pods each: room for the scaled-out workload with one node lost
    kills_per_phase: int  # operator SIGKILLs in each of the four phases
    not_ready_seconds: float  # how long a node stays NotReady
    slow_seconds: float  # how long the apiserver is slowed
    storms: int  # 410 storms per phase
    converge_timeout: float
    phases_per_fault: int = 4  # how many phases of the lifecycle each fault is injected in (run.phases_for)


PROFILES = {
    "short": Profile(
        "short",
        SHORT,
        3,
        kills_per_phase=3,
        not_ready_seconds=8,
        slow_seconds=6,
        storms=1,
        converge_timeout=240,
        phases_per_fault=2,
    ),
    "full": Profile(
        "full",
        FULL,
        12,
        kills_per_phase=13,
        not_ready_seconds=20,
        slow_seconds=30,
        storms=3,
        converge_timeout=900,
    ),
}

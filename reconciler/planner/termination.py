"""Gang termination (docs/termination-and-updates.md, "Gang termination"): which gangs have been below their
minimum for longer than `terminationDelay` and are recreated as a whole.

Two levels, decided from the status conditions the previous passes wrote (durable, so a restarted operator
picks up the timers where they were):

* **PodCliqueSet replica.** A standalone PodClique of replica *i*, or a scaling group of replica *i*,
  with ``MinAvailableBreached=True`` for longer than the delay (measured from the condition's
  ``lastTransitionTime``) makes every PodClique of replica *i* go (standalone and scaling-group members);
  the planner recreates them from the template, and their gangs go through gang admission again.
* **Scaling-group replica.** A member PodClique of scaling-group replica *j* breached for longer than the
  delay, while the group keeps at least ``minAvailable`` replicas without a breached member, makes only the
  PodCliques of replica *j* go. When too many replicas are breached, the group's own condition drives the
  PodCliqueSet-level termination instead.

Only what was once healthy is recycled: a PodClique counts once ``status.firstScheduledAt`` is set (its
``PodCliqueScheduled`` was True once), a scaling group once ``status.firstAvailableAt`` is set and while it
is not flagged ``GangTerminationInProgress`` (set when its replica was recreated, cleared when it is whole
again). These are recorded facts, not Grove's "last transition more than 5 s after creation" guess, which a
fast cluster defeats (a gang that breaks within 5 s of starting would never be recycled) and a slow one
fools (a gang still waiting for capacity would be recycled again and again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grove_api import conditions as cond
from grove_api import constants as c
from grove_api import naming
from grove_api.validation.k8s import parse_duration

from . import status
from .children import group_configs, standalone_cliques
from .snapshot import Obj, Snapshot, is_deleting, labels_of, name_of


@dataclass(frozen=True)
class Breach:
    """An object breached long enough to count (or still counting down: `wait` > 0)."""

    name: str
    kind: str
    reason: str
    since: str
    wait: float

    def describe(self) -> str:
        return f"{self.kind} {self.name}: {self.reason} since {self.since}"


@dataclass(frozen=True)
class ReplicaTermination:
    """Every PodClique of PodCliqueSet replica `replica` goes."""

    replica: int
    breaches: tuple[Breach, ...]


@dataclass(frozen=True)
class GroupReplicaTermination:
    """The member PodCliques of replica `replica` of scaling group `group` go."""

    group: str
    replica: int
    breaches: tuple[Breach, ...]


@dataclass
class Terminations:
    replicas: list[ReplicaTermination] = field(default_factory=list)
    group_replicas: list[GroupReplicaTermination] = field(default_factory=list)
    wait: float | None = None  # seconds until the next breach expires, if any is counting down
    counting: set[int] = field(default_factory=set)  # replicas with a breach still counting down

    def _waits(self, breaches: list[Breach]) -> None:
        for b in breaches:
            if b.wait > 0:
                self.wait = b.wait if self.wait is None else min(self.wait, b.wait)

    @property
    def terminated(self) -> set[int]:
        return {t.replica for t in self.replicas}


def termination_delay(snap: Snapshot) -> float:
    raw = snap.template.get("terminationDelay") or c.DEFAULT_TERMINATION_DELAY
    try:
        return parse_duration(str(raw))
    except ValueError:
        return parse_duration(c.DEFAULT_TERMINATION_DELAY)


def breach(
    obj: Mapping[str, Any], kind: str, healthy_once: str, now: datetime, delay: float
) -> Breach | None:
    """The object's MinAvailableBreached=True, if it was healthy once (`status.<healthy_once>` set)."""
    st = obj.get("status") or {}
    found = cond.get_condition(st.get("conditions"), c.CONDITION_MIN_AVAILABLE_BREACHED)
    if found is None or found.get("status") != cond.TRUE or not st.get(healthy_once):
        return None
    since = cond.parse_time(found.get("lastTransitionTime")) or now
    return Breach(
        name_of(obj),
        kind,
        str(found.get("reason") or ""),
        cond.format_time(since),
        delay - (now - since).total_seconds(),
    )


def decide(snap: Snapshot, updating_groups: frozenset[str] = frozenset()) -> Terminations:
    """What gang termination does this pass. `updating_groups`: scaling groups with a rolling update in
    progress (their replica-level termination is off: docs/termination-and-updates.md, "Gang
    termination")."""
    delay = termination_delay(snap)
    now = snap.now
    out = Terminations()
    for i in range(snap.replicas):
        standalone = [
            snap.podcliques.get(naming.standalone_podclique(snap.name, i, q["name"]))
            for q in standalone_cliques(snap)
        ]
        if any(q is None or is_deleting(q) or not snap.controls(q) for q in standalone):
            continue  # being recreated: nothing to judge until every PodClique is back
        found = [
            b
            for q in standalone
            if q is not None and (b := breach(q, c.KIND_PODCLIQUE, "firstScheduledAt", now, delay))
        ]
        groups = [
            g
            for cfg in group_configs(snap)
            if (g := snap.scaling_groups.get(naming.scaling_group(snap.name, i, cfg["name"]))) is not None
            and not is_deleting(g)
            and snap.controls(g)
        ]
        for g in groups:
            flagged = cond.is_true(
                (g.get("status") or {}).get("conditions"), c.CONDITION_GANG_TERMINATION_IN_PROGRESS
            )
            b = None if flagged else breach(g, c.KIND_PODCLIQUESCALINGGROUP, "firstAvailableAt", now, delay)
            if b is not None:
                found.append(b)
        expired = [b for b in found if b.wait <= 0]
        if expired:
            out.replicas.append(ReplicaTermination(i, tuple(expired)))
            continue
        if found:
            out.counting.add(i)
        out._waits(found)
        for g in groups:
            if name_of(g) not in updating_groups:
                _group_replicas(snap, g, now, delay, out)
    return out


def _group_replicas(snap: Snapshot, pcsg: Obj, now: datetime, delay: float, out: Terminations) -> None:
    members = [
        q
        for q in snap.podcliques.values()
        if snap.controls(q) and labels_of(q).get(c.LABEL_PCSG) == name_of(pcsg)
    ]
    expired: dict[int, list[Breach]] = {}
    counting: dict[int, list[Breach]] = {}
    for j, by_clique in status.group_members(pcsg, members).items():
        found = [
            b
            for q in by_clique.values()
            if not is_deleting(q) and (b := breach(q, c.KIND_PODCLIQUE, "firstScheduledAt", now, delay))
        ]
        if any(b.wait <= 0 for b in found):
            expired[j] = [b for b in found if b.wait <= 0]
        elif found:
            counting[j] = found
    replicas = status.group_replica_count(pcsg)
    if replicas - len(expired) - len(counting) < status.scaling_group_min_available(pcsg):
        return  # too few healthy replicas: the group's own condition drives the PodCliqueSet replica's fate
    for j, breaches in sorted(expired.items()):
        out.group_replicas.append(GroupReplicaTermination(name_of(pcsg), j, tuple(breaches)))
    out._waits([b for found in counting.values() for b in found])

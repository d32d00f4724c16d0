"""Runs a chaos profile: for every fault, a fresh namespace and one lifecycle of the workload (create,
scale, rolling update, delete) with the fault injected in the profile's phases, under the gang invariant;
one scoreboard row per injected phase. The baseline (no fault) runs first, in every phase, in the same run,
for comparison."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from kubernetes_asyncio.client import ApiClient, CoreV1Api, V1Namespace, V1ObjectMeta

from grove_api.refs import Ref
from localcluster import faults as cluster_faults
from localcluster import nodes as fake_nodes
from localcluster import operator
from localcluster.state import ClusterInfo
from tests.chaos.faults import Fault, Injected, catalogue
from tests.chaos.invariants import Expected
from tests.chaos.lab import PHASES, Lab, retry
from tests.chaos.profiles import Profile
from tests.chaos.scoreboard import Row
from tests.gang import GangInvariant, node_pool

POOL_NODE = fake_nodes.NodeShape(cpu="32", memory="256Gi", pods=110, gpus=0)


async def _namespace(api: ApiClient, name: str) -> None:
    await CoreV1Api(api).create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name)))
    await fake_nodes.wait_default_service_account(api, name, timeout=60)


def phases_for(index: int, count: int) -> tuple[str, ...]:
    """The `count` phases the catalogue's `index`-th fault is injected in: consecutive phases, starting one
    further for each fault, so a profile that injects each fault in fewer than four phases still covers
    every phase about equally often (with two: 1 → scale, update; 2 → update, delete; 3 → create, delete …).
    In lifecycle order, as their rows come."""
    chosen = {PHASES[(index + k) % len(PHASES)] for k in range(min(count, len(PHASES)))}
    return tuple(phase for phase in PHASES if phase in chosen)


async def _mend(lab: Lab, err: Exception) -> str:
    """A fault step raised (a restart that never came back, a node that never returned): what happened, for
    the scoreboard, after mending the cluster (control-plane processes that are not running started again,
    their clients restarted, the operator started if it is not running), so the faults after it meet a
    whole one and the row names the cause instead of the run ending there."""
    what = f"{type(err).__name__}: {err}"
    lab.say(f"a fault step failed: {what}")
    started = await asyncio.to_thread(cluster_faults.heal, lab.cluster)
    await asyncio.to_thread(cluster_faults.restart_clients, lab.cluster)
    operator_down = operator.running_pid(lab.cluster.state_dir) is None
    if operator_down:
        await asyncio.to_thread(operator.start, lab.cluster.state_dir)
    mended = ", ".join([*started, *(["the operator"] if operator_down else [])]) or "nothing"
    return f"the fault failed: {what.splitlines()[0]} (started again: {mended})"


async def lifecycle(lab: Lab, fault: Fault, inject_in: Sequence[str] = PHASES) -> list[Row]:
    """One create → scale → update → delete of the workload with `fault` injected in the phases
    `inject_in`. The other phases run and must converge too; they make a row only when they do not."""
    rows: list[Row] = []
    lab.namespace = f"chaos-{uuid.uuid4().hex[:6]}"
    await _namespace(lab.api, lab.namespace)
    try:
        try:
            await fault.setup(lab)
        except Exception as err:
            rows.append(Row(fault.name, "setup", "not set up", False, 0.0, 0.0, [await _mend(lab, err)]))
            return rows
        pid = operator.running_pid(lab.cluster.state_dir)
        release, bind = fault.windows
        async with GangInvariant(lab.api, lab.namespace, release_window=release, bind_window=bind) as gangs:
            expected: Expected | None = None
            for phase in PHASES:
                seen = len(gangs.violations)
                started = time.monotonic()
                expected = await lab.act(phase, expected)
                injecting = phase in inject_in
                try:
                    injected = (
                        await fault.inject(lab, phase)
                        if injecting
                        else Injected("not injected in this phase")
                    )
                except Exception as err:
                    injected = Injected("injection failed", [await _mend(lab, err)])
                healed = time.monotonic()
                converged, left = await lab.converge(expected, started)
                done = time.monotonic()
                evidence, lost = injected.evidence, left + injected.lost
                try:
                    evidence += await fault.after(lab) if injecting else ""
                except Exception as err:
                    lost.append(await _mend(lab, err))
                if phase != "delete":  # a gang torn down goes pod by pod: partial by nature, not a fault
                    lost += [v.split("\n")[0] for v in gangs.violations[seen:]]
                if fault.keeps_operator and operator.running_pid(lab.cluster.state_dir) != pid:
                    lost.append("the operator restarted")
                row = Row(fault.name, phase, evidence, converged, done - started, done - healed, lost)
                lab.say(
                    f"{row.fault:22} {row.phase:7} {'ok' if row.ok else 'LOST'} {row.seconds:6.1f} s  {evidence}"
                )
                if injecting or not row.ok:
                    rows.append(row)
                if not converged:
                    break  # later phases would start from a state nobody asked for
    finally:
        try:
            await fault.teardown(lab)
        except Exception as err:
            rows.append(Row(fault.name, "teardown", "not undone", False, 0.0, 0.0, [await _mend(lab, err)]))
        await retry(lambda: lab.kube.delete(Ref("v1", "Namespace", "", lab.namespace)))
    return rows


async def run(
    cluster: ClusterInfo,
    api: ApiClient,
    profile: Profile,
    seed: int,
    workdir: Path,
    only: Sequence[str] = (),
    say: Callable[[str], None] = print,
) -> list[Row]:
    """Every fault of the catalogue (or those whose name contains one of `only`), baseline first."""
    say(f"chaos profile {profile.name}: {profile.shape.pods} pods, seed {seed}")
    faults = [  # the baseline (first) in every phase
        (fault, PHASES if index == 0 else phases_for(index, profile.phases_per_fault))
        for index, fault in enumerate(catalogue(profile, workdir))
    ]
    if only:
        faults = [(f, p) for f, p in faults if f.name == "none" or any(o in f.name for o in only)]
    rows: list[Row] = []
    async with node_pool(api, f"chaos{seed % 1000}", profile.pool_nodes, POOL_NODE) as pool:
        await pool.uncordon(profile.pool_nodes)
        lab = Lab(cluster, api, pool, random.Random(seed), profile.shape, profile.converge_timeout, say=say)
        for fault, phases in faults:
            rows += await lifecycle(lab, fault, phases)
    return rows


def baseline(rows: list[Row]) -> dict[str, float]:
    """Phase -> seconds to converge without a fault (this run's baseline rows)."""
    return {r.phase: r.seconds for r in rows if r.fault == "none"}

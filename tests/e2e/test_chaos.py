"""The chaos suite's short profile (~100 pods): every fault of the catalogue, each in two phases of the
workload's lifecycle (all four phases covered), converges to exactly the intended state with nothing lost
(tests/chaos/, docs/chaos.md). The seed is fixed so a failure replays; `make chaos` runs the full profile
with a fresh one.

It runs on a cluster of its own, as `make chaos` does: it restarts etcd and the apiserver and deletes nodes,
and a run that fails in the middle of that must not take the session's cluster, and every test after it,
down with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient

from localcluster import cluster as localcluster
from localcluster.state import ClusterInfo
from tests.chaos.profiles import PROFILES
from tests.chaos.run import baseline, phases_for, run
from tests.chaos.scoreboard import table, write

SEED = 20261207
PROFILE = PROFILES["short"]


@pytest.fixture(scope="module")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """A local cluster with the operator and one node of its own (the suite adds its node pool)."""
    state_dir = tmp_path_factory.mktemp("chaos-cluster") / "state"
    try:
        yield localcluster.up(state_dir, nodes=1, progress=lambda _msg: None)
    finally:
        localcluster.down(state_dir)


@pytest.mark.timeout(1800)
async def test_every_fault_converges_with_nothing_lost(chaos_cluster: ClusterInfo, tmp_path: Path) -> None:
    async with ApiClient(configuration=chaos_cluster.api_configuration()) as api:
        rows = await run(chaos_cluster, api, PROFILE, SEED, tmp_path)
    write(tmp_path / "chaos.json", rows, {"profile": PROFILE.name, "seed": SEED})
    board = table(rows, baseline(rows))
    print(board)
    assert all(r.ok for r in rows), board
    by_fault: dict[str, list[str]] = {}
    for r in rows:
        by_fault.setdefault(r.fault, []).append(r.phase)
    assert len(by_fault) == 10, board  # the baseline and nine faults
    assert by_fault.pop("none") == ["create", "scale", "update", "delete"], board
    for index, phases in enumerate(by_fault.values(), start=1):
        assert phases == list(phases_for(index, PROFILE.phases_per_fault)), board

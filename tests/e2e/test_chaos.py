"""The chaos suite's short profile (~100 pods) on the session cluster: every fault of the catalogue, in
every phase of the workload's lifecycle, converges to exactly the intended state with nothing lost
(tests/chaos/, docs/chaos.md). The seed is fixed so a failure replays; `make chaos` runs the full profile
with a fresh one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.chaos.profiles import PROFILES
from tests.chaos.run import baseline, run
from tests.chaos.scoreboard import table, write

SEED = 20261207


@pytest.mark.timeout(1800)
async def test_every_fault_converges_with_nothing_lost(
    cluster: Any, api_client: client.ApiClient, tmp_path: Path
) -> None:
    rows = await run(cluster, api_client, PROFILES["short"], SEED, tmp_path)
    write(tmp_path / "chaos.json", rows, {"profile": "short", "seed": SEED})
    board = table(rows, baseline(rows))
    print(board)
    faults = {r.fault for r in rows}
    assert len(faults) == 10 and all(len([r for r in rows if r.fault == f]) == 4 for f in faults), board
    assert all(r.ok for r in rows), board

"""The core benchmark runs end to end on a small cluster and writes what it measured."""

from __future__ import annotations

import json
from pathlib import Path

from tools import bench_gang


def test_core_bench_small(tmp_path: Path) -> None:
    out = tmp_path / "gang-core.json"
    args = ["core", "--nodes", "40", "--gangs", "40", "--pods", "300", "--events", "10", "--out", str(out)]
    assert bench_gang.main(args) == 0
    result = json.loads(out.read_text())
    assert result["full_pass"]["admitted_gangs"] + result["full_pass"]["blocked_gangs"] <= 40
    assert result["per_event"]["checked_against_full_pass_mismatches"] == 0
    assert set(result["packing"]) == {"ours", "demand_over_capacity", "first_fit_baseline"}
    assert 0 < result["packing"]["ours"]["cpu"] <= 1

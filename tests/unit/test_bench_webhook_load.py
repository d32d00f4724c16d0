"""The pure parts of bench-webhook's under-load part (tools/bench_webhook_load.py): statistics, the operator's
histograms, the fixtures (admissible as our webhooks judge them), the command line. No timing is asserted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from grove_api.defaulting import default_podcliqueset
from grove_api.operatorconfig import OperatorConfiguration
from tools import bench_webhook_load as load
from tools.bench_webhook import build_parser, review_body
from webhook.admission import parse_review
from webhook.pcs import ValidatingHandler

METRICS = """\
# HELP grove_gang_admission_pass_duration_seconds Time to decide one admission pass over the whole queue.
# TYPE grove_gang_admission_pass_duration_seconds histogram
grove_gang_admission_pass_duration_seconds_bucket{le="0.1"} 2.0
grove_gang_admission_pass_duration_seconds_bucket{le="0.5"} 5.0
grove_gang_admission_pass_duration_seconds_bucket{le="+Inf"} 6.0
grove_gang_admission_pass_duration_seconds_count 6.0
grove_gang_admission_pass_duration_seconds_sum 3.5
grove_webhook_request_duration_seconds_bucket{le="0.001",path="/webhooks/validate-podcliqueset"} 4.0
grove_webhook_request_duration_seconds_bucket{le="+Inf",path="/webhooks/validate-podcliqueset"} 5.0
grove_webhook_request_duration_seconds_count{path="/webhooks/validate-podcliqueset"} 5.0
grove_webhook_request_duration_seconds_sum{path="/webhooks/validate-podcliqueset"} 0.01
grove_webhook_request_duration_seconds_bucket{le="0.001",path="/webhooks/mutate-pod"} 7.0
grove_webhook_request_duration_seconds_count{path="/webhooks/mutate-pod"} 9.0
"""


def test_latency_stats_are_unrounded_nearest_rank() -> None:
    series = load.Series(latencies=[i / 1000 for i in range(1, 101)])  # 1..100 ms
    series.fail("HTTP 500: boom")
    stats = load.latency_stats(series)
    assert stats["count"] == 100 and stats["errors"] == 1
    assert stats["first_errors"] == ["HTTP 500: boom"]
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p99_ms"] == pytest.approx(99.0)
    assert stats["worst_ms"] == pytest.approx(100.0)
    assert load.latency_stats(load.Series()) == {"count": 0, "errors": 0}


def test_ratio_of_p99s_and_missing_samples() -> None:
    assert load.ratio({"p99_ms": 30.0}, {"p99_ms": 10.0}) == pytest.approx(3.0)
    assert load.ratio({"count": 0}, {"p99_ms": 10.0}) is None


def test_parse_histogram_filters_labels_and_subtracts() -> None:
    passes = load.parse_histogram(METRICS, load.PASS_METRIC)
    assert passes.count == 6 and passes.sum == pytest.approx(3.5)
    assert passes.buckets == {0.1: 2.0, 0.5: 5.0, float("inf"): 6.0}
    validate = load.parse_histogram(METRICS, load.WEBHOOK_METRIC, {"path": "/webhooks/validate-podcliqueset"})
    assert validate.count == 5
    earlier = load.Histogram({0.1: 1.0, 0.5: 1.0, float("inf"): 1.0}, 0.5, 1.0)
    delta = passes.minus(earlier)
    assert delta.count == 5 and delta.sum == pytest.approx(3.0)
    assert delta.at_most(0.5) == 0.5
    assert delta.at_most(0.99) == float("inf")
    assert load.Histogram().at_most(0.5) is None


def test_describe_histogram() -> None:
    described = load.describe_histogram(load.parse_histogram(METRICS, load.PASS_METRIC), seconds=7.0)
    assert described["count"] == 6
    assert described["busy_share"] == pytest.approx(0.5)
    assert described["mean_ms"] == pytest.approx(3500 / 6)
    assert described["p50_at_most_ms"] == 500.0
    assert described["p99_at_most_ms"] is None  # in the +Inf bucket: no bound to give
    assert load.describe_histogram(load.Histogram(), 1.0) == {
        "count": 0,
        "busy_seconds": 0.0,
        "busy_share": 0.0,
    }


def test_rounds_summary_median_and_worst() -> None:
    rounds: list[dict[str, Any]] = [
        {"ratio_p99": {"apiserver": 1.5, "control": 1.0, "direct": None}},
        {"ratio_p99": {"apiserver": 2.5, "control": 3.0, "direct": None}},
        {"ratio_p99": {"apiserver": 1.0, "control": 2.0, "direct": None}},
    ]
    summary = load.summarize_rounds(rounds)
    assert summary["apiserver"]["ratio_p99_median"] == 1.5
    assert summary["apiserver"]["ratio_p99_worst"] == 2.5
    assert summary["direct"] == {"ratio_p99_per_round": [], "ratio_p99_median": None, "ratio_p99_worst": None}
    merged = load.pooled(
        [{"apiserver": load.Series([0.1], 1, ["x"])}, {"apiserver": load.Series([0.2, 0.3], 0, [])}]
    )
    assert merged["apiserver"].latencies == [0.1, 0.2, 0.3] and merged["apiserver"].errors == 1
    assert merged["control"].latencies == []


def _validate(doc: dict[str, Any]) -> Any:
    async def topologies(name: str) -> list[str] | None:
        return ["zone", "block", "rack"] if name == load.TOPOLOGY else None

    config = OperatorConfiguration.model_validate({"topologyAwareScheduling": {"enabled": True}})
    handler = ValidatingHandler(config, topologies)
    return asyncio.run(handler(parse_review(review_body(default_podcliqueset(doc)))))


def test_fixtures_pass_our_validation() -> None:
    pending = load.pending_fixture(30)
    assert pending["spec"]["template"]["topologyConstraint"]["pack"] == {"required": "rack"}
    assert _validate(pending).allowed
    assert _validate(load.load_fixture(500)).allowed
    pod = load.plain_pod("p", "fake-node-001", "1", {"bench": "churn"})
    assert pod["spec"]["nodeName"] == "fake-node-001"
    assert not any(k.startswith("grove.io") or "part-of" in k for k in pod["metadata"]["labels"])


def test_command_line_parts_and_modes() -> None:
    args = build_parser().parse_args(["--parts", "create,passes", "--modes", "shared,separate"])
    assert args.parts == ["create", "passes"] and args.modes == ["shared", "separate"]
    assert build_parser().parse_args([]).parts == ["handler", "apiserver", "create", "passes"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--modes", "nonsense"])


def test_table_prints_every_round_and_the_verdict() -> None:
    stats = {"count": 3, "errors": 0, "p50_ms": 1.0, "p99_ms": 2.0, "worst_ms": 3.0, "mean_ms": 1.5}
    operator = {"seconds": 10.0, "admission_passes": {"count": 4, "mean_ms": 300.0, "busy_share": 0.9}}
    rnd = {
        "idle": dict.fromkeys(load.PROBES, stats),
        "loaded": dict.fromkeys(load.PROBES, stats),
        "ratio_p99": dict.fromkeys(load.PROBES, 1.0),
        "operator_idle": operator,
        "operator_loaded": operator,
    }
    part = load.summarize_rounds([rnd])
    result = {
        "setup": {
            "probe_rate_per_second": 10,
            "create": {"nodes": 100, "pods": 1000},
            "passes": {"nodes": 1000, "waiting_gangs": 30},
        },
        "modes": {
            "shared": {
                "passes": {
                    "rounds": [rnd],
                    "summary": part,
                    "pooled": {"idle": rnd["idle"], "loaded": rnd["loaded"]},
                    "target_met": True,
                    "direct_within_target": False,
                }
            }
        },
    }
    text = load.table(result)
    assert "[shared] passes" in text and "round 1" in text and ": met;" in text and "NOT within" in text

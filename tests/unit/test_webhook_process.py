"""The webhook process's side of grove-operator without a cluster: /metrics with families counted in another
process (the filter and the merged answer), its command line, and what it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from grove_operator import main as operator_main
from grove_operator.metrics import build_app, families
from webhook.server import METRICS_PREFIX

ROOT = Path(__file__).resolve().parents[2]


def exposition() -> bytes:
    """Two of ours, one borrowed counter and a borrowed histogram (its _bucket/_sum/_count samples)."""
    registry = CollectorRegistry()
    Counter("grove_reconcile_passes_total", "passes", registry=registry).inc(3)
    Counter("grove_webhook_requests_total", "reqs", ["path"], registry=registry).labels("/v").inc()
    Histogram("grove_webhook_request_duration_seconds", "t", registry=registry, buckets=(0.1,)).observe(0.05)
    Counter("grove_webhooker_total", "a name that merely begins alike", registry=registry).inc()
    return generate_latest(registry)


def test_families_splits_the_exposition_by_name_prefix_without_losing_a_line() -> None:
    text = exposition()
    borrowed = families(text, METRICS_PREFIX, keep=True)
    own = families(text, METRICS_PREFIX, keep=False)
    assert sorted(borrowed.splitlines() + own.splitlines()) == sorted(text.splitlines())
    assert b'grove_webhook_requests_total{path="/v"} 1.0' in borrowed.splitlines()
    assert b'grove_webhook_request_duration_seconds_bucket{le="0.1"} 1.0' in borrowed.splitlines()
    assert b"# TYPE grove_webhook_request_duration_seconds histogram" in borrowed.splitlines()
    assert all(b"grove_webhook_" not in line for line in own.splitlines())
    assert b"grove_reconcile_passes_total 3.0" in own.splitlines()
    assert b"grove_webhooker_total 1.0" in own.splitlines()


async def test_metrics_serves_the_borrowed_families_in_place_of_its_own(aiohttp_client: Any) -> None:
    theirs = b'# HELP grove_webhook_requests_total r\n# TYPE grove_webhook_requests_total counter\ngrove_webhook_requests_total{path="/x"} 7.0\n'
    answers = [theirs, b""]

    async def source() -> bytes:
        return answers.pop(0)

    client = await aiohttp_client(build_app(None, (METRICS_PREFIX, source)))
    text = await (await client.get("/metrics")).text()
    assert 'grove_webhook_requests_total{path="/x"} 7.0' in text.splitlines()
    assert text.count("# TYPE grove_webhook_requests_total") == 1
    assert "# TYPE python_info gauge" in text  # this process's own families stay
    # The source has nothing (the child restarting): this process's own families, nothing borrowed.
    text = await (await client.get("/metrics")).text()
    assert 'path="/x"' not in text and "# TYPE python_info gauge" in text


def test_the_child_is_started_with_the_parents_files() -> None:
    args = operator_main.build_parser().parse_args(["--config", "c.yaml", "--kubeconfig", "k"])
    argv = operator_main._child_argv(args)
    assert argv[1:] == ["-m", "grove_operator.main", "--config=c.yaml", "--kubeconfig=k"]
    assert operator_main.build_parser().parse_args([*argv[3:], "--webhook-process"]).webhook_process
    assert operator_main._child_argv(operator_main.build_parser().parse_args([]))[3:] == []


def test_the_webhook_process_does_without_kubernetes_asyncio() -> None:
    """What `grove-operator --webhook-process` imports leaves out kubernetes_asyncio's ~35 MB of API models and
    the controllers (grove_operator/webhooks.py)."""
    code = (
        "import sys, grove_operator.main, grove_operator.webhooks\n"
        "heavy = [m for m in sys.modules if m.startswith(('kubernetes_asyncio', 'reconciler', 'admitter'))]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout

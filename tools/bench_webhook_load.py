"""Admission latency under load: part 3 of `make bench-webhook` (tools/bench_webhook.py, `--parts create,passes`).

The whole operator runs (controllers and gang admission on, as installed) on a throwaway local cluster, and
three probes run side by side at a fixed rate each (open loop: a slow answer does not hold the next request
back, so a stalled event loop shows in the numbers instead of thinning them out):

* `apiserver`: a dry-run create of the 5-clique PodCliqueSet through the kube-apiserver, which calls our
  defaulting and validating webhooks on the operator process. Nothing is stored, so the probe starts no
  work for the controllers. The target is about this one.
* `control`: a dry-run create of a ConfigMap through the same apiserver, which calls no webhook: how much
  slower the apiserver (and the machine: 2 cores, shared by everything) got under the same load.
* `direct`: the validating AdmissionReview posted straight to the webhook server: our own share, without
  the apiserver.

Each part runs `rounds` times. A round is an idle window (nothing else happening, `idle_seconds`) followed
by a loaded window; its ratio is the loaded p99 over the idle p99 of the same round. The target (issue 20):
loaded p99 <= 2x idle p99 of the apiserver probe, judged on the median ratio of the rounds (the worst round
is printed beside it). The operator's own metrics are read around every window: admission passes (how
many, how long they decided in total and on average, and the share of the window they took), reconcile
passes, and the webhook server's handler time.

* `create`: bench-scale's fixture, a PodCliqueSet of 500 replicas x 2 pods = 1,000 pods on 100 KWOK nodes;
  the loaded window runs from the create until the PodCliqueSet is available (500/500), then it is deleted
  and the cluster left to go quiet.
* `passes`: admission passes over 1,000 KWOK nodes. One node of every rack (4 nodes) is half taken by a
  plain pod (32 of 64 cpu), and a PodCliqueSet of 30 replicas whose gangs (4 pods x 33 cpu, packed into one
  rack: `pack.required: rack`) fit no rack now waits. While plain 1-cpu pods come and go on random nodes
  (`churn_rate` creates a second, as many deletes), every change of capacity makes the admitter try every
  waiting gang again on every rack: a pass of a few hundred ms (as the pure core's full pass over 1,000
  nodes in `make bench-gang`). The loaded window (`pass_seconds`) starts once every gang is reported
  blocked and must end within the gangs' starvation time (60 s by default): after that the oldest gang
  holds the others back and passes are cheap again. The idle window has the nodes and the half-full nodes,
  no waiting gangs and no churn.

Modes (`--modes`, default `child`): `child`, the operator as installed by default (the webhooks answered by
its child process, grove_operator/webhooks.py); `shared`, webhooks, reconciler and admitter on one event
loop (`server.webhooks.ownProcess: false`); `separate`, the webhooks served by a second, `--webhooks-only`
process (the chart's `webhookServer.separate`) while the first keeps the controllers. Measured before the
child process became the default and since removed: the admitter's passes decided in a worker thread of the
one process helped little (the passes hold the interpreter lock; README, "Benchmarks").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from grove_api import constants as c
from grove_api.defaulting import default_podcliqueset
from grove_api.podgang import CONDITION_ADMITTED, REASON_TOPOLOGY
from localcluster import api as api_probe
from localcluster import nodes as fake_nodes
from localcluster import operator as grove_operator
from localcluster import ports
from localcluster.state import ClusterInfo
from tools import bench_scale
from webhook import paths, registration

PROBES = ("apiserver", "control", "direct")
TARGET_RATIO = 2.0
NAMESPACE = "bench-load"  # the workloads
PROBE_NAMESPACE = "bench-probe"  # the probes' dry-run objects
LOAD_NAME = "load"  # the 1,000-pod PodCliqueSet
PENDING_NAME = "pending"  # the waiting gangs
TOPOLOGY = "bench-racks"  # ClusterTopologyBinding of the `passes` part
TOLERATION = {"key": fake_nodes.FAKE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
HALF_NODE_CPU = "32"  # of a KWOK node's 64
GANG_PODS, GANG_POD_CPU = 4, "33"  # a gang needs a whole rack with no half-taken node
PASS_METRIC = "grove_gang_admission_pass_duration_seconds"
RECONCILE_METRIC = "grove_reconcile_duration_seconds"
WEBHOOK_METRIC = "grove_webhook_request_duration_seconds"
APISERVER_WEBHOOK_METRIC = "apiserver_admission_webhook_admission_duration_seconds"
ROOT = Path(__file__).resolve().parent.parent


_STARTED = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr, with the seconds since the start (where a slow run spends its time)."""
    print(f"[{time.monotonic() - _STARTED:6.0f} s] {message}", file=sys.stderr, flush=True)


# --- pure parts: statistics, the operator's histograms -------------------------------------------------


@dataclass
class Series:
    """One probe's answers in one window: latencies in seconds (successful requests only) and failures."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 3:
            self.first_errors.append(what)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest rank on sorted samples, as the rest of bench-webhook computes its p99."""
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_stats(series: Series) -> dict[str, Any]:
    """count, errors, p50/p99/worst/mean in ms, unrounded (targets are compared on these)."""
    ordered = sorted(series.latencies)
    out: dict[str, Any] = {"count": len(ordered), "errors": series.errors}
    if series.first_errors:
        out["first_errors"] = list(series.first_errors)
    if ordered:
        out.update(
            p50_ms=statistics.median(ordered) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
            worst_ms=ordered[-1] * 1000,
            mean_ms=statistics.fmean(ordered) * 1000,
        )
    return out


def ratio(loaded: dict[str, Any], idle: dict[str, Any], key: str = "p99_ms") -> float | None:
    if not loaded.get(key) or not idle.get(key):
        return None
    return float(loaded[key] / idle[key])


@dataclass
class Histogram:
    """A Prometheus histogram as scraped: cumulative bucket counts by upper bound, sum and count."""

    buckets: dict[float, float] = field(default_factory=dict)
    sum: float = 0.0
    count: float = 0.0

    def minus(self, before: Histogram) -> Histogram:
        return Histogram(
            {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.sum - before.sum,
            self.count - before.count,
        )

    def at_most(self, q: float) -> float | None:
        """The upper bound of the bucket that holds the q-quantile (None when empty)."""
        if self.count <= 0:
            return None
        for le in sorted(self.buckets):
            if self.buckets[le] >= q * self.count:
                return le
        return float("inf")


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_histogram(text: str, name: str, labels: dict[str, str] | None = None) -> Histogram:
    """The histogram `name` from Prometheus text, summed over series whose labels include `labels`."""
    out = Histogram()
    wanted = labels or {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        metric, raw_labels, value = match.groups()
        found = dict(_LABEL.findall(raw_labels or ""))
        if any(found.get(k) != v for k, v in wanted.items()):
            continue
        if metric == f"{name}_bucket":
            le = float(found["le"])
            out.buckets[le] = out.buckets.get(le, 0.0) + float(value)
        elif metric == f"{name}_sum":
            out.sum += float(value)
        elif metric == f"{name}_count":
            out.count += float(value)
    return out


def describe_histogram(hist: Histogram, seconds: float) -> dict[str, Any]:
    """A histogram over a window: how many, seconds spent in all and its share of the window, the mean, and
    the bucket bounds of p50 and p99 (for admission passes: how much of the window they held the loop)."""
    count = round(hist.count)
    out: dict[str, Any] = {"count": count, "busy_seconds": hist.sum}
    if seconds > 0:
        out["busy_share"] = hist.sum / seconds
    if count:
        out["mean_ms"] = hist.sum / hist.count * 1000
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            bound = hist.at_most(q)
            out[f"{name}_at_most_ms"] = None if bound is None or bound == float("inf") else bound * 1000
    return out


def summarize_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per probe: the rounds' p99 ratios, their median and worst; all samples pooled as well."""
    out: dict[str, Any] = {}
    for probe in PROBES:
        ratios = [r["ratio_p99"][probe] for r in rounds if r["ratio_p99"].get(probe) is not None]
        out[probe] = {
            "ratio_p99_per_round": ratios,
            "ratio_p99_median": statistics.median(ratios) if ratios else None,
            "ratio_p99_worst": max(ratios) if ratios else None,
        }
    return out


def pooled(rounds: list[dict[str, Series]]) -> dict[str, Series]:
    out = {probe: Series() for probe in PROBES}
    for window in rounds:
        for probe, series in window.items():
            out[probe].latencies += series.latencies
            out[probe].errors += series.errors
            out[probe].first_errors = (out[probe].first_errors + series.first_errors)[:3]
    return out


# --- the probes ----------------------------------------------------------------------------------------


class Prober:
    """Fires the three probes at `rate` requests a second each, over pre-encoded bodies (the bench's own
    loop must stay idle enough not to add to what it measures)."""

    def __init__(self, info: ClusterInfo, rate: float, pcs: dict[str, Any]) -> None:
        self.info = info
        self.interval = 1.0 / rate
        ns = PROBE_NAMESPACE
        base = f"{info.apiserver_url}/apis/{c.GROUP}/{c.VERSION}/namespaces/{ns}/{c.PLURAL_PODCLIQUESET}"
        self.pcs_url = f"{base}?dryRun=All"
        self.pcs_body = json.dumps({**pcs, "metadata": {"name": "probe", "namespace": ns}}).encode()
        self.cm_url = f"{info.apiserver_url}/api/v1/namespaces/{ns}/configmaps?dryRun=All"
        configmap = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "probe"},
            "data": {"a": "b"},
        }
        self.cm_body = json.dumps(configmap).encode()
        from tools.bench_webhook import review_body

        self.review_body = review_body(
            default_podcliqueset({**pcs, "metadata": {"name": "probe", "namespace": ns}})
        )
        self.webhook_url = ""
        self._apiserver: aiohttp.ClientSession | None = None
        self._webhook: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Prober:
        ctx = api_probe.ssl_context(self.info.ca_file, self.info.admin_cert_file, self.info.admin_key_file)
        self._apiserver = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=64))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session in (self._apiserver, self._webhook):
            if session is not None:
                await session.close()

    async def serve_from(self, base_url: str, ca_file: Path) -> None:
        """Post the direct probe to this webhook server (https://host:port) from now on."""
        if self._webhook is not None:
            await self._webhook.close()
        ctx = ssl.create_default_context(cafile=str(ca_file))
        self._webhook = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=64))
        self.webhook_url = base_url + paths.VALIDATE_PODCLIQUESET

    async def _one(self, probe: str, out: Series) -> None:
        if probe == "direct":
            session, url, body, expected = self._webhook, self.webhook_url, self.review_body, 200
        elif probe == "apiserver":
            session, url, body, expected = self._apiserver, self.pcs_url, self.pcs_body, 201
        else:
            session, url, body, expected = self._apiserver, self.cm_url, self.cm_body, 201
        assert session is not None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        start = time.perf_counter()
        try:
            async with session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=60)
            ) as resp:
                payload = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as err:
            out.fail(f"{type(err).__name__}: {err}")
            return
        elapsed = time.perf_counter() - start
        if status != expected:
            out.fail(f"HTTP {status}: {payload[:200]!r}")
        elif probe == "direct" and b'"allowed": true' not in payload and b'"allowed":true' not in payload:
            out.fail(f"not allowed: {payload[:200]!r}")
        else:
            out.latencies.append(elapsed)

    async def _fire(self, probe: str, offset: float, stop: asyncio.Event, out: Series) -> None:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()
        due = loop.time() + offset
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
            if stop.is_set():
                break
            task = asyncio.create_task(self._one(probe, out))
            pending.add(task)
            task.add_done_callback(pending.discard)
            due += self.interval
            if due < loop.time():  # the bench itself fell behind: go on from now, no burst
                due = loop.time()
        await asyncio.gather(*pending)

    async def window(self, load: Awaitable[Any] | None, seconds: float) -> tuple[dict[str, Series], float]:
        """Probe until `load` is done (or for `seconds` when there is none); the samples and how long."""
        stop = asyncio.Event()
        out = {probe: Series() for probe in PROBES}
        firing = [
            asyncio.create_task(self._fire(probe, i * self.interval / len(PROBES), stop, out[probe]))
            for i, probe in enumerate(PROBES)
        ]
        start = time.perf_counter()
        try:
            if load is not None:
                await load
            else:
                await asyncio.sleep(seconds)
        finally:
            elapsed = time.perf_counter() - start
            stop.set()
            await asyncio.gather(*firing)
        return out, elapsed


# --- the cluster side ---------------------------------------------------------------------------------


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
    return body.decode()


@dataclass
class Serving:
    """Who serves the webhooks in a mode: the direct probe's target and the metrics of that process."""

    url: str
    ca_file: Path
    metrics_url: str


@dataclass
class Bench:
    info: ClusterInfo
    api: client.ApiClient
    prober: Prober
    quiet: bench_scale.Probe
    args: Any
    serving: Serving | None = None
    workdir: Path = Path()

    @property
    def operator_metrics(self) -> str:
        return grove_operator.metrics_url(self.info)

    async def metrics(self) -> tuple[str, str, str]:
        """The operator's metrics, those of the process serving the webhooks, and the apiserver's."""
        assert self.serving is not None
        ctx = api_probe.ssl_context(self.info.ca_file, self.info.admin_cert_file, self.info.admin_key_file)

        def apiserver() -> str:
            return api_probe.get(f"{self.info.apiserver_url}/metrics", ctx, timeout=30)[1].decode()

        return (
            await asyncio.to_thread(_scrape, self.operator_metrics),
            await asyncio.to_thread(_scrape, self.serving.metrics_url),
            await asyncio.to_thread(apiserver),
        )

    async def measured(
        self, load: Awaitable[Any] | None, seconds: float = 0.0
    ) -> tuple[dict[str, Series], dict[str, Any]]:
        """A probed window with the operator's metrics around it."""
        before = await self.metrics()
        samples, elapsed = await self.prober.window(load, seconds)
        after = await self.metrics()
        path = {"path": paths.VALIDATE_PODCLIQUESET}
        webhook = {"name": paths.VALIDATING_WEBHOOK}
        operator = {
            "seconds": elapsed,
            "admission_passes": describe_histogram(
                parse_histogram(after[0], PASS_METRIC).minus(parse_histogram(before[0], PASS_METRIC)), elapsed
            ),
            "reconcile_passes_that_wrote": describe_histogram(
                parse_histogram(after[0], RECONCILE_METRIC).minus(
                    parse_histogram(before[0], RECONCILE_METRIC)
                ),
                elapsed,
            ),
            "webhook_handler_validate": describe_histogram(
                parse_histogram(after[1], WEBHOOK_METRIC, path).minus(
                    parse_histogram(before[1], WEBHOOK_METRIC, path)
                ),
                elapsed,
            ),
            # The apiserver's view: from sending the AdmissionReview to our validating webhook to its answer.
            "validating_call_seen_by_apiserver": describe_histogram(
                parse_histogram(after[2], APISERVER_WEBHOOK_METRIC, webhook).minus(
                    parse_histogram(before[2], APISERVER_WEBHOOK_METRIC, webhook)
                ),
                elapsed,
            ),
        }
        return samples, operator

    async def one_round(
        self,
        loaded: Callable[[], Awaitable[Any]],
        prepare: Callable[[], Awaitable[Any]] | None,
        cleanup: Callable[[], Awaitable[Any]],
    ) -> tuple[dict[str, Any], dict[str, Series], dict[str, Series]]:
        say("waiting for the cluster to go quiet")
        await self.quiet.quiet()
        say("idle window")
        idle, idle_operator = await self.measured(None, self.args.idle_seconds)
        try:
            if prepare is not None:
                say("preparing the load")
                await prepare()
            say("loaded window")
            busy, busy_operator = await self.measured(loaded())
        finally:
            say("cleaning up")
            await cleanup()
        idle_stats = {probe: latency_stats(s) for probe, s in idle.items()}
        busy_stats = {probe: latency_stats(s) for probe, s in busy.items()}
        report = {
            "idle": idle_stats,
            "loaded": busy_stats,
            "ratio_p99": {probe: ratio(busy_stats[probe], idle_stats[probe]) for probe in PROBES},
            "operator_idle": idle_operator,
            "operator_loaded": busy_operator,
        }
        return report, idle, busy


async def _until(what: str, check: Callable[[], Awaitable[bool]], timeout: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        await asyncio.sleep(every)


async def _ensure_namespace(api: client.ApiClient, name: str) -> None:
    with contextlib.suppress(ApiException):
        await client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
        )
    await fake_nodes.wait_default_service_account(api, name, timeout=60)


async def _gone(api: client.ApiClient, selector: str) -> None:
    """Until no pod (and no PodGang) of `selector` is left in the workload namespace."""
    core, objects = client.CoreV1Api(api), client.CustomObjectsApi(api)

    async def empty() -> bool:
        pods = await core.list_namespaced_pod(NAMESPACE, label_selector=selector, limit=1)
        gangs = await objects.list_namespaced_custom_object(
            c.SCHEDULER_GROUP, c.VERSION, NAMESPACE, c.PLURAL_PODGANG, label_selector=selector, limit=1
        )
        return not pods.items and not gangs["items"]

    await _until(f"pods of {selector} deleted", empty, timeout=600)


async def _delete_pcs(api: client.ApiClient, name: str) -> None:
    with contextlib.suppress(ApiException):
        await client.CustomObjectsApi(api).delete_namespaced_custom_object(
            c.GROUP, c.VERSION, NAMESPACE, c.PLURAL_PODCLIQUESET, name
        )
    await _gone(api, f"{c.LABEL_PART_OF}={name}")


# --- part: a 1,000-pod PodCliqueSet created ------------------------------------------------------------


def load_fixture(replicas: int) -> dict[str, Any]:
    doc = bench_scale.fixture(replicas)
    doc["metadata"] = {"name": LOAD_NAME, "namespace": NAMESPACE}
    return doc


async def create_part(bench: Bench) -> dict[str, Any]:
    replicas = bench.args.load_replicas
    objects = client.CustomObjectsApi(bench.api)

    async def loaded() -> float:
        start = time.perf_counter()
        await objects.create_namespaced_custom_object(
            c.GROUP, c.VERSION, NAMESPACE, c.PLURAL_PODCLIQUESET, load_fixture(replicas)
        )

        async def available() -> bool:
            pcs = await objects.get_namespaced_custom_object(
                c.GROUP, c.VERSION, NAMESPACE, c.PLURAL_PODCLIQUESET, LOAD_NAME
            )
            return bool((pcs.get("status") or {}).get("availableReplicas") == replicas)

        await _until("the PodCliqueSet available", available, timeout=900, every=1.0)
        return time.perf_counter() - start

    async def cleanup() -> None:
        await _delete_pcs(bench.api, LOAD_NAME)

    return await _rounds(bench, loaded, None, cleanup)


async def _rounds(
    bench: Bench,
    loaded: Callable[[], Awaitable[Any]],
    prepare: Callable[[], Awaitable[Any]] | None,
    cleanup: Callable[[], Awaitable[Any]],
) -> dict[str, Any]:
    reports, idles, busies = [], [], []
    for _ in range(bench.args.rounds):
        report, idle, busy = await bench.one_round(loaded, prepare, cleanup)
        reports.append(report)
        idles.append(idle)
        busies.append(busy)
    idle_all = {p: latency_stats(s) for p, s in pooled(idles).items()}
    busy_all = {p: latency_stats(s) for p, s in pooled(busies).items()}
    summary = summarize_rounds(reports)

    def within(probe: str) -> bool:
        median = summary[probe]["ratio_p99_median"]
        return median is not None and median <= TARGET_RATIO

    return {
        "summary": summary,
        "pooled": {
            "idle": idle_all,
            "loaded": busy_all,
            "ratio_p99": {p: ratio(busy_all[p], idle_all[p]) for p in PROBES},
        },
        "target_ratio_max": TARGET_RATIO,
        # The target (issue 20): through the apiserver. The same test of our webhook server alone (`direct`):
        # the part of the target in the operator's hands when the apiserver itself slows down (`control`).
        "target_met": within("apiserver"),
        "direct_within_target": within("direct"),
        "rounds": reports,
    }


# --- part: admission passes over 1,000 nodes ------------------------------------------------------------


def pending_fixture(replicas: int) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "busybox",
        "resources": {"requests": {"cpu": GANG_POD_CPU, "memory": "1Gi"}},
    }
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_PODCLIQUESET,
        "metadata": {"name": PENDING_NAME, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "template": {
                "topologyConstraint": {"topologyName": TOPOLOGY, "pack": {"required": "rack"}},
                "cliques": [
                    {
                        "name": "w",
                        "spec": {
                            "replicas": GANG_PODS,
                            "minAvailable": GANG_PODS,
                            "podSpec": {"containers": [container], "tolerations": [TOLERATION]},
                        },
                    }
                ],
            },
        },
    }


def plain_pod(name: str, node: str, cpu: str, labels: dict[str, str]) -> dict[str, Any]:
    """A pod of nobody's (no Grove label: no webhook, no gang), bound to `node` at creation."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}],
            "tolerations": [TOLERATION],
            "terminationGracePeriodSeconds": 0,
        },
    }


async def grow_cluster(bench: Bench, total: int) -> dict[str, str]:
    """KWOK nodes up to `total`, all Ready: node name -> its rack."""

    async def ours() -> list[dict[str, Any]]:
        listed = await fake_nodes.list_node_dicts(bench.api)
        return [n for n in listed if n["metadata"]["name"].startswith(fake_nodes.DEFAULT_PREFIX)]

    existing = await ours()
    if len(existing) < total:
        await fake_nodes.create_nodes(bench.api, total - len(existing))
        core = client.CoreV1Api(bench.api)

        async def all_ready() -> bool:
            # Raw JSON, not the client's models: decoding 1,000 nodes into them takes seconds.
            resp = await core.list_node(_preload_content=False)
            listed = json.loads(await resp.read())  # type: ignore[attr-defined]
            ready = [n for n in listed["items"] if fake_nodes.is_ready(n)]
            return len(ready) >= total

        await _until(f"{total} nodes Ready", all_ready, timeout=900, every=2.0)
        existing = await ours()
    return {n["metadata"]["name"]: n["metadata"]["labels"][fake_nodes.RACK_LABEL] for n in existing}


async def passes_setup(bench: Bench, racks: dict[str, str]) -> None:
    """The topology binding, and one node of every rack half taken."""
    objects = client.CustomObjectsApi(bench.api)
    binding = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_CLUSTERTOPOLOGYBINDING,
        "metadata": {"name": TOPOLOGY},
        "spec": {
            "levels": [
                {"domain": "zone", "key": fake_nodes.ZONE_LABEL},
                {"domain": "block", "key": fake_nodes.BLOCK_LABEL},
                {"domain": "rack", "key": fake_nodes.RACK_LABEL},
            ]
        },
    }
    with contextlib.suppress(ApiException):
        await objects.create_cluster_custom_object(
            c.GROUP, c.VERSION, c.PLURAL_CLUSTERTOPOLOGYBINDING, binding
        )
    core = client.CoreV1Api(bench.api)
    first: dict[str, str] = {}
    for node in sorted(racks):
        first.setdefault(racks[node], node)
    limit = asyncio.Semaphore(32)

    async def create(i: int, node: str) -> None:
        pod = plain_pod(f"half-{i}", node, HALF_NODE_CPU, {"bench": "half"})
        async with limit:
            with contextlib.suppress(ApiException):  # there from an earlier mode
                await core.create_namespaced_pod(NAMESPACE, pod)  # type: ignore[arg-type]

    await asyncio.gather(*(create(i, node) for i, node in enumerate(sorted(first.values()))))


async def churn(core: client.CoreV1Api, nodes: list[str], rate: float, stop: asyncio.Event) -> int:
    """Plain 1-cpu pods created on random nodes `rate` times a second, each deleted a few later."""
    rng = random.Random(20)
    live: deque[str] = deque()
    created = 0
    try:
        while not stop.is_set():
            name = f"churn-{created}"
            pod = plain_pod(name, rng.choice(nodes), "1", {"bench": "churn"})
            await core.create_namespaced_pod(NAMESPACE, pod, _preload_content=False)  # type: ignore[arg-type]
            created += 1
            live.append(name)
            if len(live) > 4:
                await core.delete_namespaced_pod(
                    live.popleft(), NAMESPACE, grace_period_seconds=0, _preload_content=False
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 / rate)
    finally:
        for name in live:
            with contextlib.suppress(ApiException):
                await core.delete_namespaced_pod(
                    name, NAMESPACE, grace_period_seconds=0, _preload_content=False
                )
    return created


async def passes_part(bench: Bench, nodes: list[str]) -> dict[str, Any]:
    gangs = bench.args.pending_gangs
    objects = client.CustomObjectsApi(bench.api)
    core = client.CoreV1Api(bench.api)

    async def prepare() -> None:
        await objects.create_namespaced_custom_object(
            c.GROUP, c.VERSION, NAMESPACE, c.PLURAL_PODCLIQUESET, pending_fixture(gangs)
        )

        async def all_blocked() -> bool:
            listed = await objects.list_namespaced_custom_object(
                c.SCHEDULER_GROUP,
                c.VERSION,
                NAMESPACE,
                c.PLURAL_PODGANG,
                label_selector=f"{c.LABEL_PART_OF}={PENDING_NAME}",
            )
            blocked: int = 0
            for gang in listed["items"]:
                for cond in (gang.get("status") or {}).get("conditions") or []:
                    if cond.get("type") == CONDITION_ADMITTED and cond.get("reason") == REASON_TOPOLOGY:
                        blocked += 1
            return blocked >= int(gangs)

        await _until(f"{gangs} gangs blocked by their rack constraint", all_blocked, timeout=300, every=1.0)

    async def loaded() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(churn(core, nodes, bench.args.churn_rate, stop))
        await asyncio.sleep(bench.args.pass_seconds)
        stop.set()
        return await task

    async def cleanup() -> None:
        await _delete_pcs(bench.api, PENDING_NAME)

    return await _rounds(bench, loaded, prepare, cleanup)


# --- modes: who serves the webhooks ---------------------------------------------------------------------


def _main_serving(info: ClusterInfo) -> Serving:
    state = grove_operator.load_state(info.state_dir)
    assert state is not None
    return Serving(
        f"https://{ports.HOST}:{state.webhook_port}",
        grove_operator.cert_dir(info) / "ca.crt",
        grove_operator.metrics_url(info),
    )


async def _configurations(bench: Bench) -> list[tuple[str, str]]:
    config = yaml.safe_load(grove_operator.config_path(bench.info).read_text())
    authorizer = bool((config.get("authorizer") or {}).get("enabled"))
    return registration.configuration_names(authorizer=authorizer)


@contextlib.contextmanager
def _process(argv: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _operator_env() -> dict[str, str]:
    root = str(ROOT)
    return {
        **os.environ,
        c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME: grove_operator.SERVICE_ACCOUNT,
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p),
    }


def _wait_ready(proc: subprocess.Popen[bytes], health_port: int, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if api_probe.get(f"http://{ports.HOST}:{health_port}{paths.READYZ}")[0] == 200:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"operator process not ready; its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@contextlib.asynccontextmanager
async def serving(bench: Bench, mode: str) -> AsyncIterator[Serving]:
    """Set up `mode` (see the module docstring), point the direct probe at the webhook server, and undo."""
    from tools.bench_webhook import point_webhooks_at

    info = bench.info
    if mode == "child":
        yield await _use(bench, _main_serving(info))
    elif mode == "separate":
        config = yaml.safe_load(grove_operator.config_path(info).read_text())
        webhook, health, metrics = ports.free_ports(3)
        server = config["server"]
        workdir = Path(tempfile.mkdtemp(prefix="separate-", dir=bench.workdir))
        server["webhooks"].update(port=webhook, serverCertDir=str(workdir / "certs"))
        server["healthProbes"]["port"] = health
        server["metrics"]["port"] = metrics
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        argv = [
            sys.executable,
            "-m",
            "grove_operator.main",
            f"--config={path}",
            f"--kubeconfig={grove_operator.kubeconfig_path(info)}",
            "--webhooks-only",
        ]
        log = workdir / "operator.log"
        configurations = await _configurations(bench)
        reg = client.AdmissionregistrationV1Api(bench.api)
        with _process(argv, log, _operator_env()) as proc:
            await asyncio.to_thread(_wait_ready, proc, health, log)
            url = f"https://{ports.HOST}:{webhook}"
            await point_webhooks_at(reg, url, configurations)
            there = Serving(url, workdir / "certs" / "ca.crt", f"http://{ports.HOST}:{metrics}/metrics")
            try:
                await _until_served_by(bench, there)
                yield await _use(bench, there)
            finally:
                await point_webhooks_at(reg, _main_serving(info).url, configurations)
                await _until_served_by(bench, _main_serving(info))
    elif mode == "shared":
        # The session operator, stopped, and in its place one with the same ports and certificates that
        # answers the webhooks on its own loop. "grove_operator.main" and the config path in the command
        # line: `grove-cluster down` finds and stops it like the operator.
        await asyncio.to_thread(grove_operator.stop, info.state_dir)
        state = grove_operator.load_state(info.state_dir)
        assert state is not None
        config = yaml.safe_load(grove_operator.config_path(info).read_text())
        config["server"]["webhooks"]["ownProcess"] = False
        path = grove_operator.config_path(info).with_name("config-shared.yaml")
        path.write_text(yaml.safe_dump(config))
        argv = [
            sys.executable,
            "-m",
            "grove_operator.main",
            f"--config={path}",
            f"--kubeconfig={grove_operator.kubeconfig_path(info)}",
        ]
        log = info.state_dir / "logs" / "grove-operator-shared.log"
        try:
            with _process(argv, log, _operator_env()) as proc:
                await asyncio.to_thread(_wait_ready, proc, state.health_port, log)
                main = _main_serving(info)
                await _until_served_by(bench, main)
                yield await _use(bench, main)
        finally:
            await asyncio.to_thread(grove_operator.start, info.state_dir, lambda _msg: None)
    else:
        raise ValueError(f"unknown mode {mode!r}")


async def _use(bench: Bench, there: Serving) -> Serving:
    bench.serving = there
    await bench.prober.serve_from(there.url, there.ca_file)
    return there


async def _until_served_by(bench: Bench, there: Serving) -> None:
    """Until a dry-run create through the apiserver reaches the webhook server of `there`."""
    path = {"path": paths.VALIDATE_PODCLIQUESET}

    def answered() -> float:
        return parse_histogram(_scrape(there.metrics_url), WEBHOOK_METRIC, path).count

    async def reached() -> bool:
        before = await asyncio.to_thread(answered)
        probe = Series()
        await bench.prober._one("apiserver", probe)
        return await asyncio.to_thread(answered) > before

    await _until("the webhook configurations pointing at the new server", reached, timeout=60)


# --- the whole part -------------------------------------------------------------------------------------


async def run(info: ClusterInfo, args: Any, workdir: Path) -> dict[str, Any]:
    from tools.bench_webhook import five_clique_pcs

    parts = set(args.parts)
    out: dict[str, Any] = {
        "setup": {
            "probe_rate_per_second": args.probe_rate,
            "rounds": args.rounds,
            "idle_seconds": args.idle_seconds,
            "create": {
                "nodes": args.load_nodes,
                "replicas": args.load_replicas,
                "pods": 2 * args.load_replicas,
            },
            "passes": {
                "nodes": args.pass_nodes,
                "waiting_gangs": args.pending_gangs,
                "gang": f"{GANG_PODS} pods x {GANG_POD_CPU} cpu, pack.required rack",
                "half_taken_nodes": args.pass_nodes // fake_nodes.NODES_PER_RACK,
                "churn_pods_per_second": args.churn_rate,
                "loaded_seconds": args.pass_seconds,
            },
            "cpus": os.cpu_count(),
        },
        "modes": {},
    }
    async with info.api_client() as api, Prober(info, args.probe_rate, five_clique_pcs()) as prober:
        for ns in (NAMESPACE, PROBE_NAMESPACE):
            await _ensure_namespace(api, ns)
        bench = Bench(info, api, prober, bench_scale.Probe(info), args, workdir=workdir)
        if "create" in parts:
            for mode in args.modes:
                say(f"create part, mode {mode}")
                async with serving(bench, mode):
                    out["modes"].setdefault(mode, {})["create"] = await create_part(bench)
        if "passes" in parts:
            say(f"growing the cluster to {args.pass_nodes} nodes")
            racks = await grow_cluster(bench, args.pass_nodes)
            say("half-taking one node of every rack")
            await passes_setup(bench, racks)
            nodes = sorted(racks)
            for mode in args.modes:
                say(f"passes part, mode {mode}")
                async with serving(bench, mode):
                    out["modes"].setdefault(mode, {})["passes"] = await passes_part(bench, nodes)
    return out


# --- printing --------------------------------------------------------------------------------------------


def _ms(stats: dict[str, Any]) -> str:
    if not stats.get("count"):
        return f"no samples ({stats.get('errors', 0)} errors)"
    errors = f", {stats['errors']} errors" if stats.get("errors") else ""
    return f"{stats['p50_ms']:.1f} / {stats['p99_ms']:.1f} / {stats['worst_ms']:.1f} ms (n={stats['count']}{errors})"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


PART_TITLES = {
    "create": "while a {pods}-pod PodCliqueSet is created ({nodes} nodes)",
    "passes": "during admission passes over {nodes} nodes ({waiting_gangs} waiting gangs, churn)",
}


def table(result: dict[str, Any]) -> str:
    """The under-load figures as a readable table (the JSON has everything, unrounded)."""
    setup = result["setup"]
    lines = [
        "admission latency under load: p50 / p99 / worst (samples); ratio = loaded p99 / idle p99 of the round",
        f"probes at {setup['probe_rate_per_second']}/s each: apiserver = PodCliqueSet dry-run create through the "
        "apiserver (our webhooks; the target), control = ConfigMap dry-run (no webhook), direct = straight to "
        "the webhook server",
    ]
    for mode, parts in result["modes"].items():
        for part, data in parts.items():
            lines.append("")
            lines.append(f"[{mode}] {part}: " + PART_TITLES[part].format(**setup[part]))
            for i, rnd in enumerate(data["rounds"], 1):
                ops = rnd["operator_loaded"]["admission_passes"]
                idle_ops = rnd["operator_idle"]["admission_passes"]
                lines.append(
                    f"  round {i}: loaded {rnd['operator_loaded']['seconds']:.1f} s; admission passes loaded "
                    f"{ops['count']} (mean {ops.get('mean_ms', 0):.0f} ms, "
                    f"{100 * ops.get('busy_share', 0):.0f} % of the window), idle {idle_ops['count']} "
                    f"(mean {idle_ops.get('mean_ms', 0):.1f} ms)"
                )
                seen = [
                    rnd[w].get("validating_call_seen_by_apiserver", {}).get("mean_ms")
                    for w in ("operator_idle", "operator_loaded")
                ]
                if None not in seen:
                    lines.append(
                        f"    the apiserver's calls to our validating webhook: mean {seen[0]:.1f} ms idle, "
                        f"{seen[1]:.1f} ms loaded"
                    )
                for probe in PROBES:
                    lines.append(
                        f"    {probe:9} idle {_ms(rnd['idle'][probe]):42} loaded {_ms(rnd['loaded'][probe]):44} "
                        f"{_x(rnd['ratio_p99'][probe])}"
                    )
            summary = data["summary"]
            for probe in PROBES:
                s = summary[probe]
                lines.append(
                    f"  {probe:9} p99 ratio median {_x(s['ratio_p99_median'])} (worst round "
                    f"{_x(s['ratio_p99_worst'])}); pooled: idle {_ms(data['pooled']['idle'][probe])}, "
                    f"loaded {_ms(data['pooled']['loaded'][probe])}"
                )
            verdict = "met" if data["target_met"] else "NOT met"
            direct = "within" if data["direct_within_target"] else "NOT within"
            lines.append(
                f"  target: apiserver p99 <= {TARGET_RATIO:g}x idle (median of the rounds): {verdict}; our webhook "
                f"server alone (direct): {direct} {TARGET_RATIO:g}x; the apiserver without webhooks (control): "
                f"{_x(summary['control']['ratio_p99_median'])}"
            )
    return "\n".join(lines)

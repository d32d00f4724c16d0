"""Scale benchmark: Grove's own scale fixture against our operator, and a raw client baseline, same run.

    make bench-scale   (python -m tools.bench_scale --out bench-results/scale.json)

Grove's fixture: a PodCliqueSet with one clique `expert-worker` (2 pods, minAvailable 2, 1Mi requests) and
500 replicas = 1,000 pods on 100 KWOK nodes. Baseline: a plain concurrent client (32 in flight) creating the
same 1,000 pods with no operator. Milestones (seconds from the action): all pods exist, all Ready, the
PodCliqueSet available (500/500), scale 500 -> 250 (pods <= 500), delete to zero pods. Also the operator's
peak RSS and CPU seconds, ratios to the baseline, and a PNG chart of pods created/Ready over time.
The raw client and the operator take turns, `--rounds` times (default 5: single rounds vary a lot on a 2-core machine) on one cluster, each after the
cluster has gone quiet; the JSON has every round and the medians (of the milestones, and of the ratios
taken within each round).
Targets (issue 5): created <= 1.5x raw, Ready <= 1.25x raw, scale-in and delete <= 2x raw delete, RSS <= 250 MB.
Every cluster component keeps its default settings: speed has to come from the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from grove_api import constants as c
from localcluster import api as api_probe
from localcluster import cluster as localcluster
from localcluster import operator
from localcluster.state import ClusterInfo

NAMESPACE = "scale"
NAME = "scale-test"
REPLICAS = 500
PODS = 2 * REPLICAS
TOLERATION = {"key": "fake-node", "operator": "Exists", "effect": "NoSchedule"}
CONTAINER = {"name": "expert-worker", "image": "busybox", "resources": {"requests": {"memory": "1Mi"}}}
# Written all the time by an idle cluster: node leases and status (KWOK), leader leases.
HEARTBEATS = frozenset({"PUT leases", "PATCH nodes/status"})
Timeline = list[tuple[float, int, int]]  # (seconds, pods existing, pods Ready)


def fixture(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_PODCLIQUESET,
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "template": {
                "cliques": [
                    {
                        "name": "expert-worker",
                        "spec": {
                            "replicas": 2,
                            "minAvailable": 2,
                            "podSpec": {"containers": [CONTAINER], "tolerations": [TOLERATION]},
                        },
                    }
                ]
            },
        },
    }


def pod_phases(pods: list[dict[str, Any]], start: datetime) -> dict[str, dict[str, float]]:
    """Median, p90 and last second (since `start`) at which the pods were created, bound (PodScheduled) and
    Ready, from the apiserver's timestamps (1 s resolution): which step of the pipeline is late."""

    def since(stamp: str | None) -> float | None:
        return None if not stamp else (datetime.fromisoformat(stamp) - start).total_seconds()

    def at(pod: dict[str, Any], kind: str) -> float | None:
        conds = {x.get("type"): x for x in pod.get("status", {}).get("conditions") or []}
        return since((conds.get(kind) or {}).get("lastTransitionTime"))

    steps = {
        "created": [since(p["metadata"].get("creationTimestamp")) for p in pods],
        "bound": [at(p, "PodScheduled") for p in pods],
        "ready": [at(p, "Ready") for p in pods],
    }
    out = {}
    for step, values in steps.items():
        known = sorted(v for v in values if v is not None)
        if known:
            out[step] = {
                "median": known[len(known) // 2],
                "p90": known[int(len(known) * 0.9)],
                "last": known[-1],
            }
    return out


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        cond.get("type") == "Ready" and cond.get("status") == "True"
        for cond in pod.get("status", {}).get("conditions") or []
    )


STEPS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "ungated": lambda pod: not pod["spec"].get("schedulingGates"),
    "bound": lambda pod: bool(pod["spec"].get("nodeName")),
    "ready": _ready,
}


class Sampler:
    """Counts pods (existing, Ready) with a label selector from a watch, recording a timeline. (Listing a
    thousand pods four times a second cost the apiserver about 6 % of its CPU while pods were starting:
    the observer must not slow down what it measures.)"""

    def __init__(self, core: client.CoreV1Api, selector: str) -> None:
        self.core = core
        self.selector = selector
        self.timeline: Timeline = []
        self._pods: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._origin = time.perf_counter()
        # step -> pod -> seconds since `mark` when the watch first showed the pod in that step
        self._reached: dict[str, dict[str, float]] = {step: {} for step in STEPS}

    def mark(self) -> None:
        """Start the clock of `per_second` (and forget earlier steps)."""
        self._origin = time.perf_counter()
        self._reached = {step: {} for step in STEPS}

    def per_second(self) -> dict[str, list[int]]:
        """Pods that had reached each step (ungated, bound, Ready) by the end of every second since `mark`,
        as the watch saw them: where the pipeline stalls, at sub-second precision the timestamps lack."""
        out = {}
        for step, seen in self._reached.items():
            end = int(max(seen.values(), default=0)) + 1
            out[step] = [sum(1 for t in seen.values() if t < s + 1) for s in range(end)]
        return out

    def _record(self, pod: dict[str, Any]) -> None:
        name, now = pod["metadata"]["name"], round(time.perf_counter() - self._origin, 3)
        for step, test in STEPS.items():
            if name not in self._reached[step] and test(pod):
                self._reached[step][name] = now

    @property
    def pods(self) -> list[dict[str, Any]]:
        return list(self._pods.values())

    async def start(self) -> None:
        """List, then watch from there (until `stop`)."""
        resp = await self.core.list_namespaced_pod(
            NAMESPACE, label_selector=self.selector, _preload_content=False
        )
        listed = json.loads(await resp.read())
        self._pods = {p["metadata"]["name"]: p for p in listed["items"]}
        self._task = asyncio.create_task(self._watch(listed["metadata"]["resourceVersion"]))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self, version: str) -> None:
        while True:
            resp = await self.core.list_namespaced_pod(
                NAMESPACE,
                label_selector=self.selector,
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=600,
                _preload_content=False,
            )
            async for line in resp.content:
                event = json.loads(line)
                pod = event["object"]
                if event["type"] == "ERROR":
                    raise RuntimeError(f"pod watch failed: {pod}")
                version = pod["metadata"]["resourceVersion"]
                if event["type"] == "DELETED":
                    self._pods.pop(pod["metadata"]["name"], None)
                elif event["type"] != "BOOKMARK":
                    self._pods[pod["metadata"]["name"]] = pod
                    self._record(pod)
                self._changed.set()

    def count(self, start: float) -> tuple[int, int]:
        items = self.pods
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        counts = (len(items), sum(1 for p in live if _ready(p)))
        self.timeline.append((round(time.perf_counter() - start, 3), *counts))
        return counts

    async def until(self, start: float, done: Callable[[int, int], bool], timeout: float = 600) -> float:
        while True:
            self._changed.clear()
            existing, ready = self.count(start)
            elapsed = time.perf_counter() - start
            if done(existing, ready):
                return round(elapsed, 2)
            if elapsed > timeout:
                raise TimeoutError(f"milestone not reached after {timeout}s ({existing} pods, {ready} Ready)")
            if self._task is not None and self._task.done():
                self._task.result()  # the watch failed: say why
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.25)


async def _bounded(calls: list[Callable[[], Awaitable[Any]]], limit: int = 32) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        async with sem:
            await call()

    await asyncio.gather(*(one(call) for call in calls))


async def raw_baseline(api: client.ApiClient, probe: Probe) -> tuple[dict[str, Any], Timeline]:
    core = client.CoreV1Api(api)
    sampler = Sampler(core, "bench=raw")
    await sampler.start()

    def pod(i: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"raw-{i}", "namespace": NAMESPACE, "labels": {"bench": "raw"}},
            "spec": {"containers": [CONTAINER], "tolerations": [TOLERATION]},
        }

    before = probe.snapshot()
    wall = datetime.now(UTC).replace(microsecond=0)
    start = time.perf_counter()
    sampler.mark()
    await _bounded([lambda i=i: core.create_namespaced_pod(NAMESPACE, pod(i)) for i in range(PODS)])
    created = await sampler.until(start, lambda n, _r: n >= PODS)
    ready = await sampler.until(start, lambda _n, r: r >= PODS)
    window = {
        **probe.since(before),
        "pods": pod_phases(sampler.pods, wall),
        "per_second": sampler.per_second(),
    }
    timeline = list(sampler.timeline)  # the chart shows the create phase
    start_delete = time.perf_counter()
    await _bounded([lambda i=i: core.delete_namespaced_pod(f"raw-{i}", NAMESPACE) for i in range(PODS)])
    deleted = await sampler.until(start_delete, lambda n, _r: n == 0)
    sampler.stop()
    return {
        "created": created,
        "ready": ready,
        "delete_to_zero": deleted,
        "create_to_ready": window,
    }, timeline


async def with_operator(api: client.ApiClient, probe: Probe) -> tuple[dict[str, Any], Timeline]:
    core = client.CoreV1Api(api)
    objects = client.CustomObjectsApi(api)
    sampler = Sampler(core, f"{c.LABEL_PART_OF}={NAME}")
    await sampler.start()
    before = probe.snapshot()
    wall = datetime.now(UTC).replace(microsecond=0)
    start = time.perf_counter()
    sampler.mark()
    await objects.create_namespaced_custom_object(
        c.GROUP, c.VERSION, NAMESPACE, c.PLURAL_PODCLIQUESET, fixture(REPLICAS)
    )
    created = await sampler.until(start, lambda n, _r: n >= PODS)
    ready = await sampler.until(start, lambda _n, r: r >= PODS)
    window = {
        **probe.since(before),
        "pods": pod_phases(sampler.pods, wall),
        "per_second": sampler.per_second(),
    }

    async def available() -> float:
        while True:
            pcs = await objects.get_namespaced_custom_object(
                c.GROUP, c.VERSION, NAMESPACE, c.PLURAL_PODCLIQUESET, NAME
            )
            if (pcs.get("status") or {}).get("availableReplicas") == REPLICAS:
                return round(time.perf_counter() - start, 2)
            await asyncio.sleep(0.25)

    pcs_available = await asyncio.wait_for(available(), 600)
    timeline = list(sampler.timeline)  # the chart shows the create phase
    start_scale = time.perf_counter()
    await objects.patch_namespaced_custom_object_scale(
        c.GROUP,
        c.VERSION,
        NAMESPACE,
        c.PLURAL_PODCLIQUESET,
        NAME,
        {"spec": {"replicas": REPLICAS // 2}},
        _content_type="application/merge-patch+json",
    )
    scaled = await sampler.until(start_scale, lambda n, _r: n <= PODS // 2)
    start_delete = time.perf_counter()
    await objects.delete_namespaced_custom_object(c.GROUP, c.VERSION, NAMESPACE, c.PLURAL_PODCLIQUESET, NAME)
    deleted = await sampler.until(start_delete, lambda n, _r: n == 0)
    sampler.stop()
    return {
        "created": created,
        "ready": ready,
        "pcs_available": pcs_available,
        "scale_500_to_250": scaled,
        "delete_to_zero": deleted,
        "create_to_ready": window,
    }, timeline


def _proc(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return {"peak_rss_mb": round(peak / 1024, 1), "cpu_seconds": round(ticks / os.sysconf("SC_CLK_TCK"), 1)}


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the operator's webhook process)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def operator_usage(pid: int) -> dict[str, Any]:
    """The operator's peak RSS and CPU, its webhook process's, and the two together (what its pod uses)."""
    own = _proc(pid)
    children = [_proc(child) for child in _children(pid)]
    return {
        **own,
        "webhook_process": children,
        "total_peak_rss_mb": round(own["peak_rss_mb"] + sum(c["peak_rss_mb"] for c in children), 1),
        "total_cpu_seconds": round(own["cpu_seconds"] + sum(c["cpu_seconds"] for c in children), 1),
    }


# The operator's counters that say how much work a window took (Prometheus name -> name in the results).
OPERATOR_COUNTERS = {
    "grove_reconcile_total": "reconcile passes",
    "grove_gang_admission_pass_duration_seconds_count": "admission passes",
    "grove_gang_admission_pass_duration_seconds_sum": "admission decide seconds",
}
Sample = tuple[dict[str, float], Counter[str], Counter[str]]  # CPU seconds, apiserver requests, counters


class Probe:
    """CPU seconds of every cluster process and the apiserver's requests (by verb and resource) over a window:
    where the time between create and Ready goes (the README's analysis is made from these numbers)."""

    def __init__(self, info: ClusterInfo) -> None:
        self.info = info
        self.ctx = api_probe.ssl_context(info.ca_file, info.admin_cert_file, info.admin_key_file)

    def _pids(self) -> dict[str, int]:
        pids = dict(self.info.pids)
        state = operator.load_state(self.info.state_dir)
        if state is not None:
            pids["grove-operator"] = state.pid
            pids.update(("grove-operator webhooks", child) for child in _children(state.pid))
        return pids

    def _requests(self) -> Counter[str]:
        """Requests served so far by "VERB resource[/subresource][ code]" (the code only when not 2xx), and
        under "seconds VERB resource" the time spent serving them (apiserver_request_duration_seconds)."""
        _status, body = api_probe.get(f"{self.info.apiserver_url}/metrics", self.ctx, timeout=10)
        counts: Counter[str] = Counter()
        for line in body.decode().splitlines():
            metric, _, rest = line.partition("{")
            if metric not in ("apiserver_request_total", "apiserver_request_duration_seconds_sum"):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', rest.split("}", 1)[0]))
            resource = "/".join(x for x in (labels.get("resource"), labels.get("subresource")) if x)
            value = float(line.rsplit(" ", 1)[1])
            if metric == "apiserver_request_total":
                code = labels.get("code", "")
                failed = "" if code.startswith("2") else f" {code}"
                counts[f"{labels.get('verb')} {resource}{failed}"] += int(value)
            else:
                counts[f"seconds {labels.get('verb')} {resource}"] += value
        return counts

    async def quiet(self, seconds: float = 3.0, timeout: float = 180.0) -> None:
        """Wait until nothing but the cluster's heartbeats has been written for `seconds`: a backlog left by
        one phase must not be counted in (nor slow down) the next one. KWOK works through pod deletions
        with four workers, and after a PodCliqueSet's 500 headless Services are deleted the controller
        manager deletes their Endpoints at its 20 requests/s for about 25 s."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            writes = sum(
                n
                for key, n in self._requests().items()
                if not key.startswith(("seconds ", "GET", "LIST", "WATCH")) and key not in HEARTBEATS
            )
            if writes == last:
                return
            last = writes
            await asyncio.sleep(seconds)
        raise TimeoutError(f"the cluster kept writing for {timeout}s")

    def _operator_counters(self) -> Counter[str]:
        """The operator's pass counters (OPERATOR_COUNTERS), summed over their labels; empty while it is
        not running."""
        try:
            _status, body = api_probe.get(operator.metrics_url(self.info), timeout=10)
        except (OSError, KeyError):
            return Counter()
        counts: Counter[str] = Counter()
        for line in body.decode().splitlines():
            metric = line.partition("{")[0].partition(" ")[0]
            if metric in OPERATOR_COUNTERS:
                counts[OPERATOR_COUNTERS[metric]] += float(line.rsplit(" ", 1)[1])
        return counts

    def snapshot(self) -> Sample:
        cpu = {name: _proc(pid)["cpu_seconds"] for name, pid in self._pids().items()}
        return cpu, self._requests(), self._operator_counters()

    def since(self, before: Sample) -> dict[str, Any]:
        cpu, requests, passes = self.snapshot()
        used = {name: round(cpu[name] - before[0].get(name, 0.0), 1) for name in cpu}
        grown = requests - before[1]
        counts = Counter({k: n for k, n in grown.items() if not k.startswith("seconds ")})
        top = dict(counts.most_common(25))
        latency = {  # mean milliseconds per request, for the busiest request kinds
            key: round(1000 * grown[f"seconds {key}"] / n, 1)
            for key, n in top.items()
            if f"seconds {key}" in grown
        }
        return {
            "cpu_seconds": dict(sorted(used.items(), key=lambda kv: -kv[1])),
            "operator_passes": {k: round(v - before[2].get(k, 0.0), 3) for k, v in passes.items()},
            "apiserver_requests_total": sum(counts.values()),
            "apiserver_requests": top,
            "apiserver_mean_ms": latency,
        }


def chart(raw: Timeline, ours: Timeline, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for timeline, label, style in ((raw, "raw client", "--"), (ours, "grove-py operator", "-")):
        ts = [t for t, _, _ in timeline]
        ax.plot(ts, [n for _, n, _ in timeline], style, label=f"{label}: pods existing")
        ax.plot(ts, [r for _, _, r in timeline], style, label=f"{label}: pods Ready")
    ax.set_xlabel("seconds since the create request")
    ax.set_ylabel("pods")
    ax.set_title(f"Creating {PODS} pods on 100 KWOK nodes")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def ratios(raw: dict[str, Any], ours: dict[str, Any]) -> dict[str, float]:
    return {
        "created": round(ours["created"] / raw["created"], 2),
        "ready": round(ours["ready"] / raw["ready"], 2),
        "scale_500_to_250_vs_raw_delete": round(ours["scale_500_to_250"] / raw["delete_to_zero"], 2),
        "delete_to_zero_vs_raw_delete": round(ours["delete_to_zero"] / raw["delete_to_zero"], 2),
    }


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds: of each milestone (seconds) and of each round's ratio (a ratio is taken
    within a round, raw and operator a minute apart, so a slow minute of the machine weighs on both)."""

    def medians(side: str) -> dict[str, float]:
        keys = [k for k, v in rounds[0][side].items() if isinstance(v, int | float)]
        return {k: statistics.median(r[side][k] for r in rounds) for k in keys}

    return {
        "raw": medians("raw"),
        "operator": medians("operator"),
        "ratios": medians("ratios"),
        "ratios_per_round": {k: [r["ratios"][k] for r in rounds] for k in rounds[0]["ratios"]},
    }


async def run(info: ClusterInfo, rounds: int) -> list[dict[str, Any]]:
    """`rounds` times: the raw client and the operator, each after the cluster has gone quiet, in turns
    (raw first in even rounds, the operator first in odd ones: a cluster that has run more is a little
    slower, and neither side should always come second)."""
    probe = Probe(info)
    out = []
    async with info.api_client() as api:
        await client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
        )
        for i in range(rounds):
            if i % 2 == 0:
                await probe.quiet()
                raw, raw_timeline = await raw_baseline(api, probe)
            await probe.quiet()
            ours, our_timeline = await with_operator(api, probe)
            if i % 2 == 1:
                await probe.quiet()
                raw, raw_timeline = await raw_baseline(api, probe)
            out.append(
                {
                    "raw": raw,
                    "operator": ours,
                    "ratios": ratios(raw, ours),
                    "timelines": {"raw": raw_timeline, "operator": our_timeline},
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/scale.json"))
    parser.add_argument("--rounds", type=int, default=5, help="raw + operator rounds (medians reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grove-bench-scale-") as tmp:
        state_dir = Path(tmp) / "cluster"
        info = localcluster.up(state_dir, nodes=100, progress=lambda _msg: None)
        try:
            rounds = asyncio.run(run(info, args.rounds))
            state = operator.load_state(state_dir)
            assert state is not None
            proc = operator_usage(state.pid)
        finally:
            # the operator's log (reconcile passes, admission passes, timings) next to the results
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copy(operator.log_path(info), args.out.with_suffix(".operator.log"))
            localcluster.down(state_dir)
    result = {**summarize(rounds), "operator_process": proc}
    med = result["ratios"]
    result["targets_met"] = {
        "created<=1.5x": med["created"] <= 1.5,
        "ready<=1.25x": med["ready"] <= 1.25,
        "scale<=2x_raw_delete": med["scale_500_to_250_vs_raw_delete"] <= 2,
        "delete<=2x_raw_delete": med["delete_to_zero_vs_raw_delete"] <= 2,
        "rss<=250MB": proc["total_peak_rss_mb"] <= 250,
    }
    result["rounds"] = rounds
    # The chart shows the round whose Ready ratio is the median one.
    shown = sorted(rounds, key=lambda r: r["ratios"]["ready"])[len(rounds) // 2]["timelines"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    chart(shown["raw"], shown["operator"], args.out.with_suffix(".png"))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    printable = {k: v for k, v in result.items() if k != "rounds"}
    print(json.dumps(printable, indent=2))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()

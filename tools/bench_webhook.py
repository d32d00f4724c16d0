"""Benchmark the PodCliqueSet admission webhooks.

    make bench-webhook    (python -m tools.bench_webhook --out bench-results/webhook.json $BENCH_WEBHOOK_ARGS)

1. In-process handler latency for a 5-clique PodCliqueSet: the full work per request (parse the
   AdmissionReview, run the handler, build the response JSON), p50/p99, for defaulting and validation.
2. End-to-end create latency through the real kube-apiserver of a throwaway local cluster, in the same
   run with and without our webhook configurations registered, and the overhead ratio. The operator
   runs its webhooks only (no reconciler load). As a reference for what is achievable, the same
   registrations are also pointed at tools/nullwebhook, a Go webhook that allows everything at once:
   its overhead is the floor of the apiserver's webhook mechanism, and `ours_minus_null_p50_ms` is
   what our handlers add on top.
3. Under load (tools/bench_webhook_load.py): admission latency through the apiserver against the whole
   operator (controllers and gang admission on), idle and while a 1,000-pod PodCliqueSet is created on 100
   KWOK nodes (`create`), and idle and during admission passes over 1,000 KWOK nodes (`passes`), beside a
   no-webhook control and our webhook server asked directly; `--modes` also runs them with the webhooks on
   the controllers' own loop (`shared`) or in a `--webhooks-only` process beside the operator (`separate`).
Targets: handler p99 <= 5 ms; webhook overhead on create <= 20 % (issue 4); under load, p99 <= 2x the idle
p99 (issue 20).

`--parts` picks parts (handler, apiserver, create, passes); `--help` lists the sizes that can be changed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from grove_api import constants as c
from grove_api.defaulting import default_podcliqueset
from grove_api.operatorconfig import OperatorConfiguration
from localcluster import cluster as localcluster
from localcluster import operator as grove_operator
from localcluster import ports
from tests.builders import clique, group, pcs
from webhook import paths
from webhook.admission import Handler, parse_review, review_response
from webhook.pcs import DefaultingHandler, ValidatingHandler


def five_clique_pcs(name: str = "bench", namespace: str = "default") -> dict[str, Any]:
    """Frontend, vision encoder, and prefill/decode leader-worker groups: 5 cliques, 2 scaling groups."""
    return pcs(
        name,
        namespace=namespace,
        startup="CliqueStartupTypeExplicit",
        cliques=[
            clique("frontend", replicas=2, min_available=None),
            clique("encoder", replicas=1, min_available=None, starts_after=["frontend"]),
            clique("pleader", replicas=1, min_available=None),
            clique("pworker", replicas=4, min_available=None, starts_after=["pleader"]),
            clique("dworker", replicas=2, min_available=None),
        ],
        groups=[group("prefill", ["pleader", "pworker"], replicas=2), group("decode", ["dworker"])],
    )


def review_body(obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "operation": "CREATE",
                "kind": {"group": c.GROUP, "version": c.VERSION, "kind": c.KIND_PODCLIQUESET},
                "resource": {"group": c.GROUP, "version": c.VERSION, "resource": c.PLURAL_PODCLIQUESET},
                "name": obj["metadata"]["name"],
                "namespace": obj["metadata"]["namespace"],
                "userInfo": {"username": "admin"},
                "object": obj,
            },
        }
    ).encode()


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


async def _time_handler(handler: Handler, body: bytes, n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        request = parse_review(body)
        response = await handler(request)
        json.dumps(review_response(request.uid, response))
        samples.append(time.perf_counter() - start)
    return _stats(samples)


async def in_process(n: int) -> dict[str, Any]:
    config = OperatorConfiguration()

    async def no_topologies(_: str) -> None:
        return None

    raw = five_clique_pcs()
    await _time_handler(DefaultingHandler(config), review_body(raw), 50)  # warm up
    return {
        "defaulting": await _time_handler(DefaultingHandler(config), review_body(raw), n),
        "validation": await _time_handler(
            ValidatingHandler(config, no_topologies), review_body(default_podcliqueset(raw)), n
        ),
    }


CONFIG_KINDS: list[tuple[str, str]] = [
    ("MutatingWebhookConfiguration", paths.DEFAULTING_CONFIG),
    ("ValidatingWebhookConfiguration", paths.VALIDATING_CONFIG),
]


async def _create_latencies(
    objects: client.CustomObjectsApi, namespace: str, n: int, tag: str, predefaulted: bool = False
) -> list[float]:
    samples = []
    for i in range(n):
        body = five_clique_pcs(f"{tag}-{i}", namespace)
        if predefaulted:  # nothing left for the mutating webhook to add: isolates the transport cost
            body = default_podcliqueset(body)
        start = time.perf_counter()
        await objects.create_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL_PODCLIQUESET, body
        )
        samples.append(time.perf_counter() - start)
    return samples


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("webhook registration did not take effect")
        await asyncio.sleep(0.2)


def build_null_webhook(out_dir: Path) -> Path:
    """Build tools/nullwebhook (Go, no dependencies; the Go toolchain is already needed for the cluster)."""
    binary = out_dir / "nullwebhook"
    source = Path(__file__).parent / "nullwebhook"
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=source, check=True)
    return binary


@contextlib.contextmanager
def null_webhook(binary: Path, cert_dir: Path) -> Iterator[str]:
    """Serve the do-nothing webhook with the operator's certificate (so the registered caBundle
    verifies it); yields its base URL."""
    port = ports.free_ports(1)[0]
    proc = subprocess.Popen(
        [
            str(binary),
            f"--addr={ports.HOST}:{port}",
            f"--cert={cert_dir / 'tls.crt'}",
            f"--key={cert_dir / 'tls.key'}",
        ]
    )
    try:
        yield f"https://{ports.HOST}:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def point_webhooks_at(
    reg: client.AdmissionregistrationV1Api,
    base_url: str,
    configurations: Sequence[tuple[str, str]] = CONFIG_KINDS,
) -> None:
    """Send every webhook of these configurations to the server at `base_url` (same paths)."""
    for kind, name in configurations:
        mutating = kind.startswith("Mutating")
        read = (
            reg.read_mutating_webhook_configuration if mutating else reg.read_validating_webhook_configuration
        )
        current: dict[str, Any] = (await read(name)).to_dict()
        patch = [
            {
                "op": "replace",
                "path": f"/webhooks/{i}/clientConfig/url",
                "value": base_url + urllib.parse.urlsplit(w["client_config"]["url"]).path,
            }
            for i, w in enumerate(current["webhooks"])
        ]
        if mutating:
            await reg.patch_mutating_webhook_configuration(name, patch)
        else:
            await reg.patch_validating_webhook_configuration(name, patch)


async def end_to_end(info: Any, n: int, null_binary: Path) -> dict[str, Any]:
    """Create latencies, in this order: our webhooks; the same registrations pointed at the do-nothing
    Go webhook (operator stopped); no webhooks registered."""
    async with info.api_client() as api:
        core = client.CoreV1Api(api)
        reg = client.AdmissionregistrationV1Api(api)
        objects = client.CustomObjectsApi(api)
        ns = "bench-webhook"
        await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        invalid = five_clique_pcs("invalid", ns)
        invalid["spec"]["template"]["cliques"][0]["spec"]["minAvailable"] = 99

        async def refused(doc: dict[str, Any]) -> int | None:
            """The HTTP status of a dry-run create of `doc`, None when it is accepted."""
            try:
                await objects.create_namespaced_custom_object(
                    c.GROUP, c.VERSION, ns, c.PLURAL_PODCLIQUESET, doc, dry_run="All"
                )
            except ApiException as err:
                return int(err.status)
            return None

        async def ours_active() -> bool:
            return await refused(invalid) == 422

        await _until(ours_active)
        await _create_latencies(objects, ns, 20, "warm")
        with_webhooks = await _create_latencies(objects, ns, n, "with")
        with_predefaulted = await _create_latencies(objects, ns, n, "pre", predefaulted=True)

        grove_operator.stop(info.state_dir)
        with null_webhook(null_binary, grove_operator.cert_dir(info)) as url:
            await point_webhooks_at(reg, url)

            async def null_active() -> bool:  # the invalid object passes: nothing validates it
                return await refused(invalid) is None

            await _until(null_active)
            await _create_latencies(objects, ns, 20, "nwarm", predefaulted=True)
            null_predefaulted = await _create_latencies(objects, ns, n, "null", predefaulted=True)
        for kind, name in CONFIG_KINDS:
            if kind.startswith("Mutating"):
                await reg.delete_mutating_webhook_configuration(name)
            else:
                await reg.delete_validating_webhook_configuration(name)
        valid = default_podcliqueset(five_clique_pcs("valid", ns))

        async def none_active() -> bool:  # every webhook server is down: accepted only when unregistered
            return await refused(valid) is None

        await _until(none_active)
        without = await _create_latencies(objects, ns, n, "without")
        without_predefaulted = await _create_latencies(objects, ns, n, "nopre", predefaulted=True)
        await core.delete_namespace(ns)
    with_stats, without_stats = _stats(with_webhooks), _stats(without)
    pre_with, pre_without = _stats(with_predefaulted), _stats(without_predefaulted)
    null_stats = _stats(null_predefaulted)
    return {
        "create_with_webhooks": with_stats,
        "create_without_webhooks": without_stats,
        "overhead_ratio_p50": round(with_stats["p50_ms"] / without_stats["p50_ms"] - 1, 3),
        "overhead_ratio_mean": round(with_stats["mean_ms"] / without_stats["mean_ms"] - 1, 3),
        "predefaulted_with_webhooks": pre_with,
        "predefaulted_without_webhooks": pre_without,
        "predefaulted_overhead_ratio_p50": round(pre_with["p50_ms"] / pre_without["p50_ms"] - 1, 3),
        "predefaulted_with_null_go_webhooks": null_stats,
        "null_go_webhooks_overhead_ratio_p50": round(null_stats["p50_ms"] / pre_without["p50_ms"] - 1, 3),
        "ours_minus_null_p50_ms": round(pre_with["p50_ms"] - null_stats["p50_ms"], 3),
    }


PARTS = ("handler", "apiserver", "create", "passes")
MODES = ("child", "shared", "separate")


def _names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = sorted(set(names) - set(allowed))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(allowed)}")
        return names

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/webhook.json"))
    parser.add_argument(
        "--parts",
        type=_names(PARTS),
        default=list(PARTS),
        help="comma-separated: handler (1), apiserver (2), create and passes (3, under load); default all",
    )
    parser.add_argument("--handler-requests", type=int, default=2000)
    parser.add_argument("--creates", type=int, default=200)
    load = parser.add_argument_group("under load (part 3, tools/bench_webhook_load.py)")
    load.add_argument(
        "--modes",
        type=_names(MODES),
        default=["child"],
        help="who serves the webhooks: child (default: the operator's webhook process), shared (the "
        "controllers' own loop), separate (a --webhooks-only process); comma-separated",
    )
    load.add_argument("--rounds", type=int, default=2, help="idle + loaded windows per part and mode")
    load.add_argument("--probe-rate", type=float, default=10.0, help="requests a second, per probe")
    load.add_argument("--idle-seconds", type=float, default=15.0)
    load.add_argument("--load-nodes", type=int, default=100, help="KWOK nodes of the create part")
    load.add_argument("--load-replicas", type=int, default=500, help="PodCliqueSet replicas x 2 pods")
    load.add_argument("--pass-nodes", type=int, default=1000, help="KWOK nodes of the passes part")
    load.add_argument("--pending-gangs", type=int, default=30, help="gangs waiting for a rack")
    load.add_argument("--churn-rate", type=float, default=2.0, help="plain pods created a second")
    load.add_argument("--pass-seconds", type=float, default=30.0, help="loaded window of the passes part")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    parts = set(args.parts)
    result: dict[str, Any] = {}
    if "handler" in parts:
        result["handler_in_process"] = asyncio.run(in_process(args.handler_requests))
    if "apiserver" in parts:
        with tempfile.TemporaryDirectory(prefix="grove-bench-webhook-") as tmp:
            null_binary = build_null_webhook(Path(tmp))
            state_dir = Path(tmp) / "cluster"
            info = localcluster.up(state_dir, nodes=1, progress=lambda _msg: None)
            try:
                # Admission alone: without the reconciler, the 1,000 created PodCliqueSets would also create
                # ~15,000 pods, and that load (on the apiserver and on the operator's event loop) would be
                # measured in both phases instead of the webhooks' cost.
                grove_operator.stop(state_dir)
                grove_operator.start(state_dir, progress=lambda _msg: None, webhooks_only=True)
                result["apiserver"] = asyncio.run(end_to_end(info, args.creates, null_binary))
            finally:
                localcluster.down(state_dir)
    if parts & {"create", "passes"}:
        from tools import bench_webhook_load

        with tempfile.TemporaryDirectory(prefix="grove-bench-webhook-load-") as tmp:
            state_dir = Path(tmp) / "cluster"
            bench_webhook_load.say(f"starting a cluster with {args.load_nodes} nodes")
            info = localcluster.up(state_dir, nodes=args.load_nodes, progress=lambda _msg: None)
            try:
                result["under_load"] = asyncio.run(bench_webhook_load.run(info, args, Path(tmp)))
            finally:
                # the operator's log (admission passes, reconcile passes) next to the results
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    shutil.copy(grove_operator.log_path(info), args.out.with_suffix(".operator.log"))
                localcluster.down(state_dir)
    targets: dict[str, Any] = {}
    if "handler_in_process" in result:
        targets["handler_p99_ms_max"] = 5.0
        targets["handler_p99_ok"] = max(v["p99_ms"] for v in result["handler_in_process"].values()) <= 5.0
    if "apiserver" in result:
        targets["overhead_max"] = 0.20
        targets["overhead_ok"] = result["apiserver"]["overhead_ratio_p50"] <= 0.20
    if "under_load" in result:
        modes = result["under_load"]["modes"]
        default = modes.get("child") or next(iter(modes.values()))  # as installed, else the first measured
        targets["under_load_p99_ratio_max"] = 2.0
        targets["under_load_ok"] = {part: data["target_met"] for part, data in default.items()}
        targets["under_load_direct_ok"] = {
            part: data["direct_within_target"] for part, data in default.items()
        }
    result["targets"] = targets
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    printable = {k: v for k, v in result.items() if k != "under_load"}
    print(json.dumps(printable, indent=2))
    if "under_load" in result:
        print(bench_webhook_load.table(result["under_load"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

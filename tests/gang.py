"""Gang-scheduling test kit, shared by every e2e test that runs gangs: private node pools, Grove's e2e
workloads, and the invariant checker.

* **Node pools**: each test gets its own KWOK nodes, labelled and tainted `grove.test/pool=<name>`, sized so
  exactly one workload pod fits. Only that test's pods tolerate the taint, so tests sharing the cluster
  never take each other's capacity, and "uncordon k nodes" means "k more pods can run" (Grove's harness).
* **Workloads** WL1/WL2 of Grove's gang-scheduling e2e suite: pc-a standalone x2, scaling group
  sg-x = {pc-b x1, pc-c x3} x2: 10 pods per PodCliqueSet replica.
* **GangInvariant** watches the namespace's pods and fails the test if a gang ever has some but not all of
  its minimum released (ungated) for longer than the release window, or bound for longer than the bind
  window, or if a gang pod gets bound anywhere but on the node it was pinned to.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch

from grove_api import constants as c
from localcluster import nodes as fake_nodes
from tests.builders import clique, group, pcs

POOL_KEY = "grove.test/pool"
POD_CPU = "800m"  # a pool node has 1 cpu: one pod each
HOSTNAME = "kubernetes.io/hostname"


POOL_SHAPE = fake_nodes.NodeShape(cpu="1", memory="2Gi", pods=110, gpus=0)


def pool_node(pool: str, index: int, shape: fake_nodes.NodeShape = POOL_SHAPE) -> dict[str, Any]:
    node = fake_nodes.node_manifest(index, shape)
    name = f"{pool}-{index:02d}"
    node["metadata"]["name"] = name
    node["metadata"]["labels"].update({HOSTNAME: name, POOL_KEY: pool})
    node["spec"]["taints"].append({"key": POOL_KEY, "value": pool, "effect": "NoSchedule"})
    return node


@dataclass
class Pool:
    """A test's own nodes; all start cordoned unless asked otherwise."""

    api: client.ApiClient
    name: str
    nodes: list[str]
    schedulable: set[str] = field(default_factory=set)

    async def uncordon(self, count: int) -> None:
        """Make `count` more nodes schedulable."""
        wanted = [n for n in self.nodes if n not in self.schedulable][:count]
        assert len(wanted) == count, f"pool {self.name} has only {len(self.nodes)} nodes"
        await fake_nodes.set_unschedulable(self.api, wanted, False)
        self.schedulable.update(wanted)

    async def cordon(self, count: int) -> None:
        chosen = sorted(self.schedulable)[:count]
        await fake_nodes.set_unschedulable(self.api, chosen, True)
        self.schedulable.difference_update(chosen)

    async def cordon_nodes(self, names: list[str]) -> None:
        """Cordon these nodes of the pool (e.g. the ones some pods run on)."""
        assert set(names) <= set(self.nodes), f"not in pool {self.name}: {set(names) - set(self.nodes)}"
        await fake_nodes.set_unschedulable(self.api, names, True)
        self.schedulable.difference_update(names)

    async def uncordon_nodes(self, names: list[str]) -> None:
        assert set(names) <= set(self.nodes), f"not in pool {self.name}: {set(names) - set(self.nodes)}"
        await fake_nodes.set_unschedulable(self.api, names, False)
        self.schedulable.update(names)


@contextlib.asynccontextmanager
async def node_pool(
    api: client.ApiClient, pool: str, size: int, shape: fake_nodes.NodeShape = POOL_SHAPE
) -> AsyncIterator[Pool]:
    core = client.CoreV1Api(api)
    names = []
    for i in range(size):
        node = pool_node(pool, i, shape)
        node["spec"]["unschedulable"] = True
        await core.create_node(node)  # type: ignore[arg-type]
        names.append(node["metadata"]["name"])
    try:
        await fake_nodes.wait_ready(api, names, timeout=60)
        yield Pool(api, pool, names)
    finally:
        await asyncio.gather(*(core.delete_node(n) for n in names), return_exceptions=True)


def pool_pod_spec(pool: str) -> dict[str, Any]:
    return {
        "containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": POD_CPU}}}],
        "tolerations": [
            {"key": fake_nodes.FAKE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
            {"key": POOL_KEY, "operator": "Equal", "value": pool, "effect": "NoSchedule"},
        ],
        "nodeSelector": {POOL_KEY: pool},
        "terminationGracePeriodSeconds": 0,
    }


def workload(
    name: str,
    namespace: str,
    pool: str,
    *,
    mins: tuple[int, int, int] = (2, 1, 3),
    group_min: int = 2,
    group_replicas: int = 2,
    replicas: int = 1,
    starts_after: dict[str, list[str]] | None = None,
    **template: Any,
) -> dict[str, Any]:
    """Grove's e2e workload: WL1 = defaults (every minimum = replicas), WL2 = `wl2(...)`; `starts_after`
    (clique -> parents) with `startup="CliqueStartupTypeExplicit"` gives WL5/WL6."""
    spec = pool_pod_spec(pool)
    a, b, cc = mins
    after = starts_after or {}
    return pcs(
        name,
        namespace=namespace,
        replicas=replicas,
        cliques=[
            clique("pc-a", replicas=2, min_available=a, pod=spec, starts_after=after.get("pc-a")),
            clique("pc-b", replicas=1, min_available=b, pod=spec, starts_after=after.get("pc-b")),
            clique("pc-c", replicas=3, min_available=cc, pod=spec, starts_after=after.get("pc-c")),
        ],
        groups=[group("sg-x", ["pc-b", "pc-c"], replicas=group_replicas, min_available=group_min)],
        **template,
    )


def wl1(name: str, namespace: str, pool: str, **kw: Any) -> dict[str, Any]:
    return workload(name, namespace, pool, **kw)


def wl2(name: str, namespace: str, pool: str, **kw: Any) -> dict[str, Any]:
    return workload(name, namespace, pool, mins=(1, 1, 1), group_min=1, **kw)


# --- observing pods ---------------------------------------------------------------------------------------


def gated(pod: dict[str, Any]) -> bool:
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(g.get("name") == c.SCHEDULING_GATE_PODGANG_PENDING for g in gates)


def bound_node(pod: dict[str, Any]) -> str | None:
    return (pod.get("spec") or {}).get("nodeName")


def _pod_state(pod: dict[str, Any]) -> str:
    if bound_node(pod):
        return "bound"
    return "gated" if gated(pod) else "released"


def live(pod: dict[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase")
    return not meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed")


async def pod_dicts(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    listed = await client.CoreV1Api(api).list_namespaced_pod(namespace)
    items: list[dict[str, Any]] = api.sanitize_for_serialization(listed)["items"]
    return [p for p in items if live(p)]


def running_by_podclique(items: list[dict[str, Any]]) -> dict[str, int]:
    """Bound pods per PodClique (KWOK runs a pod as soon as it is bound)."""
    out: dict[str, int] = defaultdict(int)
    for pod in items:
        if bound_node(pod):
            out[pod["metadata"]["labels"][c.LABEL_PODCLIQUE]] += 1
    return dict(out)


# --- the invariant -----------------------------------------------------------------------------------------


@dataclass
class _GangState:
    partial_released_since: float | None = None
    partial_bound_since: float | None = None


class GangInvariant:
    """Watches every pod of a namespace (PodGang minimums read from the PodGang objects) and records a
    violation whenever a gang's minimum is partly released for more than `release_window` seconds (the
    admitter lifts a gang's gates concurrently, in one step), partly bound for more than `bind_window`, or
    a gang pod is bound to a node other than the one it was pinned to (or without a pin).
    `check()` fails the test with every violation seen."""

    def __init__(
        self, api: client.ApiClient, namespace: str, release_window: float = 3.0, bind_window: float = 20.0
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.release_window = release_window
        self.bind_window = bind_window
        self.pods: dict[str, dict[str, Any]] = {}
        self.violations: list[str] = []
        self.events = 0
        self.watch_errors = 0
        self._states: dict[str, _GangState] = defaultdict(_GangState)
        self._mins: dict[str, dict[str, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self.started = time.monotonic()
        self._history: collections.deque[str] = collections.deque(maxlen=40)  # the last pod events

    async def __aenter__(self) -> GangInvariant:
        self.started = time.monotonic()
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._evaluate(time.monotonic())

    async def _minimums(self, gang: str) -> dict[str, int]:
        if gang not in self._mins:
            custom = client.CustomObjectsApi(self.api)
            with contextlib.suppress(client.ApiException):
                obj = await custom.get_namespaced_custom_object(
                    c.SCHEDULER_GROUP, c.VERSION, self.namespace, c.PLURAL_PODGANG, gang
                )
                self._mins[gang] = {g["name"]: int(g["minReplicas"]) for g in obj["spec"]["podgroups"]}
        return self._mins.get(gang, {})

    async def _watch(self) -> None:
        """List and watch for ever; an apiserver that restarts, throttles or expires the watch (the chaos
        suite's faults) is listed again after a short pause: the invariant keeps watching through it."""
        while True:
            try:
                await self._list_and_watch()
            except (client.ApiException, aiohttp.ClientError, TimeoutError, OSError) as err:
                if isinstance(err, client.ApiException) and err.status not in (410, 429) and err.status < 500:
                    raise
                self.watch_errors += 1
                await asyncio.sleep(0.5)

    async def _list_and_watch(self) -> None:
        core = client.CoreV1Api(self.api)
        while True:
            listed = await core.list_namespaced_pod(self.namespace)
            version = listed.metadata.resource_version
            self.pods = {
                p["metadata"]["name"]: p for p in self.api.sanitize_for_serialization(listed)["items"]
            }
            async with watch.Watch().stream(
                core.list_namespaced_pod, self.namespace, resource_version=version, timeout_seconds=300
            ) as stream:
                async for event in stream:
                    pod = self.api.sanitize_for_serialization(event["object"])
                    name = pod["metadata"]["name"]
                    if event["type"] == "DELETED":
                        self.pods.pop(name, None)
                    else:
                        self.pods[name] = pod
                    self.events += 1
                    gang = (pod["metadata"].get("labels") or {}).get(c.LABEL_PODGANG)
                    self._history.append(self._describe(event["type"], pod))
                    if gang:
                        await self._minimums(gang)
                    self._evaluate(time.monotonic())

    def _describe(self, event: str, pod: dict[str, Any]) -> str:
        meta = pod["metadata"]
        owner = ",".join(r.get("uid", "")[:8] for r in meta.get("ownerReferences") or [])
        flags = " deleting" if meta.get("deletionTimestamp") else ""
        if c.ANNOTATION_ADMITTED_ON_CREATE in (meta.get("annotations") or {}):
            flags += " admitted-on-create"
        return (
            f"{time.monotonic() - self.started:6.2f}s {event:8} {meta['name']} {_pod_state(pod)} "
            f"node={bound_node(pod)} owner={owner} gang={(meta.get('labels') or {}).get(c.LABEL_PODGANG)}{flags}"
        )

    def _evaluate(self, now: float) -> None:
        by_gang: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for pod in self.pods.values():
            labels = pod["metadata"].get("labels") or {}
            gang = labels.get(c.LABEL_PODGANG)
            if gang and live(pod):
                by_gang[gang][labels.get(c.LABEL_PODCLIQUE, "")].append(pod)
                self._check_pin(pod)
        for gang, groups in by_gang.items():
            mins = self._mins.get(gang)
            if not mins:
                continue
            released = [min(sum(not gated(p) for p in groups.get(g, [])), m) for g, m in mins.items()]
            bound = [min(sum(bool(bound_node(p)) for p in groups.get(g, [])), m) for g, m in mins.items()]
            full = list(mins.values())
            state = self._states[gang]
            pods = lambda g=groups, m=mins: ", ".join(  # noqa: E731 - only built for a violation
                f"{p['metadata']['name']}={_pod_state(p)}" for q in m for p in g.get(q, [])
            )
            state.partial_released_since = self._track(
                gang, "released", released, full, state.partial_released_since, self.release_window, now, pods
            )
            state.partial_bound_since = self._track(
                gang, "bound", bound, full, state.partial_bound_since, self.bind_window, now, pods
            )

    def _track(
        self,
        gang: str,
        what: str,
        counts: list[int],
        full: list[int],
        since: float | None,
        window: float,
        now: float,
        pods: Callable[[], str],
    ) -> float | None:
        partial = any(counts) and counts != full
        if not partial:
            return None
        since = since if since is not None else now
        if now - since > window:
            self.violations.append(
                f"gang {gang}: minimum partly {what} for {now - since:.1f}s: {counts} of {full} "
                f"({since - self.started:.1f}s after the start; live pods: {pods()}); the last pod events:\n  "
                + "\n  ".join(self._history)
            )
            return now  # report again only after another window
        return since

    def _check_pin(self, pod: dict[str, Any]) -> None:
        node = bound_node(pod)
        if not node:
            return
        pin = ((pod.get("spec") or {}).get("nodeSelector") or {}).get(HOSTNAME)
        if pin != node:
            problem = f"pod {pod['metadata']['name']} bound to {node}, pinned to {pin}"
            if problem not in self.violations:
                self.violations.append(problem)

    def check(self) -> None:
        assert not self.violations, "gang invariant violated:\n" + "\n".join(self.violations)

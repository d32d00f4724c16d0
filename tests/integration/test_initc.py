"""grove-initc against a real kube-apiserver: it waits for Ready pods of its own PodGang and parent clique
(readiness set by patching pods' status subresource; nothing schedules them), and it survives an apiserver
restart (on a private cluster, since the shared one must not go down)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes_asyncio.client import ApiClient

from grove_api import constants as c
from grove_api.refs import Ref
from kube.client import CONTENT_STRATEGIC_MERGE_PATCH, KubeClient

if TYPE_CHECKING:
    from localcluster.state import ClusterInfo

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = {"grove.io/initc-test": "no-such-node"}  # no node matches: the pods stay unscheduled


def gang_pod(namespace: str, name: str, *, gang: str, clique: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {c.LABEL_PODGANG: gang, c.LABEL_PODCLIQUE: clique},
        },
        "spec": {"nodeSelector": NOWHERE, "containers": [{"name": "main", "image": "registry.k8s.io/pause"}]},
    }


async def set_ready(kube: KubeClient, namespace: str, name: str, ready: bool) -> None:
    """Set the Ready condition as a kubelet would (strategic merge: other conditions are kept)."""
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    await kube.patch(
        Ref("v1", "Pod", namespace, name),
        {"status": {"conditions": [condition]}},
        content_type=CONTENT_STRATEGIC_MERGE_PATCH,
        subresource="status",
    )


class Initc:
    """`python -m initc.main` as a subprocess, its JSON log lines collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def run(
        cls, kubeconfig: Path, namespace: str, podgang: str, *podcliques: str
    ) -> AsyncIterator[Initc]:
        """Start it; on the way out kill it if it still runs."""
        flags = [f"--podcliques={p}" for p in podcliques]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "initc.main", "--kubeconfig", str(kubeconfig), "--namespace", namespace),
            *("--podgang", podgang, *flags, "--timeout", "180"),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        initc = cls(proc)
        try:
            yield initc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await initc._reader

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            text = raw.decode(errors="replace")
            self.raw.append(text)
            if text.startswith("{"):
                self.lines.append(json.loads(text))

    def log(self) -> str:
        return "".join(self.raw)

    async def logged(
        self, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30, since: int = 0
    ) -> None:
        """Wait until a log line (from the `since`-th on) satisfies `check`; fails the test, showing the log,
        at the deadline."""
        deadline = time.monotonic() + timeout
        while not any(check(line) for line in self.lines[since:]):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"grove-initc never logged {what} (rc {self.proc.returncode}):\n{self.log()}")
            await asyncio.sleep(0.05)

    async def progress(self, parents: dict[str, str], since: int = 0) -> None:
        await self.logged(
            lambda line: line["msg"] == "waiting for parents" and line.get("parents") == parents,
            f"progress {parents}",
            since=since,
        )

    async def exit_code(self, timeout: float) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            pytest.fail(f"grove-initc still running after {timeout} s:\n{self.log()}")


async def test_waits_for_min_available_ready_pods_of_its_gang_and_clique(
    api_client: ApiClient, namespace: str, cluster: Any
) -> None:
    kube, gang = KubeClient(api_client), "pcs-0"
    for name, pod_gang, clique in [
        ("a-0", gang, "a"),
        ("a-1", gang, "a"),
        ("a-big-0", gang, "a-big"),  # another clique whose name starts with the parent's
        ("other-gang-a-0", "pcs-1", "a"),  # the parent's clique label, but another PodGang
    ]:
        await kube.create(gang_pod(namespace, name, gang=pod_gang, clique=clique))
    async with Initc.run(Path(cluster.kubeconfig), namespace, gang, "a:2") as initc:
        await initc.logged(lambda line: line["msg"] == "grove-initc started", "its start")
        assert initc.lines[0]["dependencies"] == {"a": 2}

        await set_ready(kube, namespace, "a-0", True)
        await initc.progress({"a": "1/2 ready"})
        await set_ready(kube, namespace, "a-0", False)  # readiness lost again ...
        await initc.progress({"a": "0/2 ready"})
        for name in ("a-big-0", "other-gang-a-0", "a-1"):  # ... so these three make only 1/2
            await set_ready(kube, namespace, name, True)
        await asyncio.sleep(1.5)
        assert initc.proc.returncode is None, initc.log()
        assert initc.lines[-1]["parents"] == {"a": "1/2 ready"}

        await set_ready(kube, namespace, "a-0", True)  # ... and regained: now 2 at once
        began = time.monotonic()
        assert await initc.exit_code(timeout=10) == 0, initc.log()
        assert time.monotonic() - began < 5
    last = initc.lines[-1]
    assert last["msg"] == "all parent PodCliques are ready" and last["parents"] == {"a": "2/2 ready"}
    assert last["logger"] == "grove-initc" and last["level"] == "info"


async def test_exits_at_once_when_the_parents_are_already_ready(
    api_client: ApiClient, namespace: str, cluster: Any
) -> None:
    kube = KubeClient(api_client)
    for name, clique in [("p-0", "prefill"), ("d-0", "decode"), ("d-1", "decode")]:
        await kube.create(gang_pod(namespace, name, gang="g", clique=clique))
        await set_ready(kube, namespace, name, True)
    async with Initc.run(Path(cluster.kubeconfig), namespace, "g", "prefill:1", "decode:2") as initc:
        assert await initc.exit_code(timeout=30) == 0, initc.log()
    assert initc.lines[-1]["parents"] == {"prefill": "1/1 ready", "decode": "2/2 ready"}


# --- apiserver restart (a private cluster: etcd + apiserver + controllers, no nodes, no operator) ----------
def restart_apiserver(state_dir: Path, down_for: float) -> None:
    """Kill kube-apiserver (SIGKILL: a crash), keep it down `down_for` seconds, start it again with the argv
    recorded in the state file, and wait until it is ready. localcluster has no API for restarting one
    component, so this uses its building blocks and records the new PID (so `down` still stops it)."""
    from localcluster import cluster as localcluster
    from localcluster import processes, state

    info = state.load(state_dir)
    assert info is not None
    old = info.components["kube-apiserver"]
    assert old.argv, "the state file does not record the apiserver's argv"
    assert processes.kill([old.pid], str(state_dir) + os.sep) == []
    time.sleep(down_for)
    pid = processes.spawn(old.argv, old.log)
    info.components["kube-apiserver"] = state.Component(old.name, pid, old.port, old.log, old.argv)
    state.save(info)
    processes.wait_for(
        "kube-apiserver /readyz after the restart", lambda: localcluster.apiserver_ready(info), 90
    )


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[ClusterInfo]:
    """Started per test (~10 s) and always stopped: this is the one cluster a test may break."""
    from localcluster import cluster as localcluster

    state_dir = tmp_path / "c"
    try:
        yield localcluster.up(state_dir, nodes=0, operator=False, progress=lambda _: None)
    finally:
        localcluster.down(state_dir)


async def test_survives_an_apiserver_restart(private_cluster: ClusterInfo) -> None:
    """Killed apiserver: initc retries (warnings), re-lists once it is back (seeing what changed meanwhile),
    watches again and exits 0 as soon as the parent is ready."""
    info, namespace = private_cluster, "default"
    async with info.api_client() as api, Initc.run(info.kubeconfig, namespace, "g", "a:2") as initc:
        kube = KubeClient(api)
        for name in ("a-0", "a-1"):
            await kube.create(gang_pod(namespace, name, gang="g", clique="a"))
        await set_ready(kube, namespace, "a-0", True)
        await initc.progress({"a": "1/2 ready"})  # listed and watching

        mark = len(initc.lines)
        await asyncio.to_thread(restart_apiserver, info.state_dir, 3.0)
        await set_ready(kube, namespace, "a-0", False)  # most likely before initc is back (it backs off)
        await initc.logged(lambda line: line["level"] == "warning", "a warning", since=mark)
        await initc.logged(
            lambda line: line["msg"] == "reconnected to the apiserver; pods re-listed",
            "reconnecting",
            since=mark,
        )
        await initc.progress({"a": "0/2 ready"}, since=mark)
        assert initc.proc.returncode is None, initc.log()

        await set_ready(kube, namespace, "a-0", True)  # seen by the new watch
        await set_ready(kube, namespace, "a-1", True)
        began = time.monotonic()
        assert await initc.exit_code(timeout=20) == 0, initc.log()
        assert time.monotonic() - began < 5, initc.log()
    assert initc.lines[-1]["msg"] == "all parent PodCliques are ready"

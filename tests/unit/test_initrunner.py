"""The init runner without a cluster: which pods need a grove-initc run, what the run gets (pod-info files,
kubeconfig, command line), the KWOK stage file's agreement with the Python constants, and the run loop
itself against a fake apiserver with stub commands (tiny Python processes)."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration

from grove_api import constants as c
from grove_api import pod_admission
from grove_api.refs import Ref
from initc import main as initc_main
from kube.client import CONTENT_MERGE_PATCH, NotFound
from localcluster import initrunner, processes
from localcluster.cluster import ClusterStatus, ComponentStatus
from localcluster.initrunner import InitRunner, Run
from localcluster.state import ClusterInfo, Component

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def pod(
    *,
    name: str = "w-0",
    uid: str = "uid-1",
    node: str | None = "fake-node-000",
    state: str | None = "running",
    annotations: dict[str, str] | None = None,
    args: tuple[str, ...] = ("--podcliques=pcs-0-a:2",),
    with_initc: bool = True,
    token_volume: bool = True,
    **meta: Any,
) -> dict[str, Any]:
    """A pod as the webhook prepares it and KWOK's init stage reports it (grove-initc `state`)."""
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    if with_initc:
        spec["initContainers"] = [
            {"name": "setup", "image": "busybox"},
            {"name": c.INIT_CONTAINER_NAME, "image": "initc", "args": list(args)},
        ]
    if token_volume:
        spec["volumes"] = [
            {"name": "pod-info-vol", "downwardAPI": {"items": []}},
            {"name": initrunner.TOKEN_VOLUME, "secret": {"secretName": "custom-sat"}},
        ]
    status: dict[str, Any] = {"phase": "Pending"}
    if state:
        status["initContainerStatuses"] = [
            {"name": "setup", "state": {"terminated": {"exitCode": 0}}},
            {"name": c.INIT_CONTAINER_NAME, "state": {state: {}}},
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid,
            "labels": {c.LABEL_PART_OF: "pcs", c.LABEL_PODGANG: "pcs-0"},
            "annotations": annotations or {},
            **meta,
        },
        "spec": spec,
        "status": status,
    }


# --- which pods need a run -----------------------------------------------------------------------------------
def test_a_bound_pod_with_grove_initc_running_needs_a_run() -> None:
    run = initrunner.wanted_run(pod(args=("--podcliques=pcs-0-a:2", "--podcliques=pcs-0-b:1")))
    assert run == Run(
        namespace="ns",
        name="w-0",
        uid="uid-1",
        args=("--podcliques=pcs-0-a:2", "--podcliques=pcs-0-b:1"),
        podgang="pcs-0",
        secret="custom-sat",
    )
    assert run.key == ("ns", "w-0") and str(run) == "ns/w-0"


@pytest.mark.parametrize(
    "changes",
    [
        {"node": None},  # not bound yet
        {"state": None},  # KWOK has not put it in its init phase (or runs without our stages)
        {"state": "waiting"},
        {"state": "terminated"},
        {"with_initc": False},
        {"annotations": {initrunner.SUCCEEDED_ANNOTATION: "true"}},
        {"deletionTimestamp": "2026-01-01T00:00:00Z"},
    ],
)
def test_pods_that_need_no_run(changes: dict[str, Any]) -> None:
    assert initrunner.wanted_run(pod(**changes)) is None


def test_finished_pods_need_no_run() -> None:
    done = pod()
    done["status"]["phase"] = "Failed"
    assert initrunner.wanted_run(done) is None


def test_token_secret_falls_back_to_the_podcliquesets_name() -> None:
    run = initrunner.wanted_run(pod(token_volume=False))
    assert run is not None and run.secret == "pcs-ic-sat"
    assert initrunner.token_secret_name({"metadata": {}}) == "-ic-sat"


def test_a_pod_without_podgang_label_gets_an_empty_file() -> None:
    unlabelled = pod()
    del unlabelled["metadata"]["labels"][c.LABEL_PODGANG]
    run = initrunner.wanted_run(unlabelled)
    assert run is not None
    assert initrunner.pod_info_files(run) == {"namespace": "ns", "podgangname": ""}


def test_initc_state() -> None:
    assert initrunner.initc_state(pod()) == "running"
    assert initrunner.initc_state(pod(state=None)) is None
    assert initrunner.initc_state({}) is None


# --- what a run gets -----------------------------------------------------------------------------------------
def _secret(**data: bytes) -> dict[str, Any]:
    return {"data": {k.replace("_", "."): base64.b64encode(v).decode() for k, v in data.items()}}


def test_token_from_secret() -> None:
    assert initrunner.token_from_secret(None) is None
    assert initrunner.token_from_secret({"data": {}}) is None  # the token controller has not filled it yet
    assert initrunner.token_from_secret(_secret(token=b"tok")) == ("tok", None)
    assert initrunner.token_from_secret(_secret(token=b"tok", ca_crt=CA)) == ("tok", CA)


async def test_rendered_kubeconfig_loads_with_the_token(tmp_path: Path) -> None:
    doc = initrunner.render_kubeconfig("https://127.0.0.1:6443", CA, "secret-token", "ns")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    conf = Configuration()
    await kube_config.load_kube_config(config_file=str(path), client_configuration=conf)
    assert conf.host == "https://127.0.0.1:6443"
    assert conf.api_key["BearerToken"] == "Bearer secret-token"
    assert Path(str(conf.ssl_ca_cert)).read_bytes() == CA


def test_command_line_is_what_grove_initc_parses(tmp_path: Path) -> None:
    """The runner's command line, with the files it writes, gives grove-initc the pod's parents, namespace,
    PodGang and kubeconfig: the flags appended last win over any in the container's args."""
    run = initrunner.wanted_run(pod(args=("--podcliques=pcs-0-a:2", "--pod-info-dir=/var/grove/pod-info")))
    assert run is not None
    for name, text in initrunner.pod_info_files(run).items():
        (tmp_path / name).write_text(text)
    argv = initrunner.initc_argv(["python", "-m", "initc.main"], run, tmp_path, tmp_path / "kubeconfig")
    assert argv[:4] == ["python", "-m", "initc.main", "--podcliques=pcs-0-a:2"]
    options = initc_main.parse_options(initc_main.build_parser(), argv[3:])
    assert [str(p) for p in options.parents] == ["pcs-0-a:2"]
    assert (options.namespace, options.podgang) == ("ns", "pcs-0")
    assert options.kubeconfig == str(tmp_path / "kubeconfig")


def test_command_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(initrunner.COMMAND_ENV, raising=False)
    assert initrunner.default_command() == [sys.executable, "-m", "initc.main"]
    monkeypatch.setenv(initrunner.COMMAND_ENV, "/bin/sh -c 'exit 0' stub")
    assert initrunner.default_command() == ["/bin/sh", "-c", "exit 0", "stub"]


def test_child_env() -> None:
    env = initrunner.child_env({"KUBECONFIG": "/admin", "PYTHONPATH": "/x"})
    assert "KUBECONFIG" not in env
    assert env["PYTHONPATH"].split(":") == [str(initrunner.ROOT), "/x"]


def test_backoff_doubles_up_to_the_cap() -> None:
    assert 0.75 <= initrunner.backoff_delay(1, (1.0, 30.0)) <= 1.25
    assert 3.0 <= initrunner.backoff_delay(3, (1.0, 30.0)) <= 5.0
    assert initrunner.backoff_delay(20, (1.0, 30.0)) <= 37.5


# --- one source for the names ----------------------------------------------------------------------------
def test_stage_file_uses_the_python_names() -> None:
    stages = [d for d in yaml.safe_load_all(initrunner.STAGES_FILE.read_text()) if d]
    assert [s["metadata"]["name"] for s in stages] == [
        "pod-grove-initc-running",
        "pod-ready",
        "pod-complete",
        "pod-delete",
    ]
    assert all(
        s["kind"] == "Stage" and s["spec"]["resourceRef"] == {"apiGroup": "v1", "kind": "Pod"} for s in stages
    )
    held, ready = stages[0]["spec"], stages[1]["spec"]
    keys = [e["key"] for e in held["selector"]["matchExpressions"]] + [
        e["key"] for e in ready["selector"]["matchExpressions"]
    ]
    annotation = f'.metadata.annotations["{initrunner.SUCCEEDED_ANNOTATION}"]'
    assert sum(annotation in k for k in keys) == 2
    assert sum(f'"{c.INIT_CONTAINER_NAME}"' in k for k in keys) == 2
    assert {
        "key": ".spec.initContainers.[].name",
        "operator": "In",
        "values": [c.INIT_CONTAINER_NAME],
    } in held["selector"]["matchExpressions"]
    assert f'eq .name "{c.INIT_CONTAINER_NAME}"' in held["next"]["statusTemplate"]
    assert initrunner.SUCCEEDED_VALUE == "true"


def test_token_volume_is_the_webhooks() -> None:
    assert initrunner.TOKEN_VOLUME == pod_admission.TOKEN_VOLUME


# --- process management ----------------------------------------------------------------------------------
def _info(tmp_path: Path) -> ClusterInfo:
    ca, cert, key = (tmp_path / name for name in ("ca.crt", "admin.crt", "admin.key"))
    return ClusterInfo(tmp_path, tmp_path / "kubeconfig", "https://127.0.0.1:1", ca, cert, key)


def test_state_records_the_runner(tmp_path: Path) -> None:
    info = _info(tmp_path)
    info.components["etcd"] = Component("etcd", 11, 2379, tmp_path / "etcd.log")
    info.initrunner = Component(initrunner.NAME, 12, None, tmp_path / "r.log", initrunner.argv(info))
    again = ClusterInfo.from_json(info.to_json())
    assert again == info
    assert again.all_pids == [11, 12] and again.pids == {"etcd": 11}
    assert f"--work-dir={tmp_path / 'initc'}" in again.initrunner.argv  # type: ignore[union-attr]


def test_status_lists_the_runner_with_the_components(tmp_path: Path) -> None:
    info = _info(tmp_path)
    status = ClusterStatus(
        state_dir=tmp_path,
        info=info,
        components=[ComponentStatus("etcd", 11, True, 2379, tmp_path / "etcd.log")],
        initrunner=ComponentStatus(initrunner.NAME, 12, False, None, initrunner.log_path(tmp_path)),
    )
    row = next(line for line in status.format().splitlines() if line.startswith(initrunner.NAME))
    assert row.split()[:4] == [initrunner.NAME, "12", "NO", "-"]
    assert not status.healthy


def test_stray_pids_finds_runner_children(tmp_path: Path) -> None:
    pod_info = initrunner.work_dir(tmp_path) / "ns" / "uid" / "pod-info"
    argv = [sys.executable, "-c", "import time; time.sleep(60)", f"--pod-info-dir={pod_info}"]
    pid = processes.spawn(argv, tmp_path / "child.log")
    try:
        # Until the child has exec'd, /proc shows the parent's command line: give it a moment under load.
        deadline = time.monotonic() + 10
        while pid not in initrunner.stray_pids(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pid in initrunner.stray_pids(tmp_path)
        assert initrunner.stray_pids(tmp_path / "other") == []
    finally:
        assert processes.stop([pid], str(tmp_path)) == []


# --- the run loop, against a fake apiserver --------------------------------------------------------------
class FakeKube:
    """Records patches; pods listed/watched through it are never needed (informers are not started)."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.patches: list[tuple[Ref, Any, str, str]] = []
        self.fail = fail

    async def patch(
        self, ref: Ref, patch: Any, *, content_type: str, subresource: str = ""
    ) -> dict[str, Any]:
        self.patches.append((ref, patch, content_type, subresource))
        if self.fail:
            raise self.fail
        return {}


def _stub(code: str) -> list[str]:
    """A stand-in for grove-initc: Python running `code` (sys.argv[1:] are the flags it would get)."""
    return [sys.executable, "-c", code]


def _runner(tmp_path: Path, command: list[str], kube: FakeKube | None = None) -> InitRunner:
    runner = InitRunner(
        kube or FakeKube(),  # type: ignore[arg-type]
        "https://127.0.0.1:6443",
        CA,
        tmp_path / "initc",
        command=command,
        backoff=(0.01, 0.01),
    )
    runner.secrets._store(  # what the Secret informer would hold
        "ADDED",
        {"metadata": {"namespace": "ns", "name": "custom-sat"}, **_secret(token=b"tok", ca_crt=CA)},
    )
    return runner


async def _until_done(runner: InitRunner) -> None:
    for _ in range(500):
        if not runner.active:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"runs still active: {runner.active}")


async def test_success_marks_the_pod_through_pods_status(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "flags = dict(a.split('=', 1) for a in sys.argv[1:])\n"
        "info = pathlib.Path(flags['--pod-info-dir'])\n"
        "print('started', (info / 'namespace').read_text(), (info / 'podgangname').read_text())\n"
        "print('kubeconfig has token', 'tok' in pathlib.Path(flags['--kubeconfig']).read_text())\n"
    )
    kube = FakeKube()
    runner = _runner(tmp_path, _stub(code), kube)
    runner._on_pod("ADDED", pod())
    assert ("ns", "w-0") in runner.active
    runner._on_pod("MODIFIED", pod())  # at most one run per pod
    assert len(runner.active) == 1
    await _until_done(runner)
    assert runner.completed == 1
    ((ref, patch, content_type, subresource),) = kube.patches
    assert ref == Ref("v1", "Pod", "ns", "w-0")
    assert patch == {"metadata": {"uid": "uid-1", "annotations": {initrunner.SUCCEEDED_ANNOTATION: "true"}}}
    assert (content_type, subresource) == (CONTENT_MERGE_PATCH, "status")
    assert not (tmp_path / "initc" / "ns" / "uid-1").exists()  # per-pod files removed


async def test_failures_are_retried_and_output_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = tmp_path / "attempts"
    code = (
        f"import pathlib, sys\np = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\np.write_text(str(n + 1))\n"
        "print('attempt', n + 1, flush=True)\nsys.exit(0 if n >= 2 else 1)\n"
    )
    caplog.set_level("INFO", logger=initrunner.NAME)
    kube = FakeKube()
    runner = _runner(tmp_path, _stub(code), kube)
    runner._on_pod("ADDED", pod())
    await _until_done(runner)
    assert counter.read_text() == "3" and len(kube.patches) == 1
    relayed = [r.getMessage() for r in caplog.records if " | " in r.getMessage()]
    assert relayed == ["ns/w-0 | attempt 1", "ns/w-0 | attempt 2", "ns/w-0 | attempt 3"]


async def test_a_pod_gone_meanwhile_is_not_retried(tmp_path: Path) -> None:
    kube = FakeKube(fail=NotFound("gone", status=404))
    runner = _runner(tmp_path, _stub("pass"), kube)
    runner._on_pod("ADDED", pod())
    await _until_done(runner)
    assert len(kube.patches) == 1


async def test_waits_for_the_token(tmp_path: Path) -> None:
    runner = _runner(tmp_path, _stub("pass"))
    runner._on_pod("ADDED", pod(token_volume=False))  # Secret pcs-ic-sat: not there yet
    await asyncio.sleep(0.05)
    assert ("ns", "w-0") in runner.active and runner.completed == 0
    empty = {"metadata": {"namespace": "ns", "name": "pcs-ic-sat"}, "data": {}}
    runner.secrets._store("ADDED", empty)
    runner._on_secret("ADDED", empty)
    await asyncio.sleep(0.05)
    assert runner.completed == 0  # created, but the token controller has not filled it
    filled = {"metadata": {"namespace": "ns", "name": "pcs-ic-sat"}, **_secret(token=b"t")}
    runner.secrets._store("MODIFIED", filled)
    runner._on_secret("MODIFIED", filled)
    await _until_done(runner)
    assert runner.completed == 1


@pytest.mark.parametrize(
    "event",
    [
        ("DELETED", pod()),
        ("MODIFIED", pod(deletionTimestamp="2026-01-01T00:00:00Z")),
        ("MODIFIED", pod(uid="uid-2", state=None)),  # replaced by a new pod of the same name
    ],
)
async def test_deleted_pod_stops_its_process(tmp_path: Path, event: tuple[str, dict[str, Any]]) -> None:
    code = "import time\nprint('one', flush=True)\nprint('two', flush=True)\ntime.sleep(60)\n"
    kube = FakeKube()
    runner = _runner(tmp_path, _stub(code), kube)
    runner._on_pod("ADDED", pod())
    active = runner.active[("ns", "w-0")]
    for _ in range(500):
        if active.pid is not None:
            break
        await asyncio.sleep(0.01)
    pid = active.pid
    assert pid is not None and processes.is_alive(pid)
    runner._on_pod(*event)
    assert active.task is not None
    await asyncio.gather(active.task, return_exceptions=True)
    assert not processes.is_alive(pid)
    assert kube.patches == [] and runner.active == {}


async def test_close_stops_every_process(tmp_path: Path) -> None:
    runner = _runner(tmp_path, _stub("import time\ntime.sleep(60)\n"))
    for i in range(3):
        runner._on_pod("ADDED", pod(name=f"w-{i}", uid=f"uid-{i}"))
    for _ in range(500):
        if all(a.pid for a in runner.active.values()):
            break
        await asyncio.sleep(0.01)
    pids = [a.pid for a in runner.active.values()]
    assert len(pids) == 3 and all(pids)
    await runner.close()
    assert not any(processes.is_alive(p) for p in pids if p)
    runner._on_pod("ADDED", pod(name="late", uid="uid-late"))
    assert ("ns", "late") not in runner.active  # no new runs once stopping

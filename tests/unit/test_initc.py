"""grove-initc without a cluster: flags and pod-info files, the readiness core, the wait loop against an
in-memory event source, the apiserver source against a scripted list/watch client, and signals."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from initc import main as initc
from initc.readiness import FlagError, Parent, Readiness, is_ready, parse_parent, parse_parents
from kube.client import Unavailable
from reconciler.planner import rbac

ROOT = Path(__file__).resolve().parents[2]
NS, GANG = "ns", "gang-0"


@pytest.fixture(autouse=True)
def pytest_logging_back(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """main() points the root logger at stderr (JSON): it may only change a copy of the handler list."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    level = root.level
    yield
    root.setLevel(level)


def pod(
    name: str,
    clique: str,
    *,
    ready: bool = True,
    gang: str = GANG,
    terminating: bool = False,
    rv: int = 1,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "resourceVersion": str(rv),
        "labels": {"grove.io/podclique": clique, "grove.io/podgang": gang},
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {
        "metadata": meta,
        "status": {"conditions": [{"type": "PodScheduled", "status": "True"}, condition]},
    }


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


# --- flags -------------------------------------------------------------------------------------------------
def test_parse_parent() -> None:
    assert parse_parent("my-pcs-0-prefill:2") == Parent("my-pcs-0-prefill", 2)
    assert str(parse_parent("a:1")) == "a:1"
    # repeated parents: the larger count wins; order is kept
    assert parse_parents(["b:1", "a:3", "b:2"]) == (Parent("b", 2), Parent("a", 3))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x:0", '--podcliques "x:0": minAvailable must be a positive integer'),
        ("x:-1", '--podcliques "x:-1": minAvailable must be a positive integer'),
        ("x:1.5", '--podcliques "x:1.5": minAvailable must be a positive integer'),
        ("x:", '--podcliques "x:": minAvailable must be a positive integer'),
        ("x:two", "minAvailable must be a positive integer, got 'two'"),
        ("x", '--podcliques "x": expected <podclique>:<minAvailable>'),
        (":2", "--podcliques \":2\": the PodClique name before ':' is empty"),
        ("a:b:2", "PodClique name 'a:b'"),
        ("-bad-:1", "must start and end with an alphanumeric character"),
        ("x" * 64 + ":1", "must be no more than 63 characters"),
    ],
)
def test_bad_podcliques_exit_1_and_say_what_is_allowed(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FlagError):
        parse_parent(value)
    assert initc.main([f"--podcliques={value}", "--namespace", NS, "--podgang", GANG]) == 1
    err = capsys.readouterr().err
    assert message in err and "usage: grove-initc" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "at least one --podcliques <podclique>:<minAvailable> is required"),
        (
            ["-p", "a:1", "--timeout", "0"],
            "argument --timeout: must be a positive number of seconds, got '0'",
        ),
        (["-p", "a:1", "--timeout", "soon"], "must be a positive number of seconds, got 'soon'"),
        (["-p", "a:1", "--timeout", "nan"], "must be a positive number of seconds"),
        (["-p", "a:1", "--namespace", ""], '--namespace "": must not be empty'),
        (["-p", "a:1", "--namespace", "Bad_NS"], '--namespace "Bad_NS": a lowercase RFC 1123 label'),
        (["-p", "a:1", "--podgang", "a,b"], '--podgang "a,b": a valid label must'),
        (["-p", "a:1", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_exit_1(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    full = [*argv]
    for flag, value in (("--namespace", NS), ("--podgang", GANG)):
        if flag not in argv:
            full += [flag, value]
    assert initc.main(full) == 1  # never argparse's 2: that code means "timed out"
    assert message in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert initc.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--podcliques NAME:MIN" in out and "--pod-info-dir DIR" in out
    assert "0  every parent PodClique" in out and "1  bad flags" in out and "2  --timeout expired" in out


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {},
            "cannot read {dir}/namespace (No such file or directory): mount the downward-API volume at {dir} "
            "(--pod-info-dir) or pass --namespace",
        ),
        ({"namespace": "ns\n"}, "cannot read {dir}/podgangname (No such file or directory)"),
        ({"namespace": "ns\n"}, "or pass --podgang"),
        ({"namespace": "\n", "podgangname": "g"}, '{dir}/namespace holds "", which must not be empty'),
        ({"namespace": "ns", "podgangname": "a b"}, '{dir}/podgangname holds "a b", which a valid label'),
    ],
)
def test_pod_info_file_problems_exit_1(
    files: dict[str, str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert initc.main(["-p", "a:1", "--pod-info-dir", str(tmp_path)]) == 1
    [line] = json_lines(capsys.readouterr().err)
    assert line["level"] == "error" and line["logger"] == "grove-initc"
    assert message.format(dir=tmp_path) in line["msg"]


def test_unreadable_pod_info_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "namespace").mkdir()
    assert initc.main(["-p", "a:1", "--pod-info-dir", str(tmp_path)]) == 1
    assert f"cannot read {tmp_path}/namespace (Is a directory)" in capsys.readouterr().err


def test_flags_replace_pod_info_files(tmp_path: Path) -> None:
    (tmp_path / "namespace").write_text("from-file\n")
    (tmp_path / "podgangname").write_text("gang-from-file\n")
    parser = initc.build_parser()
    opts = initc.parse_options(parser, ["-p", "a:1", "-p", "b:2", "--pod-info-dir", str(tmp_path)])
    assert (opts.namespace, opts.podgang, opts.timeout) == ("from-file", "gang-from-file", None)
    assert opts.parents == (Parent("a", 1), Parent("b", 2))
    opts = initc.parse_options(
        parser, ["--podcliques=a:1", "--pod-info-dir", str(tmp_path), "--namespace", "x", "--timeout", "2.5"]
    )
    assert (opts.namespace, opts.podgang, opts.timeout) == ("x", "gang-from-file", 2.5)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--kubeconfig", "/no/such/kubeconfig"], {}, "cannot read --kubeconfig /no/such/kubeconfig"),
        (["--kubeconfig", "{garbage}"], {}, "cannot configure the Kubernetes client from --kubeconfig"),
        (
            [],
            {"KUBERNETES_SERVICE_HOST": None},
            "in-cluster ServiceAccount: Service host/port is not set. (outside a pod, pass --kubeconfig)",
        ),
    ],
)
def test_client_setup_errors_exit_1(
    argv: list[str],
    env: dict[str, str | None],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_text("this: [is not a kubeconfig\n")
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
    argv = [a.replace("{garbage}", str(garbage)) for a in argv]
    assert initc.main(["-p", "a:1", "--namespace", NS, "--podgang", GANG, *argv]) == 1
    err = capsys.readouterr().err
    assert message in err


# --- the readiness core ------------------------------------------------------------------------------------
def test_ready_unready_terminating() -> None:
    assert is_ready(pod("p", "a"))
    assert not is_ready(pod("p", "a", ready=False))
    assert not is_ready(pod("p", "a", terminating=True))
    assert not is_ready({"metadata": {"name": "p"}})  # no status yet
    assert not is_ready({"metadata": {"name": "p"}, "status": {"conditions": None}})


def test_counts_follow_events() -> None:
    r = Readiness([Parent("a", 2), Parent("b", 1)], GANG)
    assert r.progress() == {"a": "0/2 ready", "b": "0/1 ready"} and not r.satisfied()
    assert r.observe("ADDED", pod("a-1", "a"))
    assert not r.observe("MODIFIED", pod("a-1", "a", rv=2))  # still ready: no change
    assert not r.observe("ADDED", pod("a-2", "a", ready=False))
    assert r.observe("ADDED", pod("b-1", "b"))
    assert r.counts() == {"a": 1, "b": 1} and not r.satisfied()
    assert r.not_ready() == {"a": "1/2 ready"}
    assert r.observe("MODIFIED", pod("a-2", "a"))
    assert r.satisfied() and r.not_ready() == {}
    assert r.ready_pods("a") == {"a-1", "a-2"}
    # terminating and deleted pods stop counting at once
    assert r.observe("MODIFIED", pod("a-1", "a", terminating=True))
    assert not r.satisfied()
    assert r.observe("DELETED", pod("b-1", "b"))
    assert not r.observe("DELETED", pod("b-1", "b"))  # twice: nothing left to remove
    assert r.counts() == {"a": 1, "b": 0}


def test_other_cliques_gangs_and_prefix_names_are_ignored() -> None:
    r = Readiness([Parent("pcs-0-worker", 1)], GANG)
    assert not r.observe("ADDED", pod("w1", "pcs-0-worker-big"))  # Grove's name-prefix match would count it
    assert not r.observe("ADDED", pod("pcs-0-worker-x", "pcs-0-other"))
    assert not r.observe("ADDED", pod("w2", "pcs-0-worker", gang="gang-1"))
    assert not r.observe("ADDED", {"metadata": {"name": "nolabels"}, "status": {}})
    assert not r.observe("ADDED", {"metadata": {}})
    assert r.counts() == {"pcs-0-worker": 0}
    # a pod relabelled into the parent counts, relabelled out stops counting
    assert r.observe("MODIFIED", pod("w1", "pcs-0-worker", rv=2))
    assert r.observe("MODIFIED", pod("w1", "pcs-0-other", rv=3))
    assert r.counts() == {"pcs-0-worker": 0}


def test_ready_lost_and_regained() -> None:
    r = Readiness([Parent("a", 1), Parent("b", 1)])
    r.observe("ADDED", pod("a-1", "a"))
    r.observe("MODIFIED", pod("a-1", "a", ready=False))  # a lost readiness before b was ready
    r.observe("ADDED", pod("b-1", "b"))
    assert not r.satisfied()  # only the simultaneous state counts
    r.observe("MODIFIED", pod("a-1", "a"))
    assert r.satisfied()


# --- the wait loop -----------------------------------------------------------------------------------------
Step = tuple[str, dict[str, Any]] | float | None  # an event, a pause (s), or None: block forever


class ScriptedPods:
    """An in-memory PodSource: plays events; a float pauses, None blocks until cancelled. Events between
    two pauses are delivered without yielding, like an Informer's re-list burst."""

    def __init__(self, *steps: Step, fail: Exception | None = None) -> None:
        self.steps = steps
        self.fail = fail
        self.cancelled = False

    async def run(self, on_event: Callable[[str, Mapping[str, Any]], None]) -> None:
        try:
            for step in self.steps:
                if step is None:
                    await asyncio.sleep(3600)
                elif isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    on_event(*step)
            if self.fail is not None:
                raise self.fail
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def wait(
    source: ScriptedPods, *parents: Parent, timeout: float | None = 5.0, stop: asyncio.Event | None = None
) -> int:
    readiness = Readiness(parents or (Parent("a", 2),), GANG)
    return await initc.wait_for_parents(readiness, source, timeout=timeout, stop=stop or asyncio.Event())


async def test_wait_exits_0_once_every_parent_is_ready(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="grove-initc")
    source = ScriptedPods(
        ("ADDED", pod("a-1", "a")),
        0.01,
        ("ADDED", pod("other", "x")),
        0.01,
        ("ADDED", pod("a-2", "a")),
        None,
    )
    assert await wait(source) == 0
    assert source.cancelled
    logged = [(r.getMessage(), getattr(r, "parents", None)) for r in caplog.records]
    assert logged == [
        ("waiting for parents", {"a": "0/2 ready"}),
        ("waiting for parents", {"a": "1/2 ready"}),
        ("all parent PodCliques are ready", {"a": "2/2 ready"}),
    ]


async def test_wait_needs_the_ready_states_at_the_same_time() -> None:
    source = ScriptedPods(
        ("ADDED", pod("a-1", "a")),
        0.01,
        ("MODIFIED", pod("a-1", "a", ready=False)),  # lost before b is ready
        0.01,
        ("ADDED", pod("b-1", "b")),
        0.01,
        ("MODIFIED", pod("a-1", "a")),  # regained: now both are ready
        None,
    )
    started = time.monotonic()
    assert await wait(source, Parent("a", 1), Parent("b", 1)) == 0
    assert time.monotonic() - started < 1


async def test_a_burst_is_judged_as_a_whole(caplog: pytest.LogCaptureFixture) -> None:
    """Events delivered without a pause (a re-list) are all applied before the check: a ready pod that the
    same burst makes unready never ends the wait."""
    source = ScriptedPods(
        ("ADDED", pod("a-1", "a")),
        ("MODIFIED", pod("a-1", "a", ready=False)),
        None,
    )
    assert await wait(source, Parent("a", 1), timeout=0.3) == 2


async def test_timeout_exits_2_promptly_naming_the_missing_parents(caplog: pytest.LogCaptureFixture) -> None:
    source = ScriptedPods(("ADDED", pod("a-1", "a")), ("ADDED", pod("b-1", "b")), None)
    started = time.monotonic()
    assert await wait(source, Parent("a", 2), Parent("b", 1), Parent("c", 1), timeout=0.3) == 2
    assert 0.3 <= time.monotonic() - started < 1.0
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert (
        record.getMessage() == "timed out after 0.3 s waiting for parent PodCliques; not ready: a 1/2, c 0/1"
    )
    assert record.not_ready == {"a": "1/2 ready", "c": "0/1 ready"}  # type: ignore[attr-defined]
    assert source.cancelled


async def test_stop_exits_1() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    source = ScriptedPods(None)
    assert await wait(source, timeout=None, stop=stop) == 1
    assert source.cancelled


async def test_a_failing_source_exits_1(caplog: pytest.LogCaptureFixture) -> None:
    assert await wait(ScriptedPods(fail=RuntimeError("boom")), timeout=None) == 1
    assert "RuntimeError('boom')" in caplog.text


def test_main_with_pod_info_files_and_a_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "namespace").write_text(NS)
    (tmp_path / "podgangname").write_text(GANG)
    source = ScriptedPods(("ADDED", pod("a-1", "a")), ("ADDED", pod("a-2", "a", gang="other")), None)
    argv = ["-p", "a:1", "-p", "b:1", "--pod-info-dir", str(tmp_path), "--timeout", "0.2"]
    assert initc.main(argv, source=source) == 2
    lines = json_lines(capsys.readouterr().err)
    assert {"ts", "level", "logger", "msg"} <= lines[0].keys()
    assert lines[0]["msg"] == "grove-initc started"
    assert lines[0]["dependencies"] == {"a": 1, "b": 1} and lines[0]["podgang"] == GANG
    assert lines[-1]["level"] == "error" and lines[-1]["not_ready"] == {"b": "0/1 ready"}
    source = ScriptedPods(("ADDED", pod("a-1", "a")), 0.01, ("ADDED", pod("b-1", "b")), None)
    assert initc.main(argv, source=source) == 0
    assert json_lines(capsys.readouterr().err)[-1]["msg"] == "all parent PodCliques are ready"


# --- the apiserver source against a scripted list/watch client ---------------------------------------------
class FakeStream:
    """A watch response: the events as JSON lines, then the end of the stream (or, for None, silence)."""

    def __init__(self, events: list[tuple[str, dict[str, Any]]] | None) -> None:
        self.content = asyncio.StreamReader()
        for event_type, obj in events or ():
            self.content.feed_data(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")
        if events is not None:
            self.content.feed_eof()

    def close(self) -> None:
        pass


Pods = list[dict[str, Any]]


class FakeApiserver:
    """Plays a script: each LIST takes the next entry of `listings`, each WATCH the next of `watches`. An
    exception entry is raised; a watch entry of events is streamed and then ends, None stays open."""

    def __init__(self, listings: list[Pods | Exception], watches: list[Any]) -> None:
        self.listings, self.watches = listings, watches
        self.calls: list[str] = []
        self.selectors: list[Any] = []

    async def list_all(self, resource: Any, **kw: Any) -> tuple[Pods, str]:
        self.calls.append("list")
        self.selectors.append((kw["namespace"], kw["label_selector"]))
        step = self.listings.pop(0)
        if isinstance(step, Exception):
            raise step
        return [dict(p) for p in step], "10"

    async def watch(self, resource: Any, *, resource_version: str, **_: Any) -> FakeStream:
        self.calls.append("watch")
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        return FakeStream(step)


async def test_apiserver_source_relists_after_every_failure(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="grove-initc")
    refused = Unavailable("connection refused")
    fake = FakeApiserver(
        listings=[
            [pod("a-1", "a"), pod("a-2", "a", ready=False)],
            refused,  # the apiserver is away
            [pod("a-2", "a", rv=5), pod("a-3", "a", rv=6)],  # back: a-1 went away, a-2 became ready, a-3 new
            [pod("a-2", "a", rv=5), pod("a-3", "a", ready=False, rv=7)],
        ],
        watches=[refused, [("MODIFIED", pod("a-3", "a", ready=False, rv=7))], None],
    )
    events: list[tuple[str, str]] = []
    source = initc.ApiserverPods(fake, NS, GANG, backoff=(0.001, 0.002))
    task = asyncio.create_task(source.run(lambda t, p: events.append((t, p["metadata"]["name"]))))
    for _ in range(500):
        if fake.calls.count("watch") == 3:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # watch refused -> list refused -> list -> watch ends at once (apiserver going away?) -> list -> watch
    assert fake.calls == ["list", "watch", "list", "list", "watch", "list", "watch"]
    assert fake.selectors == [(NS, {"grove.io/podgang": GANG})] * 4
    assert events[:2] == [("ADDED", "a-1"), ("ADDED", "a-2")]
    assert sorted(events[2:5]) == [("ADDED", "a-3"), ("DELETED", "a-1"), ("MODIFIED", "a-2")]
    assert events[5:] == [("MODIFIED", "a-3")]  # the last re-list found nothing new
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(";")[0] for w in warnings] == [
        "watch of pods failed",
        "list of pods failed",
        "watch of pods failed",
    ]
    assert "re-listing in 0.0 s" in warnings[0]
    errors = [getattr(r, "error", "") for r in caplog.records if r.levelno == logging.WARNING]
    assert errors[0] == errors[1] == "connection refused"
    assert "the watch ended at once" in errors[2]
    assert [r.getMessage() for r in caplog.records].count("reconnected to the apiserver; pods re-listed") == 2


# --- signals (a real process: asyncio's signal handling needs the main thread of its own) -------------------
CLOSED_PORT_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}
users:
- name: nobody
  user: {token: none}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody}
current-context: nowhere
"""


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _read_until(proc: subprocess.Popen[str], text: str, timeout: float = 30.0) -> list[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    proc.kill()
    raise AssertionError(f"never saw {text!r}; stderr:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_1_promptly(sig: signal.Signals, tmp_path: Path) -> None:
    """Against an apiserver that is not there, initc keeps retrying (warnings) until the signal ends it."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(CLOSED_PORT_KUBECONFIG)
    argv = [
        "-m",
        "initc.main",
        "-p",
        "a:1",
        "--namespace",
        NS,
        "--podgang",
        GANG,
        "--kubeconfig",
        str(kubeconfig),
    ]
    proc = _start(argv)
    _read_until(proc, "list of pods failed; re-listing in")
    sent = time.monotonic()
    proc.send_signal(sig)
    rc = proc.wait(timeout=10)
    elapsed = time.monotonic() - sent
    assert proc.stderr is not None
    rest = proc.stderr.read()
    assert rc == 1, rest
    assert elapsed < 1.0
    assert f"interrupted by {sig.name} before the parents were ready" in rest


def test_second_signal_exits_immediately(tmp_path: Path) -> None:
    """A source that ignores cancellation would hold the exit; the second signal cuts it short."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from initc.main import main

        class Stubborn:
            async def run(self, on_event):
                while True:
                    try:
                        await asyncio.sleep(3600)
                    except asyncio.CancelledError:
                        print("ignoring cancellation", file=sys.stderr, flush=True)

        sys.exit(main(["-p", "a:1", "--namespace", "ns", "--podgang", "g"], source=Stubborn()))
        """
    )
    proc = _start(["-c", script])
    _read_until(proc, "waiting for parents")
    proc.send_signal(signal.SIGTERM)
    _read_until(proc, "ignoring cancellation")
    time.sleep(0.8)  # past the cleanup budget: now stuck in asyncio.run's final cancellation
    assert proc.poll() is None
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 1
    assert time.monotonic() - sent < 1.0
    assert proc.stderr is not None
    assert "second SIGTERM: exiting immediately" in proc.stderr.read()


async def test_its_roles_rules_are_exactly_the_calls_it_makes() -> None:
    """The Role the reconciler gives each PodCliqueSet's grove-initc (reconciler/planner/rbac.py) grants the
    verbs grove-initc uses and nothing else: recorded from the apiserver source itself, as (group, resource,
    verb), against the Role's rules expanded the same way."""
    calls: set[tuple[str, str, str]] = set()

    class Recording(FakeApiserver):
        async def list_all(self, resource: Any, **kw: Any) -> tuple[Pods, str]:
            assert kw["namespace"] == NS  # a Role is namespaced: so must every call be
            calls.add((resource.group, resource.plural, "list"))
            return await super().list_all(resource, **kw)

        async def watch(self, resource: Any, *, resource_version: str, **kw: Any) -> FakeStream:
            assert kw["namespace"] == NS
            calls.add((resource.group, resource.plural, "watch"))
            return await super().watch(resource, resource_version=resource_version, **kw)

    fake = Recording(listings=[[pod("a-1", "a")]], watches=[None])
    task = asyncio.create_task(initc.ApiserverPods(fake, NS, GANG).run(lambda t, p: None))
    for _ in range(500):
        if fake.calls == ["list", "watch"]:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    granted = {
        (group, resource, verb)
        for rule in rbac.INITC_RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert calls == granted == {("", "pods", "list"), ("", "pods", "watch")}

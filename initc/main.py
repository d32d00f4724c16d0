"""grove-initc: the init container that holds a pod back until its parent PodCliques are ready.

The I/O shell around `initc.readiness`: flags and downward-API files in, a list+watch of the pods of this
pod's PodGang, JSON log lines on stderr, an exit code out. Kept thin so the rules stay testable without a
cluster. Heavy imports (the Kubernetes client) happen inside `main` after the signal handlers are in
place, so `--help` and bad flags answer at once and a SIGTERM during start-up still exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import random
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from initc.readiness import FlagError, Parent, Readiness, parse_parents

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

    from kube.informer import ListWatchClient

EXIT_OK = 0
EXIT_ERROR = 1  # bad flags, unreadable pod-info files, client set-up errors, SIGTERM/SIGINT
EXIT_TIMEOUT = 2  # --timeout expired before every parent was ready

PROG = "grove-initc"
DEFAULT_POD_INFO_DIR = Path("/var/grove/pod-info")
NAMESPACE_FILE = "namespace"
PODGANG_FILE = "podgangname"
CLEANUP_BUDGET = 0.5  # seconds for closing the watch and client after a signal: exit stays well under 1 s
RETRY_BACKOFF = (0.5, 5.0)  # first and longest pause between reconnect attempts (seconds, jittered)
WATCH_TIMEOUT = (50, 60)  # server-side watch length: a silently dead connection is noticed within ~90 s
SHORT_WATCH = 1.0  # a watch that ends sooner than this is treated as a failure (apiserver going away)

log = logging.getLogger(PROG)

EventHandler = Callable[[str, Mapping[str, Any]], None]

EPILOG = f"""\
Each --podcliques names a parent PodClique (the pods' grove.io/podclique label) and how many of its pods
must be Ready at the same time; grove-initc exits 0 once that holds for every parent. Only pods of this
pod's PodGang (label grove.io/podgang) in its namespace are watched. Without --namespace/--podgang the
values are read from <pod-info-dir>/{NAMESPACE_FILE} and <pod-info-dir>/{PODGANG_FILE} (downward API).
Without --kubeconfig the in-cluster ServiceAccount is used.

exit codes:
  {EXIT_OK}  every parent PodClique has at least minAvailable Ready pods
  {EXIT_ERROR}  bad flags, unreadable pod-info files, client set-up error, or SIGTERM/SIGINT
  {EXIT_TIMEOUT}  --timeout expired first (the log names the parents not ready and their counts)
"""


class SetupError(Exception):
    """Start-up cannot proceed (pod-info file, client configuration); the message says what to fix."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT arrived before the event loop took over signal handling (start-up, imports)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name


class PodSource(Protocol):
    """Where pod events come from: runs until cancelled, calling `on_event(type, pod)` for every change.

    After a disconnect it must bring the caller up to date (by re-listing: DELETED for pods that vanished,
    ADDED/MODIFIED for the rest), since anything may have changed meanwhile.
    """

    async def run(self, on_event: EventHandler) -> None: ...


@dataclass(frozen=True)
class Options:
    parents: tuple[Parent, ...]
    namespace: str
    podgang: str
    kubeconfig: str | None
    timeout: float | None


# --- flags -------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad flags; here 2 means "timed out", so usage errors exit 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Wait until the parent PodCliques of this pod have enough Ready pods.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-p",
        "--podcliques",
        action="append",
        default=[],
        metavar="NAME:MIN",
        help="a parent PodClique and its minAvailable (repeatable; at least one)",
    )
    parser.add_argument(
        "--pod-info-dir",
        type=Path,
        default=DEFAULT_POD_INFO_DIR,
        metavar="DIR",
        help=f"downward-API directory with '{NAMESPACE_FILE}' and '{PODGANG_FILE}' (default: %(default)s)",
    )
    parser.add_argument(
        "--namespace", help=f"namespace of the pods (default: <pod-info-dir>/{NAMESPACE_FILE})"
    )
    parser.add_argument(
        "--podgang", metavar="NAME", help=f"PodGang of this pod (default: <pod-info-dir>/{PODGANG_FILE})"
    )
    parser.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig file (default: the in-cluster ServiceAccount)"
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="give up (exit 2) after this long (default: never)",
    )
    return parser


def _pod_info(
    value: str | None, directory: Path, file: str, flag: str, check: Callable[[str], list[str]]
) -> str:
    """The flag's value if given (FlagError if invalid), else the downward-API file's content, stripped
    (SetupError if missing, unreadable, empty or invalid: the message names the path and the flag)."""
    if value is not None:
        problems = check(value) if value else ["must not be empty"]
        if problems:
            raise FlagError(f'{flag} "{value}": {"; ".join(problems)}')
        return value
    path = directory / file
    instead = f"mount the downward-API volume at {directory} (--pod-info-dir) or pass {flag}"
    try:
        text = path.read_text().strip()
    except OSError as err:
        raise SetupError(f"cannot read {path} ({err.strerror or err}): {instead}") from None
    problems = check(text) if text else ["must not be empty"]
    if problems:
        raise SetupError(f'{path} holds "{text}", which {"; ".join(problems)}: {instead}')
    return text


def parse_options(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> Options:
    """Flags and pod-info files into Options. Usage errors exit through `parser.error` (SystemExit 1);
    pod-info file problems raise SetupError."""
    from grove_api.validation.k8s import dns1123_label, label_value

    args = parser.parse_args(argv)
    try:
        parents = parse_parents(args.podcliques)
        directory = args.pod_info_dir
        namespace = _pod_info(args.namespace, directory, NAMESPACE_FILE, "--namespace", dns1123_label)
        podgang = _pod_info(args.podgang, directory, PODGANG_FILE, "--podgang", label_value)
    except FlagError as err:
        parser.error(str(err))
    return Options(parents, namespace, podgang, args.kubeconfig, args.timeout)


# --- the wait ----------------------------------------------------------------------------------------------
def _summary(counts: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {text.removesuffix(' ready')}" for name, text in counts.items())


async def wait_for_parents(
    readiness: Readiness, source: PodSource, *, timeout: float | None, stop: asyncio.Event
) -> int:
    """Fold the source's events into `readiness` until every parent is satisfied (0), `stop` is set (1) or
    `timeout` passes (2).

    Satisfaction is checked only when this coroutine runs again after events were folded, i.e. after the
    source has yielded: a re-list's whole burst of differences is applied before the check, so a half-applied
    re-list can never pass for a state that was ready all at once.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    changed = asyncio.Event()

    def on_event(event_type: str, pod: Mapping[str, Any]) -> None:
        if readiness.observe(event_type, pod):
            changed.set()

    feed = asyncio.create_task(source.run(on_event), name="grove-initc pod events")
    logged = readiness.progress()
    log.info("waiting for parents", extra={"parents": logged})
    try:
        while True:
            waits = {asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stop.wait())}
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await asyncio.wait({*waits, feed}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            if stop.is_set():
                return EXIT_ERROR
            changed.clear()
            progress = readiness.progress()
            if readiness.satisfied():
                log.info("all parent PodCliques are ready", extra={"parents": progress})
                return EXIT_OK
            if progress != logged:
                log.info("waiting for parents", extra={"parents": progress})
                logged = progress
            if feed.done():
                error = None if feed.cancelled() else feed.exception()
                log.error(f"the pod event source stopped: {error!r}")
                return EXIT_ERROR
            if deadline is not None and loop.time() >= deadline:
                missing = readiness.not_ready()
                log.error(
                    f"timed out after {timeout} s waiting for parent PodCliques; "
                    f"not ready: {_summary(missing)}",
                    extra={"not_ready": missing, "parents": progress},
                )
                return EXIT_TIMEOUT
    finally:
        feed.cancel()
        await asyncio.wait({feed}, timeout=CLEANUP_BUDGET)  # not wait_for: that waits out a stuck task


# --- the apiserver -----------------------------------------------------------------------------------------
class ApiserverPods:
    """The pods of one PodGang from the apiserver (a `PodSource`).

    Uses the repo's Informer for LIST, WATCH with bookmarks and 410 handling, but runs its own retry loop:
    after any failure it re-lists (the Informer alone would resume the watch from the last resourceVersion)
    so that whatever happened while the apiserver was away is seen, and backs off with jitter, capped low
    because an init container that waits 30 s after the apiserver is back delays the whole workload.
    """

    def __init__(
        self,
        client: ListWatchClient,
        namespace: str,
        podgang: str,
        *,
        backoff: tuple[float, float] = RETRY_BACKOFF,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.podgang = podgang
        self.backoff = backoff

    async def run(self, on_event: EventHandler) -> None:
        from grove_api import constants as c
        from kube.informer import Informer
        from kube.resources import POD

        informer = Informer(
            self.client,
            POD,
            namespace=self.namespace,
            label_selector={c.LABEL_PODGANG: self.podgang},
            on_event=on_event,
            index_labels=(),
            watch_timeout=WATCH_TIMEOUT,
        )
        loop = asyncio.get_running_loop()
        failures = 0
        listed = False
        while True:
            step = "list"
            try:
                if not listed:
                    await informer.relist("initial" if informer.relists == 0 else "error")
                    listed = True
                    if failures:
                        log.info(
                            "reconnected to the apiserver; pods re-listed",
                            extra={"pods": len(informer), "failures": failures},
                        )
                    failures = 0
                step, began = "watch", loop.time()
                await informer.watch_step()
                if loop.time() - began < SHORT_WATCH:
                    raise ConnectionError("the watch ended at once (is the apiserver shutting down?)")
            except asyncio.CancelledError:
                raise
            except Exception as err:
                failures += 1
                listed = False
                base, cap = self.backoff
                delay = min(cap, base * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
                log.warning(
                    f"{step} of pods failed; re-listing in {delay:.1f} s",
                    extra={"error": getattr(err, "message", None) or repr(err), "failures": failures},
                )
                await asyncio.sleep(delay)


async def api_client(kubeconfig: str | None) -> ApiClient:
    """An ApiClient from `kubeconfig`, else from the in-cluster ServiceAccount; SetupError says why not."""
    from kubernetes_asyncio import config as kube_config
    from kubernetes_asyncio.client import ApiClient, Configuration

    conf = Configuration()
    if kubeconfig:  # the library would only say "Expected key current-context" for a missing file
        try:
            Path(kubeconfig).read_bytes()
        except OSError as err:
            raise SetupError(f"cannot read --kubeconfig {kubeconfig} ({err.strerror or err})") from None
    try:
        if kubeconfig:
            await kube_config.load_kube_config(config_file=kubeconfig, client_configuration=conf)
        else:
            kube_config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
    except Exception as err:
        source = f"--kubeconfig {kubeconfig}" if kubeconfig else "the in-cluster ServiceAccount"
        hint = "" if kubeconfig else " (outside a pod, pass --kubeconfig)"
        raise SetupError(f"cannot configure the Kubernetes client from {source}: {err}{hint}") from None
    return ApiClient(configuration=conf)


# --- process -----------------------------------------------------------------------------------------------
def _configure_logging() -> None:
    """JSON lines on stderr; only our own logger speaks at info (the Informer's own info lines are noise here)."""
    from kube.logs import configure_logging

    configure_logging("warning", "json")
    log.setLevel(logging.INFO)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


async def _run(options: Options, source: PodSource | None = None) -> int:
    """Wait for the parents with signal handling in the loop: the first SIGTERM/SIGINT ends the wait (exit
    1, after at most CLEANUP_BUDGET of tidying up), a second one exits immediately."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        if received:
            log.error(f"second {sig.name}: exiting immediately")
            os._exit(EXIT_ERROR)
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    client: ApiClient | None = None
    readiness = Readiness(options.parents, options.podgang)
    try:
        if source is None:
            from kube.client import KubeClient

            client = await api_client(options.kubeconfig)
            source = ApiserverPods(
                KubeClient(client, request_timeout=30.0), options.namespace, options.podgang
            )
        code = await wait_for_parents(readiness, source, timeout=options.timeout, stop=stop)
        if code == EXIT_ERROR and received:
            log.error(
                f"interrupted by {received[0]} before the parents were ready",
                extra={"parents": readiness.progress()},
            )
        return code
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), CLEANUP_BUDGET)
        # The handlers stay until asyncio.run closes the loop: a second signal while it cancels what is
        # left must still exit at once.


def main(argv: Sequence[str] | None = None, *, source: PodSource | None = None) -> int:
    """The `grove-initc` command; returns the exit code. `source` replaces the apiserver (tests)."""
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _main(argv, source)
    except Interrupted as err:
        _configure_logging()
        log.error(f"interrupted by {err.signal_name} during start-up")
        return EXIT_ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: Sequence[str] | None, source: PodSource | None) -> int:
    parser = build_parser()
    try:
        options = parse_options(parser, argv)
    except SystemExit as done:  # --help, or a usage error already printed
        return done.code if isinstance(done.code, int) else EXIT_ERROR
    except SetupError as err:
        _configure_logging()
        log.error(str(err))
        return EXIT_ERROR
    _configure_logging()
    log.info(
        "grove-initc started",
        extra={
            "namespace": options.namespace,
            "podgang": options.podgang,
            "dependencies": {p.name: p.min_available for p in options.parents},
            "timeout": options.timeout,
        },
    )
    try:
        return asyncio.run(_run(options, source))
    except SetupError as err:
        log.error(str(err))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

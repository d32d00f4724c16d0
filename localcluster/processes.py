"""Spawning detached component processes and stopping them again by PID.

The cluster must outlive the `grove-cluster up` command that started it, so components run in their own
session with no tie to our terminal, and everything we later need to find them (PID, log file) is recorded
in the state file. Because a PID may be reused after a reboot or crash, a process is only signalled if
its command line still mentions the cluster's state directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path


class ComponentFailed(RuntimeError):
    """A component exited or never became ready; the message carries its log tail."""


# Popen objects of components this process started. Holding them keeps Python from warning that a
# subprocess is "still running" when the object would be garbage-collected (running on is the point),
# and lets us reap them once stopped.
_SPAWNED: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: list[str], log_file: Path, env: Mapping[str, str] | None = None) -> int:
    """Start `argv` detached (new session, no stdin, output to `log_file`) and return its PID."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=dict(env) if env is not None else None,
        )
    _SPAWNED[proc.pid] = proc
    return proc.pid


def _reap(pid: int) -> None:
    """Collect `pid` if it is an exited child we don't hold a Popen for, so it doesn't linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(pid: int | None) -> bool:
    """Whether `pid` runs (zombies count as dead)."""
    if not pid or pid <= 0:
        return False
    proc = _SPAWNED.get(pid)
    if proc is not None:  # our own child: poll() both answers and reaps
        if proc.poll() is None:
            return True
        del _SPAWNED[pid]
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    if _state(stat) not in ("Z", "X"):
        return True
    # A SIGKILLed multi-threaded process (every Go component) shows its main thread as a zombie while the other
    # threads still exit, holding its files and listening ports: dead only once no thread is left, or a
    # restart on the same ports fails with "address already in use".
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                if _state((task / "stat").read_text()) not in ("Z", "X"):
                    return True
    return False


def _state(stat: str) -> str:
    """The state letter of a /proc/…/stat line (after the parenthesised command name, which may hold spaces)."""
    return stat.rsplit(")", 1)[1].split()[0]


def marker(state_dir: Path) -> str:
    """A string every process of the cluster at `state_dir` has in its argv: how we recognise our
    processes behind a PID."""
    return str(state_dir) + os.sep


def cmdline(pid: int) -> list[str]:
    """The argv of `pid`, or [] when unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def others() -> Iterator[tuple[int, list[str]]]:
    """(pid, argv) of every other process on this machine (argv [] when unreadable)."""
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != me:
            yield int(proc.name), cmdline(int(proc.name))


def belongs_to(pid: int, marker: str) -> bool:
    """Whether `pid` is alive and one of its arguments mentions `marker` (our state dir)."""
    return is_alive(pid) and any(marker in arg for arg in cmdline(pid))


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # Components lead their own session/group: signal the group so any helper child goes too.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def send(pids: Iterable[int], marker: str, sig: signal.Signals) -> list[int]:
    """Send `sig` to our processes among `pids` (and their process groups); returns the PIDs signalled.

    Only PIDs whose argv mentions `marker` are touched, so a PID reused by a stranger is never signalled."""
    ours = [pid for pid in pids if belongs_to(pid, marker)]
    for pid in ours:
        _signal(pid, sig)
    return ours


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait up to `timeout` seconds for `pids` to exit; return those still alive."""
    remaining = [p for p in pids if is_alive(p)]
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        time.sleep(0.05)
        remaining = [p for p in remaining if is_alive(p)]
    return remaining


def stop(pids: Iterable[int], marker: str, grace: float = 3.0) -> list[int]:
    """SIGTERM our processes among `pids`, SIGKILL whatever is left after `grace` seconds.

    Returns PIDs that survived even SIGKILL (should be empty). kube-apiserver's graceful shutdown takes
    far longer than `grace`, so it usually ends by SIGKILL, which is harmless for a throwaway cluster.
    """
    ours = send(pids, marker, signal.SIGTERM)
    left = wait_gone(ours, grace)
    for pid in left:
        _signal(pid, signal.SIGKILL)
    return wait_gone(left, 10.0)


def kill(pids: Iterable[int], marker: str) -> list[int]:
    """SIGKILL our processes among `pids` at once (a crash, for fault-injection tests); returns survivors."""
    return wait_gone(send(pids, marker, signal.SIGKILL), 10.0)


def exited_during_startup(name: str, pid: int, log_file: Path) -> str | None:
    """None while `pid` runs; else a description of its death with the tail of its log."""
    if is_alive(pid):
        return None
    return f"{name} (pid {pid}) exited during startup; last lines of {log_file}:\n{log_tail(log_file)}"


def log_tail(log_file: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file ('' if missing)."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    alive: Callable[[], str | None] = lambda: None,
    interval: float = 0.1,
) -> None:
    """Poll `check` until true; fail early when `alive` names a dead component, or at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        dead = alive()
        if dead:
            raise ComponentFailed(dead)
        try:
            if check():
                return
        except Exception:  # a probe error just means "not yet"
            pass
        if time.monotonic() >= deadline:
            raise ComponentFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def find(marker: str, names: Iterable[str]) -> list[int]:
    """PIDs of running processes whose executable is one of `names` and whose argv mentions `marker`.

    Used to clean up after a crash that lost the state file: only our own binary names are considered,
    so e.g. a `tail -f` on a log in the state dir is never killed.
    """
    wanted = set(names)
    found = [
        pid
        for pid, argv in others()
        if argv and Path(argv[0]).name in wanted and any(marker in arg for arg in argv)
    ]
    return [pid for pid in found if is_alive(pid)]

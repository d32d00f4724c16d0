"""The container runtime stand-in: start one container's process in an image's root filesystem.

No container runtime works on these machines, but root can do what a runtime does with a few system calls.
`python -m localcluster.sandbox run SPEC.json` is started (as root) for every container the host node
(localcluster/hostnode.py) or the init runner (localcluster/initrunner.py) runs; it:

1. asks the kernel to SIGKILL it when its parent dies, so a crashed host node or init runner leaves no
   container behind;
2. joins the pod's network namespace (`netns`, made by localcluster/podnet.py; none: the host network);
3. unshares mount, PID, UTS and IPC namespaces, and makes every mount private to it;
4. mounts an overlay of the image's rootfs (read-only lower layer, shared by every container of that
   image) with a fresh upper layer in `layer`, so containers of one image each see their own files at the
   same paths and a restarted container starts from the image again, like a new container;
5. mounts /dev (a tmpfs with null, zero, full, random, urandom, tty), /dev/shm and /sys (read-only), then
   bind-mounts the pod's volumes at their mount paths, read-only where asked; paths are resolved inside the
   new root, so an image's symlinks (Debian's /var/run -> /run) never lead to the host's files;
6. forks: the child is PID 1 of the new PID namespace; it mounts /proc, sets the hostname, chroots, changes
   to the working directory, takes the container's groups and user, and execs the command with exactly the
   given environment. The parent forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it and exits
   with its status (128 + signal when killed). When PID 1 exits the kernel kills the rest of the namespace.

As with a real runtime, PID 1 ignores signals it installs no handler for (SIGTERM included): such a
container ends only by SIGKILL once the grace period is over. Every mount lives in the private mount
namespace and disappears with it: nothing is left mounted on the host, even after a crash.

A command that cannot be executed makes the helper write the reason to `<layer>/start-error` and exit 128
(the exit code and reason `StartError` a kubelet reports). Once the command runs, the host PID of the
container's PID 1 is written to `<layer>/pid` (the container has started: the host node reports it running
and starts its probes from then on, and signals sent before reach the helper blocked, then forwarded);
`python -m localcluster.sandbox exec PID SPEC.json` runs an exec probe inside that container (its
namespaces, root, user and environment), as `kubectl exec` would.

Not reproduced: cgroups (resource limits), capabilities (the process has root's when it runs as uid 0),
seccomp, AppArmor/SELinux, readOnlyRootFilesystem, user namespaces, devices beyond the basic ones.

Only the standard library is imported: this starts once per container, and its start-up time is the
container's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

MODULE = "localcluster.sandbox"
SPEC_FILE = "spec.json"
PID_FILE = "pid"
START_ERROR_FILE = "start-error"
EXIT_START_ERROR = 128

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
PR_SET_PDEATHSIG = 1
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1"}
DEV_LINKS["stderr"] = "/proc/self/fd/2"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
MAX_LINKS = 40


@dataclass(frozen=True)
class Mount:
    """A bind mount: `source` on the host at `target` inside the container."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Spec:
    """Everything the helper needs to start one container (written as JSON next to its layer)."""

    rootfs: str  # the image's filesystem: the overlay's read-only lower layer
    layer: str  # this container's directory: upper/, work/, merged/, pid, start-error
    argv: tuple[str, ...]
    env: Mapping[str, str]
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    cwd: str = "/"
    hostname: str = ""
    netns: str = ""  # a network namespace file (/run/netns/NAME); "" keeps the host's network
    mounts: tuple[Mount, ...] = ()
    parent_pid: int = 0  # the helper exits at once when its parent is no longer this process

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Spec:
        data = json.loads(text)
        data["argv"] = tuple(data["argv"])
        data["groups"] = tuple(data.get("groups") or ())
        data["mounts"] = tuple(Mount(**m) for m in data.get("mounts") or ())
        return cls(**data)


def write_spec(spec: Spec) -> Path:
    """Write `spec` into its layer directory (created) and return the file's path."""
    layer = Path(spec.layer)
    layer.mkdir(parents=True, exist_ok=True)
    path = layer / SPEC_FILE
    path.write_text(spec.to_json())
    return path


def run_argv(spec_file: Path, python: str = sys.executable) -> list[str]:
    """The command line that starts the container described by `spec_file`."""
    return [python, "-m", MODULE, "run", str(spec_file)]


def exec_argv(pid: int, spec_file: Path, python: str = sys.executable) -> list[str]:
    """The command line that runs `spec_file`'s argv inside the running container whose PID 1 is `pid`."""
    return [python, "-m", MODULE, "exec", str(pid), str(spec_file)]


# --- paths inside a root -----------------------------------------------------------------------------------
def resolve_in_root(root: str, path: str) -> str:
    """`path` (absolute inside the container) as a host path under `root`, following symlinks as the
    container would see them: an absolute link restarts at `root`, `..` never climbs above it."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            links += 1
            if links > MAX_LINKS:
                raise OSError(errno.ELOOP, f"too many symbolic links resolving {path} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def make_target(root: str, path: str, directory: bool) -> str:
    """Create mount point `path` inside `root` (a directory, or an empty file) and return its host path."""
    target = resolve_in_root(root, path)
    if directory:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            with open(target, "a"):
                pass
    return target


# --- system calls --------------------------------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def _bind(source: str, target: str, read_only: bool) -> None:
    _mount(source, target, "", MS_BIND | MS_REC)
    if read_only:
        _mount("", target, "", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def _die_with_parent() -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")


# --- the helper ---------------------------------------------------------------------------------------------
def _mount_rootfs(spec: Spec) -> str:
    """The overlay and every mount of the container, in the current (private) mount namespace; its root."""
    layer = Path(spec.layer)
    upper, work, merged = layer / "upper", layer / "work", layer / "merged"
    for folder in (upper, work, merged):
        folder.mkdir(parents=True, exist_ok=True)
    root = str(merged)
    _mount("overlay", root, "overlay", 0, f"lowerdir={spec.rootfs},upperdir={upper},workdir={work}")
    dev = make_target(root, "/dev", True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k")
    for name in DEVICES:
        _bind(f"/dev/{name}", make_target(root, f"/dev/{name}", False), False)
    for name, target in DEV_LINKS.items():
        os.symlink(target, os.path.join(dev, name))
    _mount("shm", make_target(root, "/dev/shm", True), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777")
    _mount("sysfs", make_target(root, "/sys", True), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # Parents before children (what containerd does), so a volume inside another volume stays visible.
    for mount in sorted(spec.mounts, key=lambda m: len([p for p in m.target.split("/") if p])):
        target = make_target(root, mount.target, os.path.isdir(mount.source))
        _bind(mount.source, target, mount.read_only)
    return root


def _become(spec: Spec) -> None:
    """Groups, then group, then user: after setuid there is no permission left to change the others."""
    os.setgroups(list(spec.groups))
    os.setgid(spec.gid)
    os.setuid(spec.uid)


def _exec(spec: Spec, error_pipe: int) -> None:
    """In the forked child: exec the command; on failure write why to `error_pipe` and exit."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)  # the mask survives exec
    try:
        os.execvpe(spec.argv[0], list(spec.argv), dict(spec.env))
    except OSError as err:
        os.write(error_pipe, f"exec {spec.argv[0]!r}: {err.strerror}".encode())
    os._exit(EXIT_START_ERROR)


def _child(spec: Spec, root: str, error_pipe: int) -> None:
    """PID 1 of the container: /proc, hostname, root, working directory, user; then the command."""
    try:
        _mount("proc", make_target(root, "/proc", True), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        if spec.hostname:
            socket.sethostname(spec.hostname)
        os.chroot(root)
        os.makedirs(spec.cwd, exist_ok=True)  # runtimes create a missing working directory
        os.chdir(spec.cwd)
        _become(spec)
        _die_with_parent()  # after the user change, which clears it
    except OSError as err:
        os.write(error_pipe, f"setting up the container: {err}".encode())
        os._exit(EXIT_START_ERROR)
    _exec(spec, error_pipe)


def _supervise(pid: int, error_read: int, layer: Path | None) -> int:
    """Forward signals to `pid`, wait for it, and return its status as an exit code."""

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)  # what arrived meanwhile is forwarded now
    error = b""
    while chunk := os.read(error_read, 4096):
        error += chunk
    os.close(error_read)
    if layer is not None and not error:  # the command runs: the container has started
        tmp = layer / f".{PID_FILE}"
        tmp.write_text(f"{pid}\n")
        os.replace(tmp, layer / PID_FILE)
    _, status = os.waitpid(pid, 0)
    if error:
        message = error.decode(errors="replace")
        if layer is not None:
            (layer / START_ERROR_FILE).write_text(message)
        print(f"sandbox: {message}", file=sys.stderr, flush=True)
        return EXIT_START_ERROR
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _fork(spec: Spec, child: Any, *args: Any) -> tuple[int, int]:
    """Fork with a close-on-exec pipe the child reports a failed start on; (pid, read end)."""
    read, write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(read)
        child(spec, *args, write)
        os._exit(EXIT_START_ERROR)  # not reached: the child execs or exits
    os.close(write)
    return pid, read


def run(spec: Spec) -> int:
    """Start the container described by `spec` and wait for it; its exit code."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)  # held until they can be forwarded
    _die_with_parent()
    if spec.parent_pid and os.getppid() != spec.parent_pid:
        return EXIT_START_ERROR  # the parent died before the line above took effect
    layer = Path(spec.layer)
    (layer / START_ERROR_FILE).unlink(missing_ok=True)
    try:
        if spec.netns:
            with open(spec.netns) as fh:
                _setns(fh.fileno(), CLONE_NEWNET)
        _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC)
        _mount("", "/", "", MS_REC | MS_PRIVATE)
        root = _mount_rootfs(spec)
    except OSError as err:
        (layer / START_ERROR_FILE).write_text(f"creating the container: {err}")
        print(f"sandbox: creating the container: {err}", file=sys.stderr, flush=True)
        return EXIT_START_ERROR
    pid, error_read = _fork(spec, _child, root)
    return _supervise(pid, error_read, layer)


def _enter_child(spec: Spec, error_pipe: int) -> None:
    try:
        os.chdir(spec.cwd)
        _become(spec)
        _die_with_parent()
    except OSError as err:
        os.write(error_pipe, f"entering the container: {err}".encode())
        os._exit(EXIT_START_ERROR)
    _exec(spec, error_pipe)


def enter(pid: int, spec: Spec) -> int:
    """Run `spec.argv` inside the container whose PID 1 is `pid` (host PID); its exit code."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    _die_with_parent()
    namespaces = (("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS), ("net", CLONE_NEWNET), ("pid", CLONE_NEWPID))
    try:
        root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
        fds = [(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY), kind) for name, kind in namespaces]
        fds.append((os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY), CLONE_NEWNS))
        for fd, kind in fds:
            _setns(fd, kind)
            os.close(fd)
        os.fchdir(root)
        os.chroot(".")
        os.close(root)
    except OSError as err:
        print(f"sandbox: entering container {pid}: {err}", file=sys.stderr, flush=True)
        return EXIT_START_ERROR
    child, error_read = _fork(spec, _enter_child)
    return _supervise(child, error_read, None)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "run":
        return run(Spec.from_json(Path(args[1]).read_text()))
    if len(args) == 3 and args[0] == "exec":
        return enter(int(args[1]), Spec.from_json(Path(args[2]).read_text()))
    print(f"usage: python -m {MODULE} run SPEC.json | exec PID SPEC.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""Loopback port allocation, and naming whoever holds a port we were asked to use.

Several clusters (a developer's and the test suite's) may run side by side, so every component listens
on a port the kernel hands out; an explicitly requested port that is taken must fail loudly, naming the
holder, instead of letting a component die later with a bind error buried in its log.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
from pathlib import Path

HOST = "127.0.0.1"


class PortInUseError(RuntimeError):
    """A requested port is already bound by someone else."""


# Servers listen below the kernel's ephemeral range, from here up.
SERVER_PORTS_FROM = 10000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands out as the source ports of outgoing connections (Linux's default when the
    file cannot be read)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct free TCP ports on `host`, chosen at random below the kernel's ephemeral range.

    Why not a port the kernel picks (bind to port 0): those come from the ephemeral range, and a component
    restarted on its port (the chaos suite restarts the apiserver, etcd and the operator) then races every
    client: a connection opened elsewhere while the port was closed may be given it as its source port, and
    the restart fails with "address already in use" (a chaos run lost its apiserver that way). No client is
    ever given a port below the range. All sockets stay open until every port is chosen, so the same port is
    not handed out twice; where the range leaves no room, the kernel picks."""
    low, _ = ephemeral_range()
    pool = range(SERVER_PORTS_FROM, low) if low - SERVER_PORTS_FROM >= 100 * count else range(0)
    candidates = random.sample(pool, len(pool))
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, candidates.pop() if candidates else 0))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def is_free(port: int, host: str = HOST, *, reuse_address: bool = False) -> bool:
    """Whether `port` can be bound on `host` right now. With `reuse_address`, whether a server that sets
    SO_REUSEADDR (aiohttp does) could listen on it: connections of a previous run lingering in TIME_WAIT
    don't count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh, None)  # header
            for row in fh:
                fields = row.split()
                if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> str | None:
    """'pid N (command)' of a process listening on `port`, when /proc lets us see it."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    comm = (proc / "comm").read_text().strip()
                    return f"pid {proc.name} ({comm})"
    return None


def require_free(port: int, what: str, host: str = HOST) -> int:
    """`port` if it is free, else PortInUseError naming the port, its intended use and its holder."""
    if not is_free(port, host):
        holder = port_holder(port)
        held = f"held by {holder}" if holder else "held by another process"
        raise PortInUseError(f"port {host}:{port} requested for {what} is already in use ({held})")
    return port

"""Pod networking for the host node (localcluster/hostnode.py): the part a CNI plugin (the bridge plugin with
host-local IPAM) plays on a real node, plus the loopback addresses of the service proxy.

- one Linux bridge, BRIDGE, holding the first address of the node's pod CIDR: the pods' gateway and the
  address the node reports (its InternalIP and every pod's hostIP);
- per pod a network namespace `grovehn-<pod uid>` with a veth pair: `eth0` inside with the pod's address
  from the CIDR, the other end (`grovehn<n>`, n the address's index in the CIDR) on the bridge, and a
  default route through the gateway;
- Service ClusterIPs as /32 addresses on `lo`, labelled LO_LABEL (localcluster/serviceproxy.py listens on
  them).

The host reaches every pod directly over the bridge (probes, the service proxy, curl), pods reach each
other over it and reach ClusterIPs because those are local addresses of the host. Nothing is routed beyond
the host: no IP forwarding, no NAT, no network policy. Everything carries the GROVEHN prefix, so `cleanup`
can remove whatever any earlier run left (one host node per machine: see hostnode.lock).

Address allocation (`IPPool`) is pure; the rest runs `ip` (iproute2), synchronously: callers in an event
loop use a thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

PREFIX = "grovehn"
BRIDGE = f"{PREFIX}0"
LO_LABEL = f"lo:{PREFIX}"
NETNS_DIR = Path("/run/netns")
KILL_WAIT = 5.0


class NetworkError(RuntimeError):
    """An `ip` command failed; the message holds the command and its error output."""


class PoolExhausted(RuntimeError):
    """Every address of the pod CIDR is taken."""


# --- addresses (pure) ---------------------------------------------------------------------------------------
@dataclass
class IPPool:
    """Pod addresses from one CIDR: the first host address is the gateway (the bridge), the rest go to pods,
    lowest free first; an address a pod already reports is kept when it is free (a restarted host node)."""

    cidr: IPv4Network
    taken: dict[str, IPv4Address] = field(default_factory=dict)  # pod uid -> address

    @classmethod
    def parse(cls, cidr: str) -> IPPool:
        network = ipaddress.ip_network(cidr, strict=True)
        if not isinstance(network, IPv4Network) or network.num_addresses < 4:
            raise ValueError(f"pod CIDR {cidr}: an IPv4 network with room for a gateway and pods is needed")
        return cls(network)

    @property
    def gateway(self) -> IPv4Address:
        return self.cidr.network_address + 1

    def __contains__(self, address: object) -> bool:
        try:
            return ipaddress.ip_address(str(address)) in self.cidr
        except ValueError:
            return False

    def allocate(self, uid: str, preferred: str = "") -> IPv4Address:
        """The address of pod `uid`: the one it has, else `preferred` when usable, else the lowest free."""
        if uid in self.taken:
            return self.taken[uid]
        used = set(self.taken.values())
        if preferred and preferred in self:
            address = IPv4Address(preferred)
            usable = address not in (self.cidr.network_address, self.cidr.broadcast_address, self.gateway)
            if usable and address not in used:
                self.taken[uid] = address
                return address
        for address in self.cidr.hosts():
            if address != self.gateway and address not in used:
                self.taken[uid] = address
                return address
        raise PoolExhausted(f"no free address left in {self.cidr}")

    def release(self, uid: str) -> None:
        self.taken.pop(uid, None)

    def index(self, address: IPv4Address) -> int:
        """The address's position in the CIDR (names its veth)."""
        return int(address) - int(self.cidr.network_address)


def netns_name(uid: str) -> str:
    return f"{PREFIX}-{uid}"


def netns_path(uid: str) -> Path:
    return NETNS_DIR / netns_name(uid)


def veth_name(index: int) -> str:
    return f"{PREFIX}{index}"  # at most 15 characters up to a /8


# --- ip(8) --------------------------------------------------------------------------------------------------
def _ip(*args: str, batch: Iterable[str] = ()) -> str:
    """Run `ip args...` (with `batch` lines on stdin as `-batch -`); its output; NetworkError on failure."""
    lines = list(batch)
    argv = ["ip", *args, *(["-batch", "-"] if lines else [])]
    proc = subprocess.run(
        argv, input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        shown = " ".join(argv) + (f" <<< {'; '.join(lines)}" if lines else "")
        raise NetworkError(f"`{shown}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def create_bridge(pool: IPPool) -> None:
    """The pods' bridge with the gateway address, up."""
    _ip(
        batch=[
            f"link add {BRIDGE} type bridge",
            f"addr add {pool.gateway}/{pool.cidr.prefixlen} dev {BRIDGE}",
            f"link set {BRIDGE} up",
        ]
    )


def create_pod_network(pool: IPPool, uid: str, address: IPv4Address) -> Path:
    """Pod `uid`'s network namespace, attached to the bridge with `address`; the namespace's file."""
    name, veth = netns_name(uid), veth_name(pool.index(address))
    _ip("netns", "add", name)
    try:
        _ip(
            batch=[
                f"link add {veth} type veth peer name eth0 netns {name}",
                f"link set {veth} master {BRIDGE} up",
            ]
        )
        _ip(
            "-n",
            name,
            batch=[
                f"addr add {address}/{pool.cidr.prefixlen} dev eth0",
                "link set eth0 up",
                "link set lo up",
                f"route add default via {pool.gateway}",
            ],
        )
    except NetworkError:
        delete_pod_network(uid)
        raise
    return netns_path(uid)


def _netns_pids(name: str) -> list[int]:
    try:
        return [int(pid) for pid in _ip("netns", "pids", name).split()]
    except NetworkError:
        return []


def _kill_netns_processes(name: str) -> None:
    """SIGKILL whatever still runs in the namespace (containers a crashed helper left) and wait for it."""
    deadline = time.monotonic() + KILL_WAIT
    while (pids := _netns_pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def delete_pod_network(uid: str) -> None:
    """Remove pod `uid`'s namespace (its veth pair goes with it); no error when it is already gone."""
    name = netns_name(uid)
    if not (NETNS_DIR / name).exists():
        return
    _kill_netns_processes(name)
    _ip("netns", "delete", name)


def add_service_address(address: str) -> None:
    _ip("addr", "replace", f"{address}/32", "dev", "lo", "label", LO_LABEL)


def remove_service_address(address: str) -> None:
    _ip("addr", "del", f"{address}/32", "dev", "lo")


def service_addresses() -> list[str]:
    """The addresses the service proxy put on `lo` (this run's or an earlier one's)."""
    links = json.loads(_ip("-j", "addr", "show", "dev", "lo") or "[]")
    return [
        str(info["local"])
        for link in links
        for info in link.get("addr_info") or ()
        if info.get("label") == LO_LABEL and info.get("family") == "inet"
    ]


def pod_namespaces() -> list[str]:
    """Network namespaces of host-node pods that exist now."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{PREFIX}-"))


def bridge_exists() -> bool:
    return Path("/sys/class/net", BRIDGE).exists()


def cleanup() -> None:
    """Remove every pod namespace (killing what runs in it), the bridge and the service addresses."""
    for name in pod_namespaces():
        _kill_netns_processes(name)
        _ip("netns", "delete", name)
    if bridge_exists():
        _ip("link", "delete", BRIDGE)
    for address in service_addresses():
        remove_service_address(address)


def leftovers() -> list[str]:
    """What `cleanup` would remove, described (empty when the host is clean)."""
    found = [f"network namespace {name}" for name in pod_namespaces()]
    if bridge_exists():
        found.append(f"bridge {BRIDGE}")
    found += [f"address {address} on lo" for address in service_addresses()]
    links = Path("/sys/class/net")
    found += [f"link {p.name}" for p in links.iterdir() if p.name.startswith(PREFIX) and p.name != BRIDGE]
    return found

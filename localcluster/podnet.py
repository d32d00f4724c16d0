"""Pod networking for the host node (localcluster/hostnode.py): the part a CNI plugin (the bridge plugin with
host-local IPAM, hairpinMode) plays on a real node, plus the machinery of the service proxy's NAT rules.

- one Linux bridge, BRIDGE, holding the first address of the node's pod CIDR: the pods' gateway and the
  address the node reports (its InternalIP and every pod's hostIP); forwarding on for it alone, because
  a pod's connection to a ClusterIP that is DNATed to a pod is forwarded back onto the bridge (a kernel
  with forwarding off drops it), and FORWARD_CHAIN rejects whatever a pod sends beyond the bridge, so
  nothing is routed off this machine (nor masqueraded);
- per pod a network namespace `grovehn-<pod uid>` with a veth pair: `eth0` inside with the pod's address
  from the CIDR, the other end (`grovehn<n>`, n the address's index in the CIDR) on the bridge in hairpin
  mode (a pod connecting to its own Service may be DNATed to itself: br_netfilter then sends the frame
  back out of the port it came in on, which a bridge port only does in hairpin mode), and a default
  route through the gateway;
- Service ClusterIPs as /32 addresses on `lo`, labelled LO_LABEL, so every process of the host and every
  pod can route to them;
- the service proxy's iptables chains (localcluster/serviceproxy.py writes their rules; here they are
  written, hooked into the built-in chains, and removed).

The host reaches every pod directly over the bridge (probes, curl), pods reach each other over it.
Everything carries the GROVEHN prefix (GROVEHN- for iptables chains), so `cleanup` can remove whatever any
earlier run left (one host node per machine: see hostnode.lock).

Address allocation (`IPPool`) is pure; the rest runs `ip` (iproute2) and `iptables`, synchronously:
callers in an event loop use a thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import shlex
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
CHAIN_PREFIX = f"{PREFIX.upper()}-"
FORWARD_CHAIN = f"{CHAIN_PREFIX}FORWARD"  # filter: nothing from the pods is forwarded off the bridge
SERVICES_CHAIN = f"{CHAIN_PREFIX}SERVICES"  # nat: ClusterIP DNAT; filter: REJECT for no endpoints
POSTROUTING_CHAIN = f"{CHAIN_PREFIX}POSTROUTING"  # nat: hairpin masquerade
# (table, built-in chain, our chain), hooked in as kube-proxy hooks its KUBE-* chains: DNAT in PREROUTING
# for pods (their packets come in on the bridge) and in OUTPUT for the host's processes (the apiserver);
# REJECT in INPUT for pods (a ClusterIP is a local address) and in OUTPUT for the host.
FORWARD_JUMPS = (("filter", "FORWARD", FORWARD_CHAIN),)
SERVICE_JUMPS = (
    ("nat", "PREROUTING", SERVICES_CHAIN),
    ("nat", "OUTPUT", SERVICES_CHAIN),
    ("nat", "POSTROUTING", POSTROUTING_CHAIN),
    ("filter", "INPUT", SERVICES_CHAIN),
    ("filter", "OUTPUT", SERVICES_CHAIN),
)
TABLES = ("nat", "filter")
Jump = tuple[str, str, str]


class NetworkError(RuntimeError):
    """An `ip` or `iptables` command failed; the message holds the command and its error output."""


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


# --- ip(8), iptables(8) -------------------------------------------------------------------------------------
def _run(argv: list[str], stdin: str = "", shown_input: str = "") -> str:
    """Run `argv` with `stdin`; its output; NetworkError (naming the command) on failure."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shown = " ".join(argv) + (f" <<< {shown_input}" if shown_input else "")
        raise NetworkError(f"`{shown}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _ip(*args: str, batch: Iterable[str] = ()) -> str:
    """Run `ip args...` (with `batch` lines on stdin as `-batch -`); its output; NetworkError on failure."""
    lines = list(batch)
    argv = ["ip", *args, *(["-batch", "-"] if lines else [])]
    return _run(argv, "".join(f"{line}\n" for line in lines), "; ".join(lines))


def _iptables(table: str, *args: str) -> str:
    return _run(["iptables", "-w", "-t", table, *args])


def create_bridge(pool: IPPool) -> None:
    """The pods' bridge with the gateway address, up, forwarding (for DNATed Service traffic) but nothing
    beyond itself."""
    _ip(
        batch=[
            f"link add {BRIDGE} type bridge",
            f"addr add {pool.gateway}/{pool.cidr.prefixlen} dev {BRIDGE}",
            f"link set {BRIDGE} up",
        ]
    )
    # Per device, so the machine's own forwarding setting is untouched; it goes with the bridge.
    Path("/proc/sys/net/ipv4/conf", BRIDGE, "forwarding").write_text("1\n")
    write_rules(
        "*filter\n"
        f":{FORWARD_CHAIN} - [0:0]\n"
        f'-A {FORWARD_CHAIN} -i {BRIDGE} ! -o {BRIDGE} -m comment --comment "host-node pods: nothing beyond'
        ' this machine" -j REJECT --reject-with icmp-host-unreachable\n'
        "COMMIT\n"
    )
    link_chains(FORWARD_JUMPS)


def create_pod_network(pool: IPPool, uid: str, address: IPv4Address) -> Path:
    """Pod `uid`'s network namespace, attached to the bridge with `address`; the namespace's file."""
    name, veth = netns_name(uid), veth_name(pool.index(address))
    _ip("netns", "add", name)
    try:
        _ip(
            batch=[
                f"link add {veth} type veth peer name eth0 netns {name}",
                f"link set {veth} master {BRIDGE} up",
                f"link set {veth} type bridge_slave hairpin on",
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


def write_rules(text: str) -> None:
    """Apply `text` (iptables-restore input) without touching other chains: each chain it declares is
    created or emptied and refilled, in one transaction per table, so a rewrite leaves no moment without
    the rules."""
    _run(["iptables-restore", "-w", "--noflush"], text, text)


def link_chains(jumps: Iterable[Jump]) -> None:
    """Hook our chains into the built-in ones (first, as kube-proxy does), unless they already are."""
    for table, builtin, chain in jumps:
        try:
            _iptables(table, "-C", builtin, "-j", chain)
        except NetworkError:
            _iptables(table, "-I", builtin, "1", "-j", chain)


def _saved(table: str) -> list[str]:
    return _run(["iptables-save", "-t", table]).splitlines()


def _jumps_to(args: list[str], chain: str) -> bool:
    return any(a in ("-j", "-g") and b == chain for a, b in itertools.pairwise(args))


def chains() -> list[tuple[str, str, list[list[str]]]]:
    """Our iptables chains (this run's or an earlier one's): (table, chain, the rules of other chains that
    jump to it, as `iptables` arguments after `-A`)."""
    found = []
    for table in TABLES:
        lines = _saved(table)
        rules = [shlex.split(line)[1:] for line in lines if line.startswith("-A ")]
        for name in (line[1:].split()[0] for line in lines if line.startswith(f":{CHAIN_PREFIX}")):
            jumps = [rule for rule in rules if not rule[0].startswith(CHAIN_PREFIX) and _jumps_to(rule, name)]
            found.append((table, name, jumps))
    return found


def remove_chains(names: Iterable[str] | None = None) -> None:
    """Unhook and delete our chains named `names` (all of ours by default), in every table."""
    wanted = None if names is None else set(names)
    ours = [found for found in chains() if wanted is None or found[1] in wanted]
    for table, _, jumps in ours:
        for rule in jumps:
            _iptables(table, "-D", *rule)
    for table, name, _ in ours:
        _iptables(table, "-F", name)
    for table, name, _ in ours:
        _iptables(table, "-X", name)


def pod_namespaces() -> list[str]:
    """Network namespaces of host-node pods that exist now."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{PREFIX}-"))


def bridge_exists() -> bool:
    return Path("/sys/class/net", BRIDGE).exists()


def bridge_calls_iptables() -> bool:
    """Whether bridged packets go through iptables (br_netfilter): a pod's connection to a Service DNATed
    to another pod of the bridge needs it, as on any node with kube-proxy, or the answer comes straight
    from the other pod's address and the connection is reset."""
    try:
        return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except OSError:
        return False


def cleanup() -> None:
    """Remove every pod namespace (killing what runs in it), the bridge, the service addresses and our
    iptables chains."""
    for name in pod_namespaces():
        _kill_netns_processes(name)
        _ip("netns", "delete", name)
    if bridge_exists():
        _ip("link", "delete", BRIDGE)
    for address in service_addresses():
        remove_service_address(address)
    remove_chains()


def leftovers() -> list[str]:
    """What `cleanup` would remove, described (empty when the host is clean)."""
    found = [f"network namespace {name}" for name in pod_namespaces()]
    if bridge_exists():
        found.append(f"bridge {BRIDGE}")
    found += [f"address {address} on lo" for address in service_addresses()]
    for table, name, jumps in chains():
        found.append(f"iptables chain {name} ({table})")
        found += [f"iptables rule -t {table} -A {shlex.join(rule)}" for rule in jumps]
    links = Path("/sys/class/net")
    found += [f"link {p.name}" for p in links.iterdir() if p.name.startswith(PREFIX) and p.name != BRIDGE]
    return found

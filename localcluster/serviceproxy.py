"""The kube-proxy stand-in of the host node: Service ClusterIPs that answer on this machine the way
kube-proxy's iptables mode makes them answer.

The kube-apiserver calls an admission webhook configured with `clientConfig.service` at the Service's
ClusterIP and port (its default service resolver), and pods reach the apiserver at the `kubernetes`
Service's ClusterIP (KUBERNETES_SERVICE_HOST). Here:

- every Service with at least one endpoint on the host node's pod CIDR (from its EndpointSlices) gets NAT
  rules as kube-proxy writes them, in chains of our own (podnet.SERVICES_CHAIN, hooked into the nat table's
  PREROUTING for pods and OUTPUT for the host's processes, the apiserver among them). Per TCP port, a new
  connection is DNATed to one of the port's *ready* endpoints on that CIDR (the endpoint's address and the
  slice's port of the same name), picked at random by `-m statistic --mode random --probability 1/k`
  rules (1/k, 1/(k-1), ..., the last one unconditional), so readiness decides who gets traffic; with none
  ready, to a serving terminating one (as kube-proxy falls back); with none of those either, the filter
  table's SERVICES_CHAIN REJECTs it (connection refused). The kernel keeps a connection on the endpoint it
  was DNATed to, and nothing picks another one when that endpoint refuses: the client gets "connection
  refused", as a webhook's callers do on a real cluster when a replica closes its listener before it is
  out of the EndpointSlice (the admission test of a rolling restart relies on exactly that). A pod whose
  connection to its own Service lands on itself (hairpin) is masqueraded to the bridge's address
  (podnet.POSTROUTING_CHAIN), as kube-proxy does, or its kernel would drop a packet from its own address;
- the `kubernetes` Service (default namespace) is relayed in userspace by this process: its ClusterIP
  (10.96.0.1, in the apiserver certificate's SANs) port 443 to the apiserver's own loopback address and
  port. A DNAT to 127.0.0.1 works for pods only with route_localnet on the bridge, which would open every
  loopback-only listener of this machine to them (the trade kube-proxy made and CVE-2020-8558 is about);
  a relay to the one apiserver loses nothing of what the tests need.

The chains are rewritten whole on every change (`iptables-restore --noflush`: no moment without rules), a
burst of changes at once, SETTLE seconds after its first event. ClusterIPs are /32 addresses on `lo`
(podnet, label `lo:grovehn`), so the host and the pods route to them. An address, once added, stays until
the proxy stops: a connection the host opened to a ClusterIP has that address as its source (it is local),
and when a Service goes (helm uninstall) while the apiserver still has connections to its pods, their
packets must still find it; without it both ends retransmit for minutes, and the pods' network
namespaces (their veths) outlive them. Rules, relays and addresses are removed on stop; podnet.cleanup
removes them after a crash.

Pods reaching a Service DNATed to another pod need br_netfilter (bridge-nf-call-iptables = 1), as with
kube-proxy on a bridge: the answer goes straight from pod to pod over the bridge and only bridged
conntrack undoes the DNAT on it (a warning at start when it is off; the apiserver's and the host's
connections work either way).

Not reproduced: UDP and SCTP, NodePorts, LoadBalancers, externalIPs, session affinity, traffic policies,
topology hints, endpoints off the host node (KWOK pods have addresses nothing can reach), DNS, and
kube-proxy's pace (--iptables-min-sync-period, 1 s by default: a real node may follow an EndpointSlice
later than this one does).

`plan` (Services + EndpointSlices -> addresses, relays, Service ports and their endpoints) and `rules`
(-> iptables-restore input) are pure; `ServiceProxy` applies them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

from localcluster import podnet

if TYPE_CHECKING:
    from kube.client import KubeClient
    from kube.informer import Informer

Obj = Mapping[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CONNECT_TIMEOUT = 3.0
CHUNK = 65536
SETTLE = 0.05  # seconds of quiet before a change of Services/EndpointSlices is applied (bursts coalesce)
PROXIED_CHAINS = (podnet.SERVICES_CHAIN, podnet.POSTROUTING_CHAIN)

log = logging.getLogger("serviceproxy")


@dataclass(frozen=True, order=True)
class Backend:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


Key = tuple[str, int]  # (ClusterIP, port)


@dataclass(frozen=True, order=True)
class ServicePort:
    """A TCP port of a Service at its ClusterIP, and the endpoints a new connection may be DNATed to (none:
    rejected). `name` is `namespace/service:port`, as in kube-proxy's rule comments."""

    cluster_ip: str
    port: int
    name: str
    backends: tuple[Backend, ...]

    @property
    def key(self) -> Key:
        return (self.cluster_ip, self.port)


@dataclass(frozen=True)
class ProxyPlan:
    """Addresses to hold on `lo`, the ports relayed to the apiserver (the `kubernetes` Service) and the
    ports given NAT rules."""

    addresses: frozenset[str]
    relays: frozenset[Key]
    ports: tuple[ServicePort, ...]


# --- pure ----------------------------------------------------------------------------------------------------
def _in(address: str, network: IPv4Network) -> bool:
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


def _ipv4(address: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(address), ipaddress.IPv4Address)
    except ValueError:
        return False


def _endpoints(slices: Iterable[Obj]) -> Iterable[tuple[Obj, Obj]]:
    """(slice, endpoint) pairs of IPv4 slices."""
    for item in slices:
        if item.get("addressType", "IPv4") != "IPv4":
            continue
        for endpoint in item.get("endpoints") or ():
            if endpoint.get("addresses"):
                yield item, endpoint


def is_local(slices: Iterable[Obj], network: IPv4Network) -> bool:
    """Whether any endpoint of the slices is on `network` (the host node's pods)."""
    return any(_in(endpoint["addresses"][0], network) for _, endpoint in _endpoints(slices))


def ready_backends(slices: Iterable[Obj], port_name: str, network: IPv4Network) -> tuple[Backend, ...]:
    """The backends a connection to the Service port named `port_name` may go to: ready endpoints on
    `network` (`ready` unset counts as ready); when there are none, serving terminating ones."""
    ready: set[Backend] = set()
    fallback: set[Backend] = set()
    for item, endpoint in _endpoints(slices):
        port = next((p for p in item.get("ports") or () if (p.get("name") or "") == port_name), None)
        address = endpoint["addresses"][0]
        if port is None or port.get("port") is None or not _in(address, network):
            continue
        if (port.get("protocol") or "TCP") != "TCP":
            continue
        backend = Backend(address, int(port["port"]))
        conditions = endpoint.get("conditions") or {}
        is_ready = conditions.get("ready") is not False
        if is_ready:
            ready.add(backend)
        elif conditions.get("serving") and conditions.get("terminating"):
            fallback.add(backend)
    return tuple(sorted(ready or fallback))


def plan(services: Iterable[Obj], slices: Iterable[Obj], network: IPv4Network) -> ProxyPlan:
    """What to do for each Service: relay the `kubernetes` Service to the apiserver, give every Service with
    an endpoint on `network` an address and a rule per TCP port (to its usable endpoints there)."""
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for item in slices:
        m = item.get("metadata") or {}
        name = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            by_service.setdefault((str(m.get("namespace")), str(name)), []).append(item)
    addresses: set[str] = set()
    relays: set[Key] = set()
    ports: list[ServicePort] = []
    for service in services:
        m, s = service.get("metadata") or {}, service.get("spec") or {}
        ip = str(s.get("clusterIP") or "")
        if not _ipv4(ip):
            continue  # headless ("None"), not yet allocated, or IPv6
        tcp = [p for p in s.get("ports") or () if (p.get("protocol") or "TCP") == "TCP"]
        key = (str(m.get("namespace")), str(m.get("name")))
        if key == ("default", "kubernetes"):
            addresses.add(ip)
            relays.update((ip, int(p["port"])) for p in tcp)
            continue
        own = by_service.get(key, [])
        if not is_local(own, network):
            continue
        addresses.add(ip)
        for port in tcp:
            port_name = str(port.get("name") or "")
            name = f"{key[0]}/{key[1]}" + (f":{port_name}" if port_name else "")
            backends = ready_backends(own, port_name, network)
            ports.append(ServicePort(ip, int(port["port"]), name, backends))
    return ProxyPlan(frozenset(addresses), frozenset(relays), tuple(sorted(ports)))


def _probability(left: int) -> str:
    """The chance that the first of `left` remaining endpoints is picked, as kube-proxy formats it."""
    return f"{1.0 / left:0.10f}"


def rules(ports: Iterable[ServicePort]) -> str:
    """iptables-restore input that declares (so empties) our chains and fills them: per Service port a DNAT
    to each endpoint, picked at random with kube-proxy's cascade of probabilities, or a REJECT when there is
    none; per endpoint a masquerade for its hairpin connections."""
    services, postrouting = podnet.SERVICES_CHAIN, podnet.POSTROUTING_CHAIN
    nat = [f":{services} - [0:0]", f":{postrouting} - [0:0]"]
    reject = [f":{services} - [0:0]"]
    endpoints: set[str] = set()
    for port in ports:
        match = f"-d {port.cluster_ip}/32 -p tcp -m tcp --dport {port.port}"
        if not port.backends:
            reject.append(
                f'-A {services} {match} -m comment --comment "{port.name} has no endpoints"'
                " -j REJECT --reject-with icmp-port-unreachable"
            )
        for index, backend in enumerate(port.backends):
            left = len(port.backends) - index
            pick = f" -m statistic --mode random --probability {_probability(left)}" if left > 1 else ""
            nat.append(
                f'-A {services} {match} -m comment --comment "{port.name} -> {backend}"{pick}'
                f" -j DNAT --to-destination {backend}"
            )
            endpoints.add(backend.host)
    for host in sorted(endpoints, key=ipaddress.ip_address):
        nat.append(
            f"-A {postrouting} -s {host}/32 -d {host}/32 -m conntrack --ctstate DNAT"
            ' -m comment --comment "hairpin: a pod through its own Service" -j MASQUERADE'
        )
    return "\n".join(["*nat", *nat, "COMMIT", "*filter", *reject, "COMMIT", ""])


# --- I/O -----------------------------------------------------------------------------------------------------
async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (a client's shutdown reaches the backend)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


@dataclass
class ServiceProxy:
    """Watches Services and EndpointSlices and keeps rules and relays as `plan` says; adds the addresses
    it names (removed only by `close`)."""

    kube: KubeClient
    network: IPv4Network
    apiserver: Backend

    def __post_init__(self) -> None:
        from kube.informer import Informer
        from kube.resources import SERVICE, Resource

        endpoint_slices = Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, False)
        self.services: Informer = Informer(self.kube, SERVICE, on_event=self._changed, index_labels=())
        self.slices: Informer = Informer(self.kube, endpoint_slices, on_event=self._changed, index_labels=())
        self.ports: dict[Key, ServicePort] = {}  # as the rules last written have them
        self._rules: str | None = None
        self._relays: dict[Key, asyncio.Server] = {}
        self._addresses: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def _changed(self, event_type: str, obj: dict[str, Any]) -> None:
        self._wake.set()

    async def start(self, timeout: float = 60.0) -> None:
        """Sync both caches, write the first rules and hook them in, then follow changes."""
        if not await asyncio.to_thread(podnet.bridge_calls_iptables):
            log.warning(
                "bridged traffic skips iptables (no br_netfilter or bridge-nf-call-iptables=0): a pod's "
                "connection to a Service DNATed to another pod is reset; modprobe br_netfilter fixes it"
            )
        await asyncio.gather(self.services.start(timeout), self.slices.start(timeout))
        await self.apply()
        await asyncio.to_thread(podnet.link_chains, podnet.SERVICE_JUMPS)
        self._task = asyncio.create_task(self._follow(), name="service proxy")

    async def _follow(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(SETTLE)
            self._wake.clear()
            try:
                await self.apply()
            except Exception:
                log.exception("applying the service plan failed; retrying")
                await asyncio.sleep(1.0)
                self._wake.set()

    async def apply(self) -> None:
        """Make rules and relays match the plan of the current Services and EndpointSlices, and add the
        addresses it names."""
        wanted = plan(self.services.list(), self.slices.list(), self.network)
        for address in sorted(wanted.addresses - self._addresses):
            await asyncio.to_thread(podnet.add_service_address, address)
            self._addresses.add(address)
        text = rules(wanted.ports)
        if text != self._rules:
            await asyncio.to_thread(podnet.write_rules, text)
            self._rules = text
            self._log_changes({port.key: port for port in wanted.ports})
        for key in sorted(set(self._relays) - wanted.relays):
            self._relays.pop(key).close()
        for key in sorted(wanted.relays - set(self._relays)):
            self._relays[key] = await asyncio.start_server(
                self._relay, host=key[0], port=key[1], reuse_address=True
            )
            log.info("%s:%d -> %s (relayed)", *key, self.apiserver)

    def _log_changes(self, ports: dict[Key, ServicePort]) -> None:
        for key, port in sorted(ports.items()):
            if self.ports.get(key) != port:
                target = ", ".join(map(str, port.backends)) or "rejected (no endpoint)"
                log.info("%s %s:%d -> %s", port.name, *key, target)
        for key in sorted(set(self.ports) - set(ports)):
            log.info("%s %s:%d: no rule (no endpoint here)", self.ports[key].name, *key)
        self.ports = ports

    async def _relay(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        """Serve one connection to the `kubernetes` Service until either side closes or `close` cancels it
        (then it ends quietly: asyncio's server reports a cancelled connection handler as an error)."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._copy(client_reader, client)
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)

    async def _copy(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        """Copy a connection to the apiserver and back."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.apiserver.host, self.apiserver.port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as err:
            log.warning("apiserver %s unreachable: %s", self.apiserver, err)
            client.close()
            return
        try:
            await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client))
        finally:
            for stream in (writer, client):
                stream.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await stream.wait_closed()

    async def close(self) -> None:
        """Stop following, close every relay and its connections, remove the rules and the addresses."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(self.services.close(), self.slices.close())
        for server in self._relays.values():
            server.close()
        self._relays.clear()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await asyncio.to_thread(podnet.remove_chains, PROXIED_CHAINS)
        self._rules, self.ports = None, {}
        for address in sorted(self._addresses):
            await asyncio.to_thread(podnet.remove_service_address, address)
        self._addresses.clear()

"""The kube-proxy stand-in of the host node: Service ClusterIPs that really answer, on this machine.

The kube-apiserver calls an admission webhook configured with `clientConfig.service` at the Service's
ClusterIP and port (its default service resolver), and pods reach the apiserver at the `kubernetes`
Service's ClusterIP (KUBERNETES_SERVICE_HOST). On a real node kube-proxy makes those addresses work with
iptables/IPVS rules; here a userspace proxy in the host node's process does it:

- the `kubernetes` Service (default namespace): listen on its ClusterIP (10.96.0.1) port 443 and forward to
  the apiserver's own loopback address and port (10.96.0.1 is in the apiserver certificate's SANs);
- every other Service with at least one endpoint on the host node's pod CIDR (from its EndpointSlices):
  listen on its ClusterIP and each TCP port, and forward each new connection to a random *ready* endpoint
  on that CIDR (the endpoint's address and the slice's port of the same name), so readiness decides who
  gets traffic, as with kube-proxy; when no endpoint is ready, fall back to serving terminating ones (as
  kube-proxy does), and with none of those either the port is closed: connections are refused, like
  kube-proxy's REJECT rule. A backend that refuses the connection is skipped for the next one.

ClusterIPs are /32 addresses on `lo` (localcluster/podnet.py, label `lo:grovehn`), so the apiserver, the
host and the pods (whose default route is the host's bridge) all reach them. Removed on stop.

Not reproduced: UDP and SCTP, NodePorts, LoadBalancers, externalIPs, session affinity, traffic policies,
topology hints, endpoints off the host node (KWOK pods have addresses nothing can reach), DNS.

`plan` (Services + EndpointSlices -> addresses and listeners) is pure; `ServiceProxy` applies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

from localcluster import podnet

if TYPE_CHECKING:
    from reconciler.kube.client import KubeClient
    from reconciler.kube.informer import Informer

Obj = Mapping[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CONNECT_TIMEOUT = 3.0
CHUNK = 65536
SETTLE = 0.05  # seconds of quiet before a change of Services/EndpointSlices is applied (bursts coalesce)

log = logging.getLogger("serviceproxy")


@dataclass(frozen=True, order=True)
class Backend:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


Key = tuple[str, int]  # (ClusterIP, port)


@dataclass(frozen=True)
class ProxyPlan:
    """Addresses to hold on `lo`, and the listeners with their backends (only listeners that have one)."""

    addresses: frozenset[str]
    listeners: Mapping[Key, tuple[Backend, ...]]


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


def plan(
    services: Iterable[Obj], slices: Iterable[Obj], network: IPv4Network, apiserver: Backend
) -> ProxyPlan:
    """What to listen on: the `kubernetes` Service to the apiserver, and every Service with an endpoint on
    `network` to its ready endpoints there."""
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for item in slices:
        m = item.get("metadata") or {}
        name = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            by_service.setdefault((str(m.get("namespace")), str(name)), []).append(item)
    addresses: set[str] = set()
    listeners: dict[Key, tuple[Backend, ...]] = {}
    for service in services:
        m, s = service.get("metadata") or {}, service.get("spec") or {}
        ip = str(s.get("clusterIP") or "")
        if not _ipv4(ip):
            continue  # headless ("None"), not yet allocated, or IPv6
        ports = [p for p in s.get("ports") or () if (p.get("protocol") or "TCP") == "TCP"]
        key = (str(m.get("namespace")), str(m.get("name")))
        if key == ("default", "kubernetes"):
            addresses.add(ip)
            listeners.update({(ip, int(p["port"])): (apiserver,) for p in ports})
            continue
        own = by_service.get(key, [])
        if not is_local(own, network):
            continue
        addresses.add(ip)
        for port in ports:
            backends = ready_backends(own, str(port.get("name") or ""), network)
            if backends:
                listeners[(ip, int(port["port"]))] = backends
    return ProxyPlan(frozenset(addresses), listeners)


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
    """Watches Services and EndpointSlices and keeps the listeners of `plan` open."""

    kube: KubeClient
    network: IPv4Network
    apiserver: Backend
    table: dict[Key, tuple[Backend, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from reconciler.kube.informer import Informer
        from reconciler.kube.resources import SERVICE, Resource

        endpoint_slices = Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, False)
        self.services: Informer = Informer(self.kube, SERVICE, on_event=self._changed, index_labels=())
        self.slices: Informer = Informer(self.kube, endpoint_slices, on_event=self._changed, index_labels=())
        self._servers: dict[Key, asyncio.Server] = {}
        self._addresses: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def _changed(self, event_type: str, obj: dict[str, Any]) -> None:
        self._wake.set()

    async def start(self, timeout: float = 60.0) -> None:
        """Sync both caches, open the first listeners, then follow changes."""
        await asyncio.gather(self.services.start(timeout), self.slices.start(timeout))
        await self.apply()
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
        """Make addresses and listeners match the plan of the current Services and EndpointSlices."""
        wanted = plan(self.services.list(), self.slices.list(), self.network, self.apiserver)
        for address in sorted(wanted.addresses - self._addresses):
            await asyncio.to_thread(podnet.add_service_address, address)
            self._addresses.add(address)
        for key in sorted(set(self._servers) - set(wanted.listeners)):
            server = self._servers.pop(key)
            server.close()
            log.info("%s:%d closed (no ready endpoint)", *key)
        for key, backends in sorted(wanted.listeners.items()):
            if key in self._servers and self.table.get(key) != backends:
                log.info("%s:%d -> %s", *key, ", ".join(map(str, backends)))
        self.table = dict(wanted.listeners)
        for key in sorted(set(wanted.listeners) - set(self._servers)):
            self._servers[key] = await asyncio.start_server(
                functools.partial(self._accept, key), host=key[0], port=key[1], reuse_address=True
            )
            log.info("%s:%d -> %s", *key, ", ".join(map(str, wanted.listeners[key])))
        for address in sorted(self._addresses - wanted.addresses):
            await asyncio.to_thread(podnet.remove_service_address, address)
            self._addresses.discard(address)

    async def _accept(
        self, key: Key, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._forward(key, client_reader, client)
        finally:
            self._connections.discard(task)

    async def _forward(
        self, key: Key, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        """Connect to a random backend of `key` (the next one when it refuses) and copy both ways."""
        backends = list(self.table.get(key, ()))
        random.shuffle(backends)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for backend in backends:
            try:
                upstream = await asyncio.wait_for(
                    asyncio.open_connection(backend.host, backend.port), CONNECT_TIMEOUT
                )
                break
            except (OSError, TimeoutError) as err:
                log.warning("%s:%d: backend %s failed: %s", *key, backend, err)
        if upstream is None:
            client.close()
            return
        reader, writer = upstream
        try:
            await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client))
        finally:
            for stream in (writer, client):
                stream.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await stream.wait_closed()

    async def close(self) -> None:
        """Stop following, close every listener and connection, remove the addresses."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(self.services.close(), self.slices.close())
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for address in sorted(self._addresses):
            await asyncio.to_thread(podnet.remove_service_address, address)
        self._addresses.clear()

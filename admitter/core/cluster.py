"""`ClusterModel`: what the admitter knows of nodes and pods, kept up to date one informer event at a time.

The model answers the one question admission turns on — how much room each node has — without rescanning
pods: it remembers each pod's contribution, so an event subtracts the old one and adds the new one. A pod
takes room on a node when it is bound there (and not finished), or when it is *reserved* for the node:
released by us, pinned by `nodeSelector kubernetes.io/hostname`, with no gate left, and not bound yet. A
reservation keeps capacity we promised a gang from being promised twice while the scheduler catches up.
Gated pods and unpinned pending pods take nothing.

Listeners (the incremental planner) are told the name of every node whose room or description changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from .exclusive import is_exclusive
from .nodes import NodeInfo
from .pods import PodInfo, PodKey, PodState
from .resources import ZERO, Resources

GangKey = tuple[str, str]  # (namespace, PodGang name)
NodeListener = Callable[[str], None]


class ClusterModel:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._hosts: dict[str, set[str]] = {}  # hostname label value -> node names
        self._pods: dict[PodKey, PodInfo] = {}
        # Each pod's contribution: ("node", name) or ("host", hostname), and the requests it adds there.
        self._charges: dict[PodKey, tuple[str, str, Resources]] = {}
        self._used: dict[tuple[str, str], Resources] = {}
        self._gang_pods: dict[GangKey, set[PodKey]] = {}
        self._gang_gen: dict[GangKey, int] = {}
        self._gated = 0  # pods that carry our gate
        self._generation = 0
        self._listeners: list[NodeListener] = []
        # Exclusive pseudo-resources some pod has asked for: every node has one unit of each (exclusive.py).
        self._exclusive: frozenset[str] = frozenset()

    # --- listeners -----------------------------------------------------------------------------------

    def add_listener(self, listener: NodeListener) -> None:
        """Call `listener(node_name)` whenever a node's description or used capacity changes."""
        self._listeners.append(listener)

    def remove_listener(self, listener: NodeListener) -> None:
        self._listeners.remove(listener)

    def _touch(self, names: Iterator[str] | list[str] | set[str] | tuple[str, ...]) -> None:
        for name in names:
            for listener in self._listeners:
                listener(name)

    def _touch_target(self, kind: str, target: str) -> None:
        if kind == "node":
            self._touch((target,))
        else:
            self._touch(sorted(self._hosts.get(target, ())))

    # --- nodes ---------------------------------------------------------------------------------------

    def _with_exclusive(self, info: NodeInfo) -> NodeInfo:
        missing = {k: 1 for k in self._exclusive if k not in info.allocatable}
        return replace(info, allocatable=info.allocatable + missing) if missing else info

    def upsert_node(self, node: Mapping[str, Any]) -> None:
        info = self._with_exclusive(NodeInfo.from_dict(node))
        old = self._nodes.get(info.name)
        if old == info:
            return
        touched = {info.name}
        if old is not None and old.hostname != info.hostname:
            touched |= self._unhost(old)
        self._nodes[info.name] = info
        if info.hostname is not None and (old is None or old.hostname != info.hostname):
            peers = self._hosts.setdefault(info.hostname, set())
            peers.add(info.name)
            touched |= peers
        self._touch(sorted(touched))

    def delete_node(self, name: str) -> None:
        old = self._nodes.pop(name, None)
        if old is None:
            return
        self._touch(sorted(self._unhost(old) | {name}))

    def _unhost(self, info: NodeInfo) -> set[str]:
        """Forget the node under its hostname; returns the nodes that shared it (their pins change)."""
        if info.hostname is None:
            return set()
        peers = self._hosts.get(info.hostname, set())
        peers.discard(info.name)
        if not peers:
            self._hosts.pop(info.hostname, None)
        return set(peers)

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    @property
    def nodes(self) -> Mapping[str, NodeInfo]:
        return self._nodes

    def has_hostname(self, hostname: str) -> bool:
        """Some node carries `kubernetes.io/hostname=<hostname>` (False: a pin to it can never bind)."""
        return bool(self._hosts.get(hostname))

    def node_for_hostname(self, hostname: str) -> str | None:
        """The one node carrying `kubernetes.io/hostname=<hostname>`; None when none or several do (a pin
        to an ambiguous hostname cannot be honoured)."""
        names = self._hosts.get(hostname)
        if names is None or len(names) != 1:
            return None
        return next(iter(names))

    def hostname_of(self, name: str) -> str:
        """The value to pin a pod to this node with (`kubernetes.io/hostname`; the node name without it)."""
        info = self._nodes.get(name)
        hostname = info.hostname if info is not None else None
        return hostname if hostname is not None else name

    def used(self, name: str) -> Resources:
        """Requests of the pods bound to or reserved for the node."""
        used = self._used.get(("node", name), ZERO)
        info = self._nodes.get(name)
        if info is not None and info.hostname is not None:
            used = used + self._used.get(("host", info.hostname), ZERO)
        return used

    def allocatable(self, name: str) -> Resources:
        info = self._nodes.get(name)
        return info.allocatable if info is not None else ZERO

    def free(self, name: str) -> Resources:
        """Allocatable minus used; negative where a node is overcommitted."""
        return self.allocatable(name) - self.used(name)

    def taken_by(self, namespace: str, name: str) -> tuple[str, Resources] | None:
        """(node name, requests) the pod takes room on, if any: bound there, or reserved for a node (pinned
        by hostname) that exactly one node carries."""
        charge = self._charges.get((namespace, name))
        if charge is None:
            return None
        kind, target, amount = charge
        node = target if kind == "node" else self.node_for_hostname(target)
        if node is None or node not in self._nodes:
            return None
        return node, amount

    # --- pods ----------------------------------------------------------------------------------------

    def upsert_pod(self, pod: Mapping[str, Any]) -> None:
        """Add or update a pod. An update that changes nothing the admitter reads (a status heartbeat) is a
        no-op, so it does not invalidate anything cached for the pod's gang."""
        old = self._pods.get(_key_of(pod))
        info = PodInfo.from_dict(pod, old.generation if old is not None else 0)
        if info == old:
            return
        self._generation += 1
        self._put(replace(info, generation=self._generation))

    def delete_pod(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        old = self._pods.pop(key, None)
        if old is None:
            return
        self._recharge(key, None)
        self._index(old, None)
        if old.state is PodState.GATED:
            self._gated -= 1

    def _put(self, info: PodInfo) -> None:
        new_keys = {k for k in info.requests if is_exclusive(k)} - self._exclusive
        if new_keys:  # a unit of it on every node
            self._exclusive |= new_keys
            self._nodes = {name: self._with_exclusive(n) for name, n in self._nodes.items()}
            self._touch(sorted(self._nodes))
        old = self._pods.get(info.key)
        self._pods[info.key] = info
        self._recharge(info.key, info)
        self._index(old, info)
        if info.state is PodState.GATED:
            self._gated += 1
        if old is not None and old.state is PodState.GATED:
            self._gated -= 1

    def _recharge(self, key: PodKey, info: PodInfo | None) -> None:
        new = _charge(info) if info is not None else None
        old = self._charges.get(key)
        if old == new:
            return
        if old is not None:
            kind, target, amount = old
            self._add_used((kind, target), amount, -1)
            del self._charges[key]
        if new is not None:
            self._charges[key] = new
            self._add_used((new[0], new[1]), new[2], 1)
        if old is not None:
            self._touch_target(old[0], old[1])
        if new is not None and new[:2] != (old or ("", ""))[:2]:
            self._touch_target(new[0], new[1])

    def _add_used(self, where: tuple[str, str], amount: Resources, sign: int) -> None:
        current = self._used.get(where, ZERO)
        updated = current + amount if sign > 0 else current - amount
        if updated:
            self._used[where] = updated
        else:
            self._used.pop(where, None)

    def _index(self, old: PodInfo | None, new: PodInfo | None) -> None:
        old_gang = _gang_key(old)
        new_gang = _gang_key(new)
        self._generation += 1
        if old is not None and old_gang is not None and old_gang != new_gang:
            members = self._gang_pods.get(old_gang)
            if members is not None:
                members.discard(old.key)
                if not members:
                    del self._gang_pods[old_gang]
        if new is not None and new_gang is not None:
            self._gang_pods.setdefault(new_gang, set()).add(new.key)
        for gang in (old_gang, new_gang):
            if gang is not None:
                self._gang_gen[gang] = self._generation

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        return self._pods.get((namespace, name))

    @property
    def pods(self) -> Mapping[PodKey, PodInfo]:
        return self._pods

    @property
    def gated_pods(self) -> int:
        """How many pods carry our gate. None: no pass can admit, release or un-admit anything."""
        return self._gated

    def pod_state(self, namespace: str, name: str) -> PodState | None:
        info = self._pods.get((namespace, name))
        return info.state if info is not None else None

    def gang_pods(self, namespace: str, gang: str) -> list[PodInfo]:
        """Pods labelled `grove.io/podgang=<gang>` in the namespace, sorted by name."""
        keys = self._gang_pods.get((namespace, gang), ())
        return [self._pods[k] for k in sorted(keys)]

    def gang_generation(self, namespace: str, gang: str) -> int:
        """Changes whenever a pod labelled for this gang is added, changed or removed."""
        return self._gang_gen.get((namespace, gang), 0)


def _key_of(pod: Mapping[str, Any]) -> PodKey:
    meta = pod.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _gang_key(info: PodInfo | None) -> GangKey | None:
    return (info.key[0], info.gang) if info is not None and info.gang else None


def _charge(info: PodInfo) -> tuple[str, str, Resources] | None:
    """Where a pod takes capacity, if anywhere (see the module docstring)."""
    if info.state is PodState.BOUND and info.node_name:
        return ("node", info.node_name, info.requests)
    if info.reserving and info.pin is not None:
        return ("host", info.pin, info.requests)
    return None

"""Human wording for admission decisions: resource amounts ("1 cpu, 80Mi") and why nodes cannot take a pod
("3 nodes cordoned, 2 nodes lack cpu"). Kept apart from the decision logic so messages can be improved
without touching it; every function here is pure and cheap."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from . import nodes
from .board import INSUFFICIENT, NO_HOSTNAME
from .exclusive import PREFIX as EXCLUSIVE_PREFIX
from .exclusive import is_exclusive
from .resources import CPU, MEMORY, PODS, Resources

# reason key -> (singular, plural) predicate after "1 node" / "N nodes"
_PHRASES = {
    nodes.NOT_READY: ("is not ready", "are not ready"),
    nodes.UNSCHEDULABLE: ("cordoned", "cordoned"),
    nodes.TAINT: ("has untolerated taints", "have untolerated taints"),
    nodes.NODE_SELECTOR: ("does not match the nodeSelector", "do not match the nodeSelector"),
    nodes.AFFINITY: ("does not match the node affinity", "do not match the node affinity"),
    NO_HOSTNAME: (
        "lacks a unique kubernetes.io/hostname label",
        "lack a unique kubernetes.io/hostname label",
    ),
}
_BINARY = (("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10))
_DECIMAL = (("E", 18), ("P", 15), ("T", 12), ("G", 9), ("M", 6), ("k", 3))


def quantity(amount: int) -> str:
    """An amount of bytes (or other base units) the way people write it: 80Mi, 2Gi, 500M, 1234."""
    for suffix, shift in _BINARY:
        if amount and amount % (1 << shift) == 0:
            return f"{amount >> shift}{suffix}"
    for suffix, exp in _DECIMAL:
        if amount and amount % 10**exp == 0:
            return f"{amount // 10**exp}{suffix}"
    return str(amount)


def cpu(millis: int) -> str:
    if millis % 1000 == 0:
        return f"{millis // 1000} cpu"
    if millis % 100 == 0:
        return f"{millis / 1000:g} cpu"
    return f"{millis}m cpu"


@functools.lru_cache(maxsize=4096)
def amounts(request: Resources) -> str:
    """ "1 cpu, 80Mi, 1 nvidia.com/gpu": cpu first, then memory, then the rest by name; pods left out."""
    parts = []
    if request.get(CPU):
        parts.append(cpu(request[CPU]))
    if request.get(MEMORY):
        parts.append(quantity(request[MEMORY]))
    for name in sorted(request):
        if name not in (CPU, MEMORY, PODS) and request[name] and not is_exclusive(name):
            parts.append(f"{quantity(request[name])} {name}")
    return ", ".join(parts) or "nothing"


def reason_phrase(key: str, count: int) -> str:
    noun = "node" if count == 1 else "nodes"
    if key.startswith(INSUFFICIENT):
        resource = key[len(INSUFFICIENT) :]
        if is_exclusive(resource):
            verb = "has" if count == 1 else "have"
            what = resource[len(EXCLUSIVE_PREFIX) :]
            return f"{count} {noun} {verb} a pod it may not share a node with ({what})"
        verb = "lacks" if count == 1 else "lack"
        return f"{count} {noun} {verb} {resource}"
    singular, plural = _PHRASES.get(key, (f"fails {key}", f"fail {key}"))
    return f"{count} {noun} {singular if count == 1 else plural}"


@functools.lru_cache(maxsize=4096)
def node_reasons(counts: tuple[tuple[str, int], ...]) -> str:
    """ "3 nodes cordoned, 2 nodes lack cpu": most common reason first."""
    ordered = sorted(((k, n) for k, n in counts if n > 0), key=lambda kn: (-kn[1], kn[0]))
    return ", ".join(reason_phrase(k, n) for k, n in ordered) or "no nodes"


def names(items: Iterable[str]) -> str:
    return ",".join(sorted(set(items)))

"""Resource vectors (`Resources`) and what a pod requests of a node (`pod_requests`).

Admission must agree with the kube-scheduler about what a pod needs, or we would release gangs it then
refuses to place (or hold back gangs that fit). `pod_requests` therefore follows the scheduler's
`PodRequests`: containers add up, init containers run one at a time (but sidecars, restartable init
containers, keep running and add to everything after them), pod-level resources replace the container sum
for cpu and memory, and the pod's overhead is added on top. Every pod also takes one of the node's `pods`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .quantity import milli_value, value

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
HUGEPAGES_PREFIX = "hugepages-"


def parse_amount(name: str, quantity: str | int | float) -> int:
    """One resource amount in the unit `Resources` stores: millicores for cpu, base units for the rest."""
    return milli_value(quantity) if name == CPU else value(quantity)


class Resources(Mapping[str, int]):
    """An immutable, sparse resource vector: cpu in millicores, every other resource in base units (bytes,
    devices, pods). Absent resources are zero and zeros are not stored, so two vectors compare equal exactly
    when they hold the same amounts."""

    __slots__ = ("_hash", "_values")

    def __init__(self, values: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> None:
        items = values.items() if isinstance(values, Mapping) else values
        self._values: dict[str, int] = {k: int(v) for k, v in items if v}
        self._hash: int | None = None

    @classmethod
    def from_k8s(cls, quantities: Mapping[str, Any] | None) -> Resources:
        """From a Kubernetes resource list such as `{"cpu": "500m", "memory": "1Gi"}`."""
        return cls({name: parse_amount(name, q) for name, q in (quantities or {}).items()})

    def __getitem__(self, key: str) -> int:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: str, default: int = 0) -> int:  # type: ignore[override]
        return self._values.get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Resources):
            return self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._values.items()))
        return self._hash

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v}" for k, v in sorted(self._values.items()))
        return f"Resources({{{inner}}})"

    def as_dict(self) -> dict[str, int]:
        """A mutable copy (the placement code works on plain dicts for speed)."""
        return dict(self._values)

    def __add__(self, other: Mapping[str, int]) -> Resources:
        out = dict(self._values)
        for k, v in other.items():
            out[k] = out.get(k, 0) + v
        return Resources(out)

    def __sub__(self, other: Mapping[str, int]) -> Resources:
        out = dict(self._values)
        for k, v in other.items():
            out[k] = out.get(k, 0) - v
        return Resources(out)

    def __mul__(self, factor: int) -> Resources:
        return Resources({k: v * factor for k, v in self._values.items()})

    def max(self, other: Mapping[str, int]) -> Resources:
        """Element-wise maximum (what a pod needs over phases that do not overlap in time)."""
        out = dict(self._values)
        for k, v in other.items():
            out[k] = max(out.get(k, 0), v)
        return Resources(out)

    def fits(self, free: Mapping[str, int]) -> bool:
        """Whether this request fits into `free` in every resource it asks for."""
        return all(free.get(k, 0) >= v for k, v in self._values.items() if v > 0)

    def insufficient(self, free: Mapping[str, int]) -> list[str]:
        """The resources, sorted, that `free` has too little of for this request."""
        return sorted(k for k, v in self._values.items() if v > 0 and free.get(k, 0) < v)


ZERO = Resources()


def _container_requests(container: Mapping[str, Any]) -> Resources:
    """A container's requests; a resource with only a limit requests its limit (the apiserver's default)."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return Resources.from_k8s(merged)


def _pod_level_resource(name: str) -> bool:
    """Resources that pod-level `spec.resources` sets for the whole pod (the scheduler's supported list)."""
    return name in (CPU, MEMORY) or name.startswith(HUGEPAGES_PREFIX)


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """What the kube-scheduler reserves on a node for this pod (a pod dict, or just its spec)."""
    spec = (pod.get("spec") or {}) if "spec" in pod else pod
    total = ZERO
    for container in spec.get("containers") or []:
        total = total + _container_requests(container)
    sidecars = ZERO
    init_peak = ZERO
    for container in spec.get("initContainers") or []:
        request = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            total = total + request
            sidecars = sidecars + request
            request = sidecars
        else:
            request = request + sidecars
        init_peak = init_peak.max(request)
    total = total.max(init_peak)
    pod_level = spec.get("resources") or {}
    pod_level_values = {
        **(pod_level.get("limits") or {}),
        **(pod_level.get("requests") or {}),
    }
    if pod_level_values:
        values = total.as_dict()
        for name, quantity in pod_level_values.items():
            if _pod_level_resource(name):
                values[name] = parse_amount(name, quantity)
        total = Resources(values)
    total = total + Resources.from_k8s(spec.get("overhead"))
    return total + {PODS: 1}

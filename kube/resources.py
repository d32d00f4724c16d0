"""Which REST collection serves each kind the operator reads or writes.

A `Resource` is the minimum the generic client and the informers need to build URLs: group, version,
plural, scope and whether writes to `status` go through the `/status` subresource. The registry is keyed by
(apiVersion, kind) so a planner action (which only carries apiVersion and kind) maps straight to a URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from grove_api import constants, kinds


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    status_subresource: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def _prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str | None = None) -> str:
        """The list/create/watch URL path: namespaced when `namespace` is given, all namespaces otherwise."""
        if self.namespaced and namespace:
            return f"{self._prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{self._prefix}/{self.plural}"

    def object_path(self, namespace: str | None, name: str, subresource: str = "") -> str:
        if self.namespaced and not namespace:
            raise ValueError(f"{self.kind} {name!r} is namespaced: a namespace is required")
        path = f"{self.collection_path(namespace if self.namespaced else None)}/{quote(name, safe='')}"
        return f"{path}/{subresource}" if subresource else path

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}/{self.version}" if self.group else f"{self.plural}/{self.version}"


def _core(kind: str, plural: str, *, namespaced: bool = True, status: bool = False) -> Resource:
    return Resource("", "v1", kind, plural, namespaced, status)


POD = _core("Pod", "pods", status=True)
SERVICE = _core("Service", "services", status=True)
SERVICE_ACCOUNT = _core("ServiceAccount", "serviceaccounts")
SECRET = _core("Secret", "secrets")
CONFIG_MAP = _core("ConfigMap", "configmaps")
EVENT = _core("Event", "events")
NODE = _core("Node", "nodes", namespaced=False, status=True)
NAMESPACE = _core("Namespace", "namespaces", namespaced=False, status=True)
ROLE = Resource("rbac.authorization.k8s.io", "v1", "Role", "roles", True, False)
ROLE_BINDING = Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True, False)
HPA = Resource("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, True)
PRIORITY_CLASS = Resource("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, False)


def _grove(kind: kinds.Kind) -> Resource:
    # Every Grove CRD is generated with a status subresource (grove_api/crdgen.py).
    return Resource(kind.group, constants.VERSION, kind.kind, kind.plural, kind.namespaced, True)


PODCLIQUESET = _grove(kinds.PODCLIQUESET)
PODCLIQUE = _grove(kinds.PODCLIQUE)
PODCLIQUESCALINGGROUP = _grove(kinds.PODCLIQUESCALINGGROUP)
PODGANG = _grove(kinds.PODGANG)
CLUSTERTOPOLOGYBINDING = _grove(kinds.CLUSTERTOPOLOGYBINDING)

ALL: tuple[Resource, ...] = (
    POD,
    SERVICE,
    SERVICE_ACCOUNT,
    SECRET,
    CONFIG_MAP,
    EVENT,
    NODE,
    NAMESPACE,
    ROLE,
    ROLE_BINDING,
    HPA,
    PRIORITY_CLASS,
    PODCLIQUESET,
    PODCLIQUE,
    PODCLIQUESCALINGGROUP,
    PODGANG,
    CLUSTERTOPOLOGYBINDING,
)

REGISTRY: dict[tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in ALL}


class UnknownKind(LookupError):
    pass


def lookup(api_version: str, kind: str) -> Resource:
    """The resource serving (apiVersion, kind); `UnknownKind` for kinds the operator does not handle."""
    try:
        return REGISTRY[(api_version, kind)]
    except KeyError:
        raise UnknownKind(f"no resource registered for {api_version} {kind}") from None

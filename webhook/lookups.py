"""The webhooks' reads from the apiserver, on any reader (`kube.plain.PlainReader.get`): a PodCliqueSet's
metadata (the authorizer: who owns a managed object), a ClusterTopologyBinding's levels (validation of
topology constraints) and whether grove-initc's objects' names are taken (a warning when a PodCliqueSet is
created). A read that fails raises; the handlers turn that into a clear refusal or leave the warning out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from grove_api import constants as c
from grove_api import naming

JSON = dict[str, Any]
Get = Callable[[str, str], Awaitable[JSON | None]]  # (path, Accept) -> the object, None when not found

PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"  # no spec transferred


async def podcliqueset_metadata(get: Get, namespace: str, name: str) -> JSON | None:
    """metadata of PodCliqueSet namespace/name, or None when it does not exist."""
    path = f"/apis/{c.GROUP}/{c.VERSION}/namespaces/{namespace}/{c.PLURAL_PODCLIQUESET}/{name}"
    obj = await get(path, PARTIAL_METADATA)
    if obj is None:
        return None
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


async def topology_domains(get: Get, name: str) -> list[str] | None:
    """spec.levels[*].domain of ClusterTopologyBinding `name` (broadest first), or None if it does not exist."""
    obj = await get(
        f"/apis/{c.GROUP}/{c.VERSION}/{c.PLURAL_CLUSTERTOPOLOGYBINDING}/{name}", "application/json"
    )
    if obj is None:
        return None
    levels = (obj.get("spec") or {}).get("levels") or []
    return [str(level.get("domain")) for level in levels if isinstance(level, dict)]


RBAC = "/apis/rbac.authorization.k8s.io/v1"
# grove-initc's objects, one of each per PodCliqueSet: (kind, collection under a namespace, name, what it is).
INITC_OBJECTS: tuple[tuple[str, str, Callable[[str], str], str], ...] = (
    ("ServiceAccount", "/api/v1/namespaces/{ns}/serviceaccounts", naming.service_account, "ServiceAccount"),
    ("Role", RBAC + "/namespaces/{ns}/roles", naming.role, "Role"),
    ("RoleBinding", RBAC + "/namespaces/{ns}/rolebindings", naming.role, "RoleBinding"),
    ("Secret", "/api/v1/namespaces/{ns}/secrets", naming.initc_token_secret, "token Secret"),
)


def _previous_incarnation(obj: JSON, pcs: str) -> bool:
    """Made for an earlier PodCliqueSet of this name, which was deleted: the garbage collector takes it."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(
        r.get("controller") and r.get("kind") == c.KIND_PODCLIQUESET and r.get("name") == pcs for r in refs
    )


async def names_taken(get: Get, namespace: str, pcs: str) -> list[str]:
    """Warnings for a PodCliqueSet about to be created: grove-initc's objects whose names objects of someone
    else's have. The operator will leave those alone (never adopt them: docs/decisions.md), so startup
    ordering lacks them until they are gone. Only metadata is read (a Secret's data never leaves the
    apiserver)."""

    async def one(kind: str, collection: str, name_of: Callable[[str], str], what: str) -> str | None:
        name = name_of(pcs)
        obj = await get(f"{collection.format(ns=namespace)}/{name}", PARTIAL_METADATA)
        if obj is None or _previous_incarnation(obj, pcs):
            return None
        return (
            f"{kind} {namespace}/{name} exists and is not this PodCliqueSet's: the operator leaves it alone, "
            f"so grove-initc (startup ordering) has no {what} of its own until it is removed or the "
            "PodCliqueSet is given another name"
        )

    found = await asyncio.gather(*(one(*spec) for spec in INITC_OBJECTS))
    return [w for w in found if w is not None]

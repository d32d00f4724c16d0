"""The webhooks' two reads from the apiserver, on any reader (`kube.plain.PlainReader.get`): a PodCliqueSet's
metadata (the authorizer: who owns a managed object) and a ClusterTopologyBinding's levels (validation of
topology constraints). A read that fails raises; the handlers turn that into a clear refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from grove_api import constants as c

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

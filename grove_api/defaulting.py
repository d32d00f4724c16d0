"""Defaults for a PodCliqueSet, applied by the mutating webhook (and by anyone normalising a spec).

The defaults are computed as a JSON patch (RFC 6902 `add`/`replace` operations) without copying or
diffing the object: the webhook answers with the patch directly, and unknown fields and key order are
untouched. Idempotent: defaulting a defaulted object yields an empty patch.

Differences from Grove (see docs/decisions.md): minAvailable and autoScalingConfig.minReplicas default to
the clique's replicas *after* replicas is defaulted (Grove reads the value from before, so an omitted
replicas gives minAvailable 0, which its own validator then refuses); roleName defaults to the clique name
(Grove leaves it empty, so two cliques without a roleName collide as duplicates).
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from grove_api import constants as c

DEFAULT_RESTART_POLICY = "Always"
DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30
Patch = list[dict[str, Any]]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class _Defaults:
    """Collects patch operations while reading the original object (never modifying it)."""

    def __init__(self) -> None:
        self.ops: Patch = []

    def ensure(
        self, node: dict[str, Any], path: str, key: str, value: Any, unset: tuple[Any, ...] = (None,)
    ) -> Any:
        """node[key] if set, else record setting it to `value`; returns the effective value."""
        current = node.get(key)
        if any(current is u or (type(current) is type(u) and current == u) for u in unset):
            op = "replace" if key in node else "add"
            self.ops.append({"op": op, "path": f"{path}/{_escape(key)}", "value": value})
            return value
        return current

    def obj(self, node: dict[str, Any], path: str, key: str) -> tuple[dict[str, Any], str] | None:
        """The dict at node[key] (adding an empty one if absent); None if present but not a dict."""
        child_path = f"{path}/{_escape(key)}"
        if key not in node or node[key] is None:
            self.ops.append({"op": "replace" if key in node else "add", "path": child_path, "value": {}})
            return {}, child_path
        child = node[key]
        return (child, child_path) if isinstance(child, dict) else None


def _clique(d: _Defaults, clique: dict[str, Any], path: str, before: dict[str, Any] | None = None) -> None:
    spec_found = d.obj(clique, path, "spec")
    if spec_found is None:
        return
    spec, sp = spec_found
    name = clique.get("name")
    # On update, immutable fields left unset keep the value they had (an object stored before our
    # webhooks existed may lack them); otherwise the defaults apply.
    was = (before or {}).get("spec") or {}
    if name and isinstance(name, str):
        d.ensure(spec, sp, "roleName", was.get("roleName") or name, unset=(None, ""))
    pod_found = d.obj(spec, sp, "podSpec")
    if pod_found is not None:
        pod, pp = pod_found
        d.ensure(pod, pp, "restartPolicy", DEFAULT_RESTART_POLICY, unset=(None, ""))
        d.ensure(pod, pp, "terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS)
    replicas = d.ensure(spec, sp, "replicas", 1, unset=(None, 0))
    d.ensure(spec, sp, "minAvailable", was.get("minAvailable") or replicas)
    scaling = spec.get("autoScalingConfig")
    if isinstance(scaling, dict):
        d.ensure(scaling, f"{sp}/autoScalingConfig", "minReplicas", replicas)


def _scaling_group(
    d: _Defaults, group: dict[str, Any], path: str, before: dict[str, Any] | None = None
) -> None:
    replicas = d.ensure(group, path, "replicas", 1)
    d.ensure(group, path, "minAvailable", (before or {}).get("minAvailable") or 1)
    scaling = group.get("scaleConfig")
    if isinstance(scaling, dict):
        d.ensure(scaling, f"{path}/scaleConfig", "minReplicas", replicas)


def _by_name(template: Any, key: str) -> dict[str, dict[str, Any]]:
    items = template.get(key) if isinstance(template, dict) else None
    if not isinstance(items, list):
        return {}
    return {i["name"]: i for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)}


def default_patch(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Patch:
    """The JSON patch that applies every default to a PodCliqueSet document (empty if none is missing).

    `old` is the stored object on UPDATE: immutable fields the new object leaves unset take its values.
    """
    old_template = default_podcliqueset(old).get("spec", {}).get("template", {}) if old else {}
    old_cliques = _by_name(old_template, "cliques")
    old_groups = _by_name(old_template, "podCliqueScalingGroups")
    d = _Defaults()
    metadata_found = d.obj(obj, "", "metadata")
    if metadata_found is not None:
        d.ensure(metadata_found[0], metadata_found[1], "namespace", "default", unset=(None, ""))
    spec_found = d.obj(obj, "", "spec")
    if spec_found is None:
        return d.ops
    spec, sp = spec_found
    d.ensure(spec, sp, "replicas", 0)
    template_found = d.obj(spec, sp, "template")
    if template_found is None:
        return d.ops
    template, tp = template_found
    d.ensure(template, tp, "cliqueStartupType", c.STARTUP_ANY_ORDER, unset=(None, ""))
    cliques = template.get("cliques")
    if isinstance(cliques, list):
        for i, clique in enumerate(cliques):
            if isinstance(clique, dict):
                _clique(d, clique, f"{tp}/cliques/{i}", old_cliques.get(str(clique.get("name"))))
    groups = template.get("podCliqueScalingGroups")
    if isinstance(groups, list):
        for i, group in enumerate(groups):
            if isinstance(group, dict):
                _scaling_group(
                    d, group, f"{tp}/podCliqueScalingGroups/{i}", old_groups.get(str(group.get("name")))
                )
    d.ensure(template, tp, "terminationDelay", c.DEFAULT_TERMINATION_DELAY)
    d.ensure(template, tp, "headlessServiceConfig", {"publishNotReadyAddresses": True})
    return d.ops


def default_podcliqueset(obj: dict[str, Any]) -> dict[str, Any]:
    """A defaulted copy of a PodCliqueSet document (the input is not modified)."""
    result: dict[str, Any] = jsonpatch.apply_patch(obj, default_patch(obj))
    return result

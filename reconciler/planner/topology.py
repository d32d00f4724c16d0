"""Topology of a PodCliqueSet's PodGangs (docs/api.md, "PodGangs"): the pack constraints of the
PodCliqueSet, its scaling groups and its cliques, with domain names (zone, rack …) translated to the
node-label keys of the ClusterTopologyBinding they refer to.

The manager puts the binding's levels in the snapshot only when topology-aware scheduling is enabled and the
binding exists; otherwise nothing is translated. A domain the binding does not have is left out (Grove logs
and skips it) and a constraint with nothing left is omitted, so a PodGang never carries an untranslated
domain name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .snapshot import Obj

Levels = Mapping[str, str]  # domain -> node label key


def _constraints(template: Obj) -> Iterable[Obj | None]:
    yield template.get("topologyConstraint")
    for group in template.get("podCliqueScalingGroups") or []:
        yield group.get("topologyConstraint")
    for clique in template.get("cliques") or []:
        yield clique.get("topologyConstraint")


def topology_name(template: Obj) -> str:
    """The ClusterTopologyBinding a PodCliqueSet template refers to: its first explicit topologyName (the
    PodCliqueSet's, then the scaling groups', then the cliques'; admission makes them all equal, unnamed
    constraints inherit it), "" when there is none."""
    return next(
        (str(tc["topologyName"]) for tc in _constraints(template) if tc and tc.get("topologyName")), ""
    )


def levels_of(binding: Obj) -> dict[str, str]:
    """domain -> node label key of a ClusterTopologyBinding."""
    levels = (binding.get("spec") or {}).get("levels") or []
    return {str(lvl["domain"]): str(lvl["key"]) for lvl in levels if lvl.get("domain") and lvl.get("key")}


def translate(constraint: Obj | None, levels: Levels | None) -> Obj | None:
    """The PodGang `topologyConstraint` for a PodCliqueSet, scaling-group or clique `topologyConstraint`:
    `packConstraint.required` from `pack.required` (or the deprecated `packDomain`), `preferred` from
    `pack.preferred`, each as its node label key. None when there is nothing to translate."""
    if not constraint or levels is None:
        return None
    pack = constraint.get("pack") or {}
    domains = {
        "required": pack.get("required") or constraint.get("packDomain"),
        "preferred": pack.get("preferred"),
    }
    keys = {field: levels[domain] for field, domain in domains.items() if domain and domain in levels}
    return {"packConstraint": keys} if keys else None

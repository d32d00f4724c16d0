"""Topology constraint rules (docs/admission.md, "Topology constraints"): names, domains, hierarchy on
create; immutability on update."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from grove_api.fielderrors import FieldError, forbidden, invalid, required
from grove_api.models.podcliqueset import PodCliqueSet
from grove_api.models.shared import TopologyConstraint
from grove_api.operatorconfig import OperatorConfiguration

from .result import Result

T = "spec.template"


@dataclass(frozen=True)
class Level:
    """One place a constraint can sit: the PodCliqueSet, a scaling group or a clique."""

    kind: str  # PodCliqueSet | PodCliqueScalingGroup | PodClique
    name: str
    path: str  # path of the topologyConstraint field
    constraint: TopologyConstraint | None
    parent: Level | None = None

    @property
    def label(self) -> str:
        return self.kind if self.kind == "PodCliqueSet" else f"{self.kind} '{self.name}'"


def required_domain(tc: TopologyConstraint | None) -> str:
    if tc is None:
        return ""
    return (tc.pack.required if tc.pack and tc.pack.required else None) or tc.pack_domain or ""


def preferred_domain(tc: TopologyConstraint | None) -> str:
    return (tc.pack.preferred or "") if tc and tc.pack else ""


def levels(pcs: PodCliqueSet) -> list[Level]:
    """Every level, each clique linked to its scaling group (if any), groups and standalone to the PCS."""
    template = pcs.spec.template
    root = Level(
        "PodCliqueSet", pcs.metadata.name or "", f"{T}.topologyConstraint", template.topology_constraint
    )
    out = [root]
    group_level: dict[str, Level] = {}
    for i, g in enumerate(template.pod_clique_scaling_groups or []):
        lvl = Level(
            "PodCliqueScalingGroup",
            g.name,
            f"{T}.podCliqueScalingGroups[{i}].topologyConstraint",
            g.topology_constraint,
            root,
        )
        out.append(lvl)
        for name in g.clique_names:
            group_level[name] = lvl
    for i, q in enumerate(template.cliques or []):
        out.append(
            Level(
                "PodClique",
                q.name,
                f"{T}.cliques[{i}].topologyConstraint",
                q.topology_constraint,
                group_level.get(q.name, root),
            )
        )
    return out


def _constrained(pcs: PodCliqueSet) -> list[Level]:
    return [lvl for lvl in levels(pcs) if lvl.constraint is not None]


def _domains(lvl: Level) -> Iterator[tuple[str, str]]:
    tc = lvl.constraint
    if tc is None:
        return
    if tc.pack_domain:
        yield f"{lvl.path}.packDomain", tc.pack_domain
    if tc.pack and tc.pack.required:
        yield f"{lvl.path}.pack.required", tc.pack.required
    if tc.pack and tc.pack.preferred:
        yield f"{lvl.path}.pack.preferred", tc.pack.preferred


def _inherited_name(lvl: Level) -> str:
    parent = lvl.parent
    while parent is not None:
        if parent.constraint is not None and parent.constraint.topology_name:
            return parent.constraint.topology_name
        if parent.constraint is not None:
            return _inherited_name(parent)
        parent = parent.parent
    return ""


def effective_topology_names(pcs: PodCliqueSet) -> set[str]:
    """Names of the ClusterTopologyBindings a PodCliqueSet refers to (what a caller must look up)."""
    names = set()
    for lvl in _constrained(pcs):
        assert lvl.constraint is not None
        name = lvl.constraint.topology_name or _inherited_name(lvl)
        if name:
            names.add(name)
    return names


def _resolve_names(constrained: list[Level]) -> tuple[str, list[FieldError]]:
    errors: list[FieldError] = []
    effective: dict[str, str] = {}
    for lvl in constrained:
        assert lvl.constraint is not None
        explicit = lvl.constraint.topology_name or ""
        inherited = _inherited_name(lvl)
        if not explicit and not inherited:
            errors.append(
                required(
                    f"{lvl.path}.topologyName",
                    "topologyName is required when topologyConstraint is set and cannot be inherited from an "
                    "enclosing PodCliqueSet or scaling group constraint",
                )
            )
        elif explicit and inherited and explicit != inherited:
            errors.append(
                invalid(
                    f"{lvl.path}.topologyName",
                    explicit,
                    f"all topologyConstraint.topologyName values within a PodCliqueSet must match (the enclosing "
                    f"level uses '{inherited}')",
                )
            )
        if explicit or inherited:
            effective[lvl.path] = explicit or inherited
    names = set(effective.values())
    if len(names) > 1 and not errors:
        for lvl in constrained:
            assert lvl.constraint is not None
            if lvl.constraint.topology_name:
                errors.append(
                    invalid(
                        f"{lvl.path}.topologyName",
                        lvl.constraint.topology_name,
                        "all topologyConstraint.topologyName values within a PodCliqueSet must match "
                        f"(found {', '.join(sorted(names))})",
                    )
                )
    return (names.pop() if len(names) == 1 else ""), errors


def validate_on_create(
    pcs: PodCliqueSet, config: OperatorConfiguration, topologies: Mapping[str, Sequence[str]]
) -> Result:
    result = Result()
    constrained = _constrained(pcs)
    if not constrained:
        return result
    if not config.topology_aware_scheduling.enabled:
        for lvl in constrained:
            domains = [d for _, d in _domains(lvl)]
            result.errors.append(
                invalid(
                    lvl.path,
                    domains,
                    "topology constraints are not allowed when Topology Aware Scheduling is disabled (enable "
                    "topologyAwareScheduling in the operator configuration, or remove the constraint)",
                )
            )
        return result
    name, errors = _resolve_names(constrained)
    if errors:
        result.errors += errors
        return result
    if name not in topologies:
        result.errors.append(
            invalid(
                f"{T}.topologyConstraint.topologyName", name, f'ClusterTopologyBinding "{name}" not found'
            )
        )
        return result
    order = list(topologies[name])
    for lvl in constrained:
        for path, domain in _domains(lvl):
            if domain not in order:
                result.errors.append(
                    invalid(
                        path,
                        domain,
                        f"topology domain '{domain}' does not exist in cluster topology {name!r} ({', '.join(order)})",
                    )
                )
    if result.errors:
        return result
    result.errors += _hierarchy(constrained, order)
    result.warnings += _coarser_preferred_warnings(constrained, order)
    return result


def _hierarchy(constrained: list[Level], order: list[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    all_levels = {lvl.path: lvl for lvl in constrained}
    for child in constrained:
        ancestors = []
        parent = child.parent
        while parent is not None:
            if parent.path in all_levels:
                ancestors.append(parent)
            parent = parent.parent
        for parent in ancestors:
            for get, suffix in ((required_domain, ""), (preferred_domain, ".pack.preferred")):
                pd, cd = get(parent.constraint), get(child.constraint)
                if pd and cd and order.index(pd) > order.index(cd):
                    errors.append(
                        invalid(
                            parent.path + suffix,
                            pd,
                            f"{parent.label} topology constraint domain '{pd}' is narrower than {child.label} "
                            f"topology constraint domain '{cd}' (an enclosing level must be as broad or broader)",
                        )
                    )
    return errors


def _coarser_preferred_warnings(constrained: list[Level], order: list[str]) -> list[str]:
    warnings = []
    for lvl in constrained:
        req, pref = required_domain(lvl.constraint), preferred_domain(lvl.constraint)
        if req and pref and req in order and pref in order and order.index(pref) < order.index(req):
            warnings.append(
                f"{lvl.path}.pack.preferred is coarser than {lvl.path}.pack.required and is redundant"
            )
    return warnings


def _change_message(label: str, old: TopologyConstraint | None, new: TopologyConstraint | None) -> str | None:
    if old is None and new is None:
        return None
    if old is None:
        return f"{label} topology constraint cannot be added after creation"
    if new is None:
        return f"{label} topology constraint cannot be removed after creation"
    if (old.topology_name or "") != (new.topology_name or ""):
        return f"{label} topology constraint topologyName cannot be changed from '{old.topology_name or ''}' to '{new.topology_name or ''}'"
    same = (
        (old.pack_domain or "") == (new.pack_domain or "")
        and required_domain(old) == required_domain(new)
        and preferred_domain(old) == preferred_domain(new)
    )
    if same:
        return None
    if old.pack_domain and not new.pack_domain and new.pack and new.pack.required:
        if new.pack.required == old.pack_domain and preferred_domain(new) == preferred_domain(old):
            return None  # the allowed migration: deprecated packDomain -> pack.required
        return (
            f"{label} deprecated packDomain migration can only move packDomain to pack.required without changing "
            f"the required or preferred topology domain (old required={required_domain(old)!r} preferred="
            f"{preferred_domain(old)!r}, new required={required_domain(new)!r} preferred={preferred_domain(new)!r})"
        )
    return (
        f"{label} topology constraint cannot be changed from required={required_domain(old)!r} preferred="
        f"{preferred_domain(old)!r} to required={required_domain(new)!r} preferred={preferred_domain(new)!r}"
    )


def validate_on_update(
    new: PodCliqueSet,
    old: PodCliqueSet,
    config: OperatorConfiguration,
    topologies: Mapping[str, Sequence[str]],
) -> Result:
    result = Result()
    new_levels = {(lvl.kind, lvl.name): lvl for lvl in levels(new)}
    old_levels = {(lvl.kind, lvl.name): lvl for lvl in levels(old)}
    for key, lvl in new_levels.items():
        previous = old_levels.get(key)
        if previous is None:
            continue
        old_tc, new_tc = previous.constraint, lvl.constraint
        if lvl.kind == "PodCliqueSet":
            old_name = old_tc.topology_name if old_tc else ""
            new_name = new_tc.topology_name if new_tc else ""
            if (old_name or "") != (new_name or ""):
                result.errors.append(
                    forbidden(
                        f"{lvl.path}.topologyName",
                        f'topologyName cannot be changed from "{old_name or ""}" to "{new_name or ""}"',
                    )
                )
                continue
        message = _change_message(lvl.label, old_tc, new_tc)
        if message:
            result.errors.append(forbidden(lvl.path, message))
        if new_tc is not None and new_tc.pack_domain:
            result.warnings.append(
                f"{lvl.path}.packDomain is deprecated; use {lvl.path}.pack.required instead"
            )
    constrained = _constrained(new)
    name = next(iter(effective_topology_names(new)), "")
    if name in topologies:
        result.warnings += _coarser_preferred_warnings(constrained, list(topologies[name]))
    return result

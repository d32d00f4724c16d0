"""Validation of PodCliqueSet create and update (Grove's rules, docs/admission.md, with clearer messages).

Every rule reports at the exact field path, says what is wrong and what is allowed; all errors of a
request are reported together. Inputs are the (already defaulted) objects as pydantic models plus the
operator configuration and the ClusterTopologyBinding levels the topology rules need (looked up by the
caller: this module does no I/O).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grove_api import constants as c
from grove_api import naming
from grove_api.defaulting import default_podcliqueset
from grove_api.fielderrors import (
    FieldError,
    duplicate,
    forbidden,
    format_value,
    invalid,
    not_found,
    not_supported,
    required,
)
from grove_api.models.podcliqueset import (
    PodCliqueScalingGroupConfig,
    PodCliqueSet,
    PodCliqueTemplateSpec,
)
from grove_api.models.shared import AutoScalingConfig, ResourceSharingSpec
from grove_api.operatorconfig import OperatorConfiguration

from . import k8s, topology
from .mnnvl import validate_mnnvl_create, validate_mnnvl_update
from .result import Result
from .schedulers import validate_backend

T = "spec.template"
STARTUP_TYPES = (c.STARTUP_ANY_ORDER, c.STARTUP_IN_ORDER, c.STARTUP_EXPLICIT)
SCOPES = (c.RESOURCE_SHARING_ALL_REPLICAS, c.RESOURCE_SHARING_PER_REPLICA)


@dataclass(frozen=True)
class Context:
    """What the rules need besides the object: the operator's configuration and the cluster's topologies."""

    config: OperatorConfiguration = field(default_factory=OperatorConfiguration)
    # ClusterTopologyBinding name -> level domains, broadest first. Missing name = binding not found.
    topologies: Mapping[str, Sequence[str]] = field(default_factory=dict)


def _dig(node: object, *keys: str) -> object:
    """node[k1][k2]… through opaque (user-supplied) sub-documents, None where the shape does not fit."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _cliques(pcs: PodCliqueSet) -> list[PodCliqueTemplateSpec]:
    return list(pcs.spec.template.cliques or [])


def _groups(pcs: PodCliqueSet) -> list[PodCliqueScalingGroupConfig]:
    return list(pcs.spec.template.pod_clique_scaling_groups or [])


def _group_of(pcs: PodCliqueSet) -> dict[str, PodCliqueScalingGroupConfig]:
    return {name: g for g in _groups(pcs) for name in g.clique_names}


# --- metadata -----------------------------------------------------------------------------------------


def spec_unchanged(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> bool:
    """An update that leaves the spec as stored (or as stored with our defaults filled in): a change of
    metadata, of finalizers, or one made while the object is deleted. The webhooks never refuse such an
    update, whatever the stored spec: it may predate our rules (stored before the webhooks were installed,
    by an older version, or by Grove), and refusing would leave the object stuck, e.g. with a finalizer
    nobody may remove."""
    if not isinstance(new, Mapping) or not isinstance(old, Mapping):
        return False
    spec = new.get("spec")
    if spec == old.get("spec"):
        return True
    try:
        return bool(spec == default_podcliqueset(dict(old)).get("spec"))
    except Exception:  # a stored document too malformed to default (jsonpatch refuses it): not the same
        return False


def validate_metadata(pcs: PodCliqueSet) -> list[FieldError]:
    meta = pcs.metadata
    errors: list[FieldError] = []
    if not meta.name:
        if not meta.generate_name:
            errors.append(required("metadata.name", "name or generateName is required"))
    else:
        # Stricter than a DNS subdomain (Grove's rule): the name starts every Service name (DNS-1035) and
        # every pod hostname (a DNS label), so anything else would only fail later, in the reconciler.
        errors += [
            invalid("metadata.name", meta.name, p + "; it is used in Service names and pod hostnames")
            for p in k8s.dns1035_label(meta.name)
        ]
    errors += k8s.validate_labels("metadata.labels", meta.labels)
    errors += k8s.validate_annotations("metadata.annotations", meta.annotations)
    return errors


# --- resource sharing ---------------------------------------------------------------------------------


def _validate_sharing_list(
    path: str, entries: Sequence[ResourceSharingSpec] | None, internal: set[str]
) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, ref in enumerate(entries or []):
        p = f"{path}[{i}]"
        if not ref.name.strip():
            errors.append(required(f"{p}.name", "reference name is required"))
        elif ref.name in seen:
            errors.append(duplicate(f"{p}.name", ref.name))
        seen.add(ref.name)
        if ref.namespace and ref.name in internal:
            errors.append(
                invalid(
                    f"{p}.namespace",
                    ref.namespace,
                    "namespace must be empty when name matches an internal resourceClaimTemplate",
                )
            )
        if ref.scope not in SCOPES:
            errors.append(not_supported(f"{p}.scope", ref.scope, SCOPES))
    return errors


def validate_resource_sharing(pcs: PodCliqueSet) -> list[FieldError]:
    template = pcs.spec.template
    errors: list[FieldError] = []
    templates = template.resource_claim_templates or []
    for i, rct in enumerate(templates):
        p = f"{T}.resourceClaimTemplates[{i}]"
        if not rct.name.strip():
            errors.append(required(f"{p}.name", "template name is required"))
        requests = _dig(rct.template_spec, "spec", "devices", "requests")
        if not requests:
            errors.append(
                required(f"{p}.templateSpec.spec.devices.requests", "at least one device request is required")
            )
    dups = [n for n, k in Counter(t.name for t in templates).items() if k > 1]
    if dups:
        errors.append(duplicate(f"{T}.resourceClaimTemplates.name", dups))
    internal = {t.name for t in templates}
    clique_names = {q.name for q in _cliques(pcs)}
    group_names = {g.name for g in _groups(pcs)}
    errors += _validate_sharing_list(f"{T}.resourceSharing", template.resource_sharing, internal)
    for i, ref in enumerate(template.resource_sharing or []):
        if ref.filter is None:
            continue
        p = f"{T}.resourceSharing[{i}].filter"
        cliques, groups = ref.filter.child_clique_names or [], ref.filter.child_scaling_group_names or []
        if not cliques and not groups:
            errors.append(
                required(
                    p, "filter must specify at least one childCliqueNames or childScalingGroupNames entry"
                )
            )
        errors += [
            not_found(f"{p}.childCliqueNames[{j}]", n) for j, n in enumerate(cliques) if n not in clique_names
        ]
        errors += [
            not_found(f"{p}.childScalingGroupNames[{j}]", n)
            for j, n in enumerate(groups)
            if n not in group_names
        ]
    for i, clique in enumerate(_cliques(pcs)):
        errors += _validate_sharing_list(
            f"{T}.cliques[{i}].resourceSharing", clique.resource_sharing, internal
        )
    for i, group in enumerate(_groups(pcs)):
        base = f"{T}.podCliqueScalingGroups[{i}].resourceSharing"
        errors += _validate_sharing_list(base, group.resource_sharing, internal)
        for j, group_ref in enumerate(group.resource_sharing or []):
            if group_ref.filter is None:
                continue
            names = group_ref.filter.child_clique_names or []
            if not names:
                errors.append(
                    required(f"{base}[{j}].filter", "filter must specify at least one childCliqueNames entry")
                )
            errors += [
                not_found(
                    f"{base}[{j}].filter.childCliqueNames[{k}]",
                    n,
                    f"not a clique of scaling group '{group.name}'",
                )
                for k, n in enumerate(names)
                if n not in group.clique_names
            ]
    return errors


# --- cliques ------------------------------------------------------------------------------------------


def _name_budget_error(path: str, value: str, pcs: str, clique: str, group: str | None) -> FieldError:
    length = naming.combined_name_length(pcs, clique, group)
    if group is None:
        parts = f"the PodCliqueSet '{pcs}' ({len(pcs)}) or the PodClique '{clique}' ({len(clique)})"
    else:
        parts = (
            f"the PodCliqueSet '{pcs}' ({len(pcs)}), the PodCliqueScalingGroup '{group}' ({len(group)}) "
            f"or the PodClique '{clique}' ({len(clique)})"
        )
    return invalid(
        path,
        value,
        f"combined resource name length {length} exceeds the {c.MAX_COMBINED_NAME_LENGTH}-character limit "
        f"(pod names and hostnames are built from these names): shorten {parts}",
    )


def _validate_autoscaling(
    path: str, scaling: AutoScalingConfig, replicas: int, min_available: int
) -> list[FieldError]:
    errors: list[FieldError] = []
    if scaling.min_replicas is None:
        errors.append(required(f"{path}.minReplicas", "minReplicas is required (it defaults to replicas)"))
        min_replicas = replicas
    else:
        min_replicas = scaling.min_replicas
        if min_replicas < min_available:
            errors.append(
                invalid(
                    f"{path}.minReplicas",
                    min_replicas,
                    f"must be greater than or equal to podCliqueSpec.minAvailable ({min_available}): the "
                    "autoscaler must not scale below the gang minimum",
                )
            )
    if scaling.max_replicas < min_replicas:
        errors.append(
            invalid(
                f"{path}.maxReplicas",
                scaling.max_replicas,
                f"must be greater than or equal to podCliqueSpec.minReplicas ({min_replicas})",
            )
        )
    if scaling.max_replicas < replicas:
        errors.append(
            invalid(
                f"{path}.maxReplicas",
                scaling.max_replicas,
                f"must be greater than or equal to replicas ({replicas})",
            )
        )
    return errors


def _validate_env(path: str, containers: object) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(containers, list):
        return errors
    for k, container in enumerate(containers):
        env = container.get("env") if isinstance(container, dict) else None
        if not isinstance(env, list):
            continue
        names = [str(e.get("name", "")) for e in env if isinstance(e, dict)]
        for j, name in enumerate(names):
            problems = k8s.env_var_name(name)
            if problems:
                errors.append(invalid(f"{path}[{k}].env[{j}].name", name, "; ".join(problems)))
        dups = [n for n, count in Counter(names).items() if count > 1]
        if dups:
            errors.append(
                duplicate(f"{path}[{k}].env", dups, "environment variable names must be unique per container")
            )
    return errors


def validate_clique(
    pcs: PodCliqueSet,
    i: int,
    clique: PodCliqueTemplateSpec,
    in_group: PodCliqueScalingGroupConfig | None,
    create: bool,
) -> Result:
    result = Result()
    errors = result.errors
    p = f"{T}.cliques[{i}]"
    startup = pcs.spec.template.clique_startup_type
    if not clique.name.strip():
        errors.append(required(f"{p}.name", "clique name is required"))
    else:
        problems = k8s.dns1123_label(clique.name)
        errors += [
            invalid(f"{p}.name", clique.name, f"invalid clique name: {pr}; it is part of pod hostnames")
            for pr in problems
        ]
        pcs_name = pcs.metadata.name
        if (
            in_group is None
            and pcs_name
            and naming.combined_name_length(pcs_name, clique.name) > c.MAX_COMBINED_NAME_LENGTH
        ):
            errors.append(_name_budget_error(f"{p}.name", clique.name, pcs_name, clique.name, None))
    errors += k8s.validate_labels(f"{p}.labels", clique.labels)
    errors += k8s.validate_annotations(f"{p}.annotations", clique.annotations)
    spec = clique.spec
    sp = f"{p}.spec"
    replicas = spec.replicas if spec.replicas is not None else 0
    if replicas <= 0:
        errors.append(invalid(f"{sp}.replicas", replicas, "must be greater than 0"))
    if spec.min_available is None:
        errors.append(required(f"{sp}.minAvailable", "minAvailable is required (it defaults to replicas)"))
    elif spec.min_available <= 0:
        errors.append(invalid(f"{sp}.minAvailable", spec.min_available, "must be greater than 0"))
    elif spec.min_available > replicas:
        errors.append(
            invalid(
                f"{sp}.minAvailable",
                spec.min_available,
                f"must not be greater than replicas ({replicas}): minAvailable is the number of pods that "
                "must be running for the gang to be healthy",
            )
        )
    after = spec.starts_after or []
    if startup == c.STARTUP_EXPLICIT:
        for j, dep in enumerate(after):
            if not dep.strip():
                errors.append(required(f"{sp}.startsAfter[{j}]", "clique dependency must not be empty"))
            elif dep == clique.name:
                errors.append(invalid(f"{sp}.startsAfter[{j}]", dep, "a clique cannot start after itself"))
        dups = [n for n, k in Counter(after).items() if k > 1]
        if dups:
            errors.append(duplicate(f"{sp}.startsAfter", dups))
    elif after:
        result.warnings.append(
            f"{sp}.startsAfter is ignored: it only applies with cliqueStartupType {c.STARTUP_EXPLICIT} "
            f"(this PodCliqueSet uses {startup})"
        )
    if spec.auto_scaling_config is not None:
        if in_group is not None:
            errors.append(
                invalid(
                    f"{sp}.autoScalingConfig",
                    clique.name,
                    f"autoScalingConfig is not allowed on a clique of scaling group '{in_group.name}': "
                    "scale the group instead (podCliqueScalingGroups[].scaleConfig)",
                )
            )
        else:
            errors += _validate_autoscaling(
                f"{sp}.autoScalingConfig", spec.auto_scaling_config, replicas, spec.min_available or 0
            )
    pod = spec.pod_spec or {}
    pp = f"{sp}.podSpec"
    policy = pod.get("restartPolicy")
    if policy and policy != "Always":
        result.warnings.append(
            f"{pp}.restartPolicy {policy!r} will be ignored: pods of a clique always restart (Always)"
        )
    if create and pod.get("topologySpreadConstraints"):
        errors.append(
            forbidden(
                f"{pp}.topologySpreadConstraints",
                "must not be set: placement is decided per gang (use topologyConstraint instead)",
            )
        )
    if create and pod.get("nodeName"):
        errors.append(
            forbidden(
                f"{pp}.nodeName", "must not be set: pods are placed by gang admission and the scheduler"
            )
        )
    errors += _validate_env(f"{pp}.containers", pod.get("containers"))
    errors += _validate_env(f"{pp}.initContainers", pod.get("initContainers"))
    if not pod.get("containers"):
        errors.append(required(f"{pp}.containers", "at least one container is required"))
    return result


def _tarjan_cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node, i.e. the dependency cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def _cycle_path(graph: Mapping[str, Sequence[str]], members: list[str]) -> list[str]:
    """One concrete cycle through a strongly connected component, for the message (a -> b -> a)."""
    member_set = set(members)
    start = members[0]
    path, seen = [start], {start}
    node = start
    while True:
        nxt = next(
            (n for n in graph.get(node, ()) if n in member_set and (n == start or n not in seen)), None
        )
        if nxt is None or nxt == start:
            return [*path, start]
        path.append(nxt)
        seen.add(nxt)
        node = nxt


def validate_dependencies(pcs: PodCliqueSet) -> list[FieldError]:
    if pcs.spec.template.clique_startup_type != c.STARTUP_EXPLICIT:
        return []
    cliques = _cliques(pcs)
    names = {q.name for q in cliques}
    graph = {q.name: [d for d in (q.spec.starts_after or []) if d != q.name] for q in cliques}
    errors: list[FieldError] = []
    for i, q in enumerate(cliques):
        for j, dep in enumerate(q.spec.starts_after or []):
            if dep.strip() and dep not in names:
                errors.append(
                    not_found(
                        f"{T}.cliques[{i}].spec.startsAfter[{j}]",
                        dep,
                        f"unknown clique: all clique dependencies must be cliques of this PodCliqueSet ({', '.join(sorted(names))})",
                    )
                )
    for members in _tarjan_cycles(graph):
        cycle = _cycle_path(graph, members)
        errors.append(
            invalid(
                f"{T}.cliques",
                members,
                "clique must not have circular dependencies: " + " -> ".join(cycle) + " (startsAfter)",
            )
        )
    return errors


# --- scaling groups -----------------------------------------------------------------------------------


def validate_scaling_groups(pcs: PodCliqueSet) -> list[FieldError]:
    errors: list[FieldError] = []
    cliques = {q.name: q for q in _cliques(pcs)}
    pcs_name = pcs.metadata.name or ""
    groups = _groups(pcs)
    for i, g in enumerate(groups):
        p = f"{T}.podCliqueScalingGroups[{i}]"
        if not g.name.strip():
            errors.append(required(f"{p}.name", "scaling group name is required"))
        else:
            errors += [
                invalid(f"{p}.name", g.name, f"invalid scaling group name: {pr}; it is part of pod hostnames")
                for pr in k8s.dns1123_label(g.name)
            ]
        if not g.clique_names:
            errors.append(required(f"{p}.cliqueNames", "a scaling group needs at least one clique"))
        unknown = [n for n in g.clique_names if n not in cliques]
        if unknown:
            errors.append(
                invalid(
                    f"{p}.cliqueNames",
                    ",".join(unknown),
                    f"unidentified PodClique names found: every member must be one of spec.template.cliques "
                    f"({', '.join(sorted(cliques))})",
                )
            )
        for j, name in enumerate(g.clique_names):
            too_long = name in cliques and pcs_name and g.name
            if too_long and naming.combined_name_length(pcs_name, name, g.name) > c.MAX_COMBINED_NAME_LENGTH:
                errors.append(_name_budget_error(f"{p}.cliqueNames[{j}]", name, pcs_name, name, g.name))
        replicas = g.replicas if g.replicas is not None else 1
        if g.replicas is not None and g.replicas <= 0:
            errors.append(invalid(f"{p}.replicas", g.replicas, "must be greater than 0"))
        if g.min_available is not None:
            if g.min_available <= 0:
                errors.append(invalid(f"{p}.minAvailable", g.min_available, "must be greater than 0"))
            elif g.min_available > replicas:
                errors.append(
                    invalid(
                        f"{p}.minAvailable",
                        g.min_available,
                        f"must not be greater than replicas ({replicas})",
                    )
                )
        if g.scale_config is not None:
            sc = g.scale_config
            min_available = g.min_available or 1
            if sc.min_replicas is not None and sc.min_replicas < min_available:
                errors.append(
                    invalid(
                        f"{p}.scaleConfig.minReplicas",
                        sc.min_replicas,
                        f"scaleConfig.minReplicas must be greater than or equal to minAvailable ({min_available})",
                    )
                )
            floor = sc.min_replicas if sc.min_replicas is not None else replicas
            if sc.max_replicas < floor:
                errors.append(
                    invalid(
                        f"{p}.scaleConfig.maxReplicas",
                        sc.max_replicas,
                        f"must be greater than or equal to scaleConfig.minReplicas ({floor})",
                    )
                )
    dups = [n for n, k in Counter(g.name for g in groups).items() if k > 1]
    if dups:
        errors.append(duplicate(f"{T}.podCliqueScalingGroups.name", dups))
    members = [n for g in groups for n in g.clique_names]
    dup_members = [n for n, k in Counter(members).items() if k > 1]
    if dup_members:
        errors.append(
            duplicate(
                f"{T}.podCliqueScalingGroups.cliqueNames",
                dup_members,
                "a clique may belong to at most one scaling group",
            )
        )
    return errors


# --- whole object -------------------------------------------------------------------------------------


def _validate_template_fields(pcs: PodCliqueSet, create: bool, ctx: Context) -> Result:
    result = Result()
    errors = result.errors
    template = pcs.spec.template
    if (pcs.spec.replicas or 0) < 0:
        errors.append(invalid("spec.replicas", pcs.spec.replicas, "must be greater than or equal to 0"))
    startup = template.clique_startup_type
    if startup is None:
        errors.append(required(f"{T}.cliqueStartupType", "field is required"))
    elif startup not in STARTUP_TYPES:
        errors.append(not_supported(f"{T}.cliqueStartupType", startup, STARTUP_TYPES))
    errors += validate_resource_sharing(pcs)
    cliques = _cliques(pcs)
    if not cliques:
        errors.append(required(f"{T}.cliques", "at least one PodClique must be defined"))
    group_of = _group_of(pcs)
    for i, clique in enumerate(cliques):
        result.extend(validate_clique(pcs, i, clique, group_of.get(clique.name), create))
    dups = [n for n, k in Counter(q.name for q in cliques).items() if k > 1]
    if dups:
        errors.append(duplicate(f"{T}.cliques.name", dups, "clique names must be unique"))
    roles = [q.spec.role_name or "" for q in cliques]
    dup_roles = [n for n, k in Counter(roles).items() if k > 1]
    if dup_roles:
        errors.append(duplicate(f"{T}.cliques.spec.roleName", dup_roles, "role names must be unique"))
    errors += validate_dependencies(pcs)
    errors += validate_scaling_groups(pcs)
    errors += _validate_termination_delay(template.termination_delay)
    errors += validate_scheduler_names(pcs, ctx.config)
    return result


def _validate_termination_delay(value: str | None) -> list[FieldError]:
    path = f"{T}.terminationDelay"
    if value is None:
        return [required(path, "terminationDelay is required")]
    try:
        seconds = k8s.parse_duration(value)
    except ValueError:
        return [invalid(path, value, "must be a duration such as 30s, 10m or 4h")]
    if seconds <= 0:
        return [invalid(path, value, "terminationDelay must be greater than 0")]
    return []


def resolve_scheduler_names(pcs: PodCliqueSet, config: OperatorConfiguration) -> list[str]:
    """Each clique's schedulerName, empty meaning the default profile's (non-strings shown as JSON)."""
    default = config.scheduler.default_profile_name
    names = []
    for q in _cliques(pcs):
        name = (q.spec.pod_spec or {}).get("schedulerName")
        names.append(default if name in (None, "") else name if isinstance(name, str) else format_value(name))
    return names


def validate_scheduler_names(pcs: PodCliqueSet, config: OperatorConfiguration) -> list[FieldError]:
    names = list(dict.fromkeys(resolve_scheduler_names(pcs, config)))
    path = f"{T}.cliques.spec.podSpec.schedulerName"
    if len(names) > 1:
        return [invalid(path, ", ".join(names), "the schedulerName of all cliques has to be the same")]
    if names and names[0] not in config.scheduler.enabled:
        return [
            invalid(
                path,
                names[0],
                "schedulerName must be an enabled scheduler backend; enabled in OperatorConfiguration: "
                + ", ".join(config.scheduler.enabled),
            )
        ]
    return []


def validate_create(pcs: PodCliqueSet, ctx: Context | None = None) -> Result:
    ctx = ctx or Context()
    result = topology.validate_on_create(pcs, ctx.config, ctx.topologies)
    result.errors += validate_metadata(pcs)
    result.extend(_validate_template_fields(pcs, True, ctx))
    result.errors += validate_mnnvl_create(pcs, ctx.config)
    if result.ok:
        result.extend(validate_backend(pcs, ctx.config, resolve_scheduler_names(pcs, ctx.config)))
    return result


def validate_update(new: PodCliqueSet, old: PodCliqueSet, ctx: Context | None = None) -> Result:
    """`old` is compared with its defaults applied: an object stored before our webhooks existed (or by
    Grove, which leaves roleName empty) is judged by the values the operator acts on."""
    ctx = ctx or Context()
    old = PodCliqueSet.from_dict(default_podcliqueset(old.to_dict()))
    result = Result()
    result.errors += validate_metadata(new)
    result.extend(_validate_template_fields(new, False, ctx))
    result.errors += validate_mnnvl_update(new, old)
    if result.ok:
        result.extend(validate_backend(new, ctx.config, resolve_scheduler_names(new, ctx.config)))
    if not result.ok:
        return result
    result.extend(topology.validate_on_update(new, old, ctx.config, ctx.topologies))
    result.errors += validate_immutable(new, old)
    return result


# --- update: immutable fields -------------------------------------------------------------------------


def _immutable(path: str, new: object, old: object, what: str) -> list[FieldError]:
    if new == old:
        return []
    return [
        invalid(
            path,
            new,
            f"field is immutable: {what} cannot change after creation (was {k8s_repr(old)}); "
            "delete and recreate the PodCliqueSet to change it",
        )
    ]


def k8s_repr(value: object) -> str:
    return format_value(
        value.model_dump(mode="json", by_alias=True, exclude_none=True)
        if hasattr(value, "model_dump")
        else value
    )


def validate_immutable(new: PodCliqueSet, old: PodCliqueSet) -> list[FieldError]:
    errors: list[FieldError] = []
    nt, ot = new.spec.template, old.spec.template
    new_cliques, old_cliques = _cliques(new), _cliques(old)
    old_by_name = {q.name: (i, q) for i, q in enumerate(old_cliques)}
    if len(new_cliques) != len(old_cliques):
        errors.append(
            forbidden(
                f"{T}.cliques",
                f"not allowed to change clique composition: cliques cannot be added or removed "
                f"(had {len(old_cliques)}: {', '.join(old_by_name)}; now {len(new_cliques)})",
            )
        )
    for i, q in enumerate(new_cliques):
        if q.name not in old_by_name:
            errors.append(
                forbidden(
                    f"{T}.cliques[{i}].name",
                    f"not allowed to change clique composition, new clique name '{q.name}' is not allowed",
                )
            )
    if ot.clique_startup_type in (c.STARTUP_IN_ORDER, c.STARTUP_EXPLICIT):
        for i, (nq, oq) in enumerate(zip(new_cliques, old_cliques, strict=False)):
            if nq.name != oq.name:
                errors.append(
                    invalid(
                        f"{T}.cliques[{i}]",
                        nq.name,
                        f"clique order cannot be changed when StartupType is InOrder or Explicit: expected "
                        f"'{oq.name}' at position {i}, got '{nq.name}'",
                    )
                )
    for i, q in enumerate(new_cliques):
        if q.name not in old_by_name:
            continue
        oq = old_by_name[q.name][1]
        p = f"{T}.cliques[{i}]"
        errors += _immutable(f"{p}.spec.roleName", q.spec.role_name, oq.spec.role_name, "roleName")
        errors += _immutable(
            f"{p}.spec.minAvailable", q.spec.min_available, oq.spec.min_available, "minAvailable"
        )
        errors += _immutable(
            f"{p}.spec.startsAfter", q.spec.starts_after, oq.spec.starts_after, "startsAfter"
        )
        errors += _immutable(
            f"{p}.spec.podSpec.schedulerName",
            (q.spec.pod_spec or {}).get("schedulerName"),
            (oq.spec.pod_spec or {}).get("schedulerName"),
            "schedulerName",
        )
        errors += _immutable(
            f"{p}.resourceSharing", q.resource_sharing, oq.resource_sharing, "resourceSharing"
        )
    errors += _immutable(
        f"{T}.cliqueStartupType", nt.clique_startup_type, ot.clique_startup_type, "cliqueStartupType"
    )
    new_groups, old_groups = _groups(new), _groups(old)
    if len(new_groups) != len(old_groups):
        errors.append(
            forbidden(
                f"{T}.podCliqueScalingGroups",
                f"not allowed to add or remove PodCliqueScalingGroupConfigs (had {len(old_groups)}, now {len(new_groups)})",
            )
        )
    else:
        old_groups_by_name = {g.name: g for g in old_groups}
        for i, g in enumerate(new_groups):
            p = f"{T}.podCliqueScalingGroups[{i}]"
            og = old_groups_by_name.get(g.name)
            if og is None:
                errors.append(
                    forbidden(
                        f"{p}.name",
                        f"not allowed to change scaling group composition, new scaling group name '{g.name}' is not allowed",
                    )
                )
                continue
            errors += _immutable(f"{p}.cliqueNames", g.clique_names, og.clique_names, "cliqueNames")
            errors += _immutable(f"{p}.minAvailable", g.min_available, og.min_available, "minAvailable")
            errors += _immutable(
                f"{p}.resourceSharing", g.resource_sharing, og.resource_sharing, "resourceSharing"
            )
    errors += _immutable(
        f"{T}.resourceClaimTemplates",
        nt.resource_claim_templates or None,
        ot.resource_claim_templates or None,
        "resourceClaimTemplates",
    )
    errors += _immutable(
        f"{T}.resourceSharing", nt.resource_sharing or None, ot.resource_sharing or None, "resourceSharing"
    )
    return errors

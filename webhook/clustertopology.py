"""ClusterTopologyBinding validation (docs/admission.md), as a pure function and an admission handler.

Same rules on CREATE and UPDATE (the new object only): level domains unique, level keys unique,
scheduler bindings unique per scheduler, and each must name a scheduler backend that is enabled in the
OperatorConfiguration and implements topology-aware scheduling. Removing levels is not blocked here
(the PodCliqueSet reconciler reports it with the TopologyLevelsUnavailable condition).

Deliberate difference: Grove reports binding errors under `spec.schedulerTopologyReferences[i]` although
the field is `schedulerTopologyBindings`; we use the field's real name so the path can be followed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from grove_api.fielderrors import FieldError, aggregate, duplicate, invalid, required
from grove_api.operatorconfig import OperatorConfiguration
from webhook.admission import AdmissionRequest, AdmissionResponse, Handler, allow, deny

# Scheduler backends that implement topology-aware scheduling (Grove: only KAI publishes topologies).
TOPOLOGY_AWARE_BACKENDS: tuple[str, ...] = ("kai-scheduler",)


def _entries(spec: dict[str, Any], field: str, errors: list[FieldError]) -> list[tuple[int, dict[str, Any]]]:
    """The object entries of list `spec.<field>`, by index; errors for a field or entries of another
    type (the CRD's schema refuses those first; a review sent straight to the webhook need not)."""
    items = spec.get(field) or []
    if not isinstance(items, list):
        errors.append(invalid(f"spec.{field}", type(items).__name__, "must be a list"))
        return []
    out = []
    for i, item in enumerate(items):
        if isinstance(item or {}, dict):
            out.append((i, item or {}))
        else:
            errors.append(invalid(f"spec.{field}[{i}]", type(item).__name__, "must be an object"))
    return out


def _string(entry: dict[str, Any], field: str, path: str, errors: list[FieldError]) -> str | None:
    value = entry.get(field)
    if value is None or isinstance(value, str):
        return value
    errors.append(invalid(f"{path}.{field}", type(value).__name__, "must be a string"))
    return None


def validate(
    obj: dict[str, Any],
    enabled_backends: Iterable[str],
    topology_aware: Iterable[str] = TOPOLOGY_AWARE_BACKENDS,
) -> list[FieldError]:
    """Field errors of a ClusterTopologyBinding (empty when valid)."""
    enabled = tuple(enabled_backends)
    aware = tuple(topology_aware)
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return [invalid("spec", type(spec).__name__, "must be an object")]
    errors: list[FieldError] = []
    seen_domains: set[str] = set()
    seen_keys: set[str] = set()
    for i, level in _entries(spec, "levels", errors):
        domain = _string(level, "domain", f"spec.levels[{i}]", errors)
        key = _string(level, "key", f"spec.levels[{i}]", errors)
        if domain in seen_domains:
            errors.append(duplicate(f"spec.levels[{i}].domain", domain))
        if key in seen_keys:
            errors.append(duplicate(f"spec.levels[{i}].key", key))
        if domain is not None:
            seen_domains.add(domain)
        if key is not None:
            seen_keys.add(key)
    seen_schedulers: set[str] = set()
    usable = [b for b in enabled if b in aware]
    for i, binding in _entries(spec, "schedulerTopologyBindings", errors):
        path = f"spec.schedulerTopologyBindings[{i}].schedulerName"
        name = _string(binding, "schedulerName", f"spec.schedulerTopologyBindings[{i}]", errors)
        if not name:
            errors.append(required(path, "the scheduler backend to publish this topology to"))
            continue
        if name in seen_schedulers:
            errors.append(duplicate(path, name))
            continue
        seen_schedulers.add(name)
        if name not in enabled:
            errors.append(
                invalid(
                    path,
                    name,
                    "scheduler backend is not enabled in Grove "
                    f"(enabled in the OperatorConfiguration's scheduler.profiles: {', '.join(enabled) or 'none'})",
                )
            )
        elif name not in aware:
            hint = (
                f"backends that can: {', '.join(usable)}"
                if usable
                else f"none of the enabled backends ({', '.join(enabled)}) can; enable one of "
                f"{', '.join(aware)} in the OperatorConfiguration, or remove schedulerTopologyBindings"
            )
            errors.append(
                invalid(
                    path, name, f"scheduler backend does not implement topology-aware scheduling ({hint})"
                )
            )
    return errors


def handler(config: OperatorConfiguration) -> Handler:
    """The admission handler for `paths.VALIDATE_CLUSTERTOPOLOGY`."""
    enabled = config.scheduler.enabled

    async def handle(request: AdmissionRequest) -> AdmissionResponse:
        if request.operation not in ("CREATE", "UPDATE"):
            return allow()
        if request.object is None:
            return deny(
                "could not decode the ClusterTopologyBinding: request.object is missing",
                code=400,
                reason="BadRequest",
            )
        errors = validate(request.object, enabled)
        return deny(aggregate(errors)) if errors else allow()

    return handle

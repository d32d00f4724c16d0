"""The grove.io/mnnvl-group annotation (multi-node NVLink grouping; docs/admission.md, "The MNNVL
annotation")."""

from __future__ import annotations

from collections.abc import Iterator

from grove_api import constants as c
from grove_api.fielderrors import FieldError, forbidden, invalid
from grove_api.models.podcliqueset import PodCliqueSet
from grove_api.operatorconfig import OperatorConfiguration

from . import k8s

OPT_OUT = "none"
T = "spec.template"


def _annotated(pcs: PodCliqueSet) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(kind:name key, annotations path, annotations) of the PCS, its cliques and its scaling groups."""
    yield "pcs", "metadata.annotations", pcs.metadata.annotations or {}
    for i, q in enumerate(pcs.spec.template.cliques or []):
        yield f"clique:{q.name}", f"{T}.cliques[{i}].annotations", q.annotations or {}
    for i, g in enumerate(pcs.spec.template.pod_clique_scaling_groups or []):
        yield f"group:{g.name}", f"{T}.podCliqueScalingGroups[{i}].annotations", g.annotations or {}


def validate_mnnvl_create(pcs: PodCliqueSet, config: OperatorConfiguration) -> list[FieldError]:
    errors: list[FieldError] = []
    for _, path, notes in _annotated(pcs):
        if c.ANNOTATION_MNNVL_GROUP not in notes:
            continue
        value = notes[c.ANNOTATION_MNNVL_GROUP]
        p = f"{path}.{c.ANNOTATION_MNNVL_GROUP}"
        if value == "":
            errors.append(
                invalid(p, value, "mnnvl-group value must not be empty (use a group name, or 'none')")
            )
        elif value != OPT_OUT:
            problems = k8s.dns1123_label(value)
            if problems:
                errors.append(
                    invalid(
                        p,
                        value,
                        f"mnnvl-group value {value!r} is not a valid DNS-1123 label: {'; '.join(problems)}",
                    )
                )
            elif not config.network.auto_mnnvl_enabled:
                errors.append(
                    invalid(
                        p,
                        value,
                        "MNNVL is not enabled in the operator configuration. Either enable MNNVL globally or "
                        f"remove the {c.ANNOTATION_MNNVL_GROUP} annotation",
                    )
                )
    return errors


def validate_mnnvl_update(new: PodCliqueSet, old: PodCliqueSet) -> list[FieldError]:
    errors: list[FieldError] = []
    before = {key: notes for key, _, notes in _annotated(old)}
    for key, path, notes in _annotated(new):
        if key not in before:
            continue
        was, now = before[key].get(c.ANNOTATION_MNNVL_GROUP), notes.get(c.ANNOTATION_MNNVL_GROUP)
        p = f"{path}.{c.ANNOTATION_MNNVL_GROUP}"
        if was is None and now is not None:
            errors.append(forbidden(p, "annotation cannot be added after creation (it is immutable)"))
        elif was is not None and now is None:
            errors.append(forbidden(p, "annotation cannot be removed after creation (it is immutable)"))
        elif was != now:
            errors.append(forbidden(p, f"annotation is immutable: cannot change from {was!r} to {now!r}"))
    return errors

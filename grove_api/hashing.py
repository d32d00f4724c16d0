"""Content hashes of pod templates: `grove.io/pod-template-hash` and the PodCliqueSet generation hash.

What is hashed (Grove's construction; docs/api.md, "Hashes"): for each clique template a PodTemplateSpec
``{"metadata": {"labels", "annotations"}, "spec": podSpec}`` whose ``podSpec.priorityClassName`` is
**overwritten** by the PodCliqueSet template's ``priorityClassName`` (removed when that is empty). Nothing
else of the clique enters the hash: replicas, minAvailable, startsAfter, autoScalingConfig, topology and
resource sharing can change without a rollout, and the clique's own ``podSpec.priorityClassName`` is
invisible. The PodCliqueSet generation hash is the same construction over all cliques' templates, in
template order.

How (ours; Grove hashes a Go struct dump with FNV-64a, which cannot be reproduced outside Go):
the templates are normalised (keys whose value is null, ``{}`` or ``[]`` are dropped at every level, so
that a manifest and its apiserver round trip hash alike; integral floats become ints), serialised as
canonical JSON (sorted keys, no whitespace, UTF-8), prefixed with a versioned domain tag, and hashed with
SHA-256; the first 16 hex digits are the hash (a valid label value).

**Compatibility contract.** The hash of an unchanged template must never change across operator versions:
pods carry it in a label and the PodCliqueSet in ``status.currentGenerationHash``, so a different value for
the same template would make an upgraded operator see every workload as outdated and restart it. The
normalisation, the serialisation, the domain tags and the length below are therefore frozen; the golden
values in ``tests/unit/test_hashing.py`` guard them. A deliberate change needs a new tag (``…/v2``) *and* a
migration that accepts both hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

HASH_LENGTH: Final = 16
_POD_TEMPLATE_TAG: Final = b"grove-py/pod-template-hash/v1\n"
_GENERATION_TAG: Final = b"grove-py/podcliqueset-generation-hash/v1\n"


def _normalise(value: Any) -> Any:
    """Drop null/empty-object/empty-list values (recursively) and turn integral floats into ints."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            norm = _normalise(item)
            if norm is None or norm == {} or norm == []:
                continue
            out[str(key)] = norm
        return out
    if isinstance(value, (list, tuple)):
        return [_normalise(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def pod_template_spec(clique_template: Mapping[str, Any], priority_class_name: str | None) -> dict[str, Any]:
    """The PodTemplateSpec that is hashed for one clique template (see the module docstring)."""
    spec = clique_template.get("spec") or {}
    pod_spec = dict(spec.get("podSpec") or {})
    if priority_class_name:
        pod_spec["priorityClassName"] = priority_class_name
    else:
        pod_spec.pop("priorityClassName", None)
    return {
        "metadata": {
            "labels": dict(clique_template.get("labels") or {}),
            "annotations": dict(clique_template.get("annotations") or {}),
        },
        "spec": pod_spec,
    }


def _digest(tag: bytes, payload: Any) -> str:
    canonical = json.dumps(
        _normalise(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(tag + canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def pod_template_hash(clique_template: Mapping[str, Any], priority_class_name: str | None) -> str:
    """`grove.io/pod-template-hash` of a clique template (``pcs.spec.template.cliques[i]``, camelCase)."""
    return _digest(_POD_TEMPLATE_TAG, pod_template_spec(clique_template, priority_class_name))


def clique_template_hashes(pcs: Mapping[str, Any]) -> dict[str, str]:
    """Pod-template hash of every clique of a PodCliqueSet, by clique name."""
    template = (pcs.get("spec") or {}).get("template") or {}
    priority = template.get("priorityClassName")
    return {str(q.get("name")): pod_template_hash(q, priority) for q in _cliques(template)}


def generation_hash(pcs: Mapping[str, Any]) -> str:
    """`status.currentGenerationHash` of a PodCliqueSet: all cliques' PodTemplateSpecs in template order."""
    template = (pcs.get("spec") or {}).get("template") or {}
    priority = template.get("priorityClassName")
    return _digest(_GENERATION_TAG, [pod_template_spec(q, priority) for q in _cliques(template)])


def _cliques(template: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    cliques = template.get("cliques") or []
    return [q for q in cliques if isinstance(q, Mapping)]

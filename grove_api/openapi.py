"""Kubernetes OpenAPI definitions (vendored) turned into structural CRD schemas.

The CRDs embed core types (PodSpec, MetricSpec, ResourceClaimTemplateSpec) in full, as controller-gen does
for Grove, so that `kubectl explain pcs.spec.template.cliques.spec.podSpec` documents them. The definitions
come from a real kube-apiserver's /openapi/v3 (see tools/vendor_openapi.py) and are stored in
`grove_api/openapi/definitions.json`; this module inlines `$ref`s and keeps only what a structural CRD
schema may contain.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

# Keys a CRD's JSONSchemaProps accepts and that we keep from the Kubernetes OpenAPI.
_KEPT_KEYS = frozenset(
    {
        "description",
        "type",
        "format",
        "maximum",
        "minimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "required",
        "nullable",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
    }
)
# Types that are "a number or a string" on the wire.
_INT_OR_STRING_DEFS = frozenset(
    {"io.k8s.apimachinery.pkg.util.intstr.IntOrString", "io.k8s.apimachinery.pkg.api.resource.Quantity"}
)
_REF_PREFIX = "#/components/schemas/"


@cache
def definitions() -> dict[str, Any]:
    text = resources.files("grove_api").joinpath("openapi/definitions.json").read_text()
    defs: dict[str, Any] = json.loads(text)
    return defs


def _int_or_string(description: str | None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    }
    if description:
        schema["description"] = description
    return schema


def inline(name: str) -> dict[str, Any]:
    """The definition `name` with every reference inlined, as a structural CRD schema."""
    return _convert({"$ref": _REF_PREFIX + name}, definitions(), ())


def _convert(schema: dict[str, Any], defs: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None and len(schema.get("allOf", ())) == 1:
        ref = schema["allOf"][0].get("$ref")
    if ref is not None:
        name = ref.removeprefix(_REF_PREFIX)
        description = schema.get("description") or defs[name].get("description")
        if name in _INT_OR_STRING_DEFS:
            return _int_or_string(description)
        if name in stack:  # a recursive type: keep it open rather than expand forever
            out: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        else:
            out = _convert(defs[name], defs, (*stack, name))
        if description:
            out["description"] = description
        return out
    if schema.get("format") == "int-or-string":
        return _int_or_string(schema.get("description"))
    out = {k: v for k, v in schema.items() if k in _KEPT_KEYS}
    # Meaningful scalar defaults only (e.g. protocol: TCP). Go zero values ("", 0, false) and "{}" on
    # structs are artefacts of the generator; as CRD defaults they would fill objects with empty values.
    if schema.get("default") not in (None, "", 0, False) and not isinstance(schema["default"], dict | list):
        out["default"] = schema["default"]
    if "properties" in schema:
        out["properties"] = {k: _convert(v, defs, stack) for k, v in schema["properties"].items()}
        out.setdefault("type", "object")
    if "items" in schema:
        out["items"] = _convert(schema["items"], defs, stack)
        _default_list_map_keys(out, schema["items"], defs)
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(schema["additionalProperties"], defs, stack)
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["type"] = "object"
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _resolved_properties(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref") or next((s.get("$ref") for s in schema.get("allOf", ())), None)
    target = defs[ref.removeprefix(_REF_PREFIX)] if ref else schema
    props: dict[str, Any] = target.get("properties", {})
    return props


def _default_list_map_keys(out: dict[str, Any], raw_items: dict[str, Any], defs: dict[str, Any]) -> None:
    """A key of a map-type list must be required or defaulted in a CRD: restore the zero default we
    dropped (imagePullSecrets[].name: "")."""
    items = out["items"]
    raw_props = _resolved_properties(raw_items, defs)
    for key in out.get("x-kubernetes-list-map-keys", ()):
        prop = items.get("properties", {}).get(key)
        if prop is None or key in items.get("required", ()) or "default" in prop:
            continue
        if "default" in raw_props.get(key, {}):
            prop["default"] = raw_props[key]["default"]
        else:
            items.setdefault("required", []).append(key)

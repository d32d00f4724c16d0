"""The CRD YAML under deploy/helm/grove-py/crds is generated from the models and documents every field."""

from typing import Any

import pytest
import yaml

from grove_api import crdgen
from grove_api.kinds import ALL_KINDS, Kind
from grove_api.models import PodCliqueSet
from tests.maximal import maximal
from tests.samples import ROOT

CRD_DIR = ROOT / "deploy" / "helm" / "grove-py" / "crds"


def committed(kind: Kind) -> dict[str, Any]:
    doc = yaml.safe_load((CRD_DIR / crdgen.crd_filename(kind)).read_text())
    assert isinstance(doc, dict)
    return doc


def test_committed_crds_are_generated_from_the_models() -> None:
    assert crdgen.main(["--check"]) == 0, "deploy/helm/grove-py/crds is stale: run `make crds`"


def _properties(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, prop in schema.get("properties", {}).items():
        found.append((f"{path}.{name}", prop))
        found += _properties(prop, f"{path}.{name}")
        if "items" in prop:
            found += _properties(prop["items"], f"{path}.{name}[]")
    return found


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_every_field_has_a_description(kind: Kind) -> None:
    schema = committed(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = [p for p, prop in _properties(schema) if p != ".metadata" and not prop.get("description")]
    assert missing == []


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_names_subresources_and_columns(kind: Kind) -> None:
    crd = committed(kind)
    version = crd["spec"]["versions"][0]
    assert crd["metadata"]["name"] == kind.crd_name
    assert crd["spec"]["names"]["shortNames"] == list(kind.short_names)
    assert version["subresources"]["status"] == {}
    assert ("scale" in version["subresources"]) == (kind.scale is not None)
    assert version["additionalPrinterColumns"][-1]["name"] == "Age"


def test_short_names_and_scale_paths_are_groves() -> None:
    by_kind = {k.kind: committed(k) for k in ALL_KINDS}
    assert {k: d["spec"]["names"]["shortNames"] for k, d in by_kind.items()} == {
        "PodCliqueSet": ["pcs"],
        "PodClique": ["pclq"],
        "PodCliqueScalingGroup": ["pcsg"],
        "PodGang": ["pg"],
        "ClusterTopologyBinding": ["ct"],
    }
    scale = by_kind["PodCliqueScalingGroup"]["spec"]["versions"][0]["subresources"]["scale"]
    assert scale["labelSelectorPath"] == ".status.selector"
    scale = by_kind["PodClique"]["spec"]["versions"][0]["subresources"]["scale"]
    assert scale["labelSelectorPath"] == ".status.hpaPodSelector"
    assert by_kind["ClusterTopologyBinding"]["spec"]["scope"] == "Cluster"


def test_every_kind_is_in_the_grove_category() -> None:
    """`kubectl get grove` lists all five kinds at once (Grove's CRDs have no category)."""
    assert {k.kind: committed(k)["spec"]["names"].get("categories") for k in ALL_KINDS} == {
        "PodCliqueSet": ["grove"],
        "PodClique": ["grove"],
        "PodCliqueScalingGroup": ["grove"],
        "PodGang": ["grove"],
        "ClusterTopologyBinding": ["grove"],
    }


def _schema_paths(schema: dict[str, Any], path: str = "") -> set[str]:
    """Property paths of a schema, not descending into embedded Kubernetes types."""
    paths = set()
    for name, prop in schema.get("properties", {}).items():
        paths.add(f"{path}.{name}")
        if name in ("podSpec", "templateSpec", "metadata"):
            continue
        target = prop.get("items", prop) if prop.get("type") == "array" else prop
        if name != "metrics":
            paths |= _schema_paths(target, f"{path}.{name}")
    return paths


def _doc_paths(doc: Any, path: str = "") -> set[str]:
    paths = set()
    if isinstance(doc, dict):
        for name, value in doc.items():
            paths.add(f"{path}.{name}")
            if name in ("podSpec", "templateSpec", "metadata", "metrics", "labels", "annotations"):
                continue
            paths |= _doc_paths(value, f"{path}.{name}")
    elif isinstance(doc, list) and doc:
        paths |= _doc_paths(doc[0], path)
    return paths


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_model_fields_and_schema_properties_agree(kind: Kind) -> None:
    """Independent of the generator: a maximal model instance touches exactly the schema's properties."""
    schema = committed(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    doc = maximal(kind.model)
    schema_paths = _schema_paths(schema) - {".apiVersion", ".kind"}
    doc_paths = _doc_paths(doc) - {".apiVersion", ".kind"}
    skipped = {p for p in schema_paths if p.endswith(".packDomain")}
    assert doc_paths == schema_paths - skipped


def test_maximal_podcliqueset_round_trips_through_the_model() -> None:
    doc = maximal(PodCliqueSet)
    assert PodCliqueSet.from_dict(doc).to_dict() == doc

"""Defaulting (docs/admission.md; Grove's TestDefault* cases), with our deliberate fixes of Grove's quirks."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from grove_api.defaulting import default_podcliqueset
from tests.admission_corpus import CASES
from tests.builders import clique, group, pcs
from tests.samples import all_samples, seed_manifests


def cliques_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["cliques"]


def test_replicas_defaults_to_1_when_0() -> None:
    out = default_podcliqueset(pcs(cliques=[clique("a", replicas=0, min_available=None)]))
    assert cliques_of(out)[0]["spec"]["replicas"] == 1


def test_min_available_defaults_to_defaulted_replicas() -> None:
    """Grove reads replicas before defaulting it (minAvailable 0, then refused); we read it after."""
    out = default_podcliqueset(pcs(cliques=[clique("a", replicas=None, min_available=None)]))
    assert (cliques_of(out)[0]["spec"]["replicas"], cliques_of(out)[0]["spec"]["minAvailable"]) == (1, 1)
    out = default_podcliqueset(pcs(cliques=[clique("a", replicas=3, min_available=None)]))
    assert cliques_of(out)[0]["spec"]["minAvailable"] == 3


def test_min_available_is_not_overridden() -> None:
    out = default_podcliqueset(pcs(cliques=[clique("a", replicas=3, min_available=2)]))
    assert cliques_of(out)[0]["spec"]["minAvailable"] == 2


def test_autoscaling_min_replicas() -> None:
    out = default_podcliqueset(pcs(cliques=[clique("a", replicas=2, autoscaling={"maxReplicas": 5})]))
    assert cliques_of(out)[0]["spec"]["autoScalingConfig"] == {"maxReplicas": 5, "minReplicas": 2}
    out = default_podcliqueset(pcs(cliques=[clique("a", autoscaling={"minReplicas": 1, "maxReplicas": 5})]))
    assert cliques_of(out)[0]["spec"]["autoScalingConfig"]["minReplicas"] == 1
    out = default_podcliqueset(pcs(cliques=[clique("a")]))
    assert "autoScalingConfig" not in cliques_of(out)[0]["spec"]


def test_pod_spec_defaults() -> None:
    out = default_podcliqueset(pcs(cliques=[clique("a", pod={"containers": [{"name": "c", "image": "i"}]})]))
    pod = cliques_of(out)[0]["spec"]["podSpec"]
    assert (pod["restartPolicy"], pod["terminationGracePeriodSeconds"]) == ("Always", 30)
    kept = {"containers": [], "restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 5}
    out = default_podcliqueset(pcs(cliques=[clique("a", pod=dict(kept))]))
    assert cliques_of(out)[0]["spec"]["podSpec"] == kept


def test_role_name_defaults_to_clique_name() -> None:
    out = default_podcliqueset(pcs(cliques=[clique("prefill", role=""), clique("decode", role="dec")]))
    assert [q["spec"]["roleName"] for q in cliques_of(out)] == ["prefill", "dec"]


def test_scaling_groups() -> None:
    doc = pcs(
        cliques=[clique("a"), clique("b")],
        groups=[
            group("g", ["a"], replicas=3, min_available=None, scaleConfig={"maxReplicas": 6}),
            group(
                "h",
                ["b"],
                replicas=None,
                min_available=None,
                scaleConfig={"minReplicas": 2, "maxReplicas": 4},
            ),
        ],
    )
    g, h = default_podcliqueset(doc)["spec"]["template"]["podCliqueScalingGroups"]
    assert (g["replicas"], g["minAvailable"], g["scaleConfig"]["minReplicas"]) == (3, 1, 3)
    assert (h["replicas"], h["minAvailable"], h["scaleConfig"]["minReplicas"]) == (1, 1, 2)
    assert "podCliqueScalingGroups" not in default_podcliqueset(pcs())["spec"]["template"]


def test_template_and_metadata_defaults() -> None:
    doc = pcs(termination_delay=None, startup=None, namespace="")
    out = default_podcliqueset(doc)
    template = out["spec"]["template"]
    assert template["terminationDelay"] == "4h0m0s"
    assert template["headlessServiceConfig"] == {"publishNotReadyAddresses": True}
    assert template["cliqueStartupType"] == "CliqueStartupTypeAnyOrder"
    assert out["metadata"]["namespace"] == "default"
    kept = default_podcliqueset(
        pcs(termination_delay="10s", headlessServiceConfig={"publishNotReadyAddresses": False})
    )
    assert kept["spec"]["template"]["terminationDelay"] == "10s"
    assert kept["spec"]["template"]["headlessServiceConfig"] == {"publishNotReadyAddresses": False}


def test_input_is_not_modified() -> None:
    doc = pcs(cliques=[clique("a", replicas=None, min_available=None)])
    before = copy.deepcopy(doc)
    default_podcliqueset(doc)
    assert doc == before


DOCS = {**{f"sample {k}": v for k, v in all_samples().items()}, **{f"case {c.name}": c.obj for c in CASES}}


@pytest.mark.parametrize("name", sorted(DOCS))
def test_idempotent(name: str) -> None:
    once = default_podcliqueset(DOCS[name])
    assert default_podcliqueset(once) == once
    assert jsonpatch.make_patch(once, default_podcliqueset(once)).patch == []


@pytest.mark.parametrize("name", sorted(seed_manifests()))
def test_seed_samples_get_groves_defaults(name: str) -> None:
    """What Grove's webhook adds to its own samples, and (roleName) what we add beyond it."""
    doc = seed_manifests()[name]
    out = default_podcliqueset(doc)
    template = out["spec"]["template"]
    assert template["terminationDelay"] == "4h0m0s"
    assert template["headlessServiceConfig"] == {"publishNotReadyAddresses": True}
    for original, q in zip(doc["spec"]["template"]["cliques"], template["cliques"], strict=True):
        spec = q["spec"]
        assert spec["podSpec"]["restartPolicy"] == "Always"
        assert spec["podSpec"]["terminationGracePeriodSeconds"] == 30
        assert spec["replicas"] == original["spec"].get("replicas", 1)
        assert spec["minAvailable"] == original["spec"].get("minAvailable", spec["replicas"])
        assert spec["roleName"] == original["spec"].get("roleName", q["name"])
    for original, g in zip(
        doc["spec"]["template"].get("podCliqueScalingGroups", []),
        template.get("podCliqueScalingGroups", []),
        strict=True,
    ):
        assert g["replicas"] == original.get("replicas", 1)
        assert g["minAvailable"] == original.get("minAvailable", 1)

"""The pydantic models read every manifest of Grove's docs and write it back unchanged."""

from typing import Any

import pytest

from grove_api.models import PodClique, PodCliqueSet, PodGang
from tests.samples import all_samples, runnable_samples, seed_manifests

SEEDS = seed_manifests()
SAMPLES = all_samples()


def test_seeds_were_found() -> None:
    # Guard: if the seeds moved, the parametrised round trips below would silently test nothing.
    assert len(SEEDS) == 8
    assert len(SAMPLES) == 7


@pytest.mark.parametrize("key", sorted(SEEDS))
def test_seed_manifest_round_trips(key: str) -> None:
    doc = SEEDS[key]
    assert PodCliqueSet.from_dict(doc).to_dict() == doc


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_sample_round_trips(key: str) -> None:
    doc = SAMPLES[key]
    assert PodCliqueSet.from_dict(doc).to_dict() == doc


def test_concept_overview_samples_are_the_tutorial_manifests() -> None:
    """samples/concept-overview holds the tutorial's five examples unchanged."""
    tutorial = [d for k, d in SEEDS.items() if k.startswith("002_")]
    ours = [d for k, d in SAMPLES.items() if k.startswith("concept-overview/")]
    assert sorted(tutorial, key=str) == sorted(ours, key=str)


def test_runnable_samples_are_the_five_examples_and_the_corrected_training() -> None:
    names = {d["metadata"]["name"] for d in runnable_samples().values()}
    assert names == {
        "single-node-aggregated",
        "single-node-disaggregated",
        "multinode-aggregated",
        "multinode-disaggregated",
        "comp-inf-ppln",
        "dist-train",
    }


def test_unknown_fields_survive_at_every_level() -> None:
    doc: dict[str, Any] = {
        "apiVersion": "grove.io/v1alpha1",
        "kind": "PodCliqueSet",
        "metadata": {"name": "x", "managedFields": [{"manager": "kubectl"}]},
        "spec": {
            "futureTopLevel": {"a": 1},
            "template": {
                "futureTemplateField": True,
                "cliques": [
                    {
                        "name": "a",
                        "futureCliqueField": "v",
                        "spec": {
                            "replicas": 1,
                            "podSpec": {"containers": [{"name": "c", "x-y": 1}]},
                            "new": [],
                        },
                    }
                ],
            },
        },
        "status": {"futureStatus": "s"},
    }
    assert PodCliqueSet.from_dict(doc).to_dict() == doc


def test_typed_access_uses_python_names() -> None:
    pcs = PodCliqueSet.from_dict(SAMPLES["training/dist-train.yaml"])
    assert pcs.spec.replicas == 2
    assert pcs.spec.template.clique_startup_type == "CliqueStartupTypeExplicit"
    worker = next(q for q in pcs.spec.template.cliques if q.name == "worker")
    assert worker.spec.min_available == 3
    assert worker.spec.starts_after == ["coordinator"]
    groups = pcs.spec.template.pod_clique_scaling_groups
    assert groups is not None and groups[0].clique_names == ["worker", "parameter-server"]


def test_irregular_wire_names() -> None:
    """Grove's JSON names that camelCase alone would get wrong or that differ between kinds."""
    gang = PodGang.from_dict(
        {
            "metadata": {"name": "g"},
            "spec": {"podgroups": [{"name": "p", "podReferences": [], "minReplicas": 1}]},
        }
    )
    assert gang.spec.podgroups[0].min_replicas == 1
    clique = PodClique.from_dict(
        {
            "metadata": {"name": "q"},
            "spec": {"podSpec": {}, "autoScalingConfig": {"maxReplicas": 3}},
            "status": {"hpaPodSelector": "a=b"},
        }
    )
    assert clique.spec.auto_scaling_config is not None and clique.spec.auto_scaling_config.max_replicas == 3
    assert clique.status is not None and clique.status.hpa_pod_selector == "a=b"


def test_messages_quote_at_most_a_bounded_part_of_the_request() -> None:
    """An attacker's megabyte of text (or ten thousand errors) does not come back in a message or a log."""
    from grove_api import fielderrors as fe

    long = fe.invalid("metadata.name", "x" * 100_000, "must be no more than 63 characters")
    assert len(str(long)) < fe.MAX_VALUE_CHARS + 200 and "(99746 more characters)" in str(long)
    many = fe.aggregate([fe.required(f"spec.items[{i}]") for i in range(10_000)])
    assert many.count("Required value") == fe.MAX_ERRORS_SHOWN and many.endswith("and 9950 more errors]")

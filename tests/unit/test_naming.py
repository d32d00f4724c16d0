"""Generated names, checked against the names printed in Grove's tutorials."""

import pytest

from grove_api import naming


def test_standalone_podclique_matches_tutorial() -> None:
    assert naming.standalone_podclique("single-node-aggregated", 0, "model-worker") == (
        "single-node-aggregated-0-model-worker"
    )


def test_scaling_group_names_match_tutorial() -> None:
    assert naming.scaling_group("multinode-aggregated", 0, "model-instance") == (
        "multinode-aggregated-0-model-instance"
    )
    assert naming.scaling_group_podclique("multinode-aggregated", 0, "model-instance", 2, "leader") == (
        "multinode-aggregated-0-model-instance-2-leader"
    )


def test_podgang_names() -> None:
    assert naming.base_podgang("workload2", 0) == "workload2-0"
    # sg-x replicas 2, minAvailable 1: replica 1 is the first scaled gang, numbered 0.
    assert naming.scaled_podgang("workload2", 0, "sg-x", 1, 1) == "workload2-0-sg-x-0"
    assert naming.scaled_podgang("workload2", 1, "sg-x", 3, 1) == "workload2-1-sg-x-2"
    with pytest.raises(ValueError, match="belongs to the base PodGang"):
        naming.scaled_podgang("workload2", 0, "sg-x", 0, 1)


def test_per_pcs_objects() -> None:
    assert naming.headless_service("pcs", 3) == "pcs-3"
    assert naming.service_account("pcs") == "pcs"
    assert naming.role("pcs") == "grove.io:pcs:pcs"
    assert naming.initc_token_secret("pcs") == "pcs-ic-sat"
    assert naming.pod_generate_name("pcs-0-a") == "pcs-0-a-"
    assert naming.pod_hostname("pcs-0-a", 4) == "pcs-0-a-4"


def test_combined_name_length_counts_only_names() -> None:
    assert naming.combined_name_length("distributed-training", "parameter-server", "training-workers") == 52
    assert naming.combined_name_length("dist-train", "parameter-server", "training-workers") == 42
    assert naming.combined_name_length("pcs", "clique") == 9


def test_pod_names_look_like_generated_ones_and_fit() -> None:
    name = naming.pod_name("pcs-0-a", "seed")
    assert name.startswith("pcs-0-a-") and len(name) == len("pcs-0-a-") + naming.POD_NAME_SUFFIX_LENGTH
    assert set(name.removeprefix("pcs-0-a-")) <= set(naming.POD_NAME_ALPHABET)
    assert naming.pod_name("pcs-0-a", "seed") == name != naming.pod_name("pcs-0-a", "other")
    long = naming.pod_name("x" * 80, "seed")
    assert len(long) == naming.MAX_NAME_LENGTH and long.startswith("x" * 58)

"""The manifests the tests use: our samples and every PodCliqueSet printed in Grove's docs (the seeds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SEEDS = Path(__file__).resolve().parent / "data" / "seeds"

RUNNABLE_SAMPLE_DIRS = ("concept-overview", "training")


def load_yaml(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), path
    return doc


def runnable_samples() -> dict[str, dict[str, Any]]:
    """file stem -> manifest, for the samples `make demo` applies."""
    return {p.stem: load_yaml(p) for d in RUNNABLE_SAMPLE_DIRS for p in sorted((SAMPLES / d).glob("*.yaml"))}


def all_samples() -> dict[str, dict[str, Any]]:
    return {str(p.relative_to(SAMPLES)): load_yaml(p) for p in sorted(SAMPLES.rglob("*.yaml"))}


def seed_manifests() -> dict[str, dict[str, Any]]:
    """Every PodCliqueSet manifest printed in Grove's docs, copied verbatim into tests/data/seeds."""
    return {p.name: load_yaml(p) for p in sorted(SEEDS.glob("*.yaml"))}


# What each runnable sample must produce: pods per PodClique (pod names are <podclique>-<5 chars>), as the
# tutorials print them (and, for the training example, as Grove's rules give: 2 x (1 + 2 x (4 + 1)) = 22).
TUTORIAL_PODS: dict[str, dict[str, int]] = dict(
    [
        ("single-node-aggregated", {"single-node-aggregated-0-model-worker": 2}),
        (
            "single-node-disaggregated",
            {"single-node-disaggregated-0-prefill": 3, "single-node-disaggregated-0-decode": 2},
        ),
        (
            "multi-node-aggregated",
            {
                "multinode-aggregated-0-model-instance-0-leader": 1,
                "multinode-aggregated-0-model-instance-0-worker": 3,
                "multinode-aggregated-0-model-instance-1-leader": 1,
                "multinode-aggregated-0-model-instance-1-worker": 3,
            },
        ),
        (
            "multi-node-disaggregated",
            {
                "multinode-disaggregated-0-prefill-0-pleader": 1,
                "multinode-disaggregated-0-prefill-0-pworker": 4,
                "multinode-disaggregated-0-prefill-1-pleader": 1,
                "multinode-disaggregated-0-prefill-1-pworker": 4,
                "multinode-disaggregated-0-decode-0-dleader": 1,
                "multinode-disaggregated-0-decode-0-dworker": 2,
            },
        ),
        (
            "complete-inference-pipeline",
            {
                "comp-inf-ppln-0-frontend": 2,
                "comp-inf-ppln-0-vision-encoder": 1,
                "comp-inf-ppln-0-prefill-0-pleader": 1,
                "comp-inf-ppln-0-prefill-0-pworker": 4,
                "comp-inf-ppln-0-decode-cluster-0-dleader": 1,
                "comp-inf-ppln-0-decode-cluster-0-dworker": 2,
            },
        ),
        (
            "dist-train",
            {
                f"dist-train-{i}-{rest}": n
                for i in (0, 1)
                for rest, n in {
                    "coordinator": 1,
                    "training-workers-0-worker": 4,
                    "training-workers-0-parameter-server": 1,
                    "training-workers-1-worker": 4,
                    "training-workers-1-parameter-server": 1,
                }.items()
            },
        ),
    ]
)

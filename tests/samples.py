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

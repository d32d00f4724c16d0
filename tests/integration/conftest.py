"""Integration tier: Grove's CRDs installed once per session on the shared real cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kube import kubectl
from tests.samples import ROOT

CRD_DIR = ROOT / "deploy" / "helm" / "grove-py" / "crds"


@pytest.fixture(scope="session")
def kubeconfig(cluster: Any) -> Path:
    return Path(cluster.kubeconfig)


@pytest.fixture(scope="session")
def grove_crds(kubeconfig: Path) -> Path:
    """Install (server-side apply: the CRDs are too big for client-side apply's annotation) and wait."""
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    kubectl(kubeconfig, "wait", "--for", "condition=established", "--timeout=60s", "-f", str(CRD_DIR))
    return CRD_DIR

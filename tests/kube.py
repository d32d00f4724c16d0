"""kubectl for tests: the tutorials' commands, run as a user would run them."""

from __future__ import annotations

import subprocess
from pathlib import Path


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run kubectl against the test cluster; on failure the error carries kubectl's stderr."""
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout if proc.returncode == 0 else proc.stderr

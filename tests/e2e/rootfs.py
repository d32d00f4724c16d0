"""A small image filesystem for tests that run real containers (host node, init runner rootfs mode): Debian
bookworm, minbase, with python3 (an HTTP server and scripts need nothing else), made with mmdebstrap.

Built once per machine into the project cache (`binaries.cache_root()/rootfs/`; about 80 s and 220 MB)
under a file lock, atomically (built beside, then renamed), and reused: the tests only read it, every
container writes to its own overlay layer. Not the project's image (tools/image.py builds that, for what
runs grove-py itself); these tests check the container machinery, which needs only a Python.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from localcluster import binaries, machine

NAME = "bookworm-python3"
IMAGE = "grove-test/python3:bookworm"  # what pod specs call it (never pulled: the host node maps it here)
ARGV = ("mmdebstrap", "--variant=minbase", "--include=python3", "bookworm")
BUILD_TIMEOUT = 900


def python_rootfs() -> Path:
    """The directory of the python3 filesystem, built first when missing."""
    root = binaries.cache_root() / "rootfs"
    target = root / NAME
    if (target / "usr" / "bin" / "python3").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{NAME}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "usr" / "bin" / "python3").exists():
            return target
        machine.ensure_commands({"mmdebstrap": "mmdebstrap"})
        with tempfile.TemporaryDirectory(prefix=f".{NAME}-", dir=root) as tmp:
            build = Path(tmp) / "rootfs"
            proc = subprocess.run([*ARGV, str(build)], capture_output=True, text=True, timeout=BUILD_TIMEOUT)
            if proc.returncode != 0:
                pytest.fail(f"mmdebstrap failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            if target.exists():
                shutil.rmtree(target)  # a half-built one from an older layout
            build.rename(target)
    return target

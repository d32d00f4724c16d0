"""Image tier: this tree's container image (tests/conftest.py `image_rootfs`: built if needed, unpacked once
per session) and a way to run its files as the image's user, the way a container would."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tools import image

RunInImage = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def run_in_image(image_rootfs: image.Rootfs) -> RunInImage:
    """Run a command in the image's filesystem as its user with its environment; podman cannot start a
    container on our machines, chroot can run its files."""

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            image_rootfs.command(argv), env=image_rootfs.env, capture_output=True, text=True, timeout=120
        )

    return run


@pytest.fixture(scope="session")
def site_packages(image_rootfs: image.Rootfs) -> Path:
    """The app venv's site-packages inside the unpacked image."""
    found = sorted((image_rootfs.path / image.VENV_DIR.lstrip("/")).glob("lib/python3*/site-packages"))
    assert len(found) == 1, found
    return found[0]

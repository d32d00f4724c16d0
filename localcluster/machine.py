"""Debian packages this machine needs for a part of the local cluster, installed when missing.

CI machines start bare: podman and mmdebstrap (images), iptables (the host node's service proxy) are not
there until something installs them. Whoever needs a command asks for it here, so the order in which tests
or tools run does not matter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping

Log = Callable[[str], None]
APT_TIMEOUT = 900.0


class MissingCommand(RuntimeError):
    """A command is missing and cannot be installed here; the message says what to install."""


def ensure_commands(packages: Mapping[str, str], log: Log = print) -> None:
    """Install missing commands (`command -> Debian package`) with apt-get when we may (root on a Debian
    machine); otherwise MissingCommand naming the packages."""
    missing = sorted({pkg for cmd, pkg in packages.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingCommand(
            f"missing {', '.join(missing)}: install it (Debian: apt-get install -y {' '.join(missing)})"
        )
    log(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", *missing]):
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT, stdin=subprocess.DEVNULL
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise MissingCommand(f"`{' '.join(argv)}` failed (exit {proc.returncode}): {tail}")
    still = sorted(cmd for cmd in packages if shutil.which(cmd) is None)
    if still:
        raise MissingCommand(f"installed {' '.join(missing)} but {', '.join(still)} still not on PATH")

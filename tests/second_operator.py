"""A second grove-operator process beside the session's, serving webhooks only: the same Secret (hence the
same CA, so injecting it changes nothing), its own ports and certificate directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grove_api import constants as c
from localcluster import api, ports
from localcluster import operator as grove_operator
from localcluster.state import ClusterInfo
from tests.samples import ROOT
from webhook import paths


@dataclass
class SecondOperator:
    proc: subprocess.Popen[bytes]
    health_port: int
    metrics_port: int
    cert_dir: Path
    log: Path

    def stop(self) -> None:
        """SIGTERM; it must exit 0 (a graceful shutdown)."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.log.read_text()


@contextmanager
def second_operator(
    cluster: ClusterInfo, workdir: Path, configure: Callable[[dict[str, Any]], None] = lambda _: None
) -> Iterator[SecondOperator]:
    """Started from the session operator's configuration (`configure` may change it), ready (/readyz 200)
    when yielded; killed afterwards if the test did not stop it."""
    config = yaml.safe_load(grove_operator.config_path(cluster).read_text())
    webhook, health, metrics = ports.free_ports(3)
    server = config["server"]
    server["webhooks"].update(port=webhook, serverCertDir=str(workdir / "certs"))
    server["healthProbes"]["port"] = health
    server["metrics"]["port"] = metrics
    configure(config)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    log = workdir / "operator.log"
    env = {**os.environ, c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME: grove_operator.SERVICE_ACCOUNT}
    argv = [
        sys.executable,
        "-m",
        "grove_operator.main",
        f"--config={path}",
        f"--kubeconfig={grove_operator.kubeconfig_path(cluster)}",
        "--webhooks-only",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if api.get(f"http://{ports.HOST}:{health}{paths.READYZ}")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield SecondOperator(proc, health, metrics, workdir / "certs", log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

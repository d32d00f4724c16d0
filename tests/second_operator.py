"""grove-operator processes beside (or instead of) the session's, built from the session operator's
configuration: the same Secret (hence the same CA, so injecting it changes nothing), run as the operator's
ServiceAccount through the session's operator kubeconfig, as `localcluster.operator` runs it.

`second_operator` is the webhooks-only one the lifecycle and metrics tests use (its own ports and certificate
directory); `write_config`, `launch` and `wait_ready` are its steps, shared with `tests.operator_pair` (two
full replicas under leader election)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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

Configure = Callable[[dict[str, Any]], None]


@dataclass
class SecondOperator:
    proc: subprocess.Popen[bytes]
    health_port: int
    metrics_port: int
    cert_dir: Path
    log: Path
    webhook_port: int = 0
    config: Path | None = None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM; it must exit 0 (a graceful shutdown)."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.log.read_text()

    def kill(self) -> None:
        """SIGKILL, as a crash: no drain, nothing handed over (its webhook child exits on its own: the pipe
        from the parent ends)."""
        with suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(timeout=30)

    def terminate(self, grace: float = 30.0) -> int:
        """SIGTERM, SIGKILL after `grace` seconds if still running; the exit code (negative: a signal)."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.wait(timeout=30)


def session_config(cluster: ClusterInfo) -> dict[str, Any]:
    """The session operator's OperatorConfiguration (as a plain document, to be changed and written)."""
    config = yaml.safe_load(grove_operator.config_path(cluster).read_text())
    assert isinstance(config, dict)
    return config


def write_config(
    cluster: ClusterInfo,
    workdir: Path,
    configure: Configure = lambda _: None,
    *,
    own_ports: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """`workdir/config.yaml`: the session operator's configuration, with free ports of its own and a
    certificate directory in `workdir` (`own_ports`; else the session operator's ports and certificates,
    which the cluster's webhook configurations point at), then `configure`d. The path and the document."""
    config = session_config(cluster)
    if own_ports:
        webhook, health, metrics = ports.free_ports(3)
        server = config["server"]
        server["webhooks"].update(port=webhook, serverCertDir=str(workdir / "certs"))
        server["healthProbes"]["port"] = health
        server["metrics"]["port"] = metrics
    configure(config)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config


def launch(cluster: ClusterInfo, config: Path, log: Path, *, webhooks_only: bool) -> subprocess.Popen[bytes]:
    """`python -m grove_operator.main --config=<config>` as the operator's ServiceAccount (the session's
    operator kubeconfig, the ServiceAccount name in the environment), output to `log`."""
    env = {
        **os.environ,
        c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME: grove_operator.SERVICE_ACCOUNT,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    env.pop("KUBECONFIG", None)
    argv = [
        sys.executable,
        "-m",
        "grove_operator.main",
        f"--config={config}",
        f"--kubeconfig={grove_operator.kubeconfig_path(cluster)}",
        *(["--webhooks-only"] if webhooks_only else []),
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )


def wait_ready(proc: subprocess.Popen[bytes], health_port: int, log: Path, timeout: float = 30.0) -> None:
    """Until /readyz answers 200; fails with the log if the process exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if api.get(f"http://{ports.HOST}:{health_port}{paths.READYZ}")[0] == 200:
                return
        except OSError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def start_operator(
    cluster: ClusterInfo,
    workdir: Path,
    configure: Configure = lambda _: None,
    *,
    webhooks_only: bool = True,
    own_ports: bool = True,
    log: Path | None = None,
    timeout: float = 30.0,
) -> SecondOperator:
    """An operator process from `write_config(...)`, ready (/readyz 200) when returned; killed if it does
    not get ready."""
    path, config = write_config(cluster, workdir, configure, own_ports=own_ports)
    server = config["server"]
    log = log or workdir / "operator.log"
    proc = launch(cluster, path, log, webhooks_only=webhooks_only)
    operator = SecondOperator(
        proc,
        health_port=server["healthProbes"]["port"],
        metrics_port=server["metrics"]["port"],
        cert_dir=Path(server["webhooks"]["serverCertDir"]),
        log=log,
        webhook_port=server["webhooks"]["port"],
        config=path,
    )
    try:
        wait_ready(proc, operator.health_port, log, timeout)
    except BaseException:
        operator.kill()
        raise
    return operator


@contextmanager
def second_operator(
    cluster: ClusterInfo, workdir: Path, configure: Configure = lambda _: None
) -> Iterator[SecondOperator]:
    """Started from the session operator's configuration (`configure` may change it), webhooks only, on
    ports of its own, ready (/readyz 200) when yielded; killed afterwards if the test did not stop it."""
    operator = start_operator(cluster, workdir, configure)
    try:
        yield operator
    finally:
        if operator.alive:
            operator.kill()

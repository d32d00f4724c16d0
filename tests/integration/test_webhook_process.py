"""The webhooks in a child process of the operator (`grove_operator/webhooks.py`), with a real child.

The parent runs in the test (an `Operator` with `webhook_process`), so its parts can be looked at; the
child is the real `grove-operator --webhook-process`, talking to the session cluster's apiserver as the
operator's ServiceAccount. The parent's caBundle injection is turned off: the apiserver keeps calling the
session operator, and these tests ask the child directly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from cryptography import x509

from certs.manager import CertManager, DirectoryStore, plan
from grove_api import constants as c
from grove_api.operatorconfig import OperatorConfiguration
from grove_operator import apicalls
from grove_operator.runtime import Operator
from grove_operator.webhooks import WebhookProcess
from localcluster import operator as grove_operator
from localcluster import ports
from localcluster.state import ClusterInfo
from tests.builders import admission_review
from webhook import paths

pytestmark = pytest.mark.usefixtures("grove_crds")

INVALID_PCS = {
    "apiVersion": "grove.io/v1alpha1",
    "kind": "PodCliqueSet",
    "metadata": {"name": "child-probe", "namespace": "default"},
    "spec": {"replicas": 1, "template": {"cliques": []}},
}


def child_config(cluster: ClusterInfo, tmp_path: Path) -> tuple[OperatorConfiguration, Path]:
    """The session operator's configuration on ports of its own, with certificates of its own (manual)."""
    data = yaml.safe_load(grove_operator.config_path(cluster).read_text())
    webhook, health, metrics = ports.free_ports(3)
    data["server"]["webhooks"].update(
        port=webhook, serverCertDir=str(tmp_path / "certs"), certProvisionMode="manual"
    )
    data["server"]["healthProbes"]["port"] = health
    data["server"]["metrics"]["port"] = metrics
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    config = OperatorConfiguration.model_validate(data)
    write_certs(config, tmp_path / "certs")
    return config, path


def write_certs(config: OperatorConfiguration, cert_dir: Path) -> int:
    """A fresh CA and serving certificate in `cert_dir`; the serving certificate's serial."""
    files = plan(None, CertManager.from_config(config.server.webhooks).spec, dt.datetime.now(dt.UTC)).files
    DirectoryStore(cert_dir).write(files)
    return x509.load_pem_x509_certificate((cert_dir / "tls.crt").read_bytes()).serial_number


def child_argv(cluster: ClusterInfo, config_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "grove_operator.main",
        f"--config={config_path}",
        f"--kubeconfig={grove_operator.kubeconfig_path(cluster)}",
    ]


@pytest.fixture
async def operator(
    cluster: ClusterInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Operator]:
    async def no_injection(*_: Any, **__: Any) -> dict[str, str]:
        return {}

    monkeypatch.setattr(apicalls, "inject_ca_bundle", no_injection)
    monkeypatch.setenv(c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME, grove_operator.SERVICE_ACCOUNT)
    config, path = child_config(cluster, tmp_path)
    client = await apicalls.api_client(str(grove_operator.kubeconfig_path(cluster)), config)
    op = Operator(
        config,
        client,
        reconciler_username=f"system:serviceaccount:grove-system:{grove_operator.SERVICE_ACCOUNT}",
        controllers=False,
        webhook_process=child_argv(cluster, path),
    )
    try:
        await op.start()
        yield op
    finally:
        await op.stop()
        await client.close()


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else result


def child(op: Operator) -> WebhookProcess:
    assert isinstance(op.webhooks, WebhookProcess)
    return op.webhooks


def ca_context(op: Operator) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=op.certs.ca_bundle().decode())


async def review_directly(op: Operator) -> dict[str, Any]:
    """An AdmissionReview of an invalid PodCliqueSet sent straight to the webhook port."""
    url = f"https://127.0.0.1:{op.config.server.webhooks.port}{paths.VALIDATE_PODCLIQUESET}"
    review = admission_review(INVALID_PCS)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=review, ssl=ca_context(op)) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def served_serial(op: Operator) -> int:
    """The serial of the certificate the webhook port serves (not verified: during a rotation the old
    and the new one are both fine here)."""
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    port = op.config.server.webhooks.port
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=unverified)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return x509.load_der_x509_certificate(der).serial_number


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await _value(condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_the_child_answers_admission_and_the_parent_serves_its_metrics(operator: Operator) -> None:
    process = child(operator)
    assert process.pid is not None and process.pid != os.getpid()
    assert operator._readiness() == (True, "")
    body = await review_directly(operator)
    assert body["response"]["allowed"] is False
    assert "spec.template.cliques" in body["response"]["status"]["message"]
    url = f"http://127.0.0.1:{operator.metrics.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    sample = f'grove_webhook_requests_total{{allowed="false",path="{paths.VALIDATE_PODCLIQUESET}"}} 1.0'
    assert sample in text.splitlines()
    assert text.count("# TYPE grove_webhook_requests_total counter") == 1  # the child's, not the parent's too
    assert "# TYPE grove_reconcile" in text or "# TYPE python_info gauge" in text  # the parent's own families


async def test_a_crashed_child_is_started_again(operator: Operator) -> None:
    process = child(operator)
    first = process.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await until(lambda: not process.answering)
    assert not operator._readiness()[0]
    await until(lambda: process.answering and process.pid != first)
    assert operator._readiness() == (True, "")
    assert (await review_directly(operator))["response"]["allowed"] is False


async def test_a_renewed_certificate_is_served_by_the_child(operator: Operator, tmp_path: Path) -> None:
    before = await served_serial(operator)
    renewed = write_certs(operator.config, tmp_path / "certs")
    assert renewed != before
    assert await operator.certs.check()  # what the periodic check does: on_rotated signals the child

    async def served_renewed() -> bool:
        return await served_serial(operator) == renewed

    await until(served_renewed, timeout=10)


async def test_stop_ends_the_child_gracefully(operator: Operator) -> None:
    process = child(operator)
    proc = process.proc
    assert proc is not None
    started = time.monotonic()
    await process.stop(unready_delay=0)
    assert proc.returncode == 0
    assert time.monotonic() - started < 10
    with pytest.raises(OSError):
        await served_serial(operator)


async def test_the_child_exits_when_its_parent_is_gone(cluster: ClusterInfo, tmp_path: Path) -> None:
    """The parent's end (SIGKILL, crash) closes the child's stdin: the child stops at once, freeing the port
    for the next operator."""
    config, path = child_config(cluster, tmp_path)
    client = await apicalls.api_client(str(grove_operator.kubeconfig_path(cluster)), config)
    async with client:
        connection = await apicalls.connection(client, in_cluster=False)
    env = {**os.environ, c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME: grove_operator.SERVICE_ACCOUNT}
    argv = [*child_argv(cluster, path), "--webhook-process"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        proc.stdin.write(connection.to_json() + b"\n")
        proc.stdin.flush()
        line = await asyncio.to_thread(proc.stdout.readline)
        assert json.loads(line)["port"] > 0
        proc.stdin.close()
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

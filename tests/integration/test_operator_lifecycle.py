"""The grove operator as `grove-cluster` runs it: its identity, readiness, caBundle injection, what happens
while it is stopped, graceful shutdown, and the deploy/ manifests on the real apiserver.

Tests that stop the shared session cluster's operator start it again in a `finally`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from grove_api import constants as c
from localcluster import api, ports
from localcluster import cluster as localcluster
from localcluster import operator as grove_operator
from localcluster.state import ClusterInfo
from tests.kube import kubectl
from tests.samples import ROOT, runnable_samples
from tests.second_operator import second_operator
from webhook import paths, registration

pytestmark = pytest.mark.usefixtures("grove_crds")


@pytest.fixture
def operator_running(cluster: ClusterInfo) -> Iterator[grove_operator.OperatorState]:
    """The operator runs before the test and again after it, whatever the test did to it."""
    state = grove_operator.start(cluster.state_dir)
    try:
        yield state
    finally:
        grove_operator.start(cluster.state_dir)


def sample(namespace: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(runnable_samples()["single-node-aggregated"]))
    doc["metadata"]["namespace"] = namespace
    return doc


def apply(kubeconfig: Path, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
        input=yaml.safe_dump(doc),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_operator_runs_under_its_service_account(cluster: ClusterInfo, operator_running: Any) -> None:
    path = grove_operator.kubeconfig_path(cluster)
    config = yaml.safe_load(path.read_text())
    user = config["users"][0]["user"]
    assert set(user) == {"token"}, "the operator must not use the admin certificate"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    who = kubectl(path, "auth", "whoami", "-o", "json")
    assert (
        json.loads(who)["status"]["userInfo"]["username"]
        == "system:serviceaccount:grove-system:grove-operator"
    )
    argv = grove_operator.load_state(cluster.state_dir)
    assert argv is not None and f"--kubeconfig={path}" in argv.argv


def test_ready_and_ca_bundle_injected(cluster: ClusterInfo, kubeconfig: Path, operator_running: Any) -> None:
    state = operator_running
    code, body = api.get(f"http://{ports.HOST}:{state.health_port}{paths.READYZ}")
    assert (code, body) == (200, b"ok")
    secret = json.loads(
        kubectl(kubeconfig, "get", "secret", "grove-webhook-server-cert", "-n", "grove-system", "-o", "json")
    )
    ca = base64.b64decode(secret["data"]["ca.crt"])
    assert b"BEGIN CERTIFICATE" in ca
    for kind, name in registration.CONFIGURATIONS:
        doc = json.loads(kubectl(kubeconfig, "get", kind.lower(), name, "-o", "json"))
        for hook in doc["webhooks"]:
            assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca, name
            assert hook["clientConfig"]["url"].startswith(f"https://127.0.0.1:{state.webhook_port}/webhooks/")
    status = localcluster.status(cluster.state_dir)
    assert status.operator is not None and status.operator.ready
    assert "grove-operator: pid" in status.format()


def test_stopped_operator_refuses_podcliquesets_then_start_allows(
    cluster: ClusterInfo, kubeconfig: Path, namespace: str, operator_running: Any
) -> None:
    doc = sample(namespace)
    name = doc["metadata"]["name"]
    try:
        stopped = grove_operator.stop(cluster.state_dir)
        assert stopped
        status = localcluster.status(cluster.state_dir)
        assert status.operator is not None and not status.operator.alive and status.operator.stopped
        result = apply(kubeconfig, doc)
        assert result.returncode != 0
        assert 'failed calling webhook "pcs.defaulting.webhooks.grove.io"' in result.stderr, result.stderr
        assert "connection refused" in result.stderr, result.stderr
        listed = kubectl(kubeconfig, "get", "pcs", "-n", namespace, "-o", "name")
        assert listed.strip() == "", "nothing may be stored while the webhooks are down"
    finally:
        grove_operator.start(cluster.state_dir)
    result = apply(kubeconfig, doc)
    assert result.returncode == 0, result.stderr
    stored = json.loads(kubectl(kubeconfig, "get", "pcs", name, "-n", namespace, "-o", "json"))
    # The defaulting webhook ran (this depends on the lead's handlers in webhook/pcs.py).
    assert stored["spec"]["template"]["cliques"][0]["spec"]["podSpec"]["restartPolicy"] == "Always"


def test_up_restarts_a_stopped_operator(cluster: ClusterInfo, operator_running: Any) -> None:
    try:
        grove_operator.stop(cluster.state_dir)
        again = localcluster.up(cluster.state_dir, nodes=5)
        assert again.pids == cluster.pids
        state = grove_operator.load_state(cluster.state_dir)
        assert state is not None and not state.stopped
        assert grove_operator.running_pid(cluster.state_dir) == state.pid
        assert api.get(f"http://{ports.HOST}:{state.health_port}{paths.READYZ}")[0] == 200
    finally:
        grove_operator.start(cluster.state_dir)


def test_sigterm_is_a_graceful_shutdown(cluster: ClusterInfo, tmp_path: Path, operator_running: Any) -> None:
    """A second operator process (same Secret, hence the same CA: injecting it changes nothing) on other
    ports: ready, then SIGTERM -> not ready, drained, exit code 0."""
    with second_operator(cluster, tmp_path) as operator:
        code, _ = api.get(f"http://{ports.HOST}:{operator.health_port}{paths.HEALTHZ}")
        assert code == 200
        operator.stop()
    log = operator.log
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert "grove-operator ready" in messages
    assert messages.index("shutting down") < messages.index("grove-operator stopped")
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    injections = [line for line in lines if line["msg"] == "caBundle injection"]
    assert injections == [], "same CA: nothing to inject"


def test_operator_refuses_to_start_without_its_service_account_name(cluster: ClusterInfo) -> None:
    env = {k: v for k, v in os.environ.items() if k != c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME}
    proc = subprocess.run(
        [sys.executable, "-m", "grove_operator.main", f"--config={grove_operator.config_path(cluster)}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=30,
    )
    assert proc.returncode == 2
    assert 'no "GROVE_OPERATOR_SERVICE_ACCOUNT_NAME" environment variable' in proc.stderr


WEBHOOKS = "validatingwebhookconfigurations.admissionregistration.k8s.io"
SECRET = "grove-webhook-server-cert"  # the release manifest's config.server.webhooks.secretName
LEASE = "leases.coordination.k8s.io"


@pytest.mark.parametrize(
    ("verb", "target", "namespace", "allowed"),
    [
        ("create", ("pods",), None, True),
        ("delete", ("pods",), None, True),
        ("deletecollection", ("pods",), None, False),
        ("patch", ("podcliques.grove.io",), None, True),
        ("update", ("podcliques.grove.io",), None, False),  # only patches are sent
        ("patch", ("podcliquesets.grove.io", "--subresource=status"), None, True),
        ("update", ("podcliquesets.grove.io", "--subresource=status"), None, False),
        ("update", ("podcliquesets.grove.io", "--subresource=finalizers"), None, True),
        ("create", ("podcliquesets.grove.io",), None, False),
        ("create", ("podgangs.scheduler.grove.io",), None, True),
        ("create", ("roles.rbac.authorization.k8s.io",), None, True),
        ("create", ("horizontalpodautoscalers.autoscaling",), None, True),
        ("create", ("tokenreviews.authentication.k8s.io",), None, True),
        ("create", ("subjectaccessreviews.authorization.k8s.io",), None, True),
        ("list", ("nodes",), None, True),
        ("delete", ("nodes",), None, False),
        ("create", ("clusterroles.rbac.authorization.k8s.io",), None, False),
        ("list", ("resourceclaims.resource.k8s.io",), None, False),  # issue 23 (DRA) adds it when used
        # Webhook configurations: our own, by name.
        ("patch", (f"{WEBHOOKS}/{paths.VALIDATING_CONFIG}",), None, True),
        ("patch", (f"{WEBHOOKS}/someone-elses",), None, False),
        ("create", (WEBHOOKS,), None, False),
        # The leader-election Lease and the certificate Secret: in the operator's own namespace, by name.
        ("create", (LEASE,), "grove-system", True),
        ("create", (LEASE,), None, False),
        ("update", (f"{LEASE}/grove-operator-leader-election",), "grove-system", True),
        ("update", (f"{LEASE}/another-lease",), "grove-system", False),
        ("update", (f"secrets/{SECRET}",), "grove-system", True),
        ("update", ("secrets/another-secret",), "grove-system", False),
        ("update", (f"secrets/{SECRET}",), None, False),
    ],
)
def test_operator_rbac(
    cluster: ClusterInfo, verb: str, target: tuple[str, ...], namespace: str | None, allowed: bool
) -> None:
    """The rights the release manifest grants the operator (the local cluster installs them from it), asked
    of the apiserver; the whole list is tests/data/operator-permissions.txt (test_operator_permissions.py)."""
    namespace = namespace or f"x-{uuid.uuid4().hex[:4]}"
    result = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(grove_operator.kubeconfig_path(cluster)),
            "auth",
            "can-i",
            verb,
            *target,
            "-n",
            namespace,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stdout + result.stderr


def secret_update_rights(secret: str) -> list[dict[str, Any]]:
    """What the chart's Role grants the operator for its certificate Secret, for a Secret of another name:
    update of that one Secret, in grove-system (the operator creates and reads it with its ClusterRole)."""
    name = f"grove-test:{secret}"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": grove_operator.NAMESPACE},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret], "verbs": ["update"]}
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": grove_operator.NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": grove_operator.SERVICE_ACCOUNT,
                "namespace": grove_operator.NAMESPACE,
            }
        ],
    }
    return [role, binding]


async def test_ca_rotation_is_injected_and_served(
    cluster: ClusterInfo, tmp_path: Path, operator_running: Any
) -> None:
    """An in-process operator with its own Secret: its CA is injected at start; when the CA nears expiry
    the successor is added to the bundle, the serving certificate is reloaded and the bundle re-injected.
    Afterwards the session operator is restarted, which injects its own CA again."""
    import datetime as dt

    from kubernetes_asyncio.client import AdmissionregistrationV1Api, CoreV1Api

    from grove_api.operatorconfig import OperatorConfiguration
    from grove_operator import apicalls
    from grove_operator.runtime import Operator

    data = yaml.safe_load(grove_operator.config_path(cluster).read_text())
    webhook, health, metrics = ports.free_ports(3)
    secret = f"rotation-{uuid.uuid4().hex[:6]}"
    data["server"]["webhooks"].update(port=webhook, serverCertDir=str(tmp_path / "certs"), secretName=secret)
    rights = yaml.safe_dump_all(secret_update_rights(secret))
    kubectl(cluster.kubeconfig, "apply", "-f", "-", stdin=rights)
    data["server"]["healthProbes"]["port"] = health
    data["server"]["metrics"]["port"] = metrics
    config = OperatorConfiguration.model_validate(data)
    client = await apicalls.api_client(str(grove_operator.kubeconfig_path(cluster)), config)
    op = Operator(config, client, reconciler_username="system:serviceaccount:grove-system:grove-operator")
    try:
        await op.start()
        first = op.certs.ca_bundle()
        assert await op.inject() == {name: "up to date" for _, name in registration.CONFIGURATIONS}
        serial = op.tls.serial if op.tls else None
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3000)
        op.certs.clock = lambda: later
        assert await op.certs.check()  # renews, then awaits on_rotated: reload + inject
        second = op.certs.ca_bundle()
        assert second != first and second.count(b"BEGIN CERTIFICATE") == 2
        assert op.tls is not None and op.tls.serial != serial
        hooks = await AdmissionregistrationV1Api(client).read_validating_webhook_configuration(
            paths.VALIDATING_CONFIG
        )
        assert base64.b64decode(hooks.webhooks[0].client_config.ca_bundle) == second
    finally:
        await op.stop()
        grove_operator.restart(cluster.state_dir)  # injects the session operator's CA again
        kubectl(cluster.kubeconfig, "delete", "-f", "-", stdin=rights)
        try:
            await CoreV1Api(client).delete_namespaced_secret(
                config.server.webhooks.secret_name, "grove-system"
            )
        finally:
            await client.close()

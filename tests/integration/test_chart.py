"""The Helm chart (deploy/helm/grove-py) and the release manifest, rendered by the pinned helm and checked
against the operator's own code and the real kube-apiserver (server-side dry run)."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from grove_api.operatorconfig import OperatorConfiguration
from localcluster.binaries import ensure_helm
from localcluster.state import ClusterInfo
from tests.kube import kubectl
from tools import release
from webhook import registration

TESTS = Path(__file__).resolve().parent.parent
GROVE_VALUES = TESTS / "data" / "grove-chart-values.yaml"
WEBHOOK_KINDS = {registration.MUTATING_KIND, registration.VALIDATING_KIND}
CERT_MANAGER_ANNOTATION = "cert-manager.io/inject-ca-from"
# Kinds of other projects the chart may render; the dry run needs their CRDs (a schema-less stand-in).
FOREIGN_KINDS = {
    ("cert-manager.io", "Issuer", "issuers"),
    ("cert-manager.io", "Certificate", "certificates"),
    ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
}

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_helm()


def render(helm: Path, *args: str, namespace: str = "team-a") -> list[Doc]:
    text = release.helm_template(helm, *args, namespace=namespace, release="gp")
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    (found,) = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    return found


def operator_config(docs: list[Doc]) -> OperatorConfiguration:
    config_map = one(docs, "ConfigMap")
    return OperatorConfiguration.model_validate(yaml.safe_load(config_map["data"]["config.yaml"]))


def webhooks(docs: list[Doc]) -> dict[str, Doc]:
    """The webhook configurations by name, without what the install adds around them (labels, annotations,
    caBundle), to compare with what the operator's code renders."""
    out = {}
    for doc in docs:
        if doc["kind"] not in WEBHOOK_KINDS:
            continue
        hooks = [{**h, "clientConfig": {"service": h["clientConfig"]["service"]}} for h in doc["webhooks"]]
        out[doc["metadata"]["name"]] = {"kind": doc["kind"], "webhooks": hooks}
    return out


VALUE_SETS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "grove-values": ("--values", str(GROVE_VALUES)),
    "no-gang-admission": ("--set", "config.gangAdmission.enabled=false"),
    "no-authorizer": ("--set", "config.authorizer.enabled=false"),
    "manual": ("--set", "config.server.webhooks.certProvisionMode=manual"),
    "cert-manager": ("--set", "config.server.webhooks.certProvisionMode=certManager"),
    "separate-webhooks": (
        "--set",
        "webhookServer.separate=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ),
}


def test_helm_lint_is_clean(helm: Path) -> None:
    for args in ((), ("--values", str(GROVE_VALUES))):
        proc = subprocess.run(
            [str(helm), "lint", "--strict", str(release.CHART), *args], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_the_webhooks_are_the_ones_the_operator_serves(helm: Path, values: str) -> None:
    """Whatever the values, the chart's webhook configurations are what webhook/registration.py renders
    for the operator configuration the chart gives it (namespace, Service, exempt users, gate)."""
    docs = render(helm, *VALUE_SETS[values])
    config = operator_config(docs)
    account = one(docs, "ServiceAccount")["metadata"]["name"]
    assert webhooks(docs) == webhooks(registration.for_config(config, account))


def test_everything_follows_the_release_namespace(helm: Path) -> None:
    docs = render(helm, namespace="team-a")
    text = yaml.safe_dump_all(docs)
    assert "grove-system" not in text
    namespaced = [d for d in docs if d["kind"] not in {"ClusterRole", "ClusterRoleBinding", "PriorityClass"}]
    for doc in namespaced:
        if doc["kind"] not in WEBHOOK_KINDS:
            assert doc["metadata"]["namespace"] == "team-a", doc["metadata"]["name"]
    config = operator_config(docs)
    assert config.server.webhooks.namespace == "team-a"
    assert config.leader_election.resource_namespace == "team-a"
    assert config.server.webhooks.mode == "service"
    authorizer = one(docs, registration.VALIDATING_KIND, "authorizer-webhook")["webhooks"][0]
    assert "system:serviceaccount:team-a:grove-operator" in authorizer["matchConditions"][0]["expression"]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "grove-operator", "namespace": "team-a"}
    ]
    lease_binding = one(docs, "RoleBinding")
    assert lease_binding["metadata"]["namespace"] == "team-a"


def test_highly_available_by_default(helm: Path) -> None:
    docs = render(helm)
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = spec["template"]["spec"]
    preferred = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = spec["selector"]["matchLabels"]
    assert preferred[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    assert operator_config(docs).leader_election.enabled
    service = one(docs, "Service", "grove-operator")
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [
        {"name": "webhooks", "port": 443, "targetPort": "webhooks", "protocol": "TCP"}
    ]
    container = pod["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "webhooks": 2750,
        "health": 2751,
        "metrics": 2752,
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # One replica: no PodDisruptionBudget (it would block every drain).
    assert not by_kind(render(helm, "--set", "replicaCount=1"), "PodDisruptionBudget")


def test_grove_initc_runs_from_the_operators_image(helm: Path) -> None:
    docs = render(helm, "--set", "image.repository=registry.example/ml/grove-py", "--set", "image.tag=1.2.3")
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/ml/grove-py:1.2.3"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GROVE_OPERATOR_IMAGE"] == "registry.example/ml/grove-py:1.2.3"
    assert "image" not in (operator_config_raw(docs).get("initContainer") or {})
    mirrored = render(helm, "--set", "config.initContainer.image=mirror.example/grove-py:1.2.3")
    assert operator_config(mirrored).init_container.image == "mirror.example/grove-py:1.2.3"
    digest = render(helm, "--set", "image.tag=sha256:" + "a" * 64)
    assert one(digest, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        "grove-py@sha256:" + "a" * 64
    )


def operator_config_raw(docs: list[Doc]) -> dict[str, Any]:
    data = yaml.safe_load(one(docs, "ConfigMap")["data"]["config.yaml"])
    assert isinstance(data, dict)
    return data


def cert_volume(docs: list[Doc], deployment: str = "grove-operator") -> Doc:
    pod = one(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "webhook-certs"]
    return volume


def test_certificates_auto(helm: Path) -> None:
    docs = render(helm)
    secret = one(docs, "Secret")
    assert secret["metadata"]["name"] == "grove-webhook-server-cert"
    assert "data" not in secret  # the operator's; an upgrade never erases it
    assert "emptyDir" in cert_volume(docs)
    assert operator_config(docs).server.webhooks.cert_provision_mode == "auto"
    assert not [d for d in docs if d["apiVersion"].startswith("cert-manager.io/")]
    for doc in docs:
        if doc["kind"] in WEBHOOK_KINDS:
            assert CERT_MANAGER_ANNOTATION not in (doc["metadata"].get("annotations") or {})


def test_certificates_provided(helm: Path) -> None:
    bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    docs = render(
        helm,
        "--set",
        "config.server.webhooks.certProvisionMode=manual",
        "--set",
        "config.server.webhooks.secretName=my-cert",
        "--set",
        f"webhooks.caBundle={bundle}",
    )
    assert not by_kind(docs, "Secret")  # the user's
    assert cert_volume(docs)["secret"]["secretName"] == "my-cert"
    config = operator_config(docs)
    assert config.server.webhooks.cert_provision_mode == "manual"
    assert config.server.webhooks.secret_name == "my-cert"
    for doc in docs:
        if doc["kind"] in WEBHOOK_KINDS:
            assert doc["webhooks"][0]["clientConfig"]["caBundle"] == bundle


def test_certificates_from_cert_manager(helm: Path) -> None:
    docs = render(helm, "--set", "config.server.webhooks.certProvisionMode=certManager")
    certificate = one(docs, "Certificate", "grove-operator-serving-cert")
    assert certificate["spec"]["secretName"] == "grove-webhook-server-cert"
    assert "grove-operator.team-a.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == "grove-operator-ca"
    assert {d["metadata"]["name"] for d in by_kind(docs, "Issuer")} == {
        "grove-operator-selfsigned",
        "grove-operator-ca",
    }
    hooks = [d for d in docs if d["kind"] in WEBHOOK_KINDS]
    assert len(hooks) == 5
    for doc in hooks:
        assert doc["metadata"]["annotations"][CERT_MANAGER_ANNOTATION] == "team-a/grove-operator-serving-cert"
    assert operator_config(docs).server.webhooks.cert_provision_mode == "manual"
    assert cert_volume(docs)["secret"]["secretName"] == "grove-webhook-server-cert"
    own = render(
        helm,
        "--set",
        "config.server.webhooks.certProvisionMode=certManager",
        "--set",
        "certManager.issuerRef.name=corp-ca",
        "--set",
        "certManager.issuerRef.kind=ClusterIssuer",
    )
    assert not by_kind(own, "Issuer")
    assert one(own, "Certificate")["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


def test_a_bad_certificate_mode_is_refused_with_the_choices(helm: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as err:
        render(helm, "--set", "config.server.webhooks.certProvisionMode=letsencrypt")
    assert "auto" in err.value.stderr and "certManager" in err.value.stderr


def test_a_grove_values_file_carries_over(helm: Path) -> None:
    docs = render(helm, "--values", str(GROVE_VALUES))
    config = operator_config(docs)
    assert config.server.webhooks.port == 9443 and config.server.metrics.port == 9445
    assert config.leader_election.lease_duration == 15.0  # Grove writes "15s"
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "grove-operator:v0.1.0-dev"
    # Grove points grove-initc at an image of its own; ours runs from the operator's image.
    assert "GROVE_INIT_CONTAINER_IMAGE" not in {e["name"] for e in container["env"]}
    labels = one(docs, "ServiceAccount")["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "grove-operator-service-account"  # theirs wins, once


def test_webhooks_in_a_deployment_of_their_own(helm: Path) -> None:
    docs = render(helm, *VALUE_SETS["separate-webhooks"])
    webhook_pods = one(docs, "Deployment", "grove-operator-webhooks")["spec"]["template"]
    assert "--webhooks-only" in webhook_pods["spec"]["containers"][0]["args"]
    service = one(docs, "Service", "grove-operator")
    assert service["spec"]["selector"].items() <= webhook_pods["metadata"]["labels"].items()
    operator_pods = one(docs, "Deployment", "grove-operator")["spec"]["template"]
    assert not service["spec"]["selector"].items() <= operator_pods["metadata"]["labels"].items()
    assert len(by_kind(docs, "PodDisruptionBudget")) == 2
    monitor = one(docs, "ServiceMonitor")
    metrics_service = one(docs, "Service", "grove-operator-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics_service["metadata"]["labels"].items()


def test_the_release_manifest_is_the_chart_rendered_with_defaults(helm: Path) -> None:
    text = release.render(helm)
    assert release.OUT.read_text() == text, "stale: run `make release`"
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == "grove-system"
    assert len(by_kind(docs, "CustomResourceDefinition")) == 5
    assert not by_kind(docs, "Secret")  # re-applying must not erase the operator's certificates


@pytest.fixture(scope="module")
def foreign_crds(cluster: ClusterInfo) -> Iterator[None]:
    """Schema-less CRDs for the kinds of cert-manager and the Prometheus operator, so a dry run can check
    the chart's objects of those kinds as far as the apiserver can without their controllers."""
    docs = []
    for group, kind, plural in sorted(FOREIGN_KINDS):
        docs.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}"},
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    ],
                },
            }
        )
    kubectl(cluster.kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs))
    kubectl(
        cluster.kubeconfig,
        "wait",
        "--for=condition=Established",
        "crd",
        *[f"{p}.{g}" for g, _, p in FOREIGN_KINDS],
    )
    yield


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_every_rendered_object_is_accepted_by_the_apiserver(
    helm: Path, cluster: ClusterInfo, namespace: str, foreign_crds: None, values: str
) -> None:
    docs = render(helm, *VALUE_SETS[values], "--set", "priorityClass.enabled=true", namespace=namespace)
    for doc in docs:
        # The shared cluster has the local operator's objects of these names: create renamed copies.
        if "namespace" not in doc["metadata"]:
            doc["metadata"]["name"] += "-dry-run"
    out = kubectl(cluster.kubeconfig, "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs))
    assert out.count("created (server dry run)") == len(docs), out

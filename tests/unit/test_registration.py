"""Webhook configuration rendering (service and url mode); the chart's copy is checked in test_chart.py."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from grove_api.operatorconfig import OperatorConfiguration
from webhook import paths, registration
from webhook.registration import Target, render

ROOT = Path(__file__).resolve().parents[2]
URL = Target(mode="url", host="127.0.0.1", port=40123)


def by_name(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs}


def test_names_kinds_and_webhook_names() -> None:
    docs = by_name(render(Target()))
    assert {n: (d["kind"], d["webhooks"][0]["name"]) for n, d in docs.items()} == {
        paths.DEFAULTING_CONFIG: ("MutatingWebhookConfiguration", paths.DEFAULTING_WEBHOOK),
        paths.VALIDATING_CONFIG: ("ValidatingWebhookConfiguration", paths.VALIDATING_WEBHOOK),
        paths.AUTHORIZER_CONFIG: ("ValidatingWebhookConfiguration", paths.AUTHORIZER_WEBHOOK),
        paths.CLUSTERTOPOLOGY_CONFIG: ("ValidatingWebhookConfiguration", paths.CLUSTERTOPOLOGY_WEBHOOK),
        paths.POD_MUTATING_CONFIG: ("MutatingWebhookConfiguration", paths.POD_MUTATING_WEBHOOK),
    }
    assert all(len(d["webhooks"]) == 1 for d in docs.values())
    assert all(d["apiVersion"] == "admissionregistration.k8s.io/v1" for d in docs.values())


@pytest.mark.parametrize("target", [Target(), URL], ids=["service", "url"])
def test_common_settings(target: Target) -> None:
    for doc in render(target):
        hook = doc["webhooks"][0]
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        assert hook["timeoutSeconds"] == 10
        assert hook["matchPolicy"] == "Exact"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert "caBundle" not in hook["clientConfig"]


def test_service_mode_client_config() -> None:
    docs = by_name(render(Target()))
    expected_paths = {
        paths.DEFAULTING_CONFIG: paths.DEFAULT_PODCLIQUESET,
        paths.VALIDATING_CONFIG: paths.VALIDATE_PODCLIQUESET,
        paths.AUTHORIZER_CONFIG: paths.AUTHORIZER,
        paths.CLUSTERTOPOLOGY_CONFIG: paths.VALIDATE_CLUSTERTOPOLOGY,
        paths.POD_MUTATING_CONFIG: paths.MUTATE_POD,
    }
    for name, path in expected_paths.items():
        assert docs[name]["webhooks"][0]["clientConfig"] == {
            "service": {"name": "grove-operator", "namespace": "grove-system", "port": 443, "path": path}
        }


def test_url_mode_client_config_and_ca_bundle() -> None:
    docs = by_name(render(URL, ca_bundle=b"PEM"))
    hook = docs[paths.VALIDATING_CONFIG]["webhooks"][0]
    assert hook["clientConfig"] == {
        "url": f"https://127.0.0.1:40123{paths.VALIDATE_PODCLIQUESET}",
        "caBundle": base64.b64encode(b"PEM").decode(),
    }
    assert Target(mode="url", host="::1", port=1).client_config("/p") == {"url": "https://[::1]:1/p"}


def test_target_from_config() -> None:
    config = OperatorConfiguration.model_validate(
        {"server": {"webhooks": {"mode": "url", "host": "127.0.0.2", "port": 9443, "namespace": "x"}}}
    )
    assert Target.from_config(config) == Target(mode="url", host="127.0.0.2", port=9443, namespace="x")
    assert Target.from_config(OperatorConfiguration()) == Target(port=2750)


def test_podcliqueset_rules() -> None:
    docs = by_name(render(Target()))
    for name in (paths.DEFAULTING_CONFIG, paths.VALIDATING_CONFIG):
        hook = docs[name]["webhooks"][0]
        assert hook["rules"] == [
            {
                "apiGroups": ["grove.io"],
                "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["podcliquesets"],
                "scope": "Namespaced",
            }
        ]
        assert hook["namespaceSelector"] == {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
            ]
        }
        assert hook["objectSelector"] == {}


def test_authorizer_rules_and_selectors() -> None:
    hook = by_name(render(Target()))[paths.AUTHORIZER_CONFIG]["webhooks"][0]
    got = {
        (g, r, v): tuple(rule["operations"])
        for rule in hook["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["apiVersions"]
    }
    # Creates too, for every kind (Grove: its own kinds only): nobody else pre-empts the operator's names.
    all_writes = ("CREATE", "UPDATE", "DELETE")
    assert got == {
        ("", "secrets", "v1"): all_writes,
        ("", "serviceaccounts", "v1"): all_writes,
        ("", "services", "v1"): all_writes,
        ("", "pods", "v1"): ("UPDATE",),
        ("rbac.authorization.k8s.io", "roles", "v1"): all_writes,
        ("rbac.authorization.k8s.io", "rolebindings", "v1"): all_writes,
        ("autoscaling", "horizontalpodautoscalers", "v1"): all_writes,
        ("autoscaling", "horizontalpodautoscalers", "v2"): all_writes,
        ("grove.io", "podcliques", "v1alpha1"): all_writes,
        ("grove.io", "podcliquescalinggroups", "v1alpha1"): all_writes,
        ("scheduler.grove.io", "podgangs", "v1alpha1"): all_writes,
    }
    assert all(rule["scope"] == "Namespaced" for rule in hook["rules"])
    assert hook["objectSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "grove-operator"}}
    assert hook["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "grove-system"]}
    ]
    other = by_name(render(Target(namespace="ops")))[paths.AUTHORIZER_CONFIG]["webhooks"][0]
    assert other["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "ops"]


def test_an_install_elsewhere_trusts_its_own_service_account_and_the_configured_exempt_users() -> None:
    config = OperatorConfiguration.model_validate(
        {
            "server": {"webhooks": {"namespace": "team-a"}},
            "authorizer": {"exemptServiceAccountUserNames": ["system:serviceaccount:kai-scheduler:binder"]},
        }
    )
    docs = by_name(registration.for_config(config, "gp"))
    hook = docs[paths.AUTHORIZER_CONFIG]["webhooks"][0]
    (condition,) = hook["matchConditions"]
    assert condition["expression"] == (
        "!(request.userInfo.username in ['system:serviceaccount:team-a:gp', "
        "'system:serviceaccount:kai-scheduler:binder'])"
    )
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "team-a"]
    services = [d["webhooks"][0]["clientConfig"]["service"] for d in docs.values()]
    assert {(s["name"], s["namespace"]) for s in services} == {("grove-operator", "team-a")}
    (pods,) = docs[paths.POD_MUTATING_CONFIG]["webhooks"][0]["matchConditions"]
    assert "request.userInfo.username == 'system:serviceaccount:team-a:gp'" in pods["expression"]


def test_clustertopology_rules() -> None:
    hook = by_name(render(Target()))[paths.CLUSTERTOPOLOGY_CONFIG]["webhooks"][0]
    assert hook["rules"] == [
        {
            "apiGroups": ["grove.io"],
            "apiVersions": ["v1alpha1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["clustertopologybindings"],
            "scope": "Cluster",
        }
    ]


def test_without_authorizer() -> None:
    names = [d["metadata"]["name"] for d in render(Target(), authorizer=False)]
    assert paths.AUTHORIZER_CONFIG not in names and len(names) == 4
    assert [n for _, n in registration.configuration_names(authorizer=False)] == names


def test_service_and_url_mode_differ_only_in_client_config() -> None:
    def strip(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for doc in docs:
            for hook in doc["webhooks"]:
                hook.pop("clientConfig")
        return docs

    assert strip(render(Target())) == strip(render(URL))


def test_pod_webhook_selects_only_gang_pods_on_create() -> None:
    hook = by_name(render(Target()))[paths.POD_MUTATING_CONFIG]["webhooks"][0]
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["objectSelector"] == {
        "matchLabels": {"app.kubernetes.io/managed-by": "grove-operator"},
        "matchExpressions": [{"key": "grove.io/podgang", "operator": "Exists"}],
    }
    assert hook["namespaceSelector"] == registration.NOT_KUBE_SYSTEM
    assert hook["reinvocationPolicy"] == "IfNeeded"


def test_pod_webhook_is_skipped_only_for_pods_that_have_what_it_adds() -> None:
    """The match condition: called unless the pod has the gate (when gating) and, with startup dependencies,
    grove-initc. (Its evaluation by the apiserver is covered in tests/e2e/test_pod_webhook.py.)"""
    operator = "system:serviceaccount:grove-system:grove-operator"
    hook = by_name(render(Target()))[paths.POD_MUTATING_CONFIG]["webhooks"][0]
    assert hook["matchConditions"] == registration.pod_needs_mutation(True, operator)
    (gated,) = registration.pod_needs_mutation(True, operator)
    assert "grove.io/podgang-pending-creation" in gated["expression"]
    assert "grove-initc" in gated["expression"] and "grove.io/startup-dependencies" in gated["expression"]
    # The admitted-on-create annotation counts only on the operator's own requests.
    assert (
        f"request.userInfo.username == '{operator}' && has(object.metadata.annotations)"
        in gated["expression"]
    )
    (ungated,) = registration.pod_needs_mutation(False, operator)
    assert "schedulingGates" not in ungated["expression"] and "grove-initc" in ungated["expression"]
    hook = by_name(render(Target(), gate=False))[paths.POD_MUTATING_CONFIG]["webhooks"][0]
    assert hook["matchConditions"] == [ungated]

"""The webhook configuration objects, rendered from one template for both ways of reaching the operator.

- `service` mode (in-cluster install): `clientConfig.service` = the `grove-operator` Service, port 443;
- `url` mode (operator running outside the cluster, as on the local cluster): `clientConfig.url`
  `https://<host>:<port><path>`.

Names, rules and settings follow Grove's chart: failurePolicy Fail,
sideEffects None, timeoutSeconds 10, matchPolicy Exact, admissionReviewVersions [v1]. Where Grove selects
all namespaces, we keep `kube-system` out for namespaced rules, so a broken operator can never block
the cluster's own components. The `caBundle` is left out here: the operator injects it at runtime
(`grove_operator.apicalls.inject_ca_bundle`), or a caller passes it in.

Pure, no I/O. The Helm chart's templates (deploy/helm/grove-py/templates/webhooks.yaml) render the same
configurations for an install (tests/integration/test_chart.py compares them); the local cluster applies
`for_config` in url mode.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from grove_api import constants as c
from grove_api.operatorconfig import DEFAULT_EXEMPT_USERS, OperatorConfiguration
from webhook import paths
from webhook.authorizer import service_account_username

ADMISSION_API_VERSION = "admissionregistration.k8s.io/v1"
MUTATING_KIND = "MutatingWebhookConfiguration"
VALIDATING_KIND = "ValidatingWebhookConfiguration"
SERVICE_PORT = 443
TIMEOUT_SECONDS = 10
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
EXCLUDED_NAMESPACES = ("kube-system",)

# (kind, configuration name): what the caBundle injection patches and `kubectl get` finds.
CONFIGURATIONS: tuple[tuple[str, str], ...] = (
    (MUTATING_KIND, paths.DEFAULTING_CONFIG),
    (VALIDATING_KIND, paths.VALIDATING_CONFIG),
    (VALIDATING_KIND, paths.AUTHORIZER_CONFIG),
    (VALIDATING_KIND, paths.CLUSTERTOPOLOGY_CONFIG),
    (MUTATING_KIND, paths.POD_MUTATING_CONFIG),
)


@dataclass(frozen=True)
class Target:
    """Where the apiserver reaches the webhook server."""

    mode: Literal["service", "url"] = "service"
    service_name: str = c.OPERATOR_NAME
    namespace: str = "grove-system"
    service_port: int = SERVICE_PORT
    host: str = "127.0.0.1"
    port: int = 2750

    @classmethod
    def from_config(cls, config: OperatorConfiguration) -> Target:
        hooks = config.server.webhooks
        return cls(
            mode=hooks.mode,
            service_name=hooks.service_name,
            namespace=hooks.namespace,
            host=hooks.host,
            port=hooks.port,
        )

    def client_config(self, path: str, ca_bundle: bytes | None = None) -> dict[str, Any]:
        if self.mode == "service":
            out: dict[str, Any] = {
                "service": {
                    "name": self.service_name,
                    "namespace": self.namespace,
                    "port": self.service_port,
                    "path": path,
                }
            }
        elif self.mode == "url":
            host = f"[{self.host}]" if ":" in self.host else self.host
            out = {"url": f"https://{host}:{self.port}{path}"}
        else:
            raise ValueError(f"unknown webhook mode {self.mode!r}: expected 'service' or 'url'")
        if ca_bundle:
            out["caBundle"] = base64.b64encode(ca_bundle).decode()
        return out


def _rule(
    group: str, versions: Sequence[str], resources: Sequence[str], ops: Sequence[str], scope: str
) -> dict[str, Any]:
    return {
        "apiGroups": [group],
        "apiVersions": list(versions),
        "operations": list(ops),
        "resources": list(resources),
        "scope": scope,
    }


def _namespaced(
    group: str, versions: Sequence[str], resources: Sequence[str], ops: Sequence[str]
) -> dict[str, Any]:
    return _rule(group, versions, resources, ops, "Namespaced")


def not_in_namespaces(*namespaces: str) -> dict[str, Any]:
    values = list(dict.fromkeys([*EXCLUDED_NAMESPACES, *namespaces]))
    return {"matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": values}]}


NOT_KUBE_SYSTEM = not_in_namespaces()

PCS_RULES = [_namespaced(c.GROUP, [c.VERSION], [c.PLURAL_PODCLIQUESET], ["CREATE", "UPDATE"])]
ALL_WRITES = ["CREATE", "UPDATE", "DELETE"]
AUTHORIZER_RULES = [
    _namespaced("", ["v1"], ["secrets", "serviceaccounts", "services"], ALL_WRITES),
    _namespaced("", ["v1"], ["pods"], ["UPDATE"]),
    _namespaced("rbac.authorization.k8s.io", ["v1"], ["roles", "rolebindings"], ALL_WRITES),
    _namespaced("autoscaling", ["v1", "v2"], ["horizontalpodautoscalers"], ALL_WRITES),
    _namespaced(c.GROUP, [c.VERSION], [c.PLURAL_PODCLIQUE, c.PLURAL_PODCLIQUESCALINGGROUP], ALL_WRITES),
    _namespaced(c.SCHEDULER_GROUP, [c.VERSION], [c.PLURAL_PODGANG], ALL_WRITES),
]
POD_RULES = [_namespaced("", ["v1"], ["pods"], ["CREATE"])]
# Only pods the operator created for a PodGang: no other workload ever waits on this webhook.
GANG_PODS = {
    "matchLabels": {c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE},
    "matchExpressions": [{"key": c.LABEL_PODGANG, "operator": "Exists"}],
}
CLUSTERTOPOLOGY_RULES = [
    _rule(c.GROUP, [c.VERSION], [c.PLURAL_CLUSTERTOPOLOGYBINDING], ["CREATE", "UPDATE"], "Cluster")
]


def _webhook(
    name: str,
    path: str,
    rules: list[dict[str, Any]],
    target: Target,
    ca_bundle: bytes | None,
    *,
    namespace_selector: dict[str, Any],
    object_selector: dict[str, Any] | None = None,
    match_conditions: list[dict[str, str]] | None = None,
    mutating: bool = False,
    reinvocation: str = "Never",
) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": target.client_config(path, ca_bundle),
        "failurePolicy": "Fail",
        "matchPolicy": "Exact",
        "namespaceSelector": namespace_selector,
        "objectSelector": object_selector or {},
        "rules": rules,
        "sideEffects": "None",
        "timeoutSeconds": TIMEOUT_SECONDS,
    }
    if match_conditions:
        hook["matchConditions"] = match_conditions
    if mutating:
        hook["reinvocationPolicy"] = reinvocation
    return hook


def trusted_users(
    namespace: str, service_account: str = c.OPERATOR_NAME, exempt: Sequence[str] = DEFAULT_EXEMPT_USERS
) -> list[str]:
    """The operator's own username (its ServiceAccount in the namespace it is installed in) and the exempt
    controllers' (`authorizer.exemptServiceAccountUserNames`): whom the authorizer always allows."""
    return list(dict.fromkeys([service_account_username(namespace, service_account), *exempt]))


def skip_trusted_users(users: Sequence[str]) -> list[dict[str, str]]:
    """The authorizer would allow the operator itself and the exempt controllers anyway: with this CEL match
    condition the apiserver does not even call it for them, which takes a webhook round trip off every
    object the operator creates (thousands when a large PodCliqueSet is created or scaled)."""
    listed = ", ".join(f"'{u}'" for u in users)
    return [
        {
            "name": "not-the-operator-or-an-exempt-controller",
            "expression": f"!(request.userInfo.username in [{listed}])",
        }
    ]


def pod_needs_mutation(gate: bool, operator: str) -> list[dict[str, str]]:
    """Call the pod webhook only for a pod that lacks what it would add (`grove_api.pod_admission`): the
    gate (when gating; not for a pod admitted on creation that `operator`, the operator's username, creates:
    anybody else's annotation proves nothing) and, for a pod with startup dependencies, grove-initc. A pod
    without them, from anyone, is mutated (and one a later webhook stripped of the gate is mutated again); a
    pod created with both costs no round trip."""
    gated = (
        f"(has(object.spec.schedulingGates) && "
        f"object.spec.schedulingGates.exists(g, g.name == '{c.SCHEDULING_GATE_PODGANG_PENDING}')) || "
        f"(request.userInfo.username == '{operator}' && "
        f"has(object.metadata.annotations) && "
        f"'{c.ANNOTATION_ADMITTED_ON_CREATE}' in object.metadata.annotations && "
        f"object.metadata.annotations['{c.ANNOTATION_ADMITTED_ON_CREATE}'] == 'true')"
    )
    initc = (
        f"!has(object.metadata.annotations) || "
        f"!('{c.ANNOTATION_STARTUP_DEPENDENCIES}' in object.metadata.annotations) || "
        f"(has(object.spec.initContainers) && "
        f"object.spec.initContainers.exists(x, x.name == '{c.INIT_CONTAINER_NAME}'))"
    )
    complete = f"({gated}) && ({initc})" if gate else initc
    return [{"name": "lacks-gate-or-grove-initc", "expression": f"!({complete})"}]


def _configuration(kind: str, name: str, webhook: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": ADMISSION_API_VERSION,
        "kind": kind,
        "metadata": {
            "name": name,
            "labels": {
                c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE,
                c.LABEL_PART_OF: "grove",
                c.LABEL_COMPONENT: "webhook",
            },
        },
        "webhooks": [webhook],
    }


def render(
    target: Target,
    *,
    authorizer: bool = True,
    gate: bool = True,
    ca_bundle: bytes | None = None,
    trusted: Sequence[str] | None = None,
    operator: str | None = None,
) -> list[dict[str, Any]]:
    """The five configurations (four without the authorizer), in a stable order. `gate`: whether the pod
    webhook gates pods (gang admission on), which decides what a pod must carry to skip it. `trusted`: the
    usernames the authorizer is not even called for (default: `trusted_users` of the target's namespace).
    `operator`: the operator's username (default: ServiceAccount grove-operator in the target's namespace)."""
    operator = operator or service_account_username(target.namespace, c.OPERATOR_NAME)
    docs = [
        _configuration(
            MUTATING_KIND,
            paths.DEFAULTING_CONFIG,
            _webhook(
                paths.DEFAULTING_WEBHOOK,
                paths.DEFAULT_PODCLIQUESET,
                PCS_RULES,
                target,
                ca_bundle,
                namespace_selector=NOT_KUBE_SYSTEM,
                mutating=True,
            ),
        ),
        _configuration(
            VALIDATING_KIND,
            paths.VALIDATING_CONFIG,
            _webhook(
                paths.VALIDATING_WEBHOOK,
                paths.VALIDATE_PODCLIQUESET,
                PCS_RULES,
                target,
                ca_bundle,
                namespace_selector=NOT_KUBE_SYSTEM,
            ),
        ),
    ]
    if authorizer:
        docs.append(
            _configuration(
                VALIDATING_KIND,
                paths.AUTHORIZER_CONFIG,
                _webhook(
                    paths.AUTHORIZER_WEBHOOK,
                    paths.AUTHORIZER,
                    AUTHORIZER_RULES,
                    target,
                    ca_bundle,
                    # Nor the operator's own namespace: what the operator keeps there (its serving-certificate
                    # Secret, written by earlier versions with the managed-by label) must stay writable while
                    # the webhook itself is unreachable (a new operator renewing an expired certificate would
                    # otherwise be refused by its own webhook).
                    namespace_selector=not_in_namespaces(target.namespace),
                    object_selector={"matchLabels": {c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE}},
                    match_conditions=skip_trusted_users(
                        trusted if trusted is not None else trusted_users(target.namespace)
                    ),
                ),
            )
        )
    docs.append(
        _configuration(
            VALIDATING_KIND,
            paths.CLUSTERTOPOLOGY_CONFIG,
            _webhook(
                paths.CLUSTERTOPOLOGY_WEBHOOK,
                paths.VALIDATE_CLUSTERTOPOLOGY,
                CLUSTERTOPOLOGY_RULES,
                target,
                ca_bundle,
                namespace_selector={},  # cluster-scoped: namespace selectors never apply
            ),
        )
    )
    docs.append(
        _configuration(
            MUTATING_KIND,
            paths.POD_MUTATING_CONFIG,
            _webhook(
                paths.POD_MUTATING_WEBHOOK,
                paths.MUTATE_POD,
                POD_RULES,
                target,
                ca_bundle,
                namespace_selector=NOT_KUBE_SYSTEM,
                object_selector=GANG_PODS,
                match_conditions=pod_needs_mutation(gate, operator),
                mutating=True,
                # Should a later mutating webhook drop our gate, we are called again and put it back.
                reinvocation="IfNeeded",
            ),
        )
    )
    return docs


def for_config(
    config: OperatorConfiguration, service_account: str = c.OPERATOR_NAME, ca_bundle: bytes | None = None
) -> list[dict[str, Any]]:
    """The configurations an operator running with `config` under ServiceAccount `service_account` (in
    `server.webhooks.namespace`) serves: what an install applies, whatever installs it."""
    return render(
        Target.from_config(config),
        authorizer=config.authorizer.enabled,
        gate=config.gang_admission.enabled,
        ca_bundle=ca_bundle,
        trusted=trusted_users(
            config.server.webhooks.namespace,
            service_account,
            config.authorizer.exempt_service_account_user_names,
        ),
        operator=service_account_username(config.server.webhooks.namespace, service_account),
    )


def configuration_names(*, authorizer: bool = True) -> list[tuple[str, str]]:
    """(kind, name) of every configuration `render` produces."""
    return [(kind, name) for kind, name in CONFIGURATIONS if authorizer or name != paths.AUTHORIZER_CONFIG]

"""What grove-initc needs to watch its gang's pods, one per PodCliqueSet (docs/api.md, "Other children";
docs/startup-ordering.md): a ServiceAccount, a Role allowing list/watch on pods, the RoleBinding, and a
token Secret for the ServiceAccount (mounted into grove-initc by the pod webhook). Never pruned: they live
as long as the PodCliqueSet."""

from __future__ import annotations

from grove_api import constants as c
from grove_api import naming

from .children import child_meta, default_labels
from .snapshot import Obj, Snapshot

RBAC_V1 = "rbac.authorization.k8s.io/v1"
# Exactly what grove-initc calls (initc/main.py: a LIST, then WATCHes, of the pods of its PodGang in its
# namespace; tests/unit/test_initc.py checks the two agree): a stolen token reads pod objects of this
# namespace, nothing else (docs/security.md).
INITC_RULES: tuple[dict[str, list[str]], ...] = (
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
)


def _labels(snap: Snapshot, component: str, name: str) -> dict[str, str]:
    # The Role's name (grove.io:pcs:<pcs>) is not a valid label value: it is named after the PCS.
    value = name if ":" not in name else snap.name
    return {**default_labels(snap.name), c.LABEL_NAME: value, c.LABEL_COMPONENT: component}


def service_accounts(snap: Snapshot) -> list[Obj]:
    sa = naming.service_account(snap.name)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": child_meta(snap, sa, _labels(snap, c.COMPONENT_POD_SERVICE_ACCOUNT, sa), snap.pcs),
            "automountServiceAccountToken": True,
        }
    ]


def roles(snap: Snapshot) -> list[Obj]:
    role = naming.role(snap.name)
    return [
        {
            "apiVersion": RBAC_V1,
            "kind": "Role",
            "metadata": child_meta(snap, role, _labels(snap, c.COMPONENT_POD_ROLE, role), snap.pcs),
            "rules": [{k: list(v) for k, v in rule.items()} for rule in INITC_RULES],
        }
    ]


def role_bindings(snap: Snapshot) -> list[Obj]:
    """None until the Role is in the cache: binding a Role the apiserver does not know yet is refused (the
    next pass makes it)."""
    if not snap.existing("roles"):
        return []
    role = naming.role(snap.name)
    return [
        {
            "apiVersion": RBAC_V1,
            "kind": "RoleBinding",
            "metadata": child_meta(snap, role, _labels(snap, c.COMPONENT_POD_ROLE_BINDING, role), snap.pcs),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": naming.service_account(snap.name),
                    "namespace": snap.namespace,
                }
            ],
        }
    ]


def token_secrets(snap: Snapshot) -> list[Obj]:
    name = naming.initc_token_secret(snap.name)
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": child_meta(
                snap,
                name,
                _labels(snap, c.COMPONENT_POD_SA_TOKEN_SECRET, name),
                snap.pcs,
                {"kubernetes.io/service-account.name": naming.service_account(snap.name)},
            ),
            "type": "kubernetes.io/service-account-token",
        }
    ]

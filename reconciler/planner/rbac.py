"""What grove-initc needs to watch its gang's pods, one per PodCliqueSet (docs/api.md, "Other children";
docs/startup-ordering.md): a ServiceAccount, a Role allowing list/watch on pods, the RoleBinding, and a
token Secret for the ServiceAccount (mounted into grove-initc by the pod webhook). Never pruned: they live
as long as the PodCliqueSet.

Rights go only to what is ours: the RoleBinding is made once this PodCliqueSet's own Role and ServiceAccount
exist, the token Secret once its ServiceAccount does. An object of someone else's under one of these names
(a ServiceAccount named like the PodCliqueSet is common: an app's Deployment and its ServiceAccount often
share the name) is never bound, given a token or changed (docs/decisions.md, "Names taken by others")."""

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


def _ours(snap: Snapshot, key: str, name: str) -> bool:
    """This PodCliqueSet's own child of kind `key` named `name` is in the cache."""
    obj = snap.existing(key).get(name)
    return obj is not None and snap.controls(obj)


def role_bindings(snap: Snapshot) -> list[Obj]:
    """None until our Role and ServiceAccount are in the cache: binding a Role the apiserver does not know yet
    is refused (the next pass makes it), and a same-named Role or ServiceAccount of someone else's must not
    be bound."""
    role = naming.role(snap.name)
    if not (
        _ours(snap, "roles", role) and _ours(snap, "service_accounts", naming.service_account(snap.name))
    ):
        return []
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
    """None until our ServiceAccount is in the cache: a token for someone else's same-named ServiceAccount
    would hand its rights to grove-initc (and to whoever reads the Secret)."""
    if not _ours(snap, "service_accounts", naming.service_account(snap.name)):
        return []
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

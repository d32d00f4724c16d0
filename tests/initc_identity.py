"""What the reconciler creates for a PodCliqueSet so that grove-initc can run, made by hand for the init
runner's tests (no operator involved): ServiceAccount, a Role that reads pods, its binding, the token
Secret grove-initc's volume mounts."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from grove_api import naming
from reconciler.planner.rbac import INITC_RULES


async def initc_identity(api: client.ApiClient, namespace: str, pcs: str, *, bind: bool = True) -> None:
    """ServiceAccount, Role (read pods), RoleBinding (unless not `bind`) and token Secret for `pcs`: what
    the reconciler creates for a PodCliqueSet."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    account: Any = {"metadata": {"name": pcs}}
    role: Any = {
        "metadata": {"name": f"grove.io:pcs:{pcs}"},
        "rules": [{k: list(v) for k, v in rule.items()} for rule in INITC_RULES],
    }
    secret: Any = {
        "metadata": {
            "name": naming.initc_token_secret(pcs),
            "annotations": {"kubernetes.io/service-account.name": pcs},
        },
        "type": "kubernetes.io/service-account-token",
    }
    await core.create_namespaced_service_account(namespace, account)
    await rbac.create_namespaced_role(namespace, role)
    if bind:
        await bind_initc_role(api, namespace, pcs)
    await core.create_namespaced_secret(namespace, secret)


async def bind_initc_role(api: client.ApiClient, namespace: str, pcs: str) -> None:
    binding: Any = {
        "metadata": {"name": f"grove.io:pcs:{pcs}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"grove.io:pcs:{pcs}"},
        "subjects": [{"kind": "ServiceAccount", "name": pcs, "namespace": namespace}],
    }
    await client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(namespace, binding)

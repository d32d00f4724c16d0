"""The operator's own identity: `system:serviceaccount:<namespace>:<name>`, the username the apiserver puts
in admission requests the operator makes (the managed-resource protection lets exactly it through)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from grove_api import constants as c
from grove_api.operatorconfig import OperatorConfiguration
from webhook.authorizer import service_account_username

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class IdentityError(Exception):
    """The operator cannot tell who it is (the message says what to set)."""


def running_namespace(namespace_file: Path = NAMESPACE_FILE) -> str:
    """The namespace of the pod this process runs in (its ServiceAccount's namespace file), "" outside one."""
    try:
        return namespace_file.read_text().strip()
    except OSError:
        return ""


def operator_namespace(config: OperatorConfiguration, namespace_file: Path = NAMESPACE_FILE) -> str:
    """The in-cluster namespace file when present (running in a pod), else `server.webhooks.namespace`."""
    return running_namespace(namespace_file) or config.server.webhooks.namespace


def operator_username(
    config: OperatorConfiguration,
    environ: Mapping[str, str] | None = None,
    namespace_file: Path = NAMESPACE_FILE,
) -> str:
    """The reconciler's username; IdentityError when the ServiceAccount name is not given."""
    env = os.environ if environ is None else environ
    name = env.get(c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME, "").strip()
    if not name:
        raise IdentityError(
            f'can not register authorizer webhook with no "{c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME}" environment '
            "variable: set it to the operator's ServiceAccount name (the Deployment sets it from "
            "spec.serviceAccountName), or turn the authorizer off with authorizer.enabled: false"
        )
    return service_account_username(operator_namespace(config, namespace_file), name)

"""Least privilege: the operator's effective rights, derived from the rendered chart and the release manifest,
are the reviewed list tests/data/operator-permissions.txt, and every line of that list names the code that
needs it. A right added to the chart without a reviewed line fails here, and so does a line whose code is
gone; what the controllers watch and write (asked of the code itself) must be granted."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from admitter.controller import Admitter
from grove_api.operatorconfig import OperatorConfiguration
from grove_operator.runtime import shared_informers
from kube.client import KubeClient
from kube.resources import Resource, lookup
from localcluster.binaries import ensure_helm
from reconciler.manager import Manager
from reconciler.planner import registry
from tools import release
from webhook import paths, registration

ROOT = Path(__file__).resolve().parent.parent.parent
PERMISSIONS = ROOT / "tests" / "data" / "operator-permissions.txt"
ACCOUNT = "grove-operator"
ANY = "*"
# A line of the list: scope apiGroup resource verb resourceName <- path: text
LINE = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+<-\s+([^:\s]+):\s+(.+)$")

Doc = dict[str, Any]


@dataclass(frozen=True, order=True)
class Permission:
    scope: str  # "cluster" (ClusterRoleBinding) or "namespace" (RoleBinding in the release namespace)
    group: str  # "core" for the core group
    resource: str
    verb: str
    name: str = ANY  # one resourceName, or any

    def __str__(self) -> str:
        return f"{self.scope} {self.group} {self.resource} {self.verb} {self.name}"


def rules_to_permissions(scope: str, rules: Iterable[Doc]) -> set[Permission]:
    """Each rule expanded to single rights. A wildcard is refused outright: it grants whatever the cluster
    serves, now or later, which no list can review."""
    out = set()
    for rule in rules or ():
        assert "nonResourceURLs" not in rule, f"the operator is granted a non-resource URL: {rule}"
        groups, resources, verbs = rule["apiGroups"], rule["resources"], rule["verbs"]
        assert ANY not in [*groups, *resources, *verbs], f"wildcard in {rule}"
        for group in groups:
            for resource in resources:
                for verb in verbs:
                    for name in rule.get("resourceNames") or [ANY]:
                        out.add(Permission(scope, group or "core", resource, verb, name))
    return out


def effective(docs: list[Doc], namespace: str, account: str = ACCOUNT) -> set[Permission]:
    """What the ServiceAccount `namespace`/`account` may do, from the roles bound to it in `docs`."""
    by_name = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}
    subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    out: set[Permission] = set()
    for binding in docs:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if subject not in (binding.get("subjects") or []):
            continue
        ref = binding["roleRef"]
        if binding["kind"] == "RoleBinding":  # "namespace" rights are the release namespace's, no other
            assert binding["metadata"]["namespace"] == namespace, binding["metadata"]
        role_ns = "" if ref["kind"] == "ClusterRole" else binding["metadata"]["namespace"]
        role = by_name[(ref["kind"], role_ns, ref["name"])]
        out |= rules_to_permissions(
            "cluster" if binding["kind"] == "ClusterRoleBinding" else "namespace", role["rules"]
        )
    return out


@dataclass(frozen=True)
class Reviewed:
    permission: Permission
    path: str
    text: str


def reviewed(path: Path = PERMISSIONS) -> list[Reviewed]:
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, f"{path.name}:{number}: not `scope group resource verb name <- path: text`: {line!r}"
        scope, group, resource, verb, name, source, text = match.groups()
        out.append(Reviewed(Permission(scope, group, resource, verb, name), source, text.strip()))
    return out


def permissions(lines: list[Reviewed]) -> set[Permission]:
    return {r.permission for r in lines}


def render(helm: Path, *args: str, namespace: str = release.NAMESPACE) -> list[Doc]:
    text = release.helm_template(helm, *args, namespace=namespace)
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_helm()


def difference(granted: set[Permission], listed: set[Permission]) -> str:
    extra = "\n".join(f"  + {p}" for p in sorted(granted - listed))
    missing = "\n".join(f"  - {p}" for p in sorted(listed - granted))
    return f"granted but not in the reviewed list:\n{extra}\nlisted but not granted:\n{missing}"


def test_the_list_is_sorted_and_each_right_is_listed_once() -> None:
    lines = [r.permission for r in reviewed()]
    assert lines == sorted(set(lines))


def test_every_listed_right_names_the_code_that_uses_it() -> None:
    for line in reviewed():
        source = ROOT / line.path
        assert source.is_file(), f"{line.permission}: no file {line.path}"
        assert line.text in source.read_text(), f"{line.permission}: {line.path} no longer has {line.text!r}"


def test_a_default_install_grants_exactly_the_reviewed_list(helm: Path) -> None:
    granted = effective(render(helm), release.NAMESPACE)
    listed = permissions(reviewed())
    assert granted == listed, difference(granted, listed)


def test_the_release_manifest_grants_exactly_the_reviewed_list(helm: Path) -> None:
    docs = [d for d in yaml.safe_load_all(release.OUT.read_text()) if d]
    granted = effective(docs, release.NAMESPACE)
    listed = permissions(reviewed())
    assert granted == listed, difference(granted, listed)


@pytest.mark.parametrize(
    "args",
    [
        ("--set", "config.server.webhooks.certProvisionMode=manual"),
        ("--set", "config.server.webhooks.certProvisionMode=certManager"),
        ("--set", "config.authorizer.enabled=false"),
        ("--set", "config.leaderElection.enabled=false"),
        ("--set", "config.gangAdmission.enabled=false", "--set", "webhookServer.separate=true"),
    ],
)
def test_other_values_grant_no_more_than_the_reviewed_list(helm: Path, args: tuple[str, ...]) -> None:
    granted = effective(render(helm, *args, namespace="team-a"), "team-a")
    assert granted <= permissions(reviewed()), difference(granted, permissions(reviewed()))


def test_what_a_mode_does_not_use_is_not_granted(helm: Path) -> None:
    """Rights in the release namespace follow the configuration: no certificate Secret to update unless the
    operator makes its certificates, no Lease without leader election, no authorizer configuration to
    inject into without the authorizer."""
    cert_secret = Permission("namespace", "core", "secrets", "update", "grove-webhook-server-cert")
    for mode in ("manual", "certManager"):
        docs = render(helm, "--set", f"config.server.webhooks.certProvisionMode={mode}")
        assert cert_secret not in effective(docs, release.NAMESPACE)
    no_leases = effective(render(helm, "--set", "config.leaderElection.enabled=false"), release.NAMESPACE)
    assert not [p for p in no_leases if p.resource == "leases"]
    no_authorizer = effective(render(helm, "--set", "config.authorizer.enabled=false"), release.NAMESPACE)
    assert not [p for p in no_authorizer if p.name == paths.AUTHORIZER_CONFIG]


def test_the_webhook_configurations_are_granted_by_their_names() -> None:
    """caBundle injection reads and patches exactly the configurations registration.py renders."""
    listed = permissions(reviewed())
    for kind, name in registration.configuration_names():
        resource = kind.lower() + "s"
        for verb in ("get", "patch"):
            assert Permission("cluster", "admissionregistration.k8s.io", resource, verb, name) in listed
    webhook_rights = {p for p in listed if p.group == "admissionregistration.k8s.io"}
    assert {p.name for p in webhook_rights} == {name for _, name in registration.configuration_names()}


def _group(resource: Resource) -> str:
    return resource.group or "core"


def watched_resources() -> list[Resource]:
    """Every kind the controllers watch, asked of the controllers themselves (built, never started)."""
    client = KubeClient(cast(Any, None))
    config = OperatorConfiguration()
    factory = shared_informers(client, gang_admission=True)
    Manager(client, config, informers=factory)
    Admitter(client, config.gang_admission, informers=factory)
    return [informer.resource for informer in factory.informers()]


def test_everything_the_controllers_watch_is_granted() -> None:
    listed = permissions(reviewed())
    for resource in watched_resources():
        for verb in ("list", "watch"):
            assert Permission("cluster", _group(resource), resource.plural, verb) in listed, (resource, verb)


def test_every_child_kind_can_be_kept() -> None:
    """The reconciler creates, reads back (a name already taken), updates and deletes every kind of child."""
    listed = permissions(reviewed())
    for kind in registry.CHILD_KINDS:
        resource = lookup(kind.api_version, kind.kind)
        for verb in ("create", "get", "patch", "delete"):
            assert Permission("cluster", _group(resource), resource.plural, verb) in listed, (kind.kind, verb)

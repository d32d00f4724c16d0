"""The managed-resource protection webhook's decisions (ported from Grove's authorization handler tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from grove_api import constants as c
from webhook.admission import AdmissionRequest, AdmissionResponse, parse_review
from webhook.authorizer import (
    Identity,
    Parent,
    decide,
    find_parent,
    handler,
    parent_name,
    service_account_username,
    subject_metadata,
)

NS = "ns1"
PCS = "my-pcs"
RECONCILER = service_account_username("grove-system", "grove-operator")
EXEMPT = "system:serviceaccount:kube-system:generic-garbage-collector"
OTHER = "alice"
IDENTITY = Identity.of(RECONCILER, [EXEMPT, "system:serviceaccount:kube-system:horizontal-pod-autoscaler"])

KINDS = {
    "PodClique": ("grove.io", "v1alpha1", "podcliques"),
    "PodCliqueScalingGroup": ("grove.io", "v1alpha1", "podcliquescalinggroups"),
    "PodGang": ("scheduler.grove.io", "v1alpha1", "podgangs"),
    "Pod": ("", "v1", "pods"),
    "Service": ("", "v1", "services"),
    "ServiceAccount": ("", "v1", "serviceaccounts"),
    "Secret": ("", "v1", "secrets"),
    "Role": ("rbac.authorization.k8s.io", "v1", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
}


def obj(
    name: str = "my-pcs-0-worker", *, part_of: str | None = PCS, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    labels = {c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE, **(extra or {})}
    if part_of is not None:
        labels[c.LABEL_PART_OF] = part_of
    return {"metadata": {"name": name, "namespace": NS, "labels": labels}}


def request(
    operation: str,
    *,
    kind: str = "PodClique",
    username: str = OTHER,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
) -> AdmissionRequest:
    group, version, resource = KINDS[kind]
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "operation": operation,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": ((new or old) or {}).get("metadata", {}).get("name", ""),
            "namespace": NS,
            "userInfo": {"username": username, "groups": ["system:authenticated"]},
            "object": new,
            "oldObject": old,
        },
    }
    return parse_review(json.dumps(review))


def for_op(
    operation: str, *, kind: str = "PodClique", username: str = OTHER, subject: dict[str, Any] | None = None
) -> AdmissionRequest:
    subject = subject or obj()
    if operation == "CREATE":
        return request(operation, kind=kind, username=username, new=subject)
    if operation == "UPDATE":
        return request(operation, kind=kind, username=username, new=obj(part_of="someone-else"), old=subject)
    if operation == "DELETE":
        return request(operation, kind=kind, username=username, old=subject)
    return request(operation, kind=kind, username=username)


PCS_META = {"name": PCS, "namespace": NS}
PCS_OPTED_OUT = {"name": PCS, "namespace": NS, "annotations": {c.ANNOTATION_DISABLE_PROTECTION: "true"}}


def lookup_returning(meta: dict[str, Any] | None, calls: list[tuple[str, str]] | None = None) -> Any:
    async def lookup(namespace: str, name: str) -> dict[str, Any] | None:
        if calls is not None:
            calls.append((namespace, name))
        return meta

    return lookup


async def failing_lookup(namespace: str, name: str) -> dict[str, Any] | None:
    raise RuntimeError("apiserver unavailable")


async def run(req: AdmissionRequest, lookup: Any = None) -> AdmissionResponse:
    return await handler(IDENTITY, lookup or lookup_returning(PCS_META))(req)


# --- TestHandle ----------------------------------------------------------------------------------------


HANDLE_CASES = [
    ("all users can CONNECT", for_op("CONNECT"), PCS_META, True),
    (
        "no parent PodCliqueSet determinable, allow",
        for_op("CREATE", subject=obj(part_of=None)),
        PCS_META,
        True,
    ),
    (
        "disable-managed-resource-protection annotation's presence allows requests from all users to CREATE",
        for_op("CREATE"),
        PCS_OPTED_OUT,
        True,
    ),
    (
        "disable-managed-resource-protection annotation's presence allows requests from all users to UPDATE",
        for_op("UPDATE"),
        PCS_OPTED_OUT,
        True,
    ),
    (
        "disable-managed-resource-protection annotation's presence allows requests from all users to DELETE",
        for_op("DELETE"),
        PCS_OPTED_OUT,
        True,
    ),
    ("reconciler serviceaccount can CREATE", for_op("CREATE", username=RECONCILER), PCS_META, True),
    ("exempt serviceaccounts can CREATE", for_op("CREATE", username=EXEMPT), PCS_META, True),
    ("other users cannot CREATE", for_op("CREATE"), PCS_META, False),
    ("reconciler serviceaccount can UPDATE", for_op("UPDATE", username=RECONCILER), PCS_META, True),
    ("exempt serviceaccounts can UPDATE", for_op("UPDATE", username=EXEMPT), PCS_META, True),
    ("other users cannot UPDATE", for_op("UPDATE"), PCS_META, False),
    ("reconciler serviceaccount can DELETE", for_op("DELETE", username=RECONCILER), PCS_META, True),
    ("exempt serviceaccounts can DELETE", for_op("DELETE", username=EXEMPT), PCS_META, True),
    ("other users cannot DELETE non-pod resources", for_op("DELETE"), PCS_META, False),
    ("all users can DELETE pod resources", for_op("DELETE", kind="Pod"), PCS_META, True),
]


@pytest.mark.parametrize(
    ("req", "parent", "allowed"), [c[1:] for c in HANDLE_CASES], ids=[c[0] for c in HANDLE_CASES]
)
async def test_handle(req: AdmissionRequest, parent: dict[str, Any], allowed: bool) -> None:
    response = await run(req, lookup_returning(parent))
    assert response.allowed is allowed, response
    if not allowed:
        assert response.code == 403 and response.reason == "Forbidden"


async def test_error_while_fetching_the_parent_podcliqueset_must_be_denied() -> None:
    response = await run(for_op("CREATE", username=RECONCILER), failing_lookup)
    assert not response.allowed
    assert response.code == 500
    assert "apiserver unavailable" in response.message and f"{NS}/my-pcs-0-worker" in response.message


async def test_missing_parent_allows_with_a_warning() -> None:
    response = await run(for_op("DELETE"), lookup_returning(None))
    assert response.allowed
    assert response.warnings == (f"parent PodCliqueSet {PCS} not found for resource: {NS}/my-pcs-0-worker",)


async def test_missing_part_of_label_allows_with_a_warning_and_skips_the_lookup() -> None:
    calls: list[tuple[str, str]] = []
    response = await run(for_op("UPDATE", subject=obj(part_of=None)), lookup_returning(PCS_META, calls))
    assert response.allowed and calls == []
    assert response.warnings == (
        f"missing required label {c.LABEL_PART_OF} on resource {NS}/my-pcs-0-worker, "
        "could not determine parent PodCliqueSet",
    )


async def test_missing_object_is_a_bad_request() -> None:
    response = await run(request("DELETE", old=None))
    assert not response.allowed and response.code == 400


@pytest.mark.parametrize("value", ["false", "", "yes"])
async def test_only_a_true_opt_out_annotation_disables_protection(value: str) -> None:
    meta = {**PCS_META, "annotations": {c.ANNOTATION_DISABLE_PROTECTION: value}}
    assert not (await run(for_op("CREATE"), lookup_returning(meta))).allowed


def test_unhandled_operation_is_denied() -> None:
    req = for_op("CREATE")
    weird = AdmissionRequest(
        **{**{f: getattr(req, f) for f in req.__dataclass_fields__}, "operation": "PATCH"}
    )
    response = decide(weird, Parent(PCS, PCS_META), IDENTITY)
    assert not response.allowed and response.message == "Unhandled operation. Admission denied."


def test_group_membership_is_not_considered() -> None:
    """Only exact usernames count (as in Grove); being in system:masters does not exempt anybody."""
    req = request("CREATE", username="admin", new=obj())
    assert not decide(req, Parent(PCS, PCS_META), IDENTITY).allowed


# --- TestHandleCreateOrUpdate / TestHandleDelete -----------------------------------------------------


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
@pytest.mark.parametrize(
    ("username", "allowed"),
    [(RECONCILER, True), (EXEMPT, True), ("system:serviceaccount:default:other", False)],
    ids=[
        "by reconciler serviceaccount is allowed",
        "by exempt serviceaccount is allowed",
        "by other serviceaccounts is denied",
    ],
)
def test_handle_create_or_update(operation: str, username: str, allowed: bool) -> None:
    response = decide(for_op(operation, username=username), Parent(PCS, PCS_META), IDENTITY)
    assert response.allowed is allowed


@pytest.mark.parametrize(
    ("kind", "username", "allowed"),
    [
        ("Pod", RECONCILER, True),
        ("Pod", EXEMPT, True),
        ("Pod", "system:serviceaccount:default:other", True),
        ("PodClique", RECONCILER, True),
        ("Service", EXEMPT, True),
        ("PodGang", "system:serviceaccount:default:other", False),
        ("Secret", OTHER, False),
        ("HorizontalPodAutoscaler", OTHER, False),
    ],
    ids=[
        "deletion of pods by reconciler serviceaccount is allowed",
        "deletion of pods by exempt serviceaccounts is allowed",
        "deletion of pods other serviceaccounts is allowed",
        "deletion of non-pod resources by reconciler serviceaccount is allowed",
        "deletion of non-pod resources by an exempt serviceaccount is allowed",
        "deletion of non-pod resources by any other serviceaccounts is denied",
        "deletion of a managed secret by a user is denied",
        "deletion of a managed hpa by a user is denied",
    ],
)
def test_handle_delete(kind: str, username: str, allowed: bool) -> None:
    response = decide(for_op("DELETE", kind=kind, username=username), Parent(PCS, PCS_META), IDENTITY)
    assert response.allowed is allowed


def scaled(subject: dict[str, Any], replicas: int, **changes: Any) -> dict[str, Any]:
    """`subject` as an update leaves it: replicas set, the apiserver's own fields moved, `changes` applied."""
    meta = {
        **subject["metadata"],
        "resourceVersion": "2",
        "generation": 2,
        "managedFields": [{"manager": "k"}],
    }
    out = {**subject, "metadata": meta, "spec": {**subject["spec"], "replicas": replicas}, "status": {"x": 1}}
    for path, value in changes.items():
        part, key = path.split("__")
        out[part] = {**out[part], key: value}
    return out


@pytest.mark.parametrize("kind", ["PodClique", "PodCliqueScalingGroup"])
@pytest.mark.parametrize(
    ("changes", "allowed"),
    [
        ({}, True),  # spec.replicas only: a scale
        ({"metadata__labels": {"touched": "yes"}}, False),
        ({"spec__minAvailable": 1}, False),
    ],
    ids=["replicas only", "replicas and a label", "replicas and another spec field"],
)
def test_an_update_of_replicas_alone_is_a_scale_anyone_may_make(
    kind: str, changes: dict[str, Any], allowed: bool
) -> None:
    before = {**obj(), "spec": {"replicas": 2, "minAvailable": 2}}
    req = request("UPDATE", kind=kind, new=scaled(before, 4, **changes), old=before)
    response = decide(req, Parent(PCS, PCS_META), IDENTITY)
    assert response.allowed is allowed
    if allowed:
        assert "only spec.replicas" in response.message


def test_an_update_of_replicas_alone_of_other_kinds_is_still_refused() -> None:
    before = {**obj(), "spec": {"replicas": 2}}
    req = request("UPDATE", kind="PodGang", new=scaled(before, 4), old=before)
    assert not decide(req, Parent(PCS, PCS_META), IDENTITY).allowed


# --- which object decides, and the parent lookup -----------------------------------------------------


def test_create_uses_object_update_and_delete_use_old_object() -> None:
    new, old = obj("new", part_of="from-new"), obj("old", part_of="from-old")
    assert subject_metadata(request("CREATE", new=new))["name"] == "new"
    assert subject_metadata(request("UPDATE", new=new, old=old))["name"] == "old"
    assert subject_metadata(request("DELETE", old=old))["name"] == "old"
    assert subject_metadata(request("CONNECT")) is None


async def test_update_asks_about_the_parent_of_the_old_object() -> None:
    calls: list[tuple[str, str]] = []
    await run(
        request("UPDATE", new=obj(part_of="new-parent"), old=obj(part_of="old-parent")),
        lookup_returning(PCS_META, calls),
    )
    assert calls == [(NS, "old-parent")]


async def test_get_parent_pcs_no_labels_on_resource_should_just_warn_and_not_error() -> None:
    parent = await find_parent(
        for_op("CREATE", subject={"metadata": {"name": "x", "namespace": NS}}), failing_lookup
    )
    assert parent == Parent(None)


async def test_get_parent_pcs_label_present_but_missing_pcs_should_just_warn_and_not_error() -> None:
    parent = await find_parent(for_op("UPDATE"), lookup_returning(None))
    assert parent == Parent(PCS, None)
    assert decide(for_op("UPDATE"), parent, IDENTITY).allowed


@pytest.mark.parametrize("kind", ["ServiceAccount", "PodClique"])
def test_nobody_else_creates_an_object_for_a_podcliqueset_not_created_yet(kind: str) -> None:
    """Names of a PodCliqueSet to come are not pre-empted with its own labels (Grove allows it: its operator
    would then adopt the object)."""
    req = for_op("CREATE", kind=kind)
    response = decide(req, Parent(PCS, None), IDENTITY)
    assert not response.allowed and response.code == 403
    assert f"for PodCliqueSet {PCS}, which does not exist in {NS}" in response.message
    assert f'user "{req.username}" may not create {kind} {NS}/' in response.message
    for trusted in (RECONCILER, EXEMPT):
        assert decide(for_op("CREATE", kind=kind, username=trusted), Parent(PCS, None), IDENTITY).allowed


async def test_get_parent_pcs_label_present_and_pcs_present_must_return_the_pcs() -> None:
    calls: list[tuple[str, str]] = []
    parent = await find_parent(for_op("CREATE"), lookup_returning(PCS_META, calls))
    assert parent == Parent(PCS, PCS_META) and calls == [(NS, PCS)]


async def test_get_parent_pcs_client_get_call_errors_must_return_error() -> None:
    with pytest.raises(RuntimeError, match="apiserver unavailable"):
        await find_parent(for_op("CREATE"), failing_lookup)


def test_parent_name_is_the_part_of_label() -> None:
    assert parent_name(obj()["metadata"]) == PCS
    assert parent_name({"labels": {}}) is None
    assert parent_name({}) is None


def test_reconciler_username() -> None:
    assert (
        service_account_username("grove-system", "grove-operator")
        == "system:serviceaccount:grove-system:grove-operator"
    )
    assert service_account_username("my-ns", "my-sa") == "system:serviceaccount:my-ns:my-sa"
    assert service_account_username("a-b-c", "d-e-f") == "system:serviceaccount:a-b-c:d-e-f"


# --- the denial message ------------------------------------------------------------------------------


def test_denial_says_who_what_why_and_how_for_a_podclique() -> None:
    message = decide(for_op("UPDATE"), Parent(PCS, PCS_META), IDENTITY).message
    assert message.startswith(f'user "{OTHER}" may not update PodClique {NS}/my-pcs-0-worker: ')
    assert f"managed by PodCliqueSet {PCS}" in message
    assert RECONCILER in message
    assert f"kubectl edit pcs {PCS} -n {NS}" in message
    assert f"kubectl scale pcs {PCS} -n {NS} --replicas=N" in message
    assert f"kubectl scale pclq my-pcs-0-worker -n {NS} --replicas=N" in message
    assert f"kubectl annotate pcs {PCS} -n {NS} {c.ANNOTATION_DISABLE_PROTECTION}=true" in message


def test_denial_for_other_kinds_does_not_suggest_scaling_them() -> None:
    message = decide(for_op("DELETE", kind="Service"), Parent(PCS, PCS_META), IDENTITY).message
    assert message.startswith(f'user "{OTHER}" may not delete Service {NS}/my-pcs-0-worker: ')
    assert "kubectl scale pclq" not in message and "kubectl scale pcs" in message
    create = decide(for_op("CREATE", kind="PodCliqueScalingGroup"), Parent(PCS, PCS_META), IDENTITY).message
    assert "may not create PodCliqueScalingGroup" in create and "kubectl scale pcsg my-pcs-0-worker" in create


# --- objects the apiserver never sends (found by tests/unit/test_handler_fuzz.py) ----------------------


@pytest.mark.parametrize(
    ("labels", "where"),
    [(True, "labels"), ({c.LABEL_PART_OF: ["my-pcs"]}, "labels")],
    ids=["labels-not-an-object", "label-not-a-string"],
)
async def test_unreadable_labels_are_a_bad_request_not_a_failed_lookup(labels: Any, where: str) -> None:
    """Was a 500 "could not look up the parent PodCliqueSet" (an AttributeError caught as a lookup failure)."""
    subject = obj()
    subject["metadata"]["labels"] = labels
    response = await run(for_op("CREATE", subject=subject))
    assert not response.allowed and response.code == 400
    assert response.message == f"request.object.metadata.{where}: must be an object of strings"


async def test_an_update_of_a_spec_that_is_not_an_object_is_decided() -> None:
    """Was an AttributeError (a 500) in the scale-only check."""
    old, new = obj(), obj()
    old["spec"], new["spec"] = ["x"], ["y"]
    response = await run(request("UPDATE", new=new, old=old))
    assert not response.allowed and response.code == 403 and "may not update" in response.message

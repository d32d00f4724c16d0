"""The pod mutating webhook: Grove's scheduling gate on every gang pod at CREATE, nothing else touched."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest

from grove_api import constants as c
from grove_api.operatorconfig import InitContainer, OperatorConfiguration, version
from grove_api.pod_admission import GATE, admitted_on_create_copy, gate_ops, initc_ops, with_gate
from tests.builders import admission_review
from webhook.admission import parse_review
from webhook.pods import PodMutatingHandler

GANG_LABELS = {c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE, c.LABEL_PODGANG: "pcs-0"}


def pod(spec: dict[str, Any] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "pcs-0-a-", "namespace": "ns", "labels": labels or dict(GANG_LABELS)},
        "spec": spec if spec is not None else {"containers": [{"name": "c", "image": "busybox"}]},
    }


def apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    return jsonpatch.apply_patch(copy.deepcopy(obj), ops)


def test_adds_the_gate_to_a_pod_without_gates() -> None:
    ops, warnings = gate_ops(pod())
    assert apply(pod(), ops)["spec"]["schedulingGates"] == [GATE]
    assert warnings == []


def test_keeps_other_gates_and_appends_ours() -> None:
    p = pod({"containers": [], "schedulingGates": [{"name": "example.com/quota"}]})
    ops, _ = gate_ops(p)
    assert apply(p, ops)["spec"]["schedulingGates"] == [{"name": "example.com/quota"}, GATE]


def test_idempotent() -> None:
    once = apply(pod(), gate_ops(pod())[0])
    assert gate_ops(once) == ([], [])


def test_pod_with_node_name_is_left_alone_with_a_warning() -> None:
    ops, warnings = gate_ops(pod({"containers": [], "nodeName": "n1"}))
    assert ops == []
    assert "bypasses the scheduler" in warnings[0] and "'n1'" in warnings[0]


def test_a_pod_admitted_on_creation_is_pinned_ungated_and_not_gated_again() -> None:
    """The reconciler creates the pods of a gang the admitter already admitted pinned and without the
    gate; the annotation tells the webhook not to add one. Other gates and node selectors stay."""
    gated = with_gate(pod({"containers": [], "nodeSelector": {"zone": "a"}}))
    gated["spec"]["schedulingGates"].insert(0, {"name": "example.com/quota"})
    admitted = admitted_on_create_copy(gated, "node-7")
    assert admitted["spec"]["schedulingGates"] == [{"name": "example.com/quota"}]
    assert admitted["spec"]["nodeSelector"] == {"zone": "a", "kubernetes.io/hostname": "node-7"}
    assert admitted["metadata"]["annotations"] == {c.ANNOTATION_ADMITTED_ON_CREATE: "true"}
    assert gate_ops(admitted, by_operator=True) == ([], [])
    assert "schedulingGates" not in admitted_on_create_copy(pod(), "node-7")["spec"]
    assert gated["spec"]["nodeSelector"] == {"zone": "a"}  # the original is left alone


OPERATOR = "system:serviceaccount:grove-system:grove-operator"


@pytest.mark.parametrize(
    ("username", "operator", "gated"),
    [
        (OPERATOR, OPERATOR, False),  # the operator's own pod of a gang admitted on creation
        ("alice", OPERATOR, True),  # anybody else's annotation proves nothing
        ("system:serviceaccount:grove-system:other", OPERATOR, True),
        (OPERATOR, None, True),  # identity unknown: nobody is trusted
    ],
)
async def test_the_admitted_on_create_annotation_counts_only_from_the_operator(
    username: str, operator: str | None, gated: bool
) -> None:
    admitted = admitted_on_create_copy(pod(), "node-7")
    review = parse_review(json.dumps(admission_review(admitted, username=username)))
    response = await PodMutatingHandler(operator=operator)(review)
    assert response.allowed
    made = apply(admitted, response.patch)
    assert (GATE in made["spec"].get("schedulingGates", [])) == gated
    assert bool(response.warnings) == gated
    if gated:
        assert c.ANNOTATION_ADMITTED_ON_CREATE in response.warnings[0] and "gated" in response.warnings[0]


async def test_handler_patches_gang_pods_on_create() -> None:
    response = await PodMutatingHandler()(parse_review(json.dumps(admission_review(pod()))))
    assert response.allowed and apply(pod(), response.patch)["spec"]["schedulingGates"] == [GATE]


@pytest.mark.parametrize(
    ("labels", "operation"),
    [
        ({c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE}, "CREATE"),  # no podgang label
        ({c.LABEL_PODGANG: "pcs-0"}, "CREATE"),  # not ours
        (GANG_LABELS, "UPDATE"),
    ],
    ids=["no-podgang", "not-managed", "update"],
)
async def test_handler_leaves_other_pods_and_operations_alone(labels: dict[str, str], operation: str) -> None:
    p = pod(labels=labels)
    body = admission_review(p, operation=operation, old=p if operation == "UPDATE" else None)
    response = await PodMutatingHandler()(parse_review(json.dumps(body)))
    assert response.allowed and response.patch == [] and response.warnings == ()


async def test_handler_refuses_a_gang_pod_without_spec() -> None:
    p = pod()
    p["spec"] = None
    response = await PodMutatingHandler()(parse_review(json.dumps(admission_review(p))))
    assert not response.allowed and response.code == 422 and "spec" in response.message


async def test_no_gate_when_gang_admission_is_disabled() -> None:
    response = await PodMutatingHandler(gate=False)(parse_review(json.dumps(admission_review(pod()))))
    assert response.allowed and response.patch == []


# --- grove-initc -------------------------------------------------------------------------------------


def dependent(deps: str, **spec: Any) -> dict[str, Any]:
    p = pod({"containers": [{"name": "c", "image": "busybox"}], **spec})
    p["metadata"]["labels"][c.LABEL_PART_OF] = "pcs"
    p["metadata"]["annotations"] = {c.ANNOTATION_STARTUP_DEPENDENCIES: deps}
    return p


def test_initc_container_and_volumes_from_the_dependencies() -> None:
    p = dependent("pcs-0-a:2,pcs-0-sg-0-b:1")
    ops = initc_ops(p, "img:1")
    assert isinstance(ops, list)
    spec = apply(p, ops)["spec"]
    assert spec["initContainers"] == [
        {
            "name": "grove-initc",
            "image": "img:1",
            "args": ["--podcliques=pcs-0-a:2", "--podcliques=pcs-0-sg-0-b:1"],
            "volumeMounts": [
                {"name": "pod-info-vol", "mountPath": "/var/grove/pod-info", "readOnly": True},
                {
                    "name": "sa-token-secret-vol",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "readOnly": True,
                },
            ],
        }
    ]
    assert spec["volumes"] == [
        {
            "name": "pod-info-vol",
            "downwardAPI": {
                "items": [
                    {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}},
                    {"path": "podgangname", "fieldRef": {"fieldPath": "metadata.labels['grove.io/podgang']"}},
                ]
            },
        },
        {"name": "sa-token-secret-vol", "secret": {"secretName": "pcs-ic-sat", "defaultMode": 0o444}},
    ]
    assert initc_ops(apply(p, ops), "img:1") == []  # idempotent


@pytest.mark.parametrize(
    ("security", "mode"),
    [
        (None, 0o444),  # grove-initc runs as 65532 (or the pod's user): the files are root's
        ({"runAsUser": 1000, "runAsNonRoot": True}, 0o444),
        ({"fsGroup": 2000}, 0o440),  # group-owned by the fsGroup, which grove-initc has
        ({"fsGroup": 0}, 0o440),
    ],
)
def test_the_token_is_never_writable_and_readable_by_others_only_without_an_fs_group(
    security: dict[str, Any] | None, mode: int
) -> None:
    p = dependent("pcs-0-a:1", **({"securityContext": security} if security is not None else {}))
    ops = initc_ops(p, "img")
    assert isinstance(ops, list)
    (token,) = [v for v in apply(p, ops)["spec"]["volumes"] if v["name"] == "sa-token-secret-vol"]
    assert token["secret"]["defaultMode"] == mode


def test_initc_runs_from_the_operators_own_image_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(c.ENV_OPERATOR_IMAGE, "registry.example/grove-py:9.9")
    assert InitContainer().image == "registry.example/grove-py:9.9"
    assert OperatorConfiguration().init_container.image == "registry.example/grove-py:9.9"
    configured = OperatorConfiguration.model_validate(
        {"initContainer": {"image": "mirror/x:1", "command": []}}
    )
    assert configured.init_container.image == "mirror/x:1"
    monkeypatch.delenv(c.ENV_OPERATOR_IMAGE)
    assert InitContainer().image == f"grove-py:{version()}"
    ops = initc_ops(dependent("pcs-0-a:1"), "mirror/x:1", configured.init_container.command)
    assert isinstance(ops, list)
    assert "command" not in apply(dependent("pcs-0-a:1"), ops)["spec"]["initContainers"][0]


def test_initc_appended_after_the_pods_own_init_containers_and_volumes() -> None:
    p = dependent("pcs-0-a:1", initContainers=[{"name": "setup"}], volumes=[{"name": "data", "emptyDir": {}}])
    ops = initc_ops(p, "img")
    assert isinstance(ops, list)
    spec = apply(p, ops)["spec"]
    assert [x["name"] for x in spec["initContainers"]] == ["setup", "grove-initc"]
    assert [v["name"] for v in spec["volumes"]] == ["data", "pod-info-vol", "sa-token-secret-vol"]


@pytest.mark.parametrize("deps", ["pcs-0-a", "pcs-0-a:0", ":2", "pcs-0-a:x"])
async def test_malformed_dependencies_are_refused_clearly(deps: str) -> None:
    response = await PodMutatingHandler()(parse_review(json.dumps(admission_review(dependent(deps)))))
    assert not response.allowed and response.code == 422
    assert (
        "grove.io/startup-dependencies" in response.message
        and "<PodClique name>:<minAvailable" in response.message
    )


async def test_handler_gates_and_injects_in_one_patch() -> None:
    p = dependent("pcs-0-a:1")
    initc = InitContainer(image="registry.example/mirror/grove-py:1.2")
    response = await PodMutatingHandler(initc=initc)(parse_review(json.dumps(admission_review(p))))
    spec = apply(p, response.patch)["spec"]
    assert spec["schedulingGates"] == [GATE]
    (container,) = spec["initContainers"]
    assert container["name"] == "grove-initc"
    assert container["image"] == "registry.example/mirror/grove-py:1.2"
    assert container["command"] == ["grove-initc"]  # the operator's image has both entry points
    no_deps = pod()
    assert "initContainers" not in apply(no_deps, gate_ops(no_deps)[0])["spec"]


@pytest.mark.parametrize("metadata", [["x"], {"labels": {c.LABEL_PODGANG: 1}}], ids=["list", "label-int"])
async def test_handler_refuses_unreadable_metadata(metadata: Any) -> None:
    """The apiserver never sends such a pod; a review that does was an AttributeError (a 500)."""
    body = admission_review(pod())
    body["request"]["object"]["metadata"] = metadata
    response = await PodMutatingHandler()(parse_review(json.dumps(body)))
    assert not response.allowed and response.code == 400 and "request.object.metadata" in response.message

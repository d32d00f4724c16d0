"""The pod mutating webhook: Grove's scheduling gate on every gang pod at CREATE, nothing else touched."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest

from grove_api import constants as c
from tests.builders import admission_review
from webhook.admission import parse_review
from webhook.pods import GATE, PodMutatingHandler, gate_ops

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

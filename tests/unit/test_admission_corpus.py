"""The admission corpus against the pure handlers: defaulting webhook, then validating webhook (as the
apiserver chains them). Every case checks the exact multiset of (error type, field path), the message and
the warnings."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import jsonpatch
import pytest

from grove_api.fielderrors import aggregate
from grove_api.operatorconfig import OperatorConfiguration
from tests.admission_corpus import CASES, Case
from webhook.admission import AdmissionRequest, AdmissionResponse
from webhook.pcs import DefaultingHandler, ValidatingHandler


def request(
    operation: str, obj: dict[str, Any] | None, old: dict[str, Any] | None = None
) -> AdmissionRequest:
    return AdmissionRequest(
        uid=str(uuid.uuid4()),
        operation=operation,
        kind={"group": "grove.io", "version": "v1alpha1", "kind": "PodCliqueSet"},
        resource={"group": "grove.io", "version": "v1alpha1", "resource": "podcliquesets"},
        sub_resource="",
        name="",
        namespace="default",
        username="admin",
        groups=("system:masters",),
        object=obj,
        old_object=old,
        dry_run=False,
        raw={},
    )


def handlers(case: Case) -> tuple[DefaultingHandler, ValidatingHandler]:
    config = OperatorConfiguration.model_validate(case.config)

    async def lookup(name: str) -> Sequence[str] | None:
        if case.topology_lookup_fails:
            raise ConnectionError("apiserver unavailable")
        return case.topologies.get(name)

    return DefaultingHandler(config), ValidatingHandler(config, lookup)


async def admit(case: Case) -> tuple[dict[str, Any], AdmissionResponse, list[str], list[str]]:
    """Run the chain; returns the defaulted object, the validating response, the error keys, warnings."""
    default, validate = handlers(case)
    mutated = await default(request(case.operation, case.obj, case.old))
    assert mutated.allowed, mutated.message
    defaulted = jsonpatch.apply_patch(case.obj, mutated.patch)
    req = request(case.operation, defaulted, case.old)
    result = await validate.review(req)
    response = await validate(req)
    keys = [f"{e.type.name}@{e.path}" for e in result.errors]
    return defaulted, response, keys, result.warnings


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_case(case: Case) -> None:
    _, response, keys, warnings = await admit(case)
    assert Counter(keys) == Counter(case.errors), response.message
    assert response.allowed == (not case.errors)
    if case.errors:
        assert response.code == 422 and response.reason == "Invalid"
        for text in case.contains:
            assert text in response.message
    for text in case.warnings:
        assert any(text in w for w in warnings), warnings
    assert list(response.warnings) == warnings


def test_corpus_size() -> None:
    assert len(CASES) >= 150
    assert len({c.name for c in CASES}) == len(CASES)


async def test_message_is_the_aggregate_in_apiserver_style() -> None:
    case = next(c for c in CASES if c.name == "minAvailable greater than replicas")
    _, response, _, _ = await admit(case)
    assert response.message == (
        "spec.template.cliques[1].spec.minAvailable: Invalid value: 3: must not be greater than replicas (2): "
        "minAvailable is the number of pods that must be running for the gang to be healthy"
    )
    several = next(c for c in CASES if c.name == "negative replicas")
    _, response, _, _ = await admit(several)
    assert response.message.startswith("[spec.template.cliques[0].spec.replicas: Invalid value: -1: ")
    assert aggregate([]) == "[]"

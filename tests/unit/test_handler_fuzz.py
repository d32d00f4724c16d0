"""Every admission handler the operator serves, fuzzed directly (no HTTP: the server is fuzzed in
test_admission_fuzz.py): whatever the review, an allow whose patch applies or a 4xx refusal that says why, and
a PodCliqueSet the webhooks admit is planned without an exception. The same strategies go through the real
apiserver in tests/integration/test_fuzz_apiserver.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from grove_api import constants as c
from grove_api.operatorconfig import OperatorConfiguration
from tests.fuzzing import (
    TOPOLOGY,
    TOPOLOGY_LEVELS,
    check_answer,
    fuzz_settings,
    gang_pod,
    managed_object,
    mutated_review_documents,
    plan_stored,
    podcliquesets,
    topology_binding,
    valid_review,
)
from webhook import authorizer, clustertopology
from webhook.admission import BadReview, Handler, parse_review
from webhook.pcs import DefaultingHandler, ValidatingHandler
from webhook.pods import PodMutatingHandler

OPERATOR = authorizer.service_account_username("grove-system", "grove-operator")
CONFIG = OperatorConfiguration.model_validate(
    {"topologyAwareScheduling": {"enabled": True}, "network": {"autoMNNVLEnabled": True}}
)


async def parent(namespace: str, name: str) -> dict[str, Any] | None:
    """Every PodCliqueSet the authorizer asks for exists, so its decision goes past the lookup."""
    return {"name": name, "namespace": namespace}


async def topologies(name: str) -> list[str] | None:
    return list(TOPOLOGY_LEVELS) if name == TOPOLOGY else None


# (handler, the object its reviews are about, whether its refusals are field errors)
TARGETS: dict[str, tuple[Handler, dict[str, Any], bool]] = {
    "authorizer": (
        authorizer.handler(authorizer.Identity.of(OPERATOR), parent),
        managed_object(c.KIND_PODCLIQUE, c.API_VERSION, "pcs", "default"),
        False,
    ),
    "pod": (PodMutatingHandler(operator=OPERATOR), gang_pod("pcs", "default"), True),
    "clustertopology": (clustertopology.handler(CONFIG), topology_binding(TOPOLOGY, TOPOLOGY_LEVELS), True),
}


@pytest.mark.parametrize("target", TARGETS)
@fuzz_settings(150)
@given(data=st.data())
async def test_handler_answers_every_review(target: str, data: st.DataObject) -> None:
    handler, sample, field_paths = TARGETS[target]
    review = data.draw(mutated_review_documents(sample))
    try:
        request = parse_review(json.dumps(review))
    except BadReview:
        event("malformed review")
        return
    response = await handler(request)
    event("allowed" if response.allowed else f"refused {response.code}")
    check_answer(request, response, field_paths=field_paths)


@fuzz_settings(150)
@given(doc=podcliquesets("f-", "default"))
async def test_admitted_podcliquesets_are_planned(doc: dict[str, Any]) -> None:
    """What the apiserver would do with our webhooks (default, then validate the defaulted object), and
    then what the reconciler would do with the stored object. The apiserver sets apiVersion and kind."""
    doc = {**doc, "apiVersion": c.API_VERSION, "kind": c.KIND_PODCLIQUESET}
    request = parse_review(json.dumps(valid_review(doc, "1", "CREATE")))
    defaulted = check_answer(request, await DefaultingHandler(CONFIG)(request), field_paths=True)
    if defaulted is None:
        event("refused by defaulting")
        return
    request = parse_review(json.dumps(valid_review(defaulted, "1", "CREATE")))
    if check_answer(request, await ValidatingHandler(CONFIG, topologies)(request), field_paths=True) is None:
        event("refused by validation")
        return
    event("stored")
    plan_stored(defaulted)

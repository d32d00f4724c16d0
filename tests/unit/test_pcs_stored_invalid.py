"""A PodCliqueSet stored without our validation (before the webhooks, by an older version, by Grove) stays
manageable: updates that leave its spec alone (metadata, finalizers, deletion) are never refused; a change of
its spec must make it valid."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from grove_api import constants as c
from grove_api.defaulting import default_podcliqueset
from grove_api.operatorconfig import OperatorConfiguration
from grove_api.validation.podcliqueset import spec_unchanged
from tests.builders import admission_review, clique, pcs
from webhook.admission import AdmissionResponse, parse_review
from webhook.pcs import STORED_SPEC_INVALID, defaulting_handler, validating_handler

CONFIG = OperatorConfiguration()


async def no_topologies(name: str) -> list[str] | None:
    return None


def stored(kind: str) -> dict[str, Any]:
    """What the apiserver may hold: a spec that breaks a rule (minAvailable > replicas), or one our models
    cannot even read (replicas a string)."""
    doc = pcs("old", cliques=[clique("a", replicas=1, min_available=3)])
    if kind == "unreadable":
        doc["spec"]["template"]["cliques"][0]["spec"]["replicas"] = "many"
    doc["metadata"]["finalizers"] = ["grove.io/podcliqueset.grove.io"]
    return doc


async def both(new: dict[str, Any], old: dict[str, Any]) -> tuple[AdmissionResponse, AdmissionResponse]:
    review = parse_review(json.dumps(admission_review(new, operation="UPDATE", old=old)))
    return (
        await defaulting_handler(CONFIG)(review),
        await validating_handler(CONFIG, no_topologies)(review),
    )


@pytest.mark.parametrize("kind", ["breaks-a-rule", "unreadable"])
@pytest.mark.parametrize("change", ["label", "finalizer removed", "deleting"])
async def test_an_update_that_leaves_the_spec_alone_is_allowed(kind: str, change: str) -> None:
    old = stored(kind)
    new = copy.deepcopy(old)
    if change == "label":
        new["metadata"]["labels"] = {"team": "a"}
    elif change == "finalizer removed":
        new["metadata"]["finalizers"] = []
    else:
        new["metadata"]["deletionTimestamp"] = "2026-12-07T10:00:00Z"
    defaulting, validating = await both(new, old)
    assert defaulting.allowed and validating.allowed, (defaulting.message, validating.message)
    if kind == "unreadable":
        assert defaulting.warnings == (STORED_SPEC_INVALID,) and not defaulting.patch


@pytest.mark.parametrize("kind", ["breaks-a-rule", "unreadable"])
async def test_a_change_of_the_spec_must_make_it_valid(kind: str) -> None:
    old = stored(kind)
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 2
    defaulting, validating = await both(new, old)
    assert not (defaulting.allowed and validating.allowed)
    message = defaulting.message if not defaulting.allowed else validating.message
    assert "spec.template.cliques[0].spec" in message


async def test_what_the_update_itself_does_wrong_is_still_refused() -> None:
    """The MNNVL annotation may not be added after creation: refused even on an object whose stored spec
    is invalid (only the spec's own faults are excused), and only that fault is reported."""
    config = OperatorConfiguration.model_validate({"network": {"autoMNNVLEnabled": True}})
    old = stored("breaks-a-rule")
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {c.ANNOTATION_MNNVL_GROUP: "nvl-a"}
    review = parse_review(json.dumps(admission_review(new, operation="UPDATE", old=old)))
    response = await validating_handler(config, no_topologies)(review)
    assert not response.allowed
    assert "cannot be added" in response.message and "minAvailable" not in response.message


def test_the_same_spec_is_the_stored_one_or_it_with_our_defaults() -> None:
    old = pcs("old", cliques=[clique("a")], startup=None, termination_delay=None)
    assert spec_unchanged(copy.deepcopy(old), old)
    assert spec_unchanged(default_podcliqueset(old), old)  # the defaulting webhook ran before validation
    changed = copy.deepcopy(old)
    changed["spec"]["replicas"] = 3
    assert not spec_unchanged(changed, old)
    assert not spec_unchanged(old, None) and not spec_unchanged(None, old)
    assert not spec_unchanged({"spec": {"x": 1}}, {"spec": "not an object"})

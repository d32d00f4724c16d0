"""Property-based fuzzing of PodCliqueSet documents through the defaulting and validating handlers:
whatever the document, a handler answers (allow or a denial with a message) and never raises."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grove_api.operatorconfig import OperatorConfiguration
from tests.admission_corpus import CASES
from tests.fuzzing import json_values, mutated_documents
from tests.samples import all_samples
from tests.unit.test_admission_corpus import request
from webhook.admission import AdmissionResponse
from webhook.pcs import DefaultingHandler, ValidatingHandler

SEEDS = [c.obj for c in CASES] + list(all_samples().values())


CONFIGS = [
    OperatorConfiguration(),
    OperatorConfiguration.model_validate(
        {"topologyAwareScheduling": {"enabled": True}, "network": {"autoMNNVLEnabled": True}}
    ),
]


async def topologies(name: str) -> list[str] | None:
    return ["zone", "block", "rack", "host"] if name == "grove-topology" else None


def _well_formed(response: AdmissionResponse) -> None:
    assert isinstance(response, AdmissionResponse)
    if not response.allowed:
        assert response.message and response.code >= 400


async def _exercise(obj: Any, old: Any, config: OperatorConfiguration) -> None:
    default = DefaultingHandler(config)
    validate = ValidatingHandler(config, topologies)
    for operation in ("CREATE", "UPDATE"):
        req = request(operation, obj, old if operation == "UPDATE" else None)
        _well_formed(await default(req))
        _well_formed(await validate(req))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_documents(SEEDS), old=st.sampled_from(SEEDS), config=st.sampled_from(CONFIGS))
async def test_mutated_documents_never_raise(doc: Any, old: Any, config: OperatorConfiguration) -> None:
    await _exercise(doc, old, config)


@settings(max_examples=150, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=10), json_values, max_size=5), old=mutated_documents(SEEDS))
async def test_random_objects_never_raise(doc: dict[str, Any], old: Any) -> None:
    await _exercise(doc, old, CONFIGS[1])

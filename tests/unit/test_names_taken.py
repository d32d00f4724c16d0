"""The warning on creating a PodCliqueSet whose grove-initc objects' names are taken by objects of someone
else's (webhook/lookups.py `names_taken`; the reconciler then reports them, condition NameConflict)."""

from __future__ import annotations

import json
from typing import Any

from grove_api import constants as c
from grove_api.operatorconfig import OperatorConfiguration
from tests.builders import admission_review, clique, pcs
from webhook.admission import parse_review
from webhook.lookups import PARTIAL_METADATA, names_taken
from webhook.pcs import validating_handler

JSON = dict[str, Any]
NS = "default"


def reader(objects: dict[str, JSON], asked: list[tuple[str, str]]) -> Any:
    async def get(path: str, accept: str) -> JSON | None:
        asked.append((path, accept))
        return objects.get(path)

    return get


async def test_names_of_someone_elses_objects_are_warned_about_and_a_deleted_predecessors_are_not() -> None:
    asked: list[tuple[str, str]] = []
    predecessor = {"kind": c.KIND_PODCLIQUESET, "name": "llm", "uid": "old", "controller": True}
    objects = {
        f"/api/v1/namespaces/{NS}/serviceaccounts/llm": {"metadata": {"name": "llm"}},
        f"/api/v1/namespaces/{NS}/secrets/llm-ic-sat": {"metadata": {"ownerReferences": [predecessor]}},
    }
    warnings = await names_taken(reader(objects, asked), NS, "llm")
    assert warnings == [
        f"ServiceAccount {NS}/llm exists and is not this PodCliqueSet's: the operator leaves it alone, so "
        "grove-initc (startup ordering) has no ServiceAccount of its own until it is removed or the "
        "PodCliqueSet is given another name"
    ]
    assert sorted(p.rsplit("/", 2)[-2] for p, _ in asked) == [
        "rolebindings",
        "roles",
        "secrets",
        "serviceaccounts",
    ]
    assert all(accept == PARTIAL_METADATA for _, accept in asked)  # a Secret's data is never read


async def no_topologies(name: str) -> list[str] | None:
    return None


async def test_the_validating_webhook_adds_them_on_create_only_and_never_fails_on_them() -> None:
    doc = pcs("llm", cliques=[clique("a")])

    async def taken(namespace: str, name: str) -> list[str]:
        return [f"taken: {namespace}/{name}"]

    async def broken(namespace: str, name: str) -> list[str]:
        raise OSError("apiserver unavailable")

    create = parse_review(json.dumps(admission_review(doc)))
    response = await validating_handler(OperatorConfiguration(), no_topologies, taken)(create)
    assert response.allowed and f"taken: {doc['metadata']['namespace']}/llm" in response.warnings
    response = await validating_handler(OperatorConfiguration(), no_topologies, broken)(create)
    assert response.allowed and not response.warnings
    update = parse_review(json.dumps(admission_review(doc, operation="UPDATE", old=doc)))
    response = await validating_handler(OperatorConfiguration(), no_topologies, taken)(update)
    assert response.allowed and not response.warnings

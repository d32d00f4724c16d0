"""Corpus cases through the real kube-apiserver with our webhooks registered: the exact message of the
pure handlers reaches the client, and nothing is stored when a request is refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from grove_api import constants as c
from reconciler.planner.plan import contains
from tests.admission_corpus import CASES, Case
from tests.unit.test_admission_corpus import admit
from webhook.paths import VALIDATING_WEBHOOK

pytestmark = pytest.mark.usefixtures("grove_crds")
APISERVER_CASES = [case for case in CASES if case.apiserver]
PCS = (c.GROUP, c.VERSION)


def placed(doc: dict[str, Any] | None, namespace: str) -> dict[str, Any]:
    out = copy.deepcopy(doc or {})
    out.setdefault("metadata", {})["namespace"] = namespace
    return out


async def _replace(
    objects: client.CustomObjectsApi, namespace: str, name: str, obj: dict[str, Any]
) -> dict[str, Any]:
    """PUT `obj` over the stored object; the operator writes too (finalizer), so retry on conflicts.
    Returns the stored object the successful (or refused) attempt was based on."""
    while True:
        stored = await objects.get_namespaced_custom_object(*PCS, namespace, c.PLURAL_PODCLIQUESET, name)
        body = copy.deepcopy(obj)
        body["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
        body["metadata"]["finalizers"] = stored["metadata"].get("finalizers", [])
        try:
            await objects.replace_namespaced_custom_object(*PCS, namespace, c.PLURAL_PODCLIQUESET, name, body)
            return stored
        except ApiException as err:
            if err.status != 409:
                err.based_on = stored  # type: ignore[attr-defined]
                raise


def test_enough_cases_run_through_the_apiserver() -> None:
    assert len(APISERVER_CASES) >= 40


@pytest.mark.parametrize("case", APISERVER_CASES, ids=[c.name for c in APISERVER_CASES])
async def test_case_through_apiserver(case: Case, namespace: str, api_client: client.ApiClient) -> None:
    objects = client.CustomObjectsApi(api_client)
    local = Case(
        **{
            **case.__dict__,
            "obj": placed(case.obj, namespace),
            "old": placed(case.old, namespace) if case.old else None,
        }
    )
    defaulted, expected, _, _ = await admit(local)
    name = local.obj["metadata"]["name"]
    before = None
    if local.old is not None:
        before = await objects.create_namespaced_custom_object(
            *PCS, namespace, c.PLURAL_PODCLIQUESET, local.old
        )
    try:
        if local.old is None:
            await objects.create_namespaced_custom_object(*PCS, namespace, c.PLURAL_PODCLIQUESET, local.obj)
        else:
            before = await _replace(objects, namespace, name, local.obj)
    except ApiException as err:
        before = getattr(err, "based_on", before)
        assert not expected.allowed, f"refused but the pure handlers allow it: {err.body}"
        status = json.loads(err.body)
        assert (
            status["message"]
            == f'admission webhook "{VALIDATING_WEBHOOK}" denied the request: {expected.message}'
        )
        assert err.status == 422
        listed = await objects.list_namespaced_custom_object(*PCS, namespace, c.PLURAL_PODCLIQUESET)
        if before is None:
            assert listed["items"] == [], "a refused create must store nothing"
        else:
            # The operator writes status and finalizers meanwhile: the spec is what must not change.
            assert [i["spec"] for i in listed["items"]] == [before["spec"]], (
                "a refused update must change nothing"
            )
        return
    assert expected.allowed, f"the apiserver stored what the pure handlers refuse: {expected.message}"
    stored = await objects.get_namespaced_custom_object(*PCS, namespace, c.PLURAL_PODCLIQUESET, name)
    assert contains(stored["spec"], defaulted["spec"]), "the stored object is not the defaulted one"

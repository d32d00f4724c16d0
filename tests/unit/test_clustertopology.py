"""ClusterTopologyBinding validation (ported from Grove's clustertopology validation tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from grove_api.operatorconfig import OperatorConfiguration
from webhook.admission import parse_review
from webhook.clustertopology import handler, validate

KAI_AND_DEFAULT = ("default-scheduler", "kai-scheduler")


def ct(levels: list[tuple[str, str]], bindings: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"levels": [{"domain": d, "key": k} for d, k in levels]}
    if bindings is not None:
        spec["schedulerTopologyBindings"] = [{"schedulerName": s, "topologyReference": "t"} for s in bindings]
    return {
        "apiVersion": "grove.io/v1alpha1",
        "kind": "ClusterTopologyBinding",
        "metadata": {"name": "c"},
        "spec": spec,
    }


ZONE_RACK = [("zone", "topology.kubernetes.io/zone"), ("rack", "topology.grove.io/rack")]

CASES = [
    ("valid unique levels", ct(ZONE_RACK), None),
    ("single level", ct([("host", "kubernetes.io/hostname")]), None),
    ("valid scheduler topology reference", ct(ZONE_RACK, ["kai-scheduler"]), None),
    ("duplicate domain", ct([("zone", "a"), ("zone", "b")]), "spec.levels[1].domain"),
    ("duplicate key", ct([("zone", "a"), ("rack", "a")]), "spec.levels[1].key"),
    ("duplicate both domain and key", ct([("zone", "a"), ("zone", "a")]), "spec.levels[1].domain"),
    (
        "duplicate scheduler backend reference",
        ct(ZONE_RACK, ["kai-scheduler", "kai-scheduler"]),
        "spec.schedulerTopologyBindings[1].schedulerName",
    ),
    (
        "unknown scheduler backend reference",
        ct(ZONE_RACK, ["volcano"]),
        "scheduler backend is not enabled in Grove",
    ),
    (
        "non topology aware scheduler backend reference",
        ct(ZONE_RACK, ["default-scheduler"]),
        "scheduler backend does not implement topology-aware scheduling",
    ),
]


@pytest.mark.parametrize(("doc", "err"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate(doc: dict[str, Any], err: str | None) -> None:
    errors = [str(e) for e in validate(doc, KAI_AND_DEFAULT)]
    if err is None:
        assert errors == []
    else:
        assert errors and any(err in e for e in errors), errors


def test_duplicate_both_reports_both() -> None:
    errors = [str(e) for e in validate(ct([("zone", "a"), ("zone", "a")]), KAI_AND_DEFAULT)]
    assert errors == [
        'spec.levels[1].domain: Duplicate value: "zone"',
        'spec.levels[1].key: Duplicate value: "a"',
    ]


def review(operation: str, obj: dict[str, Any] | None) -> Any:
    return parse_review(
        json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "1",
                    "operation": operation,
                    "object": obj,
                    "oldObject": obj if operation != "CREATE" else None,
                },
            }
        )
    )


async def test_default_config_refuses_any_scheduler_binding_clearly() -> None:
    """Only default-scheduler is enabled by default, and it is not topology-aware."""
    handle = handler(OperatorConfiguration())
    response = await handle(review("CREATE", ct(ZONE_RACK, ["default-scheduler"])))
    assert not response.allowed and response.code == 403
    assert response.message == (
        'spec.schedulerTopologyBindings[0].schedulerName: Invalid value: "default-scheduler": scheduler backend '
        "does not implement topology-aware scheduling (none of the enabled backends (default-scheduler) can; "
        "enable one of kai-scheduler in the OperatorConfiguration, or remove schedulerTopologyBindings)"
    )
    response = await handle(review("UPDATE", ct(ZONE_RACK, ["kai-scheduler"])))
    assert not response.allowed
    assert (
        "scheduler backend is not enabled in Grove (enabled in the OperatorConfiguration's scheduler.profiles: default-scheduler)"
        in response.message
    )


async def test_handler_update_delete_and_bad_requests() -> None:
    handle = handler(OperatorConfiguration())
    assert (await handle(review("UPDATE", ct(ZONE_RACK)))).allowed
    assert not (await handle(review("UPDATE", ct([("zone", "a"), ("zone", "b")])))).allowed
    assert (await handle(review("DELETE", ct([("zone", "a"), ("zone", "b")])))).allowed
    bad = await handle(review("CREATE", None))
    assert not bad.allowed and bad.code == 400


async def test_enabled_kai_allows_a_binding() -> None:
    config = OperatorConfiguration.model_validate({"scheduler": {"profiles": [{"name": "kai-scheduler"}]}})
    assert (await handler(config)(review("CREATE", ct(ZONE_RACK, ["kai-scheduler"])))).allowed


@pytest.mark.parametrize(
    ("spec", "err"),
    [
        (["x"], 'spec: Invalid value: "list": must be an object'),
        ({"levels": "zone"}, 'spec.levels: Invalid value: "str": must be a list'),
        ({"levels": ["zone"]}, 'spec.levels[0]: Invalid value: "str": must be an object'),
        ({"levels": [{"domain": ["zone"], "key": "k"}]}, 'spec.levels[0].domain: Invalid value: "list"'),
        (
            {"schedulerTopologyBindings": [{"schedulerName": 7}]},
            'spec.schedulerTopologyBindings[0].schedulerName: Invalid value: "int": must be a string',
        ),
    ],
    ids=["spec", "levels", "level", "domain", "scheduler-name"],
)
async def test_fields_of_the_wrong_type_are_field_errors(spec: Any, err: str) -> None:
    """The CRD's schema refuses these before us; a review sent straight to the webhook was an AttributeError
    or TypeError (a 500). Found by tests/unit/test_handler_fuzz.py."""
    response = await handler(OperatorConfiguration())(review("CREATE", {**ct(ZONE_RACK), "spec": spec}))
    assert not response.allowed and response.code == 403
    assert err in response.message

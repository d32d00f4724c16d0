"""Pod-template and generation hashes: golden values (stable across operator versions) and what does and
does not change them (docs/api.md, "Hashes")."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from grove_api import hashing


def worker() -> dict[str, Any]:
    return {
        "name": "worker",
        "labels": {"app": "w"},
        "annotations": {"a": "b"},
        "spec": {
            "roleName": "worker",
            "replicas": 2,
            "minAvailable": 1,
            "podSpec": {
                "containers": [{"name": "c", "image": "nginx:1.27", "resources": {"requests": {"cpu": "1"}}}]
            },
        },
    }


def leader() -> dict[str, Any]:
    return {"name": "leader", "spec": {"podSpec": {"containers": [{"name": "l", "image": "busybox"}]}}}


def pcs(*cliques: dict[str, Any], priority: str | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {"cliques": list(cliques)}
    if priority is not None:
        template["priorityClassName"] = priority
    return {"metadata": {"name": "x"}, "spec": {"replicas": 1, "template": template}}


# --- golden values: these must never change (an operator upgrade would restart every workload) ------
def test_golden_pod_template_hash() -> None:
    assert hashing.pod_template_hash(worker(), None) == "5f728c3c788e23f9"
    assert hashing.pod_template_hash(worker(), "high") == "7d11572c3c03faa3"
    assert hashing.pod_template_hash(leader(), None) == "68fc952acbb7425b"
    assert hashing.pod_template_hash({}, None) == "f41b5380d339ef7c"


def test_golden_generation_hash() -> None:
    assert hashing.generation_hash(pcs(worker(), leader())) == "5e6d417e1eb9b221"
    assert hashing.clique_template_hashes(pcs(worker(), leader())) == {
        "worker": "5f728c3c788e23f9",
        "leader": "68fc952acbb7425b",
    }


def test_construction_is_pinned() -> None:
    """The documented construction, re-derived independently: tag + canonical JSON, sha256, 16 hex."""
    canonical = (
        '{"metadata":{"annotations":{"a":"b"},"labels":{"app":"w"}},'
        '"spec":{"containers":[{"image":"nginx:1.27","name":"c","resources":{"requests":{"cpu":"1"}}}],'
        '"priorityClassName":"high"}}'
    )
    digest = hashlib.sha256(b"grove-py/pod-template-hash/v1\n" + canonical.encode()).hexdigest()[:16]
    assert hashing.pod_template_hash(worker(), "high") == digest


# --- invariance: what does not change the hash ------------------------------------------------------
def _mutated(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    q = worker()
    target = q
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return q


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "replicas"), 7),
        (("spec", "minAvailable"), 2),
        (("spec", "startsAfter"), ["leader"]),
        (("spec", "autoScalingConfig"), {"maxReplicas": 5}),
        (("spec", "roleName"), "other"),
        (("topologyConstraint",), {"pack": {"required": "rack"}}),
        (("resourceSharing",), [{"name": "gpu", "scope": "PerReplica"}]),
        (("spec", "podSpec", "priorityClassName"), "ignored"),  # overwritten by the PCS-level value
        (("spec", "podSpec", "volumes"), []),  # empty list == absent
        (("spec", "podSpec", "nodeSelector"), {}),  # empty object == absent
        (("spec", "podSpec", "hostname"), None),  # null == absent
    ],
)
def test_hash_ignores(path: tuple[str, ...], value: Any) -> None:
    assert hashing.pod_template_hash(_mutated(path, value), None) == hashing.pod_template_hash(worker(), None)
    assert hashing.pod_template_hash(_mutated(path, value), "p") == hashing.pod_template_hash(worker(), "p")


def test_hash_ignores_key_order_and_integral_floats() -> None:
    a = worker()
    b = copy.deepcopy(a)
    b["spec"]["podSpec"] = dict(reversed(list(b["spec"]["podSpec"].items())))
    b["spec"]["podSpec"]["terminationGracePeriodSeconds"] = 30.0
    a["spec"]["podSpec"]["terminationGracePeriodSeconds"] = 30
    assert hashing.pod_template_hash(a, None) == hashing.pod_template_hash(b, None)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "podSpec", "containers"), [{"name": "c", "image": "nginx:1.28"}]),
        (("labels",), {"app": "w2"}),
        (("annotations",), {"a": "c"}),
        (("spec", "podSpec", "schedulerName"), "kai-scheduler"),
    ],
)
def test_hash_changes(path: tuple[str, ...], value: Any) -> None:
    assert hashing.pod_template_hash(_mutated(path, value), None) != hashing.pod_template_hash(worker(), None)


def test_image_change_changes_both_hashes() -> None:
    changed = worker()
    changed["spec"]["podSpec"]["containers"][0]["image"] = "nginx:1.28"
    assert hashing.pod_template_hash(changed, None) != hashing.pod_template_hash(worker(), None)
    assert hashing.generation_hash(pcs(changed, leader())) != hashing.generation_hash(pcs(worker(), leader()))
    # Only the changed clique's pod-template hash moves.
    assert hashing.clique_template_hashes(pcs(changed, leader()))["leader"] == "68fc952acbb7425b"


def test_priority_class_override() -> None:
    own = _mutated(("spec", "podSpec", "priorityClassName"), "clique-level")
    # The clique's own value is invisible; the PCS-level value is what counts.
    assert hashing.pod_template_hash(own, None) == hashing.pod_template_hash(worker(), None)
    assert hashing.pod_template_hash(own, "high") == hashing.pod_template_hash(worker(), "high")
    assert hashing.pod_template_hash(worker(), "high") != hashing.pod_template_hash(worker(), "low")
    # An empty PCS-level value is the same as none.
    assert hashing.pod_template_hash(own, "") == hashing.pod_template_hash(worker(), None)
    spec = hashing.pod_template_spec(own, "high")
    assert spec["spec"]["priorityClassName"] == "high"
    assert "priorityClassName" not in hashing.pod_template_spec(own, None)["spec"]
    # The input is not mutated.
    assert own["spec"]["podSpec"]["priorityClassName"] == "clique-level"


def test_generation_hash_follows_priority_and_order() -> None:
    base = hashing.generation_hash(pcs(worker(), leader()))
    assert hashing.generation_hash(pcs(worker(), leader(), priority="high")) != base
    assert hashing.generation_hash(pcs(leader(), worker())) != base
    bigger = worker()
    bigger["spec"]["replicas"] = 9
    assert hashing.generation_hash(pcs(bigger, leader())) == base
    assert hashing.generation_hash({}) == hashing.generation_hash(pcs())


def test_hash_is_a_label_value() -> None:
    h = hashing.pod_template_hash(worker(), None)
    assert len(h) == hashing.HASH_LENGTH == 16
    assert all(ch in "0123456789abcdef" for ch in h)

"""Node feasibility: the kube-scheduler's hard filters (readiness, cordon, taints, nodeSelector, required
node affinity), each with the reason key the explanations count."""

from __future__ import annotations

from typing import Any

import pytest

from admitter.core.nodes import NodeInfo, PodSpecView, Taint, Toleration, feasible

from .builders import node


@pytest.mark.parametrize(
    ("toleration", "taint", "tolerated"),
    [
        (
            {"key": "a", "operator": "Equal", "value": "x", "effect": "NoSchedule"},
            ("a", "x", "NoSchedule"),
            True,
        ),
        (
            {"key": "a", "operator": "Equal", "value": "y", "effect": "NoSchedule"},
            ("a", "x", "NoSchedule"),
            False,
        ),
        ({"key": "a", "value": "x"}, ("a", "x", "NoExecute"), True),  # no operator: Equal; no effect: all
        ({"key": "a", "operator": "Exists"}, ("a", "anything", "NoSchedule"), True),
        ({"key": "b", "operator": "Exists"}, ("a", "x", "NoSchedule"), False),
        ({"operator": "Exists"}, ("whatever", "x", "NoExecute"), True),  # empty key + Exists: every taint
        ({"operator": "Exists", "effect": "NoSchedule"}, ("whatever", "x", "NoExecute"), False),
        ({"key": "a", "operator": "Exists", "effect": "NoSchedule"}, ("a", "", "NoExecute"), False),
        ({"key": "a", "operator": "Lt", "value": "5"}, ("a", "3", "NoSchedule"), False),  # unknown operator
    ],
)
def test_tolerations(toleration: dict[str, str], taint: tuple[str, str, str], tolerated: bool) -> None:
    assert Toleration.from_dict(toleration).tolerates(Taint(*taint)) is tolerated


def view(**spec: Any) -> PodSpecView:
    return PodSpecView.from_pod_spec(spec)


def info(**kw: Any) -> NodeInfo:
    return NodeInfo.from_dict(node("n1", labels={"zone": "a", "gen": "5"}, **kw))


TAINT = {"key": "gpu", "value": "yes", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("pod", "node_kw", "reason"),
    [
        ({}, {}, None),
        ({}, {"ready": False}, "notReady"),
        ({}, {"ready": None}, None),  # no conditions at all: counts as ready
        ({}, {"unschedulable": True}, "unschedulable"),
        (
            {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]},
            {"unschedulable": True},
            None,
        ),
        ({}, {"taints": [TAINT]}, "taint"),
        ({}, {"taints": [{**TAINT, "effect": "NoExecute"}]}, "taint"),
        ({}, {"taints": [{**TAINT, "effect": "PreferNoSchedule"}]}, None),  # soft: does not filter
        ({"tolerations": [{"key": "gpu", "operator": "Exists"}]}, {"taints": [TAINT]}, None),
        ({"nodeSelector": {"zone": "a"}}, {}, None),
        ({"nodeSelector": {"zone": "b"}}, {}, "nodeSelector"),
        ({"nodeSelector": {"kubernetes.io/hostname": "n1"}}, {}, None),
        ({"nodeSelector": {"kubernetes.io/hostname": "n2"}}, {}, "nodeSelector"),
    ],
)
def test_feasible(pod: dict[str, Any], node_kw: dict[str, Any], reason: str | None) -> None:
    assert feasible(view(**pod), info(**node_kw)) == reason


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    }


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


@pytest.mark.parametrize(
    ("terms", "matches"),
    [
        ([expr("zone", "In", "a", "b")], True),
        ([expr("zone", "In", "b")], False),
        ([expr("zone", "NotIn", "b")], True),
        ([expr("zone", "NotIn", "a")], False),
        ([expr("missing", "NotIn", "a")], True),  # NotIn matches nodes without the label
        ([expr("zone", "Exists")], True),
        ([expr("missing", "Exists")], False),
        ([expr("missing", "DoesNotExist")], True),
        ([expr("zone", "DoesNotExist")], False),
        ([expr("gen", "Gt", "4")], True),
        ([expr("gen", "Gt", "5")], False),
        ([expr("gen", "Lt", "6")], True),
        ([expr("zone", "Lt", "6")], False),  # not a number
        ([expr("missing", "Gt", "1")], False),
        ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}], True),
        ([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}], False),
        ([expr("zone", "In", "b"), expr("gen", "Exists")], True),  # terms are ORed
        (
            [  # within a term, expressions and fields are ANDed
                {
                    "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
                    "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}],
                }
            ],
            False,
        ),
        ([{}], False),  # an empty term matches nothing
        ([], False),
    ],
)
def test_required_node_affinity(terms: list[dict[str, Any]], matches: bool) -> None:
    assert feasible(view(**affinity(*terms)), info()) == (None if matches else "affinity")


def test_node_info_from_dict() -> None:
    parsed = NodeInfo.from_dict(
        node("n1", cpu="7500m", memory="1Gi", gpu=8, taints=[TAINT], unschedulable=True, hostname="host-1")
    )
    assert parsed.name == "n1" and parsed.hostname == "host-1"
    assert dict(parsed.allocatable) == {"cpu": 7500, "memory": 1 << 30, "pods": 110, "nvidia.com/gpu": 8}
    assert parsed.taints == (Taint("gpu", "yes", "NoSchedule"),)
    assert parsed.unschedulable and parsed.ready
    assert NodeInfo.from_dict(node("n2", hostname=None)).hostname is None


def test_pinned_hostname() -> None:
    assert view(nodeSelector={"kubernetes.io/hostname": "h", "zone": "a"}).pinned_hostname == "h"
    assert view(nodeSelector={"zone": "a"}).pinned_hostname is None
    assert view(**affinity(expr("zone", "In", "a"))) == view(
        **affinity(expr("zone", "In", "a"))
    )  # hashable key

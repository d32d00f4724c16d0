"""Pods that may not share a node with one another, as resources every node has one unit of.

The kube-scheduler refuses to put two pods on one node when they ask for the same host port, or when one
has a required pod anti-affinity on `kubernetes.io/hostname` whose selector matches the other. A placement
that ignored this would pin such pods together; the scheduler would never bind the second one, and the
gang would be reset after its bind timeout, again and again.

So each such need becomes a pseudo-resource, `exclusive/<what>`, which a pod carrying it requests one unit
of and every node has exactly one unit of (`ClusterModel` adds the unit to every node's allocatable the
first time a pod asks for it). Everything that already respects resources — placement, the board's
counts, the replacement room, the explanation of a blocked gang — then keeps such pods one per node, and
off nodes where a bound pod already holds the unit.

Covered: host ports (per port and protocol; the host IP is ignored, so distinct host IPs are treated as
clashing: conservative), and a required anti-affinity term on `kubernetes.io/hostname` whose label selector
matches the pod's own labels (the "one per node" spread of a clique), in the pod's own namespace. Other
terms (other topology keys, namespace selectors, selectors that do not match the pod itself) are left to the
scheduler, as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .resources import Resources, pod_requests

PREFIX = "exclusive/"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def is_exclusive(resource: str) -> bool:
    return resource.startswith(PREFIX)


def exclusive_units(pod: Mapping[str, Any]) -> Resources:
    """One unit of each exclusive pseudo-resource the pod needs."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    keys: set[str] = set()
    for container in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]:
        for port in container.get("ports") or ():
            if port.get("hostPort"):
                keys.add(f"{PREFIX}hostPort {port['hostPort']}/{port.get('protocol') or 'TCP'}")
    namespace = meta.get("namespace") or ""
    labels = meta.get("labels") or {}
    anti = ((spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or ()
    for term in anti:
        if term.get("topologyKey") != HOSTNAME_LABEL or term.get("namespaceSelector") is not None:
            continue
        if term.get("namespaces") and namespace not in term["namespaces"]:
            continue
        selector = term.get("labelSelector")
        if selector is not None and selector_matches(selector, labels):
            keys.add(f"{PREFIX}anti-affinity {namespace}/{json.dumps(selector, sort_keys=True)}")
    return Resources({k: 1 for k in keys})


def pod_demand(pod: Mapping[str, Any]) -> Resources:
    """What placing the pod takes from a node: its requests and its exclusive units."""
    return pod_requests(pod.get("spec") or {}) + exclusive_units(pod)


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector against labels (an empty selector matches everything)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or ()
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True

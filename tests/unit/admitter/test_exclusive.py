"""Pods that may not share a node (host ports, "one per node" anti-affinity) are placed one per node, as the
kube-scheduler requires; before, the best fit packed them together and the scheduler never bound the rest."""

from __future__ import annotations

from typing import Any

from admitter.core.exclusive import exclusive_units, selector_matches
from admitter.core.pods import essentials
from grove_api import constants as c

from .builders import NS, Sim, by_node, pod


def spread(clique: str, topology_key: str = "kubernetes.io/hostname") -> dict[str, Any]:
    """A required anti-affinity against the pods of `clique` within `topology_key`."""
    term = {"topologyKey": topology_key, "labelSelector": {"matchLabels": {c.LABEL_PODCLIQUE: clique}}}
    return {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}}


SPREAD = spread("w")


def host_port(port: int, cpu: str = "1") -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}},
        "ports": [{"containerPort": 80, "hostPort": port}],
    }
    return {"containers": [container]}


def cluster(nodes: int, cpu: int = 8) -> Sim:
    sim = Sim()
    for i in range(nodes):
        sim.add_node(f"n{i}", cpu=cpu)
    return sim


def test_a_clique_spread_one_per_node_is_placed_one_per_node() -> None:
    sim = cluster(3)
    sim.add_gang("g", size=3, pod_spec=SPREAD)
    decision = sim.full()
    (admit,) = decision.admit
    assert sorted(len(pods) for pods in by_node(admit.placements.items()).values()) == [1, 1, 1]


def test_more_spread_pods_than_nodes_wait_and_say_why() -> None:
    sim = cluster(2)
    sim.add_gang("g", size=3, pod_spec=SPREAD)
    decision = sim.full()
    assert decision.admit == ()
    (blocked,) = decision.blocked
    assert (blocked.needed, blocked.fitting, blocked.unsatisfiable) == (3, 2, True)
    assert blocked.message == (
        "needs 3 pods (1 cpu, 1Gi each) in podgroup w; only 2 fit (on 2 nodes) "
        "(it would not fit even on the empty cluster)"
    )


def test_a_node_holding_a_running_pod_of_the_spread_is_not_used() -> None:
    sim = cluster(3)
    sim.add_pod("old", clique="w", gated=False, node_name="n0", spec=SPREAD)
    sim.add_gang("g", size=3, pod_spec=SPREAD)
    (blocked,) = sim.full().blocked
    assert (blocked.needed, blocked.fitting) == (3, 2)
    assert "1 node has a pod it may not share a node with (anti-affinity" in blocked.message


def test_a_host_port_in_use_keeps_the_pod_off_that_node() -> None:
    sim = cluster(2)
    sim.add_pod("other", gated=False, node_name="n0", spec=host_port(8080, cpu="100m"))
    sim.add_gang("g", size=1, pod_spec=host_port(8080))
    (admit,) = sim.full().admit
    assert set(admit.placements.values()) == {"n1"}


def test_other_ports_and_selectors_that_miss_the_pod_do_not_count() -> None:
    assert not exclusive_units(pod("a", clique="w", spec=spread("someone-else")))
    assert not exclusive_units(pod("a", clique="w", spec=spread("w", "topology.kubernetes.io/zone")))
    units = exclusive_units(pod("a", clique="w", spec={**SPREAD, **host_port(9000)}))
    assert sorted(units) == [
        f'exclusive/anti-affinity {NS}/{{"matchLabels": {{"grove.io/podclique": "w"}}}}',
        "exclusive/hostPort 9000/TCP",
    ]


def test_selector_operators() -> None:
    labels = {"a": "1", "b": "2"}
    assert selector_matches({}, labels)
    assert selector_matches(
        {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "3"]}]}, labels
    )
    assert not selector_matches(
        {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, labels
    )
    assert selector_matches({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "c", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchLabels": {"b": "3"}}, labels)


def test_the_informer_keeps_what_exclusivity_needs() -> None:
    full = pod("a", clique="w", spec={**SPREAD, **host_port(8080)})
    kept = essentials(full)
    assert exclusive_units(kept) == exclusive_units(full) and exclusive_units(full)

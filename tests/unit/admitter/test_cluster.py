"""ClusterModel accounting: bound pods and our reservations (released, pinned, ungated) take node capacity;
gated, unpinned and finished pods take none; every event moves one pod's contribution."""

from __future__ import annotations

from admitter.core.cluster import ClusterModel
from admitter.core.pods import PodState
from admitter.core.resources import Resources

from .builders import NS, node, pod

GI = 1 << 30


def free_cpu(model: ClusterModel, name: str) -> int:
    return model.free(name).get("cpu")


def test_a_pod_from_gated_to_released_to_bound_to_succeeded() -> None:
    model = ClusterModel()
    model.upsert_node(node("n1", cpu=8))
    model.upsert_node(node("n2", cpu=8))
    gated = pod("p", gang="g", clique="w", cpu="2", memory="1Gi")
    model.upsert_pod(gated)
    assert model.pod_state(NS, "p") is PodState.GATED
    assert free_cpu(model, "n1") == free_cpu(model, "n2") == 8000

    released = pod("p", gang="g", clique="w", cpu="2", memory="1Gi", gated=False, pin="n1")
    model.upsert_pod(released)
    assert model.pod_state(NS, "p") is PodState.RELEASED
    assert model.used("n1") == Resources({"cpu": 2000, "memory": GI, "pods": 1})
    assert free_cpu(model, "n2") == 8000

    bound = pod("p", gang="g", clique="w", cpu="2", memory="1Gi", gated=False, pin="n1", node_name="n1")
    model.upsert_pod(bound)
    assert model.pod_state(NS, "p") is PodState.BOUND
    assert free_cpu(model, "n1") == 6000  # counted once, not as reservation and binding

    done = pod("p", gang="g", clique="w", cpu="2", gated=False, pin="n1", node_name="n1", phase="Succeeded")
    model.upsert_pod(done)
    assert model.pod_state(NS, "p") is PodState.TERMINAL
    assert model.used("n1") == Resources()

    model.upsert_pod(bound)  # (a stale event would count again; the I/O layer orders by resourceVersion)
    model.delete_pod(NS, "p")
    assert model.used("n1") == Resources() and model.pod(NS, "p") is None


def test_what_takes_no_capacity() -> None:
    model = ClusterModel()
    model.upsert_node(node("n1", cpu=8))
    model.upsert_pod(pod("gated-pinned", cpu="1", pin="n1"))  # still gated
    model.upsert_pod(pod("released-unpinned", cpu="1", gated=False))  # another workload, pending
    other_gate = pod("other-gate", cpu="1", gated=False, pin="n1")
    other_gate["spec"]["schedulingGates"] = [{"name": "example.com/quota"}]
    model.upsert_pod(other_gate)
    model.upsert_pod(pod("failed", cpu="1", node_name="n1", phase="Failed"))
    assert model.used("n1") == Resources()
    model.upsert_pod(pod("running", cpu="1", node_name="n1"))
    assert free_cpu(model, "n1") == 7000


def test_reservations_follow_the_hostname_label() -> None:
    model = ClusterModel()
    model.upsert_pod(pod("early", cpu="1", gated=False, pin="host-1"))  # pinned before the node is known
    model.upsert_pod(pod("bound-early", cpu="2", node_name="n1"))
    model.upsert_node(node("n1", cpu=8, hostname="host-1"))
    assert model.node_for_hostname("host-1") == "n1" and model.hostname_of("n1") == "host-1"
    assert free_cpu(model, "n1") == 5000
    relabelled = node("n1", cpu=8, hostname="host-x")
    model.upsert_node(relabelled)
    assert free_cpu(model, "n1") == 6000  # the pin points nowhere now
    model.upsert_node(node("n2", cpu=8, hostname="host-x"))
    assert model.node_for_hostname("host-x") is None  # ambiguous: no pin can honour it
    model.delete_node("n2")
    assert model.node_for_hostname("host-x") == "n1"
    assert model.hostname_of("unknown") == "unknown"


def test_updates_move_the_contribution() -> None:
    model = ClusterModel()
    model.upsert_node(node("n1", cpu=8))
    model.upsert_node(node("n2", cpu=8))
    model.upsert_pod(pod("p", cpu="1", node_name="n1"))
    model.upsert_pod(pod("p", cpu="3", node_name="n1"))  # resized in place
    assert free_cpu(model, "n1") == 5000
    model.upsert_pod(pod("p", cpu="3", gated=False, pin="n2"))  # (contrived) now a reservation on n2
    assert (free_cpu(model, "n1"), free_cpu(model, "n2")) == (8000, 5000)
    model.delete_node("n1")
    assert model.free("n1") == Resources() and model.node("n1") is None


def test_listeners_hear_every_node_whose_room_changes() -> None:
    model = ClusterModel()
    heard: list[str] = []
    model.add_listener(heard.append)
    model.upsert_node(node("n1"))
    model.upsert_node(node("n2"))
    model.upsert_node(node("n1"))  # unchanged: silent
    model.upsert_pod(pod("g", cpu="1"))  # gated: takes nothing, touches no node
    assert heard == ["n1", "n2"]
    for step in (
        pod("p", cpu="1", gated=False, pin="n1"),
        pod("p", cpu="1", gated=False, pin="n1", node_name="n1"),
    ):
        heard.clear()
        model.upsert_pod(step)
        assert set(heard) == {"n1"}
    heard.clear()
    model.delete_pod(NS, "p")
    assert heard == ["n1"]
    model.remove_listener(heard.append)
    model.delete_node("n1")
    assert heard == ["n1"]


def test_gang_index() -> None:
    model = ClusterModel()
    model.upsert_pod(pod("b", gang="g1", clique="w"))
    model.upsert_pod(pod("a", gang="g1", clique="w"))
    model.upsert_pod(pod("c", gang="g2", clique="w"))
    model.upsert_pod(pod("d"))
    assert [p.key[1] for p in model.gang_pods(NS, "g1")] == ["a", "b"]
    gen = model.gang_generation(NS, "g1")
    model.upsert_pod(pod("a", gang="g1", clique="w"))  # the same pod again: no change
    assert model.gang_generation(NS, "g1") == gen
    model.upsert_pod(pod("a", gang="g1", clique="w", gated=False))
    assert model.gang_generation(NS, "g1") > gen
    gen2 = model.gang_generation(NS, "g2")
    model.upsert_pod(pod("a", gang="g2", clique="w"))  # relabelled: moves to g2
    assert [p.key[1] for p in model.gang_pods(NS, "g1")] == ["b"]
    assert [p.key[1] for p in model.gang_pods(NS, "g2")] == ["a", "c"]
    assert model.gang_generation(NS, "g2") > gen2
    model.delete_pod(NS, "b")
    assert model.gang_pods(NS, "g1") == []
    assert model.gang_generation(NS, "nope") == 0


def test_the_informers_trimmed_pods_read_the_same() -> None:
    from admitter.core.pods import PodInfo, essentials

    full = pod(
        "p",
        gang="g",
        clique="w",
        gpu=1,
        pin="n1",
        spec={
            "initContainers": [
                {"name": "setup", "image": "x", "resources": {"requests": {"cpu": "3"}}},
                {
                    "name": "side",
                    "image": "y",
                    "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "1"}},
                },
            ],
            "overhead": {"cpu": "100m"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                        ]
                    }
                },
                "podAntiAffinity": {"x": 1},
            },
            "volumes": [{"name": "v", "emptyDir": {}}],
        },
    )
    full["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    controller = {"kind": "PodClique", "name": "w", "uid": "uid-w", "controller": True}
    full["metadata"]["ownerReferences"] = [{"kind": "Other", "name": "o", "uid": "uid-o"}, controller]
    trimmed = essentials(full)
    assert PodInfo.from_dict(trimmed) == PodInfo.from_dict(full)
    assert "volumes" not in trimmed["spec"] and "managedFields" not in trimmed["metadata"]
    assert trimmed["metadata"]["ownerReferences"] == [controller]  # for the PodGang's Initialized
    assert "image" not in trimmed["spec"]["containers"][0]


def test_gated_pods_are_counted_through_every_change() -> None:
    model = ClusterModel()
    model.upsert_node(node("n1", cpu=8))
    model.upsert_pod(pod("a", gang="g", clique="w", cpu="1"))
    model.upsert_pod(pod("b", gang="g", clique="w", cpu="1"))
    model.upsert_pod(pod("a", gang="g", clique="w", cpu="1"))  # the same again: still two
    assert model.gated_pods == 2
    model.upsert_pod(pod("a", gang="g", clique="w", cpu="1", gated=False, pin="n1"))
    assert model.gated_pods == 1
    model.delete_pod(NS, "b")
    model.delete_pod(NS, "b")
    assert model.gated_pods == 0
    model.upsert_pod(pod("c", gang="g", clique="w", cpu="1", gated=False, node_name="n1"))
    assert model.gated_pods == 0

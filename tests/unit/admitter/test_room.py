"""`ReplacementRoom`: would new pods fit once the old pods they replace are gone?"""

from __future__ import annotations

from typing import Any

from admitter.core.room import ReplacementRoom

from .builders import NS, Sim, pod

TAINT = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
TOLERATE = {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}


def new(cpu: str = "1", **kw: Any) -> dict[str, Any]:
    """A replacement pod as the reconciler builds it (gated, not pinned yet)."""
    return pod("new", gang="g", clique="w", cpu=cpu, **kw)


def old(name: str) -> tuple[str, str]:
    return (NS, name)


def test_the_old_pods_own_node_is_reused() -> None:
    sim = Sim()
    sim.add_node("n0", cpu=2)
    sim.add_pod("g-w-0", gang="g", clique="w", cpu="2", gated=False, node_name="n0")
    room = ReplacementRoom(sim.model)
    assert not room.fits([(None, new("2"))])  # the node is full while the old pod runs
    assert room.fits([(old("g-w-0"), new("2"))])
    assert room.free("n0").get("cpu") == 0  # claimed


def test_a_larger_replacement_goes_to_a_free_node() -> None:
    sim = Sim()
    sim.add_node("n0", cpu=2)
    sim.add_node("n1", cpu=4)
    sim.add_pod("g-w-0", gang="g", clique="w", cpu="2", gated=False, node_name="n0")
    room = ReplacementRoom(sim.model)
    assert room.fits([(old("g-w-0"), new("3"))])
    assert room.free("n1").get("cpu") == 1000 and room.free("n0").get("cpu") == 2000
    sim.add_pod("other", cpu="2", gated=False, node_name="n1")
    assert not ReplacementRoom(sim.model).fits([(old("g-w-0"), new("3"))])  # n0 has 2, n1 has 2


def test_a_cordoned_node_is_not_reused() -> None:
    sim = Sim()
    sim.add_node("n0", cpu=2, unschedulable=True)  # being drained
    sim.add_pod("g-w-0", gang="g", clique="w", cpu="2", gated=False, node_name="n0")
    assert not ReplacementRoom(sim.model).fits([(old("g-w-0"), new("2"))])
    sim.add_node("n1", cpu=2)
    assert ReplacementRoom(sim.model).fits([(old("g-w-0"), new("2"))])


def test_calls_in_one_room_do_not_count_a_free_node_twice() -> None:
    sim = Sim()
    sim.add_node("n0", cpu=2)
    sim.add_node("n1", cpu=2)
    sim.add_pod("a", cpu="2", gated=False, node_name="n0")
    room = ReplacementRoom(sim.model)
    assert room.fits([(None, new("2"))])
    assert not room.fits([(None, new("2"))])
    assert not room.fits([(old("a"), new("3"))])  # False claims nothing: "a" still counts as running
    assert room.fits([(old("a"), new("2"))])
    assert not room.fits([(old("a"), new("2"))])  # "a" was given back once already
    assert ReplacementRoom(sim.model).fits([(None, new("2"))])  # a fresh room: claims are per room


def test_untolerated_taint() -> None:
    sim = Sim()
    sim.add_node("n0", cpu=2, taints=[TAINT])
    sim.add_pod("g-w-0", gang="g", clique="w", cpu="2", gated=False, node_name="n0", spec=TOLERATE)
    room = ReplacementRoom(sim.model)
    assert not room.fits([(old("g-w-0"), new("2"))])  # the new template dropped the toleration
    assert room.fits([(old("g-w-0"), new("2", spec=TOLERATE))])


def test_several_pods_at_once_all_or_nothing() -> None:
    sim = Sim()
    sim.add_node("n0", cpu=2)
    sim.add_node("n1", cpu=1)
    sim.add_pod("g-w-0", gang="g", clique="w", cpu="1", gated=False, node_name="n0")
    sim.add_pod("g-w-1", gang="g", clique="w", cpu="1", gated=False, node_name="n0")
    room = ReplacementRoom(sim.model)
    pairs = [(old("g-w-0"), new("1")), (old("g-w-1"), new("1")), (None, new("2"))]
    assert not room.fits(pairs)  # 4 cpu wanted, 3 there
    assert room.free("n0").get("cpu") == 0 and room.free("n1").get("cpu") == 1000
    assert room.fits([(old("g-w-0"), new("1")), (old("g-w-1"), new("2"))])  # 2 cpu on n0, 1 on n1
    assert room.free("n0").get("cpu") == 0 and room.free("n1").get("cpu") == 0


def test_reservations_count_as_used() -> None:
    sim = Sim()
    sim.add_node("n0", cpu=2)
    sim.add_pod("released", gang="h", clique="w", cpu="2", gated=False, pin="n0")  # pinned, not bound
    sim.add_pod("gated", gang="k", clique="w", cpu="2")  # still gated: takes nothing
    assert not ReplacementRoom(sim.model).fits([(None, new("1"))])
    assert ReplacementRoom(sim.model).fits([(old("released"), new("2"))])  # its reservation given back


def test_feasibility_and_request_rules_are_the_admitters() -> None:
    sim = Sim()
    sim.add_node("n0", cpu=4, pods=1, labels={"pool": "a"})
    sim.add_pod("g-w-0", gang="g", clique="w", cpu="1", gated=False, node_name="n0")
    room = ReplacementRoom(sim.model)
    assert not room.fits([(None, new("1"))])  # the node's one pod slot is taken
    assert not room.fits([(old("g-w-0"), new("1", spec={"nodeSelector": {"pool": "b"}}))])
    affinity = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["b"]}]}
                    ]
                }
            }
        }
    }
    assert not room.fits([(old("g-w-0"), new("1", spec=affinity))])
    init = {"initContainers": [{"name": "init", "resources": {"requests": {"cpu": "5"}}}]}
    assert not room.fits([(old("g-w-0"), new("1", spec=init))])  # the init container needs 5 cpu
    assert room.fits([(old("g-w-0"), new("1", spec={"nodeSelector": {"pool": "a"}}))])


def test_nodes_without_a_unique_hostname_are_not_used() -> None:
    sim = Sim()
    sim.add_node("odd", cpu=4, hostname=None)
    sim.add_node("twin-a", cpu=4, hostname="twin")
    sim.add_node("twin-b", cpu=4, hostname="twin")
    assert not ReplacementRoom(sim.model).fits([(None, new("1"))])


def test_the_admitter_hands_out_rooms_over_its_live_model() -> None:
    from admitter.controller import Admitter
    from grove_api.operatorconfig import GangAdmission

    admitter = Admitter(object(), GangAdmission())  # type: ignore[arg-type]
    admitter.model.upsert_node(Sim().add_node("n0", cpu=1))
    room = admitter.replacement_room()
    assert room.fits([(None, new("1"))]) and not room.fits([(None, new("1"))])
    assert admitter.replacement_room() is not room
    assert admitter.replacement_room().fits([(None, new("1"))])

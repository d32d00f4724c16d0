"""PodGangs parsed into Gangs, and a gang's pods looked up in the model (labels first, references too)."""

from __future__ import annotations

from admitter.core.cluster import ClusterModel
from admitter.core.gangs import Gang, GroupConfig, Pack, members

from .builders import NS, pod, podgang


def test_from_podgang() -> None:
    obj = podgang(
        "g1",
        [("a", 2, ["p0", "p1", "p2"]), ("b", 1, ["q0"])],
        created=100.0,
        base="g0",
        admitted_at=160.0,
        pack={"required": "zone"},
        group_packs={"b": {"preferred": "rack"}},
        configs=[("cfg", ["a", "b"], {"required": "block"})],
        priority_class="high",
    )
    gang = Gang.from_podgang(obj, {"high": 1000})
    assert gang.key == (NS, "g1")
    assert [(g.name, g.min_replicas, g.refs) for g in gang.podgroups] == [
        ("a", 2, ((NS, "p0"), (NS, "p1"), (NS, "p2"))),
        ("b", 1, ((NS, "q0"),)),
    ]
    assert gang.podgroups[1].pack == Pack(preferred="rack") and gang.podgroups[0].pack is None
    assert gang.pack == Pack(required="zone")
    assert gang.group_configs == (GroupConfig("cfg", ("a", "b"), Pack(required="block")),)
    assert (gang.priority, gang.created, gang.base) == (1000, 100.0, (NS, "g0"))
    assert (gang.admitted, gang.admitted_at) == (True, 160.0)
    assert Gang.from_podgang(obj, lambda name: 7).priority == 7
    assert Gang.from_podgang(obj, {"other": 5}).priority == 0
    assert Gang.from_podgang(obj, priority=3).priority == 3
    plain = Gang.from_podgang(podgang("g2", [("a", 1, ["x"])]))
    assert (plain.priority, plain.base, plain.admitted, plain.pack, plain.group_configs) == (
        0,
        None,
        False,
        None,
        (),
    )


def test_queue_order() -> None:
    gangs = [
        Gang.from_podgang(podgang("old", [], created=1.0)),
        Gang.from_podgang(podgang("young", [], created=5.0)),
        Gang.from_podgang(podgang("b-same", [], created=1.0)),
        Gang.from_podgang(podgang("vip", [], created=9.0), priority=10),
    ]
    assert [g.key[1] for g in sorted(gangs, key=lambda g: g.queue_key)] == ["vip", "b-same", "old", "young"]


def test_members_by_label_and_reference() -> None:
    model = ClusterModel()
    model.upsert_pod(pod("a-1", gang="g", clique="a"))
    model.upsert_pod(pod("a-0", gang="g", clique="a", pin="n9"))  # gated but pinned by its own selector
    model.upsert_pod(pod("a-2", gang="g", clique="a", gated=False, node_name="n1"))
    model.upsert_pod(pod("a-3", gang="g", clique="a", phase="Failed", gated=False, node_name="n1"))
    model.upsert_pod(pod("b-0"))  # not labelled, found through its reference
    model.upsert_pod(pod("b-1", gang="g", clique="b", gated=False))
    model.upsert_pod(pod("x-0", gang="g", clique="unknown"))  # no such podgroup
    gang = Gang.from_podgang(podgang("g", [("a", 3, ["a-0"]), ("b", 2, ["b-0", "missing"])]))
    found = members(model, gang)
    a, b = found.groups
    assert [p.key[1] for p in a.gated] == ["a-0", "a-1"]  # pinned first
    assert [p.key[1] for p in a.bound] == ["a-2"] and a.released == ()
    assert [p.key[1] for p in b.gated] == ["b-0"] and [p.key[1] for p in b.released] == ["b-1"]
    assert (a.active, a.placed, a.missing, b.missing) == (3, 1, 2, 1)
    assert (found.complete, found.scheduled, found.min_bound) == (True, False, False)
    assert (found.created, found.needed) == (5, 5)
    model.delete_pod(NS, "b-0")
    short = members(model, gang)
    assert (short.complete, short.created, short.needed) == (False, 4, 5)

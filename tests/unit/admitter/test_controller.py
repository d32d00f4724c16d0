"""The admitter's I/O: which PodGang status it writes (phase, Admitted and Initialized: all of it), which
Events it records, admission on create, and that a lagging informer does not make it repeat itself. The
apiserver is a fake."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import time
from typing import Any

from prometheus_client import REGISTRY

from admitter.budget import TokenBucket
from admitter.controller import PACED_SECONDS, Admitter
from admitter.core.decision import Decision
from admitter.events import POD_EVENTS_BURST, PodEvents
from admitter.status import INITIALIZED_GRACE_SECONDS, QUIET_SECONDS, RECORD_WAIT_SECONDS
from grove_api.operatorconfig import GangAdmission
from grove_api.podgang import (
    REASON_ADMITTED,
    REASON_POD_GANG_BLOCKED,
    REASON_POD_GANG_WAITING,
    REASON_PODS_CREATED,
    REASON_PODS_CREATION_PENDING,
    REASON_PODS_PENDING,
    REASON_RECREATED,
    REASON_REPLACEMENTS_BLOCKED,
    REASON_UNSCHEDULABLE,
)
from grove_api.refs import Ref
from kube.client import Unavailable

from .builders import NS, node, pod, podgang

JSON = dict[str, Any]


class FakeApi:
    """Records status writes, Events and pod patches; answers like the apiserver would."""

    def __init__(self) -> None:
        self.statuses: list[tuple[str, JSON]] = []
        self.events: list[JSON] = []  # as created, named by the apiserver
        self.event_patches: list[tuple[str, JSON]] = []  # (Event name, merge patch): repeats counted up
        self.patched: list[str] = []
        self.pods: dict[str, JSON] = {}
        self.refuse_pod_events = 0  # Events on pods to refuse (the next ones), as a throttled apiserver would
        self.rv = 100

    async def apply_status(self, ref: Ref, status: JSON, field_manager: str | None = None) -> JSON:
        self.statuses.append((ref.name, copy.deepcopy(status)))
        return {}

    async def create(self, obj: JSON) -> JSON:
        if self.refuse_pod_events and obj["involvedObject"]["kind"] == "Pod":
            self.refuse_pod_events -= 1
            raise Unavailable("too many requests", status=429)
        obj = copy.deepcopy(obj)
        obj["metadata"]["name"] = f"{obj['metadata']['generateName']}{len(self.events)}"
        self.events.append(obj)
        return obj

    async def patch(self, ref: Ref, patch: JSON, *, content_type: str, subresource: str = "") -> JSON:
        if ref.kind == "Event":
            self.event_patches.append((ref.name, patch))
            return patch
        self.patched.append(ref.name)
        self.rv += 1
        obj = copy.deepcopy(self.pods[ref.name])
        obj["metadata"]["resourceVersion"] = str(self.rv)
        obj["spec"]["schedulingGates"] = []
        obj["spec"].setdefault("nodeSelector", {}).update(patch["spec"]["nodeSelector"])
        return obj

    async def delete(self, ref: Ref, uid: str | None = None, propagation: str = "Background") -> bool:
        return True

    def conditions(self) -> list[tuple[str, str, str, str, str]]:
        """(gang, phase, status, reason, message) of every status write so far."""
        return [
            (
                name,
                s["phase"],
                s["conditions"][0]["status"],
                s["conditions"][0]["reason"],
                s["conditions"][0]["message"],
            )
            for name, s in self.statuses
        ]


INITIALIZED = {"type": "Initialized", "status": "True", "reason": REASON_PODS_CREATED, "message": "m"}


def admitted(name: str, groups: list[tuple[str, int, list[str]]], rv: str, phase: str = "Running") -> JSON:
    """A PodGang admitted an hour ago (all its pods were created then: Initialized)."""
    obj = podgang(name, groups, created=time.time() - 3600, admitted_at=time.time() - 3600)
    obj["metadata"].update(uid=f"uid-{name}", resourceVersion=rv)
    obj["status"]["phase"] = phase
    obj["status"]["conditions"][0].update(reason=REASON_ADMITTED, message="admitted")
    obj["status"]["conditions"].append(dict(INITIALIZED))
    return obj


def setup(*nodes: JSON) -> tuple[Admitter, FakeApi]:
    api = FakeApi()
    admitter = Admitter(api, GangAdmission())  # type: ignore[arg-type]
    for obj in nodes:
        admitter.model.upsert_node(obj)
    return admitter, api


def add_pod(admitter: Admitter, api: FakeApi, obj: JSON) -> None:
    obj["metadata"]["resourceVersion"] = "1"
    api.pods[obj["metadata"]["name"]] = obj
    admitter.pods._store("ADDED", obj)
    admitter.feed.on_pod("ADDED", obj)  # as the informer delivers it
    admitter.model.upsert_pod(obj)  # even where the admitter's own write of it was newer


def set_podgang(admitter: Admitter, obj: JSON) -> None:
    admitter.podgangs._store("MODIFIED", obj)
    admitter.feed.on_podgang("MODIFIED", obj)


def member(obj: JSON, clique: str) -> JSON:
    """`obj`, a pod the PodClique `clique` controls (see `podclique`)."""
    owner = {"kind": "PodClique", "name": clique, "uid": f"uid-{clique}", "controller": True}
    obj["metadata"]["ownerReferences"] = [owner]
    return obj


def podclique(admitter: Admitter, name: str, replicas: int) -> None:
    """The PodClique in the cache (the reconciler's informer, shared): a PodGang's Initialized needs its
    PodCliques and `replicas` of their pods."""
    obj = {"metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"}, "spec": {"replicas": replicas}}
    admitter.podcliques._store("ADDED", obj)


def by_type(status: JSON) -> dict[str, JSON]:
    return {x["type"]: x for x in status["conditions"]}


def test_blocked_replacements_are_reported_once_then_cleared_when_released() -> None:
    admitter, api = setup(node("n0", cpu=3))
    now = time.time()
    add_pod(admitter, api, pod("g-w-0", gang="g", clique="w", cpu="1", gated=False, node_name="n0"))
    add_pod(admitter, api, pod("hog", cpu="1", gated=False, node_name="n0"))
    for name in ("g-w-1", "g-w-2"):
        add_pod(admitter, api, pod(name, gang="g", clique="w", cpu="1", created=now))
    gang = admitted("g", [("w", 3, ["g-w-0", "g-w-1", "g-w-2"])], rv="7")
    set_podgang(admitter, gang)

    decision = asyncio.run(admitter.run_pass())
    assert [b.gang for b in decision.restore_blocked] == ["g"] and decision.release == ()
    message = "needs 2 replacement pods (1 cpu, 1Gi each) in podgroup w; only 1 fit (on 1 node)"
    assert api.conditions() == [("g", "Running", "True", REASON_REPLACEMENTS_BLOCKED, message)]
    assert [(e["type"], e["reason"]) for e in about(api, "PodGang")] == [
        ("Warning", REASON_REPLACEMENTS_BLOCKED)
    ]
    told = f"PodGang g waits ({REASON_UNSCHEDULABLE}): {message}"  # the pods that wait say why
    assert told_pods(api) == [
        ("g-w-1", REASON_POD_GANG_BLOCKED, told),
        ("g-w-2", REASON_POD_GANG_BLOCKED, told),
    ]
    assert api.patched == []

    asyncio.run(admitter.run_pass())  # the informer has not seen the write yet: nothing repeated
    assert len(api.statuses) == 1 and len(api.events) == 3

    written = copy.deepcopy(gang)
    written["metadata"]["resourceVersion"] = "8"
    written["status"]["conditions"][0].update(reason=REASON_REPLACEMENTS_BLOCKED, message=message)
    set_podgang(admitter, written)
    asyncio.run(admitter.run_pass())  # seen, same message: nothing to write
    assert len(api.statuses) == 1

    admitter.model.delete_pod(NS, "hog")
    decision = asyncio.run(admitter.run_pass())
    assert sorted(r.pod for r in decision.release) == ["g-w-1", "g-w-2"]
    assert sorted(api.patched) == ["g-w-1", "g-w-2"]
    assert api.conditions()[-1] == (
        "g",
        "Running",
        "True",
        REASON_ADMITTED,
        "replacement pods placed and released",
    )
    assert api.events[-1]["type"] == "Normal"


def about(api: FakeApi, kind: str) -> list[JSON]:
    """The Events recorded about objects of this kind."""
    return [e for e in api.events if e["involvedObject"]["kind"] == kind]


def told_pods(api: FakeApi) -> list[tuple[str, str, str]]:
    """(pod, reason, message) of every Event on a pod (all Warnings, from the gang admitter), by pod."""
    pods = about(api, "Pod")
    assert all(e["type"] == "Warning" and e["source"]["component"] == "grove-gang-admitter" for e in pods)
    return sorted((e["involvedObject"]["name"], e["reason"], e["message"]) for e in pods)


def deferred() -> float | None:
    return REGISTRY.get_sample_value("grove_gang_pod_events_deferred")


def test_the_gated_pods_of_a_waiting_gang_are_told_why_once_per_episode() -> None:
    """`kubectl describe pod` of a gated pod shows why its gang waits: one Warning Event per pod when the
    gang starts waiting and when its reason changes (not every pass, not when only the numbers move), a
    reason told again counts up its earlier Event (as client-go aggregates), nothing once admitted."""
    admitter, api = setup(node("n0", cpu=1))
    add_pod(admitter, api, pod("g-w-0", gang="g", clique="w", cpu="1"))  # g-w-1 is not created yet
    set_podgang(admitter, owned(podgang("g", [("w", 2, ["g-w-0", "g-w-1"])]), "pcs"))
    decision = asyncio.run(admitter.run_pass())
    (waits,) = decision.waiting
    assert waits.reason == REASON_PODS_PENDING
    waiting = f"PodGang g waits ({REASON_PODS_PENDING}): {waits.message}"
    assert told_pods(api) == [("g-w-0", REASON_POD_GANG_WAITING, waiting)]
    for _ in range(2):
        asyncio.run(admitter.run_pass())
    assert len(about(api, "Pod")) == 1

    add_pod(admitter, api, pod("g-w-1", gang="g", clique="w", cpu="1"))  # all there: 2 cpu needed, 1 free
    decision = asyncio.run(admitter.run_pass())
    (blocked,) = decision.blocked
    assert blocked.reason == REASON_UNSCHEDULABLE
    unschedulable = f"PodGang g waits ({REASON_UNSCHEDULABLE}): {blocked.message}"
    assert told_pods(api) == [
        ("g-w-0", REASON_POD_GANG_BLOCKED, unschedulable),
        ("g-w-0", REASON_POD_GANG_WAITING, waiting),
        ("g-w-1", REASON_POD_GANG_BLOCKED, unschedulable),
    ]
    asyncio.run(admitter.run_pass())
    assert len(about(api, "Pod")) == 3 and api.event_patches == []

    gone = admitter.pods.get(NS, "g-w-1")
    assert gone is not None
    admitter.pods._store("DELETED", gone)
    admitter.feed.on_pod("DELETED", gone)
    decision = asyncio.run(admitter.run_pass())  # waiting for its pods again: told again, as a repeat
    assert [w.reason for w in decision.waiting] == [REASON_PODS_PENDING]
    assert len(about(api, "Pod")) == 3
    first = about(api, "Pod")[0]["metadata"]["name"]
    ((name, patch),) = api.event_patches
    assert (name, patch["count"], patch["message"]) == (first, 2, waiting)

    admitter.model.upsert_node(node("n1", cpu=1))
    add_pod(admitter, api, pod("g-w-1", gang="g", clique="w", cpu="1"))
    decision = asyncio.run(admitter.run_pass())
    assert [a.gang for a in decision.admit] == ["g"]
    asyncio.run(admitter.run_pass())
    assert len(about(api, "Pod")) == 3 and len(api.event_patches) == 1  # admitted: nothing more


def test_pod_events_are_rate_bounded_one_pod_per_gang_first_and_none_is_dropped() -> None:
    """A token bucket bounds the Events on waiting pods overall; what it holds back is written by later
    passes (one pod of every gang, in queue order, before a second pod of any), each pod once; a refused
    write is tried again."""
    admitter, api = setup(node("n0", cpu=1))
    clock = [0.0]
    admitter.pod_events = PodEvents(api, admitter.model, admitter.pods, TokenBucket(1.0, 3, lambda: clock[0]))
    for gang in ("a", "b", "c"):
        members = [f"{gang}-w-0", f"{gang}-w-1"]
        for name in members:
            add_pod(admitter, api, pod(name, gang=gang, clique=f"{gang}-w", cpu="2"))
        set_podgang(admitter, podgang(gang, [(f"{gang}-w", 2, members)]))

    def told() -> list[str]:
        return [e["involvedObject"]["name"] for e in about(api, "Pod")]

    decision = asyncio.run(admitter.run_pass())
    assert [b.gang for b in decision.blocked] == ["a", "b", "c"]
    assert told() == ["a-w-0", "b-w-0", "c-w-0"] and deferred() == 3
    asyncio.run(admitter.run_pass())  # no token left
    assert len(told()) == 3 and deferred() == 3
    clock[0] += 2.0
    api.refuse_pod_events = 1
    asyncio.run(admitter.run_pass())  # two tokens: a-w-1 refused, b-w-1 written
    assert told()[3:] == ["b-w-1"] and deferred() == 1
    clock[0] += 60.0
    asyncio.run(admitter.run_pass())  # the bucket holds 3 at most; 2 owed
    assert sorted(told()[4:]) == ["a-w-1", "c-w-1"] and deferred() == 0
    clock[0] += 60.0
    asyncio.run(admitter.run_pass())
    assert sorted(told()) == sorted(f"{g}-w-{i}" for g in "abc" for i in range(2))  # each pod once


def test_many_blocked_gangs_cost_one_burst_of_pod_events_then_the_rate() -> None:
    gangs = [f"g{i:02}" for i in range(POD_EVENTS_BURST + 10)]
    admitter, api = setup(node("n0", cpu=1))
    for gang in gangs:
        members = [f"{gang}-w-0", f"{gang}-w-1"]
        for name in members:
            add_pod(admitter, api, pod(name, gang=gang, clique=f"{gang}-w", cpu="2"))
        set_podgang(admitter, podgang(gang, [(f"{gang}-w", 2, members)]))
    decision = asyncio.run(admitter.run_pass())
    assert len(decision.blocked) == len(gangs)
    told = [e["involvedObject"]["name"] for e in about(api, "Pod")]
    assert told == [f"{gang}-w-0" for gang in gangs[:POD_EVENTS_BURST]]  # queue order: oldest first
    assert deferred() == 2 * len(gangs) - POD_EVENTS_BURST


def test_recreated_gang_is_unadmitted_once() -> None:
    admitter, api = setup(node("n0", cpu=1))
    for name in ("g-w-0", "g-w-1"):
        add_pod(admitter, api, pod(name, gang="g", clique="w", cpu="1", created=time.time()))
    set_podgang(admitter, admitted("g", [("w", 2, ["g-w-0", "g-w-1"])], rv="3"))
    decision = asyncio.run(admitter.run_pass())
    assert [u.gang for u in decision.unadmit] == ["g"]
    ((name, phase, status, reason, _message),) = api.conditions()
    assert (name, phase, status, reason) == ("g", "Pending", "False", REASON_RECREATED)
    assert [(e["type"], e["reason"]) for e in api.events] == [("Normal", REASON_RECREATED)]
    asyncio.run(admitter.run_pass())  # informer still shows it admitted: not repeated
    assert len(api.statuses) == 1 and len(api.events) == 1 and api.patched == []


def owned(obj: JSON, pcs: str) -> JSON:
    obj["metadata"].update(
        uid=f"uid-{obj['metadata']['name']}",
        resourceVersion="5",
        ownerReferences=[{"kind": "PodCliqueSet", "name": pcs, "uid": f"uid-{pcs}", "controller": True}],
    )
    return obj


def test_gangs_admitted_together_make_one_event_on_their_podcliqueset() -> None:
    admitter, api = setup(node("n0", cpu=4))
    for gang in ("pcs-0", "pcs-1"):
        for i in range(2):
            add_pod(admitter, api, pod(f"{gang}-w-{i}", gang=gang, clique=f"{gang}-w", cpu="1"))
        members = [f"{gang}-w-0", f"{gang}-w-1"]
        set_podgang(admitter, owned(podgang(gang, [(f"{gang}-w", 2, members)]), "pcs"))
    decision = asyncio.run(admitter.run_pass())
    assert sorted(a.gang for a in decision.admit) == ["pcs-0", "pcs-1"]
    assert [(e["involvedObject"]["kind"], e["reason"], e["message"]) for e in api.events] == [
        ("PodCliqueSet", "GangsAdmitted", "2 gangs admitted (4 pods released): pcs-0, pcs-1")
    ]


def test_a_gang_that_waited_gets_its_own_admission_event() -> None:
    admitter, api = setup(node("n0", cpu=2))
    for i in range(2):
        add_pod(admitter, api, pod(f"g-w-{i}", gang="g", clique="w", cpu="1"))
    gang = owned(podgang("g", [("w", 2, ["g-w-0", "g-w-1"])]), "pcs")
    gang["status"] = {"conditions": [{"type": "Admitted", "status": "False", "reason": "Unschedulable"}]}
    set_podgang(admitter, gang)
    asyncio.run(admitter.run_pass())
    assert sorted((e["involvedObject"]["kind"], e["reason"]) for e in api.events) == [
        ("PodCliqueSet", "GangsAdmitted"),
        ("PodGang", REASON_ADMITTED),
    ]


def test_admission_records_initialized_and_later_writes_keep_it() -> None:
    """Admitted means every pod of the minimum exists; with all the gang's pods created (its PodClique has
    them all), the admission write carries Initialized=True as the reconciler would have written it (one
    write for both). Each later write of the admitter carries it again, or server-side apply would remove a
    condition this manager wrote and then left out."""
    admitter, api = setup(node("n0", cpu=2))
    podclique(admitter, "w", replicas=2)
    for i in range(2):
        add_pod(admitter, api, member(pod(f"g-w-{i}", gang="g", clique="w", cpu="1"), "w"))
    set_podgang(admitter, owned(podgang("g", [("w", 2, ["g-w-0", "g-w-1"])]), "pcs"))
    asyncio.run(admitter.run_pass())
    (name, status), *_ = api.statuses
    assert (name, status["phase"]) == ("g", "Admitted")
    assert (by_type(status)["Initialized"]["status"], by_type(status)["Initialized"]["reason"]) == (
        "True",
        "PodGangPodsCreated",
    )
    assert by_type(status)["Admitted"]["status"] == "True"
    assert len(api.statuses) == 1  # Initialized went with the admission
    gang = admitted("g", [("w", 2, ["g-w-0", "g-w-1"])], rv="9", phase="Admitted")
    gang["status"]["conditions"][1] = by_type(status)["Initialized"]
    for i in range(2):  # bound and Running
        running = pod(f"g-w-{i}", gang="g", clique="w", cpu="1", gated=False, node_name="n0")
        add_pod(admitter, api, member(running, "w"))
    set_podgang(admitter, gang)
    api.statuses.clear()

    asyncio.run(admitter.run_pass())
    assert [(n, s["phase"], sorted(x["type"] for x in s["conditions"])) for n, s in api.statuses] == [
        ("g", "Running", ["Admitted", "Initialized"])
    ]
    assert by_type(api.statuses[0][1])["Initialized"]["status"] == "True"


def test_a_blocked_gang_gets_initialized_with_its_admitted_condition() -> None:
    """The reconciler used to write Initialized=True after the admitter's Admitted=False (two writes, two
    field managers): now one write of the admitter's carries both."""
    admitter, api = setup(node("n0", cpu=1))
    podclique(admitter, "w", replicas=2)
    for i in range(2):
        add_pod(admitter, api, member(pod(f"g-w-{i}", gang="g", clique="w", cpu="1"), "w"))
    set_podgang(admitter, owned(podgang("g", [("w", 2, ["g-w-0", "g-w-1"])]), "pcs"))
    decision = asyncio.run(admitter.run_pass())
    assert [b.gang for b in decision.blocked] == ["g"]
    ((name, status),) = api.statuses
    assert (name, status["phase"]) == ("g", "Pending")
    assert [(x["type"], x["status"], x["reason"]) for x in status["conditions"]] == [
        ("Admitted", "False", REASON_UNSCHEDULABLE),
        ("Initialized", "True", REASON_PODS_CREATED),
    ]


def test_initialized_false_goes_out_promptly_for_a_gang_whose_pods_are_missing() -> None:
    """What the reconciler wrote before: Initialized=False as soon as a PodGang's pods are known to be
    missing (here after INITIALIZED_GRACE_SECONDS: pods and PodGangs come on separate watches), while the
    Admitted condition of a gang waiting for its pods waits QUIET_SECONDS as before. Nothing else is
    written: no phase, no Admitted condition."""
    admitter, api = setup(node("n0", cpu=4))
    podclique(admitter, "w", replicas=2)
    add_pod(admitter, api, member(pod("g-w-0", gang="g", clique="w"), "w"))  # g-w-1 is not created
    fresh = owned(podgang("g", [("w", 2, ["g-w-0", "g-w-1"])], created=time.time()), "pcs")
    set_podgang(admitter, fresh)
    decision = asyncio.run(admitter.run_pass())
    assert [w.reason for w in decision.waiting] == [REASON_PODS_PENDING]
    assert api.statuses == []
    assert 0 < admitter.status.initialized_due <= INITIALIZED_GRACE_SECONDS  # the loop looks again then

    created = time.time() - INITIALIZED_GRACE_SECONDS - 1
    set_podgang(admitter, owned(podgang("g", [("w", 2, ["g-w-0", "g-w-1"])], created=created), "pcs"))
    asyncio.run(admitter.run_pass())
    ((name, status),) = api.statuses
    assert name == "g" and "phase" not in status
    assert [(x["type"], x["status"], x["reason"], x["message"]) for x in status["conditions"]] == [
        (
            "Initialized",
            "False",
            REASON_PODS_CREATION_PENDING,
            "Not all constituent pods have been created yet",
        )
    ]
    assert admitter.status.initialized_due == float("inf")
    asyncio.run(admitter.run_pass())  # the informer has not shown the write: nothing repeated
    assert len(api.statuses) == 1

    seen = owned(podgang("g", [("w", 2, ["g-w-0", "g-w-1"])], created=created), "pcs")
    seen["metadata"]["resourceVersion"] = "6"
    seen["status"] = copy.deepcopy(status)
    set_podgang(admitter, seen)
    asyncio.run(admitter.run_pass())  # written and seen: nothing to write
    assert len(api.statuses) == 1

    waited = owned(podgang("g", [("w", 2, ["g-w-0", "g-w-1"])], created=time.time() - QUIET_SECONDS), "pcs")
    waited["metadata"]["resourceVersion"] = "7"
    waited["status"] = copy.deepcopy(status)
    set_podgang(admitter, waited)
    asyncio.run(admitter.run_pass())  # the gang's first Admitted condition, after QUIET_SECONDS as before
    assert [(x["type"], x["status"], x["reason"]) for x in api.statuses[-1][1]["conditions"]] == [
        ("Admitted", "False", REASON_PODS_PENDING),
        ("Initialized", "False", REASON_PODS_CREATION_PENDING),
    ]
    assert api.statuses[-1][1]["phase"] == "Pending"


def test_initialized_turns_true_once_every_pod_exists_and_never_back() -> None:
    """A gang admitted on its minimum while a pod beyond it is not created yet: Initialized=False goes with
    the admission, True once the last pod exists (phase and Admitted carried as they are), and it stays
    True when pods go missing again."""
    admitter, api = setup(node("n0", cpu=4))
    podclique(admitter, "w", replicas=2)
    add_pod(admitter, api, member(pod("g-w-0", gang="g", clique="w"), "w"))
    set_podgang(admitter, owned(podgang("g", [("w", 1, ["g-w-0", "g-w-1"])]), "pcs"))
    decision = asyncio.run(admitter.run_pass())
    assert [a.gang for a in decision.admit] == ["g"]
    ((_, status),) = api.statuses
    assert [(x["type"], x["status"]) for x in status["conditions"]] == [
        ("Admitted", "True"),
        ("Initialized", "False"),
    ]
    bound = pod("g-w-0", gang="g", clique="w", gated=False, node_name="n0")
    add_pod(admitter, api, member(bound, "w"))
    gang = admitted("g", [("w", 1, ["g-w-0", "g-w-1"])], rv="8", phase="Admitted")
    gang["status"]["conditions"][1] = by_type(status)["Initialized"]
    set_podgang(admitter, gang)
    asyncio.run(admitter.run_pass())  # nothing changed
    assert len(api.statuses) == 1

    add_pod(admitter, api, member(pod("g-w-1", gang="g", clique="w"), "w"))
    asyncio.run(admitter.run_pass())  # the pod beyond the minimum is released where it fits, too
    assert len(api.statuses) == 2 and api.patched == ["g-w-0", "g-w-1"]
    _, status = api.statuses[-1]
    assert status["phase"] == "Admitted"
    assert [(x["type"], x["status"], x["reason"]) for x in status["conditions"]] == [
        ("Admitted", "True", REASON_ADMITTED),
        ("Initialized", "True", REASON_PODS_CREATED),
    ]

    seen = copy.deepcopy(gang)
    seen["metadata"]["resourceVersion"] = "9"
    seen["status"]["conditions"] = copy.deepcopy(status["conditions"])
    set_podgang(admitter, seen)
    deleted = admitter.pods.get(NS, "g-w-1")
    assert deleted is not None
    admitter.pods._store("DELETED", deleted)
    admitter.feed.on_pod("DELETED", deleted)
    asyncio.run(admitter.run_pass())  # a pod missing again: Initialized stays True, nothing written
    assert len(api.statuses) == 2


def test_running_phase_is_written_once_while_the_informer_lags() -> None:
    admitter, api = setup(node("n0", cpu=2))
    for i in range(2):
        add_pod(admitter, api, pod(f"g-w-{i}", gang="g", clique="w", cpu="1", gated=False, node_name="n0"))
    set_podgang(admitter, admitted("g", [("w", 2, ["g-w-0", "g-w-1"])], rv="9", phase="Admitted"))

    for _ in range(3):  # the PodGang in the cache still says Admitted after our write
        asyncio.run(admitter.run_pass())
    assert [(n, s["phase"]) for n, s in api.statuses] == [("g", "Running")]


# --- admission on create: gangs admitted as their pods are created -------------------------------------


def synced(*nodes: JSON) -> tuple[Admitter, FakeApi]:
    admitter, api = setup(*nodes)
    admitter.synced = True
    admitter.feed.grew_at = 0.0  # the nodes came long ago: capacity has settled
    return admitter, api


def planned(gang: str, size: int, cpu: str = "1") -> tuple[JSON, list[JSON]]:
    """A PodGang and its pods as the reconciler is about to create them (pods without the gate)."""
    names = [f"{gang}-w-{i}" for i in range(size)]
    pods = [pod(name, gang=gang, clique=f"{gang}-w", cpu=cpu, gated=False) for name in names]
    return podgang(gang, [(f"{gang}-w", size, names)]), pods


def test_new_gangs_that_fit_an_idle_cluster_are_admitted_before_their_pods_exist() -> None:
    admitter, _ = synced(node("n0", cpu=2), node("n1", cpu=1))
    first, first_pods = planned("a", 2)
    second, second_pods = planned("b", 2)
    placed = admitter.on_create.admit([first, second], first_pods + second_pods)
    # All or nothing, oldest first: a takes 2 of the 3 cpus; b's two pods do not fit the one left.
    assert sorted(placed) == [(NS, "a-w-0"), (NS, "a-w-1")] and set(placed.values()) <= {"n0", "n1"}
    assert sum(admitter.model.free(n).get("cpu") for n in ("n0", "n1")) == 1000  # millicores
    assert admitter.model.pod(NS, "b-w-0") is None  # left to the usual path: created gated, queued
    # The capacity stays taken for the next caller, before any pod exists.
    third, third_pods = planned("c", 2)
    assert admitter.on_create.admit([third], third_pods) == {}


def test_nothing_is_admitted_on_create_while_another_gang_waits() -> None:
    admitter, api = synced(node("n0", cpu=4))
    add_pod(admitter, api, pod("old-w-0", gang="old", clique="old-w", cpu="8"))
    set_podgang(admitter, podgang("old", [("old-w", 1, ["old-w-0"])]))  # blocked: needs 8 cpu
    new, new_pods = planned("new", 1)
    assert admitter.on_create.admit([new], new_pods) == {}
    assert admitter.model.pod(NS, "new-w-0") is None and admitter.model.free("n0").get("cpu") == 4000


def test_forget_frees_what_was_not_created_but_never_a_pod_already_seen() -> None:
    admitter, _api = synced(node("n0", cpu=2))
    gang, pods = planned("a", 2)
    assert len(admitter.on_create.admit([gang], pods)) == 2
    seen = admitter_view(pods[0], "n0")
    admitter.feed.on_pod("ADDED", seen)  # the informer has the created pod
    admitter.on_create.forget([(NS, "a-w-0"), (NS, "a-w-1")])  # the second create failed
    assert admitter.model.pod(NS, "a-w-0") is not None and admitter.model.pod(NS, "a-w-1") is None
    assert admitter.model.free("n0").get("cpu") == 1000  # millicores


def admitter_view(obj: JSON, hostname: str) -> JSON:
    created = copy.deepcopy(obj)
    created["metadata"]["resourceVersion"] = "11"
    created["spec"]["nodeSelector"] = {"kubernetes.io/hostname": hostname}
    return created


def test_a_gang_admitted_on_create_is_put_on_record_once_running_at_once() -> None:
    admitter, api = synced(node("n0", cpu=2))
    podclique(admitter, "w", replicas=2)
    for i in range(2):
        running = pod(f"g-w-{i}", gang="g", clique="w", cpu="1", gated=False, node_name="n0", phase="Running")
        add_pod(admitter, api, member(running, "w"))
    set_podgang(admitter, owned(podgang("g", [("w", 2, ["g-w-0", "g-w-1"])]), "pcs"))
    for _ in range(2):  # the second pass still sees the PodGang without our write
        decision = asyncio.run(admitter.run_pass())
        assert decision.admit == () and [r.gang for r in decision.record_admitted_on_create] == ["g"]
    ((name, status),) = api.statuses
    conditions = by_type(status)
    assert (name, status["phase"], conditions["Admitted"]["status"], conditions["Initialized"]["status"]) == (
        "g",
        "Running",
        "True",
        "True",
    )
    assert "admitted as they were created" in conditions["Admitted"]["message"]
    assert api.patched == []
    assert [(e["involvedObject"]["kind"], e["reason"], e["message"]) for e in api.events] == [
        ("PodCliqueSet", "GangsAdmitted", "1 gang admitted (2 pods created pinned): g")
    ]


def test_a_gang_admitted_on_create_goes_on_record_when_its_pods_run_and_is_told_once() -> None:
    """One status write per gang (Admitted, Initialized and Running together) instead of one at once and
    another when its pods run; a gang whose pods do not run goes on record after RECORD_WAIT_SECONDS; the
    PodCliqueSet gets one Event once all its gangs are on record."""
    admitter, api = synced(node("n0", cpu=4))
    podclique(admitter, "w", replicas=2)

    def gang(name: str, phase: str, created: float) -> None:
        for i in range(2):
            bound = pod(f"{name}-w-{i}", gang=name, clique="w", gated=False, node_name="n0", phase=phase)
            add_pod(admitter, api, member(bound, "w"))
        refs = [f"{name}-w-0", f"{name}-w-1"]
        set_podgang(admitter, owned(podgang(name, [("w", 2, refs)], created=created), "pcs"))

    gang("g", "Pending", time.time())
    gang("h", "Pending", time.time())
    decision = asyncio.run(admitter.run_pass())
    assert sorted(r.gang for r in decision.record_admitted_on_create) == ["g", "h"]
    assert api.statuses == [] and api.events == []
    gang("g", "Running", time.time())
    asyncio.run(admitter.run_pass())
    assert [(n, s["phase"]) for n, s in api.statuses] == [("g", "Running")] and api.events == []
    gang("h", "Pending", time.time() - RECORD_WAIT_SECONDS - 1)
    asyncio.run(admitter.run_pass())
    assert [(n, s["phase"]) for n, s in api.statuses] == [("g", "Running"), ("h", "Admitted")]
    assert all(by_type(s)["Initialized"]["status"] == "True" for _, s in api.statuses)
    assert [(e["reason"], e["message"]) for e in api.events] == [
        ("GangsAdmitted", "2 gangs admitted (4 pods created pinned): g, h")
    ]


def test_a_gang_with_pods_of_another_incarnation_is_not_admitted_on_create() -> None:
    """A pod labelled for the gang that the reconciler is not creating (its PodClique was deleted and the
    garbage collector has not come yet) would count towards the minimum: the usual path judges it."""
    admitter, api = synced(node("n0", cpu=2))
    add_pod(admitter, api, pod("a-w-9", gang="a", clique="a-w", cpu="1"))  # gated, no room left for it
    gang, pods = planned("a", 2)
    assert admitter.on_create.admit([gang], pods) == {}
    assert admitter.model.pod(NS, "a-w-0") is None and admitter.model.free("n0").get("cpu") == 2000


# --- the loop: passes paced while no pod carries our gate ----------------------------------------------


def passes_during_events(gated: bool, seconds: float = 0.6) -> list[float]:
    """Run the admission loop while a pod event arrives every 20 ms for `seconds`; when each pass began.
    `gated`: one pod carries our gate the whole time."""
    admitter, api = setup(node("n0", cpu=8))
    if gated:
        add_pod(admitter, api, pod("waiting", gang="w", clique="w", cpu="1"))
    started: list[float] = []

    async def no_informers(timeout: float | None = None) -> None:
        return None

    async def run_pass() -> Decision:
        started.append(time.monotonic())
        return Decision()

    async def scenario() -> None:
        for informer in (admitter.nodes, admitter.pods, admitter.podgangs, admitter.podcliques):
            informer.start = no_informers  # type: ignore[method-assign]
        admitter.priority_classes.start = no_informers  # type: ignore[method-assign]
        admitter.run_pass = run_pass  # type: ignore[method-assign]
        loop = asyncio.create_task(admitter.run())
        bound = pod("running", gang="r", clique="r", cpu="1", gated=False, node_name="n0")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            bound["metadata"]["resourceVersion"] = str(int(time.monotonic() * 1e6))
            admitter.feed.on_pod("MODIFIED", bound)
            await asyncio.sleep(0.02)
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop

    asyncio.run(scenario())
    return started


def test_passes_are_paced_while_no_pod_is_gated_and_prompt_while_one_is() -> None:
    paced = passes_during_events(gated=False)
    assert 1 <= len(paced) <= 2  # the first at once, the next PACED_SECONDS later
    assert all(b - a >= PACED_SECONDS - 0.05 for a, b in itertools.pairwise(paced))
    prompt = passes_during_events(gated=True)
    assert len(prompt) >= 10  # one per burst of events (every 20 ms here)

"""Desired status of PodCliques, scaling groups, PodCliqueSets and PodGangs (docs/api.md, "Status fields" and
"PodGangs"; docs/termination-and-updates.md, "Availability conditions"), pod categories, and the status merge
patch."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from grove_api import conditions as cond
from grove_api import constants as c
from grove_api import hashing, podgang, podstate
from reconciler.planner import status as st

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)
T_NOW = "2026-03-01T12:00:00Z"
T_LATER = "2026-03-01T12:10:00Z"

MAB = c.CONDITION_MIN_AVAILABLE_BREACHED
SCHED = c.CONDITION_PODCLIQUE_SCHEDULED
GTIP = c.CONDITION_GANG_TERMINATION_IN_PROGRESS
INIT = c.CONDITION_PODGANG_INITIALIZED


# --- builders ---------------------------------------------------------------------------------------
def pod(
    name: str = "p",
    *,
    ready: bool = False,
    scheduled: bool | None = None,
    gated: bool = False,
    gates: bool = False,
    terminating: bool = False,
    hash_: str | None = "h1",
    init_exit: int | None = None,
    main_exit: int | None = None,
    started: bool | None = None,
    container_ready: bool = False,
    phase: str = "Pending",
    node: str | None = None,
) -> dict[str, Any]:
    """A pod as the apiserver returns it. scheduled None = no PodScheduled condition at all."""
    conditions: list[dict[str, Any]] = []
    if gated:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"})
    elif scheduled is not None:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True" if scheduled else "False",
                "reason": "" if scheduled else "Unschedulable",
            }
        )
    conditions.append({"type": "Ready", "status": "True" if ready else "False"})
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if init_exit is not None:
        status["initContainerStatuses"] = [
            {"name": "init", "ready": False, "lastState": {"terminated": {"exitCode": init_exit}}}
        ]
    if main_exit is not None or started is not None or container_ready:
        cs: dict[str, Any] = {"name": "main", "ready": container_ready}
        if started is not None:
            cs["started"] = started
        if main_exit is not None:
            cs["lastState"] = {"terminated": {"exitCode": main_exit}}
        status["containerStatuses"] = [cs]
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "labels": {}}
    if hash_ is not None:
        meta["labels"][c.LABEL_POD_TEMPLATE_HASH] = hash_
    if terminating:
        meta["deletionTimestamp"] = "2026-03-01T11:59:00Z"
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "x"}]}
    if gates or gated:
        spec["schedulingGates"] = [{"name": c.SCHEDULING_GATE_PODGANG_PENDING}]
    if node:
        spec["nodeName"] = node
    return {"metadata": meta, "spec": spec, "status": status}


def running(name: str = "p", **kw: Any) -> dict[str, Any]:
    """Scheduled, bound, Running and Ready."""
    return pod(
        name, ready=True, scheduled=True, started=True, container_ready=True, phase="Running", node="n1", **kw
    )


def pclq(
    *,
    replicas: int = 3,
    min_available: int | None = 2,
    label_hash: str = "h1",
    status: dict[str, Any] | None = None,
    reconciled: bool = True,
    name: str = "pcs-0-worker",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": replicas, "podSpec": {}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    stat = dict(status or {})
    if reconciled:
        stat.setdefault("observedGeneration", 1)
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND_PODCLIQUE,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "generation": 2,
            "labels": {c.LABEL_POD_TEMPLATE_HASH: label_hash},
        },
        "spec": spec,
        "status": stat,
    }


def pclq_status(obj: dict[str, Any], pods: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "expected_hash": "h1",
        "pcs_generation_hash": "g1",
        "standalone": True,
        "pcs_name": "pcs",
        "now": NOW,
    }
    args.update(kw)
    return st.podclique_status(obj, pods, **args)


def get(conds: list[dict[str, Any]] | None, type_: str) -> dict[str, Any]:
    found = cond.get_condition(conds, type_)
    assert found is not None, f"no {type_} condition in {conds}"
    return found


# --- pod categories ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (pod(), {}),
        (pod(terminating=True), {"terminating"}),
        (pod(ready=True, scheduled=True), {"ready", "scheduled"}),
        (pod(scheduled=False), set()),
        (pod(gated=True), {"gated"}),
        (pod(gates=True), {"gated"}),  # gates present, scheduler has not written PodScheduled yet
        (pod(gates=True, scheduled=False), set()),  # PodScheduled=False/Unschedulable: not gated
        (pod(init_exit=1), {"failed", "erroneous"}),
        (pod(main_exit=137), {"failed", "erroneous"}),
        (pod(main_exit=0), set()),
        (pod(init_exit=0), set()),
        (pod(ready=True, scheduled=True, main_exit=1), {"ready", "scheduled", "failed"}),  # Ready: not in E
        (pod(started=True), {"started_not_ready_raw", "started_not_ready"}),
        (pod(started=False), set()),  # not started yet: "starting", counts as available
        (pod(started=True, container_ready=True), set()),
        (pod(started=True, main_exit=2), {"failed", "erroneous", "started_not_ready_raw"}),  # E wins over N
    ],
)
def test_pod_categories(p: dict[str, Any], expected: set[str]) -> None:
    got = {
        name
        for name, fn in [
            ("terminating", podstate.is_terminating),
            ("ready", podstate.is_ready),
            ("scheduled", podstate.is_scheduled),
            ("gated", podstate.is_gated),
            ("failed", podstate.has_failed_container),
            ("erroneous", podstate.is_erroneous),
            ("started_not_ready_raw", podstate.started_not_ready),
            ("started_not_ready", podstate.is_started_not_ready),
        ]
        if fn(p)
    }
    assert got == set(expected)


def test_pod_activity_and_binding() -> None:
    assert podstate.is_active(pod())
    assert not podstate.is_active(pod(terminating=True))
    assert not podstate.is_active(pod(phase="Failed"))
    assert not podstate.is_active(pod(phase="Succeeded"))
    assert podstate.is_bound(running()) and not podstate.is_bound(pod())
    assert podstate.template_hash(pod(hash_="abc")) == "abc"
    assert podstate.template_hash(pod(hash_=None)) is None
    assert podstate.phase({}) == ""


# --- PodClique counts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        (
            [],
            dict(
                replicas=0, readyReplicas=0, scheduledReplicas=0, scheduleGatedReplicas=0, updatedReplicas=0
            ),
        ),
        (
            [running("a"), running("b"), pod("c", gated=True)],
            dict(
                replicas=3, readyReplicas=2, scheduledReplicas=2, scheduleGatedReplicas=1, updatedReplicas=3
            ),
        ),
        # Terminating pods: not in replicas/updated; still in ready/scheduled/gated.
        (
            [running("a"), running("b", terminating=True), pod("c", gated=True, terminating=True)],
            dict(
                replicas=1, readyReplicas=2, scheduledReplicas=2, scheduleGatedReplicas=1, updatedReplicas=1
            ),
        ),
        # Gates but no PodScheduled condition yet count as gated.
        (
            [pod("a", gates=True), pod("b", gates=True), pod("c", scheduled=False)],
            dict(
                replicas=3, readyReplicas=0, scheduledReplicas=0, scheduleGatedReplicas=2, updatedReplicas=3
            ),
        ),
        # Old-hash and unlabelled pods are not updated.
        (
            [running("a"), running("b", hash_="old"), running("c", hash_=None)],
            dict(
                replicas=3, readyReplicas=3, scheduledReplicas=3, scheduleGatedReplicas=0, updatedReplicas=1
            ),
        ),
        # Scheduled but not ready.
        (
            [pod("a", scheduled=True, started=True), pod("b", scheduled=True)],
            dict(
                replicas=2, readyReplicas=0, scheduledReplicas=2, scheduleGatedReplicas=0, updatedReplicas=2
            ),
        ),
    ],
)
def test_podclique_counts(pods: list[dict[str, Any]], expected: dict[str, int]) -> None:
    out = pclq_status(pclq(), pods)
    assert {k: out[k] for k in expected} == expected
    assert out["observedGeneration"] == 2


def test_podclique_selector_only_for_standalone() -> None:
    assert pclq_status(pclq(), [])["hpaPodSelector"] == (
        "app.kubernetes.io/managed-by=grove-operator,app.kubernetes.io/part-of=pcs,grove.io/podclique=pcs-0-worker"
    )
    out = pclq_status(pclq(), [], standalone=False)
    assert "hpaPodSelector" in out and out["hpaPodSelector"] is None  # removed if present


# --- PodClique conditions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pods", "min_available", "mab", "sched"),
    [
        # S < m
        (
            [running("a"), pod("b", gated=True), pod("c", gated=True)],
            2,
            ("True", "ScheduledReplicasBelowMinAvailable", "Scheduled replicas (1) below MinAvailable (2)"),
            (
                "False",
                "InsufficientScheduledPods",
                "Insufficient scheduled pods. expected at least: 2, found: 1",
            ),
        ),
        (
            [],
            2,
            ("True", "ScheduledReplicasBelowMinAvailable", "Scheduled replicas (0) below MinAvailable (2)"),
            (
                "False",
                "InsufficientScheduledPods",
                "Insufficient scheduled pods. expected at least: 2, found: 0",
            ),
        ),
        # S - E < m: one pod crash-looping (last exit code non-zero, not ready).
        (
            [running("a"), pod("b", scheduled=True, phase="Running", node="n", main_exit=1), running("c")],
            3,
            (
                "True",
                "InsufficientReadyPods",
                "Insufficient ready or starting pods. expected at least: 3, found: 2",
            ),
            (
                "True",
                "SufficientScheduledPods",
                "Sufficient scheduled pods found. expected at least: 3, found: 3",
            ),
        ),
        # Failing init container counts too.
        (
            [running("a"), pod("b", scheduled=True, init_exit=2)],
            2,
            (
                "True",
                "InsufficientReadyPods",
                "Insufficient ready or starting pods. expected at least: 2, found: 1",
            ),
            (
                "True",
                "SufficientScheduledPods",
                "Sufficient scheduled pods found. expected at least: 2, found: 2",
            ),
        ),
        # S - N < m: started but not ready.
        (
            [running("a"), pod("b", scheduled=True, started=True)],
            2,
            (
                "True",
                "InsufficientReadyPods",
                "Insufficient ready or starting pods. expected at least: 2, found: 1",
            ),
            (
                "True",
                "SufficientScheduledPods",
                "Sufficient scheduled pods found. expected at least: 2, found: 2",
            ),
        ),
        # Not-yet-started pods count as starting: no breach.
        (
            [running("a"), pod("b", scheduled=True, started=False)],
            2,
            (
                "False",
                "SufficientReadyPods",
                "Either sufficient ready or starting pods found. expected at least: 2, found: 2",
            ),
            (
                "True",
                "SufficientScheduledPods",
                "Sufficient scheduled pods found. expected at least: 2, found: 2",
            ),
        ),
        # A pod both erroneous and started-not-ready is counted once (E); one spare pod covers it.
        (
            [running("a"), running("b"), pod("c", scheduled=True, started=True, main_exit=1)],
            2,
            (
                "False",
                "SufficientReadyPods",
                "Either sufficient ready or starting pods found. expected at least: 2, found: 2",
            ),
            (
                "True",
                "SufficientScheduledPods",
                "Sufficient scheduled pods found. expected at least: 2, found: 3",
            ),
        ),
        # Terminating scheduled pods still count in S (Grove's rule).
        (
            [running("a"), running("b", terminating=True)],
            2,
            (
                "False",
                "SufficientReadyPods",
                "Either sufficient ready or starting pods found. expected at least: 2, found: 2",
            ),
            (
                "True",
                "SufficientScheduledPods",
                "Sufficient scheduled pods found. expected at least: 2, found: 2",
            ),
        ),
    ],
)
def test_podclique_condition_branches(
    pods: list[dict[str, Any]], min_available: int, mab: tuple[str, str, str], sched: tuple[str, str, str]
) -> None:
    out = pclq_status(pclq(min_available=min_available), pods)
    got_mab = get(out["conditions"], MAB)
    got_sched = get(out["conditions"], SCHED)
    assert (got_mab["status"], got_mab["reason"], got_mab["message"]) == mab
    assert (got_sched["status"], got_sched["reason"], got_sched["message"]) == sched
    assert got_mab["lastTransitionTime"] == T_NOW


def test_podclique_update_in_progress_is_unknown() -> None:
    progress = {"updateStartedAt": T_NOW, "podCliqueSetGenerationHash": "g2", "podTemplateHash": "h2"}
    out = pclq_status(pclq(status={"updateProgress": progress}), [])
    assert (get(out["conditions"], MAB)["status"], get(out["conditions"], MAB)["reason"]) == (
        "Unknown",
        "UpdateInProgress",
    )
    # Finished (or OnDelete, which ends at once): back to the normal computation.
    done = dict(progress, updateEndedAt=T_NOW)
    out = pclq_status(pclq(status={"updateProgress": done}), [])
    assert get(out["conditions"], MAB)["reason"] == "ScheduledReplicasBelowMinAvailable"


def test_podclique_scaled_to_zero_is_idle_not_breached() -> None:
    out = pclq_status(pclq(replicas=0), [])
    assert (get(out["conditions"], MAB)["status"], get(out["conditions"], MAB)["message"]) == (
        "False",
        st.MSG_IDLE,
    )
    assert get(out["conditions"], SCHED)["status"] == "True"


def test_min_available_defaults_to_replicas() -> None:
    out = pclq_status(pclq(replicas=2, min_available=None), [running("a")])
    assert get(out["conditions"], MAB)["message"] == "Scheduled replicas (1) below MinAvailable (2)"


def test_podclique_transition_time_kept_until_status_flips() -> None:
    first = pclq_status(pclq(min_available=2), [running("a")])
    # Message changes (1 -> 0 scheduled) but status stays True: time kept.
    obj = pclq(min_available=2, status={"conditions": first["conditions"]})
    second = pclq_status(obj, [], now=LATER)
    assert get(second["conditions"], MAB)["message"] == "Scheduled replicas (0) below MinAvailable (2)"
    assert get(second["conditions"], MAB)["lastTransitionTime"] == T_NOW
    # Recovery flips status: time moves.
    obj = pclq(min_available=2, status={"conditions": second["conditions"]})
    third = pclq_status(obj, [running("a"), running("b")], now=LATER)
    assert get(third["conditions"], MAB)["status"] == "False"
    assert get(third["conditions"], MAB)["lastTransitionTime"] == T_LATER
    assert get(third["conditions"], SCHED)["lastTransitionTime"] == T_LATER


def test_podclique_keeps_foreign_conditions() -> None:
    other = {"type": "Other", "status": "True", "lastTransitionTime": T_NOW, "reason": "R", "message": "m"}
    out = pclq_status(pclq(status={"conditions": [other]}), [])
    assert [x["type"] for x in out["conditions"]] == ["Other", SCHED, MAB]


# --- PodClique current hashes (no-update case) ------------------------------------------------------
@pytest.mark.parametrize(
    ("label_hash", "pods", "pcs_hash", "prior", "expected"),
    [
        # All pods on the expected hash and the PCLQ label too: set.
        ("h1", [running("a"), running("b")], "g1", {}, ("h1", "g1")),
        # No pods at all (0 == 0): set.
        ("h1", [], "g1", {}, ("h1", "g1")),
        # A terminating old pod does not block.
        ("h1", [running("a"), running("b", hash_="old", terminating=True)], "g1", {}, ("h1", "g1")),
        # An old pod remains: unchanged.
        ("h1", [running("a"), running("b", hash_="old")], "g1", {}, (None, None)),
        (
            "h1",
            [running("a"), running("b", hash_="old")],
            "g1",
            {"currentPodTemplateHash": "h0", "currentPodCliqueSetGenerationHash": "g0"},
            ("h0", "g0"),
        ),
        # The PCLQ's label is not the expected hash yet: unchanged.
        ("h0", [running("a")], "g1", {}, (None, None)),
        # The PodCliqueSet has no generation hash yet: unchanged.
        ("h1", [running("a")], None, {}, (None, None)),
        # Moves forward from an older current hash.
        (
            "h1",
            [running("a")],
            "g1",
            {"currentPodTemplateHash": "h0", "currentPodCliqueSetGenerationHash": "g0"},
            ("h1", "g1"),
        ),
    ],
)
def test_podclique_current_hashes(
    label_hash: str,
    pods: list[dict[str, Any]],
    pcs_hash: str | None,
    prior: dict[str, Any],
    expected: tuple[str | None, str | None],
) -> None:
    out = pclq_status(pclq(label_hash=label_hash, status=prior), pods, pcs_generation_hash=pcs_hash)
    assert (out.get("currentPodTemplateHash"), out.get("currentPodCliqueSetGenerationHash")) == expected


def test_podclique_current_hashes_with_update_progress_seam() -> None:
    prior = {"currentPodTemplateHash": "h0", "currentPodCliqueSetGenerationHash": "g0"}
    running_update = {"updateStartedAt": T_NOW, "podCliqueSetGenerationHash": "g2", "podTemplateHash": "h2"}
    # In progress: frozen, and updatedReplicas counts against the progress's target hash.
    out = pclq_status(pclq(status={**prior, "updateProgress": running_update}), [running("a", hash_="h2")])
    assert (out["currentPodTemplateHash"], out["currentPodCliqueSetGenerationHash"]) == ("h0", "g0")
    assert out["updatedReplicas"] == 1
    # Completed: copied from the progress.
    done = dict(running_update, updateEndedAt=T_NOW)
    out = pclq_status(pclq(status={**prior, "updateProgress": done}), [running("a", hash_="h2")])
    assert (out["currentPodTemplateHash"], out["currentPodCliqueSetGenerationHash"]) == ("h2", "g2")


# --- scaling group ----------------------------------------------------------------------------------
PCSG = "pcs-0-sg"


def member(
    j: int,
    clique: str,
    *,
    scheduled: bool = True,
    ready: int = 1,
    min_available: int = 1,
    breached: bool = False,
    gen: str | None = "g1",
    label_hash: str = "h1",
    tpl_hash: str | None = "h1",
    updated: int = 1,
    terminating: bool = False,
    pcsg: str = PCSG,
) -> dict[str, Any]:
    conds = cond.set_condition(None, SCHED, "True" if scheduled else "False", "R", "m", NOW)
    conds = cond.set_condition(conds, MAB, "True" if breached else "False", "R", "m", NOW)
    status: dict[str, Any] = {"readyReplicas": ready, "updatedReplicas": updated, "conditions": conds}
    if gen is not None:
        status["currentPodCliqueSetGenerationHash"] = gen
    if tpl_hash is not None:
        status["currentPodTemplateHash"] = tpl_hash
    meta: dict[str, Any] = {"name": f"{pcsg}-{j}-{clique}", "labels": {c.LABEL_POD_TEMPLATE_HASH: label_hash}}
    if terminating:
        meta["deletionTimestamp"] = T_NOW
    return {"metadata": meta, "spec": {"replicas": 1, "minAvailable": min_available}, "status": status}


def group(
    *, replicas: int = 2, min_available: int | None = 1, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": replicas, "cliqueNames": ["leader", "worker"]}
    if min_available is not None:
        spec["minAvailable"] = min_available
    return {"metadata": {"name": PCSG, "generation": 4}, "spec": spec, "status": status or {}}


def full(replicas: int = 2, **kw: Any) -> list[dict[str, Any]]:
    return [member(j, q, **kw) for j in range(replicas) for q in ("leader", "worker")]


def sg_status(obj: dict[str, Any], members: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"pcs_generation_hash": "g1", "pcs_name": "pcs", "now": NOW}
    args.update(kw)
    return st.scaling_group_status(obj, members, **args)


def test_scaling_group_all_good() -> None:
    out = sg_status(group(), full())
    assert {k: out[k] for k in ("replicas", "scheduledReplicas", "availableReplicas", "updatedReplicas")} == {
        "replicas": 2,
        "scheduledReplicas": 2,
        "availableReplicas": 2,
        "updatedReplicas": 2,
    }
    assert out["observedGeneration"] == 4
    assert out["selector"] == (
        "app.kubernetes.io/managed-by=grove-operator,app.kubernetes.io/part-of=pcs,"
        "grove.io/podcliquescalinggroup=pcs-0-sg"
    )
    assert out["currentPodCliqueSetGenerationHash"] == "g1"
    mab = get(out["conditions"], MAB)
    assert (mab["status"], mab["reason"], mab["message"]) == (
        "False",
        "SufficientAvailablePodCliqueScalingGroupReplicas",
        "Sufficient PodCliqueScalingGroup ready replicas, expected at least: 1, found: 2",
    )


@pytest.mark.parametrize(
    ("members", "counts"),
    [
        # Replica 1 misses a member: neither scheduled nor available.
        (full()[:3], (1, 1, 1)),
        # A terminating member makes its replica incomplete.
        ([*full()[:3], member(1, "worker", terminating=True)], (1, 1, 1)),
        # A member not PodCliqueScheduled: replica not scheduled.
        ([*full()[:3], member(1, "worker", scheduled=False)], (1, 1, 1)),
        # Ready below the member's minAvailable: scheduled but not available.
        ([*full()[:3], member(1, "worker", ready=1, min_available=2)], (2, 1, 1)),
        # Available but on an old generation: not updated.
        ([*full()[:3], member(1, "worker", gen="g0")], (2, 2, 1)),
        # Available but updatedReplicas below min: not updated.
        ([*full()[:3], member(1, "worker", updated=0)], (2, 2, 1)),
        # Strays (index >= replicas, unknown clique) are ignored.
        ([*full(), member(2, "leader", scheduled=False), member(0, "other")], (2, 2, 2)),
    ],
)
def test_scaling_group_counts(members: list[dict[str, Any]], counts: tuple[int, int, int]) -> None:
    out = sg_status(group(), members)
    assert (out["scheduledReplicas"], out["availableReplicas"], out["updatedReplicas"]) == counts


def test_scaling_group_updated_checks_template_hashes_when_given() -> None:
    members = [*full()[:3], member(1, "worker", label_hash="h0", tpl_hash="h0")]
    assert sg_status(group(), members)["updatedReplicas"] == 2
    out = sg_status(group(), members, expected_hashes={"leader": "h1", "worker": "h1"})
    assert out["updatedReplicas"] == 1
    assert "currentPodCliqueSetGenerationHash" not in out


@pytest.mark.parametrize(
    ("replicas", "min_available", "members", "expected"),
    [
        # One replica breached, one healthy, min 1: fine.
        (2, 1, [*full()[:2], member(1, "leader", breached=True), member(1, "worker")], ("False", 1)),
        # Both breached: True.
        (2, 1, [member(j, q, breached=True) for j in range(2) for q in ("leader", "worker")], ("True", 0)),
        # Min 2, one replica incomplete: True.
        (2, 2, full()[:3], ("True", 1)),
        # Not scheduled members but no breach flag and complete: healthy (only breach flags count).
        (2, 2, full(scheduled=False), ("False", 2)),
        # minAvailable nil -> 1.
        (1, None, [member(0, "leader", breached=True), member(0, "worker")], ("True", 0)),
        # Zero replicas, min 1: True.
        (0, 1, [], ("True", 0)),
    ],
)
def test_scaling_group_min_available_breached(
    replicas: int, min_available: int | None, members: list[dict[str, Any]], expected: tuple[str, int]
) -> None:
    out = sg_status(group(replicas=replicas, min_available=min_available), members)
    mab = get(out["conditions"], MAB)
    status, found = expected
    m = 1 if min_available is None else min_available
    assert mab["status"] == status
    if status == "True":
        assert mab["reason"] == "InsufficientAvailablePodCliqueScalingGroupReplicas"
        assert mab["message"] == (
            f"Insufficient PodCliqueScalingGroup ready replicas, expected at least: {m}, found: {found}"
        )
    else:
        assert mab["reason"] == "SufficientAvailablePodCliqueScalingGroupReplicas"


def test_scaling_group_gang_termination_flag_cleared_only_on_recovery() -> None:
    flag = cond.set_condition(None, GTIP, "True", "GangTerminationActive", "terminating", NOW)
    breached = [member(j, q, breached=True) for j in range(2) for q in ("leader", "worker")]
    still = sg_status(group(status={"conditions": flag}), breached)
    assert cond.is_true(still["conditions"], GTIP)
    recovered = sg_status(group(status={"conditions": still["conditions"]}), full(), now=LATER)
    assert cond.get_condition(recovered["conditions"], GTIP) is None
    assert get(recovered["conditions"], MAB)["lastTransitionTime"] == T_LATER


def test_scaling_group_update_in_progress() -> None:
    progress = {"updateStartedAt": T_NOW, "podCliqueSetGenerationHash": "g2"}
    out = sg_status(
        group(status={"updateProgress": progress, "currentPodCliqueSetGenerationHash": "g0"}), full()
    )
    assert (get(out["conditions"], MAB)["status"], get(out["conditions"], MAB)["reason"]) == (
        "Unknown",
        "UpdateInProgress",
    )
    assert out["currentPodCliqueSetGenerationHash"] == "g0"


@pytest.mark.parametrize(
    ("members", "pcs_hash", "prior", "expected"),
    [
        (full(), "g1", None, "g1"),
        (full()[:3], "g1", "g0", "g0"),  # a member missing
        ([*full()[:3], member(1, "worker", gen="g0")], "g1", "g0", "g0"),  # a member on an old generation
        ([*full()[:3], member(1, "worker", terminating=True)], "g1", None, None),
        (full(), None, "g0", "g0"),  # the PodCliqueSet has no hash yet
    ],
)
def test_scaling_group_current_generation_hash(
    members: list[dict[str, Any]], pcs_hash: str | None, prior: str | None, expected: str | None
) -> None:
    status = {} if prior is None else {"currentPodCliqueSetGenerationHash": prior}
    out = sg_status(group(status=status), members, pcs_generation_hash=pcs_hash)
    assert out.get("currentPodCliqueSetGenerationHash") == expected


def test_group_members_prefers_the_live_object() -> None:
    dying = member(0, "leader", terminating=True)
    live = member(0, "leader", ready=5)
    assert st.group_members(group(), [dying, live])[0]["leader"] is live
    assert st.group_members(group(), [live, dying])[0]["leader"] is live


# --- PodCliqueSet -----------------------------------------------------------------------------------
def the_pcs(*, replicas: int = 2, status: dict[str, Any] | None = None) -> dict[str, Any]:
    def clique(name: str, image: str) -> dict[str, Any]:
        return {
            "name": name,
            "spec": {
                "replicas": 2,
                "minAvailable": 1,
                "podSpec": {"containers": [{"name": "c", "image": image}]},
            },
        }

    return {
        "metadata": {"name": "pcs", "generation": 7, "creationTimestamp": "2026-03-01T11:00:00Z"},
        "spec": {
            "replicas": replicas,
            "template": {
                "cliques": [clique("front", "f"), clique("leader", "l"), clique("worker", "w")],
                "podCliqueScalingGroups": [
                    {"name": "sg", "cliqueNames": ["leader", "worker"], "minAvailable": 1}
                ],
            },
        },
        "status": status or {},
    }


PCS_HASH = hashing.generation_hash(the_pcs())
FRONT_HASH = hashing.clique_template_hashes(the_pcs())["front"]


def standalone(
    i: int, *, ready: int = 2, updated: int = 2, current: bool = True, terminating: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"pcs-{i}-front", "labels": {c.LABEL_POD_TEMPLATE_HASH: FRONT_HASH}}
    if terminating:
        meta["deletionTimestamp"] = T_NOW
    status: dict[str, Any] = {"readyReplicas": ready, "updatedReplicas": updated}
    if current:
        status["currentPodTemplateHash"] = FRONT_HASH
        status["currentPodCliqueSetGenerationHash"] = PCS_HASH
    return {"metadata": meta, "spec": {"replicas": 2, "minAvailable": 1}, "status": status}


def sg(i: int, *, available: int = 1, current: bool = True, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"pcs-{i}-sg"}
    if terminating:
        meta["deletionTimestamp"] = T_NOW
    status: dict[str, Any] = {"availableReplicas": available}
    if current:
        status["currentPodCliqueSetGenerationHash"] = PCS_HASH
    return {"metadata": meta, "spec": {"replicas": 1, "minAvailable": 1}, "status": status}


def pcs_status(
    pcs: dict[str, Any], pclqs: list[dict[str, Any]], groups: list[dict[str, Any]], now: datetime = NOW
) -> dict[str, Any]:
    return st.podcliqueset_status(pcs, pclqs, groups, generation_hash=PCS_HASH, now=now)


def test_podcliqueset_all_good() -> None:
    out = pcs_status(the_pcs(), [standalone(0), standalone(1)], [sg(0), sg(1)])
    assert out == {
        "observedGeneration": 7,
        "replicas": 2,
        "availableReplicas": 2,
        "updatedReplicas": 2,
        "hpaPodSelector": "app.kubernetes.io/managed-by=grove-operator,app.kubernetes.io/part-of=pcs",
        "currentGenerationHash": PCS_HASH,
        "updateProgress": {
            "updateStartedAt": "2026-03-01T11:00:00Z",
            "updateEndedAt": "2026-03-01T11:00:00Z",
            "updatedPodCliquesCount": 2,
            "totalPodCliquesCount": 2,
            "updatedPodCliqueScalingGroupsCount": 2,
            "totalPodCliqueScalingGroupsCount": 2,
        },
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastTransitionTime": T_NOW,
                "reason": "AllReplicasAvailable",
                "message": "2 of 2 replicas available",
            }
        ],
    }


@pytest.mark.parametrize(
    ("pclqs", "groups", "available", "updated", "pclqs_updated", "groups_updated"),
    [
        ([standalone(0)], [sg(0), sg(1)], 1, 1, 1, 2),  # replica 1 misses its standalone clique
        ([standalone(0), standalone(1, terminating=True)], [sg(0), sg(1)], 1, 1, 1, 2),
        ([standalone(0), standalone(1, ready=0)], [sg(0), sg(1)], 1, 1, 1, 2),  # ready < min
        ([standalone(0), standalone(1)], [sg(0)], 1, 1, 2, 1),  # replica 1 misses its group
        ([standalone(0), standalone(1)], [sg(0), sg(1, available=0)], 1, 1, 2, 2),
        ([standalone(0), standalone(1)], [sg(0), sg(1, terminating=True)], 1, 1, 2, 1),
        ([standalone(0), standalone(1, current=False)], [sg(0), sg(1)], 2, 1, 1, 2),  # available, not updated
        ([standalone(0), standalone(1, updated=0)], [sg(0), sg(1)], 2, 1, 1, 2),
        ([standalone(0), standalone(1)], [sg(0), sg(1, current=False)], 2, 1, 2, 1),
        # Strays (index >= replicas) are ignored.
        ([standalone(0), standalone(1), standalone(2)], [sg(0), sg(1), sg(2)], 2, 2, 2, 2),
    ],
)
def test_podcliqueset_counts(
    pclqs: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    available: int,
    updated: int,
    pclqs_updated: int,
    groups_updated: int,
) -> None:
    out = pcs_status(the_pcs(), pclqs, groups)
    assert (out["availableReplicas"], out["updatedReplicas"]) == (available, updated)
    progress = out["updateProgress"]
    assert (progress["updatedPodCliquesCount"], progress["updatedPodCliqueScalingGroupsCount"]) == (
        pclqs_updated,
        groups_updated,
    )
    assert (progress["totalPodCliquesCount"], progress["totalPodCliqueScalingGroupsCount"]) == (2, 2)


@pytest.mark.parametrize(
    ("replicas", "pclqs", "groups", "expected"),
    [
        (2, [standalone(0), standalone(1)], [sg(0), sg(1)], ("True", "AllReplicasAvailable", "2 of 2")),
        # A replica on the old template (an update not there yet) still serves: available, like a Deployment.
        (
            2,
            [standalone(0), standalone(1, current=False)],
            [sg(0), sg(1)],
            ("True", "AllReplicasAvailable", "2 of 2"),
        ),
        # A replica below a minimum (breached, or its pod being replaced by an update) is not available.
        (
            2,
            [standalone(0), standalone(1, ready=0)],
            [sg(0), sg(1)],
            ("False", "ReplicasUnavailable", "1 of 2"),
        ),
        (
            2,
            [standalone(0), standalone(1)],
            [sg(0), sg(1, available=0)],
            ("False", "ReplicasUnavailable", "1 of 2"),
        ),
        # Gang termination deletes a replica's PodCliques: unavailable until they are back.
        (
            2,
            [standalone(0), standalone(1, terminating=True)],
            [sg(0), sg(1)],
            ("False", "ReplicasUnavailable", "1 of 2"),
        ),
        # Scaled out: the new replica's children do not exist yet.
        (3, [standalone(0), standalone(1)], [sg(0), sg(1)], ("False", "ReplicasUnavailable", "2 of 3")),
        (2, [], [], ("False", "ReplicasUnavailable", "0 of 2")),
        # Scaled to zero: nothing is wanted, so nothing is missing (kubectl wait returns at once).
        (0, [standalone(0)], [sg(0)], ("True", "AllReplicasAvailable", "0 of 0")),
    ],
)
def test_podcliqueset_available_condition(
    replicas: int, pclqs: list[dict[str, Any]], groups: list[dict[str, Any]], expected: tuple[str, str, str]
) -> None:
    out = pcs_status(the_pcs(replicas=replicas), pclqs, groups)
    available = get(out["conditions"], c.CONDITION_AVAILABLE)
    status, reason, counts = expected
    assert (available["status"], available["reason"], available["message"]) == (
        status,
        reason,
        f"{counts} replicas available",
    )
    assert available["message"].startswith(f"{out['availableReplicas']} of {out['replicas']} ")
    # kubectl wait compares status.observedGeneration with the generation when the condition has none.
    assert "observedGeneration" not in available and out["observedGeneration"] == 7


def test_podcliqueset_available_moves_only_with_the_counts() -> None:
    """A start, a breach and a scale-out, written as the planner writes them: the condition's time moves
    only when its status flips, and it never changes in a write the counts would not make anyway."""
    pcs = the_pcs()
    steps: list[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]] = [
        (2, [], []),
        (2, [standalone(0, ready=0)], [sg(0, available=0)]),
        (2, [standalone(0)], [sg(0)]),
        (2, [standalone(0), standalone(1)], [sg(0), sg(1)]),
        (2, [standalone(0), standalone(1, ready=0)], [sg(0), sg(1)]),
        (2, [standalone(0), standalone(1)], [sg(0), sg(1)]),
        (3, [standalone(0), standalone(1)], [sg(0), sg(1)]),
    ]
    seen = []
    for minute, (replicas, pclqs, groups) in enumerate(steps):
        pcs["spec"]["replicas"] = replicas
        patch = st.status_patch(
            pcs["status"], pcs_status(pcs, pclqs, groups, now=NOW + timedelta(minutes=minute))
        )
        if pcs["status"] and patch and "conditions" in patch:
            assert patch.keys() & {"availableReplicas", "replicas"}, (
                f"a write for the condition alone: {patch}"
            )
        pcs["status"] = apply_merge_patch(pcs["status"], patch or {})
        available = get(pcs["status"]["conditions"], c.CONDITION_AVAILABLE)
        seen.append((available["status"], available["message"], available["lastTransitionTime"]))
    assert seen == [
        ("False", "0 of 2 replicas available", "2026-03-01T12:00:00Z"),
        ("False", "0 of 2 replicas available", "2026-03-01T12:00:00Z"),
        ("False", "1 of 2 replicas available", "2026-03-01T12:00:00Z"),
        ("True", "2 of 2 replicas available", "2026-03-01T12:03:00Z"),
        ("False", "1 of 2 replicas available", "2026-03-01T12:04:00Z"),
        ("True", "2 of 2 replicas available", "2026-03-01T12:05:00Z"),
        ("False", "2 of 3 replicas available", "2026-03-01T12:06:00Z"),
    ]


def test_podcliqueset_label_hash_must_match_template() -> None:
    stale = standalone(1)
    stale["metadata"]["labels"][c.LABEL_POD_TEMPLATE_HASH] = "old"
    out = pcs_status(the_pcs(), [standalone(0), stale], [sg(0), sg(1)])
    assert (out["availableReplicas"], out["updatedReplicas"]) == (2, 1)


def test_podcliqueset_keeps_existing_update_progress_times() -> None:
    progress = {
        "updateStartedAt": "2026-03-01T11:30:00Z",
        "currentlyUpdating": [{"replicaIndex": 1, "updateStartedAt": "2026-03-01T11:31:00Z"}],
        "updatedPodCliquesCount": 0,
    }
    out = pcs_status(the_pcs(status={"updateProgress": progress}), [standalone(0)], [])
    assert out["updateProgress"]["updateStartedAt"] == "2026-03-01T11:30:00Z"
    assert "updateEndedAt" not in out["updateProgress"]
    assert out["updateProgress"]["currentlyUpdating"] == progress["currentlyUpdating"]
    assert out["updateProgress"]["updatedPodCliquesCount"] == 1


def test_podcliqueset_zero_replicas_and_no_creation_time() -> None:
    pcs = the_pcs(replicas=0)
    del pcs["metadata"]["creationTimestamp"]
    out = pcs_status(pcs, [], [])
    assert (out["replicas"], out["availableReplicas"], out["updatedReplicas"]) == (0, 0, 0)
    assert out["updateProgress"]["updateStartedAt"] == T_NOW
    assert out["updateProgress"]["totalPodCliquesCount"] == 0


# --- PodGang ----------------------------------------------------------------------------------------
def gang(*refs: str, min_replicas: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "pcs-0", "namespace": "ns"},
        "spec": {
            "podgroups": [
                {
                    "name": "pcs-0-worker",
                    "podReferences": [{"namespace": "ns", "name": r} for r in refs],
                    "minReplicas": min_replicas,
                }
            ]
        },
        "status": status or {},
    }


def test_podgang_initialized_lifecycle() -> None:
    pending = st.podgang_status(gang(), False, NOW)
    assert list(pending) == ["conditions"]  # the admitter owns phase and its own conditions
    init = get(pending["conditions"], INIT)
    assert (init["status"], init["reason"], init["message"]) == (
        "False",
        "PodGangPodsCreationPending",
        "Not all constituent pods have been created yet",
    )
    created = st.podgang_status(gang(status=pending), True, LATER)
    init = get(created["conditions"], INIT)
    assert (init["status"], init["reason"], init["message"]) == (
        "True",
        "PodGangPodsCreated",
        "PodGang is fully initialized",
    )
    assert init["lastTransitionTime"] == T_LATER
    # Never back to False, even when pods are missing again (gang termination, scale-out).
    again = st.podgang_status(gang(status=created), False, LATER + timedelta(hours=1))
    assert get(again["conditions"], INIT)["status"] == "True"
    assert get(again["conditions"], INIT)["lastTransitionTime"] == T_LATER
    assert st.status_patch(created, again) is None


def test_podgang_status_carries_only_the_initialized_condition() -> None:
    other = cond.set_condition(None, "Admitted", "True", "R", "m", NOW)
    out = st.podgang_status(gang(status={"conditions": other, "phase": "Admitted"}), True, NOW)
    assert [x["type"] for x in out["conditions"]] == [INIT]


@pytest.mark.parametrize(
    ("refs", "pods", "min_replicas", "running"),
    [
        (["a", "b"], [running("a"), running("b")], 2, True),
        (["a", "b"], [running("a"), running("b"), running("other")], 1, True),
        (["a", "b"], [running("a")], 2, False),  # a referenced pod is missing
        (["a", "b"], [running("a"), pod("b", scheduled=True, node="n1")], 2, False),  # not Running
        (["a", "b"], [running("a"), pod("b", phase="Running")], 2, False),  # not bound
        (["a", "b"], [running("a"), running("b", terminating=True)], 2, False),
        (["a"], [running("a")], 2, False),  # fewer references than minReplicas
        ([], [], 0, False),  # nothing to run
    ],
)
def test_podgang_running(
    refs: list[str], pods: list[dict[str, Any]], min_replicas: int, running: bool
) -> None:
    assert podgang.podgang_running(gang(*refs, min_replicas=min_replicas), pods) is running


# --- status_patch -----------------------------------------------------------------------------------
def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


def test_status_patch_equal_is_none() -> None:
    desired = {"replicas": 2, "conditions": cond.set_condition(None, MAB, "False", "R", "m", NOW)}
    assert st.status_patch(copy.deepcopy(desired), desired) is None
    assert st.status_patch({"replicas": 2, "other": "kept"}, {"replicas": 2}) is None
    assert st.status_patch({}, {"hpaPodSelector": None}) is None
    assert st.status_patch(None, {}) is None


def test_status_patch_ignores_transition_time_only_churn() -> None:
    current = {"conditions": cond.set_condition(None, MAB, "False", "R", "m", NOW)}
    desired = {"conditions": cond.set_condition(None, MAB, "False", "R", "m", LATER, observed_generation=3)}
    assert st.status_patch(current, desired) is None


def test_status_patch_sends_changes() -> None:
    conds = cond.set_condition(None, MAB, "False", "R", "m", NOW)
    current = {
        "replicas": 2,
        "hpaPodSelector": "x",
        "conditions": conds,
        "updateProgress": {"updateStartedAt": T_NOW, "updatedPodCliquesCount": 1, "totalPodCliquesCount": 2},
    }
    new_conds = cond.set_condition(conds, MAB, "True", "R", "m", LATER)
    desired = {
        "replicas": 3,
        "hpaPodSelector": None,
        "conditions": new_conds,
        "updateProgress": {"updateStartedAt": T_NOW, "updatedPodCliquesCount": 2, "totalPodCliquesCount": 2},
    }
    assert st.status_patch(current, desired) == {
        "replicas": 3,
        "hpaPodSelector": None,
        "conditions": new_conds,
        "updateProgress": {"updatedPodCliquesCount": 2},
    }
    assert st.status_patch(None, {"a": {"b": 1, "c": None}}) == {"a": {"b": 1}}


def test_status_round_trip_is_quiet() -> None:
    """Apply the patch, recompute later with nothing changed: no second write (no watch storm)."""
    obj = pclq(min_available=2)
    pods = [running("a"), running("b"), pod("c", gated=True)]
    desired = pclq_status(obj, pods)
    patch = st.status_patch(obj["status"], desired)
    assert patch is not None
    obj["status"] = apply_merge_patch(obj["status"], patch)
    assert st.status_patch(obj["status"], pclq_status(obj, pods, now=LATER)) is None

    grp = group()
    patch = st.status_patch(grp["status"], sg_status(grp, full()))
    grp["status"] = apply_merge_patch(grp["status"], patch)
    assert st.status_patch(grp["status"], sg_status(grp, full(), now=LATER)) is None

    pcs = the_pcs()
    patch = st.status_patch(pcs["status"], pcs_status(pcs, [standalone(0)], []))
    pcs["status"] = apply_merge_patch(pcs["status"], patch)
    assert st.status_patch(pcs["status"], pcs_status(pcs, [standalone(0)], [], now=LATER)) is None


# --- PodGangsAdmitted on the PodCliqueSet ------------------------------------------------------------
def admitted_gang(name: str, status: str | None, reason: str = "", message: str = "") -> dict[str, Any]:
    conds = cond.set_condition(None, "Admitted", status, reason, message, NOW) if status else []
    return {"metadata": {"name": name, "namespace": "ns"}, "status": {"conditions": conds}}


def test_gang_admission_condition_summarises_the_admitter() -> None:
    assert st.gang_admission_condition([admitted_gang("pcs-0", None)]) is None  # admitter not there
    assert st.gang_admission_condition(
        [admitted_gang("pcs-0", "True", "GangAdmitted"), admitted_gang("pcs-1", "True", "GangAdmitted")]
    ) == ("PodGangsAdmitted", "True", "AllPodGangsAdmitted", "2 of 2 PodGangs admitted")
    blocked = admitted_gang("pcs-1", "False", "Unschedulable", "needs 10 pods, 7 fit")
    assert st.gang_admission_condition(
        [blocked, admitted_gang("pcs-0", "True", "GangAdmitted"), admitted_gang("pcs-2", None)]
    ) == (
        "PodGangsAdmitted",
        "False",
        "Unschedulable",
        "1 of 3 PodGangs admitted; pcs-1: needs 10 pods, 7 fit",
    )


def test_a_running_gang_short_of_room_for_its_replacements_is_reported_waiting() -> None:
    short = admitted_gang("pcs-0", "True", "ReplacementsBlocked", "needs 2 replacement pods; only 1 fit")
    assert st.gang_admission_condition([short]) == (
        "PodGangsAdmitted",
        "False",
        "ReplacementsBlocked",
        "1 of 1 PodGangs admitted; pcs-0: needs 2 replacement pods; only 1 fit",
    )


def test_progress_may_wait_trouble_may_not() -> None:
    def conditions(breached: str, scheduled: str) -> list[dict[str, str]]:
        return [
            {"type": "MinAvailableBreached", "status": breached, "reason": f"r{breached}"},
            {"type": "PodCliqueScheduled", "status": scheduled, "reason": f"s{scheduled}"},
        ]

    starting = {"replicas": 2, "readyReplicas": 0, "conditions": conditions("True", "False")}
    good = {"readyReplicas": 2, "firstScheduledAt": "t", "conditions": conditions("False", "True")}
    assert st.may_wait(starting, good)  # scheduled, then Ready: progress
    running = {"replicas": 2, "readyReplicas": 2, "conditions": conditions("False", "True")}
    assert not st.may_wait(running, {"readyReplicas": 1, "conditions": conditions("True", "True")})
    assert not st.may_wait(running, {"conditions": conditions("False", "False")})
    assert st.may_wait(running, {"readyReplicas": 1})  # a count alone
    assert not st.may_wait(running, {"observedGeneration": 3})  # not progress
    # A new PodClique's first status, trouble and all: none of its pods was ever scheduled.
    assert st.may_wait(None, {"observedGeneration": 1, "conditions": conditions("True", "False")})
    assert not st.may_wait({}, {})


def test_at_rest_when_every_wanted_pod_is_ready_updated_and_ungated() -> None:
    pclq = {"spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 1, "updatedReplicas": 2}}
    assert not st.at_rest(pclq, {})
    assert st.at_rest(pclq, {"readyReplicas": 2})
    assert not st.at_rest(pclq, {"readyReplicas": 2, "scheduleGatedReplicas": 1})
    assert not st.at_rest(pclq, {"readyReplicas": 2, "updatedReplicas": 1})  # an update goes on
    # All its pods Ready, but only one of the two it wants exists yet: not there.
    assert not st.at_rest(
        {"spec": {"replicas": 2}}, {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}
    )


def test_with_status_is_the_object_once_the_status_is_written() -> None:
    obj = {"metadata": {"name": "a"}, "status": {"replicas": 2, "updateProgress": {"x": 1}}}
    assert st.with_status(obj, {"readyReplicas": 1, "updateProgress": None}) == {
        "metadata": {"name": "a"},
        "status": {"replicas": 2, "readyReplicas": 1},
    }
    assert obj["status"] == {"replicas": 2, "updateProgress": {"x": 1}}  # not changed in place

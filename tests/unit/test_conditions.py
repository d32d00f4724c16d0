"""metav1.Condition helpers: SetStatusCondition semantics on raw dicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from grove_api import conditions as cond

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_format_time_is_rfc3339_z_seconds() -> None:
    assert cond.format_time(T0) == "2026-01-02T03:04:05Z"
    assert cond.format_time(datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-01-02T03:04:05Z"
    )
    assert cond.format_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"  # naive = UTC


def test_parse_time() -> None:
    assert cond.parse_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert cond.parse_time("2026-01-02T05:04:05+02:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert cond.parse_time(None) is None
    assert cond.parse_time("") is None
    assert cond.parse_time("yesterday") is None


def test_set_adds_a_new_condition() -> None:
    out = cond.set_condition(None, "Ready", "True", "AllGood", "fine", T0)
    assert out == [
        {
            "type": "Ready",
            "status": "True",
            "lastTransitionTime": "2026-01-02T03:04:05Z",
            "reason": "AllGood",
            "message": "fine",
        }
    ]
    with_gen = cond.set_condition([], "Ready", "True", "AllGood", "fine", T0, observed_generation=3)
    assert with_gen[0]["observedGeneration"] == 3


def test_set_appends_and_keeps_others_in_place() -> None:
    first = cond.set_condition(None, "A", "True", "R", "m", T0)
    both = cond.set_condition(first, "B", "False", "R", "m", T0)
    assert [c["type"] for c in both] == ["A", "B"]
    again = cond.set_condition(both, "A", "False", "R2", "m2", T1)
    assert [c["type"] for c in again] == ["A", "B"]


@pytest.mark.parametrize(
    ("status", "reason", "message", "moves"),
    [
        ("True", "AllGood", "fine", False),  # nothing changed
        ("True", "OtherReason", "fine", False),  # reason only
        ("True", "AllGood", "other message", False),  # message only
        ("False", "AllGood", "fine", True),  # status flip
        ("Unknown", "AllGood", "fine", True),
    ],
)
def test_last_transition_time_moves_only_on_status_flip(
    status: str, reason: str, message: str, moves: bool
) -> None:
    before = cond.set_condition(None, "Ready", "True", "AllGood", "fine", T0)
    after = cond.set_condition(before, "Ready", status, reason, message, T1)
    assert after[0]["status"] == status
    assert after[0]["reason"] == reason
    assert after[0]["message"] == message
    assert after[0]["lastTransitionTime"] == cond.format_time(T1 if moves else T0)


def test_set_updates_and_drops_observed_generation() -> None:
    before = cond.set_condition(None, "Ready", "True", "R", "m", T0, observed_generation=1)
    assert (
        cond.set_condition(before, "Ready", "True", "R", "m", T1, observed_generation=2)[0][
            "observedGeneration"
        ]
        == 2
    )
    assert "observedGeneration" not in cond.set_condition(before, "Ready", "True", "R", "m", T1)[0]


def test_set_fills_a_missing_transition_time() -> None:
    broken: list[dict[str, Any]] = [{"type": "Ready", "status": "True", "reason": "R", "message": "m"}]
    assert cond.set_condition(broken, "Ready", "True", "R", "m", T1)[0]["lastTransitionTime"] == (
        cond.format_time(T1)
    )


def test_set_does_not_mutate_its_input() -> None:
    before = cond.set_condition(None, "Ready", "True", "R", "m", T0)
    snapshot = [dict(c) for c in before]
    cond.set_condition(before, "Ready", "False", "R2", "m2", T1)
    cond.remove_condition(before, "Ready")
    assert before == snapshot


def test_set_rejects_bad_status() -> None:
    with pytest.raises(ValueError, match="True, False or Unknown"):
        cond.set_condition(None, "Ready", "true", "R", "m", T0)


def test_get_remove_and_status() -> None:
    conds = cond.set_condition(
        cond.set_condition(None, "A", "True", "R", "m", T0), "B", "False", "R", "m", T0
    )
    got = cond.get_condition(conds, "A")
    assert got is not None and got["status"] == "True"
    assert cond.get_condition(conds, "C") is None
    assert cond.get_condition(None, "A") is None
    assert cond.condition_status(conds, "B") == "False"
    assert cond.condition_status(conds, "C") is None
    assert cond.is_true(conds, "A") and not cond.is_true(conds, "B") and not cond.is_true(None, "A")
    assert [c["type"] for c in cond.remove_condition(conds, "A")] == ["B"]
    assert cond.remove_condition(conds, "C") == conds
    assert cond.remove_condition(None, "A") == []


def test_conditions_equal_ignores_times_generation_and_order() -> None:
    a = cond.set_condition(cond.set_condition(None, "A", "True", "R", "m", T0), "B", "False", "R", "m", T0)
    b = cond.set_condition(
        cond.set_condition(None, "B", "False", "R", "m", T1, observed_generation=4), "A", "True", "R", "m", T1
    )
    assert cond.conditions_equal(a, b)
    assert not cond.conditions_equal(a, cond.set_condition(b, "A", "True", "R", "other", T1))
    assert not cond.conditions_equal(a, cond.remove_condition(b, "B"))
    assert cond.conditions_equal(None, [])

"""Resource quantities are parsed exactly and rounded up like the apiserver's MilliValue()/Value()."""

from __future__ import annotations

import pytest

from admitter.core.quantity import milli_value, parse_quantity, value

GI = 1 << 30
MI = 1 << 20


@pytest.mark.parametrize(
    ("text", "millis", "units"),
    [
        ("100m", 100, 1),
        ("1", 1000, 1),
        ("1.5", 1500, 2),
        ("0.1", 100, 1),
        (".5", 500, 1),
        ("+2", 2000, 2),
        ("-1", -1000, -1),
        ("2Gi", 2 * GI * 1000, 2 * GI),
        ("123Mi", 123 * MI * 1000, 128974848),
        ("1Ki", 1024_000, 1024),
        ("500M", 500 * 10**9, 500_000_000),
        ("1k", 1_000_000, 1000),
        ("1E", 10**21, 10**18),
        ("1e3", 1_000_000, 1000),
        ("1E3", 1_000_000, 1000),
        ("1e-3", 1, 1),
        ("128974848", 128974848000, 128974848),
        ("129e6", 129 * 10**9, 129_000_000),
        ("0.0001", 1, 1),  # rounds up to one millicore
        ("1n", 1, 1),
        ("1500u", 2, 1),
        (2, 2000, 2),
        (0.5, 500, 1),
    ],
)
def test_quantities(text: str | int | float, millis: int, units: int) -> None:
    assert milli_value(text) == millis
    assert value(text) == units


def test_parse_is_exact() -> None:
    assert parse_quantity("0.1") * 10 == 1
    assert parse_quantity("1.5Gi") == 3 * (1 << 29)


@pytest.mark.parametrize(
    "text", ["", "abc", "1.2.3", "1Kb", "K", "Mi", "1ki", " 1", "1 ", "--1", "1e", "e3", "1e3.5", "0x10", "∞"]
)
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, None, [1]])
def test_non_quantities_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(bad)  # type: ignore[arg-type]

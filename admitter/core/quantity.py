"""Kubernetes resource quantities ("100m", "1.5", "2Gi", "129e6"), parsed exactly.

Requests are compared against node allocatable to decide whether a gang fits, so a rounding error here is a
wrong admission. Quantities are parsed into exact fractions and rounded *up* to whole units the way the
apiserver's `Quantity.MilliValue()` / `Value()` do: cpu becomes integer millicores, everything else integer
base units (bytes, devices, pods).
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_NUMBER = re.compile(r"([+-]?)(\d+(?:\.\d*)?|\.\d+)(.*)", re.ASCII)
_EXPONENT = re.compile(r"[eE]([+-]?\d+)", re.ASCII)


def parse_quantity(text: str | int | float) -> Fraction:
    """The exact value of a quantity. Integers pass through; floats (which YAML produces for `cpu: 0.5`)
    are read through their shortest decimal form. Anything that is not a quantity raises ValueError."""
    if isinstance(text, str):
        return _parse_text(text)
    if isinstance(text, bool):
        raise ValueError(f"not a quantity: {text!r}")
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise ValueError(f"not a quantity: {text!r}")
        return _parse_text(repr(text))
    raise ValueError(f"not a quantity: {text!r}")


@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> Fraction:
    """Cached: every watch event of a pod parses its requests again, and a cluster uses few quantities."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    sign, digits, suffix = match.groups()
    number = Fraction(digits)
    if sign == "-":
        number = -number
    if suffix in _BINARY:
        return number * (1 << (10 * _BINARY[suffix]))
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix]
    exponent = _EXPONENT.fullmatch(suffix)
    if exponent is None:
        raise ValueError(f"not a quantity: {text!r} (unknown suffix {suffix!r})")
    return number * Fraction(10) ** int(exponent.group(1))


def milli_value(text: str | int | float) -> int:
    """Thousandths of the quantity, rounded up (cpu "100m" -> 100, "1" -> 1000, "0.0001" -> 1)."""
    return math.ceil(parse_quantity(text) * 1000)


def value(text: str | int | float) -> int:
    """The quantity in whole base units, rounded up ("2Gi" -> 2147483648, "0.1" -> 1)."""
    return math.ceil(parse_quantity(text))

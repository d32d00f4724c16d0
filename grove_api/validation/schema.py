"""Turn pydantic's complaints about a malformed object into apiserver-style field errors."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from grove_api.fielderrors import FieldError, invalid, required


def field_path(loc: tuple[int | str, ...]) -> str:
    """('spec', 'template', 'cliques', 0, 'name') -> 'spec.template.cliques[0].name'"""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def schema_errors(err: ValidationError) -> list[FieldError]:
    errors = []
    for e in err.errors():
        path = field_path(tuple(p for p in e["loc"] if not str(p).startswith("function-")))
        if e["type"] == "missing":
            errors.append(required(path, "field is required"))
        else:
            value: Any = e.get("input")
            if isinstance(value, dict | list):
                value = type(value).__name__
            errors.append(invalid(path, value, e["msg"]))
    return errors

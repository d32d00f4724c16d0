"""Field errors in the kube-apiserver's own style, so our admission messages read like Kubernetes'.

    spec.template.cliques[1].spec.minAvailable: Invalid value: 3: must not be greater than replicas (2)

Every error carries the field path, what is wrong and (in the detail) what is allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any


class ErrorType(Enum):
    INVALID = "Invalid value"
    REQUIRED = "Required value"
    FORBIDDEN = "Forbidden"
    DUPLICATE = "Duplicate value"
    NOT_FOUND = "Not found"
    NOT_SUPPORTED = "Unsupported value"
    TOO_LONG = "Too long"
    INTERNAL = "Internal error"


_NO_VALUE = object()


# The request's own text is quoted back in messages (and so in logs and kubectl's output): a value or a list
# of errors as long as an attacker likes must not make a message as long.
MAX_VALUE_CHARS = 256
MAX_ERRORS_SHOWN = 50


def format_value(value: Any) -> str:
    """Values as the apiserver prints them: numbers bare, strings quoted, None as null, lists as JSON; cut
    to MAX_VALUE_CHARS, saying how much was left out."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, str):
        text = json.dumps(value)
    else:
        text = json.dumps(value, separators=(", ", ": "), default=str)
    return truncate(text)


def truncate(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`text`, or its first `limit` characters and how many more there were."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


@dataclass(frozen=True)
class FieldError:
    path: str
    type: ErrorType
    detail: str = ""
    value: Any = _NO_VALUE

    def __str__(self) -> str:
        parts = [self.path, self.type.value]
        if self.type in (ErrorType.REQUIRED, ErrorType.FORBIDDEN, ErrorType.TOO_LONG, ErrorType.INTERNAL):
            pass
        elif self.value is not _NO_VALUE:
            parts.append(format_value(self.value))
        text = ": ".join(parts)
        return f"{text}: {self.detail}" if self.detail else text


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, ErrorType.INVALID, detail, value)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, ErrorType.REQUIRED, detail)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, ErrorType.FORBIDDEN, detail)


def duplicate(path: str, value: Any, detail: str = "") -> FieldError:
    return FieldError(path, ErrorType.DUPLICATE, detail, value)


def not_found(path: str, value: Any, detail: str = "") -> FieldError:
    return FieldError(path, ErrorType.NOT_FOUND, detail, value)


def not_supported(path: str, value: Any, supported: list[str] | tuple[str, ...]) -> FieldError:
    return FieldError(
        path,
        ErrorType.NOT_SUPPORTED,
        "supported values: " + ", ".join(json.dumps(s) for s in supported),
        value,
    )


def too_long(path: str, detail: str) -> FieldError:
    return FieldError(path, ErrorType.TOO_LONG, detail)


def internal(path: str, detail: str) -> FieldError:
    return FieldError(path, ErrorType.INTERNAL, detail)


def aggregate(errors: list[FieldError]) -> str:
    """One message for many errors, duplicates removed, order kept (as utilerrors.NewAggregate); beyond
    MAX_ERRORS_SHOWN, how many more there were."""
    messages = list(dict.fromkeys(str(e) for e in errors))
    if len(messages) == 1:
        return messages[0]
    more = len(messages) - MAX_ERRORS_SHOWN
    shown = messages[:MAX_ERRORS_SHOWN] + ([f"and {more} more errors"] if more > 0 else [])
    return "[" + ", ".join(shown) + "]"

"""Logging for every process of the project (operator, grove-initc, local-cluster helpers): one JSON object
per line on stderr (OperatorConfiguration `logFormat: json`), or plain text."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, every `extra=` field, and exc for tracebacks."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Root logging to stderr: JSON lines (OperatorConfiguration logFormat "json") or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def tag_records(**fields: str) -> None:
    """Add `fields` to every line this process logs from now on (e.g. which of the operator's processes
    wrote it, when two share one stream)."""

    def tag(record: logging.LogRecord) -> bool:
        for key, value in fields.items():
            setattr(record, key, value)
        return True

    for handler in logging.getLogger().handlers:
        handler.addFilter(tag)

"""The chaos scoreboard: one row per (fault, phase), printed as a table and written as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    fault: str
    phase: str
    injected: str  # what was done, with the evidence that it took (pids, 429s served, relists, …)
    converged: bool
    seconds: float  # from the phase's request to converged (or to the deadline)
    after_fault: float  # from the fault's end (healed) to converged
    lost: list[str] = field(default_factory=list)  # problems left at the deadline, gang violations

    @property
    def ok(self) -> bool:
        return self.converged and not self.lost


def table(rows: list[Row], baseline: dict[str, float] | None = None) -> str:
    """A Markdown table; `baseline`: phase -> seconds of the same phase without a fault (same run)."""
    base = baseline or {}
    lines = [
        "| fault | phase | injected | converged | s to converge (no fault) | s after the fault | lost |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = f" ({base[r.phase]:.1f})" if r.phase in base else ""
        lost = "; ".join(_short(x) for x in r.lost) if r.lost else "nothing"
        lines.append(
            f"| {r.fault} | {r.phase} | {r.injected} | {'yes' if r.converged else '**no**'} "
            f"| {r.seconds:.1f}{ref} | {r.after_fault:.1f} | {lost} |"
        )
    return "\n".join(lines)


def _short(text: str, limit: int = 160) -> str:
    """A table cell's share of a long problem (the JSON keeps it whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write(path: Path, rows: list[Row], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**meta, "rows": [{**asdict(r), "ok": r.ok} for r in rows]}
    path.write_text(json.dumps(doc, indent=2) + "\n")

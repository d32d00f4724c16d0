"""What a validation returns: every error of the request at once, plus warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

from grove_api.fielderrors import FieldError, aggregate


@dataclass
class Result:
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def extend(self, other: Result) -> None:
        self.errors += other.errors
        self.warnings += other.warnings

    def message(self) -> str:
        return aggregate(self.errors)

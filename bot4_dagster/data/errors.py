"""Errors that name the file, the row and the rule, so a bad input can be found and fixed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    """One broken rule at one place: ``row`` is the 1-based data row of ``file`` (None: whole
    file)."""

    file: str
    row: int | None
    rule: str
    detail: str = ""

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}, row {self.row}"
        return f"{where}: rule '{self.rule}' violated" + (f": {self.detail}" if self.detail else "")


class DataError(ValueError):
    """Input data that breaks a rule. Nothing is written from data that raised this."""

    def __init__(self, violations: list[Violation] | Violation, *, total: int | None = None):
        self.violations = [violations] if isinstance(violations, Violation) else list(violations)
        if not self.violations:
            raise ValueError("DataError needs at least one violation")
        self.total = total if total is not None else len(self.violations)
        super().__init__(self._message())

    @classmethod
    def at(cls, file: str, rule: str, detail: str = "", row: int | None = None) -> DataError:
        return cls(Violation(str(file), row, rule, detail))

    @property
    def first(self) -> Violation:
        return self.violations[0]

    def _message(self, limit: int = 10) -> str:
        lines = [str(v) for v in self.violations[:limit]]
        more = self.total - len(lines)
        if more > 0:
            lines.append(f"... and {more} more violation(s)")
        head = "invalid market data" if self.total > 1 else "invalid market data:"
        return head + ("\n  " + "\n  ".join(lines) if self.total > 1 else " " + lines[0])

"""Blocking validation of a normalised table: exact duplicates out, then pandera and Great
Expectations, each reporting failures by file, row and rule.

Both validators see the same frame and encode the same rules (``schemas.py``, ``expectations.py``);
a table is accepted only when both pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

from .errors import DataError, Violation
from .expectations import run_suite
from .schemas import MODELS, PANDERA_RULES, PLAUSIBLE, explain_plausible
from .tables import PROVENANCE, SOURCE_FILE, SOURCE_ROW, TABLES

MAX_LISTED = 20  # violations kept per check; the counts cover all of them


@dataclass
class CheckOutcome:
    """One validator's verdict on one frame."""

    check: str  # "pandera" | "great_expectations"
    passed: bool
    violations: list[Violation] = field(default_factory=list)  # the first MAX_LISTED, by row
    counts: dict[str, int] = field(default_factory=dict)  # rule -> failing rows (or cells)

    def summary(self) -> str:
        if self.passed:
            return f"{self.check}: passed"
        counts = ", ".join(f"{rule} x{n}" for rule, n in sorted(self.counts.items()))
        return f"{self.check}: FAILED ({counts})"


@dataclass
class ValidationReport:
    table: str
    rows: int
    duplicates_removed: int
    outcomes: list[CheckOutcome]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    def violations(self) -> list[Violation]:
        seen, out = set(), []
        for v in sorted((v for o in self.outcomes for v in o.violations), key=_order):
            if (v.file, v.row, v.rule) not in seen:
                seen.add((v.file, v.row, v.rule))
                out.append(v)
        return out

    def raise_for_errors(self) -> None:
        if not self.passed:
            listed = self.violations()
            total = max(sum(o.counts.values()) for o in self.outcomes)
            raise DataError(listed, total=max(total, len(listed)))


def _order(v: Violation) -> tuple:
    return (v.row is None, v.file, v.row or 0, v.rule)


def deduplicate(frame: pd.DataFrame, table: str) -> tuple[pd.DataFrame, int]:
    """Drop rows that repeat an earlier row in every stored column (overlapping exports);
    rows that share a key but differ in value are kept, for the ordering rules to reject."""
    keep = ~frame.duplicated(subset=[c for c in TABLES[table].names if c in frame], keep="first")
    removed = int((~keep).sum())
    out = frame[keep] if removed else frame
    return out.reset_index(drop=True), removed


def locate(frame: pd.DataFrame, position: int | None) -> tuple[str, int | None]:
    """(file, row) of the row at ``position``: its provenance, else "<frame>" and position + 1."""
    if position is None or SOURCE_FILE not in frame:
        return (frame[SOURCE_FILE].iloc[0] if SOURCE_FILE in frame and len(frame) else "<frame>",
                None if position is None else int(position) + 1)
    return str(frame[SOURCE_FILE].iat[position]), int(frame[SOURCE_ROW].iat[position])


# the columns that explain a row-level rule failure
RULE_COLUMNS = {
    "high_ge_low": ("high", "low"),
    "open_close_in_range": ("open", "high", "low", "close"),
    "buy_volume_le_volume": ("buy_volume", "volume"),
    "ts_strictly_increasing": ("ts",),
    "ts_non_decreasing": ("ts",),
    "trade_id_strictly_increasing": ("trade_id",),
    "bid_le_ask": ("bid", "ask"),
}


def _detail(frame: pd.DataFrame, table: str, position: int | None, rule: str,
            column: str | None, value) -> str:
    if position is not None and rule in PLAUSIBLE[table]:
        return explain_plausible(frame, table, rule, position)
    columns = RULE_COLUMNS.get(rule)
    if position is None or not columns or not set(columns) <= set(frame.columns):
        return f"column {column}: {value!r}" if column else f"{value}"
    shown = ", ".join(f"{c}={frame[c].iat[position]}" for c in columns)
    if rule.startswith(("ts_", "trade_id_")) and position > 0:
        shown += f" after {columns[0]}={frame[columns[0]].iat[position - 1]} in the previous row"
    return shown


def _pandera(frame: pd.DataFrame, table: str) -> CheckOutcome:
    data = frame.drop(columns=[c for c in PROVENANCE if c in frame])
    try:
        MODELS[table].validate(data, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return CheckOutcome("pandera", True)
    failing: dict[str, set] = {}
    found: dict[tuple, Violation] = {}
    for case in cases.itertuples(index=False):
        check = str(case.check)
        rule = "dtype" if check.startswith("dtype(") else PANDERA_RULES.get(check, check)
        position = None if pd.isna(case.index) else int(case.index)
        failing.setdefault(rule, set()).add(position if position is not None else case.failure_case)
        file, row = locate(frame, position)
        if (row, rule) not in found and len(found) < 10 * MAX_LISTED:
            detail = _detail(frame, table, position, rule, case.column, case.failure_case)
            found[(row, rule)] = Violation(file, row, rule, detail)
    listed = sorted(found.values(), key=_order)[:MAX_LISTED]
    return CheckOutcome("pandera", False, listed, {r: len(p) for r, p in failing.items()})


def _great_expectations(frame: pd.DataFrame, table: str) -> CheckOutcome:
    data = frame.drop(columns=[c for c in PROVENANCE if c in frame])
    counts: Counter[str] = Counter()
    violations: list[Violation] = []
    for result in run_suite(table, data):
        if result["success"]:
            continue
        rule = result["rule"]
        counts[rule] += max(result["unexpected_count"], 1)
        detail = f"{result['expectation']}({result['columns']})"
        if result["exception"]:
            detail += f": {result['exception']}"
        elif result["observed"] is not None and not result["positions"]:
            detail += f": observed {result['observed']}"
        positions = result["positions"] or [None]
        for position in positions[:MAX_LISTED]:
            file, row = locate(frame, position)
            violations.append(Violation(file, row, rule, detail))
    violations.sort(key=_order)
    return CheckOutcome("great_expectations", not counts, violations[:MAX_LISTED], dict(counts))


def validate(frame: pd.DataFrame, table: str, *,
             great_expectations: bool = True) -> ValidationReport:
    """Validate a frame that has already been deduplicated (see ``prepare``)."""
    if table not in MODELS:
        raise KeyError(f"unknown table {table!r}; choose one of {', '.join(MODELS)}")
    outcomes = [_pandera(frame, table)]
    if great_expectations:
        outcomes.append(_great_expectations(frame, table))
    return ValidationReport(table, len(frame), 0, outcomes)


def prepare(frame: pd.DataFrame, table: str, *,
            great_expectations: bool = True) -> tuple[pd.DataFrame, ValidationReport]:
    """Deduplicate and validate: the frame that may be stored, and the report of why (not)."""
    clean, removed = deduplicate(frame, table)
    report = validate(clean, table, great_expectations=great_expectations)
    report.duplicates_removed = removed
    return clean, report

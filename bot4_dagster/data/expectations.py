"""Great Expectations 1.x suites for the normalised market tables.

GX is the second, independent opinion beside the pandera models: the same rules written in GX's
vocabulary, so a reviewer who trusts GX can read the suite. Each expectation carries its rule name
in ``meta``. The plausibility rules depend on the data (a median per symbol), so the suite is built
for the frame it validates: one bounded expectation per column and symbol, restricted to that
symbol's finite positive values by a pandas ``row_condition``. ``great_expectations`` takes
~3 s to import, so it is imported on first use only.
"""

from __future__ import annotations

import os
import sys
import threading
from functools import cache, lru_cache
from typing import Any

import pandas as pd

from .schemas import PLAUSIBLE, plausible_bounds
from .symbols import is_valid
from .tables import TABLES

FLOAT_MAX = sys.float_info.max  # "between 0 and FLOAT_MAX" excludes NaN and inf
_lock = threading.Lock()


def _plausibility(table: str, frame: pd.DataFrame | None) -> list[tuple[str, str, dict]]:
    """The plausibility rules as GX "between" expectations, one per column and symbol."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    if frame is None or not len(frame):
        return out
    for rule, columns in PLAUSIBLE[table].items():
        for column in columns:
            for symbol, (low, high) in plausible_bounds(frame, rule, column).items():
                if not is_valid(symbol):  # symbol_valid's to report; never quoted into a query
                    continue
                condition = (f'symbol == "{symbol}" and {column} > 0 and '
                             f"{column} <= {FLOAT_MAX!r}")
                out.append((rule, "ExpectColumnValuesToBeBetween", dict(
                    column=column, min_value=low, max_value=high, row_condition=condition,
                    condition_parser="pandas")))
    return out


def _expectations(table: str, now: pd.Timestamp,
                  frame: pd.DataFrame | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(rule, GX expectation class, kwargs) for one table (``frame``: the data-dependent rules)."""
    price = dict(min_value=0, strict_min=True, max_value=FLOAT_MAX)
    non_negative = dict(min_value=0, max_value=FLOAT_MAX)

    def bounded(rule: str, columns: tuple[str, ...], bounds: dict[str, Any]) -> list:
        # GX's "between" skips missing values, pandera's checks (ignore_na=False) do not:
        # a NaN must break the same rule in both
        return [(rule, kind, dict(column=c, **kw)) for c in columns
                for kind, kw in (("ExpectColumnValuesToBeBetween", bounds),
                                 ("ExpectColumnValuesToNotBeNull", {}))]

    common = [
        ("required_columns", "ExpectTableColumnsToMatchOrderedList",
         dict(column_list=TABLES[table].names)),
        ("not_null", "ExpectColumnValuesToNotBeNull", dict(column="symbol")),
        ("not_null", "ExpectColumnValuesToNotBeNull", dict(column="ts")),
        ("ts_not_in_future", "ExpectColumnValuesToBeBetween",
         dict(column="ts", max_value=now.to_pydatetime())),
    ]
    pair = "ExpectColumnPairValuesAToBeGreaterThanB"

    def ordered(rule: str, a: str, b: str) -> tuple:
        # a missing value is price_finite_positive's to report, as in pandera
        return (rule, pair, dict(column_A=a, column_B=b, or_equal=True,
                                 ignore_row_if="either_value_is_missing"))

    common += _plausibility(table, frame)
    if table == "bars":
        return [
            *common,
            *bounded("price_finite_positive", ("open", "high", "low", "close"), price),
            *bounded("volume_non_negative", ("volume",), non_negative),
            ordered("high_ge_low", "high", "low"),
            *[ordered("open_close_in_range", a, b)
              for a, b in (("high", "open"), ("high", "close"), ("open", "low"), ("close", "low"))],
            ordered("buy_volume_le_volume", "volume", "buy_volume"),
            ("ts_strictly_increasing", "ExpectColumnValuesToBeIncreasing",
             dict(column="ts", strictly=True)),
        ]
    if table == "trades":
        return [
            *common,
            *bounded("price_finite_positive", ("price",), price),
            *bounded("amount_finite_positive", ("amount",), price),
            ("side_in_set", "ExpectColumnValuesToBeInSet", dict(column="side", value_set=[-1, 1])),
            ("trade_id_strictly_increasing", "ExpectColumnValuesToBeIncreasing",
             dict(column="trade_id", strictly=True)),
            ("ts_non_decreasing", "ExpectColumnValuesToBeIncreasing", dict(column="ts")),
        ]
    if table == "quotes":
        return [
            *common,
            *bounded("price_finite_positive", ("bid", "ask"), price),
            *bounded("size_non_negative", ("bid_size", "ask_size"), non_negative),
            ordered("bid_le_ask", "ask", "bid"),
            ("ts_non_decreasing", "ExpectColumnValuesToBeIncreasing", dict(column="ts")),
        ]
    raise KeyError(f"no expectation suite for table {table!r}")


@lru_cache(maxsize=1)
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@cache
def _batch_definition(table: str):
    return (
        _context().data_sources.add_pandas(f"bot4_{table}")
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("whole")
    )


def build_suite(table: str, now: pd.Timestamp | None = None, frame: pd.DataFrame | None = None):
    """The GX ExpectationSuite for ``table`` (``now`` bounds the not-in-future rule, ``frame``
    gives the plausibility bounds; without it those rules are left out)."""
    import great_expectations.expectations as gxe
    from great_expectations.core import ExpectationSuite

    now = now or pd.Timestamp.now(tz="UTC")
    suite = ExpectationSuite(name=f"market_{table}")
    for rule, kind, kwargs in _expectations(table, now, frame):
        suite.add_expectation(getattr(gxe, kind)(**kwargs, meta={"rule": rule}))
    return suite


def run_suite(table: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Validate ``frame`` (normalised columns, RangeIndex) and return one dict per expectation:
    rule, expectation, column(s), success, unexpected_count, sample row positions."""
    with _lock:  # GX contexts are not thread-safe
        result = _batch_definition(table).get_batch(batch_parameters={"dataframe": frame}).validate(
            build_suite(table, frame=frame), result_format={"result_format": "SUMMARY"}
        )
    rows = []
    for r in result.results:
        config = r.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k in ("column", "column_A", "column_B")}
        rows.append({
            "rule": (config.meta or {}).get("rule", config.type),
            "expectation": config.type,
            "columns": ", ".join(str(v) for v in kwargs.values()),
            "success": bool(r.success),
            "unexpected_count": int(r.result.get("unexpected_count") or 0),
            "positions": list(r.result.get("partial_unexpected_index_list") or []),
            "observed": r.result.get("observed_value"),
            "exception": (r.exception_info or {}).get("exception_message")
            if not r.success else None,
        })
    return rows

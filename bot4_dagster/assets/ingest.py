"""Ingest assets ``market/bars``, ``market/trades``, ``market/quotes``: read the configured source,
deduplicate, validate with pandera and Great Expectations (blocking), then store.

Validation runs before the value is returned, so a failing check means the I/O manager is never
called: the warehouse keeps its previous content and nothing downstream runs. Both checks are
still recorded, with the failing file, row and rule, so the UI shows why.
"""

import logging
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from ..automation.partitions import PARTITIONS, TIME_DIMENSION
from ..data.errors import DataError
from ..data.validation import ValidationReport, prepare
from ..resources.market_data import MarketDataResource
from .metadata import frame_summary, outcome_metadata

# progress also goes to a plain Python logger, which `bot4 run` prints (Dagster's console is quiet)
progress_log = logging.getLogger("bot4_dagster.progress")

CHECKS = {
    "pandera": ("pandera_schema", "pandera DataFrameModel of the table (schemas.py)"),
    "great_expectations": ("gx_suite", "Great Expectations 1.x suite of the table (expectations.py)"),
}
DESCRIPTIONS = {
    "bars": "OHLCV bars per symbol and month (ts = bar open time, UTC), validated before storing.",
    "trades": "Trades per symbol and day (side = aggressor, +1 buy / -1 sell), validated.",
    "quotes": "Best bid/ask updates per symbol and day, validated.",
}


def partition_window(context: dg.AssetExecutionContext, table: str) -> tuple[str, pd.Timestamp, pd.Timestamp]:
    """(symbol, start, end) of the run's partition or partition range."""
    dim, definition = TIME_DIMENSION[table]
    keys = context.partition_keys
    symbols = {k.keys_by_dimension["symbol"] for k in keys}
    if len(symbols) != 1:
        raise dg.Failure(f"one run ingests one symbol; this run spans {sorted(symbols)}")
    windows = [definition.time_window_for_partition_key(k.keys_by_dimension[dim]) for k in keys]
    return symbols.pop(), pd.Timestamp(min(w.start for w in windows)), pd.Timestamp(max(w.end for w in windows))


def _check_results(key: dg.AssetKey, report: ValidationReport) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(asset_key=key, check_name=CHECKS[o.check][0], passed=o.passed,
                            metadata=outcome_metadata(o))
        for o in report.outcomes
    ]


def ingest_asset(table: str) -> dg.AssetsDefinition:
    key = dg.AssetKey(["market", table])
    dim, _ = TIME_DIMENSION[table]

    @dg.asset(
        key=key,
        description=DESCRIPTIONS[table],
        partitions_def=PARTITIONS[table],
        backfill_policy=dg.BackfillPolicy.single_run(),
        metadata={"partition_expr": {"symbol": "symbol", dim: "ts"}},
        check_specs=[dg.AssetCheckSpec(name, asset=key, blocking=True, description=text)
                     for name, text in CHECKS.values()],
        kinds={"duckdb", "pandas"},
        group_name="market_data",
        code_version="1",
    )
    def _ingest(context: dg.AssetExecutionContext, market_data: MarketDataResource) -> Iterator:
        symbol, start, end = partition_window(context, table)
        context.log.info(f"{table} {symbol} [{start:%Y-%m-%d}, {end:%Y-%m-%d}) from {market_data.source}")

        def progress(event) -> None:
            context.log.info(str(event))
            progress_log.info(str(event))

        try:
            loaded = market_data.open(progress=progress).load(table, symbol, start, end)
            frame, report = prepare(loaded.frame, table)
        except DataError as exc:
            raise dg.Failure(description=str(exc), metadata={
                "file": exc.first.file, "row": exc.first.row or 0, "rule": exc.first.rule,
            }) from None
        yield from _check_results(key, report)
        if not report.passed:
            error = DataError(report.violations())
            raise dg.Failure(description=str(error), metadata={
                "file": error.first.file, "row": error.first.row or 0, "rule": error.first.rule,
                "checks": "; ".join(o.summary() for o in report.outcomes),
            })
        yield dg.MaterializeResult(value=frame, metadata={
            **frame_summary(frame),
            "symbol": symbol,
            "window": f"[{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC",
            "source": market_data.source,
            "volume_unit": loaded.volume_unit if loaded.files else "n/a",
            "duplicates_removed": report.duplicates_removed,
            "files": dg.MetadataValue.md(_files_table(loaded)),
            **({"notes": "; ".join(loaded.notes)} if loaded.notes else {}),
        })

    return _ingest


def _files_table(loaded) -> str:
    if not loaded.files:
        return "no source rows in this window"
    rows = [f"| `{f.path}` | {f.format} | {f.rows:,} | {f.volume_unit} | {f.ts_unit} |" for f in loaded.files]
    return "\n".join(["| file | format | rows | volume unit | time unit |", "|---|---|---|---|---|", *rows])


bars = ingest_asset("bars")
trades = ingest_asset("trades")
quotes = ingest_asset("quotes")
INGEST_ASSETS = [bars, trades, quotes]

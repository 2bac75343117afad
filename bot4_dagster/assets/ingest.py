"""Ingest assets ``market/bars``, ``market/trades``, ``market/quotes``, one partition per symbol:
read a window of the configured source, deduplicate, validate with pandera and Great
Expectations (blocking), then merge into the warehouse by key.

Validation runs before the value is returned, so a failing check means the I/O manager is never
called: the warehouse keeps its previous content and nothing downstream runs. Both checks are
still recorded, with the failing file, row and rule, so the UI shows why. The merge itself
refuses rows that contradict stored ones (rule ``conflicts_with_stored``), in the same
transaction that would have written them.
"""


from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
from pydantic import Field

from ..automation.launch import PROGRESS
from ..automation.partitions import SYMBOLS
from ..data.errors import DataError
from ..data.sources import ingest_window
from ..data.validation import ValidationReport, prepare
from ..resources.market_data import MarketDataResource
from ..resources.warehouse import Ingested
from .keys import INGEST
from .metadata import column_schema, files_table, outcome_metadata

CHECKS = {
    "pandera": ("pandera_schema", "pandera DataFrameModel of the table (schemas.py)"),
    "great_expectations": ("gx_suite",
                           "Great Expectations 1.x suite of the table (expectations.py)"),
}
DESCRIPTIONS = {
    "bars": "OHLCV bars per symbol (ts = bar open time, UTC), validated, merged by (symbol, ts). "
            "Built from the trades when the source holds trades but no bars.",
    "trades": "Trades per symbol (side = aggressor, +1 buy / -1 sell), validated, merged by "
              "(symbol, trade_id).",
    "quotes": "Best bid/ask updates per symbol, validated, merged by (symbol, ts).",
}


class IngestConfig(dg.Config):
    """Which window of the source to ingest. The default is everything it holds for the symbol."""

    start: str | None = Field(
        default=None, description="first timestamp to read, ISO (UTC); default: the source's first")
    end: str | None = Field(
        default=None, description="read before this timestamp, ISO (UTC); default: after the last")
    replace: bool = Field(
        default=False, description="replace the stored rows of [start, end) instead of merging "
        "by key (removes stored rows the source no longer holds; never the default)")


def _failure(error: DataError, **extra) -> dg.Failure:
    return dg.Failure(description=str(error), metadata={
        "file": error.first.file, "row": error.first.row or 0, "rule": error.first.rule, **extra})


def _check_results(key: dg.AssetKey, report: ValidationReport) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(asset_key=key, check_name=CHECKS[o.check][0], passed=o.passed,
                            metadata=outcome_metadata(o))
        for o in report.outcomes
    ]


def ingest_asset(table: str) -> dg.AssetsDefinition:
    key = INGEST[table]

    @dg.asset(
        key=key,
        description=DESCRIPTIONS[table],
        partitions_def=SYMBOLS,
        metadata={"partition_expr": "symbol",
                  "dagster/column_schema": column_schema(f"market.{table}")},
        check_specs=[dg.AssetCheckSpec(name, asset=key, blocking=True, description=text,
                                       partitions_def=SYMBOLS)
                     for name, text in CHECKS.values()],
        kinds={"duckdb", "pandas"},
        group_name="market_data",
        code_version="2",
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)),
    )
    def _ingest(context: dg.AssetExecutionContext, config: IngestConfig,
                market_data: MarketDataResource) -> Iterator:
        symbol = context.partition_key

        def progress(event) -> None:  # downloads: shown on the `bot4 run` console too
            context.log.info(f"{PROGRESS}{event}")

        source = market_data.open(progress=progress)
        try:
            start, end = ingest_window(source, table, symbol, config.start, config.end)
            context.log.info(f"{table} {symbol} [{start}, {end}) from {market_data.source.value}")
            loaded = source.load(table, symbol, start, end)
            frame, report = prepare(loaded.frame, table)
        except DataError as exc:
            raise _failure(exc) from None
        except ValueError as exc:  # no such table for the symbol, an empty window
            raise dg.Failure(str(exc)) from None
        for note in loaded.notes:
            context.log.warning(note)
        yield from _check_results(key, report)
        if not report.passed:
            raise _failure(DataError(report.violations()),
                           checks="; ".join(o.summary() for o in report.outcomes))
        if frame.empty:
            raise dg.Failure(f"no {table} for {symbol} in [{start}, {end}) in the "
                             f"'{market_data.source.value}' source")
        yield dg.MaterializeResult(
            value=Ingested(table, frame, (start, end) if config.replace else None),
            metadata={
                "window": f"[{start}, {end})",
                "write": "replace window" if config.replace else "merge by key",
                "rows_read": dg.MetadataValue.int(len(frame)),
                "source": market_data.source.value,
                "volume_unit": loaded.volume_unit if loaded.files else "n/a",
                "duplicates_removed": dg.MetadataValue.int(report.duplicates_removed),
                "files": files_table(loaded.files),
                **({"notes": "; ".join(loaded.notes)} if loaded.notes else {}),
            })

    return _ingest


bars = ingest_asset("bars")
trades = ingest_asset("trades")
quotes = ingest_asset("quotes")

"""Materialize everything the configured source holds, as runs recorded in a Dagster instance
(``bot4 run`` / ``make run``). One run per (table, symbol) covers all of that symbol's time
partitions at once (single-run backfill), so 20 years of daily bars is one run, not 240."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from ..data.sources import Extent
from ..resources.market_data import MarketDataResource
from .partitions import SYMBOLS, range_tags

INGEST_JOB = {"bars": "ingest_bars", "trades": "ingest_ticks", "quotes": "ingest_ticks"}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class RunOutcome:
    label: str
    run_id: str
    success: bool
    seconds: float
    materialized: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: int = 0
    error: str = ""


def _outcome(label: str, result, seconds: float) -> RunOutcome:
    checks = result.get_asset_check_evaluations()
    error = ""
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        error = (data.user_failure_data.description if data.user_failure_data else None) or (
            data.error.message.strip() if data.error else "step failed")
        break
    return RunOutcome(
        label, result.run_id, result.success, seconds,
        [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()],
        sum(c.passed for c in checks), sum(not c.passed for c in checks), error,
    )


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str, label: str,
             **kwargs) -> RunOutcome:
    started = time.perf_counter()
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET, **kwargs)
    return _outcome(label, result, time.perf_counter() - started)


def ingest_extent(defs: dg.Definitions, instance: dg.DagsterInstance, extent: Extent) -> RunOutcome:
    """One run that ingests every partition of one table and symbol."""
    label = (f"market/{extent.table} {extent.symbol} "
             f"{extent.start:%Y-%m-%d} .. {extent.end:%Y-%m-%d}")
    return _execute(
        defs, instance, INGEST_JOB[extent.table], label,
        tags=range_tags(extent.table, extent.symbol, extent.start, extent.end),
        asset_selection=[dg.AssetKey(["market", extent.table])],
    )


def materialize_all(defs: dg.Definitions, instance: dg.DagsterInstance,
                    report: Callable[[str], None] = print) -> list[RunOutcome]:
    """Register the source's symbols, ingest everything it holds, compute each symbol's
    features, refresh the perf manifest."""
    market_data: MarketDataResource = defs.resources["market_data"]
    extents = market_data.open(progress=lambda e: report(f"    {e}")).extents()
    symbols = sorted({e.symbol for e in extents})
    known = set(instance.get_dynamic_partitions(SYMBOLS.name))
    if missing := [s for s in symbols if s not in known]:
        instance.add_dynamic_partitions(SYMBOLS.name, missing)
    report(f"source '{market_data.source}': {len(extents)} table(s) for {', '.join(symbols)}")
    if absent := sorted({"bars", "trades", "quotes"} - {e.table for e in extents}):
        report(f"  (this source holds no {' or '.join(absent)}: nothing to ingest there)")
    outcomes = []
    for extent in extents:
        report(f"  ingesting market/{extent.table} {extent.symbol} "
               f"({extent.start:%Y-%m-%d} .. {extent.end:%Y-%m-%d}) ...")
        outcomes.append(ingest_extent(defs, instance, extent))
        report("    " + _line(outcomes[-1]))
    for job, asset in (("microstructure_features", "features/microstructure_features"),
                       ("garch_volatility", "ml/garch_volatility"),
                       ("labels_and_folds", "ml/labels, ml/cv_folds, ml/leakage_proof")):
        for symbol in symbols:
            report(f"  computing {asset} {symbol} ...")
            outcomes.append(_execute(defs, instance, job, f"{asset} {symbol}",
                                     partition_key=symbol))
            report("    " + _line(outcomes[-1]))
    report("  refreshing perf/manifest ...")
    outcomes.append(_execute(defs, instance, "perf_manifest_job", "perf/manifest"))
    report("    " + _line(outcomes[-1]))
    return outcomes


def _line(o: RunOutcome) -> str:
    if o.success:
        checks = f", checks {o.checks_passed} passed" if o.checks_passed else ""
        return f"ok in {o.seconds:.1f} s{checks}"
    return f"FAILED in {o.seconds:.1f} s: {o.error}"

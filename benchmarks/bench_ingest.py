"""Ingest benchmarks: reading a real export into the normalised table, and the full
normalise + deduplicate + validate (pandera and Great Expectations) path per 100k rows."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.validation import prepare
from bot4_dagster.perf import Report

from ._data import FTX_BARS

GROUP = "ingest"
ROWS = 100_000


def _bench_ftx_file(report: Report) -> None:
    rows = len(parse_file(FTX_BARS, symbol="BTC-PERP").frame)
    report.compare(
        "ftx_file", lambda: parse_file(FTX_BARS, symbol="BTC-PERP"),
        lambda: pd.read_csv(FTX_BARS), reference_name="pandas.read_csv",
        group=GROUP, items=rows, unit=f"{rows:,} rows (gzip CSV)",
        notes="ours: detect format, parse (pyarrow), UTC timestamps, provenance; "
              "pandas: plain read, timestamps left as text",
    )


def _hundred_thousand_bars(folder: Path) -> Path:
    """100k 1-minute bars: the FTX month repeated, shifted forward so time keeps increasing."""
    raw = pd.read_csv(FTX_BARS, parse_dates=["timestamp"])
    span = raw["timestamp"].iloc[-1] - raw["timestamp"].iloc[0] + pd.Timedelta(minutes=1)
    copies = [raw.assign(timestamp=raw["timestamp"] + i * span)
              for i in range(-(-ROWS // len(raw)))]
    path = folder / "bars_100k.csv"
    pd.concat(copies).head(ROWS).to_csv(path, index=False)
    return path


def _bench_validate(report: Report) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _hundred_thousand_bars(Path(folder))

        def ours():
            frame, result = prepare(parse_file(path, symbol="BTC-PERP").frame, "bars")
            assert result.passed
            return frame

        report.compare(
            "normalise_validate_100k", ours, lambda: pd.read_csv(path),
            reference_name="pandas.read_csv", group=GROUP, items=ROWS,
            unit=f"{ROWS:,} rows (CSV)",
            notes="ours: parse + dedup + pandera model + GX suite; the ratio is what blocking "
                  "validation costs relative to a bare read",
        )


def run(report: Report) -> None:
    if report.wants("ftx_file", GROUP):
        _bench_ftx_file(report)
    if report.wants("normalise_validate_100k", GROUP):
        _bench_validate(report)

"""Kernel benchmarks: percent returns and trade-to-bar aggregation vs pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bot4_dagster.kernels import pct_returns, trades_to_bars
from bot4_dagster.perf import Report

from ._data import ftx_closes, resampled_trades

GROUP = "kernels"
MINUTE_NS = 60_000_000_000
N_TRADES = 1_000_000


def _bench_pct_returns(report: Report) -> None:
    closes = ftx_closes()
    series = pd.Series(closes)
    pct_returns(closes, np.empty_like(closes))  # compile (or load the cache) before timing
    report.compare(
        "pct_returns", lambda: pct_returns(closes, np.empty_like(closes)),
        lambda: series.pct_change() * 100, reference_name="pandas pct_change()*100",
        group=GROUP, items=len(closes), unit=f"{len(closes):,} rows",
        notes="ours allocates its output each call, like pandas",
    )


def _bench_trades_to_bars(report: Report) -> None:
    t = resampled_trades(N_TRADES)
    frame = pd.DataFrame(
        {"price": t["price"], "amount": t["amount"],
         "buy_amount": np.where(t["side"] == 1, t["amount"], 0.0)},
        index=pd.to_datetime(t["ts_ns"], unit="ns"),
    )

    def ours() -> dict[str, np.ndarray]:
        return trades_to_bars(t["ts_ns"], t["price"], t["amount"], t["side"], MINUTE_NS)

    def reference() -> pd.DataFrame:
        bars = frame.resample("1min").agg({
            "price": ["first", "max", "min", "last", "count"],
            "amount": "sum", "buy_amount": "sum",
        })
        return bars[bars[("price", "count")] > 0]

    n_bars = len(ours()["ts"])  # also compiles
    report.compare(
        "trades_to_bars", ours, reference, reference_name="pandas resample('1min').agg",
        group=GROUP, items=N_TRADES, unit=f"{N_TRADES:,} trades",
        notes=(f"{n_bars:,} 1-min bars from trades bootstrapped from Binance BTCUSDT; pandas gets a"
               " prebuilt DatetimeIndex frame with buy_amount, ours starts from arrays"),
    )


def run(report: Report) -> None:
    if report.wants("pct_returns", GROUP):
        _bench_pct_returns(report)
    if report.wants("trades_to_bars", GROUP):
        _bench_trades_to_bars(report)

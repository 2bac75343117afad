"""Microstructure feature benchmarks against the independent pandas reference
(``benchmarks/reference/microstructure_pandas.py``), measured in the same process."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from bot4_dagster.features.microstructure import MicrostructureState, microstructure_features
from bot4_dagster.kernels import trades_to_bars
from bot4_dagster.perf import Benchmark, Report, Timing

from ._data import FTX_BARS, resampled_trades
from .reference.microstructure_pandas import reference_features

GROUP = "features"
MINUTE_NS = 60_000_000_000
N_TRADES = 1_000_000
REFERENCE_TAIL = 1_600  # bars the pandas reference recomputes per online update (24 h + windows)


def _ftx_bars() -> pd.DataFrame:
    raw = pd.read_csv(FTX_BARS, float_precision="round_trip")
    return raw.rename(columns={"timestamp": "ts"}).assign(
        ts=lambda f: pd.to_datetime(f["ts"], utc=True))


def _tape() -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    t = resampled_trades(N_TRADES)
    side = np.where(t["side"] == 1, 1, -1).astype(np.int8)
    trades = pd.DataFrame({"ts": pd.to_datetime(t["ts_ns"], unit="ns", utc=True),
                           "price": t["price"], "amount": t["amount"], "side": side})
    return {**t, "side": side}, trades


def _bars_of(t: dict[str, np.ndarray]) -> pd.DataFrame:
    b = trades_to_bars(t["ts_ns"], t["price"], t["amount"], t["side"], MINUTE_NS)
    return pd.DataFrame({"ts": pd.to_datetime(b["ts"], unit="ns", utc=True), "open": b["open"],
                         "high": b["high"], "low": b["low"], "close": b["close"],
                         "volume": b["volume"]})


def _bench_batch(report: Report) -> None:
    bars = _ftx_bars()
    microstructure_features(bars, volume_unit="quote")  # compile / load the cache
    report.compare(
        "batch_21_ftx", lambda: microstructure_features(bars, volume_unit="quote"),
        lambda: reference_features(bars, volume_unit="quote"),
        reference_name="pandas reference", group=GROUP, items=len(bars),
        unit=f"{len(bars):,} FTX 1-min bars", goal=">= 20x",
        notes="all 21 columns from bars (trade features NaN, as for any bars-only input)",
    )


def _bench_trades(report: Report) -> None:
    t, trades = _tape()

    def ours() -> pd.DataFrame:
        return microstructure_features(_bars_of(t), trades, interval="1min")

    def reference() -> pd.DataFrame:
        frame = trades.set_index("ts")
        g = frame.resample("1min")
        bars = pd.DataFrame({"open": g["price"].first(), "high": g["price"].max(),
                             "low": g["price"].min(), "close": g["price"].last(),
                             "volume": g["amount"].sum()}).dropna().reset_index()
        return reference_features(bars, trades, interval="1min")

    n_bars = len(ours())
    report.compare(
        "trades_1m_to_features", ours, reference, reference_name="pandas reference",
        group=GROUP, items=N_TRADES, unit=f"{N_TRADES:,} trades",
        goal="p50 <= 500 ms", repeat=3, warmup=1,
        notes=f"trades bootstrapped from the real Binance tape -> {n_bars:,} 1-min bars and all "
              "21 features incl. VPIN",
    )


def _bench_incremental(report: Report) -> None:
    t, trades = _tape()
    bars = _bars_of(t)
    bar_of = np.searchsorted(bars["ts"].to_numpy("datetime64[ns]").view(np.int64), t["ts_ns"],
                             side="right") - 1
    cut = np.searchsorted(bar_of, np.arange(len(bars) + 1))
    values = bars[["high", "low", "close", "volume"]].to_numpy()
    price, amount, side = t["price"], t["amount"], t["side"].astype(np.float64)

    def run_state() -> list[int]:
        state = MicrostructureState(interval="1min", has_trades=True)
        samples = []
        for i in range(len(bars)):
            lo, hi = cut[i], cut[i + 1]
            h, low, c, v = values[i]
            start = time.perf_counter_ns()
            state.update_arrays(h, low, c, v, price=price[lo:hi], amount=amount[lo:hi],
                                side=side[lo:hi])
            samples.append(time.perf_counter_ns() - start)
        return samples

    run_state()  # warm-up (compilation)
    ours = Timing(tuple(s / 1e9 for s in run_state()[REFERENCE_TAIL:]))

    def reference_update(i: int) -> None:
        lo = i - REFERENCE_TAIL + 1
        window = bars.iloc[lo:i + 1].reset_index(drop=True)
        reference_features(window, trades.iloc[cut[lo]:cut[i + 1]], interval="1min").iloc[-1]

    samples = []
    for i in range(REFERENCE_TAIL, REFERENCE_TAIL + 20):
        start = time.perf_counter_ns()
        reference_update(i)
        samples.append(time.perf_counter_ns() - start)
    report.add(Benchmark(
        "incremental_update", ours, group=GROUP, unit="1 bar (~80 trades) per update", items=1,
        reference_name=f"pandas reference on the last {REFERENCE_TAIL} bars",
        reference=Timing(tuple(s / 1e9 for s in samples)), goal="p99 <= 50 µs",
        notes=f"MicrostructureState.update_arrays, each of {len(bars) - REFERENCE_TAIL:,} bars "
              "timed on its own; the reference recomputes the trailing window per bar",
    ))


def run(report: Report) -> None:
    if report.wants("batch_21_ftx", GROUP):
        _bench_batch(report)
    if report.wants("trades_1m_to_features", GROUP):
        _bench_trades(report)
    if report.wants("incremental_update", GROUP):
        _bench_incremental(report)

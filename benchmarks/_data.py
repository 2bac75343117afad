"""Benchmark inputs from the real market data in ``../shared/data`` (beside the checkout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
FTX_BARS = DATA_DIR / "ftx_btc-perp_1m_2022-01.csv.gz"
BINANCE_TRADES = DATA_DIR / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"
SEED = 20200222


def ftx_closes() -> np.ndarray:
    """The 45,031 FTX BTC-PERP 1-minute closes."""
    return pd.read_csv(FTX_BARS)["close"].to_numpy(np.float64)


def binance_trades() -> dict[str, np.ndarray]:
    """The 9,999 real Binance trades as arrays: ts_ns (int64), price, amount, side (1 = buy)."""
    df = pd.read_csv(BINANCE_TRADES)
    return {
        "ts_ns": df["timestamp"].to_numpy(np.int64) * 1000,  # Tardis: µs since epoch
        "price": df["price"].to_numpy(np.float64),
        "amount": df["amount"].to_numpy(np.float64),
        "side": (df["side"] == "buy").to_numpy(np.int8),
    }


def resampled_trades(n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """``n`` trades bootstrapped from the real tape, in time order, at the real intensity.

    Rows (price, amount, side) are drawn with replacement and kept in their original order
    (sorted draw indices), so the price path stays realistic; timestamps are the cumulative sum
    of inter-arrival gaps drawn from the real gaps, so trades per minute match the real day.
    """
    real = binance_trades()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.integers(0, len(real["ts_ns"]), size=n))
    gaps = rng.choice(np.diff(real["ts_ns"]), size=max(n - 1, 0))
    ts = real["ts_ns"][0] + np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)
    return {"ts_ns": ts, **{k: real[k][idx] for k in ("price", "amount", "side")}}


def sp500_returns() -> np.ndarray:
    """The 5,030 daily S&P 500 percent returns bundled with ``arch`` (1999-2018)."""
    from arch.data import sp500

    close = sp500.load()["Adj Close"]
    return (100 * close.pct_change().dropna()).to_numpy(np.float64)

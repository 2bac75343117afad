"""Trade tapes with known microstructure parameters, and loaders for the real data in
../shared/data.

Each generator returns ``(bars, trades)``: trades (ts UTC, price, amount, side ±1) at a constant
200 trades per minute with jittered times, so every minute has trades and the 1-minute bars built
from them are contiguous. Prices start at 10,000 so they stay positive over 200k trades.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FTX_BARS = DATA / "ftx_btc-perp_1m_2022-01.csv.gz"
BINANCE_TRADES = DATA / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"
BINANCE_QUOTES = DATA / "binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz"

START = pd.Timestamp("2024-01-01", tz="UTC")
TRADES_PER_MINUTE = 200
PRICE0 = 10_000.0


def roll_model(n_trades: int = 200_000, c: float = 0.5, sigma_u: float = 1.0, seed: int = 1984):
    """Roll (1984): p_t = m_t + c·b_t, m a N(0, σ_u²) random walk, b iid ±1.

    Tick-level spread 2c (absolute) and cov(Δp_t, Δp_{t−1}) = −c².
    """
    rng = np.random.default_rng(seed)
    b = _signs(rng, n_trades)
    m = PRICE0 + np.cumsum(rng.normal(0.0, sigma_u, n_trades))
    return _tape(rng, m + c * b, b)


def huang_stoll_model(n_trades: int = 200_000, spread: float = 1.0, lam: float = 0.4,
                      noise: float = 0.05, seed: int = 1997):
    """Huang & Stoll (1997): ΔP_t = (S/2)ΔQ_t + λ(S/2)Q_{t−1} + e_t, Q iid ±1, e ~ N(0, noise²).

    The no-intercept OLS of ΔP on (ΔQ, Q_{t−1}) recovers a = S/2 and c/a = λ.
    """
    rng = np.random.default_rng(seed)
    q = _signs(rng, n_trades)
    half = spread / 2.0
    dp = half * np.diff(q) + lam * half * q[:-1] + rng.normal(0.0, noise, n_trades - 1)
    return _tape(rng, PRICE0 + np.concatenate([[0.0], np.cumsum(dp)]), q)


def kyle_model(n_trades: int = 200_000, lam: float = 2e-3, noise: float = 2e-3, seed: int = 1985):
    """Kyle (1985): Δp_t = λ·b_t·v_t + ε_t, b iid ±1, v ~ Exp(1) > 0, ε ~ N(0, noise²).

    The no-intercept OLS of Δp_t on b_t·v_t recovers λ.
    """
    rng = np.random.default_rng(seed)
    b = _signs(rng, n_trades)
    v = rng.exponential(1.0, n_trades) + 1e-3
    dp = lam * b[1:] * v[1:] + rng.normal(0.0, noise, n_trades - 1)
    return _tape(rng, PRICE0 + np.concatenate([[0.0], np.cumsum(dp)]), b, amount=v)


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=n)


def _tape(rng, price, side, amount=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trades at TRADES_PER_MINUTE per minute (one per slot, jittered inside it) and their bars."""
    n = len(price)
    slot = 60_000_000_000 // TRADES_PER_MINUTE
    ns = START.value + np.arange(n) * slot + rng.integers(0, slot, n)
    if amount is None:
        amount = rng.exponential(1.0, n) + 1e-3
    trades = pd.DataFrame({
        "ts": pd.to_datetime(ns, unit="ns", utc=True),
        "price": price, "amount": amount, "side": side.astype(np.int64),
    })
    return trades_to_minute_bars(trades), trades


def trades_to_minute_bars(trades: pd.DataFrame, freq: str = "1min") -> pd.DataFrame:
    """OHLCV bars (ts = open time) of the minutes with trades, with buy_volume and trade_count.

    ``freq`` gives shorter bars where the data is short (the ~4 minutes with quotes).
    """
    minute = trades["ts"].dt.floor(freq).rename("ts")
    buy = trades["amount"].where(trades["side"] > 0, 0.0)
    g = trades.groupby(minute, sort=True)
    bars = pd.DataFrame({
        "open": g["price"].first(), "high": g["price"].max(), "low": g["price"].min(),
        "close": g["price"].last(), "volume": g["amount"].sum(),
        "buy_volume": buy.groupby(minute, sort=True).sum(), "trade_count": g.size(),
    })
    return bars.reset_index()


def load_binance_trades() -> pd.DataFrame:
    """The 9,999 real Binance BTCUSDT trades (Tardis): ts UTC, price, amount (BTC), side ±1."""
    raw = pd.read_csv(BINANCE_TRADES, float_precision="round_trip")
    return pd.DataFrame({
        "ts": pd.to_datetime(raw["timestamp"], unit="us", utc=True),
        "price": raw["price"], "amount": raw["amount"],
        "side": np.where(raw["side"] == "buy", 1, -1),
    })


def load_binance_quotes() -> pd.DataFrame:
    """The 9,999 real Binance BTCUSDT best bid/ask quotes (Tardis), first ~4 minutes of the day."""
    raw = pd.read_csv(BINANCE_QUOTES, float_precision="round_trip")
    return pd.DataFrame({
        "ts": pd.to_datetime(raw["timestamp"], unit="us", utc=True),
        "bid": raw["bid_price"], "ask": raw["ask_price"],
        "bid_size": raw["bid_amount"], "ask_size": raw["ask_amount"],
    })


def load_ftx_bars() -> pd.DataFrame:
    """The 45,031 FTX BTC-PERP 1-minute bars; ``volume`` is in quote currency (USD)."""
    raw = pd.read_csv(FTX_BARS, float_precision="round_trip")
    bars = raw[["open", "high", "low", "close", "volume"]].copy()
    bars.insert(0, "ts", pd.to_datetime(raw["timestamp"], utc=True))
    return bars

"""Bars built from trades, for a source that holds a symbol's trades but no bars (a trades-only
export), so that everything downstream of bars runs on it.

The trades are validated first (``validation.prepare``), so a bad trade is reported against its
own file and row, not against a bar. Bars come from ``kernels.bars.trades_to_bars``: a bar opens
at ``floor(ts / interval)``, volume is the sum of amounts (base currency), ``buy_volume`` the
buyer-initiated part, ``trade_count`` the number of trades, and **bars exist only for intervals
that hold trades** (no empty or forward-filled bars). Each bar's provenance is the file and row
of its first trade.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from ..kernels.bars import trades_to_bars
from .tables import BARS, SOURCE_FILE, SOURCE_ROW, conform
from .validation import ValidationReport, prepare

DEFAULT_INTERVAL = "1min"


def bar_nanos(interval: str) -> int:
    """The length of a bar interval given as a pandas offset ("1min", "5min", "1h", "1D")."""
    try:
        with warnings.catch_warnings():  # "1M": a deprecation warning before our error
            warnings.simplefilter("ignore", FutureWarning)
            nanos = int(pd.Timedelta(to_offset(interval)).value)
    except (ValueError, TypeError):
        nanos = 0
    if nanos <= 0:
        raise ValueError(f"bar interval {interval!r} (--bar-interval, BOT4_BAR_INTERVAL): expected "
                         "a fixed pandas offset such as 1min, 5min, 1h or 1D")
    return nanos


def trades_window(start: pd.Timestamp, end: pd.Timestamp,
                  interval: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The trades that make the bars opening in [start, end): whole bars only, so a window
    boundary that is not on the bar grid never cuts a bar into two different versions."""
    nanos = bar_nanos(interval)

    def ceil(t: pd.Timestamp) -> pd.Timestamp:
        return pd.Timestamp(-(-t.value // nanos) * nanos, tz="UTC")

    return ceil(start), ceil(end)


def first_bar(ts: pd.Timestamp, interval: str) -> pd.Timestamp:
    """The open time of the bar holding a trade at ``ts``."""
    nanos = bar_nanos(interval)
    return pd.Timestamp(ts.value // nanos * nanos, tz="UTC")


def bars_from_trades(trades: pd.DataFrame,
                     interval: str = DEFAULT_INTERVAL) -> tuple[pd.DataFrame, ValidationReport]:
    """One symbol's trades (normalised, with provenance, as a source loads them) to bars of
    ``interval``, and the trades' validation report (rows used, duplicates dropped).

    Raises ``DataError`` naming the trade's file, row and rule if the trades fail validation.
    """
    nanos = bar_nanos(interval)
    if trades["symbol"].nunique() > 1:
        raise ValueError(f"bars_from_trades takes one symbol's trades, got "
                         f"{sorted(trades['symbol'].unique())}")
    frame, report = prepare(trades, "trades")
    report.raise_for_errors()
    ts = frame["ts"].to_numpy("datetime64[ns]").view(np.int64)
    out = trades_to_bars(ts, frame["price"].to_numpy(), frame["amount"].to_numpy(),
                         frame["side"].to_numpy(), nanos)
    first = np.searchsorted(ts, out["ts"], side="left")  # a bar opens at its first trade's floor
    bars = pd.DataFrame({
        "symbol": frame["symbol"].to_numpy()[first],
        "ts": pd.to_datetime(out["ts"], utc=True),
        **{k: out[k] for k in ("open", "high", "low", "close", "volume", "buy_volume")},
        "trade_count": out["count"],
        SOURCE_FILE: frame[SOURCE_FILE].to_numpy()[first],
        SOURCE_ROW: frame[SOURCE_ROW].to_numpy()[first],
    })
    return conform(BARS, bars), report

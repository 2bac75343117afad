"""The stored feature table (``features.microstructure_features``): one row per bar with symbol,
ts, the 21 ``FEATURES`` and the 3 ``QUOTE_FEATURES`` (NaN where there are no quotes), and the
fewest bars that give every fixed-window feature a value."""

from __future__ import annotations

import pandas as pd

from ..ml.insufficient import InsufficientData
from .microstructure import FEATURES, QUOTE_FEATURES, Windows, microstructure_features

COLUMNS = ("symbol", "ts", *FEATURES, *QUOTE_FEATURES)
STATUSES = ("exact", "approximate", "unavailable")


def minimum_bars(**windows) -> int:
    """Bars until every fixed-window feature has a value: the regression window's W returns
    (W + 1 bars), the Roll measure's W lagged pairs (bar window + 2), the trade window. The
    day-long VPIN and bulk-volume-classification windows are not counted (VPIN's buckets fill
    with volume, not bars): short tapes keep their other features, those stay NaN."""
    w = Windows(**windows)
    return max(w.regression_window + 1, w.bar_window + 2, w.trade_window)


def feature_table(bars: pd.DataFrame, trades: pd.DataFrame | None = None,
                  quotes: pd.DataFrame | None = None, *, symbol: str, volume_unit: str = "base",
                  interval=None, **windows) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stored frame, availability) for ``symbol``'s bars; trades and quotes may be None or
    empty (quotes are used only with trades). Raises ``InsufficientData`` below
    ``minimum_bars``."""
    need = minimum_bars(**windows)
    if len(bars) < need:
        raise InsufficientData("the microstructure feature table", symbol, need, len(bars),
                               "bars", "the longest fixed window must fill once",
                               noun="microstructure features")
    trades = trades if trades is not None and not trades.empty else None
    quotes = quotes if trades is not None and quotes is not None and not quotes.empty else None
    frame = microstructure_features(bars, trades, quotes, volume_unit=volume_unit,
                                    interval=interval, **windows)
    for name in QUOTE_FEATURES:
        if name not in frame:
            frame[name] = float("nan")
    stored = frame[list(FEATURES + QUOTE_FEATURES)].copy()
    stored.attrs.clear()  # availability is returned on its own, not carried into the warehouse
    stored.insert(0, "ts", bars["ts"].array if "ts" in bars else bars.index)
    stored.insert(0, "symbol", pd.array([symbol] * len(stored), dtype="string"))
    return stored.reset_index(drop=True), frame.attrs["availability"]


def availability_counts(availability: pd.DataFrame) -> dict[str, int]:
    """How many features are exact, approximate and unavailable."""
    counts = availability["status"].value_counts()
    return {status: int(counts.get(status, 0)) for status in STATUSES}

"""Pandera models of the normalised market tables. Check names are the rule names that errors,
asset checks and the README use, so a failure reads the same wherever it is reported.

Rows are validated after exact duplicates are removed and before anything is sorted: an
out-of-order row is an error in the file, not something to be quietly repaired.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

UTC_US = {"unit": "us", "tz": "UTC"}


def _ordered(df: pd.DataFrame, column: str, *, strict: bool) -> pd.Series:
    previous = df.groupby("symbol", sort=False)[column].shift()
    ok = df[column] > previous if strict else df[column] >= previous
    return ok | previous.isna()


def _finite_positive(s: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(s.to_numpy(np.float64, na_value=np.nan)), index=s.index) & (s > 0)


def _finite_non_negative(s: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(s.to_numpy(np.float64, na_value=np.nan)), index=s.index) & (s >= 0)


class _Market(pa.DataFrameModel):
    symbol: Series[pd.StringDtype] = pa.Field(str_length={"min_value": 1})
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=UTC_US)

    @pa.check("ts", name="ts_not_in_future")
    def ts_not_in_future(cls, ts: pd.Series) -> pd.Series:
        return ts <= pd.Timestamp.now(tz="UTC")

    class Config:
        strict = True
        ordered = True


class BarsModel(_Market):
    """market.bars: one row per bar, ``ts`` the bar's open time."""

    open: Series[float] = pa.Field(nullable=True)
    high: Series[float] = pa.Field(nullable=True)
    low: Series[float] = pa.Field(nullable=True)
    close: Series[float] = pa.Field(nullable=True)
    volume: Series[float] = pa.Field(nullable=True)
    buy_volume: Series[float] = pa.Field(nullable=True)
    trade_count: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=0)

    @pa.check("open", "high", "low", "close", name="price_finite_positive", ignore_na=False)
    def price_finite_positive(cls, s: pd.Series) -> pd.Series:
        return _finite_positive(s)

    @pa.check("volume", name="volume_non_negative", ignore_na=False)
    def volume_non_negative(cls, s: pd.Series) -> pd.Series:
        return _finite_non_negative(s)

    @pa.dataframe_check(name="high_ge_low")
    def high_ge_low(cls, df: pd.DataFrame) -> pd.Series:
        return ~(df["high"] < df["low"])

    @pa.dataframe_check(name="open_close_in_range")
    def open_close_in_range(cls, df: pd.DataFrame) -> pd.Series:
        lo, hi = df["low"], df["high"]
        inside = lambda x: ~((x < lo) | (x > hi))
        return inside(df["open"]) & inside(df["close"])

    @pa.dataframe_check(name="buy_volume_le_volume")
    def buy_volume_le_volume(cls, df: pd.DataFrame) -> pd.Series:
        buy = df["buy_volume"]
        return buy.isna() | ((buy >= 0) & (buy <= df["volume"]))

    @pa.dataframe_check(name="ts_strictly_increasing")
    def ts_strictly_increasing(cls, df: pd.DataFrame) -> pd.Series:
        return _ordered(df, "ts", strict=True)


class TradesModel(_Market):
    """market.trades: one row per trade; ``side`` is the aggressor, +1 buy, -1 sell."""

    price: Series[float] = pa.Field(nullable=True)
    amount: Series[float] = pa.Field(nullable=True)
    side: Series[np.int8]
    trade_id: Series[np.int64]

    @pa.check("side", name="side_in_set")
    def side_in_set(cls, s: pd.Series) -> pd.Series:
        return s.isin([-1, 1])

    @pa.check("price", name="price_finite_positive", ignore_na=False)
    def price_finite_positive(cls, s: pd.Series) -> pd.Series:
        return _finite_positive(s)

    @pa.check("amount", name="amount_finite_positive", ignore_na=False)
    def amount_finite_positive(cls, s: pd.Series) -> pd.Series:
        return _finite_positive(s)

    @pa.dataframe_check(name="trade_id_strictly_increasing")
    def trade_id_strictly_increasing(cls, df: pd.DataFrame) -> pd.Series:
        return _ordered(df, "trade_id", strict=True)

    @pa.dataframe_check(name="ts_non_decreasing")
    def ts_non_decreasing(cls, df: pd.DataFrame) -> pd.Series:
        return _ordered(df, "ts", strict=False)


class QuotesModel(_Market):
    """market.quotes: best bid and ask after each book update."""

    bid: Series[float] = pa.Field(nullable=True)
    ask: Series[float] = pa.Field(nullable=True)
    bid_size: Series[float] = pa.Field(nullable=True)
    ask_size: Series[float] = pa.Field(nullable=True)

    @pa.check("bid", "ask", name="price_finite_positive", ignore_na=False)
    def price_finite_positive(cls, s: pd.Series) -> pd.Series:
        return _finite_positive(s)

    @pa.check("bid_size", "ask_size", name="size_non_negative", ignore_na=False)
    def size_non_negative(cls, s: pd.Series) -> pd.Series:
        return _finite_non_negative(s)

    @pa.dataframe_check(name="bid_le_ask")
    def bid_le_ask(cls, df: pd.DataFrame) -> pd.Series:
        return ~(df["bid"] > df["ask"])

    @pa.dataframe_check(name="ts_non_decreasing")
    def ts_non_decreasing(cls, df: pd.DataFrame) -> pd.Series:
        return _ordered(df, "ts", strict=False)


MODELS: dict[str, type[_Market]] = {"bars": BarsModel, "trades": TradesModel, "quotes": QuotesModel}

# pandera's own names for structural failures, translated to the project's rule names
PANDERA_RULES = {
    "column_in_dataframe": "required_columns",
    "column_in_schema": "required_columns",
    "column_ordered": "required_columns",
    "not_nullable": "not_null",
    "greater_than_or_equal_to(0)": "trade_count_non_negative",
}

"""Pandera models of the normalised market tables. Check names are the rule names that errors,
asset checks and the README use, so a failure reads the same wherever it is reported.

Rows are validated after exact duplicates are removed and before anything is sorted: an
out-of-order row is an error in the file, not something to be quietly repaired.

Plausibility (``price_plausible``, ``volume_plausible``): a finite positive value can still be
garbage that overflows to inf downstream (1e308 squared) or is a subnormal float (1e-320, a lost
exponent). Such values are refused: prices must be normal floats no larger than ``MAX_MAGNITUDE``
and within a factor ``BOT4_PLAUSIBILITY_RATIO`` (default 1e6) of the median of their column for
their symbol in the frame validated; sizes (volume, buy volume, trade amount, quote sizes) must be
zero or such a float, and at most that factor above their median. The factor is wide on purpose:
it catches values no market printed, not crashes (LUNA fell by 1e5 in a month).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

UTC_NS = {"unit": "ns", "tz": "UTC"}
TINY = float(np.finfo(np.float64).tiny)  # the smallest positive normal float, 2.2e-308
MAX_MAGNITUDE = 1e18  # no price or size is this large, and products of two stay finite
RATIO_ENV = "BOT4_PLAUSIBILITY_RATIO"
DEFAULT_RATIO = 1e6
# per table: rule -> the columns it covers
PLAUSIBLE = {
    "bars": {"price_plausible": ("open", "high", "low", "close"),
             "volume_plausible": ("volume", "buy_volume")},
    "trades": {"price_plausible": ("price",), "volume_plausible": ("amount",)},
    "quotes": {"price_plausible": ("bid", "ask"), "volume_plausible": ("bid_size", "ask_size")},
}


def plausibility_ratio() -> float:
    """How far from its median a price (either way) or a size (upwards) may lie."""
    text = os.environ.get(RATIO_ENV, "").strip()
    if not text:
        return DEFAULT_RATIO
    try:
        ratio = float(text)
    except ValueError:
        ratio = float("nan")
    if not (np.isfinite(ratio) and ratio > 1):
        raise ValueError(f"{RATIO_ENV} must be a finite number above 1, not {text!r}")
    return ratio


def _judged(values: pd.Series) -> np.ndarray:
    """The values plausibility judges: finite and positive (the other rules own the rest)."""
    array = values.to_numpy(np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return np.isfinite(array) & (array > 0)


def plausible_bounds(df: pd.DataFrame, rule: str, column: str) -> dict[str, tuple[float, float]]:
    """Per symbol, the [low, high] a finite positive value of ``column`` must lie in."""
    judged = _judged(df[column])
    if not judged.any():
        return {}
    ratio = plausibility_ratio()
    medians = df[column][judged].astype(np.float64).groupby(df["symbol"][judged]).median()
    bounds = {}
    for symbol, median in medians.items():
        low = max(TINY, median / ratio) if rule == "price_plausible" else TINY
        bounds[str(symbol)] = (low, min(MAX_MAGNITUDE, median * ratio))
    return bounds


def implausible(df: pd.DataFrame, rule: str, column: str) -> np.ndarray:
    """True where a finite positive value of ``column`` lies outside its symbol's bounds."""
    bounds = plausible_bounds(df, rule, column)
    if not bounds:
        return np.zeros(len(df), dtype=bool)
    symbols = df["symbol"].astype(object)
    low = symbols.map({s: b[0] for s, b in bounds.items()}).to_numpy(np.float64, na_value=np.nan)
    high = symbols.map({s: b[1] for s, b in bounds.items()}).to_numpy(np.float64, na_value=np.nan)
    values = df[column].to_numpy(np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return _judged(df[column]) & ~((values >= low) & (values <= high))


def explain_plausible(df: pd.DataFrame, table: str, rule: str, position: int) -> str:
    """Why the row at ``position`` breaks ``rule``: its first implausible column and bound."""
    symbol = df["symbol"].iat[position]
    for column in PLAUSIBLE[table][rule]:
        if column not in df or not _judged(df[column].iloc[[position]])[0]:
            continue
        low, high = plausible_bounds(df, rule, column)[str(symbol)]
        value = float(df[column].iat[position])
        if low <= value <= high:
            continue
        if value < TINY:
            why = f"a subnormal float, below the smallest normal one ({TINY!r})"
        elif value > MAX_MAGNITUDE:
            why = f"above {MAX_MAGNITUDE:g}, larger than any price or size"
        else:
            same = _judged(df[column]) & (df["symbol"] == symbol).to_numpy(bool, na_value=False)
            median = float(df[column][same].astype(np.float64).median())
            away = "away from" if rule == "price_plausible" else "above"
            why = (f"{'below' if value < low else 'above'} {low if value < low else high:.6g}, "
                   f"more than {plausibility_ratio():g} times {away} the median {median:.6g} of "
                   f"{symbol}'s {column} ({RATIO_ENV})")
        return f"column {column}: {value!r} is {why}"
    return f"{rule} broken"


def _ordered(df: pd.DataFrame, column: str, *, strict: bool) -> pd.Series:
    values = df[column]
    if pd.api.types.is_integer_dtype(values.dtype):
        # shift() turns int64 into float64, where ids past 2^53 compare equal to their neighbours
        values = values.astype("Int64")
    previous = values.groupby(df["symbol"], sort=False).shift()
    ok = values > previous if strict else values >= previous
    return (ok | previous.isna()).fillna(False).astype(bool)


def _finite_positive(s: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(s.to_numpy(np.float64, na_value=np.nan)), index=s.index) & (s > 0)


def _finite_non_negative(s: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(s.to_numpy(np.float64, na_value=np.nan)), index=s.index) & (s >= 0)


def _plausible(df: pd.DataFrame, table: str, rule: str) -> pd.Series:
    bad = np.zeros(len(df), dtype=bool)
    for column in PLAUSIBLE[table][rule]:
        bad |= implausible(df, rule, column)
    return pd.Series(~bad, index=df.index)


class _Market(pa.DataFrameModel):
    symbol: Series[pd.StringDtype] = pa.Field(str_length={"min_value": 1})
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=UTC_NS)

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

    @pa.dataframe_check(name="price_plausible")
    def price_plausible(cls, df: pd.DataFrame) -> pd.Series:
        return _plausible(df, "bars", "price_plausible")

    @pa.dataframe_check(name="volume_plausible")
    def volume_plausible(cls, df: pd.DataFrame) -> pd.Series:
        return _plausible(df, "bars", "volume_plausible")

    @pa.dataframe_check(name="high_ge_low")
    def high_ge_low(cls, df: pd.DataFrame) -> pd.Series:
        return ~(df["high"] < df["low"])

    @pa.dataframe_check(name="open_close_in_range")
    def open_close_in_range(cls, df: pd.DataFrame) -> pd.Series:
        lo, hi = df["low"], df["high"]

        def inside(x: pd.Series) -> pd.Series:
            return ~((x < lo) | (x > hi))

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

    @pa.dataframe_check(name="price_plausible")
    def price_plausible(cls, df: pd.DataFrame) -> pd.Series:
        return _plausible(df, "trades", "price_plausible")

    @pa.dataframe_check(name="volume_plausible")
    def volume_plausible(cls, df: pd.DataFrame) -> pd.Series:
        return _plausible(df, "trades", "volume_plausible")

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

    @pa.dataframe_check(name="price_plausible")
    def price_plausible(cls, df: pd.DataFrame) -> pd.Series:
        return _plausible(df, "quotes", "price_plausible")

    @pa.dataframe_check(name="volume_plausible")
    def volume_plausible(cls, df: pd.DataFrame) -> pd.Series:
        return _plausible(df, "quotes", "volume_plausible")

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

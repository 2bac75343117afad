"""21 microstructure features per bar (13 from trades, 8 from bars), batch and incremental.

Definitions, windows and availability rules: ``docs/microstructure.md``. Both entry points run the
same compiled step (``kernels/microstructure.py``), so ``MicrostructureState`` fed bar by bar
returns exactly the batch frame's rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np
import pandas as pd

from ..kernels import microstructure as k

FEATURES: tuple[str, ...] = (
    "signed_volume_imbalance", "trade_count_imbalance", "kyle_lambda", "amihud_lambda",
    "hasbrouck_lambda", "vpin", "huang_stoll_spread", "huang_stoll_adverse_share",
    "roll_spread_tick", "trade_intensity", "mean_trade_size", "vwap_deviation", "sign_autocorr",
    "roll_measure", "roll_impact", "corwin_schultz_spread", "becker_parkinson_vol",
    "kyle_lambda_bar", "amihud_illiquidity", "vpin_bvc", "parkinson_vol",
)
QUOTE_FEATURES: tuple[str, ...] = ("effective_spread", "realized_spread", "price_impact")
TRADE_ONLY = ("trade_count_imbalance", "kyle_lambda", "hasbrouck_lambda", "huang_stoll_spread",
              "huang_stoll_adverse_share", "roll_spread_tick", "vwap_deviation", "sign_autocorr")
BAR_EXACT = ("roll_measure", "corwin_schultz_spread", "becker_parkinson_vol", "kyle_lambda_bar",
             "vpin_bvc", "parkinson_vol")
DV_FEATURES = ("amihud_lambda", "roll_impact", "amihud_illiquidity")
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Windows:
    """Window lengths in bars (docs/microstructure.md, "Default windows")."""

    trade_window: int = 15
    regression_window: int = 60
    bar_window: int = 20
    kyle_min_trades: int = 20
    vpin_buckets: int = 50
    vpin_volume_window: int | None = None  # None: bars in 24 h, at least 20
    bvc_sigma_window: int | None = None  # None: bars in 24 h, at least 20
    realized_spread_delay: str = "5s"

    @classmethod
    def of(cls, interval: pd.Timedelta, **overrides) -> Windows:
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown window argument(s) {sorted(unknown)}; "
                            f"known: {', '.join(f.name for f in fields(cls))}")
        windows = cls(**overrides)
        day = max(20, DAY // interval)
        windows = replace(
            windows,
            vpin_volume_window=windows.vpin_volume_window or day,
            bvc_sigma_window=windows.bvc_sigma_window or day,
        )
        for f in fields(windows):
            value = getattr(windows, f.name)
            if isinstance(value, int) and value < (2 if f.name != "kyle_min_trades" else 1):
                raise ValueError(f"{f.name} must be at least 2, got {value}")
        return windows


@dataclass(frozen=True)
class Inputs:
    """What the data supports, which decides how each feature is computed."""

    has_trades: bool
    has_buy_volume: bool = False
    has_trade_count: bool = False
    volume_unit: str = "base"

    def __post_init__(self):
        if self.volume_unit not in ("base", "quote"):
            raise ValueError(f"volume_unit must be 'base' or 'quote', not {self.volume_unit!r}")

    def config(self, w: Windows) -> np.ndarray:
        cfg = np.zeros(k.N_CONFIG, dtype=np.int64)
        cfg[[k.C_TRADE_W, k.C_REG_W, k.C_BAR_W, k.C_KYLE_MIN, k.C_BUCKETS, k.C_VOL_W,
             k.C_SIGMA_W]] = [
            w.trade_window, w.regression_window, w.bar_window, w.kyle_min_trades,
            w.vpin_buckets, w.vpin_volume_window, w.bvc_sigma_window]
        if self.has_trades:
            cfg[[k.C_TRADES, k.C_T1_MODE, k.C_T6_MODE, k.C_COUNT_MODE, k.C_DV_MODE]] = [
                1, k.FROM_TRADES, k.FROM_TRADES, k.FROM_TRADES, k.FROM_TRADES]
            return cfg
        cfg[k.C_T1_MODE] = k.FROM_BUY_VOLUME if self.has_buy_volume else k.FROM_BVC
        cfg[k.C_T6_MODE] = k.FROM_BUY_VOLUME if self.has_buy_volume else k.NONE
        cfg[k.C_COUNT_MODE] = k.FROM_COUNT_COLUMN if self.has_trade_count else k.NONE
        cfg[k.C_DV_MODE] = (k.DV_QUOTE_VOLUME if self.volume_unit == "quote"
                            else k.DV_CLOSE_TIMES_VOLUME)
        return cfg

    def availability(self) -> pd.DataFrame:
        return _availability(self).copy()


@lru_cache(maxsize=32)
def _availability(inputs: Inputs) -> pd.DataFrame:
    """Per feature: status and reason for these inputs (docs/microstructure.md)."""
    rows = {name: ("exact", "bar definition (OHLCV)") for name in BAR_EXACT}
    if inputs.has_trades:
        rows.update({name: ("exact", "from trades with aggressor side") for name in FEATURES
                     if name not in BAR_EXACT})
    else:
        rows.update({name: ("unavailable", "needs trades (prices and aggressor sides)")
                     for name in TRADE_ONLY})
        rows["signed_volume_imbalance"] = (
            ("exact", "from the bars' taker buy volume") if inputs.has_buy_volume else
            ("approximate", "bulk volume classification: V(2Φ(Δc/σ) − 1)"))
        rows["vpin"] = (
            ("approximate", "bar-level taker buy volume, split pro rata at bucket boundaries")
            if inputs.has_buy_volume else
            ("unavailable", "needs trades or taker buy volume; see vpin_bvc"))
        for name in ("trade_intensity", "mean_trade_size"):
            rows[name] = (("exact", "from the bars' trade_count") if inputs.has_trade_count else
                          ("unavailable", "needs trades or a trade_count column"))
    for name in DV_FEATURES:
        status, why = rows.get(name, ("exact", ""))
        if inputs.has_trades:
            why = "dollar volume Σpv from trades"
        elif inputs.volume_unit == "quote":
            why = "dollar volume = quote-currency volume"
        else:
            status, why = "approximate", "dollar volume ≈ close × base volume"
        rows[name] = (status, why)
    return pd.DataFrame([(n, *rows[n]) for n in FEATURES], columns=["feature", "status", "reason"])


class _Engine:
    """The kernel's state arrays for one stream of bars."""

    def __init__(self, inputs: Inputs, windows: Windows):
        w = windows
        self.cfg = inputs.config(w)
        self.fs = np.zeros(k.N_FSTATE)
        self.ist = np.zeros(k.N_ISTATE, dtype=np.int64)
        self.rings = []
        for width, cols in ((w.trade_window, k.N_TRADE_COLS), (w.regression_window, k.N_REG_COLS),
                            (w.bar_window, k.N_BAR_COLS), (w.bvc_sigma_window, 2),
                            (w.vpin_volume_window, 2)):
            self.rings += [np.zeros((width, cols)), np.zeros(cols), np.zeros(2, dtype=np.int64)]
        self.vp_cur = np.zeros((2, 3))
        self.vp_buf = np.zeros((2, w.vpin_buckets, 2))
        self.vp_sum = np.zeros((2, 2))
        self.vp_meta = np.zeros((2, 2), dtype=np.int64)
        self.rows = np.zeros(k.SCRATCH_SHAPE)

    def arrays(self) -> tuple:
        return (self.cfg, self.fs, self.ist, *self.rings, self.vp_cur, self.vp_buf, self.vp_sum,
                self.vp_meta, self.rows)


def infer_interval(ts) -> pd.Timedelta:
    """The bar interval: the median gap between bar open times (datetimes or int64 ns)."""
    ns = np.asarray(ts, dtype=np.int64) if not isinstance(ts, pd.Series) else _ns(ts)
    if len(ns) < 2:
        raise ValueError("cannot infer the bar interval from fewer than 2 bars; pass interval=")
    return pd.Timedelta(int(np.median(np.diff(ns))), unit="ns")


def _bar_times(bars: pd.DataFrame) -> pd.Series:
    if "ts" in bars:
        return _utc(bars["ts"])
    if isinstance(bars.index, pd.DatetimeIndex):
        return _utc(pd.Series(bars.index))
    raise ValueError("bars need a 'ts' column (bar open time) or a DatetimeIndex")


def _utc(ts: pd.Series) -> pd.Series:
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts
    return pd.to_datetime(ts, utc=True, cache=False)


def _ns(ts: pd.Series) -> np.ndarray:
    naive = _utc(ts).dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.to_numpy("datetime64[ns]").view(np.int64)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        raise ValueError(f"bars need a '{name}' column")
    return frame[name].to_numpy(np.float64, na_value=np.nan)


def _complete(frame: pd.DataFrame, name: str) -> bool:
    return name in frame and len(frame) > 0 and bool(frame[name].notna().all())


def _assign(bar_ns: np.ndarray, interval_ns: int, trades: pd.DataFrame):
    """Kept trades (those inside a bar) as arrays, and each bar's [start, end) into them."""
    missing = {"ts", "price", "amount", "side"} - set(trades.columns)
    if missing:
        raise ValueError(f"trades need column(s) {sorted(missing)}")
    t_ns = _ns(trades["ts"])
    if len(t_ns) and (np.diff(t_ns) < 0).any():
        raise ValueError("trades must be sorted by ts")
    bar = np.searchsorted(bar_ns, t_ns, side="right") - 1
    keep = bar >= 0
    keep[keep] = t_ns[keep] < bar_ns[bar[keep]] + interval_ns
    bar = bar[keep]
    bars = np.arange(len(bar_ns))
    starts = np.searchsorted(bar, bars, side="left")
    ends = np.searchsorted(bar, bars, side="right")
    arrays = (trades["price"].to_numpy(np.float64)[keep],
              trades["amount"].to_numpy(np.float64)[keep],
              trades["side"].to_numpy(np.float64)[keep], t_ns[keep])
    return arrays, starts, ends


def microstructure_availability(bars: pd.DataFrame, trades: pd.DataFrame | None = None, *,
                                volume_unit: str = "base") -> pd.DataFrame:
    """Per feature: exact / approximate / unavailable, and why, for this input."""
    return _inputs(bars, trades, volume_unit).availability()


def _inputs(bars, trades, volume_unit) -> Inputs:
    return Inputs(trades is not None, _complete(bars, "buy_volume"), _complete(bars, "trade_count"),
                  volume_unit)


def microstructure_features(bars: pd.DataFrame, trades: pd.DataFrame | None = None,
                            quotes: pd.DataFrame | None = None, *, volume_unit: str = "base",
                            interval=None, **windows) -> pd.DataFrame:
    """One row per bar with the 21 ``FEATURES`` (plus ``QUOTE_FEATURES`` when quotes are given).

    Strictly causal: a bar's values use data up to its close. ``frame.attrs["availability"]``
    says, per feature, whether it is exact, approximate or unavailable for this input, and why.
    """
    bar_ns = _ns(_bar_times(bars))
    if (np.diff(bar_ns) <= 0).any():
        raise ValueError("bars must be sorted by ts, without repeated times")
    step = pd.Timedelta(interval) if interval is not None else infer_interval(bar_ns)
    w = Windows.of(step, **windows)
    inputs = _inputs(bars, trades, volume_unit)
    engine = _Engine(inputs, w)
    n = len(bars)
    if trades is not None:
        (price, amount, side, t_ns), starts, ends = _assign(bar_ns, step.value, trades)
    else:
        price = amount = side = np.zeros(0)
        t_ns = np.zeros(0, dtype=np.int64)
        starts = ends = np.zeros(n, dtype=np.int64)
    out = np.empty((n, len(FEATURES)))
    values = np.full((n, 6), np.nan)
    for j, name in enumerate(("high", "low", "close", "volume", "buy_volume", "trade_count")):
        if j < 4 or name in bars:
            values[:, j] = _column(bars, name)
    k.microstructure_run(*engine.arrays(), values, price, amount, side, starts, ends, out)
    frame = pd.DataFrame(out, columns=list(FEATURES), index=bars.index)
    if quotes is not None:
        if trades is None:
            raise ValueError("quote spreads need trades as well as quotes")
        spreads = quote_spreads(bar_ns + step.value, starts, ends, price, side, t_ns, quotes,
                                w.trade_window, pd.Timedelta(w.realized_spread_delay).value)
        for name, values in zip(QUOTE_FEATURES, spreads, strict=True):
            frame[name] = values
    frame.attrs["availability"] = inputs.availability()
    frame.attrs["windows"] = w
    return frame


def quote_spreads(bar_close_ns, starts, ends, price, side, t_ns, quotes, window, delay_ns):
    """Effective, realized and price-impact spreads per bar (docs/microstructure.md)."""
    q_ns = _ns(quotes["ts"])
    mid = (quotes["bid"].to_numpy(np.float64) + quotes["ask"].to_numpy(np.float64)) / 2.0
    at = np.searchsorted(q_ns, t_ns, side="left") - 1  # strictly before: the book traded against
    later = np.searchsorted(q_ns, t_ns + delay_ns, side="right") - 1
    known = at >= 0
    m0 = np.where(known, mid[np.maximum(at, 0)], np.nan)
    m1 = np.where(known, mid[np.maximum(later, 0)], np.nan)
    es = np.where(known, 2 * side * (price - m0) / m0, 0.0)
    rs = np.where(known, 2 * side * (price - m1) / m0, 0.0)
    # first bar whose close is at or after t + delay: from then on the later mid is known
    ready = np.searchsorted(bar_close_ns, t_ns + delay_ns, side="left")
    cum = [np.concatenate([[0.0], np.cumsum(x)]) for x in (es, rs, es - rs, known.astype(float))]
    n = len(bar_close_ns)
    out = np.full((3, n), np.nan)
    for tau in range(window - 1, n):
        lo, hi = starts[tau - window + 1], ends[tau]
        n_es = cum[3][hi] - cum[3][lo]
        if n_es > 0:
            out[0, tau] = (cum[0][hi] - cum[0][lo]) / n_es
        ok_hi = min(hi, max(lo, int(np.searchsorted(ready, tau, side="right"))))
        n_rs = cum[3][ok_hi] - cum[3][lo]
        if n_rs > 0:
            out[1, tau] = (cum[1][ok_hi] - cum[1][lo]) / n_rs
            out[2, tau] = (cum[2][ok_hi] - cum[2][lo]) / n_rs
    return out


class MicrostructureState:
    """The features of one bar at a time, for the online decision path.

    Memory is O(window): ring buffers of per-bar sums and the last ``vpin_buckets`` buckets.
    ``update`` returns what ``microstructure_features`` would return for that bar as the last row.
    """

    def __init__(self, *, interval, has_trades: bool, has_buy_volume: bool = False,
                 has_trade_count: bool = False, volume_unit: str = "base", **windows):
        self.interval = pd.Timedelta(interval)
        self.windows = Windows.of(self.interval, **windows)
        self.inputs = Inputs(has_trades, has_buy_volume, has_trade_count, volume_unit)
        self._engine = _Engine(self.inputs, self.windows)
        self._arrays = self._engine.arrays()
        self._bar = np.empty((1, 6))
        self._span = np.zeros(2, dtype=np.int64)  # [0, number of trades]
        self._out = np.empty((1, len(FEATURES)))
        self._empty = np.zeros(0)

    @property
    def availability(self) -> pd.DataFrame:
        return self.inputs.availability()

    def update_arrays(self, high: float, low: float, close: float, volume: float,
                      buy_volume: float = np.nan, trade_count: float = np.nan,
                      price: np.ndarray | None = None, amount: np.ndarray | None = None,
                      side: np.ndarray | None = None) -> np.ndarray:
        """The fast path: plain numbers and the bar's trade arrays; returns the feature vector
        (a buffer reused by the next call: copy it to keep it)."""
        if price is None:
            price = amount = side = self._empty
        row = self._bar[0]
        row[0], row[1], row[2], row[3], row[4], row[5] = (high, low, close, volume, buy_volume,
                                                          trade_count)
        self._span[1] = len(price)
        k.microstructure_run(*self._arrays, self._bar, price, amount, side, self._span[:1],
                             self._span[1:], self._out)
        return self._out[0]

    def update(self, bar: Mapping,
               trades: pd.DataFrame | Mapping | None = None) -> dict[str, float]:
        """One bar (a mapping with high, low, close, volume[, buy_volume, trade_count]) and the
        trades inside it (columns price, amount, side) -> {feature: value}."""
        if self.inputs.has_trades and trades is None:
            raise ValueError("this state was built with has_trades=True: pass the bar's trades "
                             "(an empty frame for a bar without trades)")
        arrays = {}
        if trades is not None:
            arrays = {c: np.asarray(trades[c], dtype=np.float64)
                      for c in ("price", "amount", "side")}
        values = self.update_arrays(
            float(bar["high"]), float(bar["low"]), float(bar["close"]), float(bar["volume"]),
            _number(bar.get("buy_volume")), _number(bar.get("trade_count")), **arrays)
        return dict(zip(FEATURES, values.tolist(), strict=True))


def _number(value) -> float:
    return np.nan if value is None or pd.isna(value) else float(value)

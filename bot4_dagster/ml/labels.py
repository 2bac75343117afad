"""Triple-barrier labels and their sample weights (López de Prado, AFML ch. 3–4).

An event starts at every bar i (time t0) with a volatility forecast and a full horizon ahead:
- horizontal barriers at returns +upper·σ_i and −lower·σ_i, where σ_i is the volatility of the
  next bar's return as known at the close of bar i (the GARCH one-step forecast);
- a vertical barrier ``horizon`` bars later.
The first barrier the close path touches sets the label (+1 upper, −1 lower, 0 vertical), the
return to that bar and the label's end time t1. Closes are used, not highs and lows, so a label is
known at the close of its t1 bar. ``weight`` is the label's average uniqueness: how much of its
return span (bars after t0 up to t1) it shares with no other label.

``label_table`` is the stored ``ml.labels`` stage: bars and the stored GARCH volatility in,
labels out, or ``InsufficientData`` when no event fits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..kernels import labels as k
from .insufficient import InsufficientData

BARRIERS = {k.UPPER: "upper", k.LOWER: "lower", k.VERTICAL: "vertical"}
COLUMNS = ("symbol", "t0", "t1", "label", "ret", "barrier", "sigma", "weight")  # ml.labels
STAGE = "triple-barrier labelling"


def triple_barrier_labels(close: pd.Series, sigma: pd.Series, *, upper: float = 2.0,
                          lower: float = 2.0, horizon: int = 20) -> pd.DataFrame:
    """One row per event, indexed by t0: t1, label, ret, barrier, sigma, weight.

    ``close`` and ``sigma`` share a sorted time index; ``sigma[i]`` (a decimal return standard
    deviation) must be known at the close of bar i. Bars whose sigma is missing or not positive,
    and the last ``horizon`` bars (no full horizon ahead), start no event.
    """
    if not close.index.equals(sigma.index):
        raise ValueError("close and sigma must share the same index")
    if not close.index.is_monotonic_increasing:
        raise ValueError("close must be sorted by time")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 bar, got {horizon}")
    if upper < 0 or lower < 0 or upper == lower == 0:
        raise ValueError("barrier factors must be >= 0 and not both 0")
    prices = close.to_numpy(np.float64)
    width = sigma.to_numpy(np.float64)
    if not np.isfinite(prices).all() or (prices <= 0).any():
        raise ValueError("close prices must be finite and positive")
    n = len(prices)
    end = np.empty(n, dtype=np.int64)
    touched = np.empty(n, dtype=np.int8)
    k.triple_barrier(prices, width, upper, lower, horizon, end, touched)
    events = np.flatnonzero(end >= 0)
    stop = end[events]
    weight = np.empty(len(events))
    k.average_uniqueness(events, stop, n, weight)
    label = touched[events]
    times = close.index
    return pd.DataFrame({
        "t1": times[stop],
        "label": label.astype(np.int8),
        "ret": prices[stop] / prices[events] - 1.0,
        "barrier": pd.Categorical([BARRIERS[int(v)] for v in label],
                                  categories=list(BARRIERS.values())),
        "sigma": width[events],
        "weight": weight,
        "i0": events,
        "i1": stop,
    }, index=pd.Index(times[events], name="t0"))


def meta_labels(events: pd.DataFrame, side: pd.Series) -> pd.Series:
    """Binary meta-labels for a primary model's ``side`` (+1/−1 per event): 1 where trading that
    side to the first barrier made money (side·ret > 0), else 0."""
    aligned = side.reindex(events.index)
    if aligned.isna().any():
        raise ValueError("side has no value for some events")
    won = aligned.to_numpy() * events["ret"].to_numpy() > 0
    return pd.Series(won.astype(np.int8), index=events.index, name="meta_label")


def next_bar_sigma(times: pd.Index, volatility: pd.DataFrame) -> pd.Series:
    """σ of the next bar's return, known at this bar's close (the GARCH one-step forecast), as a
    decimal return: ``sigma / scale`` of the stored ``ml.garch_volatility`` frame (columns ts,
    sigma, scale), aligned to ``times`` and moved back one bar."""
    vol = volatility.set_index("ts")
    return (vol["sigma"] / vol["scale"]).reindex(times).shift(-1)


def minimum_bars(horizon: int) -> int:
    """Bars for one event: the bar it starts at and ``horizon`` bars ahead."""
    return horizon + 1


def label_table(bars: pd.DataFrame, volatility: pd.DataFrame, *, symbol: str, upper: float,
                lower: float, horizon: int) -> pd.DataFrame:
    """The stored labels of ``symbol``: symbol, t0, t1, label, ret, barrier, sigma, weight, one
    row per event, barriers at ±upper/lower × the next bar's GARCH σ (``next_bar_sigma``)."""
    if horizon >= 1 and len(bars) < minimum_bars(horizon):
        raise InsufficientData(STAGE, symbol, minimum_bars(horizon), len(bars), "bars",
                               f"an event needs its start bar and a horizon of {horizon} bars",
                               noun="labels")
    close = bars.set_index("ts")["close"]
    events = triple_barrier_labels(close, next_bar_sigma(close.index, volatility), upper=upper,
                                   lower=lower, horizon=horizon)
    if events.empty:
        raise InsufficientData(STAGE, symbol, 1, 0, "events",
                               f"no bar with {horizon} bars ahead has a GARCH σ for its next bar",
                               noun="labels")
    stored = events.reset_index().assign(symbol=pd.array([symbol] * len(events), dtype="string"))
    stored["barrier"] = stored["barrier"].astype("string")
    return stored[list(COLUMNS)]


def label_counts(labels: pd.DataFrame) -> pd.DataFrame:
    """Events per label value (−1 lower, 0 vertical, +1 upper barrier first)."""
    counts = labels["label"].value_counts().reindex([-1, 0, 1], fill_value=0)
    return pd.DataFrame({"label": ["-1 (lower)", "0 (vertical)", "+1 (upper)"],
                         "events": counts.to_numpy()})


def mean_uniqueness(labels: pd.DataFrame) -> float:
    """The labels' average uniqueness weight: 1 when no two labels overlap in time."""
    return float(labels["weight"].mean())

"""Triple-barrier labels and their sample weights (López de Prado, AFML ch. 3–4).

An event starts at every bar i (time t0) with a volatility forecast and a full horizon ahead:
- horizontal barriers at returns +upper·σ_i and −lower·σ_i, where σ_i is the volatility of the
  next bar's return as known at the close of bar i (the GARCH one-step forecast);
- a vertical barrier ``horizon`` bars later.
The first barrier the close path touches sets the label (+1 upper, −1 lower, 0 vertical), the
return to that bar and the label's end time t1. Closes are used, not highs and lows, so a label is
known at the close of its t1 bar. ``weight`` is the label's average uniqueness: how much of its
return span (bars after t0 up to t1) it shares with no other label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..kernels import labels as k

BARRIERS = {k.UPPER: "upper", k.LOWER: "lower", k.VERTICAL: "vertical"}


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

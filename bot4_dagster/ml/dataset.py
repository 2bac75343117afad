"""What the base learners learn from: the triple-barrier events of one symbol with what is known at
their start, and the per-fold fitting that turns it into model inputs.

A sample is an event of ``ml.labels``: target ``label > 0`` (the upper barrier first, the
probability Kelly sizing needs), weight its average uniqueness, the label span [t0, t1] for
purging. Its inputs are read at the close of the t0 bar: the microstructure features, recent log
returns over ``RETURN_BARS`` bars, and the GARCH volatility and standardised residual. The LSTM
sees the window of the last ``L`` bars of the same inputs ending at t0 (causal).

**Fold-local fitting.** ``FoldInputs.fit`` fits everything on one fold's training rows and applies
it to every bar, so a test row's inputs depend on its past and on the training rows only:

- GARCH(1,1) is refitted on the longest contiguous run of bars that training labels cover (a
  recursion needs consecutive returns), with the return scale set from those returns; its
  variance recursion then runs over every bar. The full-sample ``ml.garch_volatility`` never
  feeds a model. (A training row just after a test block sees the block's prices as its causal
  past, as every rolling feature does; that is what the embargo is for.);
- the volatility regime (0 low .. 3 crisis) uses thresholds from the training rows' volatility;
- a column with no value on the training rows is dropped (a bars-only source leaves the trade
  and quote features empty); other missing values take the training rows' median;
- every column is standardised with the training rows' mean and standard deviation (1 when
  constant). Windows reaching before the first bar are padded with 0, the training mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..kernels import garch as k
from ..kernels import log_returns
from .garch import MIN_OBS, fit_garch
from .insufficient import InsufficientData
from .regimes import VolatilityRegimes

RETURN_BARS = (1, 5, 20)  # recent log returns, summed over this many bars up to t0
VOLATILITY = ("garch_sigma", "garch_z", "garch_regime")
STAGE = "learning samples"


@dataclass(frozen=True)
class Samples:
    """One symbol's events (in t0 order) and the per-bar inputs nothing has been fitted to."""

    t0: pd.DatetimeIndex
    t1: pd.Series  # label end, indexed by t0: the purged splitters' ``t1``
    y: np.ndarray  # int8, 1 = upper barrier first
    weight: np.ndarray  # average uniqueness
    ret: np.ndarray  # the event's return, for the strategy a prediction trades
    bar: np.ndarray  # position of each t0 among the bars
    end_bar: np.ndarray  # position of each t1
    close: pd.Series  # every bar's close, for the per-fold GARCH
    per_bar: pd.DataFrame  # features and recent returns, one row per bar

    def __len__(self) -> int:
        return len(self.t0)


def learning_samples(bars: pd.DataFrame, features: pd.DataFrame, labels: pd.DataFrame, *,
                     symbol: str | None = None) -> Samples:
    """The samples of the stored tables (``market.bars``, ``features.microstructure_features``,
    ``ml.labels``) of one symbol; ``InsufficientData`` when no event has a bar."""
    bars = bars.sort_values("ts", ignore_index=True)
    times = pd.DatetimeIndex(bars["ts"])
    close = pd.Series(bars["close"].to_numpy(np.float64), index=times)
    inputs = (features.set_index(pd.DatetimeIndex(features["ts"]))
              .drop(columns=["symbol", "ts"]).reindex(times).astype(np.float64))
    logret = np.empty(len(close))
    log_returns(close.to_numpy(np.float64), logret)
    cumulative = np.concatenate([[0.0], np.nancumsum(logret[1:])])
    for n in RETURN_BARS:
        past = np.full(len(close), np.nan)
        past[n:] = cumulative[n:] - cumulative[:-n]
        inputs[f"return_{n}"] = past
    events = labels.sort_values("t0", ignore_index=True)
    t0 = pd.DatetimeIndex(events["t0"]).as_unit("ns")  # one unit for every time (warehouse: µs)
    t1 = pd.DatetimeIndex(events["t1"]).as_unit("ns")
    bar = times.get_indexer(t0)
    end_bar = times.get_indexer(t1)
    known = (bar >= 0) & (end_bar >= 0)
    if not known.any():
        raise InsufficientData(STAGE, symbol, 1, 0, "labels whose t0 and t1 are stored bars")
    events, t0, t1 = events[known].reset_index(drop=True), t0[known], t1[known]
    return Samples(
        t0=t0, t1=pd.Series(t1, index=t0),
        y=(events["label"].to_numpy() > 0).astype(np.int8),
        weight=events["weight"].to_numpy(np.float64), ret=events["ret"].to_numpy(np.float64),
        bar=bar[known], end_bar=end_bar[known], close=close, per_bar=inputs)


@dataclass(frozen=True)
class FoldGarch:
    """GARCH(1,1) as fitted on one fold's training bars, and the scale of its returns."""

    params: dict[str, float]
    scale: float  # decimal returns x scale = the returns it was fitted on
    fit_bars: tuple[int, int]  # [first, last] bar of the returns it was fitted on

    def volatility(self, close: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Per bar: the conditional volatility of its return (known before it) and its
        standardised residual, in decimal returns; the first bar has neither (NaN)."""
        r = np.diff(close.to_numpy(np.float64)) / close.to_numpy(np.float64)[:-1] * self.scale
        p = self.params
        mu = p.get("mu", 0.0)
        start = p["omega"] / max(1.0 - p["alpha"] - p["beta"], 1e-6)  # unconditional variance
        var = np.empty(len(r))
        k.garch_filter(p["omega"], p["alpha"], p["beta"], mu, np.sqrt(start), start, r, var)
        sigma = np.concatenate([[np.nan], np.sqrt(var) / self.scale])
        z = np.concatenate([[np.nan], (r - mu) / np.sqrt(var)])
        return sigma, z


def fold_garch(samples: Samples, train: np.ndarray, *, dist: str = "t",
               symbol: str | None = None) -> FoldGarch:
    """Refit GARCH on the longest run of consecutive bars covered by training labels."""
    covered = np.zeros(len(samples.close), dtype=bool)
    for start, end in zip(samples.bar[train], samples.end_bar[train], strict=True):
        covered[start:end + 1] = True
    first, last = _longest_run(covered)
    if last - first < MIN_OBS:
        raise InsufficientData(STAGE, symbol, MIN_OBS + 1, last - first + 1,
                               "consecutive training bars", "GARCH(1,1) is refitted on them")
    closes = samples.close.to_numpy(np.float64)[first:last + 1]
    returns = np.diff(closes) / closes[:-1]
    scale = 100.0
    while 0 < np.var(returns * scale) < 0.1:  # the rule of ml.volatility.scaled_returns
        scale *= 10.0
    fit = fit_garch(returns * scale, dist=dist)
    return FoldGarch(dict(fit.params), scale, (first, last))


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """[first, last] of the longest run of True (the first such run on ties)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    starts, ends = edges[::2], edges[1::2]
    if not len(starts):
        return 0, -1
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best]) - 1


@dataclass(frozen=True)
class FoldInputs:
    """The inputs of every bar, as fitted on one fold's training rows (module docstring)."""

    columns: tuple[str, ...]  # kept, in order
    median: np.ndarray  # imputation values, per column
    mean: np.ndarray
    std: np.ndarray
    garch: FoldGarch
    regimes: VolatilityRegimes
    matrix: np.ndarray  # bars x columns, imputed and standardised

    @classmethod
    def fit(cls, samples: Samples, train: np.ndarray, *, symbol: str | None = None) -> FoldInputs:
        garch = fold_garch(samples, train, symbol=symbol)
        sigma, _ = garch.volatility(samples.close)
        rows = samples.bar[train]
        regimes = VolatilityRegimes.fit(sigma[rows])
        names, values = _raw_inputs(samples, garch, regimes)
        seen = np.isfinite(values[rows]).any(axis=0)
        if not seen.any():
            raise InsufficientData(STAGE, symbol, 1, 0, "inputs with a value on training rows")
        values = values[:, seen]
        median = np.nanmedian(values[rows], axis=0)
        filled = np.where(np.isfinite(values), values, median)
        mean = filled[rows].mean(axis=0)
        std = filled[rows].std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(names[seen]), median, mean, std, garch, regimes, (filled - mean) / std)

    def transform(self, samples: Samples) -> np.ndarray:
        """The inputs of every bar of ``samples`` with the parameters fitted here (new bars, the
        serving path): the same columns, medians, scaler, GARCH and regime thresholds."""
        names, values = _raw_inputs(samples, self.garch, self.regimes)
        values = values[:, [list(names).index(c) for c in self.columns]]
        filled = np.where(np.isfinite(values), values, self.median)
        return (filled - self.mean) / self.std

    def regime_codes(self, samples: Samples, rows: np.ndarray) -> np.ndarray:
        """The volatility regime at each sample's t0 (0 low .. 3 crisis, -1 undefined), on this
        fold's GARCH and thresholds: what a regime calibrator looks up."""
        sigma, _ = self.garch.volatility(samples.close)
        return self.regimes.codes(sigma[samples.bar[rows]])

    def raw_windows(self, samples: Samples, rows: np.ndarray, length: int) -> np.ndarray:
        """(n, length, columns): the last ``length`` bars of raw inputs (before imputation and
        scaling) up to each sample's t0, padded with the training mean before the first bar,
        which standardises to the 0 that ``windows`` pads with: what a live caller hands the
        champion."""
        names, values = _raw_inputs(samples, self.garch, self.regimes)
        values = values[:, [list(names).index(c) for c in self.columns]]
        padded = np.vstack([np.repeat(self.mean[None, :], length - 1, axis=0), values])
        ends = samples.bar[rows] + length
        index = ends[:, None] - length + np.arange(length)[None, :]
        return padded[index]

    def tabular(self, samples: Samples, rows: np.ndarray) -> np.ndarray:
        """(n, columns): the inputs at each sample's t0."""
        return self.matrix[samples.bar[rows]]

    def windows(self, samples: Samples, rows: np.ndarray, length: int) -> np.ndarray:
        """(n, length, columns): the last ``length`` bars up to each sample's t0, float32."""
        padded = np.vstack([np.zeros((length - 1, self.matrix.shape[1])), self.matrix])
        ends = samples.bar[rows] + length  # t0's row in ``padded`` is bar + length - 1
        index = ends[:, None] - length + np.arange(length)[None, :]
        return padded[index].astype(np.float32)


def _raw_inputs(samples: Samples, garch: FoldGarch, regimes: VolatilityRegimes
                ) -> tuple[pd.Index, np.ndarray]:
    """Column names and per-bar values before imputation and scaling."""
    sigma, z = garch.volatility(samples.close)
    regime = regimes.codes(sigma).astype(np.float64)
    regime[~np.isfinite(sigma)] = np.nan
    raw = samples.per_bar.assign(garch_sigma=sigma, garch_z=z, garch_regime=regime)
    return raw.columns, raw.to_numpy(np.float64)

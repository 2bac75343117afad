"""Volatility of one instrument from its closes: returns in a scale GARCH can work with, the
GARCH(1,1) fit, regimes and diagnostics; and the comparison with ``arch`` that guards the fit.

Returns are percent returns, 100·(c_t/c_{t−1} − 1). When their variance is below 0.1
(one-minute crypto bars, for example), they are multiplied by further powers of ten until it is
not, as arch recommends; ``scale`` records the factor from decimal returns (100 = percent,
10,000 = basis points).

``VolatilityEstimate.table`` is the stored ``ml.garch_volatility`` frame: one row per bar, the
first without a return.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ..kernels import pct_returns
from .diagnostics import arch_lm, ljung_box
from .garch import MIN_OBS, GarchFit, fit_garch
from .insufficient import InsufficientData
from .regimes import REGIMES, VolatilityRegimes

# what "agrees with arch" means (numerics.md §1): log-likelihood never lower than arch's by more
# than 1e-8 relative, parameters equal to 1e-4 (relative to the parameter when it exceeds 1)
LL_RTOL = 1e-8
PARAM_TOL = 1e-4  # relative to max(1, |θ|)
SE_SHARE = 0.01  # ... or 1% of arch's standard error, whichever is larger
COLUMNS = ("symbol", "ts", "ret", "sigma", "std_resid", "regime", "scale")  # ml.garch_volatility


def scaled_returns(close: pd.Series) -> tuple[pd.Series, float]:
    """Percent returns, times further powers of ten while their variance is below 0.1."""
    values = close.to_numpy(np.float64)
    out = np.empty(len(values))
    pct_returns(values, out)
    returns = pd.Series(out, index=close.index).iloc[1:]
    scale = 100.0
    variance = float(np.var(returns))
    while 0 < variance < 0.1:
        returns, scale, variance = returns * 10.0, scale * 10.0, variance * 100.0
    return returns, scale


@dataclass
class VolatilityEstimate:
    returns: pd.Series  # scaled returns, indexed like the closes (first close has none)
    scale: float
    fit: GarchFit
    regimes: VolatilityRegimes
    diagnostics: pd.DataFrame = field(default=None)
    times: pd.Index | None = None  # every bar's time, the first (no return) included

    def frame(self) -> pd.DataFrame:
        """Per bar: return, conditional volatility and regime (the first bar has no return)."""
        sigma = pd.Series(self.fit.conditional_volatility, index=self.returns.index)
        frame = pd.DataFrame({"ret": self.returns, "sigma": sigma,
                              "std_resid": self.fit.std_resid}, index=self.returns.index)
        frame["regime"] = self.regimes.label(frame["sigma"])
        return frame

    def table(self, symbol: str) -> pd.DataFrame:
        """The stored frame: symbol, ts, ret and sigma (decimal returns x ``scale``), std_resid
        (z), regime, scale; one row per bar, NaN where the first bar has no return."""
        times = self.times if self.times is not None else self.returns.index
        frame = self.frame().reindex(times)
        frame["regime"] = frame["regime"].astype("string")
        frame["scale"] = self.scale
        frame["ts"] = times
        frame["symbol"] = pd.array([symbol] * len(frame), dtype="string")
        return frame[list(COLUMNS)].reset_index(drop=True)

    def regime_table(self) -> pd.DataFrame:
        """The regime thresholds with the number of bars that fall in each regime."""
        counts = self.frame()["regime"].value_counts().reindex(list(REGIMES), fill_value=0)
        return self.regimes.table().assign(bars=counts.to_numpy())


MIN_BARS = MIN_OBS + 1  # GARCH is fitted on at least MIN_OBS returns, one per bar after the first


def estimate_volatility(close: pd.Series, *, dist: str = "t", l2: float = 0.0,
                        prior: tuple[float, float] = (0.0, 0.0),
                        symbol: str | None = None) -> VolatilityEstimate:
    """GARCH(1,1) on the scaled returns of ``close``, with regimes and diagnostics; raises
    ``InsufficientData`` (naming ``symbol``) below ``MIN_BARS`` closes."""
    if len(close) < MIN_BARS:
        raise InsufficientData("GARCH", symbol, MIN_BARS, len(close), "bars",
                               f"GARCH(1,1) is fitted on at least {MIN_OBS} returns",
                               noun="GARCH volatility")
    returns, scale = scaled_returns(close)
    fit = fit_garch(returns, dist=dist, l2=l2, prior=prior)
    regimes = VolatilityRegimes.fit(fit.conditional_volatility)
    return VolatilityEstimate(returns, scale, fit, regimes, diagnose(fit), close.index)


def diagnose(fit: GarchFit, lags: int = 10, arch_lags: int = 5) -> pd.DataFrame:
    """Ljung–Box on z and z² and ARCH-LM on z (statsmodels semantics): what is left to model."""
    z = fit.std_resid
    rows = []
    for name, series, test in ((f"Ljung-Box({lags}) on z", z, "lb"),
                               (f"Ljung-Box({lags}) on z²", z * z, "lb"),
                               (f"ARCH-LM({arch_lags}) on z", z, "lm")):
        stat, p = ljung_box(series, lags) if test == "lb" else arch_lm(series, arch_lags)
        rows.append({"test": name, "statistic": float(stat), "p_value": float(p)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ArchComparison:
    """Ours against arch's fit: the likelihood must not be lower, and each parameter must agree
    to ``PARAM_TOL`` (relative to max(1, |θ|)) or to ``SE_SHARE`` of arch's standard error,
    whichever is looser. On a short sample the likelihood is flat: arch's SLSQP stops at ftol
    1e-6 while BFGS goes on, and 125 one-minute returns leave β 2.4e-4 apart with our likelihood
    the higher one, a difference of a thousandth of β's standard error."""

    passed: bool
    loglik: float
    arch_loglik: float
    max_param_diff: float  # the largest difference, relative to max(1, |θ|)
    params: pd.DataFrame
    excess: float = 0.0  # the largest difference as a multiple of its allowance (> 1: fails)

    @property
    def reason(self) -> str:
        if self.passed:
            return "agrees with arch"
        parts = []
        if self.loglik < self.arch_loglik - LL_RTOL * abs(self.arch_loglik):
            parts.append(f"log-likelihood {self.loglik:.6f} below arch's {self.arch_loglik:.6f}")
        if self.excess > 1:
            parts.append(f"parameters differ by up to {self.max_param_diff:.2e}, "
                         f"{self.excess:.3g}x the allowance (max of {PARAM_TOL:g} and "
                         f"{SE_SHARE:.0%} of arch's standard error)")
        return "; ".join(parts)


def compare_with_arch(fit: GarchFit, returns: pd.Series) -> ArchComparison:
    """Refit with ``arch`` and check the agreement the GARCH issue promises."""
    from arch import arch_model

    dist: Literal["normal", "t"] = "t" if fit.setup.dist == "t" else "normal"
    mean: Literal["Constant", "Zero"] = "Zero" if fit.setup.mean == "zero" else "Constant"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = arch_model(returns.to_numpy(), mean=mean, vol="GARCH", p=1, q=1, dist=dist,
                         rescale=False).fit(disp="off")
    ours = fit.theta
    theirs = ref.params.to_numpy()
    scale = np.maximum(1.0, np.abs(theirs))
    diffs = np.abs(ours - theirs) / scale
    se = np.nan_to_num(np.asarray(ref.std_err, dtype=float), nan=0.0)
    allowance = np.maximum(PARAM_TOL * scale, SE_SHARE * se)
    excess = float(np.max(np.abs(ours - theirs) / allowance))
    table = pd.DataFrame({"ours": ours, "arch": theirs, "difference": ours - theirs,
                          "arch_std_error": se, "allowed": allowance},
                         index=list(fit.setup.names))
    ll_ok = fit.loglik >= ref.loglikelihood - LL_RTOL * abs(ref.loglikelihood)
    return ArchComparison(bool(ll_ok and excess <= 1 and math.isfinite(fit.loglik)),
                          fit.loglik, float(ref.loglikelihood), float(np.max(diffs)), table,
                          excess)

"""Residual diagnostics: Ljung-Box Q and Engle's ARCH-LM test.

The semantics are statsmodels 0.15's ``acorr_ljungbox`` and ``het_arch`` (which calls
``acorr_lm(resid**2, ...)``), not arch's ``ARCHModelResult.arch_lm_test``. arch scales R² by the
full sample size n (statsmodels uses the m = n - nlags regression rows, less ``ddof``) and
defaults to ⌈12(n/100)^¼⌉ lags, so its statistic is n/(n - nlags) times larger; see
reference/numerics.md §2. The statistics come from the numba kernels in
:mod:`bot4_dagster.kernels.diagnostics`; p-values from scipy.stats.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy import stats

from bot4_dagster.kernels.diagnostics import acf, arch_lm_ols, ljung_box_q

from ._inputs import finite_vector, integer

__all__ = ["ArchLMTest", "arch_lm", "arch_lm_test", "ljung_box"]


@dataclass(frozen=True)
class ArchLMTest:
    """Engle's ARCH-LM test in both forms: LM = (m - ddof)·R² ~ χ²(L) and the regression's F."""

    lm: float
    lm_pvalue: float
    fstat: float
    f_pvalue: float


def _lags(lags: int | Iterable[int]) -> tuple[np.ndarray, bool]:
    """The requested lags as an int array, and whether a single int was given."""
    many = isinstance(lags, Iterable) and not isinstance(lags, str | bytes)
    if many and np.ndim(np.asarray(lags, dtype=object)) != 0:  # a 0-d array is one lag
        arr = np.array([integer(h, "lags", 1) for h in cast(Iterable[int], lags)],
                       dtype=np.int64)
        if arr.size == 0:
            raise ValueError("lags must not be empty")
        return arr, False
    return np.array([integer(lags, "lags", 1)], dtype=np.int64), True


def ljung_box(
    x: object, lags: int | Iterable[int], model_df: int = 0
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """Ljung-Box Q(h) = n(n+2)Σ_{k≤h} ρ̂_k²/(n-k) and its χ²(h - model_df) p-value.

    An int ``lags`` = h gives floats (statsmodels' row h); a list of lags gives arrays, in order.
    ``model_df`` (e.g. p+q for ARMA residuals) lowers only the degrees of freedom; the p-value is
    NaN where h - model_df <= 0. Requires 1 <= h <= n - 1 and a non-constant ``x``.
    """
    arr = finite_vector(x, "x")
    hs, scalar = _lags(lags)
    model_df = integer(model_df, "model_df", 0)
    n = arr.shape[0]
    hmax = int(hs.max())
    if hmax > n - 1:
        raise ValueError(f"ljung_box needs lags <= n - 1: lag {hmax} with n = {n} observations")
    rho = np.empty(hmax + 1)
    acf(arr, hmax, rho)
    if np.isnan(rho[1]):
        raise ValueError(f"x is constant (all {n} values equal {arr[0]!r}): no autocorrelation")
    table = np.empty(hmax)
    ljung_box_q(rho, n, table)
    q = table[hs - 1]
    dof = hs - model_df
    pvalue = np.full(q.shape, np.nan)
    ok = dof > 0
    pvalue[ok] = stats.chi2.sf(q[ok], dof[ok])
    if scalar:
        return float(q[0]), float(pvalue[0])
    return q, pvalue


def _arch_r2(resid: object, nlags: int, ddof: int) -> tuple[float, float, int, int]:
    """(R², SSR/TSS, m, nlags) of the ARCH-LM auxiliary regression, after validating inputs."""
    e = finite_vector(resid, "resid")
    nlags = integer(nlags, "nlags", 1)
    ddof = integer(ddof, "ddof", 0)
    n = e.shape[0]
    m = n - nlags
    if m - nlags - 1 < 1:
        raise ValueError(
            f"arch_lm with nlags = {nlags} needs at least 2*nlags + 2 = {2 * nlags + 2}"
            f" observations (m = n - nlags rows for {nlags + 1} coefficients), got n = {n}")
    if ddof >= m:
        raise ValueError(f"ddof = {ddof} must be < m = n - nlags = {m}")
    out = np.empty(2)
    arch_lm_ols(e, nlags, out)
    if np.isnan(out[0]):
        raise ValueError(
            f"the ARCH-LM regression is degenerate: e² is constant or its {nlags} lags are"
            " collinear")
    return float(out[0]), float(out[1]), m, nlags


def arch_lm(resid: object, nlags: int, ddof: int = 0) -> tuple[float, float]:
    """Engle's LM = (m - ddof)·R² over the m = n - nlags rows, and its χ²(nlags) p-value.

    ``resid`` is used as given (not demeaned). ``ddof`` changes only the multiplier, never the
    degrees of freedom, as in statsmodels' ``het_arch``.
    """
    r2, _, m, nlags = _arch_r2(resid, nlags, ddof)
    lm = (m - ddof) * r2
    return lm, float(stats.chi2.sf(lm, nlags))


def arch_lm_test(resid: object, nlags: int, ddof: int = 0) -> ArchLMTest:
    """:func:`arch_lm` plus the F form F = (R²/L)/((1 - R²)/(m - L - 1)) ~ F(L, m - L - 1)."""
    r2, unexplained, m, nlags = _arch_r2(resid, nlags, ddof)
    lm = (m - ddof) * r2
    df_resid = m - nlags - 1
    fstat = (r2 / nlags) / (unexplained / df_resid) if unexplained > 0.0 else math.inf
    return ArchLMTest(
        lm=lm, lm_pvalue=float(stats.chi2.sf(lm, nlags)),
        fstat=fstat, f_pvalue=float(stats.f.sf(fstat, nlags, df_resid)),
    )

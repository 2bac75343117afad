"""Residual diagnostics: sample autocorrelations, Ljung-Box Q and the ARCH-LM auxiliary regression.

Definitions follow statsmodels 0.15 (``acf(adjusted=False, fft=False)``, ``acorr_ljungbox``,
``het_arch``/``acorr_lm``); see reference/numerics.md §2. Inputs are scaled by a power of two
before squaring, which is exact and keeps huge or tiny series from overflowing or underflowing.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel

#: A column whose norm left after the earlier Householder steps is below this fraction of its
#: original norm is treated as collinear with the earlier ones (the kernel then reports NaN).
RANK_TOL = 1e-12


def acf_python(x: np.ndarray, nlags: int, out: np.ndarray) -> None:
    """Fill ``out[0..nlags]`` with the sample autocorrelations of demeaned ``x``.

    ρ̂_k = Σ_{t=k}^{n-1} d_t d_{t-k} / Σ_t d_t², d = x - mean(x): the biased (divide-by-n)
    estimator, as statsmodels' ``acf(adjusted=False, fft=False)``. A constant ``x`` gives NaN.
    """
    n = x.shape[0]
    mean = 0.0
    for t in range(n):
        mean += x[t]
    mean /= n
    d = np.empty(n)
    amax = 0.0
    for t in range(n):
        d[t] = x[t] - mean
        amax = max(amax, abs(d[t]))
    if amax == 0.0:
        out[: nlags + 1] = np.nan
        return
    scale = math.ldexp(1.0, -math.frexp(amax)[1])
    for t in range(n):
        d[t] *= scale
    c0 = 0.0
    for t in range(n):
        c0 += d[t] * d[t]
    out[0] = 1.0
    for k in range(1, nlags + 1):
        ck = 0.0
        for t in range(k, n):
            ck += d[t] * d[t - k]
        out[k] = ck / c0


def ljung_box_q_python(rho: np.ndarray, nobs: int, out: np.ndarray) -> None:
    """Fill ``out[h-1]`` with Q(h) = n(n+2) Σ_{k=1}^{h} ρ̂_k²/(n-k) for h = 1..len(rho)-1.

    ``rho`` is :func:`acf`'s output (``rho[0]`` = 1 is ignored); the cumulative sum gives every
    lag's statistic in one pass, like statsmodels' table.
    """
    acc = 0.0
    factor = float(nobs) * (nobs + 2.0)
    for k in range(1, rho.shape[0]):
        acc += rho[k] * rho[k] / (nobs - k)
        out[k - 1] = factor * acc


def arch_lm_ols_python(resid: np.ndarray, nlags: int, out: np.ndarray) -> None:
    """Fill ``out`` = (R², SSR/TSS) of the OLS of e²_t on [1, e²_{t-1}, ..., e²_{t-L}].

    The regression uses the m = n - L rows t = L..n-1 (``e`` is not demeaned), as statsmodels'
    ``acorr_lm(resid**2, nlags)``. Why Householder QR on centred columns: squared returns are
    heavy-tailed and their lags nearly collinear, so normal equations lose digits; centring
    absorbs the intercept, and QR works on the data itself (condition number κ, not κ²).
    ESS and SSR are the squared norms of Qᵀy's first L and remaining m - L components, so R² =
    ESS/TSS keeps full relative accuracy when R² is tiny and SSR/TSS (the F statistic's
    denominator) when R² is near 1. Constant e² or collinear lags give NaN.
    """
    n = resid.shape[0]
    m = n - nlags
    amax = 0.0
    for t in range(n):
        amax = max(amax, abs(resid[t]))
    scale = math.ldexp(1.0, -math.frexp(amax)[1])
    # a[j] (j < L) is lag j+1 of e², a[L] the response: rows are contiguous for the sweeps
    a = np.empty((nlags + 1, m))
    sumsq = np.empty(nlags + 1)  # each centred column's squared norm, before any reflection
    for j in range(nlags + 1):
        start = nlags - j - 1 if j < nlags else nlags
        row = a[j]
        mean = 0.0
        for i in range(m):
            v = resid[start + i] * scale
            row[i] = v * v
            mean += row[i]
        mean /= m
        ss = 0.0
        for i in range(m):
            row[i] -= mean
            ss += row[i] * row[i]
        sumsq[j] = ss
    tss = sumsq[nlags]
    if tss == 0.0:
        out[:2] = np.nan
        return
    for k in range(nlags):
        v = a[k, k:]  # becomes the Householder vector; tail views keep the loops from index 0
        norm2 = 0.0
        for i in range(v.shape[0]):
            norm2 += v[i] * v[i]
        if norm2 <= RANK_TOL * RANK_TOL * sumsq[k]:
            out[:2] = np.nan
            return
        norm = math.sqrt(norm2)
        v[0] -= -norm if v[0] >= 0.0 else norm
        vtv = 2.0 * norm * abs(v[0])  # = vᵀv, since |v_0| = |a_kk| + norm
        for j in range(k + 1, nlags + 1):
            w = a[j, k:]
            s = 0.0
            for i in range(v.shape[0]):
                s += v[i] * w[i]
            f = 2.0 * s / vtv
            for i in range(v.shape[0]):
                w[i] -= f * v[i]
    y = a[nlags]
    ess = 0.0
    for i in range(nlags):
        ess += y[i] * y[i]
    ssr = 0.0
    for i in range(nlags, m):
        ssr += y[i] * y[i]
    out[0] = ess / tss
    out[1] = ssr / tss

acf = kernel()(acf_python)
ljung_box_q = kernel()(ljung_box_q_python)
arch_lm_ols = kernel()(arch_lm_ols_python)

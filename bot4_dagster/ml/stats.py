"""Overfitting statistics: is a difference real, how much data proves it, and is a backtest lucky?

- :func:`welch_ttest` asks whether two samples (e.g. per-trade returns of a champion and a
  challenger model) have different means without assuming equal variances (Welch 1947). Same
  numbers as ``scipy.stats.ttest_ind(a, b, equal_var=False)``.
- :func:`sample_size_means` and :func:`sample_size_proportions` say how many observations per
  arm an A/B test needs before it can detect a given effect at the chosen α and power (normal
  approximation, two-sided).
- :func:`probabilistic_sharpe_ratio` asks how likely the true Sharpe ratio exceeds a benchmark,
  given the sample length and the returns' skewness and kurtosis; :func:`deflated_sharpe_ratio`
  sets the benchmark to :func:`expected_max_sharpe`, the best Sharpe ratio that ``n_trials``
  skill-less strategies would show, so that trying many strategies is paid for (Bailey & López de
  Prado, "The Sharpe Ratio Efficient Frontier", 2012; "The Deflated Sharpe Ratio", 2014).
- :func:`probability_of_backtest_overfitting` asks how often the strategy that looks best in
  sample ranks below the median out of sample, by combinatorially symmetric cross-validation
  (CSCV; Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting", 2017).

All Sharpe ratios are per period (not annualised); kurtosis is non-excess (3 for a normal).
Exact definitions and measured reference values: reference/numerics.md §7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import special
from scipy.stats import norm

from ._inputs import finite_vector, integer

__all__ = [
    "PBOResult",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "sample_size_means",
    "sample_size_proportions",
    "sharpe_ratio",
    "welch_ttest",
]

#: Splits scored per vectorised chunk in CSCV (bounds the splits × N temporaries).
_CHUNK = 4096


def _finite(value: float, name: str) -> float:
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _probability(value: float, name: str) -> float:
    out = float(value)
    if not 0.0 < out < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return out


# --- Welch's t-test and sample sizes ---------------------------------------------------------


def welch_ttest(a: object, b: object) -> tuple[float, float, float]:
    """Two-sided Welch t-test of equal means: ``(t, df, pvalue)``, variances with ddof = 1.

    t = (ā − b̄)/√(s_a²/n_a + s_b²/n_b) with Welch–Satterthwaite degrees of freedom. Unlike scipy
    (which returns NaN), fewer than 2 observations, non-finite values or two constant samples
    raise ValueError: the test is undefined there and a silent NaN would route an A/B decision.
    """
    x, y = finite_vector(a, "a", 2), finite_vector(b, "b", 2)
    vn1 = np.var(x, ddof=1) / x.size
    vn2 = np.var(y, ddof=1) / y.size
    if vn1 + vn2 == 0.0:
        raise ValueError("both samples are constant: the Welch t statistic is undefined")
    df = (vn1 + vn2) ** 2 / (vn1**2 / (x.size - 1) + vn2**2 / (y.size - 1))
    t = (np.mean(x) - np.mean(y)) / np.sqrt(vn1 + vn2)
    pvalue = 2.0 * special.stdtr(df, -abs(t))
    return float(t), float(df), float(pvalue)


ALTERNATIVES = ("two-sided", "one-sided")


def _z_values(alpha: float, power: float, alternative: str = "two-sided") -> tuple[float, float]:
    """(z_{1−α/2} or z_{1−α}, z_{power}) of a two- or one-sided test."""
    alpha, power = _probability(alpha, "alpha"), _probability(power, "power")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    tail = alpha / 2.0 if alternative == "two-sided" else alpha
    return float(norm.ppf(1.0 - tail)), float(norm.ppf(power))


def required_observations(delta: float, variance: float, *, alpha: float = 0.05,
                          power: float = 0.8, alternative: str = "two-sided") -> float:
    """(z_α + z_β)² · variance / δ², unrounded: the observations needed to detect a mean shift
    ``delta`` of a statistic whose variance per observation is ``variance``."""
    delta, variance = _finite(delta, "delta"), _finite(variance, "variance")
    if delta == 0.0:
        raise ValueError("delta must be non-zero: no sample size detects a zero difference")
    if variance <= 0.0:
        raise ValueError(f"variance must be > 0, got {variance!r}")
    z_a, z_b = _z_values(alpha, power, alternative)
    return (z_a + z_b) ** 2 * variance / delta**2


def sample_size_means(
    delta: float, sigma1: float, sigma2: float | None = None, *, alpha: float = 0.05,
    power: float = 0.8, alternative: str = "two-sided",
) -> int:
    """Observations per arm to detect a mean difference ``delta``:
    ⌈(z_α+z_{1−β})²(σ₁²+σ₂²)/δ²⌉ with z_α = z_{1−α/2} (two-sided) or z_{1−α} (one-sided).

    ``sigma2`` defaults to ``sigma1`` (equal spreads). Normal approximation, so slightly below
    the t-based answer for very small samples.
    """
    sigma1 = _finite(sigma1, "sigma1")
    sigma2 = sigma1 if sigma2 is None else _finite(sigma2, "sigma2")
    if sigma1 <= 0.0 or sigma2 <= 0.0:
        raise ValueError(f"sigmas must be > 0, got {sigma1!r} and {sigma2!r}")
    return math.ceil(required_observations(delta, sigma1**2 + sigma2**2, alpha=alpha,
                                           power=power, alternative=alternative))


def sample_size_paired(delta: float, sigma: float, rho: float, *, alpha: float = 0.05,
                       power: float = 0.8, alternative: str = "two-sided") -> int:
    """Pairs to detect a mean difference ``delta`` between two arms scored on the same events
    (a shadow): Var(Δ) = 2σ²(1 − ρ) for arms of spread σ and correlation ρ."""
    sigma, rho = _finite(sigma, "sigma"), _finite(rho, "rho")
    if sigma <= 0.0 or not -1.0 <= rho < 1.0:
        raise ValueError(f"need sigma > 0 and -1 <= rho < 1, got {sigma!r} and {rho!r}")
    return math.ceil(required_observations(delta, 2.0 * sigma**2 * (1.0 - rho), alpha=alpha,
                                           power=power, alternative=alternative))


def sample_size_proportions(
    p1: float, p2: float, *, alpha: float = 0.05, power: float = 0.8,
    alternative: str = "two-sided",
) -> int:
    """Observations per arm to tell rates ``p1`` and ``p2`` apart (pooled null variance).

    n = ⌈[z_{1−α/2}√(2p̄q̄) + z_{1−β}√(p₁q₁+p₂q₂)]²/(p₁−p₂)²⌉ with p̄ = (p₁+p₂)/2: the null uses
    the pooled rate, the alternative the two separate rates.
    """
    p1, p2 = _probability(p1, "p1"), _probability(p2, "p2")
    if p1 == p2:
        raise ValueError("p1 and p2 must differ: no sample size detects a zero difference")
    z_a, z_b = _z_values(alpha, power, alternative)
    p_bar = (p1 + p2) / 2.0
    root = z_a * math.sqrt(2.0 * p_bar * (1.0 - p_bar)) + z_b * math.sqrt(
        p1 * (1.0 - p1) + p2 * (1.0 - p2)
    )
    return math.ceil(root**2 / (p1 - p2) ** 2)


# --- Sharpe ratio, PSR and DSR ---------------------------------------------------------------


def sharpe_ratio(returns: object) -> float:
    """Per-period Sharpe ratio mean/std (ddof = 1) of excess returns; annualise outside."""
    r = finite_vector(returns, "returns", 2)
    sd = np.std(r, ddof=1)
    if sd == 0.0:
        raise ValueError("returns are constant: the Sharpe ratio is undefined")
    return float(np.mean(r) / sd)


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """P(true SR > ``sr_benchmark``) given an observed per-period ``sr`` over ``n_obs`` returns.

    PSR = Φ((SR̂ − SR*)√(T−1)/√(1 − γ₃SR̂ + (γ₄−1)/4·SR̂²)) with skewness γ₃ and non-excess
    kurtosis γ₄: negative skew and fat tails widen the Sharpe ratio's standard error and so
    lower the confidence a long-looking track record deserves.
    """
    sr, sr_benchmark = _finite(sr, "sr"), _finite(sr_benchmark, "sr_benchmark")
    skew, kurtosis = _finite(skew, "skew"), _finite(kurtosis, "kurtosis")
    n_obs = integer(n_obs, "n_obs", 2)
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if var <= 0.0:
        raise ValueError(
            f"1 - skew·SR + (kurtosis-1)/4·SR² = {var!r} <= 0: inconsistent skew/kurtosis for SR"
        )
    return float(norm.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var)))


def expected_max_sharpe(sr_variance: float, n_trials: int) -> float:
    """SR*: the expected maximum Sharpe ratio of ``n_trials`` independent zero-skill trials.

    SR* = √V·((1−γ)Φ⁻¹(1−1/N) + γΦ⁻¹(1−1/(N e))), γ the Euler–Mascheroni constant and V the
    variance of the trials' Sharpe ratios (same period as the Sharpe ratio being deflated).
    """
    sr_variance = _finite(sr_variance, "sr_variance")
    if sr_variance < 0.0:
        raise ValueError(f"sr_variance must be >= 0, got {sr_variance!r}")
    n = integer(n_trials, "n_trials", 2)
    g = np.euler_gamma
    z = (1.0 - g) * norm.ppf(1.0 - 1.0 / n) + g * norm.ppf(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(sr_variance) * z)


def deflated_sharpe_ratio(
    sr: float, *, n_obs: int, n_trials: int, sr_variance: float, skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """PSR against SR* = :func:`expected_max_sharpe`: the confidence that ``sr`` is skill
    after selecting it as the best of ``n_trials`` whose Sharpe ratios vary by ``sr_variance``."""
    sr_star = expected_max_sharpe(sr_variance, n_trials)
    return probabilistic_sharpe_ratio(sr, sr_star, n_obs, skew, kurtosis)


# --- PBO by CSCV -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PBOResult:
    """CSCV outcome; one entry per IS/OOS split, in ``itertools.combinations`` order.

    ``selected`` is the in-sample best strategy n*, ``is_sharpe``/``oos_sharpe`` its per-period
    Sharpe ratio in and out of sample (the performance-degradation pairs), ``logits`` λ of its
    relative OOS rank. ``n_dropped`` leading rows were discarded to make the blocks equal.
    """

    pbo: float
    logits: np.ndarray
    n_combinations: int
    selected: np.ndarray
    is_sharpe: np.ndarray
    oos_sharpe: np.ndarray
    n_blocks: int
    n_dropped: int

    @property
    def prob_oos_loss(self) -> float:
        """Share of splits where the selected strategy has a negative OOS Sharpe ratio."""
        return float(np.mean(self.oos_sharpe < 0.0))


def _returns_matrix(returns: object) -> np.ndarray:
    """T×N float64 matrix (rows = time), at least 2 strategies, all finite."""
    arr = np.asarray(returns, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"returns must be a 2-D T×N matrix, got shape {arr.shape}")
    if arr.shape[1] < 2:
        raise ValueError(f"PBO needs at least 2 strategies (columns), got {arr.shape[1]}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"returns has {len(bad)} non-finite values (first at row, column "
                         f"{tuple(int(i) for i in bad[0])})")
    return arr


def _block_stats(x: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block (S×N) sums and sums of squares of each column about its mean.

    Centring first keeps sum-of-squares variances accurate (the Sharpe ratio is not
    shift-invariant, but the variance is; the mean is added back in :func:`_half_sharpe`).
    """
    centred = (x - x.mean(axis=0)).reshape(n_blocks, -1, x.shape[1])
    return centred.sum(axis=1), (centred * centred).sum(axis=1)


def _check_not_constant(x: np.ndarray, n_blocks: int, member: np.ndarray) -> None:
    """Refuse a strategy that is constant on some half, where its Sharpe ratio is undefined.

    Exact, and cheap in the usual case: a half is constant only if each of its S/2 blocks is
    constant, so only strategies with at least S/2 constant blocks are examined further.
    """
    blocks = x.reshape(n_blocks, -1, x.shape[1])
    lo, hi = blocks.min(axis=1), blocks.max(axis=1)
    for j in np.flatnonzero((lo == hi).sum(axis=0) >= n_blocks // 2):
        for half in (member, ~member):
            const = (np.where(half, lo[:, j], np.inf).min(axis=1)
                     == np.where(half, hi[:, j], -np.inf).max(axis=1))
            if const.any():
                raise ValueError(f"strategy {int(j)} is constant on a CSCV half, where its "
                                 "Sharpe ratio is undefined")


def _half_sharpe(
    sums: np.ndarray, squares: np.ndarray, weights: np.ndarray, mu: np.ndarray, m: int
) -> np.ndarray:
    """Sharpe ratios (ddof = 1), splits × strategies, of the m-row halves picked by ``weights``."""
    s, q = weights @ sums, weights @ squares
    var = np.maximum(q - s * s / m, 0.0) / (m - 1)
    return (mu + s / m) / np.sqrt(var)


def _relative_rank(oos: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Average rank (1..N ascending, as ``scipy.stats.rankdata``) of ``chosen`` per row."""
    value = oos[np.arange(len(oos)), chosen][:, None]
    below = (oos < value).sum(axis=1)
    ties = (oos == value).sum(axis=1)
    return below + (ties + 1) / 2.0


def _membership(n_blocks: int) -> np.ndarray:
    """Splits × S booleans: block b is in-sample in split i, ``itertools.combinations`` order."""
    inside = np.array(list(combinations(range(n_blocks), n_blocks // 2)), dtype=np.intp)
    member = np.zeros((len(inside), n_blocks), dtype=bool)
    np.put_along_axis(member, inside, True, axis=1)
    return member


def probability_of_backtest_overfitting(returns: object, n_blocks: int = 16) -> PBOResult:
    """PBO by CSCV: the share of IS/OOS splits where the IS-best strategy ranks ≤ median OOS.

    ``returns`` is a T×N matrix (2-D array or DataFrame; rows = time, columns = the N strategy
    configurations tried). The rows are cut into ``n_blocks`` = S equal contiguous blocks; when
    S does not divide T the first T mod S rows are dropped (the most recent data is kept). Each
    of the C(S, S/2) block subsets (``itertools.combinations`` order) is in-sample, its
    complement out-of-sample. Per split: n* = argmax of IS Sharpe ratio (first on ties), ω̄ =
    OOS rank of n* / (N+1) with ranks 1..N ascending and ties given their average rank, and
    λ = ln(ω̄/(1−ω̄)). PBO = share of λ ≤ 0.

    Per-block sums make each split's Sharpe ratios O(S·N) instead of O(T·N), and the splits are
    scored as matrices, so S = 16 (12,870 splits) at N = 50 takes milliseconds.
    """
    x = _returns_matrix(returns)
    s = integer(n_blocks, "n_blocks", 2)
    if s % 2:
        raise ValueError(f"n_blocks must be even (IS and OOS are halves), got {s}")
    if s > x.shape[0]:
        raise ValueError(f"n_blocks = {s} exceeds the {x.shape[0]} observations")
    dropped = x.shape[0] % s
    x = x[dropped:]
    m = x.shape[0] // 2
    if m < 2:
        raise ValueError(f"each half has {m} row; a Sharpe ratio needs at least 2")

    member = _membership(s)
    _check_not_constant(x, s, member)
    sums, squares = _block_stats(x, s)
    mu = x.mean(axis=0)
    parts: dict[str, list[np.ndarray]] = {"best": [], "is": [], "oos": [], "rank": []}
    for start in range(0, len(member), _CHUNK):
        w = member[start:start + _CHUNK]
        sr_in = _half_sharpe(sums, squares, w.astype(np.float64), mu, m)
        sr_out = _half_sharpe(sums, squares, (~w).astype(np.float64), mu, m)
        best = np.argmax(sr_in, axis=1)
        rows = np.arange(len(best))
        parts["best"].append(best)
        parts["is"].append(sr_in[rows, best])
        parts["oos"].append(sr_out[rows, best])
        parts["rank"].append(_relative_rank(sr_out, best))

    got = {k: np.concatenate(v) for k, v in parts.items()}
    omega = got["rank"] / (x.shape[1] + 1)
    logits = np.log(omega / (1.0 - omega))
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)), logits=logits, n_combinations=len(member),
        selected=got["best"], is_sharpe=got["is"], oos_sharpe=got["oos"], n_blocks=s,
        n_dropped=dropped,
    )

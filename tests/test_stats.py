"""Overfitting statistics against reference/numerics.md §7 and independent references.

Welch against ``scipy.stats.ttest_ind(equal_var=False)`` to 1e-12; sample sizes, SR* and DSR on
the measured values of §7; PBO against the literal CSCV transcription in
``benchmarks/reference/pbo_literal.py``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch.data import sp500
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks.reference.pbo_literal import pbo_literal
from bot4_dagster.ml.stats import (
    PBOResult,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sample_size_means,
    sample_size_proportions,
    sharpe_ratio,
    welch_ttest,
)

TOL = 1e-12
SEED = 20200222
PERIODS = 250  # the DSR paper's trading days per year


def _sp500() -> np.ndarray:
    close = sp500.load()["Adj Close"]
    return (100 * close.pct_change().dropna()).to_numpy(np.float64)


def _welch_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(SEED)
    r = _sp500()
    half = len(r) // 2
    return {
        "sp500_halves": (r[:half], r[half:]),
        "normal_unequal": (rng.normal(0.0, 1.0, 20), rng.normal(0.4, 2.5, 35)),
        "t3_large": (rng.standard_t(3, 5000), rng.standard_t(3, 3000) + 0.05),
        "tiny": (np.array([1.0, 2.0]), np.array([0.5, 3.0, 4.0])),
        "one_constant": (np.full(5, 2.0), rng.normal(0.0, 1.0, 9)),
    }


# --- Welch -----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, constant a
@pytest.mark.parametrize("case", list(_welch_cases()))
def test_welch_matches_scipy(case: str) -> None:
    a, b = _welch_cases()[case]
    t, df, p = welch_ttest(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(float(ref.statistic), rel=TOL, abs=TOL)
    assert df == pytest.approx(float(ref.df), rel=TOL)
    assert p == pytest.approx(float(ref.pvalue), rel=TOL, abs=TOL)


def test_welch_accepts_sequences_and_is_antisymmetric() -> None:
    a, b = [0.1, -0.3, 0.7, 0.2], [1.1, 0.4, 0.9]
    t, df, p = welch_ttest(a, b)
    t2, df2, p2 = welch_ttest(b, a)
    assert (t2, df2, p2) == (-t, df, p)
    assert all(isinstance(v, float) for v in (t, df, p))


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        ([1.0], [1.0, 2.0], "a needs at least 2"),
        ([1.0, 2.0], [], "b needs at least 2"),
        ([1.0, np.nan, 2.0], [1.0, 2.0], "a has 1 non-finite"),
        ([1.0, 2.0], [1.0, np.inf], "b has 1 non-finite"),
        ([[1.0, 2.0]], [1.0, 2.0], "1-D"),
        ([3.0, 3.0], [1.0, 1.0, 1.0], "both samples are constant"),
    ],
)
def test_welch_errors(a: object, b: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        welch_ttest(a, b)


# --- Sample sizes ----------------------------------------------------------------------------


def test_sample_sizes_reference_values() -> None:
    assert sample_size_means(0.1, 1.0) == 1570
    assert sample_size_means(-0.1, 1.0, 1.0) == 1570
    assert sample_size_proportions(0.50, 0.52) == 9806
    assert sample_size_proportions(0.52, 0.50) == 9806


def test_sample_size_means_formula() -> None:
    z = stats.norm.ppf(0.995) + stats.norm.ppf(0.9)
    expected = math.ceil(z**2 * (1.0 + 4.0) / 0.25**2)
    assert sample_size_means(0.25, 1.0, 2.0, alpha=0.01, power=0.9) == expected


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sample_size_means(0.0, 1.0), "delta must be non-zero"),
        (lambda: sample_size_means(0.1, 0.0), "sigmas must be > 0"),
        (lambda: sample_size_means(0.1, 1.0, alpha=1.0), "alpha"),
        (lambda: sample_size_means(0.1, 1.0, power=0.0), "power"),
        (lambda: sample_size_proportions(0.5, 0.5), "must differ"),
        (lambda: sample_size_proportions(0.0, 0.5), "p1"),
    ],
)
def test_sample_size_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# --- Sharpe, PSR, DSR ------------------------------------------------------------------------


def test_sharpe_ratio_per_period() -> None:
    r = _sp500()
    assert sharpe_ratio(r) == pytest.approx(r.mean() / r.std(ddof=1), rel=TOL)
    with pytest.raises(ValueError, match="constant"):
        sharpe_ratio([0.01, 0.01, 0.01])


def test_psr_reduces_to_normal_cdf_and_is_half_at_benchmark() -> None:
    assert probabilistic_sharpe_ratio(0.1, 0.1, 500, skew=-2.0, kurtosis=9.0) == 0.5
    expected = stats.norm.cdf(0.1 * math.sqrt(99) / math.sqrt(1 + 0.5 * 0.01))
    assert probabilistic_sharpe_ratio(0.1, 0.0, 100) == pytest.approx(expected, rel=TOL)


def test_dsr_paper_example() -> None:
    """Bailey & López de Prado (2014): T = 1250, N = 100, annual SR 2.5 and V 0.5, γ₃ = −3,
    γ₄ = 10."""
    sr, variance = 2.5 / math.sqrt(PERIODS), 0.5 / PERIODS
    sr_star = expected_max_sharpe(variance, 100)
    assert sr_star * math.sqrt(PERIODS) == pytest.approx(1.7894, abs=5e-5)
    dsr = deflated_sharpe_ratio(
        sr, n_obs=1250, n_trials=100, sr_variance=variance, skew=-3.0, kurtosis=10.0
    )
    assert dsr == pytest.approx(0.900397, abs=1e-6)
    assert dsr == probabilistic_sharpe_ratio(sr, sr_star, 1250, -3.0, 10.0)


def test_dsr_falls_with_more_trials() -> None:
    kw = dict(n_obs=1000, sr_variance=0.002)
    values = [deflated_sharpe_ratio(0.1, n_trials=n, **kw) for n in (2, 10, 100, 1000)]
    assert values == sorted(values, reverse=True)
    assert expected_max_sharpe(0.0, 50) == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: expected_max_sharpe(0.1, 1), "n_trials must be >= 2"),
        (lambda: expected_max_sharpe(-0.1, 10), "sr_variance must be >= 0"),
        (lambda: probabilistic_sharpe_ratio(0.1, 0.0, 1), "n_obs must be >= 2"),
        (lambda: probabilistic_sharpe_ratio(1.0, 0.0, 100, skew=5.0), "inconsistent"),
        (lambda: probabilistic_sharpe_ratio(np.nan, 0.0, 100), "sr must be finite"),
    ],
)
def test_psr_dsr_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# --- PBO -------------------------------------------------------------------------------------


def _noise(seed: int, t: int = 1000, n: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((t, n))


@pytest.fixture(scope="module")
def noise_result() -> PBOResult:
    return probability_of_backtest_overfitting(_noise(SEED), n_blocks=16)


def test_pbo_noise_is_high_and_deterministic(noise_result: PBOResult) -> None:
    res = noise_result
    assert res.n_combinations == math.comb(16, 8) == len(res.logits) == 12870
    assert res.pbo > 0.3
    assert res.pbo == float(np.mean(res.logits <= 0))
    again = probability_of_backtest_overfitting(_noise(SEED), n_blocks=16)
    np.testing.assert_array_equal(again.logits, res.logits)
    assert again.pbo == res.pbo


def test_pbo_noise_averages_near_one_half() -> None:
    """Over independent noise panels PBO centres on 1/2; one panel alone can land far from it."""
    values = [probability_of_backtest_overfitting(_noise(seed)).pbo for seed in range(20)]
    assert 0.35 < np.mean(values) < 0.65


def test_pbo_dominant_strategy_is_near_zero() -> None:
    x = _noise(SEED)
    x[:, 17] += 0.3  # SR ≈ 0.3 per observation
    res = probability_of_backtest_overfitting(x)
    assert res.pbo < 0.01
    assert np.all(res.selected == 17)
    assert res.prob_oos_loss == 0.0


@pytest.mark.parametrize(("t", "n", "s"), [(103, 7, 8), (64, 5, 4), (250, 12, 10), (400, 30, 12)])
def test_pbo_equals_literal_transcription(t: int, n: int, s: int) -> None:
    x = np.random.default_rng(t * n).normal(0.0005, 0.01, (t, n))
    res = probability_of_backtest_overfitting(x, n_blocks=s)
    pbo, logits = pbo_literal(x, n_blocks=s)
    assert res.pbo == pbo
    np.testing.assert_allclose(res.logits, logits, rtol=0, atol=1e-12)
    assert res.n_dropped == t % s


def test_pbo_ties_average_rank_and_first_argmax() -> None:
    base = np.random.default_rng(3).normal(0.0, 1.0, (96, 4))
    x = np.column_stack([base, base[:, 1], base[:, 1]])  # columns 1, 4, 5 identical
    res = probability_of_backtest_overfitting(x, n_blocks=6)
    pbo, logits = pbo_literal(x, n_blocks=6)
    np.testing.assert_allclose(res.logits, logits, rtol=0, atol=1e-12)
    assert res.pbo == pbo
    assert not np.isin(res.selected, [4, 5]).any()  # a tie goes to the first column


def test_pbo_accepts_dataframe_and_reports_pairs(noise_result: PBOResult) -> None:
    df = pd.DataFrame(_noise(SEED), index=pd.RangeIndex(1000, name="t"))
    res = probability_of_backtest_overfitting(df)
    np.testing.assert_array_equal(res.logits, noise_result.logits)
    assert res.is_sharpe.shape == res.oos_sharpe.shape == res.selected.shape == (12870,)
    assert np.all(res.is_sharpe >= res.oos_sharpe.min())
    assert (res.n_blocks, res.n_dropped) == (16, 1000 % 16)


def test_pbo_drops_leading_rows() -> None:
    x = _noise(1, t=203, n=6)
    res = probability_of_backtest_overfitting(x, n_blocks=10)
    trimmed = probability_of_backtest_overfitting(x[3:], n_blocks=10)
    assert res.n_dropped == 3 and trimmed.n_dropped == 0
    np.testing.assert_array_equal(res.logits, trimmed.logits)


@pytest.mark.parametrize(
    ("x", "s", "match"),
    [
        (_noise(0, 100, 5), 7, "must be even"),
        (_noise(0, 10, 5), 12, "exceeds the 10 observations"),
        (_noise(0, 100, 1), 4, "at least 2 strategies"),
        (_noise(0, 100, 5)[:, 0], 4, "2-D"),
        (_noise(0, 3, 5), 2, "a Sharpe ratio needs at least 2"),
        (np.where(np.eye(100, 5, -40) == 1, np.nan, _noise(0, 100, 5)), 4, "non-finite"),
        (np.column_stack([_noise(0, 100, 3), np.r_[np.zeros(50), np.ones(50)]]), 2,
         "strategy 3 is constant"),
    ],
)
def test_pbo_errors(x: np.ndarray, s: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        probability_of_backtest_overfitting(x, n_blocks=s)


def test_pbo_tolerates_partly_constant_strategy() -> None:
    x = _noise(4, 160, 5)
    x[:40, 2] = 0.0  # flat for 2 of 8 blocks: every half still varies
    res = probability_of_backtest_overfitting(x, n_blocks=8)
    pbo, logits = pbo_literal(x, n_blocks=8)
    assert res.pbo == pbo
    np.testing.assert_allclose(res.logits, logits, rtol=0, atol=1e-12)

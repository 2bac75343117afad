"""Ljung-Box and ARCH-LM against statsmodels 0.15 (``acorr_ljungbox``, ``het_arch``).

Tolerances are the acceptance of reference/numerics.md §2: ≤ 1e-10 relative on statistics,
≤ 1e-10 absolute on p-values, identical NaN masks.
"""

from __future__ import annotations

import numpy as np
import pytest
from arch.data import sp500
from numba.core.dispatcher import Dispatcher
from statsmodels.stats.diagnostic import acorr_ljungbox, het_arch

from bot4_dagster.kernels import NUMBA_ENABLED
from bot4_dagster.kernels.diagnostics import (
    acf,
    acf_python,
    arch_lm_ols,
    arch_lm_ols_python,
    ljung_box_q,
    ljung_box_q_python,
)
from bot4_dagster.ml.diagnostics import ArchLMTest, arch_lm, arch_lm_test, ljung_box

# statsmodels' het_arch warns unless result_object is given; prove we call it cleanly
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

STAT_RTOL = 1e-10
P_ATOL = 1e-10
SP500_LB10 = 58.11263071255281
SP500_ARCH5 = 1097.6948332172444


def _sp500() -> np.ndarray:
    close = sp500.load()["Adj Close"]
    return (100 * close.pct_change().dropna()).to_numpy(np.float64)


DATASETS = {
    "sp500": _sp500(),
    "normal": np.random.default_rng(0).standard_normal(2000),
    "t3": np.random.default_rng(1).standard_t(3, 500),
}


def _close(ours: float, ref: float) -> None:
    assert abs(ours - ref) <= STAT_RTOL * abs(ref), (ours, ref)


def _p_close(ours: np.ndarray, ref: np.ndarray) -> None:
    ours, ref = np.atleast_1d(ours), np.atleast_1d(ref)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=P_ATOL)


def _het_arch(x: np.ndarray, nlags: int, ddof: int):
    return het_arch(x, nlags=nlags, ddof=ddof, result_object=True)


# ---------------------------------------------------------------- Ljung-Box


@pytest.mark.parametrize("model_df", [0, 2])
@pytest.mark.parametrize("h", [1, 5, 10, 20])
@pytest.mark.parametrize("name", list(DATASETS))
def test_ljung_box_matches_statsmodels(name: str, h: int, model_df: int) -> None:
    x = DATASETS[name]
    ref = acorr_ljungbox(x, lags=h, model_df=model_df).iloc[-1]
    q, p = ljung_box(x, h, model_df=model_df)
    assert isinstance(q, float) and isinstance(p, float)
    _close(q, ref["lb_stat"])
    _p_close(np.array(p), np.array(ref["lb_pvalue"]))
    assert np.isnan(p) == (h - model_df <= 0)


@pytest.mark.parametrize("model_df", [0, 2])
@pytest.mark.parametrize("name", list(DATASETS))
def test_ljung_box_lag_list_matches_statsmodels_table(name: str, model_df: int) -> None:
    x = DATASETS[name]
    lags = [10, 1, 2, 5, 20, 5]
    ref = acorr_ljungbox(x, lags=lags, model_df=model_df)
    q, p = ljung_box(x, lags, model_df=model_df)
    np.testing.assert_allclose(q, ref["lb_stat"].to_numpy(), rtol=STAT_RTOL, atol=0)
    _p_close(p, ref["lb_pvalue"].to_numpy())
    full = acorr_ljungbox(x, lags=20, model_df=model_df)
    q_all, p_all = ljung_box(x, np.arange(1, 21), model_df=model_df)
    np.testing.assert_allclose(q_all, full["lb_stat"].to_numpy(), rtol=STAT_RTOL, atol=0)
    _p_close(p_all, full["lb_pvalue"].to_numpy())


def test_ljung_box_sp500_anchor() -> None:
    q, p = ljung_box(DATASETS["sp500"], 10)
    assert q == pytest.approx(SP500_LB10, rel=1e-12)
    assert 0 < p < 1e-8


def test_ljung_box_model_df_changes_only_dof() -> None:
    x = DATASETS["t3"]
    q0, p0 = ljung_box(x, 10)
    q3, p3 = ljung_box(x, 10, model_df=3)
    assert q0 == q3 and p3 < p0


def test_ljung_box_accepts_series_and_lists() -> None:
    import pandas as pd

    x = DATASETS["normal"]
    assert ljung_box(pd.Series(x), 5) == ljung_box(list(x), 5) == ljung_box(x, np.int64(5))


# ---------------------------------------------------------------- ARCH-LM


@pytest.mark.parametrize("ddof", [0, 3])
@pytest.mark.parametrize("nlags", [1, 5, 12])
@pytest.mark.parametrize("name", list(DATASETS))
def test_arch_lm_matches_het_arch(name: str, nlags: int, ddof: int) -> None:
    x = DATASETS[name]
    ref = _het_arch(x, nlags, ddof)
    lm, p = arch_lm(x, nlags, ddof=ddof)
    _close(lm, ref.lm)
    _p_close(np.array(p), np.array(ref.lmpval))
    full = arch_lm_test(x, nlags, ddof=ddof)
    assert isinstance(full, ArchLMTest)
    assert (full.lm, full.lm_pvalue) == (lm, p)
    _close(full.fstat, ref.fval)
    _p_close(np.array(full.f_pvalue), np.array(ref.fpval))


def test_arch_lm_sp500_many_lags() -> None:
    """Squared percent returns are heavy-tailed and their lags collinear-ish: QR must hold up."""
    x = DATASETS["sp500"]
    for nlags in range(1, 26):
        ref = _het_arch(x, nlags, 0)
        got = arch_lm_test(x, nlags)
        _close(got.lm, ref.lm)
        _close(got.fstat, ref.fval)
        _p_close(np.array([got.lm_pvalue, got.f_pvalue]), np.array([ref.lmpval, ref.fpval]))


def test_arch_lm_sp500_anchor() -> None:
    lm, p = arch_lm(DATASETS["sp500"], 5)
    assert lm == pytest.approx(SP500_ARCH5, rel=1e-12)
    assert p == pytest.approx(4.22e-235, rel=1e-2)


def test_arch_lm_ddof_changes_only_multiplier() -> None:
    x = DATASETS["normal"]
    lm0, _ = arch_lm(x, 5)
    lm3, _ = arch_lm(x, 5, ddof=3)
    m = len(x) - 5
    assert lm3 == pytest.approx(lm0 * (m - 3) / m, rel=1e-14)


def test_arch_lm_is_scale_free() -> None:
    """Crypto decimal returns (~1e-3) give the same statistic as percent returns."""
    x = DATASETS["t3"]
    assert arch_lm(x * 2.0**-40, 5) == arch_lm(x, 5)
    assert arch_lm(x * 1e-3, 5) == pytest.approx(arch_lm(x, 5), rel=1e-12)
    assert ljung_box(x * 1e150, 5)[0] == pytest.approx(ljung_box(x, 5)[0], rel=1e-12)


# ---------------------------------------------------------------- kernels vs Python twins


def test_kernels_are_compiled_when_numba_is_on() -> None:
    for fn in (acf, ljung_box_q, arch_lm_ols):
        assert isinstance(fn, Dispatcher) == NUMBA_ENABLED


@pytest.mark.parametrize("name", list(DATASETS))
def test_kernels_match_python_twins(name: str) -> None:
    x = DATASETS[name]
    n = len(x)
    rho, rho_py = np.empty(21), np.empty(21)
    acf(x, 20, rho)
    acf_python(x, 20, rho_py)
    np.testing.assert_allclose(rho, rho_py, rtol=1e-14, atol=0)
    q, q_py = np.empty(20), np.empty(20)
    ljung_box_q(rho, n, q)
    ljung_box_q_python(rho, n, q_py)
    np.testing.assert_allclose(q, q_py, rtol=1e-14, atol=0)
    for nlags in (1, 5, 12, 20):
        out, out_py = np.empty(2), np.empty(2)
        arch_lm_ols(x, nlags, out)
        arch_lm_ols_python(x, nlags, out_py)
        np.testing.assert_allclose(out, out_py, rtol=1e-14, atol=0)
        assert out[0] + out[1] == pytest.approx(1.0, abs=1e-12)


def test_kernels_flag_degenerate_input_with_nan() -> None:
    rho, out = np.empty(3), np.empty(2)
    for fn in (acf, acf_python):
        fn(np.full(10, 2.5), 2, rho)
        assert np.isnan(rho).all()
    for fn in (arch_lm_ols, arch_lm_ols_python):
        fn(np.tile([1.0, -1.0], 10), 2, out)
        assert np.isnan(out).all()


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises(bad: float) -> None:
    x = DATASETS["normal"].copy()
    x[7] = bad
    with pytest.raises(ValueError, match=r"non-finite.*index 7"):
        ljung_box(x, 5)
    with pytest.raises(ValueError, match=r"non-finite.*index 7"):
        arch_lm(x, 5)


def test_ljung_box_bad_arguments_raise() -> None:
    x = DATASETS["normal"][:30]
    with pytest.raises(ValueError, match="lags must be >= 1, got 0"):
        ljung_box(x, 0)
    with pytest.raises(ValueError, match="lag 30 with n = 30"):
        ljung_box(x, 30)
    with pytest.raises(ValueError, match="lag 40 with n = 30"):
        ljung_box(x, [1, 40])
    with pytest.raises(ValueError, match="empty"):
        ljung_box(x, [])
    with pytest.raises(TypeError, match="integer"):
        ljung_box(x, 2.5)
    with pytest.raises(ValueError, match="model_df must be >= 0"):
        ljung_box(x, 5, model_df=-1)
    with pytest.raises(ValueError, match="1-D"):
        ljung_box(x.reshape(5, 6), 2)
    with pytest.raises(ValueError, match="constant"):
        ljung_box(np.ones(30), 5)
    assert ljung_box(x, 29)[0] > 0  # h = n - 1 is the largest lag statsmodels allows


def test_arch_lm_bad_arguments_raise() -> None:
    x = DATASETS["normal"][:30]
    with pytest.raises(ValueError, match="nlags must be >= 1, got 0"):
        arch_lm(x, 0)
    with pytest.raises(ValueError, match=r"at least 2\*nlags \+ 2 = 32 observations.*n = 30"):
        arch_lm(x, 15)
    with pytest.raises(ValueError, match="ddof must be >= 0"):
        arch_lm(x, 5, ddof=-1)
    with pytest.raises(ValueError, match="ddof = 25 must be < m = n - nlags = 25"):
        arch_lm(x, 5, ddof=25)
    with pytest.raises(ValueError, match="degenerate"):
        arch_lm(np.tile([1.0, -1.0], 15), 3)
    with pytest.raises(ValueError, match="degenerate"):
        arch_lm_test(np.tile([1.0, 2.0], 15), 2)  # lag1 + lag2 of e² is constant
    assert arch_lm(x, 14)[0] >= 0  # n = 2*nlags + 2 is the smallest sample that works

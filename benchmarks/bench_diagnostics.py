"""Diagnostics benchmarks: Ljung-Box and ARCH-LM on S&P 500 returns vs statsmodels."""

from __future__ import annotations

from statsmodels.stats.diagnostic import acorr_ljungbox, het_arch

from bot4_dagster.ml.diagnostics import arch_lm, ljung_box
from bot4_dagster.perf import Report

from ._data import sp500_returns

GROUP = "diagnostics"


def run(report: Report) -> None:
    if not (report.wants("ljung_box", GROUP) or report.wants("arch_lm", GROUP)):
        return
    r = sp500_returns()
    n = len(r)
    ljung_box(r, 10)  # compile (or load the cache) before timing
    arch_lm(r, 5)
    report.compare(
        "ljung_box", lambda: ljung_box(r, 10), lambda: acorr_ljungbox(r, lags=10),
        reference_name="statsmodels acorr_ljungbox(lags=10)", group=GROUP, items=n,
        unit=f"{n:,} returns",
        notes="Q(10) and its p-value; statsmodels builds the 10-row DataFrame",
    )
    report.compare(
        "arch_lm", lambda: arch_lm(r, 5),
        lambda: het_arch(r, nlags=5, result_object=True),
        reference_name="statsmodels het_arch(nlags=5)", group=GROUP, items=n,
        unit=f"{n:,} returns",
        notes="LM and p-value (Householder QR kernel); statsmodels fits OLS via pinv and also "
              "gives F",
    )

"""Overfitting-statistics benchmarks: Welch's t-test vs scipy on S&P 500 halves, and PBO by CSCV
(T = 1000, N = 50, S = 16: 12,870 splits) vs the literal per-split transcription."""

from __future__ import annotations

import numpy as np
from scipy.stats import ttest_ind

from bot4_dagster.ml.stats import probability_of_backtest_overfitting, welch_ttest
from bot4_dagster.perf import Report

from ._data import SEED, sp500_returns
from .reference.pbo_literal import pbo_literal

GROUP = "stats"
T_ROWS, N_STRATEGIES, N_BLOCKS = 1000, 50, 16


def _bench_welch(report: Report) -> None:
    r = sp500_returns()
    a, b = r[: len(r) // 2], r[len(r) // 2:]
    ours, ref = welch_ttest(a, b), ttest_ind(a, b, equal_var=False)
    gap = max(abs(x - float(y))
              for x, y in zip(ours, (ref.statistic, ref.df, ref.pvalue), strict=True))
    report.compare(
        "welch_ttest", lambda: welch_ttest(a, b), lambda: ttest_ind(a, b, equal_var=False),
        reference_name="scipy ttest_ind(equal_var=False)", group=GROUP, items=len(r),
        unit=f"{len(r):,} returns", goal=">= 1x",
        notes=f"S&P 500 percent returns split in halves; t {ours[0]:.6f}, df {ours[1]:.1f}, "
              f"p {ours[2]:.6f}; max |Δ| vs scipy {gap:.1e}",
    )


def _bench_pbo(report: Report) -> None:
    x = np.random.default_rng(SEED).standard_normal((T_ROWS, N_STRATEGIES))
    ours = probability_of_backtest_overfitting(x, N_BLOCKS)
    ref_pbo, ref_logits = pbo_literal(x, N_BLOCKS)
    gap = float(np.max(np.abs(ours.logits - ref_logits)))
    report.compare(
        "pbo_cscv", lambda: probability_of_backtest_overfitting(x, N_BLOCKS),
        lambda: pbo_literal(x, N_BLOCKS),
        reference_name="literal CSCV (Sharpe from rows per split)",
        group=GROUP, items=ours.n_combinations,
        unit=f"{N_STRATEGIES} strategies x {ours.n_combinations:,} splits", goal="p50 <= 100 ms",
        warmup=1, repeat=5,
        notes=f"Gaussian noise T={T_ROWS}, S={N_BLOCKS}: PBO {ours.pbo:.4f} (literal "
              f"{ref_pbo:.4f}), max |Δ logit| {gap:.1e}; block sums + matrix scoring",
    )


def run(report: Report) -> None:
    if report.wants("welch_ttest", GROUP):
        _bench_welch(report)
    if report.wants("pbo_cscv", GROUP):
        _bench_pbo(report)

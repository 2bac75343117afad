"""GARCH(1,1) benchmarks against ``arch`` in the same process: fits on the 5,030 S&P 500
returns (Normal and Student's t) and the per-observation filter."""

from __future__ import annotations

import warnings

import numpy as np
from arch import arch_model
from arch.univariate.recursions import garch_recursion as arch_recursion

from bot4_dagster.ml.garch import fit_garch
from bot4_dagster.perf import Benchmark, Report, Timing, measure

from ._data import sp500_returns

GROUP = "garch"


def _bench_fit(report: Report, r: np.ndarray, dist: str) -> None:
    model = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, dist=dist)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = model.fit(disp="off")
    ours = fit_garch(r, dist=dist)
    gap = ours.loglik - reference.loglikelihood
    report.compare(
        f"fit_{dist}_sp500", lambda: fit_garch(r, dist=dist),
        lambda: model.fit(disp="off"), reference_name="arch_model(...).fit()", group=GROUP,
        items=len(r), unit=f"{len(r):,} returns", goal=">= 10x",
        notes=f"log-likelihood ours - arch = {gap:+.2e} (never below); max |Δθ| "
              f"{np.max(np.abs(ours.theta - reference.params.to_numpy())):.1e}; "
              f"{ours.evaluations} objective evaluations with gradient (arch: SLSQP, numerical "
              "gradients)",
    )


def _bench_filter(report: Report, r: np.ndarray) -> None:
    fit = fit_garch(r[:2500], dist="t")
    new = r[2500:]
    n = len(new)
    p = fit.params
    params = np.array([p["omega"], p["alpha"], p["beta"]])
    resid = new - p["mu"]
    sigma2 = np.empty(n)
    bounds = np.tile(np.array([-1.0, 1.7e308]), (n, 1))
    fit.filter(new)

    def per_observation(timing: Timing) -> Timing:
        return Timing(tuple(s / n for s in timing.samples), timing.number)

    ours = per_observation(measure(lambda: fit.filter(new)))
    ref = per_observation(measure(lambda: arch_recursion(
        params, resid * resid, np.sign(resid), sigma2, 1, 0, 1, n, float(resid[0] ** 2), bounds)))
    report.add(Benchmark(
        "filter_per_observation", ours, group=GROUP, unit="observation", items=1,
        reference_name="arch garch_recursion (Cython)", reference=ref, goal="p50 <= 1 µs",
        notes=f"GarchFit.filter over {n:,} new returns, time per observation",
    ))
    state = fit.online()
    report.measure("online_update", lambda: state.update(0.5), group=GROUP, unit="update",
                   items=1, goal="p99 <= 1 µs",
                   notes="GarchState.update: one return in, next variance out (pure Python)")


def run(report: Report) -> None:
    r = sp500_returns()
    for dist in ("normal", "t"):
        if report.wants(f"fit_{dist}_sp500", GROUP):
            _bench_fit(report, r, dist)
    if report.wants("filter_per_observation", GROUP) or report.wants("online_update", GROUP):
        _bench_filter(report, r)

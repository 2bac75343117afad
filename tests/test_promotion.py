"""Promotion statistics (reference/trading.md §4.2, tests B6 and M7): sample sizes, Welch bounds
against scipy, sticky canary routing, and the gates of each step."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats

from bot4_dagster.registry.promotion import (
    ADVANCE,
    HOLD,
    INCONCLUSIVE,
    ROLLBACK,
    STEPS,
    gate,
    paired_bound,
    paired_sample_size,
    per_arm_sample_size,
    planning_values,
    route_unit,
    routes_to_canary,
    welch_bound,
)


def test_the_sample_sizes_reproduce_the_reference_figures():
    exact = planning_values()
    assert round(exact["per_arm"]) == 1237 and round(exact["paired"]) == 247  # §4.2
    assert exact["per_arm"] == pytest.approx(1236.51, abs=0.01)
    assert exact["paired"] == pytest.approx(247.30, abs=0.01)
    assert per_arm_sample_size() == 1237 and paired_sample_size() == 248  # rounded up
    assert per_arm_sample_size(delta_bps=100.0) == 200  # the floor


def test_welch_bound_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 40.0, 900), rng.normal(-2.0, 55.0, 1300)
    result = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    bound = welch_bound(a, b, level=0.95)
    assert bound.difference / bound.standard_error == pytest.approx(result.statistic, rel=1e-10)
    assert bound.df == pytest.approx(result.df, rel=1e-10)
    assert bound.bound == pytest.approx(result.confidence_interval(0.95).low, rel=1e-10)
    upper = welch_bound(a, b, level=0.99, upper=True)
    less = stats.ttest_ind(a, b, equal_var=False, alternative="less")
    assert upper.bound == pytest.approx(less.confidence_interval(0.99).high, rel=1e-10)


def test_paired_bound_matches_scipy():
    rng = np.random.default_rng(4)
    d = rng.normal(-1.0, 30.0, 500)
    result = stats.ttest_1samp(d, 0.0, alternative="less")
    assert paired_bound(d, level=0.99, upper=True).bound == pytest.approx(
        result.confidence_interval(0.99).high, rel=1e-10)


def test_canary_routing_is_sticky_monotone_and_takes_its_share():
    pairs = [(f"strategy{s}", f"SYM{i}") for s in range(10) for i in range(1000)]
    routed = [routes_to_canary(s, sym, 0.10, salt="rollout-7") for s, sym in pairs]
    assert abs(np.mean(routed) - 0.10) <= 0.01  # M7: 10 % ± 1 %
    assert routed == [routes_to_canary(s, sym, 0.10, salt="rollout-7") for s, sym in pairs]
    wider = [routes_to_canary(s, sym, 0.25, salt="rollout-7") for s, sym in pairs]
    assert all(w for r, w in zip(routed, wider, strict=True) if r)  # 10 % ⊂ 25 %
    other = [routes_to_canary(s, sym, 0.10, salt="rollout-8") for s, sym in pairs]
    assert np.mean(np.array(routed) & np.array(other)) < 0.02  # another rollout, another set
    assert 0.0 <= route_unit("a", "b") < 1.0


def _comparison(shift, n=5000, seed=0):
    rng = np.random.default_rng(seed)
    return welch_bound(rng.normal(shift, 50.0, n), rng.normal(0.0, 50.0, n))


def test_each_gate_acts_only_on_enough_evidence():
    week = timedelta(days=7)
    assert gate(0.10, _comparison(0.0, n=150), dwell=week, n_min=1237).action == INCONCLUSIVE
    assert gate(0.10, _comparison(0.0), dwell=timedelta(hours=10), n_min=1237).action == HOLD
    advance = gate(0.10, _comparison(1.0), dwell=week, n_min=1237)
    assert advance.action == ADVANCE and advance.step == 0.25  # non-inferior: next step
    assert "non-inferiority" in advance.trace[-1]
    assert gate(0.10, _comparison(-8.0), dwell=week, n_min=1237).action == HOLD
    final = gate(0.50, _comparison(0.0), dwell=week, n_min=1237)  # not superior: stays
    assert final.action == HOLD and "superiority" in final.trace[-1]
    assert gate(0.50, _comparison(12.0), dwell=week, n_min=1237).step == 1.0
    breach = gate(0.25, _comparison(5.0), dwell=week, n_min=1237,
                  guardrail_breaches=("drawdown 9% > 8%",))
    assert breach.action == ROLLBACK and breach.step == 0.0
    assert gate(0.10, _comparison(0.0), dwell=week, n_min=1237,
                trades=(12, 40)).action == INCONCLUSIVE
    assert STEPS[0] == 0.0  # the shadow holds no capital

"""The rollback rule (reference/trading.md §4.3, tests B1–B5 and B7)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from bot4_dagster.registry.rollback import (
    FROZEN,
    INCONCLUSIVE,
    NONE,
    ROLLBACK,
    Guardrails,
    History,
    RollbackConfig,
    evaluate,
    false_rollback_rate,
    may_promote,
)

T0 = datetime(2026, 3, 1)
CONFIG = RollbackConfig()


def _deltas(mean, n=1000, seed=0):
    return np.random.default_rng(seed).normal(mean, 31.6, n)


SETTLED = History(last_alias_change=T0 - timedelta(days=30))  # long past any cooldown


def _run(means, history=SETTLED, start=T0):
    verdicts = []
    for day, mean in enumerate(means):
        verdict = evaluate(_deltas(mean, seed=day), start + timedelta(days=day), history,
                           version="v2", previous="v1")
        verdicts.append(verdict)
        history = verdict.history
    return verdicts


def test_b1_a_degradation_rolls_back_after_three_failing_evaluations():
    verdicts = _run([-10.0] * 3)
    assert [v.action for v in verdicts] == [NONE, NONE, ROLLBACK]
    assert [v.history.failing_in_row for v in verdicts[:2]] == [1, 2]
    last = verdicts[-1]
    assert "champion → v1" in last.trace[-1] and "v2" in last.history.quarantined
    assert may_promote("v2", last.history) == (False, "version v2 was rolled back: only a new "
                                                      "version is promoted")
    assert may_promote("v3", last.history)[0]


def test_a_passing_evaluation_resets_the_count():
    assert [v.action for v in _run([-10.0, -10.0, 0.0, -10.0, -10.0])] == [NONE] * 5


def test_b2_too_few_decisions_is_inconclusive():
    verdict = evaluate(_deltas(-20.0, n=100), T0, History(), version="v2", previous="v1")
    assert verdict.action == INCONCLUSIVE and "n_min" in verdict.trace[0]


def test_b3_the_cooldown_blocks_a_second_change_but_not_a_guardrail():
    first = _run([-10.0] * 3)[-1]
    assert first.action == ROLLBACK
    # the restored champion degrades again the next day: inside the 24 h cooldown
    again = first.history
    for day in range(3):
        verdict = evaluate(_deltas(-10.0, seed=10 + day), T0 + timedelta(hours=3 + day * 6),
                           again, version="v1", previous="v0")
        again = verdict.history
    assert verdict.action == NONE and "cooldown" in verdict.trace[-1]
    breach = evaluate(_deltas(0.0), T0 + timedelta(hours=20), again, version="v1",
                      previous="v0", guardrails=Guardrails(error_rate=0.05))
    assert breach.action == ROLLBACK and "guardrail" in breach.trace[0]


def test_b4_the_dead_band_never_moves_an_alias():
    rng = np.random.default_rng(5)
    history = SETTLED
    changes = 0
    for k in range(1000):
        d = rng.normal(-3.0 + rng.uniform(-0.5, 0.5), 31.6, 1000)
        verdict = evaluate(d, T0 + timedelta(days=k), history, version="v2", previous="v1")
        changes += verdict.action == ROLLBACK
        history = verdict.history
    assert changes == 0


def test_b5_two_rollbacks_in_a_week_freeze_auto_deploy():
    first = _run([-10.0] * 3)[-1]
    second = _run([-10.0] * 3, history=first.history, start=T0 + timedelta(days=3))[-1]
    assert second.action == ROLLBACK and second.freeze and second.history.frozen
    assert evaluate(_deltas(-20.0), T0 + timedelta(days=6), second.history, version="v1",
                    previous="v0").action == FROZEN
    assert may_promote("v9", second.history)[0] is False


def test_no_previous_champion_means_reducing_not_rolling_back():
    verdict = evaluate(_deltas(0.0), T0, History(), version="v1", previous=None,
                       guardrails=Guardrails(drawdown=0.2))
    assert verdict.action == INCONCLUSIVE and "reduce exposure" in verdict.trace[-1]


def test_b7_the_a_a_false_rollback_rate_is_at_most_one_percent():
    rate, se = false_rollback_rate(CONFIG, deployments=400, seed=1)
    assert rate <= 0.01 and se >= 0.0

"""Blending, diversity and scored metrics of ``bot4_dagster.ml.ensemble``.

Blends on hand-computed 3×3 examples; weighted mode against a grid search; stacking against a
LogisticRegression fitted on the logits directly; stacking_oof by poisoning the rows a fold's
meta-learner must not see; diversity on hand-counted oracle matrices (reference/numerics.md §6);
AUC against ``roc_auc_score`` and the Hanley–McNeil (1982) worked example.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.utils.validation import check_is_fitted

from bot4_dagster.ml.cv import TRAIN, PurgedKFold
from bot4_dagster.ml.ensemble import (
    BLEND_MODES,
    Diversity,
    StackingEnsemble,
    auc_se,
    brier_se,
    diversity,
    hanley_mcneil_se,
    log_loss_se,
    oracle_outputs,
    pairwise_counts,
    pairwise_table,
    rank_average,
    stacking_oof,
)

TOL = 1e-12
SEED = 20030601

# learners in columns; column 1 has a tie (0.5, 0.5), column 2 another (0.1, 0.1)
P3 = np.array([[0.2, 0.5, 0.9],
               [0.6, 0.5, 0.1],
               [0.4, 0.3, 0.1]])
Y3 = np.array([1, 0, 0])


def _problem(n: int = 300, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, y, truth): three learners of decreasing skill on a known probability."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < truth).astype(np.int64)
    noisy = np.clip(truth + rng.normal(0.0, 0.25, n), 0.01, 0.99)
    P = np.column_stack([np.clip(truth + rng.normal(0.0, 0.08, n), 0.01, 0.99), noisy,
                         rng.uniform(0.01, 0.99, n)])
    return P, y, truth


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _spans(n: int, horizon: int) -> pd.Series:
    return pd.Series(np.arange(n, dtype=np.float64) + horizon, index=np.arange(n, dtype=np.float64))


# --- blend math on hand examples -------------------------------------------------------------


def test_mean_and_median_by_hand():
    mean = StackingEnsemble("mean").fit(P3, Y3)
    np.testing.assert_allclose(mean.blend(P3), [1.6 / 3, 1.2 / 3, 0.8 / 3], rtol=0, atol=TOL)
    np.testing.assert_allclose(mean.weights_, [1 / 3] * 3, rtol=0, atol=TOL)
    median = StackingEnsemble("median").fit(P3, Y3)
    np.testing.assert_array_equal(median.blend(P3), [0.5, 0.5, 0.3])
    assert np.isnan(median.weights_).all()


def test_rank_average_with_ties_by_hand():
    # column ranks/3 with average ties: (1/3, 1, 2/3), (2.5/3, 2.5/3, 1/3), (1, 1.5/3, 1.5/3)
    np.testing.assert_allclose(rank_average(P3), [13 / 18, 14 / 18, 9 / 18], rtol=0, atol=TOL)
    ensemble = StackingEnsemble("rank").fit(P3, Y3)
    np.testing.assert_allclose(ensemble.rank_score(P3), rank_average(P3), rtol=0, atol=TOL)
    np.testing.assert_allclose(ensemble.weights_, [1 / 3] * 3, rtol=0, atol=TOL)
    # mean blends 8/15, 6/15, 4/15 at scores 13/18, 14/18, 9/18: isotonic pools the first two
    np.testing.assert_allclose(ensemble.blend(P3), [7 / 15, 7 / 15, 4 / 15], rtol=0, atol=TOL)


def test_rank_mode_scores_new_rows_against_the_training_columns():
    ensemble = StackingEnsemble("rank").fit(P3, Y3)
    new = np.array([[0.5, 0.4, 0.95],   # CDFs 5/6, 3/6, 7/6 -> 15/18, above the top: 7/15
                    [0.3, 0.3, 0.1],    # 3/6, 2/6, 3/6 -> 8/18, below the bottom: 4/15
                    [0.4, 0.5, 0.1]])   # 4/6, 5/6, 3/6 -> 12/18, 3/4 of the way 4/15 -> 7/15
    np.testing.assert_allclose(ensemble.rank_score(new), [15 / 18, 8 / 18, 12 / 18], rtol=0,
                               atol=TOL)
    np.testing.assert_allclose(ensemble.blend(new), [7 / 15, 4 / 15, 4 / 15 + 0.75 * 3 / 15],
                               rtol=0, atol=TOL)


def test_rank_mode_is_monotone_in_the_rank_score():
    P, y, _ = _problem()
    ensemble = StackingEnsemble("rank").fit(P, y)
    fresh, _, _ = _problem(500, seed=SEED + 1)
    order = np.argsort(ensemble.rank_score(fresh), kind="stable")
    assert (np.diff(ensemble.blend(fresh)[order]) >= 0).all()
    assert ((ensemble.blend(fresh) >= 0) & (ensemble.blend(fresh) <= 1)).all()


@pytest.mark.parametrize("weighted", [False, True])
def test_stacking_is_logistic_regression_on_logits(weighted):
    P, y, _ = _problem()
    w = np.random.default_rng(SEED).uniform(0.2, 2.0, len(y)) if weighted else None
    ensemble = StackingEnsemble("stacking", C=0.7).fit(P, y, sample_weight=w)
    reference = LogisticRegression(C=0.7).fit(np.log(P / (1 - P)), y, sample_weight=w)
    expected = reference.predict_proba(np.log(P / (1 - P)))[:, 1]
    np.testing.assert_allclose(ensemble.blend(P), expected, rtol=0, atol=1e-6)
    assert np.isnan(ensemble.weights_).all()


def test_stacking_on_the_hand_example_clips_before_the_logit():
    P = np.array([[0.0, 0.5, 0.9], [0.6, 1.0, 0.1], [0.4, 0.3, 0.1]])
    ensemble = StackingEnsemble("stacking", C=2.0, clip=0.01).fit(P, Y3)
    clipped = np.clip(P, 0.01, 0.99)
    logits = np.log(clipped / (1 - clipped))
    reference = LogisticRegression(C=2.0).fit(logits, Y3)
    np.testing.assert_allclose(ensemble.meta_.coef_, reference.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ensemble.predict_proba(P), reference.predict_proba(logits),
                               rtol=0, atol=1e-6)


# --- weighted mode ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5), st.integers(5, 60))
def test_weighted_weights_lie_on_the_simplex_and_beat_the_mean(seed, k, n):
    rng = np.random.default_rng(seed)
    P = rng.uniform(0.0, 1.0, (n, k))
    y = rng.integers(0, 2, n)
    w = rng.uniform(0.0, 3.0, n)
    weighted = StackingEnsemble("weighted").fit(P, y, sample_weight=w)
    assert (weighted.weights_ >= 0).all()
    assert abs(weighted.weights_.sum() - 1.0) <= 1e-9
    mean = StackingEnsemble("mean").fit(P, y)
    clipped = np.clip(P, 1e-6, 1 - 1e-6)
    score = {name: log_loss(y, clipped @ fitted.weights_, sample_weight=w, labels=[0, 1])
             for name, fitted in (("weighted", weighted), ("mean", mean))}
    assert score["weighted"] <= score["mean"] + 1e-12


def test_weighted_matches_a_fine_grid_search_for_two_learners():
    P, y, _ = _problem(400)
    P = P[:, :2]
    found = StackingEnsemble("weighted").fit(P, y).weights_

    def best(grid: np.ndarray) -> float:
        losses = [_log_loss(y, P @ np.array([a, 1 - a])) for a in grid]
        return float(grid[int(np.argmin(losses))])

    coarse = best(np.linspace(0.0, 1.0, 1001))
    fine = best(np.clip(np.arange(coarse - 2e-3, coarse + 2e-3, 1e-6), 0.0, 1.0))
    assert 0.05 < fine < 0.95  # an interior optimum, so the test is about the optimiser
    assert abs(found[0] - fine) < 1e-4
    assert _log_loss(y, P @ found) <= _log_loss(y, P @ np.array([fine, 1 - fine])) + 1e-12


def test_weighted_puts_the_weight_on_the_learner_that_is_the_truth():
    rng = np.random.default_rng(SEED)
    truth = rng.uniform(0.05, 0.95, 3000)
    y = (rng.uniform(size=truth.size) < truth).astype(int)
    P = np.column_stack([rng.uniform(0.05, 0.95, truth.size), truth,
                         rng.uniform(0.05, 0.95, truth.size)])
    weights = StackingEnsemble("weighted").fit(P, y).weights_
    assert weights[1] > 0.97
    assert weights.argmax() == 1


def test_weighted_with_one_learner_is_that_learner():
    P = P3[:, :1]
    ensemble = StackingEnsemble("weighted").fit(P, Y3)
    np.testing.assert_array_equal(ensemble.weights_, [1.0])
    np.testing.assert_array_equal(ensemble.blend(P), P[:, 0])


# --- one row equals the batch ----------------------------------------------------------------


@pytest.mark.parametrize("mode", BLEND_MODES)
def test_predicting_one_row_equals_predicting_it_in_a_batch(mode):
    P, y, _ = _problem()
    ensemble = StackingEnsemble(mode).fit(P, y)
    fresh, _, _ = _problem(40, seed=SEED + 2)
    batch = ensemble.predict_proba(fresh)
    single = np.vstack([ensemble.predict_proba(row[None, :]) for row in fresh])
    np.testing.assert_allclose(single, batch, rtol=0, atol=TOL)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, rtol=0, atol=TOL)
    np.testing.assert_array_equal(ensemble.predict(fresh), (batch[:, 1] > 0.5).astype(int))


# --- scikit-learn conventions and input checks -----------------------------------------------


def test_scikit_learn_conventions():
    ensemble = StackingEnsemble(mode="rank", C=0.3, clip=1e-4)
    assert ensemble.get_params() == {"mode": "rank", "C": 0.3, "clip": 1e-4}
    assert is_classifier(ensemble)
    copy = clone(ensemble)
    assert copy is not ensemble and copy.get_params() == ensemble.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(ensemble)
    with pytest.raises(NotFittedError):
        ensemble.predict(P3)
    with pytest.raises(NotFittedError):
        ensemble.predict_proba(P3)
    assert ensemble.fit(P3, Y3) is ensemble
    check_is_fitted(ensemble)
    assert ensemble.n_learners_ == ensemble.n_features_in_ == 3
    np.testing.assert_array_equal(ensemble.classes_, [0, 1])
    assert not hasattr(clone(ensemble), "weights_")  # clone is unfitted
    assert ensemble.set_params(mode="mean") is ensemble and ensemble.mode == "mean"


@pytest.mark.parametrize(("params", "P", "y", "match"), [
    ({"mode": "bagging"}, P3, Y3, "unknown blend mode"),
    ({"clip": 0.0}, P3, Y3, "clip"),
    ({"C": -1.0}, P3, Y3, "C must be"),
    ({}, P3[:, 0], Y3, "2-D"),
    ({}, np.where(P3 == 0.9, 1.2, P3), Y3, "outside"),
    ({}, np.where(P3 == 0.9, np.nan, P3), Y3, "non-finite"),
    ({}, P3, [1, 0, 2], "binary"),
    ({}, P3, [1, 0], "labels"),
    ({"mode": "stacking"}, P3, [1, 1, 1], "both classes"),
])
def test_bad_input_is_refused(params, P, y, match):
    with pytest.raises(ValueError, match=match):
        StackingEnsemble(**params).fit(P, y)


def test_predicting_with_the_wrong_number_of_learners_is_refused():
    ensemble = StackingEnsemble().fit(P3, Y3)
    with pytest.raises(ValueError, match="fitted on 3"):
        ensemble.blend(P3[:, :2])
    with pytest.raises(ValueError, match="weight"):
        StackingEnsemble().fit(P3, Y3, sample_weight=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="rank mode"):
        ensemble.rank_score(P3)


# --- stacking_oof ----------------------------------------------------------------------------


def test_stacking_oof_never_predicts_a_row_with_a_meta_learner_that_saw_it():
    P, y, _ = _problem(200)
    t1, embargo = _spans(200, 3), 2
    oof = stacking_oof(P, y, t1, n_splits=5, embargo=embargo, C=0.5)
    assert np.isfinite(oof).all()
    roles = PurgedKFold(5, t1, embargo).role_matrix()
    for split, role in enumerate(roles):
        test = np.flatnonzero(role == 1)
        unseen = role != TRAIN  # the fold itself plus its purged and embargoed neighbours
        poisoned = y.copy()
        poisoned[unseen] = 1 - poisoned[unseen]
        again = stacking_oof(P, poisoned, t1, n_splits=5, embargo=embargo, C=0.5)
        np.testing.assert_array_equal(again[test], oof[test], err_msg=f"split {split}")
        assert not np.allclose(np.delete(again, test), np.delete(oof, test))  # poison matters
        train = np.flatnonzero(role == TRAIN)
        manual = StackingEnsemble("stacking", C=0.5).fit(P[train], y[train]).blend(P[test])
        np.testing.assert_allclose(oof[test], manual, rtol=0, atol=TOL)


def test_stacking_oof_checks_its_arguments():
    P, y, _ = _problem(50)
    with pytest.raises(ValueError, match="n_splits"):
        stacking_oof(P, y, _spans(50, 1), n_splits=1)
    with pytest.raises(ValueError, match="labels"):
        stacking_oof(P, y, _spans(49, 1))


# --- diversity -------------------------------------------------------------------------------


def _two_learners(n11: int, n00: int, n10: int, n01: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, y) with y = 1 everywhere, so a learner is right exactly where its p is 0.9."""
    right = [(1, 1)] * n11 + [(0, 0)] * n00 + [(1, 0)] * n10 + [(0, 1)] * n01
    P = np.where(np.array(right) == 1, 0.9, 0.1)
    return P, np.ones(len(right), dtype=int)


def test_two_learner_hand_example():
    P, y = _two_learners(n11=4, n00=1, n10=2, n01=3)
    oracle = oracle_outputs(P, y)
    assert oracle.dtype.kind == "i"
    assert pairwise_counts(oracle, 0, 1) == (4, 1, 2, 3)
    assert pairwise_counts(oracle, 1, 0) == (4, 1, 3, 2)
    q = (4 * 1 - 3 * 2) / (4 * 1 + 3 * 2)                                # -0.2
    rho = (4 * 1 - 3 * 2) / math.sqrt((4 + 2) * (3 + 1) * (4 + 3) * (2 + 1))  # -2/sqrt(504)
    result = diversity(P, y)
    assert isinstance(result, Diversity)
    assert result.Q_av == pytest.approx(q, abs=TOL) and q == pytest.approx(-0.2)
    assert result.rho_av == pytest.approx(rho, abs=TOL)
    assert result.D_av == result.score == pytest.approx(0.5, abs=TOL)
    assert result.DF_av == pytest.approx(0.1, abs=TOL)
    # l_i = 1 on the 5 disagreements, 2 or 0 elsewhere
    assert abs(result.KW - 5 / (10 * 4)) <= TOL
    assert abs(result.E - 5 / 10) <= TOL
    accuracy = (4 * 2 + 2 + 3) / 20
    assert result.kappa == pytest.approx(1 - (5 / 2) / (10 * accuracy * (1 - accuracy)), abs=TOL)
    assert (result.n_learners, result.n_pairs) == (2, 1)
    assert set(result.undefined.values()) == {0}
    table = pairwise_table(P, y, ["lstm", "gbm"])
    assert list(table.columns) == ["learner_a", "learner_b", "Q", "rho", "D", "DF", "spearman"]
    row = table.iloc[0]
    assert (row.learner_a, row.learner_b) == ("lstm", "gbm")
    np.testing.assert_allclose([row.Q, row.rho, row.D, row.DF], [q, rho, 0.5, 0.1], atol=TOL)
    assert row.spearman == pytest.approx(stats.spearmanr(P[:, 0], P[:, 1]).statistic, abs=TOL)


def test_identical_learners_agree_and_complementary_ones_disagree():
    P, y, _ = _problem(100)
    same = diversity(np.column_stack([P[:, 0], P[:, 0]]), y)
    assert (same.D_av, same.Q_av, same.rho_av) == (0.0, 1.0, 1.0)
    assert same.spearman_diversity == pytest.approx(0.0, abs=TOL)
    complementary = diversity(np.column_stack([P[:, 0], 1 - P[:, 0]]), y)
    assert complementary.D_av == 1.0
    assert complementary.Q_av == complementary.rho_av == -1.0
    assert complementary.DF_av == 0.0
    assert complementary.spearman_diversity == pytest.approx(2.0, abs=TOL)


def test_threshold_moves_the_oracle():
    P = np.array([[0.3], [0.6], [0.5]])
    np.testing.assert_array_equal(oracle_outputs(P, [1, 1, 0]), [[0], [1], [1]])  # 0.5 -> class 0
    np.testing.assert_array_equal(oracle_outputs(P, [1, 1, 0], threshold=0.25), [[1], [1], [0]])


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 30), st.integers(2, 6))))
def test_kohavi_wolpert_is_a_rescaled_disagreement(right):
    P = np.where(right, 0.8, 0.3)  # y = 1: right where p = 0.8
    y = np.ones(right.shape[0], dtype=int)
    np.testing.assert_array_equal(oracle_outputs(P, y), right.astype(int))
    result = diversity(P, y)
    learners = right.shape[1]
    assert result.undefined["D"] == 0
    assert abs(result.KW - (learners - 1) / (2 * learners) * result.D_av) <= TOL
    assert 0.0 <= result.E <= 1.0


def test_degenerate_pairs_are_counted_and_left_out():
    P, y, _ = _problem(120)
    always_right = np.where(y == 1, 0.99, 0.01)
    constant = np.full(len(y), 0.7)  # predicts 1 everywhere; constant for Spearman
    P4 = np.column_stack([always_right, P[:, 0], P[:, 1], constant])
    result = diversity(P4, y)
    table = pairwise_table(P4, y, ["oracle", "a", "b", "constant"])
    # every pair with the always-right learner has N00 = N01 = 0: Q and rho are 0/0
    assert result.undefined["Q"] == 3
    assert result.undefined["rho"] == 3
    assert result.undefined["spearman"] == 3  # the constant learner against the three others
    assert result.undefined["D"] == result.undefined["DF"] == result.undefined["kappa"] == 0
    assert table.Q.isna().sum() == 3 and table.spearman.isna().sum() == 3
    assert result.Q_av == pytest.approx(table.Q.mean(), abs=TOL)  # pandas skips NaN too
    assert result.rho_av == pytest.approx(table.rho.mean(), abs=TOL)
    assert result.D_av == pytest.approx(table.D.mean(), abs=TOL)
    assert result.spearman_diversity == pytest.approx(1 - table.spearman.mean(), abs=TOL)
    everyone_right = diversity(np.column_stack([always_right, always_right]), y)
    assert everyone_right.undefined["kappa"] == 1 and math.isnan(everyone_right.kappa)
    assert everyone_right.undefined["Q"] == 1 and math.isnan(everyone_right.Q_av)


def test_diversity_checks_its_arguments():
    with pytest.raises(ValueError, match="at least 2 learners"):
        diversity(P3[:, :1], Y3)
    with pytest.raises(ValueError, match="names"):
        pairwise_table(P3, Y3, ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        pairwise_table(P3, Y3, ["a", "b", "a"])
    with pytest.raises(ValueError, match="oracle"):
        pairwise_counts(np.array([[0, 2]]), 0, 1)
    with pytest.raises(ValueError, match="< 2"):
        pairwise_counts(np.array([[0, 1]]), 0, 2)
    with pytest.raises(ValueError, match="threshold"):
        oracle_outputs(P3, Y3, threshold=1.5)


# --- scores with standard errors -------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 80), st.sampled_from([1, 2, 12]))
def test_auc_matches_scikit_learn_with_ties(seed, n, decimals):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    p = np.round(rng.uniform(size=n), decimals)  # few decimals: many ties
    area, se = auc_se(y, p)
    assert abs(area - roc_auc_score(y, p)) <= TOL
    assert se >= 0.0


def test_hanley_mcneil_by_hand():
    # y = (0, 0, 1, 1), p = (0.1, 0.4, 0.35, 0.8): 3 of the 4 (positive, negative) pairs ordered
    area, se = auc_se([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    q1, q2 = 0.75 / 1.25, 2 * 0.75**2 / 1.75
    assert area == 0.75
    assert se == pytest.approx(math.sqrt((0.75 * 0.25 + (q1 - 0.5625) + (q2 - 0.5625)) / 4),
                               abs=TOL)
    # the paper's CT example: A = 0.893 from 51 abnormal and 58 normal images, SE 0.032
    assert hanley_mcneil_se(0.893, 51, 58) == pytest.approx(0.0325, abs=5e-4)
    assert hanley_mcneil_se(1.0, 10, 10) == 0.0
    with pytest.raises(ValueError, match="both classes"):
        auc_se([1, 1], [0.2, 0.3])


def test_log_loss_se_by_hand():
    y, p, w = [1, 0, 1], [0.8, 0.4, 0.5], [1.0, 2.0, 1.0]
    losses = np.array([-math.log(0.8), -math.log(0.6), -math.log(0.5)])
    mean = (losses[0] + 2 * losses[1] + losses[2]) / 4
    spread = (losses[0] - mean) ** 2 + 4 * (losses[1] - mean) ** 2 + (losses[2] - mean) ** 2
    value, se = log_loss_se(y, p, w)
    assert value == pytest.approx(mean, abs=TOL)
    assert value == pytest.approx(log_loss(y, p, sample_weight=w), abs=TOL)
    assert se == pytest.approx(math.sqrt(3 / 2 * spread) / 4, abs=TOL)
    value, se = log_loss_se(y, p)
    assert (value, se) == pytest.approx((losses.mean(), stats.sem(losses)), abs=TOL)


def test_brier_se_by_hand():
    value, se = brier_se([1, 0, 1], [0.8, 0.4, 0.5])  # losses 0.04, 0.16, 0.25
    assert value == pytest.approx(0.15, abs=TOL)
    assert value == pytest.approx(brier_score_loss([1, 0, 1], [0.8, 0.4, 0.5]), abs=TOL)
    assert se == pytest.approx(math.sqrt((0.11**2 + 0.01**2 + 0.1**2) / 2) / math.sqrt(3), abs=TOL)
    # a zero weight drops the row, from the mean and from the count of the m/(m-1) factor
    assert brier_se([1, 0, 1, 0], [0.8, 0.4, 0.5, 0.9], [1, 1, 1, 0]) == pytest.approx((value, se),
                                                                                     abs=TOL)


def test_scores_check_their_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        brier_se([1], [0.5])
    with pytest.raises(ValueError, match="outside"):
        log_loss_se([1, 0], [0.5, 1.5])
    with pytest.raises(ValueError, match="binary"):
        brier_se([1, 3], [0.5, 0.5])
    with pytest.raises(ValueError, match="labels"):
        auc_se([1, 0, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="w"):
        log_loss_se([1, 0], [0.5, 0.5], [0.0, 0.0])

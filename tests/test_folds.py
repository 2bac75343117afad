"""The fold stage's library (``bot4_dagster.ml.folds``): the stored long format, role counts,
the stored-fold check that reads rows back, and how many labels each scheme needs; on labels
built from the real FTX bars."""

from __future__ import annotations

from math import ceil, comb

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_microstructure import load_ftx_bars

from bot4_dagster.ml.cv import (
    ROLES,
    TEST,
    TRAIN,
    CombinatorialPurgedCV,
    PurgedKFold,
    PurgedWalkForward,
)
from bot4_dagster.ml.folds import (
    COLUMNS,
    SCHEMES,
    FoldSettings,
    fold_splitters,
    folds_table,
    label_reach,
    label_t1,
    role_matrices,
    role_matrix_of,
    split_counts,
    stored_fold_violations,
)
from bot4_dagster.ml.labels import label_table
from bot4_dagster.ml.volatility import estimate_volatility


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    bars = load_ftx_bars().iloc[:3000]
    volatility = estimate_volatility(bars.set_index("ts")["close"]).table("BTC-PERP")
    return label_table(bars, volatility, symbol="BTC-PERP", upper=2.0, lower=2.0, horizon=10)


@pytest.fixture(scope="module")
def stage(labels):
    splitters = fold_splitters(labels, symbol="BTC-PERP")
    matrices = role_matrices(splitters)
    return splitters, matrices, folds_table(labels, splitters, matrices, symbol="BTC-PERP")


def test_splitters_are_built_from_the_settings(labels, stage):
    splitters, _, _ = stage
    embargo = ceil(0.01 * len(labels))
    assert isinstance(splitters["purged_kfold"], PurgedKFold)
    assert isinstance(splitters["walk_forward"], PurgedWalkForward)
    assert isinstance(splitters["cpcv"], CombinatorialPurgedCV)
    assert {cv.embargo for cv in splitters.values()} == {embargo}
    assert splitters["cpcv"].get_n_splits() == comb(6, 2)
    t1 = splitters["purged_kfold"].t1
    assert t1.index.equals(pd.DatetimeIndex(labels["t0"])) and (t1.to_numpy() == labels["t1"]).all()
    custom = fold_splitters(labels, n_splits=3, cpcv_folds=5, cpcv_test_folds=1, embargo_pct=0.05)
    assert custom["purged_kfold"].n_splits == 3 and custom["cpcv"].n_paths == 1
    assert custom["walk_forward"].embargo == ceil(0.05 * len(labels))


def test_the_long_format(labels, stage):
    splitters, matrices, stored = stage
    assert tuple(stored.columns) == COLUMNS
    assert stored["t0"].dtype == labels["t0"].dtype and (stored["symbol"] == "BTC-PERP").all()
    for scheme, frame in stored.groupby("scheme"):
        matrix = matrices[scheme]
        assert len(frame) == int((matrix >= 0).sum())  # walk-forward stores used labels only
        np.testing.assert_array_equal(role_matrix_of(frame, labels), matrix)
        cv = splitters[scheme]
        assert set(frame["folds"]) == {cv.n_folds if scheme == "cpcv" else cv.n_splits}
        assert set(frame["test_folds"]) == {cv.n_test_folds if scheme == "cpcv" else 1}
        tested = frame["role"] == "test"
        if scheme == "cpcv":
            assert frame.loc[tested, "path"].notna().all()
            assert frame.loc[~tested, "path"].isna().all()
            assert set(frame.loc[tested, "path"]) == set(range(cv.n_paths))
        else:
            assert frame["path"].isna().all()
    assert set(stored["role"]) == set(ROLES)


def test_split_counts(labels, stage):
    _, matrices, _ = stage
    counts = split_counts(matrices)
    assert list(counts.columns) == ["scheme", "split", *ROLES]
    assert len(counts) == 5 + 5 + 15
    totals = counts[list(ROLES)].sum(axis=1)
    full = counts["scheme"] != "walk_forward"
    assert (totals[full] == len(labels)).all()
    walk = totals[~full].to_numpy()  # split i uses the labels up to the end of its test fold
    assert (np.diff(walk) > 0).all() and walk[-1] == len(labels)
    assert (counts["train"] > 0).all() and (counts["test"] > 0).all()
    cpcv = counts[counts["scheme"] == "cpcv"]
    assert cpcv["test"].sum() == comb(5, 1) * len(labels)  # each label tested C(N-1, k-1) times


def test_the_stored_check_passes_on_what_the_stage_stores(labels, stage):
    assert stored_fold_violations(stage[2], labels) == []


def test_the_stored_check_catches_a_leak(labels, stage):
    folds = stage[2]
    leaked = folds.copy()
    purged = np.flatnonzero((leaked["role"] == "purged").to_numpy())
    leaked.loc[leaked.index[purged[0]], "role"] = "train"
    problems = stored_fold_violations(leaked, labels)
    assert problems and "overlaps a test label" in problems[0]
    embargoed = folds.copy()
    rows = np.flatnonzero((embargoed["role"] == "embargoed").to_numpy())
    embargoed.loc[embargoed.index[rows[0]], "role"] = "train"
    assert "embargo" in "; ".join(stored_fold_violations(embargoed, labels))


def test_the_stored_check_catches_broken_rows(labels, stage):
    folds = stage[2]
    assert stored_fold_violations(folds.iloc[:0], labels) == ["no stored folds"]
    without_cpcv = folds[folds["scheme"] != "cpcv"]
    assert stored_fold_violations(without_cpcv, labels) == ["cpcv: no stored rows"]
    doubled = pd.concat([folds, folds.iloc[:1]], ignore_index=True)
    assert "labels with more than one role in a split" in stored_fold_violations(doubled, labels)[0]
    unknown = folds.copy()
    unknown.loc[0, "role"] = "validation"
    assert "role outside train/test/purged/embargoed" in stored_fold_violations(unknown, labels)[0]
    moved = folds.copy()
    moved.loc[0, "t0"] = moved.loc[0, "t0"] + pd.Timedelta(seconds=1)
    assert "t0 is no label's start" in stored_fold_violations(moved, labels)[0]
    cpcv = folds["scheme"] == "cpcv"
    one_path = folds.copy()
    one_path.loc[cpcv & (folds["role"] == "test"), "path"] = 0
    assert any("path 0 does not cover" in p for p in stored_fold_violations(one_path, labels))
    fewer = folds[~cpcv | (folds["split"] < 14)]
    problems = stored_fold_violations(fewer, labels)
    assert "cpcv: 14 splits, expected C(6, 2)" in problems


def test_label_reach():
    t0 = pd.date_range("2024-01-01", periods=6, freq="min", tz="UTC")
    assert label_reach(pd.Series(t0, index=t0)) == 0
    ends = [t0[2], t0[1], t0[5], t0[3], t0[5], t0[5]]
    assert label_reach(pd.Series(ends, index=t0)) == 3
    none = pd.DatetimeIndex([], tz="UTC")
    assert label_reach(pd.Series(none, index=none)) == 0


def test_real_labels_reach_the_horizon(labels):
    assert label_reach(label_t1(labels)) == 10


@settings(max_examples=40, deadline=None)
@given(n_splits=st.integers(2, 6), cpcv_folds=st.integers(3, 8), test_share=st.floats(0, 1),
       embargo_pct=st.sampled_from([0.0, 0.01, 0.05]), reach=st.integers(0, 25))
def test_the_minimum_is_exact_for_worst_case_labels(n_splits, cpcv_folds, test_share,
                                                    embargo_pct, reach):
    """Below the minimum some split of worst-case labels keeps no training label; from the
    minimum on (checked well past the bound the search starts from) every split keeps one."""
    test_folds = 1 + int(test_share * (cpcv_folds - 2))
    try:
        fold = FoldSettings(n_splits, cpcv_folds, test_folds, embargo_pct)
    except ValueError:  # an embargo that leaves no training data at any size
        return
    for scheme in SCHEMES:
        need = fold.minimum(scheme, reach)
        assert not fold.keeps_training(scheme, need - 1, reach)
        top = fold._sure(scheme, reach) + 30
        assert all(fold.keeps_training(scheme, n, reach) for n in range(need, top))


def test_worst_case_labels_lose_the_most(labels):
    """Real labels of reach r keep at least the training labels of the worst case of reach r."""
    t1 = label_t1(labels)
    reach = label_reach(t1)
    fold = FoldSettings()
    for n in (200, 701, 1500):
        worst_t0 = np.arange(n, dtype=np.float64)
        worst = pd.Series(worst_t0 + reach, index=worst_t0)
        for scheme in SCHEMES:
            real = fold.splitter(scheme, t1.iloc[:n]).role_matrix()
            bound = fold.splitter(scheme, worst).role_matrix()
            assert ((real == TRAIN).sum(axis=1) >= (bound == TRAIN).sum(axis=1)).all()
            np.testing.assert_array_equal(real == TEST, bound == TEST)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(n_splits=1), "n_splits must be at least 2"),
    (dict(cpcv_test_folds=6), "cpcv_test_folds must be in"),
    (dict(embargo_pct=1.0), "embargo_pct must be in"),
    (dict(n_splits=2, embargo_pct=0.5), "leaves purged 2-fold CV no training labels"),
    (dict(cpcv_folds=4, cpcv_test_folds=2, embargo_pct=0.3), "leaves combinatorial purged CV"),
])
def test_impossible_settings_are_refused(labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fold_splitters(labels, **kwargs)

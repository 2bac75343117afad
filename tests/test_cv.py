"""Purged K-fold, purged walk-forward and combinatorial purged CV (bot4_dagster.ml.cv).

Convention (numerics.md §3): label i covers the *closed* interval [t0_i, t1_i]; a training label
leaks when it shares a single instant with a test label. The embargo removes the ``embargo``
observations that follow a test block, counted from the first observation that starts after the
block's latest label end.

Three kinds of checks:
- hypothesis properties over random, overlapping, irregularly spaced labels (ties in t0,
  zero-length and very long labels, float / int / naive and tz-aware datetime times), judged by a
  brute-force reference written here, never by the library's own ``leakage_violations``;
- exact equality with skfolio 1.12.2's ``CombinatorialPurgedCV`` where both apply
  (t1_i = t_{min(i+h, n-1)}, n divisible by the number of folds);
- the scikit-learn cross-validator protocol and input validation.
"""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skfolio.model_selection import CombinatorialPurgedCV as SkfolioCPCV
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score

from bot4_dagster.ml.cv import (
    EMBARGOED,
    PURGED,
    TEST,
    TRAIN,
    CombinatorialPurgedCV,
    PurgedKFold,
    PurgedWalkForward,
    leakage_violations,
    path_violations,
)

KINDS = ("float", "int", "datetime", "datetime_tz")


# --------------------------------------------------------------------------------------------
# label generation and the brute-force reference
# --------------------------------------------------------------------------------------------


def make_labels(seed: int, n: int, kind: str, tie_p: float, zero_p: float,
                long_p: float) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Random labels: (t1 Series in the requested time type, t0 and t1 as exact int64 ticks).

    Gaps between starts are irregular (mostly small, some huge, a share exactly 0 = tied starts);
    durations are mostly short, a share exactly 0, a share "very long" (up to past the last
    start). Ticks are integers, so every representation below is exact.
    """
    rng = np.random.default_rng(seed)
    gaps = rng.integers(1, 60, n)
    gaps[rng.random(n) < 0.1] *= rng.integers(10, 500)
    gaps[rng.random(n) < tie_p] = 0
    gaps[0] = rng.integers(0, 1000)
    start = np.cumsum(gaps).astype(np.int64)
    span = int(start[-1] - start[0]) + 1
    duration = np.rint(rng.exponential(rng.uniform(1, 300), n)).astype(np.int64)
    duration[rng.random(n) < zero_p] = 0
    long = rng.random(n) < long_p
    duration[long] = rng.integers(span // 4 + 1, 2 * span + 2, long.sum())
    end = start + duration
    if kind == "float":
        t0, t1 = start * 0.25 - 1000.0, end * 0.25 - 1000.0  # exact binary fractions
    elif kind == "int":
        t0, t1 = start, end
    else:
        origin = pd.Timestamp("2021-03-27 22:00", tz="Europe/Berlin" if kind == "datetime_tz"
                              else None)  # a DST change inside the range for the tz-aware case
        t0 = origin + pd.to_timedelta(start, unit="s")
        t1 = origin + pd.to_timedelta(end, unit="s")
    series = pd.Series(pd.Index(t1), index=pd.Index(t0, name="t0"), name="t1")
    return series, start, end


@st.composite
def labels(draw, min_n: int = 20, max_n: int = 300):
    n = draw(st.sampled_from(range(min_n, max_n + 1)))  # uniform: integers() favours small n
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(KINDS))
    tie_p = draw(st.sampled_from([0.0, 0.0, 0.05, 0.3]))
    zero_p = draw(st.sampled_from([0.0, 0.1, 0.5]))
    long_p = draw(st.sampled_from([0.0, 0.0, 0.01, 0.05]))
    return make_labels(seed, n, kind, tie_p, zero_p, long_p)


def embargoes(n: int):
    return st.one_of(st.just(0), st.integers(1, 5), st.integers(0, n))


def runs(test: np.ndarray) -> list[np.ndarray]:
    """Maximal runs of consecutive indices (the test blocks), by a plain loop."""
    blocks: list[list[int]] = []
    for i in test.tolist():
        if blocks and i == blocks[-1][-1] + 1:
            blocks[-1].append(i)
        else:
            blocks.append([i])
    return [np.array(b) for b in blocks]


def embargo_zone(start: np.ndarray, end: np.ndarray, block: np.ndarray, embargo: int) -> range:
    """The ``embargo`` observations after the last one that starts by the block's max t1."""
    first_after = int(np.count_nonzero(start <= end[block].max()))
    return range(first_after, min(len(start), first_after + embargo))


def overlaps_test(start: np.ndarray, end: np.ndarray, idx: np.ndarray,
                  test: np.ndarray) -> np.ndarray:
    """For each sample in idx: does [t0, t1] meet any test [t0_j, t1_j]? Closed, pairwise."""
    a0, a1 = start[idx][:, None], end[idx][:, None]
    b0, b1 = start[test][None, :], end[test][None, :]
    return ((a0 <= b1) & (a1 >= b0)).any(axis=1)


def expected_train(start, end, test, candidates, embargo) -> np.ndarray:
    keep = np.setdiff1d(candidates, test)
    keep = keep[~overlaps_test(start, end, keep, test)] if len(test) else keep
    for block in runs(test):
        zone = embargo_zone(start, end, block, embargo)
        keep = keep[(keep < zone.start) | (keep >= zone.stop)]
    return keep


def check_split(start, end, train, test, candidates, embargo, n) -> None:
    """The acceptance criteria of numerics.md §3 for one split, plus exact expected train."""
    for idx in (train, test):
        assert idx.dtype.kind == "i"
        assert (np.diff(idx) > 0).all()  # sorted, no duplicates
        assert len(idx) == 0 or (idx[0] >= 0 and idx[-1] < n)
    assert len(test) > 0
    assert np.intersect1d(train, test).size == 0  # (3)
    # (1) no overlap, every train i against every test j, closed: t1_i < t0_j or t0_i > t1_j
    apart = ((end[train][:, None] < start[test][None, :])
             | (start[train][:, None] > end[test][None, :]))
    assert apart.all(), train[~apart.all(axis=1)]
    # (2) embargo after every test block
    for block in runs(test):
        zone = embargo_zone(start, end, block, embargo)
        assert not np.isin(np.arange(zone.start, zone.stop), train).any()
    # nothing dropped that need not be: train is exactly the clean candidates
    np.testing.assert_array_equal(train, expected_train(start, end, test, candidates, embargo))


def check_roles(t1, start, end, row, train, test, candidates, embargo) -> None:
    """One role-matrix row agrees with split(), and each role is justified."""
    np.testing.assert_array_equal(np.flatnonzero(row == TRAIN), train)
    np.testing.assert_array_equal(np.flatnonzero(row == TEST), test)
    used = np.union1d(candidates, test)
    assert (row[np.setdiff1d(np.arange(len(row)), used)] == -1).all()
    assert (row[used] >= 0).all()
    purged = np.flatnonzero(row == PURGED)
    assert overlaps_test(start, end, purged, test).all()
    zones = set().union(*(embargo_zone(start, end, b, embargo) for b in runs(test)))
    embargoed = np.flatnonzero(row == EMBARGOED)
    assert set(embargoed.tolist()) <= zones
    # the library's checker passes its own rows and catches injected leaks
    assert leakage_violations(t1, row[None, :], embargo) == []
    for victim in (purged, embargoed):
        if len(victim):
            leaked = row.copy()
            leaked[victim[len(victim) // 2]] = TRAIN
            assert leakage_violations(t1, leaked[None, :], embargo), leaked


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(data=st.data(), lab=labels())
def test_purged_kfold_properties(data, lab) -> None:
    t1, start, end = lab
    n = len(t1)
    n_splits = data.draw(st.sampled_from(range(2, min(12, n) + 1)), label="n_splits")
    embargo = data.draw(embargoes(n), label="embargo")
    cv = PurgedKFold(n_splits, t1, embargo=embargo)
    X = np.zeros((n, 1))
    splits = list(cv.split(X))
    assert len(splits) == cv.get_n_splits() == n_splits
    folds = np.array_split(np.arange(n), n_splits)
    matrix = cv.role_matrix()
    assert matrix.shape == (n_splits, n)
    for (train, test), fold, row in zip(splits, folds, matrix, strict=True):
        np.testing.assert_array_equal(test, fold)
        check_split(start, end, train, test, np.arange(n), embargo, n)
        check_roles(t1, start, end, row, train, test, np.arange(n), embargo)
    assert leakage_violations(t1, matrix, embargo) == []


@settings(max_examples=300, deadline=None)
@given(data=st.data(), lab=labels())
def test_purged_walk_forward_properties(data, lab) -> None:
    t1, start, end = lab
    n = len(t1)
    n_splits = data.draw(st.sampled_from(range(1, 11)), label="n_splits")
    min_train = data.draw(st.one_of(st.none(), st.integers(1, n - n_splits - 1)),
                          label="min_train")
    expanding = data.draw(st.booleans(), label="expanding")
    embargo = data.draw(embargoes(n), label="embargo")
    cv = PurgedWalkForward(n_splits, t1, embargo=embargo, min_train=min_train,
                           expanding=expanding)
    first = n // (n_splits + 1) if min_train is None else min_train
    splits = list(cv.split(np.zeros((n, 2))))
    assert len(splits) == cv.get_n_splits() == n_splits
    matrix = cv.role_matrix()
    folds = np.array_split(np.arange(first, n), n_splits)
    previous_test_end = first - 1
    for (train, test), fold, row in zip(splits, folds, matrix, strict=True):
        np.testing.assert_array_equal(test, fold)
        # test windows are contiguous, in order, and do not overlap
        assert test[0] == previous_test_end + 1
        previous_test_end = test[-1]
        window = np.arange(0 if expanding else test[0] - first, test[0])
        if not expanding:
            assert len(window) == first  # the configured length, before purging
        candidates = np.flatnonzero(row != -1)
        np.testing.assert_array_equal(np.setdiff1d(candidates, test), window)
        check_split(start, end, train, test, window, embargo, n)
        check_roles(t1, start, end, row, train, test, window, embargo)
        if len(train):
            assert train.max() < test.min()
        # the purge is exactly "labels that reach the test fold's first start"
        np.testing.assert_array_equal(train, window[end[window] < start[test[0]]])
    assert (matrix != EMBARGOED).all()  # the embargo only ever hits samples after a test fold
    assert leakage_violations(t1, matrix, embargo) == []


CPCV_SHAPES = [(n_folds, k) for n_folds in range(2, 9) for k in range(1, n_folds)]


@settings(max_examples=250, deadline=None)
@given(data=st.data(), lab=labels())
def test_cpcv_properties(data, lab) -> None:
    t1, start, end = lab
    n = len(t1)
    n_folds, k = data.draw(st.sampled_from(CPCV_SHAPES), label="n_folds, n_test_folds")
    embargo = data.draw(embargoes(n), label="embargo")
    cv = CombinatorialPurgedCV(n_folds, k, t1, embargo=embargo)
    splits = list(cv.split(np.zeros((n, 1))))
    n_paths = comb(n_folds - 1, k - 1)
    assert len(splits) == cv.get_n_splits() == comb(n_folds, k)
    assert cv.n_paths == n_paths
    combos = list(itertools.combinations(range(n_folds), k))
    assert cv.combinations() == combos
    folds = np.array_split(np.arange(n), n_folds)
    matrix = cv.role_matrix()
    tested = np.zeros((len(splits), n_folds), dtype=bool)
    for s, ((train, test), combo, row) in enumerate(zip(splits, combos, matrix, strict=True)):
        np.testing.assert_array_equal(test, np.concatenate([folds[f] for f in combo]))
        tested[s] = [np.isin(fold, test).all() for fold in folds]
        check_split(start, end, train, test, np.arange(n), embargo, n)
        check_roles(t1, start, end, row, train, test, np.arange(n), embargo)
    # (4) each fold is a test fold in exactly C(N-1, k-1) splits
    assert (tested.sum(axis=0) == n_paths).all()
    assert (tested.sum(axis=1) == k).all()

    paths = cv.paths()
    assert paths.shape == (n_paths, n_folds)
    used = np.zeros_like(tested, dtype=int)
    for row in paths:
        covered = []
        for f, s in enumerate(row):
            assert tested[s, f]  # the path takes fold f from a split that tests it
            used[s, f] += 1
            covered.append(np.intersect1d(splits[s][1], folds[f]))
        # every path partitions 0..n-1
        np.testing.assert_array_equal(np.sort(np.concatenate(covered)), np.arange(n))
    np.testing.assert_array_equal(used, tested.astype(int))  # each (split, fold) once overall

    by_sample = cv.sample_paths(n)
    assert by_sample.shape == (len(splits), n)
    fold_of = np.concatenate([np.full(len(f), i) for i, f in enumerate(folds)])
    for s, (_, test) in enumerate(splits):
        np.testing.assert_array_equal(np.flatnonzero(by_sample[s] >= 0), test)
        for i in test.tolist():
            assert paths[by_sample[s, i], fold_of[i]] == s
    for p in range(n_paths):  # each path: every sample exactly once over all splits
        assert ((by_sample == p).sum(axis=0) == 1).all()
    assert path_violations(cv, n) == []
    assert leakage_violations(t1, matrix, embargo) == []


def test_leakage_violations_catches_injected_leaks() -> None:
    """Deterministic version of the injected-leak checks, with the exact messages."""
    t0 = np.arange(40)
    t1 = pd.Series(np.minimum(t0 + 3, 39), index=t0)
    cv = PurgedKFold(4, t1, embargo=2)
    matrix = cv.role_matrix()
    assert leakage_violations(t1, matrix, 2) == []
    # split 1 tests 10..19: 7..9 purged before, 20..22 purged after, 23..24 embargoed
    row = matrix[1]
    np.testing.assert_array_equal(np.flatnonzero(row == PURGED), [7, 8, 9, 20, 21, 22])
    np.testing.assert_array_equal(np.flatnonzero(row == EMBARGOED), [23, 24])
    for victim, words in ((9, "overlaps a test label"), (21, "overlaps a test label"),
                          (23, "within the embargo")):
        leaked = matrix.copy()
        leaked[1, victim] = TRAIN
        problems = leakage_violations(t1, leaked, 2)
        assert len(problems) == 1 and problems[0].startswith("split 1") and words in problems[0]
    empty = matrix.copy()
    empty[0] = TRAIN
    assert leakage_violations(t1, empty, 2) == ["split 0: no test samples"]


def test_purge_is_closed_at_both_ends() -> None:
    """Touching intervals count as overlapping, on either side of the test block."""
    t0 = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    t1 = pd.Series([1.0, 2.0, 2.0, 3.0, 5.0, 5.0], index=t0)
    # test = fold 1 of 3 = samples 2, 3 spanning [2, 3]
    train, test = list(PurgedKFold(3, t1).split(np.zeros(6)))[1]
    np.testing.assert_array_equal(test, [2, 3])
    # sample 1 ends at 2 = test start (touch): purged; sample 0 ends at 1: kept;
    # sample 4 starts at 4 > 3: kept
    np.testing.assert_array_equal(train, [0, 4, 5])
    t1.iloc[3] = 4.0  # now the block reaches 4: sample 4 starts at its end
    train, _ = list(PurgedKFold(3, t1).split(np.zeros(6)))[1]
    np.testing.assert_array_equal(train, [0, 5])
    train, _ = list(PurgedKFold(3, t1, embargo=1).split(np.zeros(6)))[1]
    np.testing.assert_array_equal(train, [0])


# --------------------------------------------------------------------------------------------
# exact equality with skfolio 1.12.2
# --------------------------------------------------------------------------------------------

H_M = [(0, 0), (1, 0), (3, 0), (3, 2), (2, 4)]
N_K = [(6, 2), (10, 2), (5, 2), (8, 3), (10, 8)]


def shifted_labels(n: int, h: int, irregular: bool) -> pd.Series:
    """t1_i = t_{min(i+h, n-1)} on distinct (optionally irregular) datetimes."""
    if irregular:
        gaps = np.random.default_rng(n * 31 + h).integers(1, 10_000, n)
        times = pd.Timestamp("2022-01-01") + pd.to_timedelta(np.cumsum(gaps), unit="s")
    else:
        times = pd.date_range("2022-01-01", periods=n, freq="min")
    return pd.Series(times[np.minimum(np.arange(n) + h, n - 1)], index=times)


@pytest.mark.parametrize("n_folds,k", N_K)
@pytest.mark.parametrize("h,m", H_M)
@pytest.mark.parametrize("irregular", [False, True])
def test_cpcv_equals_skfolio(n_folds, k, h, m, irregular) -> None:
    # skfolio needs purged_size + embargo_size < n // N - 1: take folds large enough for all
    fold_size = max(10, h + m + 2) + (3 if irregular else 0)
    n = n_folds * fold_size
    X = np.random.default_rng(0).normal(size=(n, 2))
    t1 = shifted_labels(n, h, irregular)
    ours = CombinatorialPurgedCV(n_folds, k, t1, embargo=m)
    theirs = SkfolioCPCV(n_folds=n_folds, n_test_folds=k, purged_size=h, embargo_size=m)
    our_splits, their_splits = list(ours.split(X)), list(theirs.split(X))
    assert len(our_splits) == len(their_splits) == theirs.get_n_splits() == ours.get_n_splits()
    for (train, test), (their_train, their_tests) in zip(our_splits, their_splits, strict=True):
        np.testing.assert_array_equal(train, their_train)
        np.testing.assert_array_equal(test, np.concatenate(their_tests))
    # paths: ours (paths × folds) is skfolio's recombined_paths (folds × paths) transposed
    np.testing.assert_array_equal(ours.paths(), theirs.recombined_paths.T)
    assert ours.n_paths == theirs.n_test_paths
    # and the per-split path ids agree with our per-sample path table
    by_sample = ours.sample_paths(n)
    folds = np.array_split(np.arange(n), n_folds)
    for s, combo in enumerate(ours.combinations()):
        ids = [by_sample[s, folds[f][0]] for f in combo]
        np.testing.assert_array_equal(ids, theirs.get_path_ids()[s])


@pytest.mark.parametrize("n_folds,k,n_splits,n_paths",
                         [(6, 2, 15, 5), (10, 8, 45, 36), (10, 2, 45, 9), (5, 2, 10, 4),
                          (8, 3, 56, 21)])
def test_cpcv_counts_as_measured(n_folds, k, n_splits, n_paths) -> None:
    n = n_folds * 10
    t1 = shifted_labels(n, 1, False)
    cv = CombinatorialPurgedCV(n_folds, k, t1)
    assert cv.get_n_splits() == n_splits == len(list(cv.split(np.zeros(n))))
    assert cv.n_paths == n_paths == cv.paths().shape[0]
    theirs = SkfolioCPCV(n_folds=n_folds, n_test_folds=k)
    assert (theirs.n_splits, theirs.n_test_paths) == (n_splits, n_paths)
    assert theirs.recombined_paths.shape == (n_folds, n_paths)


def test_cpcv_measured_example() -> None:
    """numerics.md: h = 3, m = 2, split 0 (tests 0–9 and 10–19): train = 25..59 -> n = 60,
    N = 6 folds of 10, k = 2 (split 0 tests folds 0 and 1)."""
    t1 = shifted_labels(60, 3, False)
    train, test = next(CombinatorialPurgedCV(6, 2, t1, embargo=2).split(np.zeros(60)))
    np.testing.assert_array_equal(test, np.arange(20))
    np.testing.assert_array_equal(train, np.arange(25, 60))
    their_train, their_tests = next(SkfolioCPCV(6, 2, purged_size=3, embargo_size=2)
                                    .split(np.zeros((60, 1))))
    np.testing.assert_array_equal(their_train, np.arange(25, 60))
    np.testing.assert_array_equal(their_tests[0], np.arange(10))
    np.testing.assert_array_equal(their_tests[1], np.arange(10, 20))


def test_walk_forward_gap_is_the_label_horizon() -> None:
    """Acceptance (6) with t1_i = t_{i+h}: max(train) + h < min(test)."""
    for h in (0, 1, 4):
        t1 = shifted_labels(120, h, True)
        for expanding in (True, False):
            cv = PurgedWalkForward(5, t1, embargo=3, min_train=30, expanding=expanding)
            for train, test in cv.split(np.zeros(120)):
                assert train.max() + h < test.min()
                assert train.max() + h + 1 == test.min()  # and no more than that is dropped
                if not expanding:
                    assert train.min() == test.min() - 30


# --------------------------------------------------------------------------------------------
# scikit-learn protocol and validation
# --------------------------------------------------------------------------------------------


@pytest.fixture
def regression() -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    rng = np.random.default_rng(7)
    n = 120
    times = pd.date_range("2023-01-01", periods=n, freq="h")
    X = pd.DataFrame(rng.normal(size=(n, 3)), index=times)
    y = X.to_numpy() @ [1.0, -2.0, 0.5] + rng.normal(scale=0.1, size=n)
    t1 = pd.Series(times[np.minimum(np.arange(n) + 5, n - 1)], index=times)
    return X, y, t1


def splitters(t1: pd.Series):
    return [PurgedKFold(5, t1, embargo=2),
            PurgedWalkForward(4, t1, embargo=2),
            PurgedWalkForward(3, t1, min_train=40, expanding=False),
            CombinatorialPurgedCV(6, 2, t1, embargo=2)]


def test_sklearn_cross_val_score_and_grid_search(regression) -> None:
    X, y, t1 = regression
    for cv in splitters(t1):
        scores = cross_val_score(Ridge(), X, y, cv=cv)
        assert len(scores) == cv.get_n_splits() == len(list(cv.split(X, y)))
        assert np.isfinite(scores).all() and scores.min() > 0.9
        search = GridSearchCV(Ridge(), {"alpha": [0.01, 1.0, 100.0]}, cv=cv).fit(X, y)
        assert search.n_splits_ == cv.get_n_splits()
        assert search.best_params_["alpha"] in (0.01, 1.0)
        # the baseline scores no better than 0 out of sample
        assert cross_val_score(DummyRegressor(), X, y, cv=cv).mean() <= 0.0


def test_split_accepts_arrays_frames_and_lists(regression) -> None:
    X, y, t1 = regression
    cv = PurgedKFold(5, t1, embargo=2)
    reference = list(cv.split(X))
    for form in (X.to_numpy(), X.to_numpy().tolist(), X[0]):
        for (a, b), (c, d) in zip(cv.split(form, y, groups=None), reference, strict=True):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


def test_get_n_splits_and_repr(regression) -> None:
    X, _, t1 = regression
    assert PurgedKFold(7, t1).get_n_splits() == 7
    assert PurgedKFold(7, t1).get_n_splits(X, None, None) == 7
    assert PurgedWalkForward(3, t1).get_n_splits() == 3
    assert CombinatorialPurgedCV(6, 2, t1).get_n_splits(X) == 15
    assert CombinatorialPurgedCV(10, 8, t1).n_paths == 36
    text = repr(PurgedKFold(5, t1, embargo=2))
    assert text.startswith("PurgedKFold(") and "n_splits=5" in text and "embargo=2" in text
    text = repr(PurgedWalkForward(4, t1, embargo=1, min_train=30, expanding=False))
    assert text.startswith("PurgedWalkForward(")
    for part in ("n_splits=4", "embargo=1", "min_train=30", "expanding=False"):
        assert part in text
    text = repr(CombinatorialPurgedCV(6, 2, t1, embargo=3))
    assert text.startswith("CombinatorialPurgedCV(")
    for part in ("n_folds=6", "n_test_folds=2", "embargo=3"):
        assert part in text


def _run(cv, n: int):
    return list(cv.split(np.zeros((n, 1))))


@pytest.mark.parametrize("make", [
    lambda t1: PurgedKFold(3, t1),
    lambda t1: PurgedWalkForward(3, t1),
    lambda t1: CombinatorialPurgedCV(4, 2, t1),
], ids=["kfold", "walk_forward", "cpcv"])
def test_bad_labels_are_rejected(make) -> None:
    t0 = pd.date_range("2024-01-01", periods=30, freq="D")
    good = pd.Series(t0 + pd.Timedelta("1D"), index=t0)
    _run(make(good), 30)

    with pytest.raises(TypeError, match="Series"):
        _run(make(good.to_numpy()), 30)
    with pytest.raises(TypeError, match="Series"):
        _run(make(good.to_frame()), 30)
    with pytest.raises(ValueError, match="sorted"):
        _run(make(good.iloc[::-1]), 30)
    swapped = t0[[1, 0, *range(2, 30)]]
    shuffled = pd.Series(swapped + pd.Timedelta("1D"), index=swapped)
    with pytest.raises(ValueError, match="sorted"):
        _run(make(shuffled), 30)
    backwards = good.copy()
    backwards.iloc[7] = t0[7] - pd.Timedelta("1s")
    with pytest.raises(ValueError, match="ends before it starts"):
        _run(make(backwards), 30)
    missing = good.copy()
    missing.iloc[4] = pd.NaT
    with pytest.raises(ValueError, match="missing"):
        _run(make(missing), 30)
    with pytest.raises(ValueError, match="missing"):
        _run(make(pd.Series([1.0, np.nan] * 15, index=np.arange(30.0))), 30)
    for wrong in (29, 31):
        with pytest.raises(ValueError, match="samples"):
            _run(make(good), wrong)
    with pytest.raises(ValueError, match="samples"):
        make(good).role_matrix(29)


def test_bad_fold_counts_and_embargo_are_rejected() -> None:
    n = 20
    t1 = pd.Series(np.arange(n) + 1.0, index=np.arange(n, dtype=float))
    bad = [
        PurgedKFold(1, t1), PurgedKFold(0, t1), PurgedKFold(n + 1, t1),
        CombinatorialPurgedCV(5, 0, t1), CombinatorialPurgedCV(5, 5, t1),
        CombinatorialPurgedCV(5, 6, t1), CombinatorialPurgedCV(1, 1, t1),
        CombinatorialPurgedCV(n + 1, 2, t1),
        PurgedWalkForward(0, t1), PurgedWalkForward(-1, t1), PurgedWalkForward(n, t1),
        PurgedWalkForward(3, t1, min_train=0), PurgedWalkForward(3, t1, min_train=n - 3),
        PurgedKFold(3, t1, embargo=-1), PurgedWalkForward(3, t1, embargo=-1),
        CombinatorialPurgedCV(4, 2, t1, embargo=-1),
    ]
    for cv in bad:
        with pytest.raises(ValueError):
            _run(cv, n)
        with pytest.raises(ValueError):
            cv.role_matrix()
    for k in (0, 5, 6):
        with pytest.raises(ValueError, match="n_test_folds"):
            CombinatorialPurgedCV(5, k, t1).get_n_splits()
    # the largest allowed values work
    assert len(_run(PurgedKFold(n, t1), n)) == n
    assert len(_run(PurgedWalkForward(3, t1, min_train=n - 4), n)) == 3
    assert len(_run(CombinatorialPurgedCV(n, n - 1, t1), n)) == n

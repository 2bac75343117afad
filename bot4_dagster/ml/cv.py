"""Cross-validation without temporal leakage: purged K-fold, purged walk-forward and
combinatorial purged CV (López de Prado, AFML ch. 7 and 12).

Every sample i is a label that spans the closed interval [t0_i, t1_i] (``t1``: a Series indexed by
t0, sorted, values t1). For each block of adjacent test samples with span [min t0, max t1]:

- **purge**: a training sample whose interval overlaps the span, closed on both ends
  (t0_i ≤ max t1 and t1_i ≥ min t0), is dropped: its label would know the test period;
- **embargo**: the ``embargo`` observations after the last sample that starts inside the span are
  dropped as well, against serial correlation leaking backwards from test into train.

Folds are contiguous (``np.array_split``). With t1_i = t0_{i+h} and n divisible by the number of
folds the index sets equal skfolio's ``CombinatorialPurgedCV(purged_size=h, embargo_size=m)``.
The splitters follow scikit-learn's protocol (``split(X, y=None, groups=None)``,
``get_n_splits``), so they plug into ``cross_val_score`` and ``GridSearchCV``.
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from collections.abc import Iterator
from math import comb

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator

TRAIN, TEST, PURGED, EMBARGOED = 0, 1, 2, 3
ROLES = ("train", "test", "purged", "embargoed")


def _times(values) -> np.ndarray:
    """Comparable numbers: int64 nanoseconds for datetimes, floats otherwise."""
    array = pd.Index(values)
    if isinstance(array, pd.DatetimeIndex):
        if array.tz is not None:
            array = array.tz_convert("UTC").tz_localize(None)
        return array.to_numpy("datetime64[ns]").view(np.int64)
    return np.asarray(array, dtype=np.float64)


def label_spans(t1: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(t0, t1) as comparable arrays, after checking what purging relies on."""
    if not isinstance(t1, pd.Series):
        raise TypeError("t1 must be a pandas Series: index = label start t0, values = label end t1")
    if t1.isna().any():
        raise ValueError(f"t1 has {int(t1.isna().sum())} missing end time(s), "
                         f"first at {t1.index[t1.isna().argmax()]!r}")
    start, end = _times(t1.index), _times(t1.to_numpy())
    if len(start) > 1 and (np.diff(start) < 0).any():
        raise ValueError("t1's index (the label start times t0) must be sorted")
    bad = np.flatnonzero(end < start)
    if len(bad):
        raise ValueError(f"label {bad[0]} ends before it starts: t1 = {t1.iloc[bad[0]]!r} "
                         f"< t0 = {t1.index[bad[0]]!r}")
    return start, end


def _blocks(test: np.ndarray) -> list[tuple[int, int]]:
    """Runs of adjacent indices in a sorted index array, as (first, last)."""
    if len(test) == 0:
        return []
    breaks = np.flatnonzero(np.diff(test) > 1)
    firsts = np.concatenate([[test[0]], test[breaks + 1]])
    lasts = np.concatenate([test[breaks], [test[-1]]])
    return list(zip(firsts.tolist(), lasts.tolist(), strict=True))


def roles(t0: np.ndarray, t1: np.ndarray, test: np.ndarray, embargo: int,
          candidates: np.ndarray | None = None) -> np.ndarray:
    """Each sample's role for one split: TEST, or among ``candidates`` (default: all others)
    PURGED, EMBARGOED or TRAIN; samples that are not candidates keep code -1 (unused)."""
    n = len(t0)
    out = np.full(n, -1, dtype=np.int8)
    if candidates is None:
        out[:] = TRAIN
    else:
        out[candidates] = TRAIN
    out[test] = TEST
    for first, last in _blocks(np.asarray(test)):
        lo, hi = t0[first], t1[first:last + 1].max()
        # samples starting after the block: they overlap iff they start by hi (t0 is sorted)
        after = int(np.searchsorted(t0, hi, side="right"))
        zone = slice(last + 1, after)
        out[zone][out[zone] == TRAIN] = PURGED
        # samples before (and inside) the block overlap iff they end at or after its start
        before = np.flatnonzero(t1[:first] >= lo)
        out[before[out[before] == TRAIN]] = PURGED
        tail = slice(after, min(n, after + embargo))
        out[tail][out[tail] == TRAIN] = EMBARGOED
    return out


class _Purged(BaseCrossValidator):
    """Shared machinery: labels, embargo, and the role matrix of all splits."""

    def _spans(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        t0, t1 = label_spans(self.t1)
        if len(t0) != n:
            raise ValueError(f"X has {n} samples but t1 has {len(t0)} labels")
        if self.embargo < 0:
            raise ValueError(f"embargo must be >= 0, got {self.embargo}")
        return t0, t1

    @abstractmethod
    def _test_sets(self, n: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Each split's test indices and its training candidates (None: every other sample)."""

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(X) if not hasattr(X, "shape") else X.shape[0]
        t0, t1 = self._spans(n)
        for test, candidates in self._test_sets(n):
            role = roles(t0, t1, test, self.embargo, candidates)
            yield np.flatnonzero(role == TRAIN), test

    def role_matrix(self, n: int | None = None) -> np.ndarray:
        """(n_splits × n) codes TRAIN / TEST / PURGED / EMBARGOED (-1: not used by the split)."""
        n = len(self.t1) if n is None else n
        t0, t1 = self._spans(n)
        return np.vstack([roles(t0, t1, test, self.embargo, candidates)
                          for test, candidates in self._test_sets(n)])

    def _iter_test_indices(self, X=None, y=None, groups=None):
        n = len(X) if not hasattr(X, "shape") else X.shape[0]
        for test, _ in self._test_sets(n):
            yield test


def _folds(n: int, n_folds: int) -> list[np.ndarray]:
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds, got {n_folds}")
    if n < n_folds:
        raise ValueError(f"cannot split {n} samples into {n_folds} folds")
    return np.array_split(np.arange(n), n_folds)


class PurgedKFold(_Purged):
    """K contiguous folds; each is the test set once, the rest trains after purge and embargo."""

    def __init__(self, n_splits: int, t1: pd.Series, embargo: int = 0):
        self.n_splits = n_splits
        self.t1 = t1
        self.embargo = embargo

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def _test_sets(self, n):
        for fold in _folds(n, self.n_splits):
            yield fold, None


class PurgedWalkForward(_Purged):
    """Train on the past, test on the next fold, in time order.

    The samples after the first ``min_train`` (default: one fold's worth, n // (n_splits + 1))
    are cut into ``n_splits`` contiguous test folds. Split i trains on everything before its test
    fold (``expanding=True``) or on the ``min_train`` samples just before it (rolling), minus the
    samples whose labels reach into the test fold (purge). The embargo only ever removes samples
    after a test block, which walk-forward training never uses.
    """

    def __init__(self, n_splits: int, t1: pd.Series, embargo: int = 0, min_train: int | None = None,
                 expanding: bool = True):
        self.n_splits = n_splits
        self.t1 = t1
        self.embargo = embargo
        self.min_train = min_train
        self.expanding = expanding

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def _test_sets(self, n):
        if self.n_splits < 1:
            raise ValueError(f"need at least 1 test fold, got {self.n_splits}")
        first = self.min_train if self.min_train is not None else n // (self.n_splits + 1)
        if not 1 <= first < n - self.n_splits:
            raise ValueError(f"min_train = {first} leaves no room for {self.n_splits} test folds "
                             f"in {n} samples")
        for fold in np.array_split(np.arange(first, n), self.n_splits):
            start = 0 if self.expanding else max(0, fold[0] - first)
            yield fold, np.arange(start, fold[0])


class CombinatorialPurgedCV(_Purged):
    """All C(N, k) ways to test on k of N contiguous folds (``itertools.combinations`` order),
    training on the rest after purge and embargo; adjacent test folds form one block.

    Each fold is tested in C(N−1, k−1) splits, which recombine into φ = C(N−1, k−1) complete
    backtest paths (``paths()``): out-of-sample predictions for every sample, once per path.
    """

    def __init__(self, n_folds: int, n_test_folds: int, t1: pd.Series, embargo: int = 0):
        self.n_folds = n_folds
        self.n_test_folds = n_test_folds
        self.t1 = t1
        self.embargo = embargo

    def _check(self) -> None:
        if not 1 <= self.n_test_folds < self.n_folds:
            raise ValueError(f"n_test_folds must be in [1, n_folds), got {self.n_test_folds} "
                             f"of {self.n_folds}")

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        self._check()
        return comb(self.n_folds, self.n_test_folds)

    @property
    def n_paths(self) -> int:
        self._check()
        return comb(self.n_folds - 1, self.n_test_folds - 1)

    def combinations(self) -> list[tuple[int, ...]]:
        """The test folds of each split, in split order."""
        self._check()
        return list(itertools.combinations(range(self.n_folds), self.n_test_folds))

    def _test_sets(self, n):
        folds = _folds(n, self.n_folds)
        for chosen in self.combinations():
            yield np.concatenate([folds[f] for f in chosen]), None

    def sample_paths(self, n: int) -> np.ndarray:
        """(n_splits × n): the path that uses sample i's out-of-sample prediction from each split
        where it is tested, -1 where it is not."""
        folds = _folds(n, self.n_folds)
        fold_of = np.repeat(np.arange(self.n_folds), [len(f) for f in folds])
        table = np.full((self.get_n_splits(), self.n_folds), -1, dtype=np.int64)
        for path, row in enumerate(self.paths()):
            table[row, np.arange(self.n_folds)] = path
        return table[:, fold_of]

    def paths(self) -> np.ndarray:
        """(n_paths × n_folds): the split whose out-of-sample predictions path p uses for fold f.
        The j-th split (in split order) that tests fold f belongs to path j."""
        out = np.empty((self.n_paths, self.n_folds), dtype=np.int64)
        seen = np.zeros(self.n_folds, dtype=np.int64)
        for split, chosen in enumerate(self.combinations()):
            for fold in chosen:
                out[seen[fold], fold] = split
                seen[fold] += 1
        return out


def leakage_violations(t1: pd.Series, role_matrix: np.ndarray, embargo: int) -> list[str]:
    """The no-leakage invariants, checked on a role matrix independently of how it was built:
    (1) no training interval overlaps a test interval (closed intervals); (2) none of the
    ``embargo`` observations after a test block's last overlapping start is in training;
    (3) every sample has exactly one role per split. Returns readable violations (empty: none)."""
    t0, end = label_spans(t1)
    problems = []
    for split, row in enumerate(role_matrix):
        test = np.flatnonzero(row == TEST)
        train = np.flatnonzero(row == TRAIN)
        if len(test) == 0:
            problems.append(f"split {split}: no test samples")
            continue
        if np.intersect1d(test, train).size:
            problems.append(f"split {split}: samples both in train and test")
        # a training interval [a, b] overlaps a test one iff some test j has t0_j <= b and t1_j >= a
        reach = np.maximum.accumulate(end[test])  # test t0 is sorted: max t1 among the first j
        last = np.searchsorted(t0[test], end[train], side="right") - 1
        overlap = (last >= 0) & (reach[np.maximum(last, 0)] >= t0[train])
        if overlap.any():
            i = train[np.argmax(overlap)]
            problems.append(f"split {split}: training label {i} [{t1.index[i]}, {t1.iloc[i]}] "
                            "overlaps a test label")
        for first, last_i in _blocks(test):
            after = int(np.searchsorted(t0, end[first:last_i + 1].max(), side="right"))
            inside = train[(train >= after) & (train < after + embargo)]
            if inside.size:
                problems.append(f"split {split}: sample {inside[0]} is in training within the "
                                f"embargo of {embargo} after the test block ending at {last_i}")
    return problems


def path_violations(cv: CombinatorialPurgedCV, n: int) -> list[str]:
    """CPCV structure: C(N, k) splits, each fold tested C(N−1, k−1) times, every path a
    partition of the samples."""
    problems = []
    combos = cv.combinations()
    if len(combos) != comb(cv.n_folds, cv.n_test_folds):
        problems.append(f"{len(combos)} splits, expected C({cv.n_folds}, {cv.n_test_folds})")
    counts = np.bincount(np.concatenate(combos), minlength=cv.n_folds)
    if (counts != cv.n_paths).any():
        problems.append(f"folds are tested {counts.tolist()} times, expected {cv.n_paths} each")
    folds = _folds(n, cv.n_folds)
    for p, row in enumerate(cv.paths()):
        covered = np.concatenate([folds[f] for f, split in enumerate(row) if f in combos[split]])
        if not np.array_equal(np.sort(covered), np.arange(n)):
            problems.append(f"path {p} does not cover every sample exactly once")
    return problems

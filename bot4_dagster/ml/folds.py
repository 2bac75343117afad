"""The fold stage: three purged splitters over the labels, their stored long form
(``ml.cv_folds``), the stored-fold check, and how many labels each scheme needs.

Splitters come from ``cv.py``; this module decides how the pipeline builds them (embargo as a
share of the labels), how a split is stored (one row per scheme, split and sample the split uses)
and how stored rows are read back and checked without trusting the code that wrote them.

**Minimum labels.** Every split must keep a test set and at least one training label after
purging and embargo. How many labels that takes depends on the folds, the embargo share and the
labels' *reach*: how many later labels start within a label's span. The worst case for a reach r
is every label reaching r labels ahead; the minimum is the smallest n from which on every size
keeps a training label in every split of that worst case, found by running the splitter itself on
such labels. Real labels reach no further, so they lose no more to purging: at or above the
minimum no split is empty, below it the stage raises ``InsufficientData``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .cv import (
    ROLES,
    TEST,
    TRAIN,
    CombinatorialPurgedCV,
    PurgedKFold,
    PurgedWalkForward,
    label_spans,
    leakage_violations,
)
from .insufficient import InsufficientData

SCHEMES = ("purged_kfold", "walk_forward", "cpcv")
COLUMNS = ("symbol", "scheme", "split", "t0", "role", "path", "embargo", "folds", "test_folds")


def label_t1(labels: pd.DataFrame) -> pd.Series:
    """The splitters' ``t1``: label end times indexed by label start t0 (UTC)."""
    return pd.Series(pd.to_datetime(labels["t1"], utc=True).to_numpy(),
                     index=pd.DatetimeIndex(pd.to_datetime(labels["t0"], utc=True)))


def label_reach(t1: pd.Series) -> int:
    """The most later labels that start within one label's span [t0, t1]."""
    t0, end = label_spans(t1)
    if len(t0) == 0:
        return 0
    return int((np.searchsorted(t0, end, side="right") - 1 - np.arange(len(t0))).max())


@dataclass(frozen=True)
class FoldSettings:
    """The fold stage's parameters: K for purged K-fold and walk-forward, N and k for CPCV, and
    the embargo as a share of the labels (AFML: 1%)."""

    n_splits: int = 5
    cpcv_folds: int = 6
    cpcv_test_folds: int = 2
    embargo_pct: float = 0.01

    def __post_init__(self):
        if self.n_splits < 2:
            raise ValueError(f"n_splits must be at least 2, got {self.n_splits}")
        if not 1 <= self.cpcv_test_folds < self.cpcv_folds:
            raise ValueError(f"cpcv_test_folds must be in [1, cpcv_folds), got "
                             f"{self.cpcv_test_folds} of {self.cpcv_folds}")
        if not 0 <= self.embargo_pct < 1:
            raise ValueError(f"embargo_pct must be in [0, 1), got {self.embargo_pct}")
        for scheme in ("purged_kfold", "cpcv"):
            if self._kept_share(scheme) <= 0:
                raise ValueError(f"an embargo of {self.embargo_pct:.0%} leaves "
                                 f"{self.title(scheme)} no training labels at any size")

    def embargo(self, n: int) -> int:
        return int(np.ceil(self.embargo_pct * n))

    def title(self, scheme: str) -> str:
        return {"purged_kfold": f"purged {self.n_splits}-fold CV",
                "walk_forward": f"purged walk-forward CV ({self.n_splits} test folds)",
                "cpcv": f"combinatorial purged CV ({self.cpcv_folds} folds, "
                        f"{self.cpcv_test_folds} tested)"}[scheme]

    def splitter(self, scheme: str, t1: pd.Series):
        embargo = self.embargo(len(t1))
        if scheme == "purged_kfold":
            return PurgedKFold(self.n_splits, t1, embargo=embargo)
        if scheme == "walk_forward":
            return PurgedWalkForward(self.n_splits, t1, embargo=embargo)
        if scheme == "cpcv":
            return CombinatorialPurgedCV(self.cpcv_folds, self.cpcv_test_folds, t1, embargo=embargo)
        raise ValueError(f"unknown scheme {scheme!r}; known: {', '.join(SCHEMES)}")

    def _kept_share(self, scheme: str) -> float:
        """Share of n that a split surely keeps beyond a constant: 1 − test − embargo shares."""
        if scheme == "purged_kfold":
            return 1 - 1 / self.n_splits - self.embargo_pct
        k = self.cpcv_test_folds
        return 1 - k / self.cpcv_folds - k * self.embargo_pct

    def _sure(self, scheme: str, reach: int) -> int:
        """A size from which on every split keeps a training label, from the worst-case counts:
        a test block excludes its ≤ ⌈n/K⌉ test labels, ≤ reach purged either side, ≤ ⌈pct·n⌉
        embargoed; walk-forward's first split trains on n // (K+1) minus ≤ reach purged."""
        k = self.n_splits
        if scheme == "walk_forward":
            return (k + 1) * (reach + 1) + k
        if scheme == "purged_kfold":
            return max(k, math.ceil((2 * reach + 3) / self._kept_share(scheme)))
        t = self.cpcv_test_folds
        return max(self.cpcv_folds, math.ceil((t * (2 * reach + 2) + 1) / self._kept_share(scheme)))

    def keeps_training(self, scheme: str, n: int, reach: int) -> bool:
        """Whether n labels that each reach ``reach`` labels ahead give every split a test set
        and a training label."""
        t0 = np.arange(n, dtype=np.float64)
        try:
            matrix = self.splitter(scheme, pd.Series(t0 + reach, index=t0)).role_matrix(n)
        except ValueError:  # fewer labels than folds, or no room for walk-forward's test folds
            return False
        return bool(((matrix == TRAIN).any(axis=1) & (matrix == TEST).any(axis=1)).all())

    def minimum(self, scheme: str, reach: int) -> int:
        """The fewest labels from which on every size keeps a training label in every split."""
        n = self._sure(scheme, reach)
        while n > 1 and self.keeps_training(scheme, n - 1, reach):
            n -= 1
        return n


def fold_splitters(labels: pd.DataFrame, *, symbol: str | None = None, n_splits: int = 5,
                   cpcv_folds: int = 6, cpcv_test_folds: int = 2,
                   embargo_pct: float = 0.01) -> dict:
    """{scheme: splitter} for ``SCHEMES`` over the stored labels (t0, t1), the embargo
    ⌈embargo_pct·n⌉ labels; ``InsufficientData`` names the most demanding scheme that the labels
    are too few for."""
    settings = FoldSettings(n_splits, cpcv_folds, cpcv_test_folds, embargo_pct)
    t1 = label_t1(labels)
    reach = label_reach(t1)
    need = {scheme: settings.minimum(scheme, reach) for scheme in SCHEMES}
    short = [scheme for scheme in SCHEMES if len(t1) < need[scheme]]
    if short:
        worst = max(short, key=lambda scheme: need[scheme])
        raise InsufficientData(
            settings.title(worst), symbol, need[worst], len(t1), "labels",
            f"every split must keep a training label after purging up to {reach} labels either "
            f"side of its test block and an embargo of {embargo_pct:.1%}; purged K-fold needs "
            f"{need['purged_kfold']:,}, walk-forward {need['walk_forward']:,}, "
            f"CPCV {need['cpcv']:,}", noun="folds")
    return {scheme: settings.splitter(scheme, t1) for scheme in SCHEMES}


def role_matrices(splitters: dict) -> dict[str, np.ndarray]:
    """{scheme: (splits × labels) role codes}, computed once for the table, counts and plot."""
    return {scheme: cv.role_matrix() for scheme, cv in splitters.items()}


def folds_table(labels: pd.DataFrame, splitters: dict, matrices: dict | None = None, *,
                symbol: str) -> pd.DataFrame:
    """The stored folds (``COLUMNS``): one row per scheme, split and label the split uses, its
    role, the CPCV path of a test row (NA otherwise), the embargo and the fold counts."""
    matrices = matrices if matrices is not None else role_matrices(splitters)
    parts = []
    for scheme, cv in splitters.items():
        matrix = matrices[scheme]
        cpcv = isinstance(cv, CombinatorialPurgedCV)
        paths = cv.sample_paths(matrix.shape[1]) if cpcv else None
        frame = _long(matrix, labels["t0"], scheme, paths)
        frame["embargo"] = cv.embargo
        frame["folds"] = cv.n_folds if cpcv else cv.n_splits
        frame["test_folds"] = cv.n_test_folds if cpcv else 1
        parts.append(frame)
    stored = pd.concat(parts, ignore_index=True)
    stored.insert(0, "symbol", pd.array([symbol] * len(stored), dtype="string"))
    return stored[list(COLUMNS)]


def _long(matrix: np.ndarray, t0: pd.Series, scheme: str,
          paths: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (split, sample used by the split); ``paths`` from ``sample_paths``."""
    splits, samples = np.nonzero(matrix >= 0)
    path = pd.array(np.full(len(splits), -1) if paths is None else paths[splits, samples],
                    dtype="Int32")
    path[path < 0] = pd.NA
    return pd.DataFrame({
        "scheme": pd.array([scheme] * len(splits), dtype="string"),
        "split": splits.astype(np.int32),
        "t0": t0.array[samples],  # keeps the labels' time zone and resolution
        "role": pd.array(np.asarray(ROLES)[matrix[splits, samples]], dtype="string"),
        "path": path,
    })


def split_counts(matrices: dict[str, np.ndarray]) -> pd.DataFrame:
    """Labels per role in every split: scheme, split, train, test, purged, embargoed."""
    rows = [{"scheme": scheme, "split": split,
             **{role: int((row == code).sum()) for code, role in enumerate(ROLES)}}
            for scheme, matrix in matrices.items() for split, row in enumerate(matrix)]
    return pd.DataFrame(rows, columns=["scheme", "split", *ROLES])


def role_totals(counts: pd.DataFrame) -> dict[str, int]:
    """Labels purged and embargoed over all splits of all schemes (from ``split_counts``)."""
    return {role: int(counts[role].sum()) for role in ("purged", "embargoed")}


def role_matrix_of(frame: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """The (splits × labels) role codes of one scheme's stored rows (-1: not used)."""
    position = pd.Series(np.arange(len(labels)), index=pd.to_datetime(labels["t0"], utc=True))
    columns = position.reindex(pd.to_datetime(frame["t0"], utc=True)).to_numpy()
    if np.isnan(columns.astype(np.float64)).any():
        raise ValueError("stored folds name label start times that are not labels")
    matrix = np.full((int(frame["split"].max()) + 1, len(labels)), -1, dtype=np.int8)
    codes = frame["role"].map({role: i for i, role in enumerate(ROLES)}).to_numpy()
    matrix[frame["split"].to_numpy(), columns.astype(np.int64)] = codes
    return matrix


def stored_fold_violations(folds: pd.DataFrame, labels: pd.DataFrame,
                           schemes: tuple[str, ...] = SCHEMES) -> list[str]:
    """Read stored folds back and list what is wrong (empty: nothing): every scheme present,
    one known role per label and split, no training label overlapping a test label, the stored
    embargo respected, and for CPCV C(N,k) splits, each label tested C(N−1,k−1) times and paths
    that each cover every label once."""
    if folds.empty:
        return ["no stored folds"]
    problems = [f"{scheme}: no stored rows" for scheme in schemes
                if scheme not in set(folds["scheme"])]
    t1 = label_t1(labels)
    starts = pd.DatetimeIndex(pd.to_datetime(labels["t0"], utc=True))
    for scheme, frame in folds.groupby("scheme", sort=True):
        unknown_role = int((~frame["role"].isin(ROLES)).sum())
        unknown_t0 = int((~pd.DatetimeIndex(pd.to_datetime(frame["t0"], utc=True))
                          .isin(starts)).sum())
        repeated = int(frame.duplicated(["split", "t0"]).sum())
        for count, what in ((unknown_role, "rows with a role outside " + "/".join(ROLES)),
                            (unknown_t0, "rows whose t0 is no label's start"),
                            (repeated, "labels with more than one role in a split")):
            if count:
                problems.append(f"{scheme}: {count} {what}")
        if unknown_role or unknown_t0 or repeated:
            continue
        matrix = role_matrix_of(frame, labels)
        problems += [f"{scheme}: {p}" for p in
                     leakage_violations(t1, matrix, int(frame["embargo"].iloc[0]))]
        if scheme == "cpcv":
            problems += [f"cpcv: {p}" for p in _stored_path_violations(frame, matrix)]
    return problems


def _stored_path_violations(frame: pd.DataFrame, matrix: np.ndarray) -> list[str]:
    n_folds, k = int(frame["folds"].iloc[0]), int(frame["test_folds"].iloc[0])
    problems = []
    if matrix.shape[0] != math.comb(n_folds, k):
        problems.append(f"{matrix.shape[0]} splits, expected C({n_folds}, {k})")
    tested = (matrix == TEST).sum(axis=0)
    if (tested != math.comb(n_folds - 1, k - 1)).any():
        problems.append(f"samples tested {sorted(set(tested.tolist()))} times, "
                        f"expected {math.comb(n_folds - 1, k - 1)}")
    test_rows = frame[frame["role"] == "test"]
    n = matrix.shape[1]
    for path, rows in test_rows.groupby("path"):
        if len(rows) != n or rows["t0"].nunique() != n:
            problems.append(f"path {path} does not cover every sample exactly once")
    return problems


def stored_schemes(folds: pd.DataFrame) -> list[str]:
    """The schemes present in a stored ``ml.cv_folds`` table, sorted."""
    return sorted(folds["scheme"].unique())

"""Blending the base learners' out-of-fold probabilities, how different those learners are, and
the probability scores (with standard errors) that the reports quote.

- :class:`StackingEnsemble` turns P (n samples × K learners, each column one learner's
  out-of-fold probability of the positive class) into one probability, by one of
  :data:`BLEND_MODES` (reference/numerics.md §6). Its fitted modes are scored optimistically on
  the rows they were fitted on, so :func:`stacking_oof` gives the stacking meta-learner's own
  out-of-fold probabilities by a second, nested purged K-fold.
- :func:`diversity` and :func:`pairwise_table`: the Kuncheva & Whitaker (2003) measures on the
  learners' oracle outputs (1 where a learner's thresholded prediction is right), plus one minus
  the mean pairwise Spearman correlation of the probabilities. An ensemble of learners that are
  right and wrong on the same samples gains nothing from blending.
- :func:`log_loss_se`, :func:`brier_se`, :func:`auc_se`: scores with their standard errors,
  since two scores cannot be compared without one.

A prediction is positive iff its probability is strictly above the threshold (0.5), as in
scikit-learn's ``predict`` (a tie goes to class 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import rankdata, spearmanr
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from ._inputs import finite_vector, integer
from .cv import PurgedKFold

__all__ = [
    "BLEND_MODES",
    "Diversity",
    "StackingEnsemble",
    "auc_se",
    "brier_se",
    "diversity",
    "hanley_mcneil_se",
    "log_loss_se",
    "oracle_outputs",
    "pairwise_counts",
    "pairwise_table",
    "rank_average",
    "stacking_oof",
]

BLEND_MODES = ("mean", "weighted", "rank", "median", "stacking")


# --- argument checks -------------------------------------------------------------------------


def _unit_interval(arr: np.ndarray, name: str) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(arr.ravel()))
    if bad.size:
        raise ValueError(f"{name} has {bad.size} non-finite values "
                         f"(first at {np.unravel_index(bad[0], arr.shape)})")
    outside = np.flatnonzero((arr.ravel() < 0.0) | (arr.ravel() > 1.0))
    if outside.size:
        first = np.unravel_index(outside[0], arr.shape)
        raise ValueError(f"{name} has {outside.size} probabilities outside [0, 1] "
                         f"(first {arr[first]!r} at {first})")
    return arr


def _probability_matrix(P: object, name: str = "P") -> np.ndarray:
    """``P`` as a finite (n × K) float64 matrix of probabilities, n, K ≥ 1."""
    arr = np.ascontiguousarray(np.asarray(P, dtype=np.float64))
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples × learners), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    return _unit_interval(arr, name)


def _scored(y: object, p: object) -> tuple[np.ndarray, np.ndarray]:
    """(labels as float64, probabilities) of a score: one binary label per probability."""
    probs = _unit_interval(finite_vector(p, "p"), "p")
    return _labels(y, probs.size).astype(np.float64), probs


def _labels(y: object, n: int) -> np.ndarray:
    """Binary labels in {0, 1} as int64, one per sample."""
    arr = finite_vector(y, "y")
    if arr.size != n:
        raise ValueError(f"y has {arr.size} labels but there are {n} samples")
    bad = np.flatnonzero((arr != 0.0) & (arr != 1.0))
    if bad.size:
        raise ValueError(f"y must be binary (0 or 1); {bad.size} labels are not, "
                         f"first {arr[bad[0]]!r} at index {bad[0]}")
    return arr.astype(np.int64)


def _sample_weight(w: object, n: int, name: str = "sample_weight") -> np.ndarray:
    """Non-negative finite weights with a positive sum (None: all ones)."""
    if w is None:
        return np.ones(n)
    arr = finite_vector(w, name)
    if arr.size != n:
        raise ValueError(f"{name} has {arr.size} values but there are {n} samples")
    if (arr < 0.0).any():
        raise ValueError(f"{name} must be >= 0; first negative at index {np.argmax(arr < 0.0)}")
    if arr.sum() <= 0.0:
        raise ValueError(f"{name} sums to zero: no sample counts")
    return arr


def _threshold(value: float) -> float:
    out = float(value)
    if not 0.0 <= out <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {value!r}")
    return out


def _clip_level(value: float) -> float:
    out = float(value)
    if not 0.0 < out < 0.5:
        raise ValueError(f"clip must be in (0, 0.5), got {value!r}")
    return out


def _inverse_strength(value: float) -> float:
    out = float(value)
    if not (math.isfinite(out) and out > 0.0):
        raise ValueError(f"C must be finite and > 0, got {value!r}")
    return out


def _mode(value: object) -> str:
    if not isinstance(value, str) or value not in BLEND_MODES:
        raise ValueError(f"unknown blend mode {value!r}; choose one of {', '.join(BLEND_MODES)}")
    return value


def _logit(probs: np.ndarray, clip: float) -> np.ndarray:
    clipped = np.clip(probs, clip, 1.0 - clip)
    return np.log(clipped) - np.log1p(-clipped)


# --- blending --------------------------------------------------------------------------------


def rank_average(P: object) -> np.ndarray:
    """(1/K) Σ_k rank(p_k)/n within P, ties given their average rank (numerics.md §6).

    A score in (0, 1], not a probability: :class:`StackingEnsemble` maps it back to one.
    """
    probs = _probability_matrix(P)
    return np.asarray(rankdata(probs, axis=0, method="average").mean(axis=1) / probs.shape[0])


def _simplex_weights(probs: np.ndarray, y: np.ndarray, weight: np.ndarray,
                     clip: float) -> np.ndarray:
    """argmin over the simplex of the weighted log-loss of P·w (SLSQP from uniform weights).

    The loss is convex in w, so SLSQP's local optimum is the global one. Uniform weights are kept
    if the optimiser does not beat them, so the weighted blend never scores worse than the mean.
    """
    k = probs.shape[1]
    start = np.full(k, 1.0 / k)
    if k == 1:
        return start
    positive, total = y.astype(np.float64), weight.sum()

    def loss(w: np.ndarray) -> float:
        p = np.clip(probs @ w, clip, 1.0 - clip)
        return float(-(weight * (positive * np.log(p) + (1 - positive) * np.log1p(-p))).sum()
                     / total)

    def gradient(w: np.ndarray) -> np.ndarray:
        p = np.clip(probs @ w, clip, 1.0 - clip)
        return np.asarray(probs.T @ (-weight * (positive / p - (1 - positive) / (1 - p)) / total))

    result = minimize(loss, start, jac=gradient, method="SLSQP", bounds=[(0.0, 1.0)] * k,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0,
                                    "jac": lambda w: np.ones_like(w)}],
                      options={"ftol": 1e-13, "maxiter": 1000})
    found = np.clip(result.x, 0.0, 1.0)  # SLSQP may step a hair outside its bounds
    found /= found.sum()
    return found if loss(found) <= loss(start) else start


class StackingEnsemble(ClassifierMixin, BaseEstimator):
    """One probability from K learners' out-of-fold probabilities P (n × K).

    Modes (``mode``, one of :data:`BLEND_MODES`):

    - ``mean``: (1/K) Σ p_k; ``weights_`` uniform.
    - ``weighted``: P·w with w ≥ 0, Σ w = 1 minimising the (sample-weighted) log-loss of the
      training rows, P clipped into [clip, 1 − clip] for the loss; ``weights_`` = w.
    - ``rank``: the rank average, mapped back to a probability (below); ``weights_`` uniform
      (every learner's rank counts equally).
    - ``median``: the elementwise median across learners; ``weights_`` NaN (not a linear blend).
    - ``stacking``: ``meta_`` = ``LogisticRegression(C=C)`` on logit(clip(P)), fitted with the
      sample weights; ``weights_`` NaN (the meta-learner's coefficients are ``meta_.coef_``).

    **Rank to probability.** A row's rank score is the mean over learners of its empirical CDF
    against that learner's *training* probabilities, F_k(x) = (#{p < x} + #{p ≤ x} + 1)/(2n)
    (``np.searchsorted`` on ``train_sorted_``). On the training rows this is exactly
    :func:`rank_average`, ties at their average rank; a value between two training values gets
    the midpoint of their ranks, one above all of them (2n + 1)/(2n). The score is then mapped to
    the isotonic (non-decreasing) regression of the training rows' mean-blend probabilities on
    their scores: linear interpolation between the fitted points (``rank_thresholds_`` →
    ``rank_probabilities_``), held constant beyond the ends. So a higher rank score never gets a
    lower probability, the probabilities stay on the mean blend's scale, and a row's prediction
    does not depend on the other rows in its batch.

    Fitted: ``n_learners_`` (= ``n_features_in_``), ``classes_`` = [0, 1], ``weights_``,
    ``meta_`` (None unless stacking), ``mode_`` and ``clip_`` as fitted; for rank mode also
    ``train_sorted_``, ``rank_thresholds_`` and ``rank_probabilities_``.
    """

    def __init__(self, mode: str = "mean", C: float = 1.0, clip: float = 1e-6):
        self.mode = mode
        self.C = C
        self.clip = clip

    def fit(self, P: object, y: object, sample_weight: object = None) -> StackingEnsemble:
        mode, clip = _mode(self.mode), _clip_level(self.clip)
        inverse_strength = _inverse_strength(self.C)
        probs = _probability_matrix(P)
        n, k = probs.shape
        labels = _labels(y, n)
        weight = _sample_weight(sample_weight, n)
        self.mode_, self.clip_ = mode, clip
        self.n_learners_ = self.n_features_in_ = k
        self.classes_ = np.array([0, 1])
        self.meta_: LogisticRegression | None = None
        self.weights_ = np.full(k, 1.0 / k)
        if mode in ("median", "stacking"):
            self.weights_ = np.full(k, np.nan)
        if mode == "weighted":
            self.weights_ = _simplex_weights(np.clip(probs, clip, 1.0 - clip), labels, weight, clip)
        elif mode == "stacking":
            if np.unique(labels[weight > 0]).size < 2:
                raise ValueError("stacking needs both classes among the weighted training rows")
            self.meta_ = LogisticRegression(C=inverse_strength, max_iter=1000)
            self.meta_.fit(_logit(probs, clip), labels, sample_weight=weight)
        elif mode == "rank":
            self.train_sorted_ = np.sort(probs, axis=0)
            isotonic = IsotonicRegression(increasing=True, out_of_bounds="clip")
            isotonic.fit(self.rank_score(probs), probs.mean(axis=1), sample_weight=weight)
            self.rank_thresholds_ = np.asarray(isotonic.X_thresholds_, dtype=np.float64)
            self.rank_probabilities_ = np.asarray(isotonic.y_thresholds_, dtype=np.float64)
        return self

    def _checked(self, P: object) -> np.ndarray:
        check_is_fitted(self)
        probs = _probability_matrix(P)
        if probs.shape[1] != self.n_learners_:
            raise ValueError(f"P has {probs.shape[1]} learners (columns); the ensemble was fitted "
                             f"on {self.n_learners_}")
        return probs

    def rank_score(self, P: object) -> np.ndarray:
        """Rank-average score of each row against the training distribution (rank mode only)."""
        probs = self._checked(P)
        if not hasattr(self, "train_sorted_"):
            raise ValueError(f"rank scores need an ensemble fitted in rank mode, not "
                             f"{self.mode_!r}")
        reference = self.train_sorted_
        cdf = np.empty_like(probs)
        for k in range(probs.shape[1]):
            below = np.searchsorted(reference[:, k], probs[:, k], side="left")
            up_to = np.searchsorted(reference[:, k], probs[:, k], side="right")
            cdf[:, k] = (below + up_to + 1) / (2.0 * reference.shape[0])
        return np.asarray(cdf.mean(axis=1))

    def blend(self, P: object) -> np.ndarray:
        """The blended probability of the positive class, one per row of P."""
        probs = self._checked(P)
        if self.mode_ in ("mean", "weighted"):
            return np.asarray(probs @ self.weights_)
        if self.mode_ == "median":
            return np.asarray(np.median(probs, axis=1))
        if self.mode_ == "stacking":
            assert self.meta_ is not None
            return np.asarray(self.meta_.predict_proba(_logit(probs, self.clip_))[:, 1])
        return np.interp(self.rank_score(probs), self.rank_thresholds_, self.rank_probabilities_)

    def predict_proba(self, P: object) -> np.ndarray:
        """(n × 2): columns P(y = 0), P(y = 1), as scikit-learn classifiers return."""
        positive = self.blend(P)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, P: object) -> np.ndarray:
        """1 where the blended probability is above 0.5, else 0."""
        return (self.blend(P) > 0.5).astype(np.int64)


def stacking_oof(P: object, y: object, t1: pd.Series, n_splits: int = 5, embargo: int = 0,
                 sample_weight: object = None, C: float = 1.0, clip: float = 1e-6) -> np.ndarray:
    """The stacking meta-learner's own out-of-fold probabilities.

    P already holds out-of-fold base-learner probabilities; fitting the meta-learner on all of it
    and scoring it there would still be in-sample for the meta-learner. So each
    :class:`~bot4_dagster.ml.cv.PurgedKFold` test fold is predicted by a meta-learner fitted only
    on that split's training rows (purged and embargoed against ``t1``). Rows that are in no test
    fold stay NaN (purged K-fold tests every row, so there are none today).
    """
    probs = _probability_matrix(P)
    n = probs.shape[0]
    labels = _labels(y, n)
    weight = _sample_weight(sample_weight, n)
    splitter = PurgedKFold(integer(n_splits, "n_splits", 2), t1, integer(embargo, "embargo", 0))
    out = np.full(n, np.nan)
    for split, (train, test) in enumerate(splitter.split(probs)):
        if np.unique(labels[train][weight[train] > 0]).size < 2:
            raise ValueError(f"split {split}: the meta-learner's {train.size} training rows do not "
                             "hold both classes")
        meta = StackingEnsemble(mode="stacking", C=C, clip=clip)
        meta.fit(probs[train], labels[train], sample_weight=weight[train])
        out[test] = meta.blend(probs[test])
    return out


# --- diversity (Kuncheva & Whitaker 2003) ----------------------------------------------------


def oracle_outputs(P: object, y: object, threshold: float = 0.5) -> np.ndarray:
    """(n × K) int matrix O: O_ik = 1 iff learner k's prediction (p > threshold) equals y_i."""
    probs = _probability_matrix(P)
    labels = _labels(y, probs.shape[0])
    predicted = (probs > _threshold(threshold)).astype(np.int64)
    return (predicted == labels[:, None]).astype(np.int64)


def _oracle_matrix(oracle: object) -> np.ndarray:
    arr = np.asarray(oracle)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"the oracle matrix must be non-empty and 2-D, got shape {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError("the oracle matrix must hold only 0 (learner wrong) and 1 (right)")
    return arr.astype(bool)


def pairwise_counts(oracle: object, a: int, b: int) -> tuple[int, int, int, int]:
    """(N¹¹, N⁰⁰, N¹⁰, N⁰¹) from an oracle matrix O (:func:`oracle_outputs`): samples where
    learners a and b are both right, both wrong, only a right, only b right."""
    correct = _oracle_matrix(oracle)
    k = correct.shape[1]
    first, second = integer(a, "a", 0), integer(b, "b", 0)
    if max(first, second) >= k:
        raise ValueError(f"learner indices must be < {k}, got a = {first}, b = {second}")
    x, z = correct[:, first], correct[:, second]
    return (int(np.sum(x & z)), int(np.sum(~x & ~z)), int(np.sum(x & ~z)), int(np.sum(~x & z)))


def _pair_measures(counts: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """(Q, ρ, D, DF) of one pair; NaN where the denominator is zero (exact integer arithmetic)."""
    n11, n00, n10, n01 = counts
    n = n11 + n00 + n10 + n01
    agreement = n11 * n00 - n01 * n10
    q_den = n11 * n00 + n01 * n10
    rho_den = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    return (agreement / q_den if q_den else math.nan,
            agreement / math.sqrt(rho_den) if rho_den else math.nan,
            (n01 + n10) / n, n00 / n)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation; NaN (without scipy's warning) when either side is constant."""
    if a.size < 2 or np.ptp(a) == 0.0 or np.ptp(b) == 0.0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def _mean_defined(values: np.ndarray) -> tuple[float, int]:
    """Mean of the non-NaN values (NaN if none) and how many were NaN."""
    defined = values[~np.isnan(values)]
    return (float(defined.mean()) if defined.size else math.nan, int(values.size - defined.size))


@dataclass(frozen=True)
class Diversity:
    """Ensemble diversity on thresholded out-of-fold predictions (numerics.md §6).

    Pairwise averages over the L(L−1)/2 pairs: ``D_av`` disagreement (the specification's
    diversity score, also :attr:`score`), ``Q_av`` Yule's Q, ``rho_av`` the correlation of the
    oracle outputs, ``DF_av`` double fault (lower is more diverse for all but D). Non-pairwise:
    ``KW`` Kohavi–Wolpert variance (= (L−1)/(2L)·D_av), ``E`` entropy, ``kappa`` interrater
    agreement. ``spearman_diversity`` = 1 − mean pairwise Spearman correlation of the
    probabilities. ``undefined[measure]``: how many pairs (or, for the non-pairwise measures,
    0 or 1) had a zero denominator, were NaN and are left out of the average.
    """

    D_av: float
    Q_av: float
    rho_av: float
    DF_av: float
    KW: float
    E: float
    kappa: float
    spearman_diversity: float
    n_learners: int
    n_pairs: int
    undefined: dict[str, int]

    @property
    def score(self) -> float:
        """The specification's diversity score: the average disagreement D_av."""
        return self.D_av


def _pairs(P: object, y: object, threshold: float) -> tuple[np.ndarray, np.ndarray, list]:
    probs = _probability_matrix(P)
    if probs.shape[1] < 2:
        raise ValueError(f"diversity needs at least 2 learners, got {probs.shape[1]}")
    return probs, oracle_outputs(probs, y, threshold), list(combinations(range(probs.shape[1]), 2))


def diversity(P: object, y: object, threshold: float = 0.5) -> Diversity:
    """Kuncheva & Whitaker's measures and the Spearman companion of K ≥ 2 learners."""
    probs, oracle, pairs = _pairs(P, y, threshold)
    n, learners = oracle.shape
    measures = np.array([_pair_measures(pairwise_counts(oracle, a, b)) for a, b in pairs])
    spearman = np.array([_spearman(probs[:, a], probs[:, b]) for a, b in pairs])
    q_av, q_bad = _mean_defined(measures[:, 0])
    rho_av, rho_bad = _mean_defined(measures[:, 1])
    d_av, d_bad = _mean_defined(measures[:, 2])
    df_av, df_bad = _mean_defined(measures[:, 3])
    mean_spearman, spearman_bad = _mean_defined(spearman)
    correct = oracle.sum(axis=1)
    spread = float(np.sum(correct * (learners - correct)))
    accuracy = correct.sum() / (n * learners)
    kappa_defined = 0.0 < accuracy < 1.0
    kappa = (1.0 - (spread / learners) / (n * (learners - 1) * accuracy * (1.0 - accuracy))
             if kappa_defined else math.nan)
    entropy = float(np.mean(np.minimum(correct, learners - correct))) / (learners // 2)
    return Diversity(
        D_av=d_av, Q_av=q_av, rho_av=rho_av, DF_av=df_av, KW=spread / (n * learners**2),
        E=entropy, kappa=float(kappa), spearman_diversity=1.0 - mean_spearman,
        n_learners=learners, n_pairs=len(pairs),
        undefined={"D": d_bad, "Q": q_bad, "rho": rho_bad, "DF": df_bad, "KW": 0, "E": 0,
                   "kappa": int(not kappa_defined), "spearman": spearman_bad},
    )


def pairwise_table(P: object, y: object, names: Sequence[str],
                   threshold: float = 0.5) -> pd.DataFrame:
    """One row per learner pair: learner_a, learner_b, Q, rho, D, DF, spearman (NaN: undefined)."""
    probs, oracle, pairs = _pairs(P, y, threshold)
    labels = list(names)
    if len(labels) != probs.shape[1]:
        raise ValueError(f"{len(labels)} names for {probs.shape[1]} learners")
    if len(set(labels)) != len(labels):
        raise ValueError(f"learner names must be unique, got {labels}")
    rows = [(labels[a], labels[b], *_pair_measures(pairwise_counts(oracle, a, b)),
             _spearman(probs[:, a], probs[:, b])) for a, b in pairs]
    return pd.DataFrame(rows, columns=["learner_a", "learner_b", "Q", "rho", "D", "DF",
                                       "spearman"])


# --- scores with standard errors -------------------------------------------------------------


def _weighted_mean_se(losses: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Weighted mean l̄ = Σwl/Σw and its SE √(m/(m−1)·Σw²(l − l̄)²)/Σw, m = #{w > 0}.

    The linearised (ratio-estimator) variance of a weighted mean with the usual m/(m−1)
    small-sample factor, as survey software uses for probability weights; with equal weights it
    is the textbook s/√n (ddof = 1, ``scipy.stats.sem``).
    """
    used = int(np.count_nonzero(weight))
    if used < 2:
        raise ValueError(f"a standard error needs at least 2 samples with positive weight, "
                         f"got {used}")
    total = weight.sum()
    mean = float((weight * losses).sum() / total)
    spread = float((weight**2 * (losses - mean) ** 2).sum())
    return mean, math.sqrt(used / (used - 1) * spread) / float(total)


def log_loss_se(y: object, p: object, w: object = None, *,
                clip: float = 1e-6) -> tuple[float, float]:
    """Weighted mean log-loss −[y ln p + (1−y) ln(1−p)] (p clipped into [clip, 1 − clip]) and
    its standard error (see :func:`_weighted_mean_se`)."""
    labels, probs = _scored(y, p)
    level = _clip_level(clip)
    probs = np.clip(probs, level, 1.0 - level)
    losses = -(labels * np.log(probs) + (1.0 - labels) * np.log1p(-probs))
    return _weighted_mean_se(losses, _sample_weight(w, labels.size, "w"))


def brier_se(y: object, p: object, w: object = None) -> tuple[float, float]:
    """Weighted mean Brier score (p − y)² and its standard error (see :func:`_weighted_mean_se`)."""
    labels, probs = _scored(y, p)
    losses = (probs - labels) ** 2
    return _weighted_mean_se(losses, _sample_weight(w, labels.size, "w"))


def hanley_mcneil_se(auc: float, n_positive: int, n_negative: int) -> float:
    """Hanley & McNeil (1982) SE of an AUC A from n₁ positives and n₀ negatives:
    √([A(1−A) + (n₁−1)(Q₁−A²) + (n₀−1)(Q₂−A²)]/(n₁n₀)), Q₁ = A/(2−A), Q₂ = 2A²/(1+A)."""
    area = float(auc)
    if not 0.0 <= area <= 1.0:
        raise ValueError(f"auc must be in [0, 1], got {auc!r}")
    pos, neg = integer(n_positive, "n_positive", 1), integer(n_negative, "n_negative", 1)
    q1, q2 = area / (2.0 - area), 2.0 * area**2 / (1.0 + area)
    variance = (area * (1 - area) + (pos - 1) * (q1 - area**2) + (neg - 1) * (q2 - area**2))
    return math.sqrt(max(variance, 0.0) / (pos * neg))


def auc_se(y: object, p: object) -> tuple[float, float]:
    """ROC AUC as the Mann–Whitney statistic (ties at average ranks, i.e. counted one half, as
    ``sklearn.metrics.roc_auc_score``) and its Hanley–McNeil standard error."""
    labels, scores = _scored(y, p)
    pos = int(labels.sum())
    neg = labels.size - pos
    if pos == 0 or neg == 0:
        raise ValueError("AUC needs both classes in y")
    rank_sum = float(rankdata(scores, method="average")[labels == 1].sum())
    area = (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)
    return area, hanley_mcneil_se(area, pos, neg)

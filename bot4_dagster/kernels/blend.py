"""The five blends of the learners' probabilities for one row (``ml.ensemble.StackingEnsemble``
at serving time), and the per-regime isotonic lookup.

Each follows the training object's arithmetic: the linear blends a dot product with the
weights; the median numpy's (the middle value, or the mean of the two middle ones); the rank
blend each learner's empirical CDF against its training probabilities, averaged and mapped
through the fitted isotonic knots with ``np.interp``'s arithmetic; stacking a logistic
regression on the clipped logits.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel
from .isotonic import interp_one
from .trees import expit

MEAN, WEIGHTED, RANK, MEDIAN, STACKING = range(5)
MODES = ("mean", "weighted", "rank", "median", "stacking")  # code = position


def search_python(sorted_values: np.ndarray, value: float, right: bool) -> int:
    """``np.searchsorted(sorted_values, value, side="right" if right else "left")``."""
    lo, hi = 0, sorted_values.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_values[mid] < value or (right and sorted_values[mid] == value):
            lo = mid + 1
        else:
            hi = mid
    return lo


search = kernel(inline="always")(search_python)


def blend_one_python(p: np.ndarray, mode: int, weights: np.ndarray, train_sorted: np.ndarray,
                     rank_x: np.ndarray, rank_y: np.ndarray, meta_coef: np.ndarray,
                     meta_intercept: float, clip: float, scratch: np.ndarray) -> float:
    """One row's blended probability from its learners' probabilities ``p`` (K,). Arrays a
    mode does not use may be empty."""
    k = p.shape[0]
    if mode in (MEAN, WEIGHTED):
        total = 0.0
        for j in range(k):
            total += p[j] * weights[j]
        return total
    if mode == MEDIAN:
        for j in range(k):  # insertion sort of K values
            v = p[j]
            i = j
            while i > 0 and scratch[i - 1] > v:
                scratch[i] = scratch[i - 1]
                i -= 1
            scratch[i] = v
        half = k // 2
        if k % 2 == 1:
            return scratch[half]
        return (scratch[half - 1] + scratch[half]) / 2.0
    if mode == RANK:
        n = train_sorted.shape[0]
        score = 0.0
        for j in range(k):
            column = train_sorted[:, j]
            below = search(column, p[j], False)
            up_to = search(column, p[j], True)
            score += (below + up_to + 1) / (2.0 * n)
        return interp_one(rank_x, rank_y, score / k)
    z = 0.0  # STACKING
    for j in range(k):
        v = min(max(p[j], clip), 1.0 - clip)
        z += meta_coef[j] * (math.log(v) - math.log1p(-v))
    return expit(z + meta_intercept)


blend_one = kernel(error_model="numpy")(blend_one_python)

"""Tree ensembles over flat node arrays, and the logistic learner, one row at a time or many.

The node arrays are those of the candidate bundle (:mod:`bot4_dagster.ml.flat_models`):
children as absolute indices, a leaf flag, the split feature and threshold, the side a missing
value takes, and the leaf value. A row goes left when ``x <= threshold``, or, when x is NaN,
when ``missing_go_to_left`` says so: the rule of scikit-learn's HistGradientBoosting predictor
and of its decision trees. Leaf values are summed tree by tree in the order the trees were
fitted, from ``start``, which is the order scikit-learn adds them in, so sums are bit-identical.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel


def tree_sum_one_python(x: np.ndarray, feature: np.ndarray, threshold: np.ndarray,
                        left: np.ndarray, right: np.ndarray, is_leaf: np.ndarray,
                        missing_left: np.ndarray, value: np.ndarray, offsets: np.ndarray,
                        start: float) -> float:
    """``start`` plus the value of the leaf ``x`` (one row) reaches in every tree."""
    total = start
    for tree in range(offsets.shape[0] - 1):
        node = offsets[tree]
        while is_leaf[node] == 0:
            v = x[feature[node]]
            go_left = missing_left[node] == 1 if v != v else v <= threshold[node]  # v != v: NaN
            node = left[node] if go_left else right[node]
        total += value[node]
    return total


tree_sum_one = kernel(inline="always")(tree_sum_one_python)


def tree_sum_python(x: np.ndarray, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
                    right: np.ndarray, is_leaf: np.ndarray, missing_left: np.ndarray,
                    value: np.ndarray, offsets: np.ndarray, start: float,
                    out: np.ndarray) -> None:
    """:func:`tree_sum_one` for every row of ``x`` (n, features), into ``out`` (n,)."""
    for i in range(x.shape[0]):
        out[i] = tree_sum_one(x[i], feature, threshold, left, right, is_leaf, missing_left,
                              value, offsets, start)


tree_sum = kernel()(tree_sum_python)


def expit_python(z: float) -> float:
    """1 / (1 + e^-z), as scipy's expit (e^-z = inf gives exactly 0)."""
    return 1.0 / (1.0 + math.exp(-z))


expit = kernel(inline="always", error_model="numpy")(expit_python)


def logistic_one_python(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray,
                        intercept: float) -> float:
    """P(class 1) of a standardised logistic regression: expit(Σ (x − mean)/scale · coef + b)."""
    z = 0.0
    for k in range(x.shape[0]):
        z += (x[k] - mean[k]) / scale[k] * coef[k]
    return expit(z + intercept)


logistic_one = kernel(inline="always", error_model="numpy")(logistic_one_python)


def logistic_python(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray,
                    intercept: float, out: np.ndarray) -> None:
    for i in range(x.shape[0]):
        out[i] = logistic_one(x[i], mean, scale, coef, intercept)


logistic = kernel(error_model="numpy")(logistic_python)

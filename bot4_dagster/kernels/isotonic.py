"""Isotonic regression pieces: a stable radix sort, tie pooling, weighted PAVA, threshold
trimming and piecewise-linear interpolation.

The steps of scikit-learn's ``IsotonicRegression.fit``/``predict`` as single passes, so the
calibrator (:mod:`bot4_dagster.ml.calibration`) fits a million rows in a linear-time sort plus
linear passes, and predicts one value without numpy or scipy call overhead (the online path).
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

#: x values closer than this (absolutely) are one x: scikit-learn's ``_make_unique`` uses
#: ``np.finfo(float64).resolution`` (1e-15), not a relative tolerance.
TIE_RESOLUTION = float(np.finfo(np.float64).resolution)
RADIX_BITS = 8  # 256 counters per pass stay in L1; wider digits measured slower here
RADIX = 1 << RADIX_BITS
RADIX_PASSES = 64 // RADIX_BITS
SIGN_BIT = np.uint64(1 << 63)


def float_order_key_python(bits: np.uint64) -> np.uint64:
    """Map float64 bits to an unsigned key in the floats' order (negatives flipped, positives
    above them)."""
    return ~bits if bits & SIGN_BIT else bits | SIGN_BIT


float_order_key = kernel(inline="always")(float_order_key_python)


def sort_by_key_python(
    key: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``key`` sorted ascending and ``a``, ``b`` permuted with it; stable (ties keep order).

    Least-significant-digit radix sort on the floats' order-preserving bit patterns: 8 passes
    of 8 bits (a pass whose digit every key shares is skipped), each a sequential counting
    scatter, so the cost is linear and about half of ``np.argsort`` plus the gathers here.
    Stability is what lets two sorts reproduce ``np.lexsort``. −0.0 ties with 0.0 as in numpy
    and comes back as 0.0; keys must not be NaN.
    """
    n = key.shape[0]
    digit_mask = np.uint64(RADIX - 1)
    keys = np.empty(n, dtype=np.uint64)
    counts = np.zeros((RADIX_PASSES, RADIX), dtype=np.int64)
    bits = (key + 0.0).view(np.uint64)  # + 0.0 turns −0.0 into 0.0
    for i in range(n):
        k = float_order_key(bits[i])
        keys[i] = k
        for p in range(RADIX_PASSES):
            counts[p, (k >> np.uint64(p * RADIX_BITS)) & digit_mask] += 1
    a_out, b_out = a.copy(), b.copy()
    spare_keys = np.empty_like(keys)
    spare_a, spare_b = np.empty_like(a_out), np.empty_like(b_out)
    next_slot = np.empty(RADIX, dtype=np.int64)
    for p in range(RADIX_PASSES):
        shift = np.uint64(p * RADIX_BITS)
        if n == 0 or counts[p, (keys[0] >> shift) & digit_mask] == n:
            continue
        total = 0
        for d in range(RADIX):
            next_slot[d] = total
            total += counts[p, d]
        for i in range(n):
            d = (keys[i] >> shift) & digit_mask
            j = next_slot[d]
            next_slot[d] = j + 1
            spare_keys[j], spare_a[j], spare_b[j] = keys[i], a_out[i], b_out[i]
        keys, spare_keys = spare_keys, keys
        a_out, spare_a = spare_a, a_out
        b_out, spare_b = spare_b, b_out
    for i in range(n):  # the inverse of float_order_key
        k = keys[i]
        keys[i] = k ^ SIGN_BIT if k & SIGN_BIT else ~k
    return keys.view(np.float64), a_out, b_out


def pava_python(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The non-decreasing ŷ minimising Σ w (y − ŷ)² (weights > 0), by pool-adjacent-violators.

    A stack of blocks (weighted sum, weight, mean, first index): each point is pushed as its own
    block and pooled with the block below while that block's mean is larger, so every point is
    pushed once and popped at most once (linear time). Blocks keep sums rather than means so
    pooling long runs does not accumulate rounding. Equal neighbouring means are left unpooled:
    the fitted values are the same and no rounding is introduced.
    """
    n = y.shape[0]
    block_sum = np.empty(n)
    block_weight = np.empty(n)
    block_mean = np.empty(n)
    block_start = np.empty(n, dtype=np.int64)
    top = -1
    for i in range(n):
        top += 1
        block_sum[top] = w[i] * y[i]
        block_weight[top] = w[i]
        block_mean[top] = y[i]
        block_start[top] = i
        while top > 0 and block_mean[top - 1] > block_mean[top]:
            block_sum[top - 1] += block_sum[top]
            block_weight[top - 1] += block_weight[top]
            block_mean[top - 1] = block_sum[top - 1] / block_weight[top - 1]
            top -= 1
    fitted = np.empty(n)
    for b in range(top + 1):
        stop = block_start[b + 1] if b < top else n
        for i in range(block_start[b], stop):
            fitted[i] = block_mean[b]
    return fitted


def make_unique_python(
    x_sorted: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool runs of (near-)equal sorted x: (unique x, weighted-mean y, summed weight).

    scikit-learn's ``_make_unique`` step for step: a run starts at its first x and takes every
    following x with ``x − first < TIE_RESOLUTION``; y is pooled as Σ w·y / Σ w in input order,
    so the same sorted input gives bit-identical output.
    """
    n = x_sorted.shape[0]
    unique_x = np.empty(n)
    unique_y = np.empty(n)
    unique_w = np.empty(n)
    if n == 0:
        return unique_x, unique_y, unique_w
    k = 0
    current_x = x_sorted[0]
    sum_wy = 0.0
    sum_w = 0.0
    for j in range(n):
        if x_sorted[j] - current_x >= TIE_RESOLUTION:
            unique_x[k] = current_x
            unique_w[k] = sum_w
            unique_y[k] = sum_wy / sum_w
            k += 1
            current_x = x_sorted[j]
            sum_w = w[j]
            sum_wy = y[j] * w[j]
        else:
            sum_w += w[j]
            sum_wy += y[j] * w[j]
    unique_x[k] = current_x
    unique_w[k] = sum_w
    unique_y[k] = sum_wy / sum_w
    k += 1
    return unique_x[:k].copy(), unique_y[:k].copy(), unique_w[:k].copy()


def trim_thresholds_python(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop interior points whose y equals both neighbours' y: linear interpolation through the
    rest is the same function, with fewer thresholds to search (scikit-learn's trim)."""
    n = x.shape[0]
    kept_x = np.empty(n)
    kept_y = np.empty(n)
    k = 0
    for i in range(n):
        if i == 0 or i == n - 1 or y[i] != y[i - 1] or y[i] != y[i + 1]:
            kept_x[k] = x[i]
            kept_y[k] = y[i]
            k += 1
    return kept_x[:k].copy(), kept_y[:k].copy()


def bracket_python(xs: np.ndarray, t: float, lo: int, hi: int) -> int:
    """The j in [lo, hi) with xs[j] ≤ t < xs[j + 1], given xs[lo] ≤ t < xs[hi] (xs increasing).

    Bisection; a NaN t compares false everywhere and ends at ``lo``.
    """
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if xs[mid] <= t:
            lo = mid
        else:
            hi = mid
    return lo


bracket = kernel(inline="always")(bracket_python)


def segment_value_python(xs: np.ndarray, ys: np.ndarray, j: int, t: float) -> float:
    """The line through (xs[j], ys[j]) and (xs[j+1], ys[j+1]) at t, in ``np.interp``'s
    arithmetic (an exact knot returns its y; else slope·(t − x_j) + y_j), so results are
    bit-identical to scikit-learn's predict, which reaches ``np.interp`` through scipy."""
    if xs[j] == t:
        return ys[j]
    slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
    return slope * (t - xs[j]) + ys[j]


segment_value = kernel(inline="always", error_model="numpy")(segment_value_python)


def interp_one_python(xs: np.ndarray, ys: np.ndarray, t: float) -> float:
    """Piecewise-linear value at ``t`` through strictly increasing knots (xs, ys), ends held
    constant beyond the knots; one knot is a constant function (scikit-learn's one-point fit);
    NaN gives NaN."""
    n = xs.shape[0]
    if n == 1 or t <= xs[0]:
        return ys[0]
    if t >= xs[n - 1]:
        return ys[n - 1]
    return segment_value(xs, ys, bracket(xs, t, 0, n - 1), t)


interp_one = kernel(inline="always", error_model="numpy")(interp_one_python)


def interp_python(x_thresholds: np.ndarray, y_thresholds: np.ndarray,
                  t: np.ndarray) -> np.ndarray:
    """:func:`interp_one` at every value of ``t`` (any order), with the same results.

    A guide table makes the search O(1) for typical knots: the knot range [x_0, x_last] is cut
    into as many equal buckets as there are knots, ``first[b]`` being the last knot at or
    below bucket b's left edge, so a query bisects only between its bucket's first knots (a
    step or two of walking repairs rounding in the bucket arithmetic). Crowded buckets fall
    back to bisection, never to a scan of all knots.
    """
    xs, ys = x_thresholds, y_thresholds
    n = xs.shape[0]
    out = np.empty(t.shape[0])
    if n == 1:
        out[:] = ys[0]
        return out
    low, high = xs[0], xs[n - 1]
    n_buckets = n
    scale = n_buckets / (high - low)
    first = np.empty(n_buckets + 1, dtype=np.int64)
    j = 0
    for b in range(n_buckets + 1):
        edge = low + b / scale
        while j < n - 1 and xs[j + 1] <= edge:
            j += 1
        first[b] = j
    for i in range(t.shape[0]):
        v = t[i]
        if v <= low:
            out[i] = ys[0]
        elif v >= high:
            out[i] = ys[n - 1]
        elif v != v:
            out[i] = v
        else:
            position = (v - low) * scale
            b = int(position) if position < n_buckets else n_buckets - 1
            lo, hi = first[b], min(first[b + 1] + 1, n - 1)
            while lo > 0 and xs[lo] > v:
                lo -= 1
            while hi < n - 1 and xs[hi] <= v:
                hi += 1
            out[i] = segment_value(xs, ys, bracket(xs, v, lo, hi), v)
    return out


sort_by_key = kernel()(sort_by_key_python)
pava = kernel(error_model="numpy")(pava_python)
make_unique = kernel(error_model="numpy")(make_unique_python)
trim_thresholds = kernel(error_model="numpy")(trim_thresholds_python)
interp = kernel(error_model="numpy")(interp_python)

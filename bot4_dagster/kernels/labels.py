"""Triple-barrier search and label uniqueness (AFML ch. 3–4): one pass each, no pandas."""

from __future__ import annotations

import numpy as np

from ._jit import kernel

UPPER, LOWER, VERTICAL = 1, -1, 0


def triple_barrier_python(close: np.ndarray, width: np.ndarray, upper: float, lower: float,
                          horizon: int, end: np.ndarray, touched: np.ndarray) -> None:
    """For each event i with a full horizon (i + horizon < n) and a finite width: the first bar
    j in (i, i + horizon] whose return c_j/c_i − 1 reaches +upper·width_i (touched UPPER) or
    −lower·width_i (LOWER), else the vertical barrier j = i + horizon (VERTICAL). Events without a
    full horizon or a width get end = -1. A barrier factor of 0 switches that barrier off."""
    n = close.shape[0]
    for i in range(n):
        end[i] = -1
        touched[i] = VERTICAL
        if i + horizon >= n or not np.isfinite(width[i]) or width[i] <= 0.0:
            continue
        up = upper * width[i]
        down = -lower * width[i]
        end[i] = i + horizon
        for j in range(i + 1, i + horizon + 1):
            r = close[j] / close[i] - 1.0
            if upper > 0.0 and r >= up:
                end[i] = j
                touched[i] = UPPER
                break
            if lower > 0.0 and r <= down:
                end[i] = j
                touched[i] = LOWER
                break


triple_barrier = kernel()(triple_barrier_python)


def average_uniqueness_python(start: np.ndarray, end: np.ndarray, n_bars: int,
                              out: np.ndarray) -> None:
    """Average uniqueness of labels whose returns span bars start_i+1 .. end_i: the mean over
    those bars of 1 / (number of labels spanning the bar). Each span is summed directly (spans
    are at most the horizon long), so a lone label weighs exactly 1 and c identical ones 1/c."""
    delta = np.zeros(n_bars + 1)
    for i in range(start.shape[0]):
        delta[start[i] + 1] += 1.0
        delta[end[i] + 1] -= 1.0
    concurrency = np.zeros(n_bars)
    count = 0.0
    for t in range(n_bars):
        count += delta[t]
        concurrency[t] = count
    for i in range(start.shape[0]):
        total = 0.0
        for t in range(start[i] + 1, end[i] + 1):
            total += 1.0 / concurrency[t]
        out[i] = total / (end[i] - start[i])


average_uniqueness = kernel()(average_uniqueness_python)

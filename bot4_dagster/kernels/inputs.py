"""A bar's raw inputs as the learners read them: imputed with the training medians and
standardised with the training means and deviations (``ml.dataset.FoldInputs``), and the
volatility regime of a conditional volatility."""

from __future__ import annotations

import numpy as np

from ._jit import kernel


def standardize_python(raw: np.ndarray, median: np.ndarray, mean: np.ndarray, std: np.ndarray,
                       out: np.ndarray) -> None:
    """``out[i, j] = (raw[i, j] if finite else median[j]) − mean[j]) / std[j]`` for (n, F)."""
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            v = raw[i, j]
            if not np.isfinite(v):
                v = median[j]
            out[i, j] = (v - mean[j]) / std[j]


standardize = kernel(error_model="numpy")(standardize_python)


def regime_code_python(sigma: float, thresholds: np.ndarray) -> int:
    """0 low .. 3 crisis: how many thresholds lie strictly below ``sigma`` (``np.searchsorted``
    side left, as ``ml.regimes.VolatilityRegimes.codes``); -1 when sigma is not finite."""
    if not np.isfinite(sigma):
        return -1
    code = 0
    for k in range(thresholds.shape[0]):
        if thresholds[k] < sigma:
            code = k + 1
    return code


regime_code = kernel(inline="always")(regime_code_python)

"""Simple and log returns of a price series (the GARCH stage works in percent returns)."""

from __future__ import annotations

import numpy as np

from ._jit import kernel


def pct_returns_python(close: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` with percent returns: ``out[0] = nan``, ``out[i] = 100*(c[i]/c[i-1] - 1)``.

    Branch-free body over independent elements, so LLVM vectorises the loop; ``error_model=
    "numpy"`` drops numba's zero-divisor check (which blocks vectorisation) and gives the twin's
    numpy semantics (``x/0 -> inf``) instead of raising.
    """
    n = close.shape[0]
    if n == 0:
        return
    out[0] = np.nan
    for i in range(1, n):
        out[i] = 100.0 * (close[i] / close[i - 1] - 1.0)


def log_returns_python(close: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` with log returns: ``out[0] = nan``, ``out[i] = log(c[i]/c[i-1])``."""
    n = close.shape[0]
    if n == 0:
        return
    out[0] = np.nan
    for i in range(1, n):
        out[i] = np.log(close[i] / close[i - 1])


pct_returns = kernel(cache=True, nogil=True, error_model="numpy")(pct_returns_python)
log_returns = kernel(cache=True, nogil=True, error_model="numpy")(log_returns_python)

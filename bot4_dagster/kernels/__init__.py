"""Numba kernels: the shared hot loops (numpy + numba only; no pandas, no Dagster).

Each kernel ``foo`` has a plain-Python twin ``foo_python``; see :mod:`._jit`.
"""

from ._jit import NUMBA_ENABLED, kernel
from .bars import aggregate_trades, aggregate_trades_python, trades_to_bars
from .isotonic import (
    interp,
    interp_one,
    interp_one_python,
    interp_python,
    make_unique,
    make_unique_python,
    pava,
    pava_python,
    sort_by_key,
    sort_by_key_python,
    trim_thresholds,
    trim_thresholds_python,
)
from .returns import log_returns, log_returns_python, pct_returns, pct_returns_python

__all__ = [
    "NUMBA_ENABLED",
    "aggregate_trades",
    "aggregate_trades_python",
    "interp",
    "interp_one",
    "interp_one_python",
    "interp_python",
    "kernel",
    "log_returns",
    "log_returns_python",
    "make_unique",
    "make_unique_python",
    "pava",
    "pava_python",
    "pct_returns",
    "pct_returns_python",
    "sort_by_key",
    "sort_by_key_python",
    "trades_to_bars",
    "trim_thresholds",
    "trim_thresholds_python",
]

"""Numba kernels: the shared hot loops (numpy + numba only; no pandas, no Dagster).

Each kernel ``foo`` has a plain-Python twin ``foo_python``; see :mod:`._jit`.
"""

from ._jit import NUMBA_ENABLED, kernel
from .bars import aggregate_trades, aggregate_trades_python, trades_to_bars
from .returns import log_returns, log_returns_python, pct_returns, pct_returns_python

__all__ = [
    "NUMBA_ENABLED",
    "aggregate_trades",
    "aggregate_trades_python",
    "kernel",
    "log_returns",
    "log_returns_python",
    "pct_returns",
    "pct_returns_python",
    "trades_to_bars",
]

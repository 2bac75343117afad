"""Building blocks of the layers: Kelly fraction, shrunk win rate, drawdown multiplier, rounding
down to the step, and time helpers."""

# ruff: noqa: PLR1730 (hot path: in CPython 3.11 min()/max() cost ~90 ns a call, a
# comparison ~20 ns, and one evaluation has a 20 µs budget)
from __future__ import annotations

import math
from datetime import UTC, datetime

from .config import INF, RiskConfig
from .inputs import _step_grid

# ------------------------------------------------------------------------- building blocks


def kelly_fraction(p: float, b: float) -> float:
    """Binary Kelly f* = p − (1 − p)/b: the growth-optimal share of equity risked."""
    if not (b > 0):
        raise ValueError(f"payoff ratio b must be > 0, got {b}")
    return p - (1.0 - p) / b


def shrunk_probability(wins: int, trades: int, a: float = 10.0, b0: float = 10.0) -> float:
    """Posterior mean (wins + a)/(n + a + b₀) of a bucket's hit rate, Beta(a, b₀) prior."""
    return (wins + a) / (trades + a + b0)


def drawdown_multiplier(drawdown: float, config: RiskConfig) -> float:
    """m6: 1 below ``dd_scale_start``, linear down to ``dd_floor_multiplier`` at ``dd_reducing``."""
    start, full = config.dd_scale_start, config.dd_reducing
    if drawdown < start:
        return 1.0
    share = min(1.0, (drawdown - start) / (full - start))
    return 1.0 - (1.0 - config.dd_floor_multiplier) * share


def floor_to_step(quantity: float, step: float) -> float:
    """Largest multiple of ``step`` that is ≤ ``quantity`` (decimal-exact, never rounds up).

    ``0.3 / 0.1`` is 2.9999999999999996 in binary floating point, so a plain ``floor`` would
    drop a whole step; the multiple is counted in integer units of the step's last decimal.
    """
    return _floor_units(quantity, step, *_step_grid(step))


def _floor_units(quantity: float, step: float, units: int, scale: float) -> float:
    if not quantity > 0:
        return 0.0
    if quantity == INF:
        raise ValueError("cannot floor an unbounded quantity")
    n = math.floor(quantity / step)
    # k · units / scale is the double nearest the decimal k · step (an exact integer over an
    # exact power of ten), so grid points are compared as the doubles they will be returned as.
    if (n + 1) * units / scale <= quantity:
        n += 1
    out = n * units / scale
    while out > quantity and n > 0:
        n -= 1
        out = n * units / scale
    return out if out > 0 else 0.0


def _room(limit: float, current: float, sign: int) -> float:
    """Most notional a trade of direction ``sign`` may add to a position ``current`` so that
    |exposure| ends ≤ ``limit``, or at least does not grow when it is already above it."""
    room = limit - abs(current)
    if room < 0.0:
        room = 0.0
    return room + 2.0 * abs(current) if sign * current < 0 else room


def _seconds(now: float | datetime) -> float:
    if isinstance(now, datetime):
        if not (now.tzinfo is not None):
            raise ValueError(f"naive datetime {now}: pass an aware (UTC) datetime or epoch seconds")
        return now.timestamp()
    if not (isinstance(now, int | float) and math.isfinite(now)):
        raise ValueError(f"time must be epoch seconds or an aware datetime, got {now!r}")
    return float(now)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ceil_candle(t: float, candle: float) -> float:
    """Protection end times round up to the next candle boundary (Freqtrade's rule)."""
    return math.ceil(t / candle) * candle

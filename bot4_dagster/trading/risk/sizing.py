"""Building blocks of the layers: Kelly fraction, shrunk win rate, drawdown multiplier, rounding
down to the step. Every helper is O(1) and total on its documented domain: non-finite, subnormal
or out-of-range inputs raise ``ValueError`` (or get the clamp their docstring names), never
``OverflowError``, ``ZeroDivisionError`` or a loop."""

# Hot path: plain comparisons rather than min()/max() (in CPython 3.11 a call costs ~90 ns, a
# comparison ~20 ns, and one evaluation has a 20 µs budget).
from __future__ import annotations

import contextlib
import math
from decimal import Decimal
from fractions import Fraction

from ..boundary import describe, exact
from ..instrument import step_grid
from .config import INF, RiskConfig

_EXACT_INT = 2**53  # float arithmetic on counts below this is exact


def _float(name: str, value: object, allow_inf: bool = False) -> float:
    """``value`` as a float; ValueError for a non-number, NaN, an int beyond the float range,
    and ±inf unless ``allow_inf``."""
    x = math.nan
    if _is_real(value):
        with contextlib.suppress(OverflowError):  # an int beyond the float range stays NaN
            x = float(value)  # type: ignore[arg-type]
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {describe(value)}")
    return x


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)



def kelly_fraction(p: float, b: float) -> float:
    """Binary Kelly f* = p − (1 − p)/b: the growth-optimal share of equity risked.

    ``b = inf`` gives p; a ``b`` so small that (1 − p)/b overflows gives −inf (no edge)."""
    p = _float("probability p", p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p must be in [0, 1], got {p}")
    if not (_is_real(b) and b > 0):
        raise ValueError(f"payoff ratio b must be > 0, got {describe(b)}")
    return _kelly(p, _float("payoff ratio b", b, allow_inf=True))


def _kelly(p: float, b: float) -> float:
    return p - (1.0 - p) / b


def shrunk_probability(wins: int, trades: int, a: float = 10.0, b0: float = 10.0) -> float:
    """Posterior mean (wins + a)/(n + a + b₀) of a bucket's hit rate, Beta(a, b₀) prior.

    Counts of any size are exact (past 2**53 the ratio is formed in integers, then rounded)."""
    if not (type(wins) is int and type(trades) is int and 0 <= wins <= trades):
        raise ValueError(f"wins and trades must be integers with 0 <= wins <= trades, got "
                         f"{describe(wins)} and {describe(trades)}")
    a, b0 = _float("prior a", a), _float("prior b0", b0)
    if not (a > 0 and b0 > 0):
        raise ValueError(f"priors must be > 0, got a={a}, b0={b0}")
    return _shrunk(wins, trades, a, b0)


def _shrunk(wins: int, trades: int, a: float, b0: float) -> float:
    if trades < _EXACT_INT:
        return (wins + a) / (trades + a + b0)
    return float((wins + Fraction(a)) / (trades + Fraction(a) + Fraction(b0)))


def drawdown_multiplier(drawdown: float, config: RiskConfig) -> float:
    """m6: 1 below ``dd_scale_start``, linear down to ``dd_floor_multiplier`` at ``dd_reducing``
    and beyond (an infinite drawdown gets the floor; NaN is an error)."""
    if not _is_real(drawdown) or (isinstance(drawdown, float) and math.isnan(drawdown)):
        raise ValueError(f"drawdown must be a number, got {describe(drawdown)}")
    start, full = config.dd_scale_start, config.dd_reducing
    if drawdown < start:
        return 1.0
    if drawdown >= full:
        return config.dd_floor_multiplier
    share = (drawdown - start) / (full - start)
    return 1.0 - (1.0 - config.dd_floor_multiplier) * share


def floor_to_step(quantity: float, step: float | Decimal) -> float:
    """Largest multiple of ``step`` that is ≤ ``quantity`` (decimal-exact, never rounds up).

    ``0.3 / 0.1`` is 2.9999999999999996 in binary floating point, so a plain ``floor`` would
    drop a whole step; the step is read as its shortest decimal (0.1 is 1/10) and grid points are
    compared as the doubles they are returned as. O(1) for every input: a float estimate checked
    on four candidates when the grid fits in 2**53, else exact integer arithmetic. Clamps: a
    quantity ≤ 0 (or −inf) floors to 0.0. Errors: NaN, +inf, ints beyond the float range, steps
    that are not finite positive numbers.
    """
    q = _float("quantity", quantity, allow_inf=True)
    if q == INF:
        raise ValueError("cannot floor an unbounded quantity")
    s = exact(step) if not isinstance(step, bool) else None
    if s is None or not s > 0:
        raise ValueError(f"step must be a positive finite number, got {describe(step)}")
    return floor_on_grid(q, s, step_grid(s))


def floor_on_grid(q: float, step: Decimal, grid: tuple[int, float] | None) -> float:
    """``floor_to_step`` for a validated step and its precomputed ``step_grid`` (the L4f path)."""
    if not q > 0:
        return 0.0
    if q == INF:
        raise ValueError("cannot floor an unbounded quantity")
    if grid is not None:
        units, scale = grid
        x = q * scale
        if x < 2**52:
            # k · units / scale is the double nearest the decimal k · step (an exact integer over
            # an exact power of ten); the estimate n is within one of floor(q / step), and the
            # answer is floor(q / step) or one more (a next grid point that rounds onto q)
            n = math.floor(x / units)
            for k in (n + 2, n + 1, n, n - 1):
                out = k * units / scale
                if k >= 0 and out <= q:
                    return out if out > 0 else 0.0
    return _floor_exact(q, step)


def _floor_exact(q: float, step: Decimal) -> float:
    """Exact rationals: q = m / 2**e, step = a · 10**x; k = floor(q / step) in integers."""
    m, den_q = q.as_integer_ratio()
    _, digits, exponent = step.as_tuple()
    assert isinstance(exponent, int)
    a = int("".join(map(str, digits)))
    num_s, den_s = (a * 10**exponent, 1) if exponent >= 0 else (a, 10**-exponent)
    k = (m * den_s) // (den_q * num_s)

    def point(j: int) -> float:
        try:
            return (j * num_s) / den_s  # int / int is correctly rounded
        except OverflowError:
            return INF

    if point(k + 1) <= q:  # the next grid point's double is q itself
        return q
    out = point(k)
    return out if out > 0 else 0.0


def _room(limit: float, current: float, sign: int) -> float:
    """Most notional a trade of direction ``sign`` may add to a position ``current`` so that
    |exposure| ends ≤ ``limit``, or at least does not grow when it is already above it."""
    room = limit - abs(current)
    if room < 0.0:
        room = 0.0
    return room + 2.0 * abs(current) if sign * current < 0 else room


def _ceil_candle(t: int, candle: int) -> int:
    """Protection end times round up to the next candle boundary (Freqtrade's rule)."""
    return -(-t // candle) * candle

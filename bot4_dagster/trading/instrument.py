"""One instrument type for both layers: a venue's filters for one symbol (Binance PRICE_FILTER,
LOT_SIZE, MIN_NOTIONAL/NOTIONAL, MAX_NUM_ORDERS).

The filters are ``Decimal`` (the order layer needs them exact: a stop covers exactly the open
position); the risk layer sizes in floats and reads the same filters through ``floats``, derived
once here, so the two layers can never disagree about an instrument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from .boundary import CONTEXT, MAX_STEPS, describe, exact
from .vocabulary import Side

ZERO = Decimal(0)
_SMALLEST_STEP = Decimal("1e-18")  # wei; below it a float view of the grid loses its meaning
_LARGEST_STEP = Decimal("1e15")


class FloatFilters(NamedTuple):
    """The filters as floats for the risk layer; ``grid`` is (step units, 10**decimals) when the
    step is k·10⁻ᵈ with d ≤ 15 (floor_to_step's fast path), else None (its exact path)."""

    tick: float
    step: float
    min_notional: float
    max_notional: float  # inf: no maximum
    min_qty: float  # 0.0: none beyond the step
    max_qty: float  # inf: no maximum
    step_decimal: Decimal
    grid: tuple[int, float] | None


def step_grid(step: Decimal) -> tuple[int, float] | None:
    """(units, 10**d) with step = units / 10**d, when both are small enough for exact float
    arithmetic on the grid (d ≤ 15, units < 2**32); None sends floor_to_step to its exact path."""
    _, digits, exponent = step.as_tuple()
    assert isinstance(exponent, int)
    decimals = max(0, -exponent)
    if decimals > 15 or len(digits) + max(0, exponent) > 10:
        return None
    units = int("".join(map(str, digits))) * 10 ** max(0, exponent)
    if units >= 2**32:
        return None
    return units, 10.0 ** decimals


def _filter(name: str, value: object, positive: bool) -> Decimal:
    d = exact(value)
    if d is None or not (d > 0 if positive else d >= 0):
        what = "a positive finite number" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {what}, got {describe(value)}")
    return d


def _limit(name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    d = exact(value)
    if d is None or not d > 0:
        raise ValueError(f"{name} must be > 0 (None for no limit), got {describe(value)}")
    return d


@dataclass(frozen=True, slots=True)
class Instrument:
    """Venue filters for one symbol. Numbers may be given as Decimal, int, str or float (a float
    through its shortest repr); they are kept as Decimal."""

    symbol: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal | None = None  # defaults to one step
    min_notional: Decimal = ZERO
    max_notional: Decimal | None = None
    max_open_orders: int = 200
    venue: str = "PAPER"
    max_qty: Decimal | None = None  # defaults to MAX_STEPS steps
    qty_bound: Decimal = field(init=False, repr=False, compare=False)
    price_bound: Decimal = field(init=False, repr=False, compare=False)
    minimum_qty: Decimal = field(init=False, repr=False, compare=False)
    floats: FloatFilters = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.symbol, str) and self.symbol):
            raise ValueError(f"symbol must be a non-empty str, got {describe(self.symbol)}")
        if not (isinstance(self.venue, str) and self.venue):
            raise ValueError(f"venue must be a non-empty str, got {describe(self.venue)}")
        if not (type(self.max_open_orders) is int and self.max_open_orders >= 1):
            raise ValueError(f"max_open_orders must be an integer >= 1, got "
                             f"{describe(self.max_open_orders)}")
        put = object.__setattr__
        for name in ("tick", "step"):
            d = _filter(name, getattr(self, name), positive=True)
            if not _SMALLEST_STEP <= d <= _LARGEST_STEP:
                raise ValueError(f"{name} must be a positive finite number in "
                                 f"[{_SMALLEST_STEP}, {_LARGEST_STEP}], got {describe(d)}")
            put(self, name, d)
        put(self, "min_notional", _filter("min_notional", self.min_notional, positive=False))
        if self.min_qty is not None:
            put(self, "min_qty", _filter("min_qty", self.min_qty, positive=False))
        put(self, "max_notional", _limit("max_notional", self.max_notional))
        put(self, "max_qty", _limit("max_qty", self.max_qty))
        if self.max_qty is not None and self.max_qty < max(self.step, self.min_qty or ZERO):
            raise ValueError(f"max_qty {describe(self.max_qty)} is below one step and min_qty: "
                             "nothing could trade")
        qty_bound = CONTEXT.multiply(self.step, Decimal(MAX_STEPS))
        if self.max_qty is not None and self.max_qty < qty_bound:
            qty_bound = self.max_qty
        put(self, "qty_bound", qty_bound)
        put(self, "price_bound", CONTEXT.multiply(self.tick, Decimal(MAX_STEPS)))
        put(self, "minimum_qty", self.step if self.min_qty is None or self.min_qty < self.step
            else self.min_qty)
        put(self, "floats", FloatFilters(
            float(self.tick), float(self.step), float(self.min_notional),
            math.inf if self.max_notional is None else float(self.max_notional),
            0.0 if self.min_qty is None else float(self.min_qty),
            math.inf if self.max_qty is None else float(self.max_qty),
            self.step, step_grid(self.step)))

    def round_price(self, price: Decimal, side: Side) -> Decimal:
        """Onto the tick grid, in the side's favour: a buy price rounds down, a sell price up.

        For a limit that means never paying more or receiving less than asked; for a stop it
        means triggering no later than asked (a sell stop rounds up, towards the market).
        Exact integer division in ``CONTEXT``: no 28-digit rounding on the way.
        """
        n, rest = CONTEXT.divmod(price, self.tick)
        if rest and side is Side.SELL:
            n += 1
        return CONTEXT.multiply(n, self.tick)

    def round_qty(self, qty: Decimal) -> Decimal:
        """Down to the step: never trade more than asked (reference/trading.md §1.5 rule 7)."""
        n, rest = CONTEXT.divmod(qty, self.step)
        if rest < 0:  # Decimal division truncates towards zero; floor a negative difference too
            n -= 1
        return CONTEXT.multiply(n, self.step)

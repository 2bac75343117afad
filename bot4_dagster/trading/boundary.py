"""Where values enter the trading layer: one conversion for every quantity, price, id and time.

Every number a caller or a venue hands the manager passes through here once, so the rules live
in one place:

- **exact**: a ``Decimal`` or ``int`` as it is, a ``float`` through its shortest repr (0.1 becomes
  ``Decimal('0.1')``), a ``str`` parsed exactly; never through the default 28-digit context;
- **finite and bounded**: NaN, sNaN, ±Infinity, bools, strings that are not numbers and values
  beyond the instrument's bound (``max_qty``, else ``MAX_STEPS`` steps or ticks) are refused with a
  stable code (``INVALID_QUANTITY``, ``INVALID_PRICE``, ``QTY_ABOVE_MAX``), never raised as
  ``decimal.InvalidOperation`` and never sent to a venue;
- **rounded down**: a quantity floors to the step in ``CONTEXT`` (40 digits, ``ROUND_FLOOR``,
  exact integer division), so a 32-digit quantity can no longer round up to a larger order.

Ids of the wrong type raise ``TypeError`` naming the argument: a caller's bug, not a denial.
"""

from __future__ import annotations

import enum
import operator
from decimal import (
    ROUND_FLOOR,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import TYPE_CHECKING, TypeVar

from .vocabulary import DenialCode, OrderDenied, Side

if TYPE_CHECKING:
    from .instrument import Instrument

CONTEXT = Context(prec=40, rounding=ROUND_FLOOR, traps=[InvalidOperation, DivisionByZero,
                                                         Overflow])
"""Enough digits that a bounded quantity or price divides by its step exactly (see MAX_STEPS)."""
MAX_STEPS = 10**15
"""A quantity or price is at most this many steps (ticks) unless the instrument says less: 16
digits, so qty·price and sums stay exact or within the last of 28 digits, and 1e400 is refused."""
_MAX_TEXT = 64  # longer numeric strings are refused before parsing (no sane value needs more)
_E = TypeVar("_E", bound=enum.Enum)
D = DenialCode


def exact(value: object) -> Decimal | None:
    """The exact ``Decimal`` of a finite number (Decimal, int, float, numeric str), else None."""
    cls = value.__class__
    d: Decimal
    try:
        if cls is Decimal:
            d = value  # type: ignore[assignment]  # the class test is the fast isinstance
        elif cls is int:
            d = Decimal(value)  # type: ignore[arg-type]
        elif cls is float:
            d = Decimal(repr(value))
        elif cls is str:
            if len(value) > _MAX_TEXT:  # type: ignore[arg-type]
                return None
            d = Decimal(value)  # type: ignore[arg-type]
        elif isinstance(value, bool):
            return None
        elif isinstance(value, Decimal | int | float | str):  # subclasses, e.g. numpy.float64
            return exact(_plain(value))
        else:
            d = Decimal(operator.index(value))  # type: ignore[arg-type]  # numpy integers
    except (InvalidOperation, ValueError, TypeError, OverflowError):
        return None
    return d if d.is_finite() else None


def _base(value: object) -> type:
    for base in (Decimal, int, float, str):
        if isinstance(value, base):
            return base
    raise TypeError(type(value).__name__)


def _plain(value: object) -> Decimal | int | float | str:
    """A subclass instance as its plain base type (``numpy.float64`` -> ``float``)."""
    base = _base(value)
    return base(value)


def describe(value: object) -> str:
    """A short repr for messages (a 400-digit int is not pasted whole)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} chars)"


def require_number(value: object, name: str) -> Decimal:
    """Configuration values (instrument filters, settings): a finite number, else ValueError."""
    d = exact(value)
    if d is None:
        raise ValueError(f"{name} must be a finite number, got {describe(value)}")
    return d


# --- quantities and prices of commands -----------------------------------------------------------

def quantity(value: object, inst: Instrument, oid: str | None = None,
             name: str = "quantity") -> Decimal:
    """A finite positive quantity within the instrument's bound, floored to its step."""
    d = exact(value)
    if d is None:
        raise OrderDenied(D.INVALID_QUANTITY, f"{name} {describe(value)} is not a finite number",
                          oid)
    if not d > 0:
        raise OrderDenied(D.INVALID_QUANTITY, f"{name} {d} is not positive", oid)
    if d > inst.qty_bound:
        code = D.QTY_ABOVE_MAX if inst.max_qty is not None else D.INVALID_QUANTITY
        raise OrderDenied(code, f"{name} {describe(d)} > {inst.qty_bound}, the instrument's "
                          "largest quantity", oid)
    q = inst.round_qty(d)
    if q < inst.minimum_qty:
        raise OrderDenied(D.QTY_BELOW_MIN, f"{name} rounds down to {q} < {inst.minimum_qty}", oid)
    return q


def price(value: object, inst: Instrument, side: Side, oid: str | None = None,
          name: str = "price") -> Decimal:
    """A finite price of at least one tick within the instrument's bound, on its tick in the
    side's favour."""
    p = reference(value, inst, oid, name)
    if p < inst.tick:  # not a price on this grid; rounding it up would invent one
        raise OrderDenied(D.INVALID_PRICE, f"{name} {p} is below one tick ({inst.tick})", oid)
    return inst.round_price(p, side)


def reference(value: object, inst: Instrument, oid: str | None = None,
              name: str = "price") -> Decimal:
    """A finite positive price within the instrument's bound, exactly as given (market data)."""
    p = exact(value)
    if p is None:
        raise OrderDenied(D.INVALID_PRICE, f"{name} {describe(value)} is not a finite number", oid)
    if not p > 0:
        raise OrderDenied(D.INVALID_PRICE, f"{name} {p} is not positive", oid)
    if p > inst.price_bound:
        raise OrderDenied(D.INVALID_PRICE, f"{name} {describe(p)} > {inst.price_bound}, the "
                          "instrument's largest price", oid)
    return p


def position(value: object, inst: Instrument, name: str = "position") -> Decimal:
    """A signed position as a venue reports it: finite, within the bound, on the step grid
    (a position is a fact: it is refused when off the grid, never rounded)."""
    q = exact(value)
    if q is None:
        raise OrderDenied(D.INVALID_QUANTITY, f"{name} {describe(value)} is not a finite number")
    if abs(q) > inst.qty_bound:
        raise OrderDenied(D.INVALID_QUANTITY, f"{name} {describe(q)} is beyond ±{inst.qty_bound}")
    if CONTEXT.remainder(q, inst.step) != 0:
        raise OrderDenied(D.INVALID_QUANTITY, f"{name} {q} is not a multiple of the step "
                          f"{inst.step}")
    return q


def choice(cls: type[_E], value: object, name: str, oid: str | None = None) -> _E:
    """An enum member from itself or its value; anything else is an INVALID_ORDER denial."""
    if value.__class__ is cls:
        return value
    try:
        return cls(value)
    except (ValueError, TypeError):
        allowed = ", ".join(str(m.value) for m in cls)
        raise OrderDenied(D.INVALID_ORDER, f"{name} must be one of {allowed}, got "
                          f"{describe(value)}", oid) from None


# --- ids, flags and times ------------------------------------------------------------------------

def identifier(value: object, name: str) -> str:
    if value.__class__ is not str and not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {describe(value)}")
    return value


def optional_identifier(value: object, name: str) -> str | None:
    return None if value is None else identifier(value, name)


def identifiers(value: object, name: str) -> tuple[str, ...]:
    """A tuple or list of ids (a bare str is refused: it would read as one id per character)."""
    if not isinstance(value, tuple | list):
        raise TypeError(f"{name} must be a tuple of order ids, got {type(value).__name__} "
                        f"{describe(value)}")
    return tuple(identifier(v, f"{name}[{k}]") for k, v in enumerate(value))


def flag(value: object, name: str) -> bool:
    if value is not True and value is not False:
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {describe(value)}")
    return value


def timestamp(value: object, name: str) -> int | None:
    """Int nanoseconds since the epoch (the one clock unit), or None."""
    if value is None:
        return None
    if value.__class__ is not int:
        raise TypeError(f"{name} must be int nanoseconds since the epoch or None, got "
                        f"{type(value).__name__} {describe(value)}")
    return value

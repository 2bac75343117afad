"""The words the order layer and the risk layer share: sides, trading states, denial codes and the
two refusals (a command denied, a venue event rejected).

One enum of codes for both layers, so a log line, a test or a dashboard keys on one name per
rule (reference/trading.md §1.5 and §2.2; Nautilus' denial reasons where one exists).
"""

from __future__ import annotations

import enum


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class TradingState(enum.StrEnum):
    """Nautilus: HALTED denies submit and modify (cancels pass); REDUCING denies added exposure."""

    ACTIVE = "ACTIVE"
    HALTED = "HALTED"
    REDUCING = "REDUCING"

    @classmethod
    def coerce(cls, value: object) -> TradingState:
        """Accept this enum or its name in any case ("reducing")."""
        name = str(getattr(value, "name", value)).upper()
        if name not in cls.__members__:
            raise ValueError(f"trading state must be one of {', '.join(cls.__members__)}, "
                             f"got {value!r}")
        return cls[name]


class DenialCode(enum.StrEnum):
    """Stable codes of every refusal; tests, logs and callers key on them, never on text."""

    # --- commands: shape, values and venue filters (orders) --------------------------------------
    INVALID_ORDER = "INVALID_ORDER"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_NOT_MODIFIABLE = "ORDER_NOT_MODIFIABLE"
    INVALID_PRICE = "INVALID_PRICE"  # not a finite positive number, or beyond the instrument
    INVALID_QUANTITY = "INVALID_QUANTITY"  # not a finite positive number, or beyond the instrument
    QTY_BELOW_MIN = "QTY_BELOW_MIN"  # below the venue's minimum after rounding down (both layers)
    QTY_ABOVE_MAX = "QTY_ABOVE_MAX"  # above the instrument's max_qty (Binance LOT_SIZE maxQty)
    NOTIONAL_BELOW_MIN = "NOTIONAL_BELOW_MIN"  # below minNotional, never rounded up (both layers)
    NOTIONAL_EXCEEDS_MAX_PER_ORDER = "NOTIONAL_EXCEEDS_MAX_PER_ORDER"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    GTD_EXPIRED = "GTD_EXPIRED"
    STOP_LIMIT_SIDE = "STOP_LIMIT_SIDE"
    OCO_PRICE_ORDER = "OCO_PRICE_ORDER"
    OCO_SIDE_MISMATCH = "OCO_SIDE_MISMATCH"
    BRACKET_PRICE_ORDER = "BRACKET_PRICE_ORDER"
    DISTANCE_TOO_SMALL = "DISTANCE_TOO_SMALL"
    UNEQUAL_LEG_QTY = "UNEQUAL_LEG_QTY"
    CHILD_QTY_EXCEEDS_PARENT = "CHILD_QTY_EXCEEDS_PARENT"
    CHILD_NOT_REDUCE_ONLY = "CHILD_NOT_REDUCE_ONLY"
    CHILD_SIDE = "CHILD_SIDE"
    BRACKET_QTY_LOCKED = "BRACKET_QTY_LOCKED"
    BRACKET_SIDE_CONFLICT = "BRACKET_SIDE_CONFLICT"
    MIXED_VENUE = "MIXED_VENUE"
    MIXED_INSTRUMENT = "MIXED_INSTRUMENT"
    MIXED_INSTRUMENT_POSITION_ID = "MIXED_INSTRUMENT_POSITION_ID"
    ASYMMETRIC_LINK = "ASYMMETRIC_LINK"
    CONTINGENCY_CYCLE = "CONTINGENCY_CYCLE"
    UNSUPPORTED_LIST_SHAPE = "UNSUPPORTED_LIST_SHAPE"
    TOO_MANY_OPEN_ORDERS = "TOO_MANY_OPEN_ORDERS"
    # an exit with nothing opposite to reduce (orders: reduce-only legs; risk: L4 exits)
    REDUCE_ONLY_WOULD_INCREASE_POSITION = "REDUCE_ONLY_WOULD_INCREASE_POSITION"
    ORDER_LIST_DENIED = "ORDER_LIST_DENIED"
    # --- trading state and throttles (both layers) -----------------------------------------------
    TRADING_HALTED = "TRADING_HALTED"  # state HALTED (risk: drawdown ≥ 15 %)
    TRADING_STATE_REDUCING = "TRADING_STATE_REDUCING"  # REDUCING and the order adds exposure
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"  # a submit or modify throttle is full
    # --- risk layers (trading.md §2.2) -----------------------------------------------------------
    NO_EDGE = "NO_EDGE"  # L1: quarter-Kelly fraction ≤ 0 (or tp not beyond fees)
    NO_STOP = "NO_STOP"  # L1/L2: no stop-loss, so no risk to size against
    PRICE_NOT_ON_TICK = "PRICE_NOT_ON_TICK"  # L4: entry price off the venue's tick grid
    STOPLOSS_GUARD = "STOPLOSS_GUARD"  # L6: too many stop-loss exits lately, entries locked
    PAIR_COOLDOWN = "PAIR_COOLDOWN"  # L6: the instrument exited within its cooldown
    CRISIS = "CRISIS"  # L7: crisis detector says m7 = 0
    ZERO_SIZE = "ZERO_SIZE"  # step floor: nothing left after the clamps
    KILL_SWITCH = "KILL_SWITCH"  # L8: state HALTED by the session-PnL kill switch
    PRICE_BAND = "PRICE_BAND"  # L8: limit price too far from the mark
    # --- venue events rejected before they change state (event_checks) ---------------------------
    EVENT_OUT_OF_ORDER = "EVENT_OUT_OF_ORDER"  # for an order the venue never had, or impossible now
    FILL_EXCEEDS_LEAVES = "FILL_EXCEEDS_LEAVES"  # more than the order's open quantity
    FILL_OUTSIDE_LIMIT = "FILL_OUTSIDE_LIMIT"  # a limit filled at a worse price than its limit
    FILL_PAST_FLAT = "FILL_PAST_FLAT"  # a reduce-only fill that would flip or open a position
    INVALID_FEE = "INVALID_FEE"  # not a finite number
    INVALID_LEAVES = "INVALID_LEAVES"  # not a finite number >= 0


class OrderDenied(Exception):
    """A command (or a market-data update) refused before any state change or venue I/O.

    ``code`` is the rule that failed; for a list of more than one order ``list_code`` is
    ``ORDER_LIST_DENIED``: the whole list is refused, no leg is submitted.
    """

    def __init__(self, code: DenialCode, message: str, order_id: str | None = None,
                 list_code: DenialCode | None = None) -> None:
        self.code = code
        self.message = message
        self.order_id = order_id
        self.list_code = list_code
        prefix = f"{list_code}: " if list_code else ""
        where = f" (order {order_id})" if order_id else ""
        super().__init__(f"{prefix}{code}{where}: {message}")


class VenueEventRejected(ValueError):
    """A venue event refused before it changed anything: book, store and positions are as they
    were. ``event`` is the event as delivered; ``also`` holds further events refused in the same
    drain of the event queue. A ``ValueError`` because that is what such events raised before."""

    def __init__(self, code: DenialCode, message: str, order_id: str | None = None,
                 event: object = None) -> None:
        self.code = code
        self.message = message
        self.order_id = order_id
        self.event = event
        self.also: list[Exception] = []
        where = f" (order {order_id})" if order_id else ""
        super().__init__(f"{code}{where}: {message}")

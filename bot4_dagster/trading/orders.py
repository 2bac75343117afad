"""The order model: orders, order lists, statuses, contingency types and venue events.

Names follow NautilusTrader (``ContingencyType``, ``OrderList``, ``TradingState``, denial codes)
and FIX 5.0SP2, so the reference material (reference/trading.md §1) reads straight onto the code.
Quantities and prices are ``Decimal``: a stop that must cover exactly the open position cannot
live with binary floating point (0.1 + 0.2 != 0.3). Pure Python, no Dagster.

Messages (``OrderSpec``, venue events, venue requests) are slotted dataclasses that are treated
as immutable but not declared ``frozen``: a frozen dataclass's ``__init__`` costs about 1.3 µs
more per object, a measurable share of the 20 µs order-path budget.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter

from .instrument import ZERO, Instrument
from .vocabulary import DenialCode, OrderDenied, Side, TradingState, VenueEventRejected

__all__ = [  # the shared vocabulary and the instrument are importable from here too
    "EXIT_ROLES", "LIST_TERMINAL", "TERMINAL", "WORKING", "ZERO", "ContingencyType",
    "DenialCode", "Event", "Instrument", "ListKind", "ListStatus", "Order", "OrderAccepted",
    "OrderCanceled", "OrderDenied", "OrderExpired", "OrderFilled", "OrderList", "OrderRejected",
    "OrderSpec", "OrderStatus", "OrderType", "OtoTrigger", "PartialFillPolicy", "PositionChanged",
    "Role", "Side", "TradingState", "VenueEventRejected",
]


class OrderType(enum.StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    STOP_LIMIT = "STOP_LIMIT"

    @property
    def is_stop(self) -> bool:
        return self in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)

    @property
    def has_price(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT)


class OrderStatus(enum.StrEnum):
    """Nautilus' lifecycle. INITIALIZED: held locally (a child before its parent triggers), never
    seen by the venue. PENDING: sent, not yet acknowledged."""

    INITIALIZED = "INITIALIZED"
    DENIED = "DENIED"
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED,
                      OrderStatus.EXPIRED, OrderStatus.DENIED})
WORKING = frozenset({OrderStatus.PENDING, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})
"""At the venue and not being canceled: these orders can still trade at their current size."""


class ListStatus(enum.StrEnum):
    """PENDING -> WORKING -> DONE | CANCELED | REJECTED (reference/trading.md §1.4)."""

    PENDING = "PENDING"
    WORKING = "WORKING"
    DONE = "DONE"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"


LIST_TERMINAL = frozenset({ListStatus.DONE, ListStatus.CANCELED, ListStatus.REJECTED})


class ContingencyType(enum.IntEnum):
    """FIX ContingencyType(1385): 1 OCO, 2 OTO, 3 OUO absolute, 4 OUO proportional."""

    NONE = 0
    OCO = 1
    OTO = 2
    OUO = 3
    OUO_PROPORTIONAL = 4


class ListKind(enum.StrEnum):
    """The list shapes the manager runs; any other link structure is denied before submission."""

    SINGLE = "SINGLE"  # one order
    MULTI = "MULTI"  # independent legs, submitted all-or-nothing, instruments may differ
    OCO = "OCO"  # two linked legs (a limit and a stop) on one side
    OTO = "OTO"  # a parent that releases its children when it fills
    BRACKET = "BRACKET"  # OTO entry + reduce-only OUO take-profit / stop-loss


class Role(enum.StrEnum):
    LEG = "LEG"
    ENTRY = "ENTRY"
    CHILD = "CHILD"  # a plain OTO child
    TAKE_PROFIT = "TAKE_PROFIT"
    STOP_LOSS = "STOP_LOSS"
    EXIT = "EXIT"  # an emergency reduce-only market exit made by the manager


EXIT_ROLES = frozenset({Role.TAKE_PROFIT, Role.STOP_LOSS, Role.EXIT})


class OtoTrigger(enum.StrEnum):
    PARTIAL = "partial"
    FULL = "full"


class PartialFillPolicy(enum.StrEnum):
    """What an OCO leg's partial fill does to its siblings (three venue practices and a no-op)."""

    CANCEL_SIBLINGS = "cancel_siblings"  # Nautilus, Binance
    REDUCE_ABSOLUTE = "reduce_absolute"  # FIX OUO 3, T4
    REDUCE_PROPORTIONAL = "reduce_proportional"  # FIX OUO 4
    NONE = "none"  # CME Direct: only a full fill cancels


@dataclass(slots=True)
class OrderSpec:
    """What a caller asks for. ``id`` is optional (generated); ``parent`` and ``linked`` name other
    specs of the same submission and define the contingency structure."""

    instrument: str
    side: Side
    qty: Decimal | float | int | str
    type: OrderType = OrderType.MARKET
    price: Decimal | float | int | str | None = None
    trigger_price: Decimal | float | int | str | None = None
    reduce_only: bool = False
    id: str | None = None
    parent: str | None = None
    linked: tuple[str, ...] = ()
    contingency: ContingencyType = ContingencyType.NONE
    venue: str | None = None
    position_id: str | None = None
    expire_ts: int | None = None


@dataclass(slots=True)
class Order:
    """One order as the manager knows it. ``qty`` is the total size (leaves = qty - filled)."""

    id: str
    instrument: str
    side: Side
    type: OrderType
    qty: Decimal
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    status: OrderStatus = OrderStatus.INITIALIZED
    filled_qty: Decimal = ZERO
    avg_price: Decimal | None = None
    parent_id: str | None = None
    linked_ids: tuple[str, ...] = ()
    list_id: str = ""  # every order the book holds belongs to a list; set when it joins one
    contingency: ContingencyType = ContingencyType.NONE
    role: Role = Role.LEG
    venue: str = "PAPER"
    position_id: str | None = None
    expire_ts: int | None = None
    planned_qty: Decimal | None = None  # an OTO child's size at a full parent fill
    retry_of: str | None = None
    reason: str | None = None
    ts_init: int = 0
    ts_last: int = 0
    # the loosest terms the venue was ever sent: the modify protocol has no acknowledgement, so
    # until a downsize or re-price arrives the venue may still fill at these (event_checks)
    venue_qty: Decimal | None = None
    venue_price: Decimal | None = None

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_closed(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_working(self) -> bool:
        return self.status in WORKING

    def row(self) -> tuple:
        """The fields in declaration order, as the store keeps them."""
        return _ORDER_ROW(self)

    @classmethod
    def from_row(cls, row: tuple) -> Order:
        return cls(*row)


def _row_getter(cls: type) -> attrgetter:
    return attrgetter(*(f.name for f in fields(cls)))


_ORDER_ROW = _row_getter(Order)


@dataclass(slots=True)
class OrderList:
    """Orders submitted together and managed as one unit.

    ``order_ids[0]`` is the entry/parent for BRACKET and OTO. ``reduced_qty`` is the part of a
    bracket's position closed outside its own exits (external or other orders), allotted FIFO.
    """

    id: str
    kind: ListKind
    instrument: str
    order_ids: tuple[str, ...]
    status: ListStatus = ListStatus.PENDING
    oto_trigger: OtoTrigger = OtoTrigger.PARTIAL
    on_partial_fill: PartialFillPolicy = PartialFillPolicy.CANCEL_SIBLINGS
    reduced_qty: Decimal = ZERO
    cancel_requested: bool = False
    rejected: bool = False
    released: bool = False
    ts_init: int = 0
    ts_last: int = 0

    @property
    def is_closed(self) -> bool:
        return self.status in LIST_TERMINAL

    def row(self) -> tuple:
        """The fields in declaration order, as the store keeps them."""
        return _LIST_ROW(self)

    @classmethod
    def from_row(cls, row: tuple) -> OrderList:
        return cls(*row)


_LIST_ROW = _row_getter(OrderList)


# --- venue events (what a venue or the paper exchange reports) -----------------------------------
# Fields hold what the venue delivered; the manager checks and converts them once (event_checks)
# before an event may change anything.

@dataclass(slots=True)
class OrderAccepted:
    order_id: str
    ts: int | None = None


@dataclass(slots=True)
class OrderFilled:
    """One execution. ``trade_id`` de-duplicates re-delivered fills (per order). ``leaves`` is
    the venue's open quantity after this fill (FIX LeavesQty 151), when the venue reports it:
    0 tells the manager the order is complete at the venue even if a resize is still in flight."""

    order_id: str
    qty: Decimal
    price: Decimal
    ts: int | None = None
    trade_id: str | None = None
    fee: Decimal = ZERO
    liquidity: str = "TAKER"
    leaves: Decimal | None = None


@dataclass(slots=True)
class OrderCanceled:
    order_id: str
    ts: int | None = None


@dataclass(slots=True)
class OrderExpired:
    order_id: str
    ts: int | None = None


@dataclass(slots=True)
class OrderRejected:
    order_id: str
    reason: str = ""
    ts: int | None = None


@dataclass(slots=True)
class PositionChanged:
    """The venue's net position for an instrument, changed outside this manager (O8)."""

    instrument: str
    qty: Decimal
    ts: int | None = None


Event = (OrderAccepted | OrderFilled | OrderCanceled | OrderExpired | OrderRejected
         | PositionChanged)


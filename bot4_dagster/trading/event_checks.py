"""Venue events checked before they may change anything (reference/trading.md §1.4).

A venue can send what cannot be true: a fill larger than the order's open quantity, at a price
that is not a finite positive number or is worse than the order's limit, a non-finite fee or
leaves, a fill or an acknowledgement for an order it never had (unknown, or still held locally),
a status change the order-status table does not allow (a reject after fills, a fill after the
order was filled or rejected), or a reduce-only fill that would take the position past flat.

**Policy: refuse, never guess.** Each such event raises ``VenueEventRejected`` with a stable
``DenialCode``; the book, the store and the positions stay exactly as they were and the venue is
sent nothing. The manager does not try to repair the disagreement (which side is wrong is not
knowable from one message); the adapter that receives the error should halt trading on the
instrument and reconcile from the venue's own view (``on_position`` with the venue's position,
or ``OrderManager.restore``).

A modify has no acknowledgement, so a fill at a venue's old size or price while a downsize or
re-price is still in flight is a race, not a lie: leaves and the limit are checked against the
loosest terms the venue was ever sent (``Order.venue_qty``, ``Order.venue_price``), and the
order then completes at the size it traded.

Events that are merely late or repeated change nothing and are not errors: a fill re-delivered
with a known ``trade_id``, an acknowledgement of an order already past PENDING, a cancel, expiry
or reject of an order already closed. Ids of the wrong type raise ``TypeError`` naming the field.
"""

from __future__ import annotations

from decimal import Decimal

from . import boundary as b
from .book import Book
from .lifecycle import NEVER_SENT, allowed
from .orders import (
    ZERO,
    Event,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    PositionChanged,
    Side,
)
from .vocabulary import DenialCode, OrderDenied, VenueEventRejected

D = DenialCode
_STATUS_OF = {OrderAccepted: OrderStatus.ACCEPTED, OrderCanceled: OrderStatus.CANCELED,
              OrderExpired: OrderStatus.EXPIRED, OrderRejected: OrderStatus.REJECTED}


def screen(book: Book, event: object) -> Event | None:
    """The event with its values converted (Decimal, checked), None if it changes nothing, or
    ``VenueEventRejected`` / ``TypeError`` if it must not be applied."""
    kind = type(event)
    if kind is OrderFilled:
        return _fill(book, event)  # type: ignore[arg-type]
    if kind is PositionChanged:
        return _position(book, event)  # type: ignore[arg-type]
    if kind in _STATUS_OF:
        return _status(book, event)  # type: ignore[arg-type]
    raise TypeError(f"a venue event is one of OrderAccepted, OrderFilled, OrderCanceled, "
                    f"OrderExpired, OrderRejected, PositionChanged; got {kind.__name__}")


def _refuse(code: DenialCode, message: str, event: object,
            oid: str | None = None) -> VenueEventRejected:
    return VenueEventRejected(code, message, oid, event)


def _order(book: Book, event: OrderAccepted | OrderFilled | OrderCanceled | OrderExpired
           | OrderRejected) -> Order:
    oid = b.identifier(event.order_id, "order_id")
    b.timestamp(event.ts, "ts")
    o = book.orders.get(oid)
    if o is None:
        raise _refuse(D.ORDER_NOT_FOUND, f"{type(event).__name__} for an order this manager "
                      "never created", event, oid)
    if o.status in NEVER_SENT:
        raise _refuse(D.EVENT_OUT_OF_ORDER, f"{type(event).__name__} for an order the venue "
                      f"was never sent ({o.status})", event, oid)
    return o


def _status(book: Book, ev: OrderAccepted | OrderCanceled | OrderExpired | OrderRejected
            ) -> Event | None:
    o = _order(book, ev)
    if isinstance(ev, OrderRejected):
        b.identifier(ev.reason, "reason")
    if o.is_closed or (isinstance(ev, OrderAccepted) and o.status is not OrderStatus.PENDING):
        return None  # late or repeated: nothing left to change
    new = _STATUS_OF[type(ev)]
    if not allowed(o.status, new) or (new is OrderStatus.REJECTED and o.filled_qty > 0):
        raise _refuse(D.EVENT_OUT_OF_ORDER, f"{o.status} -> {new} is not a possible change "
                      f"(filled {o.filled_qty})", ev, o.id)
    return ev


def _decimal(value: object, code: DenialCode, what: str, ev: object, oid: str) -> Decimal:
    d = b.exact(value)
    if d is None:
        raise _refuse(code, f"{what} {b.describe(value)} is not a finite number", ev, oid)
    return d


def _fill(book: Book, ev: OrderFilled) -> OrderFilled | None:
    o = _order(book, ev)
    trade_id = b.optional_identifier(ev.trade_id, "trade_id")
    liquidity = b.identifier(ev.liquidity, "liquidity")
    if trade_id is not None and (o.id, trade_id) in book.trade_keys:
        return None  # a re-delivered fill
    inst = book.instruments[o.instrument]
    qty = _decimal(ev.qty, D.INVALID_QUANTITY, "fill quantity", ev, o.id)
    if not qty > 0 or b.CONTEXT.remainder(qty, inst.step) != 0:
        raise _refuse(D.INVALID_QUANTITY, f"fill quantity {qty} is not a positive multiple of "
                      f"the step {inst.step}", ev, o.id)
    price = _decimal(ev.price, D.INVALID_PRICE, "fill price", ev, o.id)
    if not 0 < price <= inst.price_bound:
        raise _refuse(D.INVALID_PRICE, f"fill price {b.describe(price)} is not in (0, "
                      f"{inst.price_bound}]", ev, o.id)
    fee = _decimal(ev.fee, D.INVALID_FEE, "fee", ev, o.id)
    if abs(fee) > qty * price:
        raise _refuse(D.INVALID_FEE, f"fee {b.describe(fee)} exceeds the fill's notional",
                      ev, o.id)
    leaves = None
    if ev.leaves is not None:
        leaves = _decimal(ev.leaves, D.INVALID_LEAVES, "leaves", ev, o.id)
        if not ZERO <= leaves <= inst.qty_bound:
            raise _refuse(D.INVALID_LEAVES, f"leaves {b.describe(leaves)} is not in [0, "
                          f"{inst.qty_bound}]", ev, o.id)
    _fill_status(o, qty, leaves, ev)
    sent = o.venue_qty if o.venue_qty is not None and o.venue_qty > o.qty else o.qty
    if qty > sent - o.filled_qty:
        raise _refuse(D.FILL_EXCEEDS_LEAVES, f"fill {qty} > leaves {sent - o.filled_qty} (largest "
                      f"size sent {sent}, filled {o.filled_qty})", ev, o.id)
    limit = o.venue_price if o.venue_price is not None else o.price
    if limit is not None and (price > limit if o.side is Side.BUY else price < limit):
        raise _refuse(D.FILL_OUTSIDE_LIMIT, f"{o.side} {o.type} limit {limit} filled at "
                      f"{price}", ev, o.id)
    if o.reduce_only:
        held = book.positions.get(o.instrument, ZERO)
        if not (held * o.side.sign < 0 and qty <= abs(held)):
            raise _refuse(D.FILL_PAST_FLAT, f"reduce-only {o.side} fill {qty} on a position of "
                          f"{held} would take it past flat", ev, o.id)
    return OrderFilled(o.id, qty, price, ev.ts, trade_id, fee, liquidity, leaves)


def _fill_status(o: Order, qty: Decimal, leaves: Decimal | None, ev: OrderFilled) -> None:
    """The status the fill would give the order must be one the table allows."""
    complete = o.filled_qty + qty >= o.qty or (leaves is not None and leaves <= 0)
    new = (OrderStatus.FILLED if complete
           else OrderStatus.PARTIALLY_FILLED if o.status in (OrderStatus.PENDING,
                                                             OrderStatus.ACCEPTED)
           else o.status)
    if o.status in (OrderStatus.FILLED, OrderStatus.REJECTED) or (
            new is not o.status and not allowed(o.status, new)):
        raise _refuse(D.EVENT_OUT_OF_ORDER, f"a fill for a {o.status} order", ev, o.id)


def _position(book: Book, ev: PositionChanged) -> PositionChanged:
    instrument = b.identifier(ev.instrument, "instrument")
    b.timestamp(ev.ts, "ts")
    inst = book.instruments.get(instrument)
    if inst is None:
        raise _refuse(D.UNKNOWN_INSTRUMENT, f"no instrument {instrument!r}", ev)
    try:
        qty = b.position(ev.qty, inst)
    except OrderDenied as denied:
        raise _refuse(denied.code, denied.message, ev) from None
    return PositionChanged(instrument, qty, ev.ts)

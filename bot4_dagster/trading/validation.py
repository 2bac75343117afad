"""Pre-submit checks with stable denial codes (reference/trading.md §1.5).

Deterministic and side-effect free: a command is either turned into normalised ``Order`` objects
(prices on the tick grid, quantities rounded down to the step) or refused with an
``OrderDenied`` before the manager changes any state or talks to the venue. A list is checked
as a whole and refused as a whole (``ORDER_LIST_DENIED``); every leg is checked on its own
instrument (the reference's improvement over Nautilus' representative instrument).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Protocol

from . import boundary as b
from .orders import (
    ContingencyType,
    DenialCode,
    Instrument,
    ListKind,
    Order,
    OrderDenied,
    OrderSpec,
    OrderStatus,
    OrderType,
    Role,
    Side,
    TradingState,
)

D = DenialCode
LINKED = (ContingencyType.OCO, ContingencyType.OUO, ContingencyType.OUO_PROPORTIONAL)


class Context(Protocol):
    """What the checks read from the manager (implemented by ``OrderManager``)."""

    instruments: dict[str, Instrument]
    trading_state: TradingState
    min_distance_ticks: int
    min_distance_spreads: Decimal

    def ref_price(self, instrument: str) -> Decimal | None: ...

    def spread(self, instrument: str) -> Decimal: ...

    def position(self, instrument: str) -> Decimal: ...

    def open_order_count(self, instrument: str) -> int: ...

    def has_order(self, order_id: str) -> bool: ...

    def bracket_side(self, instrument: str) -> Side | None: ...


def deny(code: DenialCode, message: str, order_id: str | None = None) -> OrderDenied:
    return OrderDenied(code, message, order_id)


# --- a whole submission --------------------------------------------------------------------------

def plan_list(specs: Sequence[OrderSpec], ctx: Context, new_id: Callable[[], str], now: int,
              ref_override: object = None,
              built: ListKind | None = None) -> tuple[ListKind, list[Order]]:
    """Check ``specs`` and return the list shape and its orders (status INITIALIZED).

    ``built`` names the shape of specs the manager linked itself (``submit_bracket``: entry,
    take-profit, stop; ``submit_oco``: take-profit, stop), whose links need no inference.
    """
    try:
        if not specs:
            raise deny(D.INVALID_ORDER, "an order list needs at least one order")
        for s in specs:
            if not isinstance(s, OrderSpec):
                raise TypeError(f"specs must be OrderSpec objects, got {type(s).__name__}")
        ids = _ids(specs, ctx, new_id)
        if built is None:
            kind, specs, ids = _shape(specs, ids)
        else:
            kind = built
        orders = [_leg(s, i, ctx, now) for s, i in zip(specs, ids, strict=True)]
        ref = None if ref_override is None else b.reference(
            ref_override, ctx.instruments[orders[0].instrument], name="ref_price")
        _list_rules(kind, orders, ctx, ref)
        _exposure_rules(orders, ctx)
        return kind, orders
    except OrderDenied as denial:
        if len(specs) > 1:
            denial.list_code = D.ORDER_LIST_DENIED
            denial.args = (f"{D.ORDER_LIST_DENIED}: {denial.args[0]}",)
        raise


def _ids(specs: Sequence[OrderSpec], ctx: Context, new_id: Callable[[], str]) -> list[str]:
    ids = [b.identifier(s.id, "OrderSpec.id") if s.id is not None else new_id() for s in specs]
    for s in specs:
        b.optional_identifier(s.parent, "OrderSpec.parent")
        b.identifiers(s.linked, "OrderSpec.linked")
    if len(set(ids)) != len(ids):
        raise deny(D.INVALID_ORDER, "duplicate order ids in one list")
    for i in ids:
        if ctx.has_order(i) or not i or "," in i:
            raise deny(D.INVALID_ORDER, "order id is empty, reused or contains a comma", i)
    return ids


def _shape(specs: Sequence[OrderSpec], ids: list[str]):
    """Links must resolve, be symmetric and acyclic, and form one of the supported shapes."""
    if len(specs) == 1:
        s = specs[0]
        if s.parent is None and not s.linked and s.contingency is ContingencyType.NONE:
            return ListKind.SINGLE, specs, ids
    by_id = dict(zip(ids, specs, strict=True))
    for i, s in zip(ids, specs, strict=True):
        if s.parent is not None and s.parent not in by_id:
            raise deny(D.INVALID_ORDER, f"parent {s.parent} is not in this list", i)
        if any(link not in by_id for link in s.linked):
            raise deny(D.INVALID_ORDER, "a linked order is not in this list", i)
        if s.linked and s.contingency is ContingencyType.NONE:
            raise deny(D.INVALID_ORDER, "linked orders need a contingency type", i)
    _no_cycles(by_id)
    for i, s in zip(ids, specs, strict=True):
        if s.contingency in LINKED:
            for link in s.linked:
                other = by_id[link]
                if i not in other.linked or other.contingency is not s.contingency:
                    raise deny(D.ASYMMETRIC_LINK, f"{link} does not link back with "
                               f"{s.contingency.name}", i)
        if s.contingency is ContingencyType.OTO:
            children = {j for j, x in by_id.items() if x.parent == i}
            if set(s.linked) != children:
                raise deny(D.ASYMMETRIC_LINK, "an OTO parent must link exactly its children", i)
        if s.parent is not None and by_id[s.parent].contingency is not ContingencyType.OTO:
            raise deny(D.ASYMMETRIC_LINK, f"parent {s.parent} is not an OTO order", i)
    return _classify(list(specs), ids)


def _no_cycles(by_id: dict[str, OrderSpec]) -> None:
    for start, spec in by_id.items():
        seen, node = {start}, spec.parent
        while node is not None:
            if node in seen:
                raise deny(D.CONTINGENCY_CYCLE, "parent links form a cycle", start)
            seen.add(node)
            node = by_id[node].parent
        if start in spec.linked:
            raise deny(D.CONTINGENCY_CYCLE, "an order links to itself", start)


def _classify(specs: list[OrderSpec], ids: list[str]):
    parents = [k for k, s in enumerate(specs) if s.contingency is ContingencyType.OTO]
    if not parents:
        if not any(s.linked for s in specs):
            return (ListKind.SINGLE if len(specs) == 1 else ListKind.MULTI), specs, ids
        if len(specs) == 2:
            return ListKind.OCO, specs, ids
        raise deny(D.UNSUPPORTED_LIST_SHAPE, "an OCO/OUO group has exactly two legs")
    if len(parents) > 1:
        raise deny(D.UNSUPPORTED_LIST_SHAPE, "one OTO parent per list (no chains)")
    k = parents[0]
    order = [k] + [j for j in range(len(specs)) if j != k]
    specs, ids = [specs[j] for j in order], [ids[j] for j in order]
    children = specs[1:]
    if not children or any(c.parent != ids[0] for c in children):
        raise deny(D.UNSUPPORTED_LIST_SHAPE, "every other order must be a child of the parent")
    if all(c.contingency is ContingencyType.NONE for c in children):
        return ListKind.OTO, specs, ids
    if len(children) == 2 and all(c.contingency in (ContingencyType.OUO,
                                                    ContingencyType.OUO_PROPORTIONAL)
                                  for c in children):
        return ListKind.BRACKET, specs, ids
    raise deny(D.UNSUPPORTED_LIST_SHAPE, "bracket children are one OUO pair (OUO, so the stop "
               "keeps covering a partly taken profit); OTO children are unlinked")


# --- one leg -------------------------------------------------------------------------------------

def _leg(s: OrderSpec, oid: str, ctx: Context, now: int) -> Order:
    inst = ctx.instruments.get(b.identifier(s.instrument, "OrderSpec.instrument"))
    if inst is None:
        raise deny(D.UNKNOWN_INSTRUMENT, f"no instrument {s.instrument!r}", oid)
    side = b.choice(Side, s.side, "side", oid)
    typ = b.choice(OrderType, s.type, "type", oid)
    if typ.has_price != (s.price is not None) or typ.is_stop != (s.trigger_price is not None):
        raise deny(D.INVALID_ORDER, f"{typ} takes {'a' if typ.has_price else 'no'} limit price "
                   f"and {'a' if typ.is_stop else 'no'} trigger price", oid)
    price = None if s.price is None else b.price(s.price, inst, side, oid)
    trigger = None if s.trigger_price is None else b.price(s.trigger_price, inst, side, oid,
                                                            "trigger price")
    qty = b.quantity(s.qty, inst, oid)
    reduce_only = b.flag(s.reduce_only, "OrderSpec.reduce_only")
    venue = b.optional_identifier(s.venue, "OrderSpec.venue")
    position_id = b.optional_identifier(s.position_id, "OrderSpec.position_id")
    expire_ts = b.timestamp(s.expire_ts, "OrderSpec.expire_ts")
    if typ is OrderType.STOP_LIMIT:
        check_stop_limit(side, price, trigger, oid)
    ref = price if price is not None else trigger if trigger is not None \
        else ctx.ref_price(s.instrument)
    if ref is None:
        raise deny(D.NO_REFERENCE_PRICE, f"no last price for {s.instrument}", oid)
    check_notional(inst, qty, ref, reduce_only, oid)
    if expire_ts is not None and expire_ts <= now:
        raise deny(D.GTD_EXPIRED, "expire time is not in the future", oid)
    return Order(oid, s.instrument, side, typ, qty, price, trigger, reduce_only,
                 OrderStatus.INITIALIZED, parent_id=s.parent, linked_ids=tuple(s.linked),
                 contingency=b.choice(ContingencyType, s.contingency, "contingency", oid),
                 venue=venue or inst.venue,
                 position_id=position_id, expire_ts=expire_ts, ts_init=now, ts_last=now)


def check_stop_limit(side: Side, price: Decimal | None, trigger: Decimal | None,
                     oid: str) -> None:
    """Globex/IBKR: a SELL stop-limit's limit is at or below its stop, a BUY's at or above."""
    if price is None or trigger is None:
        return
    if (side is Side.SELL and price > trigger) or (side is Side.BUY and price < trigger):
        raise deny(D.STOP_LIMIT_SIDE, f"{side} stop-limit limit {price} vs stop {trigger}", oid)


def check_notional(inst: Instrument, qty: Decimal, ref: Decimal, reduce_only: bool,
                   oid: str) -> None:
    """Deny below minNotional, never round up. Reduce-only orders are exempt, as on Binance
    futures ("notional must be no smaller than 5.0 (unless you choose reduce only)"): a stop
    resized to a small remaining position must still be placeable."""
    notional = qty * ref
    if not reduce_only and notional < inst.min_notional:
        raise deny(D.NOTIONAL_BELOW_MIN, f"notional {notional} < {inst.min_notional}", oid)
    if inst.max_notional is not None and notional > inst.max_notional:
        raise deny(D.NOTIONAL_EXCEEDS_MAX_PER_ORDER,
                   f"notional {notional} > {inst.max_notional}", oid)


# --- list rules ----------------------------------------------------------------------------------

def _list_rules(kind: ListKind, orders: list[Order], ctx: Context,
                ref_override: Decimal | None) -> None:
    if len({o.venue for o in orders}) > 1:
        raise deny(D.MIXED_VENUE, "all legs of a list go to one venue")
    instruments = {o.instrument for o in orders}
    if len(instruments) > 1:
        if kind is not ListKind.MULTI:
            raise deny(D.MIXED_INSTRUMENT, f"a {kind} list trades one instrument")
        if any(o.position_id for o in orders):
            raise deny(D.MIXED_INSTRUMENT_POSITION_ID,
                       "a position id cannot span several instruments")
    if kind is ListKind.OCO:
        _oco_rules(orders, ctx, ref_override)
    elif kind is ListKind.BRACKET:
        _bracket_rules(orders, ctx, ref_override)
    elif kind is ListKind.OTO:
        _oto_rules(orders)


def _split_pair(a: Order, b: Order) -> tuple[Order, Order]:
    """(take-profit limit, stop) of a linked pair; any other pair is not a supported shape."""
    if a.type is OrderType.LIMIT and b.type.is_stop:
        return a, b
    if b.type is OrderType.LIMIT and a.type.is_stop:
        return b, a
    raise deny(D.UNSUPPORTED_LIST_SHAPE, "a linked pair is one LIMIT and one STOP order")


def _reference(ctx: Context, instrument: str, override: Decimal | None) -> Decimal:
    ref = override if override is not None else ctx.ref_price(instrument)
    if ref is None:
        raise deny(D.NO_REFERENCE_PRICE, f"no last price for {instrument}")
    return ref


def min_distance(ctx: Context, instrument: str) -> Decimal:
    """max(k_tick·tick, k_spread·spread), defaults 2 ticks and 1 spread (T4: OCO legs that are
    very close together are not what OCO is for)."""
    inst = ctx.instruments[instrument]
    return max(ctx.min_distance_ticks * inst.tick,
               ctx.min_distance_spreads * ctx.spread(instrument))


def _oco_rules(orders: list[Order], ctx: Context, ref_override: Decimal | None) -> None:
    a, b = orders
    if a.side is not b.side:
        raise deny(D.OCO_SIDE_MISMATCH, "both OCO legs are on one side", b.id)
    tp, sl = _split_pair(a, b)
    tp.role, sl.role = Role.TAKE_PROFIT, Role.STOP_LOSS
    if a.qty != b.qty:
        raise deny(D.UNEQUAL_LEG_QTY, f"OCO legs {a.qty} != {b.qty}", b.id)
    ref = _reference(ctx, a.instrument, ref_override)
    check_oco_prices(tp.side, tp.price, sl.trigger_price, ref, min_distance(ctx, a.instrument),
                     tp.id)


def check_oco_prices(side: Side, tp: Decimal | None, sl: Decimal | None, ref: Decimal,
                     distance: Decimal, oid: str) -> None:
    """Binance: SELL tp > last > stop; BUY tp < last < stop; both at least ``distance`` away."""
    assert tp is not None and sl is not None  # a LIMIT has its price, a stop its trigger
    ordered = tp > ref > sl if side is Side.SELL else tp < ref < sl
    if not ordered:
        raise deny(D.OCO_PRICE_ORDER, f"{side} OCO needs take-profit {tp} and stop {sl} on "
                   f"either side of the reference {ref}", oid)
    if abs(tp - ref) < distance or abs(ref - sl) < distance:
        raise deny(D.DISTANCE_TOO_SMALL, f"legs closer than {distance} to {ref}", oid)


def _bracket_rules(orders: list[Order], ctx: Context, ref_override: Decimal | None) -> None:
    entry, c1, c2 = orders
    tp, sl = _split_pair(c1, c2)
    entry.role, tp.role, sl.role = Role.ENTRY, Role.TAKE_PROFIT, Role.STOP_LOSS
    for c in (tp, sl):
        if not c.reduce_only:
            raise deny(D.CHILD_NOT_REDUCE_ONLY, "bracket exits are reduce-only", c.id)
        if c.side is not entry.side.opposite:
            raise deny(D.CHILD_SIDE, "bracket exits trade against the entry", c.id)
        if c.qty != entry.qty:
            raise deny(D.UNEQUAL_LEG_QTY, "bracket exits cover the whole entry", c.id)
    e = entry_reference(entry, ctx, ref_override)
    check_bracket_prices(entry.side, e, tp.price, sl.trigger_price,
                         min_distance(ctx, entry.instrument), entry.id)
    side = ctx.bracket_side(entry.instrument)
    position = ctx.position(entry.instrument)
    if (side is not None and side is not entry.side) or position * entry.side.sign < 0:
        raise deny(D.BRACKET_SIDE_CONFLICT, "net positions: a bracket cannot run against an "
                   "opposite bracket or position on the same instrument", entry.id)


def entry_reference(entry: Order, ctx: Context, override: Decimal | None) -> Decimal:
    """E: the limit price, the trigger of a stop entry, or the reference for a market entry."""
    if entry.price is not None:
        return entry.price
    if entry.trigger_price is not None:
        return entry.trigger_price
    return _reference(ctx, entry.instrument, override)


def check_bracket_prices(side: Side, e: Decimal, tp: Decimal | None, sl: Decimal | None,
                         distance: Decimal, oid: str) -> None:
    """BUY: stop < E < take-profit; SELL mirrors; both exits at least ``distance`` from E."""
    assert tp is not None and sl is not None  # a LIMIT has its price, a stop its trigger
    ordered = sl < e < tp if side is Side.BUY else tp < e < sl
    if not ordered:
        raise deny(D.BRACKET_PRICE_ORDER, f"{side} bracket needs stop {sl} and take-profit {tp} "
                   f"on either side of the entry {e}", oid)
    if abs(tp - e) < distance or abs(e - sl) < distance:
        raise deny(D.DISTANCE_TOO_SMALL, f"exits closer than {distance} to the entry {e}", oid)


def _oto_rules(orders: list[Order]) -> None:
    parent = orders[0]
    parent.role = Role.ENTRY
    for c in orders[1:]:
        c.role = Role.CHILD
        if c.qty > parent.qty:
            raise deny(D.CHILD_QTY_EXCEEDS_PARENT, f"child {c.qty} > parent {parent.qty}", c.id)
        c.planned_qty = c.qty


def _exposure_rules(orders: list[Order], ctx: Context) -> None:
    """Reduce-only legs must reduce; REDUCING denies added exposure; open-order limits."""
    for o in orders:
        position = ctx.position(o.instrument)
        if o.reduce_only and o.parent_id is None and not position * o.side.sign < 0:
            raise deny(D.REDUCE_ONLY_WOULD_INCREASE_POSITION,
                       f"position {position}: a reduce-only {o.side} cannot reduce it", o.id)
        if (ctx.trading_state is TradingState.REDUCING and not o.reduce_only
                and (position * o.side.sign >= 0 or o.qty > abs(position))):
            raise deny(D.TRADING_STATE_REDUCING, "trading state REDUCING: only orders that do "
                       "not increase exposure", o.id)
    counts: dict[str, int] = {}
    for o in orders:
        counts[o.instrument] = counts.get(o.instrument, 0) + 1
    for instrument, n in counts.items():
        limit = ctx.instruments[instrument].max_open_orders
        if ctx.open_order_count(instrument) + n > limit:
            raise deny(D.TOO_MANY_OPEN_ORDERS, f"{instrument}: more than {limit} open orders "
                       "(a list counts each of its legs, as Binance's list weights)")


# --- modify --------------------------------------------------------------------------------------

def plan_modify(o: Order, qty: object, price: object, trigger: object,
                ctx: Context) -> tuple[Decimal, Decimal | None, Decimal | None]:
    """New (qty, price, trigger) for ``o``, normalised and checked leg by leg."""
    inst = ctx.instruments[o.instrument]
    if price is not None and not o.type.has_price:
        raise deny(D.INVALID_ORDER, f"a {o.type} order has no limit price", o.id)
    if trigger is not None and not o.type.is_stop:
        raise deny(D.INVALID_ORDER, f"a {o.type} order has no trigger price", o.id)
    q = o.qty if qty is None else b.quantity(qty, inst, o.id)
    if q <= o.filled_qty:
        raise deny(D.INVALID_QUANTITY, f"quantity {q} <= filled {o.filled_qty}", o.id)
    p = o.price if price is None else b.price(price, inst, o.side, o.id)
    t = o.trigger_price if trigger is None else b.price(trigger, inst, o.side, o.id,
                                                        "trigger price")
    if o.type is OrderType.STOP_LIMIT:
        check_stop_limit(o.side, p, t, o.id)
    ref = p if p is not None else t if t is not None else ctx.ref_price(o.instrument)
    if ref is not None:
        check_notional(inst, q, ref, o.reduce_only, o.id)
    return q, p, t

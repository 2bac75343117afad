"""OrderManager: OCO, OTO, bracket and multi-leg lists, atomic and restartable.

Defaults are the anchors' (reference/trading.md §1):

- ``oto_trigger="partial"``: NautilusTrader's default venue model. Children go out with the first
  entry fill and track later fills, because a full trigger "leaves a risk window: any partially
  filled position is live without its protective exit". ``"full"`` (Binance OTO/OTOCO) releases
  them only once the entry is completely filled (or closed with something filled).
- OCO ``on_partial_fill="cancel_siblings"``: NautilusTrader and Binance, "execution of any order
  (full or partial) triggers a best-efforts cancellation of the others". Also offered:
  ``"reduce_absolute"`` (FIX OUO 3, T4), ``"reduce_proportional"`` (FIX OUO 4) and ``"none"``
  (CME Direct: a partial fill leaves the sibling, a full fill cancels it).
- Bracket exits are OUO with absolute reduction (Nautilus' ``bracket()``): a partly taken profit
  shrinks the stop by the same amount, so the stop always covers what is still open.
- 100 submits and 100 modifies per second (Nautilus ``max_order_submit_rate="100/00:00:01"``);
  exits the manager itself releases or resizes are never throttled or gated, because they only
  ever protect or reduce.

Every value enters through one conversion (``boundary``: finite, bounded, quantities floored
to the step) and every command is checked (``validation``) before any state change; every venue
event is checked (``event_checks``: refused with ``VenueEventRejected`` if it cannot be true,
nothing changed). State changes are committed to the store in one transaction before any venue
request (``book``), statuses follow ``lifecycle.ORDER_STATE_TABLE``, and what one order's event
does to its list is decided by ``contingency``. Events a venue raises inside a request are
queued and handled after the current step, never re-entrantly.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from . import boundary as b
from . import contingency as rules
from .book import Book
from .clock import SECOND
from .event_checks import screen
from .orders import (
    EXIT_ROLES,
    ZERO,
    ContingencyType,
    DenialCode,
    Event,
    Instrument,
    ListKind,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderList,
    OrderRejected,
    OrderSpec,
    OrderStatus,
    OrderType,
    OtoTrigger,
    PartialFillPolicy,
    PositionChanged,
    Role,
    Side,
    TradingState,
    VenueEventRejected,
)
from .store import MemoryStore, OrderStore, Snapshot
from .throttle import Throttle
from .validation import (
    check_bracket_prices,
    check_notional,
    check_oco_prices,
    min_distance,
    plan_list,
    plan_modify,
)
from .venue import Venue

D = DenialCode
_POLICY_CONTINGENCY = {
    PartialFillPolicy.CANCEL_SIBLINGS: ContingencyType.OCO,
    PartialFillPolicy.NONE: ContingencyType.OCO,
    PartialFillPolicy.REDUCE_ABSOLUTE: ContingencyType.OUO,
    PartialFillPolicy.REDUCE_PROPORTIONAL: ContingencyType.OUO_PROPORTIONAL,
}
_CONTINGENCY_POLICY = {
    ContingencyType.OUO: PartialFillPolicy.REDUCE_ABSOLUTE,
    ContingencyType.OUO_PROPORTIONAL: PartialFillPolicy.REDUCE_PROPORTIONAL,
}


@dataclass(frozen=True)
class OrderConfig:
    """Manager settings; the defaults and their reasons are in the module docstring."""

    oto_trigger: OtoTrigger = OtoTrigger.PARTIAL
    on_partial_fill: PartialFillPolicy = PartialFillPolicy.CANCEL_SIBLINGS
    max_submit_rate: int | None = 100
    max_modify_rate: int | None = 100
    rate_window_ns: int = SECOND
    min_distance_ticks: int = 2
    min_distance_spreads: Decimal = Decimal(1)
    id_prefix: str = "L"

    def __post_init__(self) -> None:
        object.__setattr__(self, "oto_trigger", OtoTrigger(self.oto_trigger))
        object.__setattr__(self, "on_partial_fill", PartialFillPolicy(self.on_partial_fill))
        object.__setattr__(self, "min_distance_spreads",
                           b.require_number(self.min_distance_spreads, "min_distance_spreads"))


class OrderManager:
    """Contingent order management against one ``Venue``; see the module docstring."""

    def __init__(self, venue: Venue, instruments: Mapping[str, Instrument] | Sequence[Instrument],
                 store: OrderStore | None = None, *, config: OrderConfig | None = None,
                 oto_trigger: str | None = None, on_partial_fill: str | None = None,
                 clock: Callable[[], int] = time.time_ns,
                 trading_state: TradingState | str = TradingState.ACTIVE,
                 _snapshot: Snapshot | None = None) -> None:
        config = config or OrderConfig()
        if oto_trigger is not None:
            config = replace(config, oto_trigger=OtoTrigger(oto_trigger))
        if on_partial_fill is not None:
            config = replace(config, on_partial_fill=PartialFillPolicy(on_partial_fill))
        self.config = config
        if not isinstance(instruments, Mapping):
            instruments = {i.symbol: i for i in instruments}
        self.instruments: dict[str, Instrument] = dict(instruments)
        self.store = store if store is not None else MemoryStore()
        self.clock = clock
        self._state = TradingState.coerce(trading_state)
        self.min_distance_ticks = config.min_distance_ticks
        self.min_distance_spreads = config.min_distance_spreads
        self._book = Book(self.store, venue, clock, self.instruments)
        snapshot = _snapshot if _snapshot is not None else self.store.load()
        if _snapshot is None and (snapshot.orders or snapshot.lists):
            raise ValueError("the store holds orders: use OrderManager.restore(store, ...)")
        self._book.load(snapshot)
        self._next = 1 + max((_number(config.id_prefix, i) for i in snapshot.lists), default=0)
        self._submits = Throttle(config.max_submit_rate, config.rate_window_ns)
        self._modifies = Throttle(config.max_modify_rate, config.rate_window_ns)
        self._last: dict[str, Decimal] = {}
        self._quotes: dict[str, tuple[Decimal, Decimal]] = {}
        self._queue: deque[object] = deque()
        self._busy = False
        self._sent: set[str] = set()
        self.orders: Mapping[str, Order] = MappingProxyType(self._book.orders)
        self.lists: Mapping[str, OrderList] = MappingProxyType(self._book.lists)
        self.positions: Mapping[str, Decimal] = MappingProxyType(self._book.positions)

    @classmethod
    def restore(cls, store: OrderStore, venue: Venue,
                instruments: Mapping[str, Instrument] | Sequence[Instrument], *,
                positions: Mapping[str, Decimal | float | str] | None = None,
                **kwargs: Any) -> OrderManager:
        """Rebuild from ``store`` after a crash or restart, then re-arm every live list.

        Held children stay held (and are released if their parent triggered); children of a
        closed parent whose position is flat are cancelled; exits are resized to the position.
        ``positions`` (the venue's, if known) replace the persisted ones first. Finally the
        desired state of every live venue order is re-sent (idempotent by the venue contract),
        covering requests a crash may have cut off after their commit.
        """
        manager = cls(venue, instruments, store, _snapshot=store.load(), **kwargs)
        checked = {manager._instrument(i).symbol: b.position(q, manager._instrument(i),
                                                            f"positions[{i!r}]")
                   for i, q in (positions or {}).items()}
        manager._command(manager._rearm, checked)
        manager.resend(skip=manager._sent)
        return manager

    # --- read access -----------------------------------------------------------------------------

    @property
    def trading_state(self) -> TradingState:
        return self._state

    @trading_state.setter
    def trading_state(self, value: object) -> None:
        self._state = TradingState.coerce(value)

    def list_orders(self, list_id: str) -> list[Order]:
        return self._book.legs(self._list(list_id))

    def rows(self) -> Snapshot:
        """In-memory state as store rows (equal to ``store.load()`` after every step)."""
        return self._book.rows()

    def bracket_open_qty(self, list_id: str) -> Decimal:
        """What a bracket still holds: entry filled - exit fills - reductions from outside."""
        return self._book.bracket_open(self._list(list_id))

    # --- validation context ----------------------------------------------------------------------

    def ref_price(self, instrument: str) -> Decimal | None:
        last = self._last.get(instrument)
        if last is not None:
            return last
        quote = self._quotes.get(instrument)
        return None if quote is None else (quote[0] + quote[1]) / 2

    def spread(self, instrument: str) -> Decimal:
        quote = self._quotes.get(instrument)
        return ZERO if quote is None else quote[1] - quote[0]

    def position(self, instrument: str) -> Decimal:
        return self._book.positions.get(instrument, ZERO)

    def open_order_count(self, instrument: str) -> int:
        return len(self._book.live.get(instrument, ()))

    def has_order(self, order_id: str) -> bool:
        return order_id in self._book.orders

    def bracket_side(self, instrument: str) -> Side | None:
        """The side of the instrument's live or still exposed brackets (None: there are none).
        Opposite sides never coexist: a bracket against them is denied at submit."""
        oldest = self._book.oldest_bracket(instrument)
        return None if oldest is None else self._book.bracket_side(oldest)

    # --- market data -----------------------------------------------------------------------------

    def on_price(self, instrument: str, price: Decimal | float | str) -> None:
        """Last trade price: the reference for OCO ordering and market-entry brackets."""
        inst = self._instrument(instrument)
        self._last[inst.symbol] = b.reference(price, inst)

    def on_quote(self, instrument: str, bid: Decimal | float | str,
                 ask: Decimal | float | str) -> None:
        inst = self._instrument(instrument)
        quote = b.reference(bid, inst, name="bid"), b.reference(ask, inst, name="ask")
        if quote[0] > quote[1]:
            raise OrderDenied(D.INVALID_PRICE, f"crossed quote: bid {quote[0]} > ask {quote[1]}")
        self._quotes[inst.symbol] = quote

    # --- submit ----------------------------------------------------------------------------------

    def submit_order(self, spec: OrderSpec) -> OrderList:
        """One order, managed as a list of one (so every order has a list and a status)."""
        return self.submit_list([spec])

    def submit_list(self, specs: Sequence[OrderSpec], *, oto_trigger: str | None = None,
                    on_partial_fill: str | None = None,
                    ref_price: Decimal | float | str | None = None) -> OrderList:
        """Submit orders as one list, all or nothing. The link structure (``parent``,
        ``linked``, ``contingency``) decides the shape: SINGLE, MULTI, OCO, OTO or BRACKET."""
        lid = self._new_list_id()
        counter = iter(range(1, 1_000_000))
        return self._submit(lid, specs, lambda: f"{lid}.{next(counter)}", oto_trigger,
                            on_partial_fill, ref_price)

    def submit_bracket(self, instrument: str, side: Side | str, qty: Decimal | float | str, *,
                       take_profit: Decimal | float | str, stop_loss: Decimal | float | str,
                       entry_price: Decimal | float | str | None = None,
                       stop_limit: Decimal | float | str | None = None,
                       oto_trigger: str | None = None,
                       ref_price: Decimal | float | str | None = None,
                       expire_ts: int | None = None) -> OrderList:
        """Entry (MARKET, or LIMIT at ``entry_price``) + reduce-only take-profit LIMIT and
        stop-loss STOP_MARKET (STOP_LIMIT with ``stop_limit``), released on the entry's fill."""
        side = b.choice(Side, side, "side")
        lid = self._new_list_id()
        e, tp, sl = f"{lid}.E", f"{lid}.TP", f"{lid}.SL"
        exit_side = side.opposite
        specs = [
            OrderSpec(instrument, side, qty, OrderType.LIMIT if entry_price is not None
                      else OrderType.MARKET, price=entry_price, id=e, linked=(tp, sl),
                      contingency=ContingencyType.OTO, expire_ts=expire_ts),
            OrderSpec(instrument, exit_side, qty, OrderType.LIMIT, price=take_profit,
                      reduce_only=True, id=tp, parent=e, linked=(sl,),
                      contingency=ContingencyType.OUO),
            OrderSpec(instrument, exit_side, qty, OrderType.STOP_LIMIT if stop_limit is not None
                      else OrderType.STOP_MARKET, price=stop_limit, trigger_price=stop_loss,
                      reduce_only=True, id=sl, parent=e, linked=(tp,),
                      contingency=ContingencyType.OUO),
        ]
        return self._submit(lid, specs, None, oto_trigger, None, ref_price, ListKind.BRACKET)

    def submit_oco(self, instrument: str, side: Side | str, qty: Decimal | float | str, *,
                   take_profit: Decimal | float | str, stop_loss: Decimal | float | str,
                   stop_limit: Decimal | float | str | None = None, reduce_only: bool = True,
                   on_partial_fill: str | None = None,
                   ref_price: Decimal | float | str | None = None) -> OrderList:
        """A take-profit LIMIT and a stop on one ``side`` (SELL protects a long)."""
        side = b.choice(Side, side, "side")
        b.flag(reduce_only, "reduce_only")
        policy = b.choice(PartialFillPolicy, on_partial_fill or self.config.on_partial_fill,
                          "on_partial_fill")
        lid = self._new_list_id()
        tp, sl = f"{lid}.TP", f"{lid}.SL"
        c = _POLICY_CONTINGENCY[policy]
        specs = [
            OrderSpec(instrument, side, qty, OrderType.LIMIT, price=take_profit,
                      reduce_only=reduce_only, id=tp, linked=(sl,), contingency=c),
            OrderSpec(instrument, side, qty, OrderType.STOP_LIMIT if stop_limit is not None
                      else OrderType.STOP_MARKET, price=stop_limit, trigger_price=stop_loss,
                      reduce_only=reduce_only, id=sl, linked=(tp,), contingency=c),
        ]
        return self._submit(lid, specs, None, None, policy, ref_price, ListKind.OCO)

    def submit_oto(self, parent: OrderSpec, children: Sequence[OrderSpec], *,
                   oto_trigger: str | None = None) -> OrderList:
        """``parent`` releases ``children`` when it triggers; children grow with its fills."""
        lid = self._new_list_id()
        pid = f"{lid}.P" if parent.id is None else parent.id
        kid_ids = [f"{lid}.C{k}" if c.id is None else c.id for k, c in enumerate(children, 1)]
        kids = [replace(c, id=i, parent=pid) for c, i in zip(children, kid_ids, strict=True)]
        head = replace(parent, id=pid, contingency=ContingencyType.OTO, linked=tuple(kid_ids))
        return self._submit(lid, [head, *kids], None, oto_trigger, None, None)

    def _submit(self, lid: str, specs: Sequence[OrderSpec], new_id: Callable[[], str] | None,
                oto_trigger: str | None, on_partial_fill: str | None,
                ref_price: Decimal | float | str | None,
                built: ListKind | None = None) -> OrderList:
        list_code = D.ORDER_LIST_DENIED if len(specs) > 1 else None
        if self._state is TradingState.HALTED:
            raise OrderDenied(D.TRADING_HALTED, "trading state HALTED: submits are denied",
                              list_code=list_code)
        now = self.clock()
        kind, orders = plan_list(specs, self, new_id or _no_ids, now, ref_price, built)
        trigger = b.choice(OtoTrigger, oto_trigger or self.config.oto_trigger, "oto_trigger")
        policy = self._policy(kind, orders, on_partial_fill)
        if not self._submits.allow(now):
            raise OrderDenied(D.RATE_LIMIT_EXCEEDED, f"more than {self.config.max_submit_rate} "
                              "submits per window", list_code=list_code)
        return self._command(self._create, lid, kind, orders, trigger, policy)

    def _policy(self, kind: ListKind, orders: list[Order],
                requested: str | None) -> PartialFillPolicy:
        """An OCO's partial-fill policy, with its legs' FIX contingency type made to match."""
        if kind is ListKind.BRACKET:
            return _CONTINGENCY_POLICY[orders[1].contingency]
        if kind is not ListKind.OCO:
            return self.config.on_partial_fill
        policy = (b.choice(PartialFillPolicy, requested, "on_partial_fill")
                  if requested is not None
                  else _CONTINGENCY_POLICY.get(orders[0].contingency, self.config.on_partial_fill))
        for o in orders:
            o.contingency = _POLICY_CONTINGENCY[policy]
        return policy

    def _create(self, lid: str, kind: ListKind, orders: list[Order], trigger: OtoTrigger,
                policy: PartialFillPolicy) -> OrderList:
        book = self._book
        lst = OrderList(lid, kind, orders[0].instrument, tuple(o.id for o in orders),
                        oto_trigger=trigger, on_partial_fill=policy, ts_init=book.now)
        book.add_list(lst)
        for o in orders:
            o.list_id = lid
            book.add_order(o)
        rules.after_create(book, lst, orders)
        return lst

    # --- modify / cancel -------------------------------------------------------------------------

    def modify(self, order_id: str, *, qty: Decimal | float | str | None = None,
               price: Decimal | float | str | None = None,
               trigger_price: Decimal | float | str | None = None) -> Order:
        """Change size or prices. A held child changes locally (#2699); an OCO/OUO quantity
        change cascades to the sibling; a bracket exit's quantity before any entry fill resizes
        the whole bracket (after a fill exits are sized by the position: BRACKET_QTY_LOCKED)."""
        b.identifier(order_id, "order_id")
        if self._state is TradingState.HALTED:
            raise OrderDenied(D.TRADING_HALTED, "trading state HALTED: modifies are denied")
        o = self._order(order_id)
        if o.is_closed or o.status is OrderStatus.PENDING_CANCEL or o.role is Role.EXIT:
            raise OrderDenied(D.ORDER_NOT_MODIFIABLE, f"order is {o.status}", o.id)
        q, p, t = plan_modify(o, qty, price, trigger_price, self)
        lst = self._book.lists[o.list_id]
        if q != o.qty:
            self._check_resize(o, lst, q)
        if p != o.price or t != o.trigger_price:
            self._check_reprice(o, lst, p, t)
        if not self._modifies.allow(self.clock()):
            raise OrderDenied(D.RATE_LIMIT_EXCEEDED, f"more than {self.config.max_modify_rate} "
                              "modifies per window", o.id)
        return self._command(self._modify, o, lst, q, p, t)

    def _check_resize(self, o: Order, lst: OrderList, q: Decimal) -> None:
        position = self.position(o.instrument)
        if (self._state is TradingState.REDUCING and q > o.qty and not o.reduce_only
                and position * o.side.sign >= 0):
            raise OrderDenied(D.TRADING_STATE_REDUCING, "a larger order adds exposure", o.id)
        if lst.kind is ListKind.BRACKET and o.role in EXIT_ROLES:
            entry = self._book.orders[lst.order_ids[0]]
            if lst.released or entry.filled_qty > 0:
                raise OrderDenied(D.BRACKET_QTY_LOCKED, "exits are sized by the open position; "
                                  "trade the position to change them", o.id)
            if not entry.is_working:  # resizing a held exit resizes the entry at the venue
                raise OrderDenied(D.ORDER_NOT_MODIFIABLE, f"the bracket's entry {entry.id} is "
                                  f"{entry.status}", o.id)
            ref = entry.price or entry.trigger_price or self.ref_price(o.instrument)
            if ref is not None:
                check_notional(self.instruments[o.instrument], q, ref, False, entry.id)

    def _check_reprice(self, o: Order, lst: OrderList, p: Decimal | None,
                       t: Decimal | None) -> None:
        legs = self._book.legs(lst)

        def price(x: Order) -> Decimal | None:
            return p if x is o else x.price

        def trigger(x: Order) -> Decimal | None:
            return t if x is o else x.trigger_price

        exits = {x.role: x for x in legs if x.role in (Role.TAKE_PROFIT, Role.STOP_LOSS)
                 and not x.is_closed}
        if len(exits) < 2 or o.role not in (Role.ENTRY, Role.TAKE_PROFIT, Role.STOP_LOSS):
            return
        tp, sl = exits[Role.TAKE_PROFIT], exits[Role.STOP_LOSS]
        distance = min_distance(self, o.instrument)
        entry = legs[0]
        if lst.kind is ListKind.BRACKET and not lst.released and entry.filled_qty == 0:
            e = price(entry) or trigger(entry) or self.ref_price(o.instrument)
            if e is None:
                raise OrderDenied(D.NO_REFERENCE_PRICE, f"no last price for {o.instrument}", o.id)
            check_bracket_prices(entry.side, e, price(tp), trigger(sl), distance, o.id)
        elif o.role is not Role.ENTRY:
            ref = self.ref_price(o.instrument)
            if ref is None:
                raise OrderDenied(D.NO_REFERENCE_PRICE, f"no last price for {o.instrument}", o.id)
            check_oco_prices(tp.side, price(tp), trigger(sl), ref, distance, o.id)

    def _modify(self, o: Order, lst: OrderList, q: Decimal, p: Decimal | None,
                t: Decimal | None) -> Order:
        book = self._book
        qty_changed = q != o.qty
        book.reprice(o, p, t)
        book.resize(o, q)
        if o.planned_qty is not None:
            o.planned_qty = q  # an OTO child's new full size
        rules.after_modify(book, lst, o, qty_changed)
        return o

    def cancel(self, order_id: str) -> None:
        """Cancel one order; HALTED lets it through. Idempotent: a retry re-sends the request.

        An OCO leg or a bracket exit cancels its whole list (cancel one = cancel the rest, as
        Binance lists); a bracket/OTO entry cancels only its remainder, and its children then
        follow the parent rules (cancelled if nothing filled, else resized and kept).
        """
        o = self._order(order_id)
        if o.is_closed:
            return
        lst = self._list_of(o)
        if rules.cancels_whole_list(lst, o):
            self.cancel_list(lst.id)
            return
        self._command(self._book.cancel, o, "canceled by request")

    def cancel_list(self, list_id: str) -> None:
        """All legs to PENDING_CANCEL (held legs straight to CANCELED) in one transition.
        Idempotent: a retry changes nothing and re-sends the cancels still outstanding."""
        lst = self._list(list_id)
        if not lst.is_closed:
            self._command(self._cancel_list, lst)

    def _cancel_list(self, lst: OrderList) -> None:
        book = self._book
        if not lst.cancel_requested:
            book.touch_list(lst)
            lst.cancel_requested = True
        for o in book.legs(lst):
            book.cancel(o, "list canceled by request")

    # --- venue events ----------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Handle one venue event (queued if it arrives while a step is running). An event that
        cannot be true raises ``VenueEventRejected`` and changes nothing (``event_checks``)."""
        self._queue.append(event)
        if not self._busy:
            self._drain()

    def on_accepted(self, order_id: str, ts: int | None = None) -> None:
        self.apply(OrderAccepted(order_id, ts))

    def on_fill(self, order_id: str, qty: Decimal | float | str, price: Decimal | float | str,
                ts: int | None = None, trade_id: str | None = None,
                fee: Decimal | float | str = 0, liquidity: str = "TAKER",
                leaves: Decimal | float | str | None = None) -> None:
        """A partial or full fill (the status follows from the cumulative quantity, or from the
        venue's ``leaves`` when it reports them)."""
        # the values are converted (and checked) by event_checks.screen
        self.apply(OrderFilled(order_id, qty, price, ts, trade_id, fee,  # type: ignore[arg-type]
                               liquidity, leaves))  # type: ignore[arg-type]

    def on_canceled(self, order_id: str, ts: int | None = None) -> None:
        self.apply(OrderCanceled(order_id, ts))

    def on_expired(self, order_id: str, ts: int | None = None) -> None:
        self.apply(OrderExpired(order_id, ts))

    def on_rejected(self, order_id: str, reason: str = "", ts: int | None = None) -> None:
        self.apply(OrderRejected(order_id, reason, ts))

    def on_position(self, instrument: str, qty: Decimal | float | str,
                    ts: int | None = None) -> None:
        """The venue's net position changed outside this manager (manual close, liquidation)."""
        self.apply(PositionChanged(instrument, qty, ts))  # type: ignore[arg-type]

    def _drain(self) -> None:
        """Handle the queued events in order. An event ``event_checks`` refuses changes nothing
        and does not stop the others; the first refusal is raised once the queue is empty (any
        later ones ride along in its ``also``)."""
        self._busy = True
        refused: list[Exception] = []
        try:
            while self._queue:
                raw = self._queue.popleft()
                try:
                    event = screen(self._book, raw)
                except (VenueEventRejected, TypeError) as exc:
                    refused.append(exc)
                    continue
                if event is not None:
                    _HANDLERS[type(event)](self, event)
        finally:
            self._busy = False
        if refused:
            first = refused[0]
            if isinstance(first, VenueEventRejected):
                first.also = refused[1:]
            raise first

    def _handle_accepted(self, ev: OrderAccepted) -> None:
        self._transact(self._accept, self._book.orders[ev.order_id])

    def _accept(self, o: Order) -> None:
        self._book.set_status(o, OrderStatus.ACCEPTED)
        rules.mark_working(self._book, self._list_of(o))

    def _handle_fill(self, ev: OrderFilled) -> None:
        self._transact(self._fill, self._book.orders[ev.order_id], ev)

    def _fill(self, o: Order, ev: OrderFilled) -> None:
        book = self._book
        book.add_fill(o, ev.qty, ev.price, ev.fee, ev.trade_id,
                      ev.ts if ev.ts is not None else book.now)
        # the venue completed the order at the size it had: an upsize still in flight never
        # reached it (it arrives for an order the venue no longer has)
        cut_short = ev.leaves is not None and ev.leaves <= 0 and o.filled_qty < o.qty
        if o.filled_qty >= o.qty or cut_short:
            o.qty = o.filled_qty  # the size it traded, also one a downsize in flight missed
            book.set_status(o, OrderStatus.FILLED)
        elif o.status in (OrderStatus.PENDING, OrderStatus.ACCEPTED):
            book.set_status(o, OrderStatus.PARTIALLY_FILLED)
        rules.after_fill(book, self._list_of(o), o, ev.qty, cut_short)

    def _handle_canceled(self, ev: OrderCanceled) -> None:
        o = self._book.orders[ev.order_id]
        solicited = o.status is OrderStatus.PENDING_CANCEL
        self._transact(self._closed, o, OrderStatus.CANCELED, solicited,
                       None if solicited else "canceled by the venue")

    def _handle_expired(self, ev: OrderExpired) -> None:
        self._transact(self._closed, self._book.orders[ev.order_id], OrderStatus.EXPIRED, False,
                       "expired")

    def _closed(self, o: Order, status: OrderStatus, solicited: bool, reason: str | None) -> None:
        self._book.set_status(o, status, reason)
        rules.after_close(self._book, self._list_of(o), o, solicited)

    def _handle_rejected(self, ev: OrderRejected) -> None:
        self._transact(self._reject, self._book.orders[ev.order_id], ev.reason)

    def _reject(self, o: Order, reason: str) -> None:
        self._book.set_status(o, OrderStatus.REJECTED, reason or "rejected by the venue")
        rules.after_reject(self._book, self._list_of(o), o)

    def _handle_position(self, ev: PositionChanged) -> None:
        self._transact(self._position, ev.instrument, ev.qty)

    def _position(self, instrument: str, qty: Decimal) -> None:
        self._book.set_position(instrument, qty)
        rules.reconcile(self._book, instrument)

    # --- transactions ----------------------------------------------------------------------------

    def _command(self, fn: Callable, *args):
        if self._busy:
            raise RuntimeError("a venue called back into the manager with a command; "
                               "venues report through apply(event) only")
        self._busy = True
        try:
            result = self._transact(fn, *args)
        finally:
            self._busy = False
        if self._queue:
            self._drain()
        return result

    def _transact(self, fn: Callable, *args):
        """Run ``fn`` as one transaction: derive list statuses, commit, then talk to the venue."""
        book = self._book
        book.begin()
        try:
            result = fn(*args)
            for lst in book.dirty_lists():
                rules.settle(book, lst)
            outbox = book.commit()
        except BaseException:
            book.rollback()
            raise
        self._sent = book.flush(outbox)
        return result

    def _rearm(self, positions: Mapping[str, Decimal]) -> None:
        book = self._book
        for instrument, qty in positions.items():
            book.set_position(instrument, qty)
        for lst in list(book.lists.values()):
            if not lst.is_closed:
                rules.sync(book, lst)
        for instrument in {*book.positions, *book.live, *book.brackets}:
            rules.reconcile(book, instrument)

    def resend(self, skip: set[str] | frozenset[str] = frozenset()) -> set[str]:
        """Re-send the desired state of every live venue order (after a venue outage or a
        restart); the venue contract makes this idempotent. Returns the ids sent."""
        book = self._book
        book.now = self.clock()
        return book.flush(book.resend_intents(set(skip)))

    # --- helpers ---------------------------------------------------------------------------------

    def _order(self, order_id: str) -> Order:
        o = self._book.orders.get(b.identifier(order_id, "order_id"))
        if o is None:
            raise OrderDenied(D.ORDER_NOT_FOUND, f"no order {order_id!r}", order_id)
        return o

    def _list(self, list_id: str) -> OrderList:
        lst = self._book.lists.get(b.identifier(list_id, "list_id"))
        if lst is None:
            raise OrderDenied(D.ORDER_NOT_FOUND, f"no order list {list_id!r}")
        return lst

    def _list_of(self, o: Order) -> OrderList:
        return self._book.lists[o.list_id]

    def _instrument(self, instrument: str) -> Instrument:
        inst = self.instruments.get(b.identifier(instrument, "instrument"))
        if inst is None:
            raise OrderDenied(D.UNKNOWN_INSTRUMENT, f"no instrument {instrument!r}")
        return inst

    def _new_list_id(self) -> str:
        n, self._next = self._next, self._next + 1
        return f"{self.config.id_prefix}{n}"


def _number(prefix: str, list_id: str) -> int:
    m = re.fullmatch(re.escape(prefix) + r"(\d+)", list_id)
    return int(m.group(1)) if m else 0


def _no_ids() -> str:
    raise OrderDenied(D.INVALID_ORDER, "every order of this list needs an id")


_HANDLERS: dict[type, Callable[[OrderManager, Any], None]] = {
    OrderAccepted: OrderManager._handle_accepted,
    OrderFilled: OrderManager._handle_fill,
    OrderCanceled: OrderManager._handle_canceled,
    OrderExpired: OrderManager._handle_expired,
    OrderRejected: OrderManager._handle_rejected,
    PositionChanged: OrderManager._handle_position,
}

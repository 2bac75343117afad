"""The manager's in-memory state, its transaction and its outbox.

One command or venue event = one transaction: every order, list and position it touches is
marked dirty, written to the store in one commit, and only then are the venue requests it queued
(the outbox) sent. If anything fails before the commit the in-memory state is rebuilt from the
store, which still holds the state before the change: there is no half-applied command, and the
venue never sees a request the store does not explain (a transactional outbox).

Requests are queued as intents per order and built from the order's final state at flush time, so
a leg that is released and resized in one step is submitted once at its final size, and a leg
released and cancelled in one step never reaches the venue.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from decimal import Decimal

from .lifecycle import ORDER_STATE_TABLE, IllegalTransition
from .orders import (
    ZERO,
    Instrument,
    ListKind,
    Order,
    OrderList,
    OrderStatus,
    Role,
    Side,
)
from .store import FillRow, OrderStore, Snapshot
from .venue import CancelOrder, ModifyOrder, SubmitOrder, Venue


class Intent(enum.Enum):
    SUBMIT = 1
    RESUBMIT = 2  # after a restart: the venue may or may not have it (idempotent by id)
    MODIFY = 3
    CANCEL = 4


class VenueError(RuntimeError):
    """Some requests could not be sent; state is committed, ``resend()`` retries them."""

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        self.failures = failures
        super().__init__(f"{len(failures)} venue request(s) failed: {failures[0][1]!r}")


class _Txn:
    __slots__ = ("fills", "lists", "orders", "outbox", "positions")

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.lists: dict[str, OrderList] = {}
        self.positions: set[str] = set()
        self.fills: list[FillRow] = []
        self.outbox: dict[str, Intent] = {}


NO_TXN = _Txn.__new__(_Txn)
"""Outside a transaction: its slots are unset, so any change made without ``begin()`` fails."""


class Book:
    """Orders, lists, positions and the indexes the rules need, kept in step with the store."""

    def __init__(self, store: OrderStore, venue: Venue, clock: Callable[[], int],
                 instruments: dict[str, Instrument]) -> None:
        self.store = store
        self.instruments = instruments
        self.venue = venue
        self.clock = clock
        self.orders: dict[str, Order] = {}
        self.lists: dict[str, OrderList] = {}
        self.positions: dict[str, Decimal] = {}
        self.trade_keys: set[tuple[str, str]] = set()
        self.live: dict[str, dict[str, Order]] = {}  # instrument -> non-terminal orders
        self.guards: dict[str, dict[str, Order]] = {}  # non-terminal reduce-only, not brackets
        self.brackets: dict[str, dict[str, OrderList]] = {}  # FIFO: live or still exposed
        self.exposure: dict[str, Decimal] = {}  # instrument -> open qty of its indexed brackets
        self.txn = NO_TXN
        self.now = 0

    # --- loading ---------------------------------------------------------------------------------

    def load(self, snapshot: Snapshot) -> None:
        """Replace the state in place (read-only views of these dicts stay valid)."""
        self.orders.clear()
        self.orders.update((k, Order.from_row(r)) for k, r in snapshot.orders.items())
        self.lists.clear()
        self.lists.update((k, OrderList.from_row(r)) for k, r in snapshot.lists.items())
        self.positions.clear()
        self.positions.update(snapshot.positions)
        self.trade_keys = set(snapshot.trade_keys)
        self._reindex()

    def _reindex(self) -> None:
        self.live, self.guards, self.brackets, self.exposure = {}, {}, {}, {}
        # creation order (FIFO allotment depends on it): generated ids grow in length, then text
        for lst in sorted(self.lists.values(), key=lambda x: (x.ts_init, len(x.id), x.id)):
            if lst.kind is ListKind.BRACKET:
                self.brackets.setdefault(lst.instrument, {})[lst.id] = lst
                self.exposure[lst.instrument] = (self.exposure.get(lst.instrument, ZERO)
                                                 + self.bracket_open(lst))
        for o in self.orders.values():
            self._index(o)

    def _index(self, o: Order) -> None:
        if o.is_closed:
            return
        self.live.setdefault(o.instrument, {})[o.id] = o
        if o.reduce_only and self.lists[o.list_id].kind is not ListKind.BRACKET:
            self.guards.setdefault(o.instrument, {})[o.id] = o

    def rows(self) -> Snapshot:
        """The in-memory state as store rows (what the store must hold after every commit)."""
        return Snapshot({k: o.row() for k, o in self.orders.items()},
                        {k: x.row() for k, x in self.lists.items()},
                        dict(self.positions), set(self.trade_keys))

    # --- transaction -----------------------------------------------------------------------------

    def begin(self) -> None:
        self.txn = _Txn()
        self.now = self.clock()

    def touch(self, o: Order) -> None:
        """Mark ``o`` dirty; call before changing it."""
        self.txn.orders[o.id] = o
        o.ts_last = self.now

    def touch_list(self, lst: OrderList) -> None:
        self.txn.lists[lst.id] = lst
        lst.ts_last = self.now

    def commit(self) -> dict[str, Intent]:
        """Write the dirty state in one store transaction; return the outbox to flush."""
        txn = self.txn
        for oid, intent in txn.outbox.items():
            if intent is not Intent.CANCEL:
                self._widen_venue_terms(self.orders[oid])
        self.txn = NO_TXN
        if txn.orders or txn.lists or txn.positions or txn.fills:
            self.store.commit([o.row() for o in txn.orders.values()],
                              [x.row() for x in txn.lists.values()],
                              [(i, self.positions[i]) for i in txn.positions], txn.fills)
        return txn.outbox

    def _widen_venue_terms(self, o: Order) -> None:
        """Remember the largest size and loosest limit sent: what the venue may still fill at."""
        qty = o.qty if o.venue_qty is None or o.qty > o.venue_qty else o.venue_qty
        price = o.venue_price
        if o.price is not None and (price is None or (o.price > price if o.side is Side.BUY
                                                      else o.price < price)):
            price = o.price
        if (qty, price) != (o.venue_qty, o.venue_price):
            self.touch(o)
            o.venue_qty, o.venue_price = qty, price

    def rollback(self) -> None:
        """Forget the in-memory changes: the store still has the last committed state."""
        self.txn = NO_TXN
        self.load(self.store.load())

    def dirty_lists(self) -> list[OrderList]:
        txn = self.txn
        seen = dict(txn.lists)
        for o in txn.orders.values():
            if o.list_id not in seen:
                seen[o.list_id] = self.lists[o.list_id]
        return list(seen.values())

    # --- changes ---------------------------------------------------------------------------------

    def add_order(self, o: Order) -> None:
        self.orders[o.id] = o
        self.touch(o)
        self._index(o)

    def add_list(self, lst: OrderList) -> None:
        self.lists[lst.id] = lst
        self.touch_list(lst)
        if lst.kind is ListKind.BRACKET:
            self.brackets.setdefault(lst.instrument, {})[lst.id] = lst
            self.exposure.setdefault(lst.instrument, ZERO)

    def set_status(self, o: Order, status: OrderStatus, reason: str | None = None) -> None:
        """The one place statuses change; ``ORDER_STATE_TABLE`` says which changes exist."""
        if status not in ORDER_STATE_TABLE[o.status]:
            raise IllegalTransition(o.id, o.status, status)
        self.touch(o)
        o.status = status
        if reason is not None:
            o.reason = reason
        if o.is_closed:
            self.live.get(o.instrument, {}).pop(o.id, None)
            self.guards.get(o.instrument, {}).pop(o.id, None)

    def add_fill(self, o: Order, qty: Decimal, price: Decimal, fee: Decimal,
                 trade_id: str | None, ts: int) -> None:
        self.touch(o)
        total = o.filled_qty + qty
        o.avg_price = price if o.avg_price is None else (
            (o.avg_price * o.filled_qty + price * qty) / total)
        o.filled_qty = total
        self.move_position(o.instrument, qty * o.side.sign)
        if self.lists[o.list_id].kind is ListKind.BRACKET:
            self.exposure[o.instrument] += qty if o.role is Role.ENTRY else -qty
        self.txn.fills.append((o.id, trade_id, qty, price, fee, ts))
        if trade_id is not None:
            self.trade_keys.add((o.id, trade_id))

    def resize(self, o: Order, qty: Decimal) -> None:
        """Set ``o``'s total size and queue the venue modify (a held order changes locally)."""
        if not qty > o.filled_qty:
            raise ValueError(f"order {o.id}: size {qty} must exceed what traded ({o.filled_qty})")
        self.touch(o)
        o.qty = qty
        self.modify(o)

    def reprice(self, o: Order, price: Decimal | None, trigger: Decimal | None) -> None:
        """Set ``o``'s limit and trigger prices and queue the venue modify."""
        self.touch(o)
        o.price, o.trigger_price = price, trigger
        self.modify(o)

    def reduce_bracket(self, lst: OrderList, qty: Decimal) -> None:
        """Count ``qty`` of the bracket's position as closed outside its own exits."""
        self.touch_list(lst)
        lst.reduced_qty += qty
        self.exposure[lst.instrument] -= qty

    def move_position(self, instrument: str, delta: Decimal) -> None:
        self.set_position(instrument, self.positions.get(instrument, ZERO) + delta)

    def set_position(self, instrument: str, qty: Decimal) -> None:
        self.positions[instrument] = qty
        self.txn.positions.add(instrument)

    # --- outbox ----------------------------------------------------------------------------------

    def submit(self, o: Order) -> None:
        self.set_status(o, OrderStatus.PENDING)
        self.txn.outbox[o.id] = Intent.SUBMIT

    def modify(self, o: Order) -> None:
        """Queue a venue modify for ``o``'s current values (a held order changes locally)."""
        if o.status is OrderStatus.INITIALIZED or o.id in self.txn.outbox:
            return  # a pending submit carries the final values; a cancel wins
        self.txn.outbox[o.id] = Intent.MODIFY

    def cancel(self, o: Order, reason: str) -> None:
        """Cancel ``o``: locally if the venue never saw it, else PENDING_CANCEL + a request."""
        if o.is_closed:
            return
        if o.status is OrderStatus.INITIALIZED or self.txn.outbox.get(o.id) is Intent.SUBMIT:
            self.txn.outbox.pop(o.id, None)
            self.set_status(o, OrderStatus.CANCELED, reason)
            return
        if o.status is not OrderStatus.PENDING_CANCEL:
            self.set_status(o, OrderStatus.PENDING_CANCEL, reason)
        self.txn.outbox[o.id] = Intent.CANCEL

    def flush(self, outbox: dict[str, Intent]) -> set[str]:
        """Send the committed intents; every one is attempted even if some fail."""
        venue, now = self.venue, self.now
        sent: set[str] = set()
        failures: list[tuple[str, BaseException]] = []
        for oid, intent in outbox.items():
            o = self.orders[oid]
            try:
                if intent is Intent.CANCEL:
                    venue.cancel(CancelOrder(oid, o.instrument, now))
                elif o.status is OrderStatus.PENDING and intent is not Intent.MODIFY:
                    venue.submit(SubmitOrder.of(o, now))
                elif o.is_working:
                    venue.modify(ModifyOrder.of(o, now))
                else:
                    continue
                sent.add(oid)
            except Exception as exc:  # any venue failure: all are reported together below
                failures.append((oid, exc))
        if failures:
            raise VenueError(failures)
        return sent

    def resend_intents(self, skip: set[str]) -> dict[str, Intent]:
        """The desired state of every live venue order, for a venue that may have missed it."""
        out: dict[str, Intent] = {}
        for group in self.live.values():
            for o in group.values():
                if o.id in skip or o.status is OrderStatus.INITIALIZED:
                    continue
                out[o.id] = (Intent.CANCEL if o.status is OrderStatus.PENDING_CANCEL
                             else Intent.RESUBMIT if o.status is OrderStatus.PENDING
                             else Intent.MODIFY)
        return out

    # --- queries ---------------------------------------------------------------------------------

    def legs(self, lst: OrderList) -> list[Order]:
        return list(map(self.orders.__getitem__, lst.order_ids))

    def bracket_open(self, lst: OrderList) -> Decimal:
        """What a bracket still holds: entry filled - exit fills - reductions from outside."""
        orders = self.orders
        ids = lst.order_ids
        exits = ZERO
        for i in ids[1:]:
            exits += orders[i].filled_qty
        return orders[ids[0]].filled_qty - exits - lst.reduced_qty

    def bracket_side(self, lst: OrderList) -> Side:
        return self.orders[lst.order_ids[0]].side

    def is_dead(self, lst: OrderList) -> bool:
        """Closed and holding nothing: no longer part of the instrument's bracket exposure."""
        return lst.is_closed and self.bracket_open(lst) <= 0

    def unindex_bracket(self, lst: OrderList) -> None:
        del self.brackets[lst.instrument][lst.id]
        self.exposure[lst.instrument] -= self.bracket_open(lst)

    def oldest_bracket(self, instrument: str) -> OrderList | None:
        """The oldest bracket that is live or still exposed (dead ones in front are dropped).
        Brackets of both sides never coexist, so its side is every exposed bracket's side."""
        brackets = self.brackets.get(instrument)
        while brackets:
            lst = next(iter(brackets.values()))
            if not self.is_dead(lst):
                return lst
            self.unindex_bracket(lst)
        return None

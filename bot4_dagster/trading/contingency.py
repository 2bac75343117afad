"""What one order's event does to the rest of its list (reference/trading.md §1.4).

The manager changes one order (a fill, a close, a reject, a modify) and hands the list to the
``after_*`` reaction of this module, which knows each list kind's rules; every size change goes
through ``Book.resize`` and every status change through ``Book.set_status``.

Brackets are kept by one rule instead of a chain of incremental updates: the bracket's open
quantity is ``entry filled - exit fills - reduced`` and every working exit's leaves equal it.
Re-deriving the target from state on every event is what keeps children right when parent fills
arrive faster than modify acknowledgements (Nautilus #3435), and it makes the invariant
"protective leaves == open position" hold after every event by construction.

- Parent rejected => held children DENIED, never sent. Parent cancelled/expired with 0 filled =>
  children cancelled; with q > 0 filled => children released/resized to q (never unprotected).
- A bracket whose exits (or outside reductions) closed its position is finished: the entry's
  remainder is cancelled, because a later entry fill would open a position whose exits are gone.
  A fill that races that cancel is honoured and flattened by a reduce-only market EXIT.
- An exit rejected or cancelled by the venue while the bracket holds a position is re-submitted
  once; if that fails too, the bracket is flattened at market (Freqtrade ``emergency_exit``). An
  exit the venue finished at its old size while an upsize was in flight counts as lost too.
- Outside position changes are allotted to brackets FIFO (oldest first), their exits downsized,
  and reduce-only orders outside brackets are capped at the position or cancelled when flat. An
  exit fill beyond its own bracket's holding (a race on a net position) counts as such a change.
"""

from __future__ import annotations

from decimal import Decimal

from .book import Book
from .boundary import CONTEXT
from .orders import (
    EXIT_ROLES,
    TERMINAL,
    WORKING,
    ZERO,
    ListKind,
    ListStatus,
    Order,
    OrderList,
    OrderStatus,
    OrderType,
    OtoTrigger,
    PartialFillPolicy,
    Role,
)


def _parent_died(book: Book, parent: Order, children: list[Order]) -> bool:
    """A parent closed with nothing filled takes its children with it."""
    if not (parent.is_closed and parent.filled_qty == 0):
        return False
    for c in children:
        book.cancel(c, f"parent {parent.id} {parent.status.value.lower()} with nothing filled")
    return True


def _triggered(parent: Order, mode: OtoTrigger) -> bool:
    if parent.filled_qty <= 0:
        return False
    return (mode is OtoTrigger.PARTIAL or parent.status is OrderStatus.FILLED
            or parent.is_closed)


# --- brackets ------------------------------------------------------------------------------------

def sync_bracket(book: Book, lst: OrderList) -> None:
    """Bring a bracket's exits in line with its entry and open quantity."""
    orders = book.orders
    entry = orders[lst.order_ids[0]]
    exits = [orders[i] for i in lst.order_ids[1:]]
    open_qty = book.bracket_open(lst)
    if open_qty < 0:
        # a racing exit fill closed more than this bracket held: with net positions the excess
        # closed another bracket's exposure, which the FIFO allotment then takes from it
        book.reduce_bracket(lst, open_qty)
        open_qty = ZERO
    if entry.filled_qty > 0 and open_qty <= 0:
        for o in (entry, *exits):
            book.cancel(o, "bracket position closed")
        return
    if not lst.released:
        _hold_or_release(book, lst, entry, exits, open_qty)
        if not lst.released:
            return
    for x in exits:
        if x.status in WORKING:
            target = x.filled_qty + open_qty
            if x.qty != target:
                book.resize(x, target)
    if (open_qty > 0 and not lst.cancel_requested
            and not any(x.status in WORKING for x in exits)):
        add_exit(book, lst, open_qty, "position without a working exit")


def _hold_or_release(book: Book, lst: OrderList, entry: Order, exits: list[Order],
                     open_qty: Decimal) -> None:
    if lst.cancel_requested or _parent_died(book, entry, exits):
        return
    if not _triggered(entry, lst.oto_trigger):
        for c in exits:  # held children follow the entry's size until released
            if c.status is OrderStatus.INITIALIZED and c.qty != entry.qty:
                book.resize(c, entry.qty)
        return
    book.touch_list(lst)
    lst.released = True
    for c in exits:
        if c.status is OrderStatus.INITIALIZED:
            book.resize(c, open_qty)
            book.submit(c)


def add_exit(book: Book, lst: OrderList, qty: Decimal, reason: str) -> Order:
    """A reduce-only market order that flattens what the bracket still holds."""
    entry = book.orders[lst.order_ids[0]]
    o = Order(f"{lst.id}-X{len(lst.order_ids)}", entry.instrument, entry.side.opposite,
              OrderType.MARKET, qty, reduce_only=True, list_id=lst.id, role=Role.EXIT,
              venue=entry.venue, reason=reason, ts_init=book.now)
    book.add_order(o)
    book.touch_list(lst)
    lst.order_ids = (*lst.order_ids, o.id)
    book.submit(o)
    return o


def lost_exit(book: Book, lst: OrderList, x: Order) -> None:
    """An exit the venue rejected or cancelled on its own: retry once, then flatten."""
    open_qty = book.bracket_open(lst)
    if open_qty <= 0 or lst.cancel_requested or not lst.released:
        return
    if x.role is not Role.EXIT and x.retry_of is None:
        _retry(book, lst, x, open_qty)
        return
    for o in book.legs(lst):
        if o is not x and o.role is not Role.EXIT:
            book.cancel(o, f"emergency exit after {x.id} failed twice")
    if not any(o.role is Role.EXIT and o.status in WORKING for o in book.legs(lst)):
        add_exit(book, lst, open_qty, f"{x.id} {x.status.value.lower()}: {x.reason or ''}")


def _retry(book: Book, lst: OrderList, x: Order, qty: Decimal) -> None:
    r = Order(f"{x.id}-R", x.instrument, x.side, x.type, qty, x.price, x.trigger_price,
              x.reduce_only, parent_id=x.parent_id, linked_ids=x.linked_ids, list_id=lst.id,
              contingency=x.contingency, role=x.role, venue=x.venue, retry_of=x.id,
              ts_init=book.now)
    book.add_order(r)
    for oid in x.linked_ids if x.parent_id is None else (*x.linked_ids, x.parent_id):
        other = book.orders[oid]
        book.touch(other)
        other.linked_ids = tuple(r.id if i == x.id else i for i in other.linked_ids)
    book.touch_list(lst)
    lst.order_ids = (*lst.order_ids, r.id)
    book.submit(r)


def deny_children(book: Book, parent: Order, children: list[Order]) -> None:
    for c in children:
        if c.status is OrderStatus.INITIALIZED:
            book.set_status(c, OrderStatus.DENIED,
                            f"parent {parent.id} rejected: {parent.reason or 'no reason'}")


# --- OTO -----------------------------------------------------------------------------------------

def sync_oto(book: Book, lst: OrderList) -> None:
    """Children are released when the parent triggers and grow with its fills (planned share)."""
    parent, *children = book.legs(lst)
    if lst.cancel_requested or _parent_died(book, parent, children):
        return
    if not _triggered(parent, lst.oto_trigger):
        return
    for c in children:
        if c.is_closed or c.status is OrderStatus.PENDING_CANCEL:
            continue
        assert c.planned_qty is not None  # set for every OTO child at submit
        target = _share(book, c, c.planned_qty, parent.filled_qty, parent.qty)
        if target <= c.qty and c.status is not OrderStatus.INITIALIZED:
            continue
        if target <= 0:
            continue
        book.resize(c, target)
        if c.status is OrderStatus.INITIALIZED:
            if not lst.released:
                book.touch_list(lst)
                lst.released = True
            book.submit(c)


def _share(book: Book, o: Order, size: Decimal, num: Decimal, den: Decimal) -> Decimal:
    """size·num/den rounded down to the step, in CONTEXT: the product is exact and the quotient
    floors, so a proportional size never rounds up (the default context rounds half-even)."""
    return book.instruments[o.instrument].round_qty(
        CONTEXT.divide(CONTEXT.multiply(size, num), den))


# --- OCO -----------------------------------------------------------------------------------------

def oco_fill(book: Book, lst: OrderList, o: Order, qty: Decimal) -> None:
    policy = lst.on_partial_fill
    siblings = [s for s in book.legs(lst) if s is not o and not s.is_closed]
    if o.status is OrderStatus.FILLED or policy is PartialFillPolicy.CANCEL_SIBLINGS:
        for s in siblings:
            book.cancel(s, f"OCO sibling {o.id} filled")
        return
    if policy is PartialFillPolicy.NONE:
        return
    for s in siblings:
        if s.status not in WORKING:
            continue
        if policy is PartialFillPolicy.REDUCE_ABSOLUTE:
            leaves = s.leaves - qty
        else:  # leaves − qty·s.qty/o.qty = (leaves·o.qty − qty·s.qty)/o.qty, floored
            leaves = _share(book, s, CONTEXT.subtract(CONTEXT.multiply(s.leaves, o.qty),
                                                     CONTEXT.multiply(qty, s.qty)),
                            Decimal(1), o.qty)
        if leaves <= 0:
            book.cancel(s, f"OUO sibling {o.id} filled its quantity")
        else:
            book.resize(s, s.filled_qty + leaves)


def oco_closed(book: Book, lst: OrderList, o: Order) -> None:
    """Cancel one = cancel the rest, unless a leg already traded (then the OCO has fired)."""
    legs = book.legs(lst)
    if any(x.filled_qty > 0 for x in legs):
        return
    for s in legs:
        if s is not o:
            book.cancel(s, f"OCO sibling {o.id} {o.status.value.lower()}")


# --- positions -----------------------------------------------------------------------------------

def reconcile(book: Book, instrument: str) -> None:
    """Keep exits inside the position after any position change (fills, outside changes)."""
    _allot_brackets(book, instrument, book.positions.get(instrument, ZERO))
    cap_guards(book, instrument)


def cap_guards(book: Book, instrument: str) -> None:
    """Reduce-only orders outside brackets: at most the position, cancelled when flat."""
    guards = book.guards.get(instrument)
    if not guards:
        return
    position = book.positions.get(instrument, ZERO)
    for o in list(guards.values()):
        if o.status not in WORKING:
            continue
        if position * o.side.sign >= 0:
            book.cancel(o, "reduce-only order with nothing left to reduce")
        elif o.leaves > abs(position):
            book.resize(o, o.filled_qty + abs(position))


def _allot_brackets(book: Book, instrument: str, position: Decimal) -> None:
    """Brackets may hold at most the position on their side; the excess is closed FIFO.

    O(1) when nothing is in excess (the usual case: the cached exposure is compared with the
    position), O(open brackets) otherwise.
    """
    oldest = book.oldest_bracket(instrument)
    if oldest is None:
        return
    side = book.bracket_side(oldest)
    cap = position * side.sign if position * side.sign > 0 else ZERO
    excess = book.exposure[instrument] - cap
    if excess <= 0:
        return
    for lst in list(book.brackets[instrument].values()):  # oldest exposure is closed first
        if excess <= 0:
            break
        open_qty = book.bracket_open(lst)
        if open_qty <= 0:
            if lst.is_closed:
                book.unindex_bracket(lst)
            continue
        cut = min(open_qty, excess)
        excess -= cut
        book.reduce_bracket(lst, cut)
        sync_bracket(book, lst)


def sync(book: Book, lst: OrderList) -> None:
    if lst.kind is ListKind.BRACKET:
        sync_bracket(book, lst)
    elif lst.kind is ListKind.OTO:
        sync_oto(book, lst)



# --- reactions per list kind (what the manager calls after changing one order) -------------------

def after_create(book: Book, lst: OrderList, orders: list[Order]) -> None:
    """Send what goes out at once: an OTO or bracket parent alone (its children are held), every
    leg of the other kinds; a reduce-only leg outside a bracket never exceeds the position."""
    held = lst.kind in (ListKind.BRACKET, ListKind.OTO)
    for o in orders[:1] if held else orders:
        book.submit(o)
    if lst.kind is not ListKind.BRACKET:
        for instrument in {o.instrument for o in orders if o.reduce_only}:
            cap_guards(book, instrument)


def cancels_whole_list(lst: OrderList, o: Order) -> bool:
    """Cancel one = cancel the rest for an OCO leg and a bracket exit (Binance lists); an entry
    cancels only its remainder and its children follow the parent rules."""
    return lst.kind is ListKind.OCO or (lst.kind is ListKind.BRACKET and o.role in EXIT_ROLES)


def after_fill(book: Book, lst: OrderList, o: Order, qty: Decimal, cut_short: bool) -> None:
    """``o`` traded ``qty``; ``cut_short``: the venue completed it below its current size."""
    if not lst.is_closed:
        mark_working(book, lst)
        if lst.kind is ListKind.BRACKET:
            if cut_short and o.role is not Role.ENTRY:
                lost_exit(book, lst, o)  # its side of the bracket is re-placed
            sync_bracket(book, lst)
        elif lst.kind is ListKind.OCO:
            oco_fill(book, lst, o, qty)
        elif lst.kind is ListKind.OTO and o.role is Role.ENTRY:
            sync_oto(book, lst)
    reconcile(book, o.instrument)


def after_close(book: Book, lst: OrderList, o: Order, solicited: bool) -> None:
    """``o`` was cancelled or expired (``solicited``: we asked for the cancel)."""
    if lst.kind is ListKind.BRACKET:
        if o.role is not Role.ENTRY and not solicited:
            lost_exit(book, lst, o)
        sync_bracket(book, lst)
    elif lst.kind is ListKind.OCO:
        oco_closed(book, lst, o)
    elif lst.kind is ListKind.OTO and o.role is Role.ENTRY:
        sync_oto(book, lst)


def after_reject(book: Book, lst: OrderList, o: Order) -> None:
    """``o`` was rejected by the venue: a bracket exit is retried; anything else ends the list."""
    if lst.kind is ListKind.BRACKET and o.role is not Role.ENTRY:
        lost_exit(book, lst, o)
        sync_bracket(book, lst)
        return
    book.touch_list(lst)
    lst.rejected = True
    legs = book.legs(lst)
    if lst.kind in (ListKind.BRACKET, ListKind.OTO) and o.role is Role.ENTRY:
        deny_children(book, o, legs[1:])
        sync(book, lst)
    elif lst.kind is ListKind.OCO:
        oco_closed(book, lst, o)
    elif lst.kind is ListKind.MULTI:
        for x in legs:
            book.cancel(x, f"leg {o.id} of the list was rejected")


def after_modify(book: Book, lst: OrderList, o: Order, qty_changed: bool) -> None:
    """A user modify of ``o``: a bracket resizes as one, an OCO/OUO size cascades to the
    sibling, an OTO parent's children follow it and a held child's new size is released as far
    as the parent has already filled (what a restart's sync would do); reduce-only orders stay
    inside the position."""
    if lst.kind is ListKind.BRACKET:
        entry = book.orders[lst.order_ids[0]]
        if qty_changed and o is not entry:
            book.resize(entry, o.qty)
        sync_bracket(book, lst)
    elif lst.kind is ListKind.OCO and qty_changed:
        for s in book.legs(lst):
            if s is not o and s.is_working:
                book.resize(s, s.filled_qty + o.leaves)
    elif lst.kind is ListKind.OTO:
        sync_oto(book, lst)
    if qty_changed:  # prices never change what reduce-only orders may hold
        reconcile(book, o.instrument)


# --- list status ---------------------------------------------------------------------------------

def mark_working(book: Book, lst: OrderList) -> None:
    if lst.status is ListStatus.PENDING:
        book.touch_list(lst)
        lst.status = ListStatus.WORKING


def settle(book: Book, lst: OrderList) -> None:
    """A list's status follows its legs: closed when every leg is closed."""
    if lst.is_closed:
        return
    orders = book.orders
    for i in lst.order_ids:
        if orders[i].status not in TERMINAL:
            return
    legs = book.legs(lst)
    traded = any(o.filled_qty > 0 for o in legs)
    status = (ListStatus.REJECTED if lst.rejected and not traded
              else ListStatus.CANCELED if lst.cancel_requested or not traded
              else ListStatus.DONE)
    book.touch_list(lst)
    lst.status = status

"""Hostile input at every boundary of the order manager (issue 11 §1): each value a caller or a
venue can hand it that cannot be right is refused with a stable code (or a ``TypeError`` naming
the argument for an id of the wrong type), and the book, the store and the venue are untouched.

The tables name every case once; a hypothesis state machine then mixes these refusals with the
valid commands and venue events of ``test_orders.OrderMachine`` and checks its invariants (state
equals store, the venue mirrors the book, brackets protect exactly their position, every status
change is in ``ORDER_STATE_TABLE``) after every step.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule
from test_orders import INSTRUMENTS, REF, OrderMachine, S, bracket, legs, make, open_long

from bot4_dagster.trading.lifecycle import NEVER_SENT
from bot4_dagster.trading.manager import OrderManager
from bot4_dagster.trading.orders import (
    DenialCode,
    Instrument,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSpec,
    OrderStatus,
    OrderType,
    PositionChanged,
    Side,
    VenueEventRejected,
)
from bot4_dagster.trading.store import MemoryStore
from bot4_dagster.trading.venue import RecordingVenue

D = Decimal
C = DenialCode
NOT_NUMBERS = [math.nan, "NaN", D("NaN"), D("sNaN"), math.inf, -math.inf, "Infinity", "-inf",
               True, False, "abc", "", "1,5", "0x10", None, [1], "1" * 70]
HUGE = ["1e400", D("1e400"), 10**400, 1e308, "1e16"]
NOT_POSITIVE = [0, -1, "-0", D("-0.001"), -1e-300]
BAD_QTY = NOT_NUMBERS + HUGE + NOT_POSITIVE
BAD_PRICE = [v for v in BAD_QTY if v is not None]  # None means "no price" where one is optional
BAD_CHANGE = BAD_PRICE  # and "unchanged" in modify


def _unchanged(m: OrderManager, venue: RecordingVenue, attempt, error=OrderDenied):
    """Run ``attempt``; it must raise ``error`` and change nothing anywhere."""
    rows, store, requests = m.rows(), m.store.load(), len(venue.requests)
    with pytest.raises(error) as raised:
        attempt()
    assert m.rows() == rows and m.store.load() == store == rows
    assert len(venue.requests) == requests
    return raised.value


# --- values of commands --------------------------------------------------------------------------

COMMANDS = {
    "submit_order qty": lambda m, v: m.submit_order(OrderSpec(S, Side.BUY, v)),
    "bracket qty": lambda m, v: bracket(m, v),
    "oco qty": lambda m, v: m.submit_oco(S, "SELL", v, take_profit=10500, stop_loss=9500),
    "list leg qty": lambda m, v: m.submit_list([OrderSpec(S, Side.BUY, "1"),
                                                OrderSpec("ETHUSDT", Side.BUY, v)]),
    "oto child qty": lambda m, v: m.submit_oto(OrderSpec(S, Side.BUY, "1"), [
        OrderSpec(S, Side.SELL, v, OrderType.LIMIT, price=10500)]),
}


@pytest.mark.parametrize("value", BAD_QTY, ids=repr)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_quantity_that_is_not_a_finite_positive_number_is_denied(command, value):
    m, venue = make()
    open_long(m, S, "2")  # so the reduce-only OCO has something to protect
    denied = _unchanged(m, venue, lambda: COMMANDS[command](m, value))
    assert denied.code is C.INVALID_QUANTITY, denied


PRICED = {
    "limit price": lambda m, v: m.submit_order(OrderSpec(S, Side.BUY, "1", OrderType.LIMIT,
                                                         price=v)),
    "stop trigger": lambda m, v: m.submit_order(OrderSpec(S, Side.SELL, "1",
                                                          OrderType.STOP_MARKET,
                                                          trigger_price=v)),
    "bracket take-profit": lambda m, v: bracket(m, take_profit=v),
    "bracket stop-loss": lambda m, v: bracket(m, stop_loss=v),
    "bracket entry": lambda m, v: bracket(m, entry_price=v),
    "bracket stop limit": lambda m, v: bracket(m, stop_limit=v),
    "oco take-profit": lambda m, v: m.submit_oco(S, "SELL", 1, take_profit=v, stop_loss=9500),
    "reference price": lambda m, v: bracket(m, ref_price=v),
    "last price": lambda m, v: m.on_price(S, v),
    "quote bid": lambda m, v: m.on_quote(S, v, 10001),
}


@pytest.mark.parametrize("value", BAD_PRICE, ids=repr)
@pytest.mark.parametrize("where", PRICED)
def test_a_price_that_is_not_a_finite_positive_number_is_denied(where, value):
    m, venue = make()
    open_long(m, S, "2")
    denied = _unchanged(m, venue, lambda: PRICED[where](m, value))
    assert denied.code is C.INVALID_PRICE, denied


@pytest.mark.parametrize("value", [*BAD_CHANGE, "0.0004"], ids=repr)
@pytest.mark.parametrize("field", ["qty", "price", "trigger_price"])
def test_modify_values_are_converted_the_same_way(field, value):
    m, venue = make()
    e, _, sl = legs(m, bracket(m, entry_price=9900))
    m.on_accepted(e.id)
    target = {"qty": e, "price": e, "trigger_price": sl}[field]
    denied = _unchanged(m, venue, lambda: m.modify(target.id, **{field: value}))
    small = isinstance(value, str) and value == "0.0004"
    expected = {"qty": C.QTY_BELOW_MIN if small else C.INVALID_QUANTITY}.get(field,
                                                                           C.INVALID_PRICE)
    assert denied.code is expected, denied


def test_a_32_digit_quantity_is_floored_never_rounded_up():
    """The 28-digit default context rounded 0.99999999999999999999999999999999 / 0.001 up to
    1000 steps: a 1.000 order for a 0.999... request."""
    m, venue = make()
    qty = "0.99999999999999999999999999999999"
    lst = m.submit_order(OrderSpec(S, Side.BUY, qty))
    assert m.orders[lst.order_ids[0]].qty == D("0.999") == venue.requests[-1].qty
    big = "12345678901234.99999999999999999999"  # 34 digits, 1.2e16 steps of 0.001: too big
    denied = _unchanged(m, venue, lambda: m.submit_order(OrderSpec(S, Side.BUY, big)))
    assert denied.code is C.INVALID_QUANTITY
    lot = Instrument("LOTUSDT", D("0.01"), D(1), max_qty=D(100))
    m.instruments[lot.symbol] = lot
    m.on_price(lot.symbol, 10)
    assert m.orders[m.submit_order(OrderSpec(lot.symbol, Side.BUY, "99.99999999999999999999999"
                                             "999999")).order_ids[0]].qty == 99
    denied = _unchanged(m, venue, lambda: m.submit_order(OrderSpec(lot.symbol, Side.BUY, 101)))
    assert denied.code is C.QTY_ABOVE_MAX


def test_prices_round_on_the_tick_exactly_and_never_to_zero():
    m, venue = make()
    lst = m.submit_order(OrderSpec(S, Side.SELL, "0.01", OrderType.LIMIT,
                                   price="10000.00000000000000000000000000001"))
    assert m.orders[lst.order_ids[0]].price == D("10000.1")  # a sell rounds up: exact, not 28
    denied = _unchanged(m, venue, lambda: m.submit_order(
        OrderSpec(S, Side.BUY, "1", OrderType.LIMIT, price="0.05")))
    assert denied.code is C.INVALID_PRICE and "below one tick" in denied.message
    lst = m.submit_order(OrderSpec(S, Side.BUY, "60", OrderType.LIMIT, price="0.15"))
    assert m.orders[lst.order_ids[0]].price == D("0.1")  # a buy rounds down, never to zero


@pytest.mark.parametrize(("name", "attempt", "code"), [
    ("side", lambda m: m.submit_bracket(S, "HOLD", 1, take_profit=10500, stop_loss=9500),
     C.INVALID_ORDER),
    ("order type", lambda m: m.submit_order(OrderSpec(S, Side.BUY, 1, "ICEBERG")),
     C.INVALID_ORDER),
    ("spec side", lambda m: m.submit_order(OrderSpec(S, "HOLD", 1)), C.INVALID_ORDER),
    ("partial-fill policy", lambda m: m.submit_oco(S, "SELL", 1, take_profit=10500,
                                                   stop_loss=9500, on_partial_fill="half"),
     C.INVALID_ORDER),
    ("oto trigger", lambda m: bracket(m, oto_trigger="soon"), C.INVALID_ORDER),
    ("unknown instrument price", lambda m: m.on_price("XRPUSDT", 1), C.UNKNOWN_INSTRUMENT),
    ("crossed quote", lambda m: m.on_quote(S, 10001, 10000), C.INVALID_PRICE),
])
def test_other_values_are_denied_with_a_code(name, attempt, code):
    m, venue = make()
    open_long(m, S, "2")
    assert _unchanged(m, venue, lambda: attempt(m)).code is code


# --- ids and flags of the wrong type -------------------------------------------------------------

@pytest.mark.parametrize(("attempt", "named"), [
    (lambda m: m.submit_order(OrderSpec(S, Side.BUY, 1, id=5)), "OrderSpec.id"),
    (lambda m: m.submit_list([OrderSpec(S, Side.BUY, 1, id="a"),
                              OrderSpec(S, Side.BUY, 1, parent=7)]), "OrderSpec.parent"),
    (lambda m: m.submit_list([OrderSpec(S, Side.BUY, 1, id="a", linked="b")]),
     "OrderSpec.linked"),
    (lambda m: m.submit_list([OrderSpec(S, Side.BUY, 1, id="a", linked=("b", 3))]),
     r"OrderSpec.linked\[1\]"),
    (lambda m: m.submit_order(OrderSpec(5, Side.BUY, 1)), "OrderSpec.instrument"),
    (lambda m: m.submit_order(OrderSpec(S, Side.BUY, 1, reduce_only="no")),
     "OrderSpec.reduce_only"),
    (lambda m: m.submit_order(OrderSpec(S, Side.BUY, 1, expire_ts=1.5e18)), "OrderSpec.expire_ts"),
    (lambda m: m.submit_order(OrderSpec(S, Side.BUY, 1, venue=1)), "OrderSpec.venue"),
    (lambda m: m.submit_list(["not a spec"]), "specs"),
    (lambda m: m.submit_oco(S, "SELL", 1, take_profit=10500, stop_loss=9500, reduce_only=1),
     "reduce_only"),
    (lambda m: m.modify(5, qty=1), "order_id"),
    (lambda m: m.cancel(["L1.E"]), "order_id"),
    (lambda m: m.cancel_list(1), "list_id"),
    (lambda m: m.list_orders(1), "list_id"),
    (lambda m: m.on_price(1, 10000), "instrument"),
    (lambda m: m.on_fill(5, "1", 10000), "order_id"),
    (lambda m: m.on_fill("L1.E", "1", 10000, trade_id=5), "trade_id"),
    (lambda m: m.on_fill("L1.E", "1", 10000, ts=1.5), "ts"),
    (lambda m: m.on_accepted(("L1.E",)), "order_id"),
    (lambda m: m.on_rejected("L1.E", reason=3), "reason"),
    (lambda m: m.on_position(5, 0), "instrument"),
    (lambda m: m.apply("FILL L1.E 1"), "a venue event is one of"),
])
def test_ids_of_the_wrong_type_raise_a_type_error_naming_the_argument(attempt, named):
    m, venue = make()
    bracket(m)
    error = _unchanged(m, venue, lambda: attempt(m), TypeError)
    assert re.search(named, str(error)), error


# --- venue events --------------------------------------------------------------------------------

def _filled_bracket(m):
    """A bracket BUY 1 with the entry filled at 10000 and both exits working."""
    lst = bracket(m, "1")
    e, tp, sl = legs(m, lst)
    m.on_accepted(e.id)
    m.on_fill(e.id, "1", 10000, trade_id="e1")
    return lst, e, tp, sl


def _half_order(m):
    """A BUY LIMIT 0.5 at 9900, accepted."""
    lst = m.submit_order(OrderSpec(S, Side.BUY, "0.5", OrderType.LIMIT, price=9900))
    m.on_accepted(lst.order_ids[0])
    return m.orders[lst.order_ids[0]]


def _race_past_flat(m):
    """Exits PENDING_CANCEL at 1 while the position went to 0.4 outside: a racing fill of the
    take-profit's 1 would leave the account short."""
    lst, _, tp, _ = _filled_bracket(m)
    m.cancel_list(lst.id)
    m.on_position(S, "0.4")
    return tp


EVENTS = [
    # (case, set-up returning the order, event for that order, code)
    ("fill of 5 for a 0.5 order", _half_order, lambda o: OrderFilled(o.id, D(5), D(9900)),
     C.FILL_EXCEEDS_LEAVES),
    ("take-profit fill of 2 on a position of 1", lambda m: _filled_bracket(m)[2],
     lambda o: OrderFilled(o.id, D(2), D(10500)), C.FILL_EXCEEDS_LEAVES),
    ("reduce-only fill past flat (racing a cancel)", _race_past_flat,
     lambda o: OrderFilled(o.id, D(1), D(10500)), C.FILL_PAST_FLAT),
    ("buy limit filled above its limit", _half_order,
     lambda o: OrderFilled(o.id, D("0.5"), D("9900.1")), C.FILL_OUTSIDE_LIMIT),
    ("sell limit filled below its limit", lambda m: _filled_bracket(m)[2],
     lambda o: OrderFilled(o.id, D("0.5"), D(10499)), C.FILL_OUTSIDE_LIMIT),
    *[(f"fill price {p!r}", _half_order, lambda o, p=p: OrderFilled(o.id, D("0.1"), p),
       C.INVALID_PRICE) for p in (math.nan, D("NaN"), math.inf, "-Infinity", 0, -1, "1e400",
                                  D("1e30"), True, "x")],
    *[(f"fill quantity {q!r}", _half_order, lambda o, q=q: OrderFilled(o.id, q, D(9900)),
       C.INVALID_QUANTITY) for q in (math.nan, D("sNaN"), math.inf, 0, -1, "0.0005", True, "x")],
    *[(f"fee {f!r}", _half_order, lambda o, f=f: OrderFilled(o.id, D("0.1"), D(9900), fee=f),
       C.INVALID_FEE) for f in (math.nan, math.inf, "-inf", D(991), "x")],
    *[(f"leaves {x!r}", _half_order, lambda o, x=x: OrderFilled(o.id, D("0.1"), D(9900),
                                                                leaves=x),
       C.INVALID_LEAVES) for x in (math.nan, math.inf, -1, "x")],
    ("fill for an unknown order", _half_order, lambda o: OrderFilled("L99.E", D(1), D(9900)),
     C.ORDER_NOT_FOUND),
    ("fill for a held child (before its parent filled)", lambda m: legs(m, bracket(m))[1],
     lambda o: OrderFilled(o.id, D(1), D(10500)), C.EVENT_OUT_OF_ORDER),
    ("accepted for a held child", lambda m: legs(m, bracket(m))[1],
     lambda o: OrderAccepted(o.id), C.EVENT_OUT_OF_ORDER),
    ("canceled for a held child", lambda m: legs(m, bracket(m))[2],
     lambda o: OrderCanceled(o.id), C.EVENT_OUT_OF_ORDER),
    ("expired for a held child", lambda m: legs(m, bracket(m))[2],
     lambda o: OrderExpired(o.id), C.EVENT_OUT_OF_ORDER),
    ("rejected for a held child", lambda m: legs(m, bracket(m))[2],
     lambda o: OrderRejected(o.id, "no"), C.EVENT_OUT_OF_ORDER),
    ("fill for a denied child", lambda m: _denied_child(m),
     lambda o: OrderFilled(o.id, D(1), D(10500)), C.EVENT_OUT_OF_ORDER),
    ("fill after the order was filled", lambda m: _filled_bracket(m)[1],
     lambda o: OrderFilled(o.id, D("0.1"), D(10000), trade_id="e2"), C.EVENT_OUT_OF_ORDER),
    ("fill for a rejected order", lambda m: _rejected(m),
     lambda o: OrderFilled(o.id, D("0.1"), D(9900)), C.EVENT_OUT_OF_ORDER),
    ("reject after the order traded", lambda m: _partly_filled(m),
     lambda o: OrderRejected(o.id, "late"), C.EVENT_OUT_OF_ORDER),
    ("position NaN", lambda m: None, lambda o: PositionChanged(S, math.nan), C.INVALID_QUANTITY),
    ("position 1e400", lambda m: None, lambda o: PositionChanged(S, "1e400"),
     C.INVALID_QUANTITY),
    ("position off the step grid", lambda m: None, lambda o: PositionChanged(S, 0.1 + 0.2),
     C.INVALID_QUANTITY),
    ("position of an unknown instrument", lambda m: None,
     lambda o: PositionChanged("XRPUSDT", D(1)), C.UNKNOWN_INSTRUMENT),
]


def _denied_child(m):
    lst = bracket(m)
    e, tp, _ = legs(m, lst)
    m.on_rejected(e.id, "no margin")
    assert tp.status is OrderStatus.DENIED
    return tp


def _rejected(m):
    o = m.orders[m.submit_order(OrderSpec(S, Side.BUY, "0.5", OrderType.LIMIT,
                                          price=9900)).order_ids[0]]
    m.on_rejected(o.id, "no")
    return o


def _partly_filled(m):
    o = _half_order(m)
    m.on_fill(o.id, "0.1", 9900)
    return o


@pytest.mark.parametrize(("case", "setup", "event", "code"), EVENTS, ids=[e[0] for e in EVENTS])
def test_a_venue_event_that_cannot_be_true_is_refused_and_changes_nothing(case, setup, event,
                                                                          code):
    m, venue = make()
    o = setup(m)
    refused = _unchanged(m, venue, lambda: m.apply(event(o)), VenueEventRejected)
    assert refused.code is code, refused
    assert isinstance(refused, ValueError) and refused.event is not None


def test_a_fill_at_terms_a_modify_in_flight_had_not_reached_is_a_race_not_a_lie():
    """A modify has no acknowledgement: the venue may fill the old size or at the old limit
    until it arrives. Those fills apply (the order completes at what it traded); anything past
    the loosest terms ever sent is still refused."""
    m, venue = make()
    o = _half_order(m)  # BUY LIMIT 0.5 at 9900
    m.modify(o.id, qty="0.2", price=9800)
    assert (o.qty, o.price, o.venue_qty, o.venue_price) == (D("0.2"), 9800, D("0.5"), 9900)
    refused = _unchanged(m, venue, lambda: m.apply(OrderFilled(o.id, D("0.6"), D(9900))),
                         VenueEventRejected)
    assert refused.code is C.FILL_EXCEEDS_LEAVES and "largest size sent 0.5" in refused.message
    refused = _unchanged(m, venue, lambda: m.apply(OrderFilled(o.id, D("0.5"), D("9900.1"))),
                         VenueEventRejected)
    assert refused.code is C.FILL_OUTSIDE_LIMIT
    m.apply(OrderFilled(o.id, D("0.5"), D(9900), trade_id="old-terms"))
    assert o.status is OrderStatus.FILLED and o.qty == o.filled_qty == D("0.5")
    assert m.positions[S] == D("0.5") and m.store.load() == m.rows()


def test_refused_events_do_not_stop_the_rest_of_the_queue():
    """Events a venue raises inside a request are queued; a refused one is skipped, the others
    are applied, and the refusal is raised at the end with any later ones in ``also``."""

    class Chatty(RecordingVenue):
        manager: OrderManager

        def submit(self, request):
            super().submit(request)
            self.manager.apply(OrderFilled(request.order_id, D(99), D(9900)))  # hostile
            self.manager.apply(OrderAccepted(request.order_id))
            self.manager.apply(OrderFilled(request.order_id, D(1), D("nan")))  # hostile

    venue = Chatty()
    m = OrderManager(venue, INSTRUMENTS, MemoryStore())
    venue.manager = m
    with pytest.raises(VenueEventRejected) as refused:
        m.submit_order(OrderSpec(S, Side.BUY, "1", OrderType.LIMIT, price=9900))
    assert refused.value.code is C.FILL_EXCEEDS_LEAVES
    assert [x.code for x in refused.value.also] == [C.INVALID_PRICE]
    (o,) = m.orders.values()
    assert o.status is OrderStatus.ACCEPTED and o.filled_qty == 0 and m.store.load() == m.rows()


def test_restore_positions_are_converted_like_any_quantity():
    m, _ = make()
    for positions, code in (({S: math.nan}, C.INVALID_QUANTITY), ({S: "0.0005"},
                                                                  C.INVALID_QUANTITY),
                            ({"XRPUSDT": 1}, C.UNKNOWN_INSTRUMENT)):
        with pytest.raises(OrderDenied) as denied:
            OrderManager.restore(m.store, RecordingVenue(), INSTRUMENTS, positions=positions)
        assert denied.value.code is code
    with pytest.raises(TypeError, match="instrument"):
        OrderManager.restore(m.store, RecordingVenue(), INSTRUMENTS, positions={3: 1})


# --- the state machine: valid commands mixed with hostile ones ------------------------------------

FILL_KINDS = ["overfill", "past_flat", "outside_limit", "nan_price", "zero_price", "inf_qty",
              "off_grid_qty", "nan_fee", "negative_leaves", "unknown"]
VALUE_CODES = {"nan_price": C.INVALID_PRICE, "zero_price": C.INVALID_PRICE,
               "inf_qty": C.INVALID_QUANTITY, "off_grid_qty": C.INVALID_QUANTITY,
               "nan_fee": C.INVALID_FEE, "negative_leaves": C.INVALID_LEAVES}


class HostileOrderMachine(OrderMachine):
    """``OrderMachine``'s commands and venue events, plus refusals that must change nothing."""

    def _refused(self, attempt, error, code=None) -> None:
        rows = self.m.rows()
        with pytest.raises(error) as raised:
            attempt()
        assert self.m.rows() == rows == self.store.load()
        if code is not None:
            assert raised.value.code is code, raised.value

    def _order_for(self, data):
        ids = sorted(self.m.orders)
        return self.m.orders[data.draw(st.sampled_from(ids))] if ids else None

    @rule(data=st.data(), kind=st.sampled_from(FILL_KINDS))
    def hostile_fill(self, data, kind):
        o = self._order_for(data)
        if o is None or kind == "unknown":
            self._refused(lambda: self.m.apply(OrderFilled("nobody", D(1), D(1))),
                          VenueEventRejected, C.ORDER_NOT_FOUND)
            return
        step = {i.symbol: i.step for i in INSTRUMENTS}[o.instrument]
        pos = self.m.positions.get(o.instrument, D(0))
        qty, price, fee, leaves = step, o.price or REF[o.instrument], D(0), None
        code = VALUE_CODES.get(kind)
        if kind == "overfill":
            sent = max(o.qty, o.venue_qty or o.qty)  # a downsize may not have arrived yet
            qty = sent - o.filled_qty + step
            code = C.FILL_EXCEEDS_LEAVES
        elif kind == "past_flat":
            room = -pos * o.side.sign  # what a fill of this order may still reduce
            qty = room + step if room > 0 else step
            if not o.reduce_only or qty > max(o.qty, o.venue_qty or o.qty) - o.filled_qty:
                return  # not reduce-only, or FILL_EXCEEDS_LEAVES would answer first
            code = C.FILL_PAST_FLAT
        elif kind == "outside_limit":
            if o.price is None:
                return
            limit = o.venue_price or o.price  # the loosest limit the venue was sent
            price = limit + o.side.sign * D("0.01")  # worse than that for its side
            code = C.FILL_OUTSIDE_LIMIT
        elif kind == "nan_price":
            price = D("NaN")
        elif kind == "zero_price":
            price = D(0)
        elif kind == "inf_qty":
            qty = D("Infinity")
        elif kind == "off_grid_qty":
            qty = step / 2
        elif kind == "nan_fee":
            fee = D("NaN")
        elif kind == "negative_leaves":
            leaves = D(-1)
        finished = o.status in (OrderStatus.FILLED, OrderStatus.REJECTED)
        if o.status in NEVER_SENT or (finished and kind not in VALUE_CODES):
            code = C.EVENT_OUT_OF_ORDER  # checked before (never sent) or after (done) the values
        event = OrderFilled(o.id, qty, price, trade_id=f"hostile-{id(data)}", fee=fee,
                            leaves=leaves)
        self._refused(lambda: self.m.apply(event), VenueEventRejected, code)

    @rule(data=st.data(), kind=st.sampled_from(["accepted", "canceled", "rejected"]))
    def hostile_status(self, data, kind):
        """Status events for orders the venue never had, and a reject after fills."""
        o = self._order_for(data)
        if o is None:
            return
        traded = o.filled_qty > 0 and not o.is_closed
        if o.status not in NEVER_SENT and not (kind == "rejected" and traded):
            return  # a possible event: the valid rules cover it
        event = {"accepted": OrderAccepted(o.id), "canceled": OrderCanceled(o.id),
                 "rejected": OrderRejected(o.id, "late")}[kind]
        self._refused(lambda: self.m.apply(event), VenueEventRejected, C.EVENT_OUT_OF_ORDER)

    @rule(value=st.sampled_from(BAD_QTY),
          command=st.sampled_from(["bracket", "oco", "multi", "position"]))
    def hostile_quantity(self, value, command):
        m = self.m
        if command == "position":
            if any(value is v for v in NOT_POSITIVE[:4]):
                return  # flat or short on the step grid is a position, not a hostile value
            self._refused(lambda: m.on_position(S, value), VenueEventRejected,
                          C.INVALID_QUANTITY)
            return
        attempt = {
            "bracket": lambda: m.submit_bracket(S, "BUY", value, take_profit=10500,
                                                stop_loss=9500),
            "oco": lambda: m.submit_oco("ETHUSDT", "SELL", value, take_profit=210,
                                        stop_loss=190),
            "multi": lambda: m.submit_list([OrderSpec("ETHUSDT", Side.BUY, 1),
                                            OrderSpec("SOLUSDT", Side.SELL, value)]),
        }[command]
        self._refused(attempt, OrderDenied)

    @rule(data=st.data(), value=st.sampled_from(BAD_CHANGE),
          field=st.sampled_from(["qty", "price", "trigger_price", "last"]))
    def hostile_modify_or_price(self, data, value, field):
        if field == "last":
            self._refused(lambda: self.m.on_price(S, value), OrderDenied, C.INVALID_PRICE)
            return
        o = self._order_for(data)
        if o is None:
            return
        self._refused(lambda: self.m.modify(o.id, **{field: value}), OrderDenied)


TestHostileOrderMachine = HostileOrderMachine.TestCase
TestHostileOrderMachine.settings = settings(
    max_examples=500, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])



def test_the_book_refuses_a_status_change_the_table_does_not_list():
    """The table is enforced where statuses change, so a rule with a bug fails loudly and the
    transaction rolls back instead of storing an impossible lifecycle."""
    from bot4_dagster.trading.lifecycle import ORDER_STATE_TABLE, IllegalTransition

    m, _ = make()
    o = _half_order(m)
    m.on_fill(o.id, "0.5", 9900)
    assert o.status is OrderStatus.FILLED and not ORDER_STATE_TABLE[OrderStatus.FILLED]
    book = m._book
    book.begin()
    with pytest.raises(IllegalTransition, match="FILLED -> CANCELED"):
        book.set_status(o, OrderStatus.CANCELED)
    book.rollback()
    assert m.orders[o.id].status is OrderStatus.FILLED and m.store.load() == m.rows()

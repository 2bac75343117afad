"""Order management (``bot4_dagster.trading``): acceptance tests O1-O13 of reference/trading.md §5.

O1-O8 and O10-O12 drive ``OrderManager`` with a venue mock that records every request; O9 runs
brackets on the paper exchange over hand-made bars; O13 restarts from the durable SQLite store,
including after a real ``os._exit`` in a subprocess. O14 (native Binance OTOCO/OCO round trips)
needs a venue testnet and is not here. A hypothesis state machine then drives random sequences of
submits (brackets, OCO, OTO, multi-leg), venue events (acks, partial and full fills, cancels,
rejects, expiries), user cancels and modifies, outside position changes and restarts, and checks
after every step: each working bracket exit's leaves equal the bracket's open quantity and those
sum to the position; nothing reduce-only works on a flat position; list statuses follow their
legs; the venue's orders mirror the manager's; the store equals memory; a restore is a no-op.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bot4_dagster.trading.lifecycle import ORDER_STATE_TABLE
from bot4_dagster.trading.manager import OrderConfig, OrderManager
from bot4_dagster.trading.orders import (
    LIST_TERMINAL,
    TERMINAL,
    WORKING,
    ContingencyType,
    DenialCode,
    Instrument,
    ListKind,
    ListStatus,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSpec,
    OrderStatus,
    OrderType,
    Role,
    Side,
    TradingState,
)
from bot4_dagster.trading.paper import Bar, PaperExchange, SlippageModel, pump
from bot4_dagster.trading.store import MemoryStore, SQLiteStore
from bot4_dagster.trading.venue import CancelOrder, ModifyOrder, RecordingVenue, SubmitOrder

D = Decimal
BTC = Instrument("BTCUSDT", tick=D("0.1"), step=D("0.001"), min_notional=D("5"),
                 max_notional=D("1000000"))
ETH = Instrument("ETHUSDT", tick=D("0.01"), step=D("0.01"), min_notional=D("5"))
SOL = Instrument("SOLUSDT", tick=D("0.001"), step=D("0.1"), min_notional=D("5"))
INSTRUMENTS = [BTC, ETH, SOL]
REF = {"BTCUSDT": D(10000), "ETHUSDT": D(200), "SOLUSDT": D(20)}
S = "BTCUSDT"


class Clock:
    """Deterministic nanoseconds: every read advances 1 µs unless frozen."""

    def __init__(self, t: int = 1_600_000_000_000_000_000) -> None:
        self.t = t
        self.frozen = False

    def __call__(self) -> int:
        if not self.frozen:
            self.t += 1_000
        return self.t


def make(store=None, venue=None, clock=None, **kw) -> tuple[OrderManager, RecordingVenue]:
    venue = venue if venue is not None else RecordingVenue()
    m = OrderManager(venue, INSTRUMENTS, store, clock=clock or Clock(), **kw)
    for symbol, price in REF.items():
        m.on_price(symbol, price)
    return m, venue


def bracket(m: OrderManager, qty="1", **kw):
    kw.setdefault("take_profit", 10500)
    kw.setdefault("stop_loss", 9500)
    return m.submit_bracket(S, "BUY", qty, **kw)


def legs(m: OrderManager, lst) -> tuple:
    return tuple(m.list_orders(lst.id))


def sent(venue: RecordingVenue, kind=SubmitOrder, order_id: str | None = None) -> list:
    return [r for r in venue.of_type(kind) if order_id is None or r.order_id == order_id]


def open_long(m: OrderManager, symbol: str, qty: str) -> None:
    """A filled market buy: the position that standalone OCO tests protect."""
    lst = m.submit_order(OrderSpec(symbol, Side.BUY, qty))
    m.on_fill(lst.order_ids[0], qty, REF[symbol])


# --- O1 ------------------------------------------------------------------------------------------

def test_o1_full_trigger_releases_children_only_after_the_entry_fills():
    m, v = make(oto_trigger="full")
    e, tp, sl = legs(m, bracket(m, "0.3"))
    m.on_accepted(e.id)
    m.on_fill(e.id, "0.1", 10000)
    assert (tp.status, sl.status) == (OrderStatus.INITIALIZED, OrderStatus.INITIALIZED)
    assert [r.order_id for r in sent(v)] == [e.id]
    m.on_fill(e.id, "0.2", 10000)
    assert [(r.order_id, r.qty) for r in sent(v)] == [(e.id, D("0.3")), (tp.id, D("0.3")),
                                                       (sl.id, D("0.3"))]
    assert tp.status is sl.status is OrderStatus.PENDING and tp.reduce_only and sl.reduce_only


def test_o1_partial_trigger_tracks_fills_before_any_modify_ack():
    """#3435: the second and third fills arrive before the venue acknowledges anything."""
    m, v = make()  # partial is the default
    e, tp, sl = legs(m, bracket(m, "0.3"))
    m.on_fill(e.id, "0.1", 10000)
    assert [(r.order_id, r.qty) for r in sent(v)][1:] == [(tp.id, D("0.1")), (sl.id, D("0.1"))]
    m.on_fill(e.id, "0.1", 10000)
    m.on_fill(e.id, "0.1", 10000)
    assert tp.qty == sl.qty == D("0.3") and e.status is OrderStatus.FILLED
    assert [(r.order_id, r.qty) for r in sent(v, ModifyOrder)] == [
        (tp.id, D("0.2")), (sl.id, D("0.2")), (tp.id, D("0.3")), (sl.id, D("0.3"))]


# --- O2 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("winner", ["SL", "TP"])
def test_o2_one_exit_filling_cancels_the_other(winner):
    m, v = make()
    lst = bracket(m)
    e, tp, sl = legs(m, lst)
    m.on_accepted(e.id)
    m.on_fill(e.id, "1", 10000)
    m.on_accepted(tp.id)
    m.on_accepted(sl.id)
    win, lose = (sl, tp) if winner == "SL" else (tp, sl)
    m.on_fill(win.id, "1", 9500 if winner == "SL" else 10500)
    assert lose.status is OrderStatus.PENDING_CANCEL and sent(v, CancelOrder, lose.id)
    m.on_canceled(lose.id)
    assert m.positions[S] == 0
    assert not [o for o in m.orders.values() if not o.is_closed]  # zero orphans
    assert m.lists[lst.id].status is ListStatus.DONE


# --- O3 ------------------------------------------------------------------------------------------

def test_o3_take_profit_partial_fill_leaves_the_stop_at_the_rest():
    m, _ = make()
    e, tp, sl = legs(m, bracket(m, "1"))
    m.on_fill(e.id, "1", 10000)
    m.on_fill(tp.id, "0.4", 10500)
    assert sl.leaves == tp.leaves == D("0.6") == m.positions[S]
    assert sl.contingency is ContingencyType.OUO


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["E", "TP", "SL"]), st.integers(1, 400)),
                min_size=1, max_size=25))
def test_o3_protective_leaves_equal_the_position_after_every_fill(fills):
    m, _ = make()
    e, tp, sl = legs(m, bracket(m, "1"))
    by_role = {"E": e, "TP": tp, "SL": sl}
    for role, steps in fills:
        o = by_role[role]
        qty = min(o.leaves, D(steps) * BTC.step)
        if o.status not in WORKING or qty <= 0:
            continue
        m.on_fill(o.id, qty, o.price or 10000)  # a limit fills at its limit, never worse
        working = [x for x in (tp, sl) if x.status in WORKING]
        assert all(x.leaves == m.positions[S] for x in working)
        if m.positions[S] == 0:
            assert not working


# --- O4 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("policy", "sl_leaves", "sl_status", "fix"), [
    ("cancel_siblings", D(1), OrderStatus.PENDING_CANCEL, ContingencyType.OCO),
    ("reduce_absolute", D("0.6"), OrderStatus.PENDING, ContingencyType.OUO),
    ("reduce_proportional", D("0.6"), OrderStatus.PENDING, ContingencyType.OUO_PROPORTIONAL),
    ("none", D(1), OrderStatus.PENDING, ContingencyType.OCO),
])
def test_o4_oco_partial_fill_policies(policy, sl_leaves, sl_status, fix):
    """Plain (not reduce-only) legs, so only the policy acts (reduce-only capping is O8)."""
    m, _ = make()
    open_long(m, S, "1")
    lst = m.submit_oco(S, "SELL", "1", take_profit=10500, stop_loss=9500, on_partial_fill=policy,
                       reduce_only=False)
    tp, sl = legs(m, lst)
    assert tp.contingency is sl.contingency is fix
    m.on_fill(tp.id, "0.4", 10500)
    assert (sl.leaves, sl.status) == (sl_leaves, sl_status)
    m.on_fill(tp.id, "0.6", 10500)  # a full fill cancels the sibling under every policy
    assert sl.status is OrderStatus.PENDING_CANCEL or sl.is_closed


def test_o4_default_policy_is_cancel_siblings():
    m, _ = make()
    assert m.config.on_partial_fill.value == "cancel_siblings"
    assert m.config.oto_trigger.value == "partial"


# --- O5 ------------------------------------------------------------------------------------------

def test_o5_rejected_entry_denies_both_children_without_sending_them():
    m, v = make()
    lst = bracket(m)
    e, tp, sl = legs(m, lst)
    m.on_rejected(e.id, "Margin is insufficient")
    assert tp.status is sl.status is OrderStatus.DENIED
    assert all(e.id in c.reason and "Margin is insufficient" in c.reason for c in (tp, sl))
    assert [r.order_id for r in v.requests] == [e.id]  # zero child submissions
    assert m.lists[lst.id].status is ListStatus.REJECTED


# --- O6 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("close", ["on_canceled", "on_expired"])
def test_o6_entry_closed_unfilled_cancels_children(close):
    m, v = make()
    lst = bracket(m, entry_price=9900)
    e, tp, sl = legs(m, lst)
    m.on_accepted(e.id)
    getattr(m, close)(e.id)
    assert tp.status is sl.status is OrderStatus.CANCELED
    assert [r.order_id for r in v.requests] == [e.id]
    assert m.lists[lst.id].status is ListStatus.CANCELED


@pytest.mark.parametrize("trigger", ["partial", "full"])
@pytest.mark.parametrize("close", ["on_canceled", "on_expired"])
def test_o6_entry_closed_after_a_partial_fill_keeps_children_resized(close, trigger):
    m, v = make(oto_trigger=trigger)
    e, tp, sl = legs(m, bracket(m, entry_price=9900))
    m.on_accepted(e.id)
    m.on_fill(e.id, "0.25", 9900)
    getattr(m, close)(e.id)
    assert tp.qty == sl.qty == D("0.25") and tp.status in WORKING and sl.status in WORKING
    assert {r.order_id: r.qty for r in sent(v)}[sl.id] == D("0.25")


# --- O7 ------------------------------------------------------------------------------------------

def test_o7_modifying_a_held_take_profit_is_local_and_cascades():
    m, v = make()
    e, tp, sl = legs(m, bracket(m, "1", entry_price=9900))
    m.on_accepted(e.id)
    m.modify(tp.id, price=10600)
    m.modify(tp.id, qty="0.5")
    assert (tp.price, tp.qty, sl.qty, e.qty) == (D(10600), D("0.5"), D("0.5"), D("0.5"))
    assert not [r for r in v.requests if r.order_id in (tp.id, sl.id)]
    assert sent(v, ModifyOrder, e.id)[-1].qty == D("0.5")  # the entry shrinks with the bracket
    m.on_fill(e.id, "0.5", 9900)
    assert {(r.order_id, r.qty, r.price) for r in sent(v)[1:]} == {
        (tp.id, D("0.5"), D(10600)), (sl.id, D("0.5"), None)}
    with pytest.raises(OrderDenied) as denied:
        m.modify(sl.id, qty="0.4")
    assert denied.value.code is DenialCode.BRACKET_QTY_LOCKED


def test_o7_a_held_exit_cannot_resize_an_entry_being_canceled():
    """Found by a long state-machine run: the entry's new size never reached the venue, so a fill
    of the old size left the entry PENDING_CANCEL while the venue had closed it."""
    m, _ = make()
    e, tp, sl = legs(m, bracket(m, "1"))
    m.cancel(e.id)
    with pytest.raises(OrderDenied) as denied:
        m.modify(sl.id, qty="1.5")
    assert denied.value.code is DenialCode.ORDER_NOT_MODIFIABLE
    assert (e.qty, sl.qty, e.status) == (D(1), D(1), OrderStatus.PENDING_CANCEL)
    m.on_fill(e.id, "1", 10000)  # the fill racing the cancel is honoured and protected
    assert e.status is OrderStatus.FILLED and {sl.status, tp.status} == {OrderStatus.PENDING}


def test_o7_modify_keeps_bracket_ordering():
    m, _ = make()
    _, tp, _ = legs(m, bracket(m, entry_price=9900))
    with pytest.raises(OrderDenied) as denied:
        m.modify(tp.id, price=9800)
    assert denied.value.code is DenialCode.BRACKET_PRICE_ORDER and tp.price == D(10500)


# --- O8 ------------------------------------------------------------------------------------------

def test_o8_outside_close_cancels_all_legs():
    m, v = make()
    lst = bracket(m, "1")
    e, tp, sl = legs(m, lst)
    m.on_fill(e.id, "1", 10000)
    m.on_position(S, 0)
    assert tp.status is sl.status is OrderStatus.PENDING_CANCEL
    assert {r.order_id for r in sent(v, CancelOrder)} == {tp.id, sl.id}
    m.on_canceled(tp.id)
    m.on_canceled(sl.id)
    assert m.lists[lst.id].status is ListStatus.DONE


def test_o8_outside_reduction_downsizes_legs_fifo():
    m, _ = make()
    first, second = bracket(m, "1"), bracket(m, "2")
    e1, tp1, sl1 = legs(m, first)
    e2, tp2, sl2 = legs(m, second)
    m.on_fill(e1.id, "1", 10000)
    m.on_fill(e2.id, "2", 10000)
    m.on_position(S, "1.6")  # 1.4 closed outside: the oldest bracket's 1, then 0.4 of the next
    assert tp1.status is sl1.status is OrderStatus.PENDING_CANCEL
    assert tp2.leaves == sl2.leaves == D("1.6") == m.bracket_open_qty(second.id)
    assert m.bracket_open_qty(first.id) == 0


def test_o8_outside_reduction_caps_a_standalone_oco():
    m, _ = make()
    open_long(m, "ETHUSDT", "3")
    tp, sl = legs(m, m.submit_oco("ETHUSDT", "SELL", "3", take_profit=210, stop_loss=190))
    m.on_position("ETHUSDT", 1)
    assert tp.leaves == sl.leaves == 1
    m.on_position("ETHUSDT", 0)
    assert tp.status is sl.status is OrderStatus.PENDING_CANCEL


# --- O9 (paper exchange, bars) -------------------------------------------------------------------

def _paper(**kw):
    x = PaperExchange(INSTRUMENTS, slippage=SlippageModel(D(0)))
    m, _ = make(venue=x, **kw)
    return m, x


def _bar(x, m, t, o, h, low, c):
    x.on_bar(S, Bar(t, D(o), D(h), D(low), D(c)))
    pump(x, m)


def test_o9_same_bar_touch_of_take_profit_and_stop_resolves_to_the_stop():
    m, x = _paper()
    lst = bracket(m, "1")
    pump(x, m)
    e, tp, sl = legs(m, lst)
    _bar(x, m, 1, 10000, 10010, 9990, 10000)  # the entry fills at the open
    assert e.status is OrderStatus.FILLED and tp.status is OrderStatus.ACCEPTED
    _bar(x, m, 2, 10000, 10600, 9400, 10000)  # both exits touched
    assert sl.status is OrderStatus.FILLED and sl.avg_price == D(9500)
    assert tp.status is OrderStatus.CANCELED and tp.filled_qty == 0
    assert m.positions[S] == x.position(S) == 0 and m.lists[lst.id].status is ListStatus.DONE


def test_o9_a_gap_through_the_stop_fills_at_the_open():
    m, x = _paper()
    e, _, sl = legs(m, bracket(m, "1"))
    pump(x, m)
    _bar(x, m, 1, 10000, 10010, 9990, 10000)
    _bar(x, m, 2, 9300, 9350, 9200, 9300)
    assert sl.avg_price == D(9300) and e.avg_price == D(10000)


def test_o9_bracket_after_a_gap_still_fills():
    """#4355: a market entry into a gap, then the exits must still trade."""
    m, x = _paper()
    lst = bracket(m, "1", take_profit=11500, stop_loss=9500)
    pump(x, m)
    e, tp, sl = legs(m, lst)
    _bar(x, m, 1, 11000, 11050, 10950, 11000)  # gapped up 10 % at the entry
    assert e.avg_price == D(11000) and tp.status is OrderStatus.ACCEPTED
    _bar(x, m, 2, 11200, 11600, 11100, 11550)
    assert tp.status is OrderStatus.FILLED and tp.avg_price == D(11500)
    assert sl.status is OrderStatus.CANCELED and m.positions[S] == 0


# --- O10 -----------------------------------------------------------------------------------------

class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.commits: list[tuple[int, int]] = []

    def commit(self, orders, lists, positions, fills) -> None:
        self.commits.append((len(orders), len(lists)))
        super().commit(orders, lists, positions, fills)


def test_o10_cancel_list_is_one_transition_idempotent_and_honours_a_racing_fill():
    store = CountingStore()
    m, v = make(store)
    lst = bracket(m, "1", entry_price=9900)
    e, tp, sl = legs(m, lst)
    m.on_accepted(e.id)
    m.on_fill(e.id, "0.5", 9900)
    m.on_accepted(tp.id)
    m.on_accepted(sl.id)
    commits, requests = len(store.commits), len(v.requests)
    m.cancel_list(lst.id)
    assert {o.status for o in (e, tp, sl)} == {OrderStatus.PENDING_CANCEL}
    assert store.commits[commits:] == [(3, 1)]  # every leg and the list in one commit
    before = m.rows()
    m.cancel_list(lst.id)  # a retry: no state change, the cancels are re-sent
    assert m.rows() == before and len(store.commits) == commits + 1
    assert [type(r) for r in v.requests[requests:]] == [CancelOrder] * 6
    m.on_fill(e.id, "0.3", 9900)  # the entry traded before the cancel arrived
    m.on_fill(tp.id, "0.2", 10500)
    for o in (e, tp, sl):
        m.on_canceled(o.id)
    assert m.positions[S] == D("0.6") == e.filled_qty - tp.filled_qty
    assert m.lists[lst.id].status is ListStatus.CANCELED and store.load() == m.rows()


def test_o10_rejected_exit_is_retried_then_the_bracket_exits_at_market():
    m, v = make()
    lst = bracket(m, "1")
    e, tp, sl = legs(m, lst)
    m.on_fill(e.id, "1", 10000)
    m.on_rejected(sl.id, "Order would immediately trigger")
    retry = m.orders[f"{sl.id}-R"]
    assert retry.status is OrderStatus.PENDING and retry.qty == 1 and retry.retry_of == sl.id
    assert tp.linked_ids == (retry.id,) and retry.linked_ids == (tp.id,)
    m.on_rejected(retry.id, "Order would immediately trigger")
    exit_ = next(o for o in m.list_orders(lst.id) if o.role is Role.EXIT)
    assert (exit_.type, exit_.side, exit_.qty, exit_.reduce_only) == (
        OrderType.MARKET, Side.SELL, D(1), True)
    assert tp.status is OrderStatus.PENDING_CANCEL and sent(v, SubmitOrder, exit_.id)
    m.on_fill(exit_.id, "1", 9990)
    m.on_canceled(tp.id)
    assert m.positions[S] == 0 and m.lists[lst.id].status is ListStatus.DONE


# --- O11 -----------------------------------------------------------------------------------------

def _spec(**kw) -> OrderSpec:
    base = dict(instrument=S, side=Side.SELL, qty="1", type=OrderType.LIMIT, price=10500,
                reduce_only=True)
    base.update(kw)
    return OrderSpec(**base)


def _oco_legs(a: dict, b: dict) -> list[OrderSpec]:
    stop = dict(type=OrderType.STOP_MARKET, price=None, trigger_price=9500)
    return [_spec(id="a", linked=("b",), contingency=ContingencyType.OCO, **a),
            _spec(id="b", linked=("a",), contingency=ContingencyType.OCO, **{**stop, **b})]


def _bracket_specs(entry: dict | None = None, tp: dict | None = None,
                   sl: dict | None = None, kind=ContingencyType.OUO) -> list[OrderSpec]:
    head = dict(instrument=S, side=Side.BUY, qty="1", id="e", linked=("t", "s"),
                contingency=ContingencyType.OTO)
    take = dict(id="t", parent="e", linked=("s",), contingency=kind)
    stop = dict(id="s", parent="e", linked=("t",), contingency=kind, type=OrderType.STOP_MARKET,
                price=None, trigger_price=9500)
    return [OrderSpec(**{**head, **(entry or {})}), _spec(**{**take, **(tp or {})}),
            _spec(**{**stop, **(sl or {})})]


def _long(m):
    open_long(m, S, "2")


DENIALS = [
    # (name, setup, submit, code)
    ("SELL OCO take-profit at or below last", _long,
     lambda m: m.submit_oco(S, "SELL", 1, take_profit=10000, stop_loss=9500),
     DenialCode.OCO_PRICE_ORDER),
    ("SELL OCO stop at or above last", _long,
     lambda m: m.submit_oco(S, "SELL", 1, take_profit=10500, stop_loss=10000),
     DenialCode.OCO_PRICE_ORDER),
    ("BUY OCO take-profit above last", None,
     lambda m: m.submit_oco(S, "BUY", 1, take_profit=10100, stop_loss=10500, reduce_only=False),
     DenialCode.OCO_PRICE_ORDER),
    ("stop-limit on the wrong side", _long,
     lambda m: m.submit_oco(S, "SELL", 1, take_profit=10500, stop_loss=9500, stop_limit=9600),
     DenialCode.STOP_LIMIT_SIDE),
    ("unequal OCO leg quantities", _long,
     lambda m: m.submit_list(_oco_legs({}, {"qty": "0.5"})), DenialCode.UNEQUAL_LEG_QTY),
    ("OCO legs on two sides", _long,
     lambda m: m.submit_list(_oco_legs({}, {"side": Side.BUY, "reduce_only": False})),
     DenialCode.OCO_SIDE_MISMATCH),
    ("mixed venue", None,
     lambda m: m.submit_list([OrderSpec(S, Side.BUY, 1), OrderSpec(S, Side.BUY, 1, venue="X")]),
     DenialCode.MIXED_VENUE),
    ("mixed instrument with a position id", None,
     lambda m: m.submit_list([OrderSpec(S, Side.BUY, 1, position_id="P1"),
                              OrderSpec("ETHUSDT", Side.SELL, 1, position_id="P1")]),
     DenialCode.MIXED_INSTRUMENT_POSITION_ID),
    ("mixed instrument in an OCO", _long,
     lambda m: m.submit_list(_oco_legs({}, {"instrument": "ETHUSDT", "trigger_price": 190})),
     DenialCode.MIXED_INSTRUMENT),
    ("quantity rounds down below the step", None,
     lambda m: m.submit_order(OrderSpec(S, Side.BUY, "0.0004", OrderType.LIMIT, price=9000)),
     DenialCode.QTY_BELOW_MIN),
    ("notional below minimum", None,
     lambda m: m.submit_order(OrderSpec("ETHUSDT", Side.BUY, "0.02", OrderType.LIMIT, price=200)),
     DenialCode.NOTIONAL_BELOW_MIN),
    ("notional above the per-order maximum", None,
     lambda m: m.submit_order(OrderSpec(S, Side.BUY, "101")),
     DenialCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER),
    ("bracket prices out of order", None,
     lambda m: bracket(m, take_profit=9800, stop_loss=9500), DenialCode.BRACKET_PRICE_ORDER),
    ("exit closer than two ticks", None,
     lambda m: bracket(m, take_profit="10000.1"), DenialCode.DISTANCE_TOO_SMALL),
    ("exit closer than one spread", None,
     lambda m: (m.on_quote(S, 9900, 10100), bracket(m, take_profit=10050)),
     DenialCode.DISTANCE_TOO_SMALL),
    ("bracket exit not reduce-only", None,
     lambda m: m.submit_list(_bracket_specs(tp={"reduce_only": False})),
     DenialCode.CHILD_NOT_REDUCE_ONLY),
    ("bracket exit on the entry's side", None,
     lambda m: m.submit_list(_bracket_specs(tp={"side": Side.BUY, "price": 9000})),
     DenialCode.CHILD_SIDE),
    ("bracket children OCO instead of OUO", None,
     lambda m: m.submit_list(_bracket_specs(kind=ContingencyType.OCO)),
     DenialCode.UNSUPPORTED_LIST_SHAPE),
    ("asymmetric link", None,
     lambda m: m.submit_list(_bracket_specs(sl={"linked": ()})), DenialCode.ASYMMETRIC_LINK),
    ("parent not in the list", None,
     lambda m: m.submit_list(_bracket_specs(tp={"parent": "zz"})), DenialCode.INVALID_ORDER),
    ("parent cycle", None,
     lambda m: m.submit_list([
         OrderSpec(S, Side.BUY, 1, id="a", parent="b", linked=("b",),
                   contingency=ContingencyType.OTO),
         OrderSpec(S, Side.BUY, 1, id="b", parent="a", linked=("a",),
                   contingency=ContingencyType.OTO)]), DenialCode.CONTINGENCY_CYCLE),
    ("OTO child larger than its parent", None,
     lambda m: m.submit_oto(OrderSpec(S, Side.BUY, 1),
                            [OrderSpec(S, Side.SELL, 2, OrderType.LIMIT, price=10500)]),
     DenialCode.CHILD_QTY_EXCEEDS_PARENT),
    ("reduce-only with nothing to reduce", None,
     lambda m: m.submit_oco(S, "SELL", 1, take_profit=10500, stop_loss=9500),
     DenialCode.REDUCE_ONLY_WOULD_INCREASE_POSITION),
    ("too many open orders (list weight counts)", None,
     lambda m: (m.submit_order(OrderSpec("SOLUSDT", Side.BUY, 1, OrderType.LIMIT, price=19)),
                m.submit_oto(OrderSpec("SOLUSDT", Side.BUY, 1, OrderType.LIMIT, price=19),
                             [OrderSpec("SOLUSDT", Side.SELL, 1, OrderType.LIMIT, price=21)])),
     DenialCode.TOO_MANY_OPEN_ORDERS),
    ("no reference price", None,
     lambda m: m.submit_bracket("NEWUSDT", "BUY", 1, take_profit=2, stop_loss=1),
     DenialCode.NO_REFERENCE_PRICE),
    ("bracket against an opposite bracket", None,
     lambda m: (bracket(m), m.submit_bracket(S, "SELL", 1, take_profit=9500, stop_loss=10500)),
     DenialCode.BRACKET_SIDE_CONFLICT),
    ("unknown instrument", None,
     lambda m: m.submit_order(OrderSpec("XRPUSDT", Side.BUY, 1)), DenialCode.UNKNOWN_INSTRUMENT),
    ("good-till-date already past", None,
     lambda m: bracket(m, entry_price=9900, expire_ts=1), DenialCode.GTD_EXPIRED),
]


@pytest.mark.parametrize(("name", "setup", "submit", "code"), DENIALS,
                         ids=[d[0] for d in DENIALS])
def test_o11_each_rule_is_denied_with_a_stable_code(name, setup, submit, code):
    m, v = make()
    m.instruments["SOLUSDT"] = Instrument("SOLUSDT", D("0.001"), D("0.1"), D("0.1"),
                                          max_open_orders=2)
    m.instruments["NEWUSDT"] = Instrument("NEWUSDT", D("0.001"), D("0.1"))
    if setup:
        setup(m)
    rows, requests = m.rows(), len(v.requests)
    with pytest.raises(OrderDenied) as denied:
        submit(m)
    assert denied.value.code is code, denied.value
    if name.startswith(("too many", "bracket against")):
        return  # the first submission went through by design
    assert m.rows() == rows and len(v.requests) == requests  # nothing changed, nothing sent


def test_o11_a_multi_leg_denial_names_the_list():
    m, _ = make()
    _long(m)
    with pytest.raises(OrderDenied) as denied:
        m.submit_list(_oco_legs({}, {"qty": "0.5"}))
    assert denied.value.list_code is DenialCode.ORDER_LIST_DENIED
    assert str(denied.value).startswith("ORDER_LIST_DENIED: UNEQUAL_LEG_QTY")


def test_o11_rounding_is_side_conservative_and_quantities_round_down():
    m, v = make()
    lst = m.submit_bracket(S, "BUY", "0.0019", entry_price="9900.07", take_profit="10500.01",
                           stop_loss="9499.99")
    e, tp, sl = legs(m, lst)
    assert e.qty == tp.qty == D("0.001")  # down to the step
    assert e.price == D("9900.0")  # a buy never pays more than asked
    assert tp.price == D("10500.1")  # a sell never receives less
    assert sl.trigger_price == D("9500.0")  # a sell stop triggers no later than asked
    assert sent(v)[0].price == D("9900.0")


# --- O12 -----------------------------------------------------------------------------------------

def test_o12_one_leg_failing_notional_denies_the_whole_list():
    m, v = make()
    with pytest.raises(OrderDenied) as denied:
        m.submit_list([OrderSpec(S, Side.BUY, "0.01"), OrderSpec("ETHUSDT", Side.SELL, 1),
                       OrderSpec("SOLUSDT", Side.BUY, "0.1", id="small")])
    assert (denied.value.list_code, denied.value.code, denied.value.order_id) == (
        DenialCode.ORDER_LIST_DENIED, DenialCode.NOTIONAL_BELOW_MIN, "small")
    assert not v.requests and not m.orders


def test_o12_halted_denies_submit_and_modify_but_passes_cancel():
    m, v = make()
    e, _, _ = legs(m, bracket(m, entry_price=9900))
    m.trading_state = "HALTED"
    for attempt in (lambda: bracket(m), lambda: m.modify(e.id, price=9800)):
        with pytest.raises(OrderDenied) as denied:
            attempt()
        assert denied.value.code is DenialCode.TRADING_HALTED
    m.cancel(e.id)
    assert e.status is OrderStatus.PENDING_CANCEL and sent(v, CancelOrder, e.id)


def test_o12_reducing_denies_added_exposure_and_allows_reduce_only():
    m, _ = make()
    _long(m)
    m.trading_state = TradingState.REDUCING
    with pytest.raises(OrderDenied) as denied:
        bracket(m)
    assert denied.value.code is DenialCode.TRADING_STATE_REDUCING
    with pytest.raises(OrderDenied):
        m.submit_order(OrderSpec(S, Side.SELL, "3"))  # would flip the long into a short
    m.submit_oco(S, "SELL", "2", take_profit=10500, stop_loss=9500)
    m.submit_order(OrderSpec(S, Side.SELL, "1"))  # reduces the long


def test_o12_the_101st_submit_within_a_second_is_rate_limited():
    clock = Clock()
    m, _ = make(clock=clock)
    clock.frozen = True
    for _ in range(100):
        m.submit_order(OrderSpec("ETHUSDT", Side.BUY, 1, OrderType.LIMIT, price=150))
    with pytest.raises(OrderDenied) as denied:
        m.submit_order(OrderSpec("ETHUSDT", Side.BUY, 1, OrderType.LIMIT, price=150))
    assert denied.value.code is DenialCode.RATE_LIMIT_EXCEEDED
    clock.t += 1_000_000_000
    m.submit_order(OrderSpec("ETHUSDT", Side.BUY, 1, OrderType.LIMIT, price=150))


# --- O13 -----------------------------------------------------------------------------------------

def _book_before_crash(m: OrderManager):
    """A filled bracket with working exits, a pending bracket with held children, an OCO."""
    filled = bracket(m, "1")
    e, tp, _ = legs(m, filled)
    m.on_accepted(e.id)
    m.on_fill(e.id, "1", 10000)
    m.on_accepted(tp.id)
    pending = bracket(m, "0.5", entry_price=9900)
    m.on_accepted(pending.order_ids[0])
    open_long(m, "ETHUSDT", "2")
    m.submit_oco("ETHUSDT", "SELL", "2", take_profit=210, stop_loss=190)
    return filled, pending


def test_o13_restart_rebuilds_lists_and_held_children(tmp_path):
    store = SQLiteStore(tmp_path / "orders.sqlite")
    m, _ = make(store)
    filled, pending = _book_before_crash(m)
    rows = m.rows()
    store.close()  # the process dies: nothing else is written
    store = SQLiteStore(tmp_path / "orders.sqlite")
    venue = RecordingVenue()
    restored = OrderManager.restore(store, venue, INSTRUMENTS, clock=Clock())
    assert restored.rows() == rows == store.load()
    tp, sl = restored.list_orders(filled.id)[1:]
    assert sent(venue, ModifyOrder, tp.id) and sent(venue, SubmitOrder, sl.id)  # re-sent
    e2, tp2, sl2 = restored.list_orders(pending.id)
    assert tp2.status is sl2.status is OrderStatus.INITIALIZED
    restored.on_fill(e2.id, "0.5", 9900)  # held children are re-armed
    assert tp2.status is sl2.status is OrderStatus.PENDING and tp2.qty == D("0.5")
    assert restored.lists[pending.id].status is ListStatus.WORKING


def test_o13_children_of_a_closed_parent_with_a_flat_position_are_canceled(tmp_path):
    store = SQLiteStore(tmp_path / "orders.sqlite")
    m, _ = make(store)
    filled, _ = _book_before_crash(m)
    store.close()
    venue = RecordingVenue()
    restored = OrderManager.restore(SQLiteStore(tmp_path / "orders.sqlite"), venue, INSTRUMENTS,
                                    positions={S: 0}, clock=Clock())  # closed while we were down
    e, tp, sl = restored.list_orders(filled.id)
    assert e.status is OrderStatus.FILLED
    assert tp.status is sl.status is OrderStatus.PENDING_CANCEL
    assert {r.order_id for r in sent(venue, CancelOrder)} >= {tp.id, sl.id}


def test_o13_a_store_written_before_the_venue_terms_columns_is_upgraded(tmp_path):
    """A file from the version without ``venue_qty``/``venue_price`` gains them as NULL (checks
    fall back to the order's own size and limit); any other shape is refused by name."""
    import sqlite3

    path = tmp_path / "orders.sqlite"
    store = SQLiteStore(path)
    m, _ = make(store)
    _book_before_crash(m)
    rows = m.rows()
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE orders DROP COLUMN venue_price")
        conn.execute("ALTER TABLE orders DROP COLUMN venue_qty")
    old = SQLiteStore(path)
    loaded = old.load()
    assert loaded.orders.keys() == rows.orders.keys()
    assert all(r[:-2] == rows.orders[k][:-2] and r[-2:] == (None, None)
               for k, r in loaded.orders.items())
    restored = OrderManager.restore(old, RecordingVenue(), INSTRUMENTS, clock=Clock())
    assert restored.rows() == old.load()  # and it writes the new columns from here on
    old.close()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE lists RENAME COLUMN kind TO shape")
    with pytest.raises(ValueError, match=r"orders.sqlite: table lists has the columns"):
        SQLiteStore(path)
    with pytest.raises(ValueError, match="table lists"):  # not StoreLocked: the lock was let go
        SQLiteStore(path)


CRASH_SCRIPT = """
import os, sys
from decimal import Decimal as D
from bot4_dagster.trading.manager import OrderManager
from bot4_dagster.trading.orders import Instrument
from bot4_dagster.trading.store import SQLiteStore

class Dies:
    def submit(self, request):
        if request.order_id.endswith(".TP"):
            os._exit(137)  # killed after the commit, before the exits reach the venue
    def modify(self, request): pass
    def cancel(self, request): pass

btc = Instrument("BTCUSDT", D("0.1"), D("0.001"), min_notional=D(5))
m = OrderManager(Dies(), [btc], SQLiteStore(sys.argv[1]))
m.on_price("BTCUSDT", 10000)
lst = m.submit_bracket("BTCUSDT", "BUY", "1", take_profit=10500, stop_loss=9500)
m.on_accepted(lst.order_ids[0])
m.on_fill(lst.order_ids[0], "1", 10000)
"""


def test_o13_a_process_killed_between_commit_and_venue_resends_on_restore(tmp_path):
    path = tmp_path / "orders.sqlite"
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH_SCRIPT), str(path)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 137, done.stderr
    venue = RecordingVenue()
    m = OrderManager.restore(SQLiteStore(path), venue, INSTRUMENTS, clock=Clock())
    e, tp, sl = m.list_orders("L1")
    assert e.status is OrderStatus.FILLED and m.positions[S] == 1
    assert tp.status is sl.status is OrderStatus.PENDING  # committed before the venue call
    assert {(r.order_id, r.qty) for r in sent(venue)} == {(tp.id, D(1)), (sl.id, D(1))}


class FailingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def commit(self, orders, lists, positions, fills) -> None:
        if self.fail:
            raise OSError("disk full")
        super().commit(orders, lists, positions, fills)


def test_o13_a_failed_commit_leaves_no_trace_in_memory_or_at_the_venue():
    store = FailingStore()
    m, v = make(store)
    e, _, _ = legs(m, bracket(m))
    before, requests = m.rows(), len(v.requests)
    store.fail = True
    with pytest.raises(OSError):
        m.on_fill(e.id, "1", 10000)
    assert m.rows() == before == store.load() and len(v.requests) == requests
    store.fail = False
    m.on_fill(e.id, "1", 10000)  # the venue re-delivers; now it sticks
    e, tp, _ = m.list_orders(e.list_id)
    assert tp.status is OrderStatus.PENDING and m.positions[S] == 1


def test_duplicate_fill_is_ignored_and_store_is_single_owner(tmp_path):
    m, _ = make()
    e, tp, _ = legs(m, bracket(m))
    m.on_fill(e.id, "0.4", 10000, trade_id="t1")
    m.on_fill(e.id, "0.4", 10000, trade_id="t1")
    assert e.filled_qty == D("0.4") and tp.qty == D("0.4")
    store = SQLiteStore(tmp_path / "s.sqlite")
    with pytest.raises(RuntimeError, match="owned by another"):
        SQLiteStore(tmp_path / "s.sqlite")
    store.close()
    with pytest.raises(ValueError, match="restore"):
        make(m.store)


# --- the state machine ---------------------------------------------------------------------------

@dataclass
class VenueOrder:
    req: SubmitOrder
    qty: Decimal
    price: Decimal | None
    trigger: Decimal | None
    filled: Decimal = Decimal(0)
    accepted: bool = False
    cancel_requested: bool = False
    closed: bool = False


@dataclass
class MirrorVenue:
    """A venue mock with its own order book: it records requests (idempotently, as the venue
    contract says) and the machine draws venue events only from what this venue holds."""

    orders: dict[str, VenueOrder] = field(default_factory=dict)
    positions: dict[str, Decimal] = field(default_factory=dict)
    denied_seen: list[str] = field(default_factory=list)

    def submit(self, r: SubmitOrder) -> None:
        if r.order_id not in self.orders:
            self.orders[r.order_id] = VenueOrder(r, r.qty, r.price, r.trigger_price)

    def modify(self, r: ModifyOrder) -> None:
        vo = self.orders.get(r.order_id)
        if vo is not None and not vo.closed:
            vo.qty, vo.price, vo.trigger = r.qty, r.price, r.trigger_price

    def cancel(self, r: CancelOrder) -> None:
        vo = self.orders.get(r.order_id)
        if vo is not None and not vo.closed:
            vo.cancel_requested = True

    def reducible(self, vo: VenueOrder) -> Decimal:
        pos = self.positions.get(vo.req.instrument, D(0))
        return max(D(0), -pos * vo.req.side.sign) if vo.req.reduce_only else vo.qty


STEPS = {i.symbol: i.step for i in INSTRUMENTS}


def _reachable(table):
    """status -> every status reachable from it along the table's edges (itself included)."""
    out = {}
    for start in table:
        seen, todo = {start}, [start]
        while todo:
            for nxt in table[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        out[start] = frozenset(seen)
    return out


REACHABLE = _reachable(ORDER_STATE_TABLE)


class OrderMachine(RuleBasedStateMachine):
    durable = False

    def __init__(self) -> None:
        super().__init__()
        self.venue = MirrorVenue()
        self.clock = Clock()
        self.tmp = None

    @initialize(trigger=st.sampled_from(["partial", "full"]),
                policy=st.sampled_from(["cancel_siblings", "reduce_absolute",
                                        "reduce_proportional", "none"]))
    def start(self, trigger, policy):
        self.config = OrderConfig(oto_trigger=trigger, on_partial_fill=policy)
        self.store = self._new_store()
        self.m = OrderManager(self.venue, INSTRUMENTS, self.store, config=self.config,
                              clock=self.clock)
        self._prices(self.m)

    def _new_store(self):
        return MemoryStore()

    @staticmethod
    def _prices(m):
        for symbol, price in REF.items():
            m.on_price(symbol, price)

    def _submit(self, fn) -> None:
        before = self.m.rows()
        try:
            fn()
        except OrderDenied:
            assert self.m.rows() == before

    def _pick(self, data, ids):
        ids = sorted(ids)
        return data.draw(st.sampled_from(ids)) if ids else None

    # --- commands --------------------------------------------------------------------------------

    @rule(side=st.sampled_from(["BUY", "SELL"]), steps=st.integers(1, 3000),
          limit=st.booleans(), stop_limit=st.booleans())
    def submit_bracket(self, side, steps, limit, stop_limit):
        sign = 1 if side == "BUY" else -1
        self._submit(lambda: self.m.submit_bracket(
            S, side, steps * BTC.step, take_profit=10000 + sign * 500,
            stop_loss=10000 - sign * 500, entry_price=10000 - sign * 100 if limit else None,
            stop_limit=10000 - sign * 520 if stop_limit else None))

    @rule(steps=st.integers(1, 400), policy=st.sampled_from(
        [None, "cancel_siblings", "reduce_absolute", "reduce_proportional", "none"]))
    def submit_oco(self, steps, policy):
        pos = self.m.positions.get("ETHUSDT", D(0))
        side = "SELL" if pos >= 0 else "BUY"
        sign = -1 if side == "SELL" else 1
        self._submit(lambda: self.m.submit_oco(
            "ETHUSDT", side, steps * ETH.step, take_profit=200 - sign * 10,
            stop_loss=200 + sign * 10, on_partial_fill=policy))

    @rule(side=st.sampled_from([Side.BUY, Side.SELL]), steps=st.integers(3, 300),
          share=st.integers(1, 100), two=st.booleans())
    def submit_oto(self, side, steps, share, two):
        qty = steps * ETH.step
        child = ETH.round_qty(qty * share / 100) or ETH.step
        price = D(200) - side.sign * 20
        kids = [OrderSpec("ETHUSDT", side.opposite, child, OrderType.LIMIT, price=price)] * (
            2 if two else 1)
        self._submit(lambda: self.m.submit_oto(OrderSpec("ETHUSDT", side, qty), kids))

    @rule(a=st.integers(3, 300), b=st.integers(3, 300), side=st.sampled_from([Side.BUY, Side.SELL]))
    def submit_multi(self, a, b, side):
        self._submit(lambda: self.m.submit_list([
            OrderSpec("ETHUSDT", side, a * ETH.step),
            OrderSpec("SOLUSDT", side.opposite, b * SOL.step)]))

    @rule(data=st.data())
    def user_cancel(self, data):
        oid = self._pick(data, [i for i, o in self.m.orders.items() if not o.is_closed])
        if oid:
            self.m.cancel(oid)

    @rule(data=st.data())
    def user_cancel_list(self, data):
        lid = self._pick(data, [i for i, x in self.m.lists.items() if not x.is_closed])
        if lid:
            self.m.cancel_list(lid)

    @rule(data=st.data(), qty_factor=st.sampled_from([None, "0.5", "1.5"]),
          move=st.sampled_from([None, -150, -20, 20, 150]))
    def user_modify(self, data, qty_factor, move):
        oid = self._pick(data, [i for i, o in self.m.orders.items()
                                if not o.is_closed and o.role is not Role.EXIT])
        if not oid:
            return
        o = self.m.orders[oid]
        kw = {}
        if qty_factor:
            kw["qty"] = o.qty * D(qty_factor)
        if move and o.price is not None:
            kw["price"] = o.price + move * (1 if o.instrument == S else D("0.01"))
        elif move and o.trigger_price is not None:
            kw["trigger_price"] = o.trigger_price + move * (1 if o.instrument == S else D("0.01"))
        if kw:
            self._submit(lambda: self.m.modify(oid, **kw))

    @rule(state=st.sampled_from(list(TradingState)))
    def set_trading_state(self, state):
        self.m.trading_state = state

    # --- venue events ----------------------------------------------------------------------------

    def _venue_pick(self, data, predicate):
        return self._pick(data, [i for i, vo in self.venue.orders.items()
                                 if not vo.closed and predicate(vo)])

    @rule(data=st.data())
    def accept_again(self, data):
        self.accept(data)

    @rule(data=st.data())
    def accept(self, data):
        oid = self._venue_pick(data, lambda vo: not vo.accepted)
        if oid:
            self.venue.orders[oid].accepted = True
            self.m.apply(OrderAccepted(oid))

    @rule(data=st.data(), share=st.sampled_from([None, 10, 40, 99]))
    def fill(self, data, share):
        self._fill(data, share)

    @rule(data=st.data(), share=st.sampled_from([None, 50]))
    def fill_again(self, data, share):  # venue events outnumber commands, as in a live book
        self._fill(data, share)

    @rule(data=st.data())
    def fill_fully(self, data):
        self._fill(data, None)

    def _fill(self, data, share):
        oid = self._venue_pick(data, lambda vo: True)
        if not oid:
            return
        vo = self.venue.orders[oid]
        step = STEPS[vo.req.instrument]
        room = min(vo.qty - vo.filled, self.venue.reducible(vo))
        qty = room if share is None else (room * share / 100 // step) * step
        if qty <= 0:
            return
        vo.filled += qty
        vo.closed = vo.filled == vo.qty
        pos = self.venue.positions
        pos[vo.req.instrument] = pos.get(vo.req.instrument, D(0)) + qty * vo.req.side.sign
        price = vo.price or vo.trigger or REF[vo.req.instrument]
        self.m.apply(OrderFilled(oid, qty, price,
                                 trade_id=f"t{len(self.venue.orders)}-{vo.filled}"))

    @rule(data=st.data())
    def cancel_ack(self, data):
        oid = self._venue_pick(data, lambda vo: vo.cancel_requested)
        if oid:
            self.venue.orders[oid].closed = True
            self.m.apply(OrderCanceled(oid))

    @rule(data=st.data(), expire=st.booleans())
    def venue_closes(self, data, expire):
        oid = self._venue_pick(data, lambda vo: vo.accepted)
        if oid:
            self.venue.orders[oid].closed = True
            self.m.apply(OrderExpired(oid) if expire else OrderCanceled(oid))

    @rule(data=st.data())
    def reject(self, data):
        oid = self._venue_pick(data, lambda vo: not vo.accepted and vo.filled == 0)
        if oid:
            self.venue.orders[oid].closed = True
            self.m.apply(OrderRejected(oid, "venue says no"))

    @rule(symbol=st.sampled_from([S, "ETHUSDT"]), keep=st.sampled_from([0, 25, 50, 90]))
    def outside_reduction(self, symbol, keep):
        pos = self.venue.positions.get(symbol, D(0))
        step = STEPS[symbol]
        new = (abs(pos) * keep / 100 // step) * step * (1 if pos >= 0 else -1)
        self.venue.positions[symbol] = new
        self.m.on_position(symbol, new)

    @rule()
    def restart(self):
        rows = self.m.rows()
        self.store = self._reopen()
        self.m = OrderManager.restore(self.store, self.venue, INSTRUMENTS, config=self.config,
                                      clock=self.clock)
        self._prices(self.m)
        assert self.m.rows() == rows  # restoring a consistent book changes nothing

    def _reopen(self):
        return self.store

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def every_status_change_is_in_the_table(self):
        """Seen from outside, between steps: each order's status moved only along
        ORDER_STATE_TABLE (one step may take several of its edges)."""
        seen = self.__dict__.setdefault("_statuses", {})
        for o in self.m.orders.values():
            old = seen.get(o.id, OrderStatus.INITIALIZED)
            assert o.status in REACHABLE[old], f"{o.id}: {old} -> {o.status}"
            seen[o.id] = o.status

    @invariant()
    def store_equals_memory(self):
        assert self.store.load() == self.m.rows()

    @invariant()
    def positions_reconcile_with_the_venue(self):
        for symbol in REF:
            assert self.m.positions.get(symbol, D(0)) == self.venue.positions.get(symbol, D(0))

    @invariant()
    def venue_mirrors_the_manager(self):
        for o in self.m.orders.values():
            vo = self.venue.orders.get(o.id)
            if o.status in (OrderStatus.INITIALIZED, OrderStatus.DENIED) or (
                    vo is None and o.status is OrderStatus.CANCELED):
                assert vo is None  # never sent: held, denied, or cancelled before release
            elif o.status in WORKING:
                assert vo is not None and not vo.closed and not vo.cancel_requested
                assert (vo.qty, vo.price, vo.trigger) == (o.qty, o.price, o.trigger_price)
            elif o.status is OrderStatus.PENDING_CANCEL:
                assert vo is not None and vo.cancel_requested and not vo.closed

    @invariant()
    def brackets_protect_exactly_their_position(self):
        total = {Side.BUY: D(0), Side.SELL: D(0)}
        for lst in self.m.lists.values():
            if lst.kind is not ListKind.BRACKET:
                continue
            e, *exits = self.m.list_orders(lst.id)
            open_qty = self.m.bracket_open_qty(lst.id)
            assert open_qty >= 0
            total[e.side] += open_qty
            working = [x for x in exits if x.status in WORKING]
            assert all(x.leaves == open_qty for x in working)
            if open_qty == 0:
                assert not working
            elif not lst.cancel_requested and lst.released:
                assert working, f"{lst.id} holds {open_qty} without a working exit"
            if lst.released is False and not lst.cancel_requested:
                assert self.config.oto_trigger.value == "full" or e.filled_qty == 0
        pos = self.m.positions.get(S, D(0))
        assert total[Side.BUY] == max(pos, D(0)) and total[Side.SELL] == max(-pos, D(0))
        book = self.m._book  # the cached exposure that lets allotment skip the bracket loop
        for symbol, brackets in book.brackets.items():
            assert book.exposure[symbol] == sum(book.bracket_open(x) for x in brackets.values())

    @invariant()
    def nothing_reduce_only_works_on_a_flat_position(self):
        for o in self.m.orders.values():
            if o.reduce_only and o.status in WORKING:
                pos = self.m.positions.get(o.instrument, D(0))
                assert pos * o.side.sign < 0 and o.leaves <= abs(pos)

    @invariant()
    def list_status_follows_the_legs(self):
        for lst in self.m.lists.values():
            orders = self.m.list_orders(lst.id)
            done = all(o.status in TERMINAL for o in orders)
            assert (lst.status in LIST_TERMINAL) == done
            if lst.status is ListStatus.PENDING:
                assert not any(o.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
                                            OrderStatus.FILLED) for o in orders)
            if lst.status is ListStatus.REJECTED:
                assert lst.rejected and not any(o.filled_qty for o in orders)
            live = {o.id for o in orders if o.status not in TERMINAL}
            for o in orders:  # links among live legs are symmetric
                if o.id in live and o.contingency in (ContingencyType.OUO, ContingencyType.OCO):
                    for link in o.linked_ids:
                        if link in live:
                            assert o.id in self.m.orders[link].linked_ids


class DurableOrderMachine(OrderMachine):
    """The same machine on SQLite files; a restart closes and reopens the file."""

    def _new_store(self):
        self.tmp = tempfile.TemporaryDirectory()
        return SQLiteStore(f"{self.tmp.name}/orders.sqlite", synchronous="OFF")

    def _reopen(self):
        self.store.close()
        return SQLiteStore(f"{self.tmp.name}/orders.sqlite", synchronous="OFF")

    def teardown(self):
        if self.tmp is not None:
            self.store.close()
            self.tmp.cleanup()


def test_a_held_oto_child_resized_after_a_partial_fill_is_released_as_a_restart_would():
    """Found by the state machine: a partial fill too small to release any of the child, then a
    larger child. The manager must release what the parent's fill now covers at once, not only
    when a restart re-syncs the list."""
    venue, clock = MirrorVenue(), Clock()
    store = MemoryStore()
    m = OrderManager(venue, INSTRUMENTS, store, config=OrderConfig(oto_trigger="partial"),
                     clock=clock)
    for symbol, price in REF.items():
        m.on_price(symbol, price)
    m.submit_oto(OrderSpec("ETHUSDT", Side.BUY, D("0.40")),
                 [OrderSpec("ETHUSDT", Side.SELL, D("0.07"), OrderType.LIMIT, price=D(180))])
    venue.orders["L1.P"].filled = D("0.04")
    venue.positions["ETHUSDT"] = D("0.04")
    m.apply(OrderFilled("L1.P", D("0.04"), D(200), trade_id="t1"))
    assert m.orders["L1.C1"].status is OrderStatus.INITIALIZED  # 0.07 x 10 % is below a step
    m.modify("L1.C1", qty=D("0.10"))
    assert m.orders["L1.C1"].status is OrderStatus.PENDING and m.orders["L1.C1"].qty == D("0.01")
    restored = OrderManager.restore(store, venue, INSTRUMENTS, config=m.config, clock=clock)
    for symbol, price in REF.items():
        restored.on_price(symbol, price)
    assert restored.rows() == m.rows()


# 1,000 random sequences per run here (600 in memory, 400 durable), and 500 more in
# test_order_hardening's machine, which runs the same rules among its hostile ones (about 30 s in
# all); a 12,000-sequence run of 60 steps passed too
MACHINE = settings(max_examples=600, stateful_step_count=40, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestOrderMachine = OrderMachine.TestCase
TestOrderMachine.settings = MACHINE
TestDurableOrderMachine = DurableOrderMachine.TestCase
TestDurableOrderMachine.settings = settings(MACHINE, max_examples=400, stateful_step_count=30)

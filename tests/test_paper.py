"""Paper exchange (``bot4_dagster.trading.paper``): matching rules on hand-made prints and bars,
then the real Binance BTCUSDT trades of 2020-02-22 and real FTX 1-minute bars replayed with
brackets placed by a simple rule. Every fill is checked against the tape: the print it names
exists, was printed at or after the order went live, at the fill's time; the price is the print
moved only by the documented slippage (takers) or the limit price with the print strictly
through it (limits); our fills on one print never exceed its amount; fees are qty * price * bps.
Positions, cash and equity are then rebuilt from the fills and must equal the exchange's and the
order manager's.
"""

from __future__ import annotations

from collections import defaultdict, deque
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pandas as pd
import pytest
from conftest import FTX, TRADES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4_dagster.trading.manager import OrderManager
from bot4_dagster.trading.orders import (
    WORKING,
    DenialCode,
    Instrument,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderType,
    Side,
)
from bot4_dagster.trading.paper import (
    Bar,
    FeeModel,
    PaperExchange,
    SlippageModel,
    Trade,
    pump,
    trades_from_frame,
)
from bot4_dagster.trading.venue import CancelOrder, ModifyOrder, SubmitOrder

D = Decimal
S = "BTCUSDT"
BTC = Instrument(S, tick=D("0.1"), step=D("0.001"))
MS = 1_000_000


def exchange(**kw) -> PaperExchange:
    kw.setdefault("slippage", SlippageModel(D(1)))
    kw.setdefault("fees", FeeModel(D(2), D(4)))
    return PaperExchange([BTC], **kw)


def req(oid, side, type_=OrderType.MARKET, qty="1", price=None, trigger=None,
        reduce_only=False, linked=(), expire=None) -> SubmitOrder:
    return SubmitOrder(oid, S, Side(side), type_, D(qty), None if price is None else D(price),
                       None if trigger is None else D(trigger), reduce_only, None, linked,
                       expire, 0)


def prints(x: PaperExchange, *rows) -> list:
    """Feed (ms, price, amount[, aggressor]) prints; return the events they caused."""
    for row in rows:
        ms, price, amount, *side = row
        x.on_trade(S, Trade(ms * MS, D(str(price)), D(str(amount)),
                            Side(side[0].upper()) if side else Side.BUY, f"t{ms}"))
    return x.events()


def fills(events) -> list[tuple[str, Decimal, Decimal, str]]:
    return [(e.order_id, e.qty, e.price, e.liquidity) for e in events if isinstance(e, OrderFilled)]


def up(p, tick=BTC.tick):
    return (p / tick).to_integral_value(ROUND_CEILING) * tick


def down(p, tick=BTC.tick):
    return (p / tick).to_integral_value(ROUND_FLOOR) * tick


# --- prints --------------------------------------------------------------------------------------

def test_market_fills_on_later_prints_slipped_and_never_more_than_printed():
    x = exchange()
    prints(x, (0, 10000, 5))
    x.submit(req("m", "BUY", qty="0.5"))
    assert x.events() == [OrderAccepted("m", 0)]
    got = fills(prints(x, (1, 10000, "0.2"), (2, 10010, 1)))
    assert got == [("m", D("0.2"), up(D(10000) * D("1.0001")), "TAKER"),
                   ("m", D("0.3"), up(D(10010) * D("1.0001")), "TAKER")]
    fee = sum(f.fee for f in x.fills)
    assert fee == (D("0.2") * got[0][2] + D("0.3") * got[1][2]) * 4 / 10_000
    assert x.position(S) == D("0.5") and x.cash(S) == -(D("0.2") * got[0][2]
                                                       + D("0.3") * got[1][2]) - fee


def test_latency_keeps_an_order_off_prints_until_it_is_live():
    x = exchange(latency_ns=5 * MS)
    prints(x, (0, 10000, 1))
    x.submit(req("m", "SELL", qty="0.1"))
    assert not fills(prints(x, (1, 10000, 1), (4, 10000, 1)))
    assert fills(prints(x, (5, 9990, 1))) == [("m", D("0.1"), down(D(9990) * D("0.9999")),
                                               "TAKER")]
    assert x.activations["m"] == (2, 5 * MS)


def test_limit_fills_only_on_prints_strictly_through_at_its_own_price():
    x = exchange()
    prints(x, (0, 10000, 1))
    x.submit(req("b", "BUY", OrderType.LIMIT, "1", price=9990))
    x.submit(req("s", "SELL", OrderType.LIMIT, "1", price=10010))
    x.events()
    assert not fills(prints(x, (1, 9990, 5, "sell"), (2, 10010, 5, "buy")))  # at, not through
    assert fills(prints(x, (3, "9989.9", "0.3", "sell"))) == [("b", D("0.3"), D(9990), "MAKER")]
    assert fills(prints(x, (4, 10500, 2))) == [("s", D(1), D(10010), "MAKER")]
    assert x.fills[-1].fee == D(10010) * 2 / 10_000


def test_stop_market_triggers_on_touch_and_a_gap_fills_at_the_print():
    x = exchange()
    prints(x, (0, 10000, 1))
    x.submit(req("stop", "SELL", OrderType.STOP_MARKET, "1", trigger=9950))
    assert not fills(prints(x, (1, 9960, 1)))
    assert fills(prints(x, (2, 9940, 1))) == [("stop", D(1), down(D(9940) * D("0.9999")),
                                               "TAKER")]


def test_stop_limit_rests_as_a_limit_after_its_trigger():
    x = exchange()
    prints(x, (0, 10000, 1))
    x.submit(req("a", "SELL", OrderType.STOP_LIMIT, "1", price=9945, trigger=9950))
    x.submit(req("b", "SELL", OrderType.STOP_LIMIT, "1", price=9945, trigger=9950))
    x.events()
    got = fills(prints(x, (1, 9948, "0.4")))  # triggers both; 9948 is through 9945
    assert got == [("a", D("0.4"), D(9945), "TAKER")]
    assert not fills(prints(x, (2, 9940, 1)))  # below the limit: rests
    assert fills(prints(x, (3, 9946, 5))) == [("a", D("0.6"), D(9945), "TAKER"),
                                              ("b", D(1), D(9945), "TAKER")]


def test_one_print_is_shared_by_all_our_orders():
    x = exchange()
    prints(x, (0, 10000, 1))
    x.submit(req("m1", "BUY", qty="0.5"))
    x.submit(req("m2", "BUY", qty="0.5"))
    x.events()
    assert [(o, q) for o, q, _, _ in fills(prints(x, (1, 10000, "0.6")))] == [
        ("m1", D("0.5")), ("m2", D("0.1"))]


def test_reduce_only_fills_only_what_reduces_and_is_rejected_when_flat():
    x = exchange()
    prints(x, (0, 10000, 1))
    x.submit(req("r", "SELL", OrderType.LIMIT, "1", price=10100, reduce_only=True))
    assert isinstance(x.events()[0], OrderRejected)
    x.submit(req("m", "BUY", qty="0.3"))
    prints(x, (1, 10000, 1))
    x.submit(req("r2", "SELL", OrderType.LIMIT, "1", price=10100, reduce_only=True))
    assert fills(prints(x, (2, 10200, 5))) == [("r2", D("0.3"), D(10100), "MAKER")]
    assert x.position(S) == 0 and x.working(S) == ["r2"]


def test_submit_is_idempotent_cancel_and_modify_apply():
    x = exchange()
    prints(x, (0, 10000, 1))
    x.submit(req("b", "BUY", OrderType.LIMIT, "1", price=9000))
    x.submit(req("b", "BUY", OrderType.LIMIT, "1", price=9000))
    assert x.events() == [OrderAccepted("b", 0)]
    x.modify(ModifyOrder("b", S, D(2), D(9990), None, 0))
    assert fills(prints(x, (1, 9980, 5))) == [("b", D(2), D(9990), "MAKER")]
    x.submit(req("c", "BUY", OrderType.LIMIT, "1", price=9000))
    x.cancel(CancelOrder("c", S, 0))
    x.cancel(CancelOrder("c", S, 0))
    assert x.events() == [OrderAccepted("c", 1 * MS), OrderCanceled("c", 1 * MS)]


def test_fills_report_leaves_and_a_modify_to_what_traded_completes_the_order():
    x = exchange()
    prints(x, (0, 10000, 1))
    x.submit(req("b", "BUY", OrderType.LIMIT, "1", price=9990))
    x.events()
    [filled] = prints(x, (1, 9980, "0.4"))
    assert (filled.qty, filled.leaves) == (D("0.4"), D("0.6"))
    x.modify(ModifyOrder("b", S, D("0.4"), D(9990), None, 0))  # e.g. capped to a position
    assert x.working(S) == [] and x.events() == []
    x.modify(ModifyOrder("b", S, D(1), D(9990), None, 0))  # finished: nothing to modify
    assert x.working(S) == [] and not prints(x, (2, 9000, 5))


def test_good_till_date_orders_expire():
    x = exchange()
    prints(x, (0, 10000, 1))
    x.submit(req("g", "BUY", OrderType.LIMIT, "1", price=9000, expire=10 * MS))
    x.events()
    assert prints(x, (9, 10000, 1)) == []
    assert prints(x, (10, 8000, 1)) == [OrderExpired("g", 10 * MS)]


# --- bars ----------------------------------------------------------------------------------------

def bar(x, minute, o, h, low, c):
    x.on_bar(S, Bar(minute * 60_000 * MS, D(o), D(h), D(low), D(c)))
    return x.events()


def test_bar_rules_market_open_stop_gap_limit_through_and_worst_case_same_bar():
    x = exchange(slippage=SlippageModel(D(0)))
    bar(x, 0, 10000, 10000, 10000, 10000)
    x.submit(req("m", "BUY", qty="2"))
    x.events()
    assert fills(bar(x, 1, 10050, 10100, 10000, 10080)) == [("m", D(2), D(10050), "TAKER")]
    x.submit(req("tp", "SELL", OrderType.LIMIT, "1", price=10200, reduce_only=True,
                 linked=("sl",)))
    x.submit(req("sl", "SELL", OrderType.STOP_MARKET, "1", trigger=9900, reduce_only=True,
                 linked=("tp",)))
    x.submit(req("tp2", "SELL", OrderType.LIMIT, "1", price=10150, reduce_only=True))
    x.events()
    assert not fills(bar(x, 2, 10080, 10150, 9950, 10100))  # touches tp2 exactly: no fill
    got = fills(bar(x, 3, 10100, 10300, 9800, 10000))  # tp and sl both reached
    assert got == [("sl", D(1), D(9900), "TAKER"), ("tp2", D(1), D(10150), "MAKER")]
    x.submit(req("gap", "SELL", OrderType.STOP_MARKET, "1", trigger=9500))
    x.events()
    assert fills(bar(x, 4, 9300, 9400, 9200, 9350)) == [("gap", D(1), D(9300), "TAKER")]


# --- the manager on the exchange: races inside one print ------------------------------------------

class TapeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def on_exchange(**kw):
    x = exchange(**kw)
    clock = TapeClock()
    m = OrderManager(x, [BTC], clock=clock)
    m.on_price(S, 10000)
    return x, m, clock


def tape(x, m, clock, *rows) -> None:
    for ms, price, amount in rows:
        clock.now = ms * MS
        x.on_trade(S, Trade(ms * MS, D(str(price)), D(str(amount)), Side.BUY, f"t{ms}"))
        pump(x, m)
        m.on_price(S, D(str(price)))


def in_step(x, m) -> None:
    """The book and the exchange agree, and every bracket's working exits cover its position."""
    position = x.position(S)
    assert m.positions.get(S, D(0)) == position
    assert {o.id for o in m.orders.values() if o.status in WORKING} == set(x.working(S))
    for lst in m.lists.values():
        if lst.kind.value == "BRACKET":
            open_qty = m.bracket_open_qty(lst.id)
            assert open_qty >= 0
            assert all(o.leaves == open_qty for o in m.list_orders(lst.id)[1:]
                       if o.status in WORKING)
    for o in m.orders.values():
        if o.reduce_only and o.status in WORKING:
            assert position * o.side.sign < 0 and o.leaves <= abs(position)


def test_a_stop_filled_before_its_upsize_arrived_is_replaced():
    """One print fills the rest of the entry and triggers the stop at its old size: the upsize
    reaches an order the exchange has finished, so the stop's side is placed again."""
    x, m, clock = on_exchange(slippage=SlippageModel(D(0)))
    lst = m.submit_bracket(S, "SELL", "0.002", take_profit=9995, stop_loss=10005)
    tape(x, m, clock, (1, 10000, "0.001"))  # half the entry: exits released at 0.001
    tape(x, m, clock, (2, 10005, "0.002"))  # the rest of the entry, and the stop at 0.001
    _, tp, sl, retry = m.list_orders(lst.id)
    assert (sl.status, sl.qty, sl.filled_qty) == (OrderStatus.FILLED, D("0.001"), D("0.001"))
    assert retry.retry_of == sl.id and retry.leaves == tp.leaves == D("0.001")
    in_step(x, m)
    tape(x, m, clock, (3, 10006, 1))
    assert x.position(S) == 0 and m.lists[lst.id].status.value == "DONE"
    in_step(x, m)


_STEP = st.one_of(
    st.tuples(st.just("print"), st.integers(-30, 30), st.integers(1, 40)),
    st.tuples(st.just("bar"), st.integers(-30, 30), st.integers(0, 40), st.integers(0, 40)),
    st.tuples(st.just("bracket"), st.booleans(), st.booleans(), st.integers(1, 30),
              st.integers(5, 60)),
    st.tuples(st.just("oco"), st.integers(5, 60), st.sampled_from(
        ["cancel_siblings", "reduce_absolute", "reduce_proportional", "none"])),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("modify"), st.integers(0, 50), st.integers(-20, 20)),
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEP, min_size=5, max_size=80), trigger=st.sampled_from(["partial", "full"]))
def test_random_tapes_keep_the_book_and_the_exchange_in_step(steps, trigger):
    """Random walks of prints and bars with brackets, protective OCOs, cancels and re-prices:
    several of our orders trade on one print or bar before the manager hears of any, as on a
    real venue."""
    x = exchange()
    clock = TapeClock()
    m = OrderManager(x, [BTC], clock=clock, oto_trigger=trigger)
    price, ms = D(10000), 0
    m.on_price(S, price)
    for kind, *args in steps:
        try:
            if kind == "print":
                price, ms = max(D(100), price + args[0]), ms + 1
                tape(x, m, clock, (ms, price, args[1] * BTC.step))
            elif kind == "bar":
                close, ms = max(D(100), price + args[0]), ms + 1
                high, low = max(price, close) + args[1], max(D(50), min(price, close) - args[2])
                clock.now = ms * MS
                x.on_bar(S, Bar(ms * MS, price, high, low, close))
                price = close
                pump(x, m)
                m.on_price(S, price)
            elif kind == "bracket":
                side = Side.BUY if args[0] else Side.SELL
                d = D(args[3])
                entry = price - side.sign * d / 2 if args[1] else None
                e = price if entry is None else entry
                m.submit_bracket(S, side, args[2] * BTC.step, entry_price=entry,
                                 take_profit=e + side.sign * d, stop_loss=e - side.sign * d)
            elif kind == "oco" and (position := m.positions.get(S, D(0))):
                side = Side.SELL if position > 0 else Side.BUY
                d = -side.sign * D(args[0])
                m.submit_oco(S, side, abs(position), take_profit=price + d, stop_loss=price - d,
                             on_partial_fill=args[1])
            elif kind == "cancel" and (live := sorted(i for i, x_ in m.lists.items()
                                                      if not x_.is_closed)):
                m.cancel_list(live[args[0] % len(live)])
            elif kind == "modify" and (priced := sorted(
                    i for i, o in m.orders.items() if o.status in WORKING and o.price)):
                o = m.orders[priced[args[0] % len(priced)]]
                m.modify(o.id, price=o.price + args[1] * BTC.tick)
        except OrderDenied:
            pass
        pump(x, m)
        in_step(x, m)


# --- the real tape -------------------------------------------------------------------------------

BINANCE = Instrument(S, tick=D("0.01"), step=D("0.001"), min_notional=D(5))
FEES = FeeModel(D(2), D(4))
SLIP = SlippageModel(D("0.5"))


def _place(m, tape_window, t, n, clock) -> None:
    """Every 3 minutes: a bracket on the side of the last 3 minutes' move, exits at half that
    window's range; every other one enters with a limit a quarter range away, good for 2 min."""
    prices = [p for _, p in tape_window]
    rng = max(prices) - min(prices)
    side = Side.BUY if t.price >= prices[0] else Side.SELL
    sign = side.sign
    if n % 2:
        entry = t.price - sign * rng / 4
        m.submit_bracket(S, side, "0.05", entry_price=entry, take_profit=entry + sign * rng / 2,
                         stop_loss=entry - sign * rng / 2, expire_ts=clock.now + 120_000 * MS)
    else:
        m.submit_bracket(S, side, "0.05", take_profit=t.price + sign * rng / 2,
                         stop_loss=t.price - sign * rng / 2)


@pytest.fixture(scope="module")
def replay():
    trades = trades_from_frame(pd.read_csv(TRADES))
    clock = TapeClock()
    x = PaperExchange([BINANCE], fees=FEES, slippage=SLIP, latency_ns=5 * MS)
    m = OrderManager(x, [BINANCE], clock=clock)
    window: deque = deque()
    next_at, n, denied = trades[0].ts + 180_000 * MS, 0, defaultdict(int)
    for t in trades:
        clock.now = t.ts
        x.on_trade(S, t)
        pump(x, m)
        m.on_price(S, t.price)
        window.append((t.ts, t.price))
        while window[0][0] < t.ts - 180_000 * MS:
            window.popleft()
        if t.ts >= next_at:
            next_at += 180_000 * MS
            n += 1
            try:
                _place(m, window, t, n, clock)
            except OrderDenied as d:
                denied[d.code] += 1
            pump(x, m)
    return trades, x, m, n, denied


def test_replay_places_and_closes_brackets(replay):
    _, x, m, n, denied = replay
    assert n >= 40 and set(denied) <= {DenialCode.BRACKET_SIDE_CONFLICT,
                                      DenialCode.DISTANCE_TOO_SMALL}
    roles = defaultdict(int)
    for o in m.orders.values():
        if o.filled_qty:
            roles[o.role.value] += 1
    assert roles["ENTRY"] >= 20 and roles["TAKE_PROFIT"] >= 5 and roles["STOP_LOSS"] >= 5
    assert any(o.status.value == "EXPIRED" for o in m.orders.values())
    assert any(f.qty < D("0.05") for f in x.fills)  # prints smaller than our size: partials


def test_replay_every_fill_matches_the_tape(replay):
    trades, x, m, _, _ = replay
    taken: dict[int, Decimal] = defaultdict(Decimal)
    for f in x.fills:
        t = trades[f.print_seq - 1]
        assert (t.trade_id, t.ts, t.price) == (f.trade_id, f.ts, f.print_price)
        live_seq, live_ts = x.activations[f.order_id]
        assert f.print_seq >= live_seq and t.ts >= live_ts  # printed after the order went live
        taken[f.print_seq] += f.qty
        assert taken[f.print_seq] <= t.amount  # never more than printed
        o = m.orders[f.order_id]
        if o.type in (OrderType.MARKET, OrderType.STOP_MARKET):
            moved = t.price * (1 + o.side.sign * D("0.5") / 10_000)
            expected = up(moved, BINANCE.tick) if o.side is Side.BUY else down(moved,
                                                                                BINANCE.tick)
            assert f.price == expected and not f.maker
        else:
            assert f.price == o.price and f.maker
            assert t.price < o.price if o.side is Side.BUY else t.price > o.price
        if o.type is OrderType.STOP_MARKET:
            hit = [u for u in trades[live_seq - 1:f.print_seq]
                   if (u.price <= o.trigger_price if o.side is Side.SELL
                       else u.price >= o.trigger_price)]
            assert hit  # the trigger printed before or at this fill
        assert f.fee == f.qty * f.price * (2 if f.maker else 4) / 10_000


def test_replay_positions_cash_and_pnl_reconcile_from_fills(replay):
    trades, x, m, _, _ = replay
    position, cash, per_order = D(0), D(0), defaultdict(lambda: [D(0), D(0)])
    for f in x.fills:
        position += f.side.sign * f.qty
        cash -= f.side.sign * f.qty * f.price + f.fee
        per_order[f.order_id][0] += f.qty
        per_order[f.order_id][1] += f.qty * f.price
    assert position == x.position(S) == m.positions[S]
    assert cash == x.cash(S)
    assert cash + position * trades[-1].price == x.equity(S)
    for oid, (qty, notional) in per_order.items():
        o = m.orders[oid]
        assert o.filled_qty == qty and abs(o.avg_price - notional / qty) < D("1e-12")
    for o in m.orders.values():  # nothing reduce-only works beyond the position
        if o.reduce_only and o.status in WORKING:
            assert position * o.side.sign < 0 and o.leaves <= abs(position)
    for lst in m.lists.values():
        if lst.kind.value == "BRACKET":
            open_qty = m.bracket_open_qty(lst.id)
            exits = [o for o in m.list_orders(lst.id)[1:] if o.status in WORKING]
            assert all(o.leaves == open_qty for o in exits)


def test_ftx_bars_replay_fills_inside_each_bar():
    frame = pd.read_csv(FTX, nrows=3000)
    inst = Instrument(S, tick=D(1), step=D("0.0001"))
    x = PaperExchange([inst], slippage=SlippageModel(D(0)))
    clock = TapeClock()
    m = OrderManager(x, [inst], clock=clock)
    bars = [Bar(int(pd.Timestamp(ts).value), *(D(str(v)) for v in row))
            for ts, *row in frame[["timestamp", "open", "high", "low", "close"]].itertuples(
                index=False)]
    for k, b in enumerate(bars):
        clock.now = b.ts
        x.on_bar(S, b)
        pump(x, m)
        m.on_price(S, b.close)
        if k % 30 == 0 and k:
            rng = max(c.high for c in bars[k - 30:k]) - min(c.low for c in bars[k - 30:k])
            side = Side.BUY if b.close >= bars[k - 30].close else Side.SELL
            try:
                m.submit_bracket(S, side, "0.01", take_profit=b.close + side.sign * rng / 2,
                                 stop_loss=b.close - side.sign * rng / 2)
            except OrderDenied as d:
                assert d.code is DenialCode.BRACKET_SIDE_CONFLICT
            pump(x, m)
    assert len(x.fills) > 100
    for f in x.fills:
        b = bars[f.print_seq - 1]
        o = m.orders[f.order_id]
        assert b.low <= f.price <= b.high and f.ts == b.ts
        if o.type is OrderType.MARKET:
            assert f.price == b.open
        elif o.type is OrderType.STOP_MARKET:
            gapped = b.open <= o.trigger_price if o.side is Side.SELL else \
                b.open >= o.trigger_price
            assert f.price == (b.open if gapped else o.trigger_price)
        else:
            assert f.price == o.price
    assert x.position(S) == m.positions[S] == sum(f.side.sign * f.qty for f in x.fills)

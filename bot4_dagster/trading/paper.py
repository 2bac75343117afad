"""A paper exchange: a matching engine over real trades or OHLC bars behind the ``Venue`` protocol.

Every rule errs against us, so a backtest is never better than the tape allows:

- **Activation.** An order is live from the first print (trade or bar) processed after its
  submission whose timestamp is at least submit time + ``latency_ns``; it never fills on the print
  that caused it.
- **MARKET** and a triggered **STOP_MARKET** are takers: they fill on a live print at the print's
  price moved against us by the slippage model, up to the print's amount; the rest waits for
  later prints.
- **Stops** trigger on a print at or through the trigger (SELL: price <= trigger, BUY: >=) and fill
  on that same print, so a print that gaps through a stop fills at the print, not the trigger.
- **LIMIT** (and a triggered **STOP_LIMIT**) fill only on a print strictly through the limit, at
  the limit price: a print *at* the limit fills nothing (queue position is unknown) and there is
  no price improvement.
- **Liquidity.** One print's amount is shared by all our orders (takers first, then limits in
  submission order): our fills never exceed what printed. The aggressor side is recorded in each
  fill for audits; with the strictly-through rule it does not change who fills.
- **Reduce-only** orders fill only what reduces the exchange's position; submitted with nothing
  to reduce they are rejected (Binance -2022 "ReduceOnly Order is rejected").
- **Bars.** Market orders fill at the open; a stop at the open when the bar gaps through its
  trigger, else at the trigger (slipped); a limit at its price when the bar trades strictly
  through it; the whole quantity. When one bar reaches a take-profit and its linked stop, the
  stop fills and the take-profit does not (the path inside a bar is unknown: assume the worst).
- **Fees**: qty * price * bps / 10,000 in quote currency, maker bps for LIMIT fills, taker bps
  for everything else (a triggered stop-limit usually crosses).
- **Slippage**: ``SlippageModel(bps)``: a taker fill price is print * (1 + bps/10,000) for a buy
  and * (1 - bps/10,000) for a sell, rounded to the tick against us (quotes are not needed;
  k * spread / 2 is the quote-based alternative when a spread is known).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from .boundary import require_number
from .orders import (
    ZERO,
    Event,
    Instrument,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    Side,
    VenueEventRejected,
)
from .venue import CancelOrder, ModifyOrder, SubmitOrder

_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class Trade:
    """One print: Tardis ``side`` is the aggressor."""

    ts: int
    price: Decimal
    amount: Decimal
    aggressor: Side
    trade_id: str = ""


@dataclass(frozen=True, slots=True)
class Bar:
    """An OHLC bar; ``ts`` is its open time."""

    ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True)
class FeeModel:
    """Binance USD-M futures regular tier in 2020: 2 bps maker, 4 bps taker."""

    maker_bps: Decimal = Decimal(2)
    taker_bps: Decimal = Decimal(4)

    def fee(self, qty: Decimal, price: Decimal, maker: bool) -> Decimal:
        return qty * price * (self.maker_bps if maker else self.taker_bps) / _BPS


@dataclass(frozen=True)
class SlippageModel:
    bps: Decimal = Decimal(1)

    def price(self, print_price: Decimal, side: Side, tick: Decimal) -> Decimal:
        moved = print_price * (1 + side.sign * self.bps / _BPS)
        mode = ROUND_CEILING if side is Side.BUY else ROUND_FLOOR
        return (moved / tick).to_integral_value(mode) * tick


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution, with the print it came from (for audits against the tape)."""

    order_id: str
    instrument: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal
    fee: Decimal
    maker: bool
    ts: int
    trade_id: str
    print_seq: int
    print_price: Decimal
    aggressor: Side | None


@dataclass(slots=True)
class _Working:
    req: SubmitOrder
    qty: Decimal
    price: Decimal | None
    trigger: Decimal | None
    active_seq: int
    active_ts: int
    filled: Decimal = ZERO
    triggered: bool = False

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.filled

    @property
    def side(self) -> Side:
        return self.req.side

    @property
    def limit(self) -> Decimal:
        """The limit of a LIMIT or STOP_LIMIT order (the venue requires one)."""
        assert self.price is not None, self.req
        return self.price

    @property
    def stop(self) -> Decimal:
        """The trigger of a stop order (the venue requires one)."""
        assert self.trigger is not None, self.req
        return self.trigger

    @property
    def takes(self) -> bool:
        t = self.req.type
        return t is OrderType.MARKET or (t is OrderType.STOP_MARKET and self.triggered)

    @property
    def rests(self) -> bool:
        t = self.req.type
        return t is OrderType.LIMIT or (t is OrderType.STOP_LIMIT and self.triggered)


@dataclass
class _Market:
    orders: dict[str, _Working] = field(default_factory=dict)
    seq: int = 0
    now: int = 0
    position: Decimal = ZERO
    cash: Decimal = ZERO
    last: Decimal | None = None


class PaperExchange:
    """Implements ``Venue``; feed it ``on_trade``/``on_bar``, hand ``events()`` to the manager."""

    def __init__(self, instruments: Mapping[str, Instrument] | Sequence[Instrument], *,
                 fees: FeeModel | None = None, slippage: SlippageModel | None = None,
                 latency_ns: int = 0) -> None:
        if not isinstance(instruments, Mapping):
            instruments = {i.symbol: i for i in instruments}
        self.instruments = dict(instruments)
        self.fees = fees or FeeModel()
        self.slippage = slippage or SlippageModel()
        self.latency_ns = latency_ns
        self.fills: list[Fill] = []
        self.activations: dict[str, tuple[int, int]] = {}  # order id -> (first live seq, ts)
        self.fees_paid = ZERO
        self._markets = {s: _Market() for s in self.instruments}
        self._seen: set[str] = set()
        self._events: list[Event] = []

    # --- Venue protocol --------------------------------------------------------------------------

    def submit(self, req: SubmitOrder) -> None:
        if req.order_id in self._seen:
            return  # idempotent per client order id
        self._seen.add(req.order_id)
        m = self._markets.get(req.instrument)
        if m is None:
            self._events.append(OrderRejected(req.order_id, "unknown instrument"))
            return
        if req.reduce_only and m.position * req.side.sign >= 0:
            self._events.append(OrderRejected(req.order_id, "ReduceOnly Order is rejected", m.now))
            return
        w = _Working(req, req.qty, req.price, req.trigger_price, m.seq + 1,
                     m.now + self.latency_ns)
        m.orders[req.order_id] = w
        self.activations[req.order_id] = (w.active_seq, w.active_ts)
        self._events.append(OrderAccepted(req.order_id, m.now))

    def modify(self, req: ModifyOrder) -> None:
        """Absolute values; a size at or below what already traded completes the order (the
        fills that made it are already reported). Unknown or finished orders: nothing to do."""
        orders = self._markets[req.instrument].orders
        w = orders.get(req.order_id)
        if w is None:
            return
        if req.qty <= w.filled:
            del orders[req.order_id]
        else:
            w.qty, w.price, w.trigger = req.qty, req.price, req.trigger_price

    def cancel(self, req: CancelOrder) -> None:
        m = self._markets.get(req.instrument)
        if m is not None and m.orders.pop(req.order_id, None) is not None:
            self._events.append(OrderCanceled(req.order_id, m.now))

    # --- market data -----------------------------------------------------------------------------

    def on_trade(self, instrument: str, trade: Trade) -> None:
        m = self._advance(instrument, trade.ts)
        m.last = trade.price
        live = self._live(m, trade.ts)
        for w in live:
            if w.req.type.is_stop and not w.triggered and _reaches(w, trade.price):
                w.triggered = True
        available = trade.amount
        tick = self.instruments[instrument].tick
        for w in [w for w in live if w.takes]:
            price = self.slippage.price(trade.price, w.side, tick)
            available = self._fill(m, w, price, available, False, trade)
        for w in [w for w in live if w.rests]:
            if _through(w, trade.price):
                maker = w.req.type is OrderType.LIMIT
                available = self._fill(m, w, w.limit, available, maker, trade)

    def on_bar(self, instrument: str, bar: Bar) -> None:
        m = self._advance(instrument, bar.ts)
        m.last = bar.close
        live = self._live(m, bar.ts)
        tick = self.instruments[instrument].tick
        full = Decimal("Infinity")
        for w in [w for w in live if w.takes]:  # markets, and stops triggered earlier
            self._fill(m, w, self.slippage.price(bar.open, w.side, tick), full, False, bar)
        stopped: set[str] = set()
        for w in [w for w in live if w.req.type.is_stop and not w.triggered]:
            point = _bar_trigger(w, bar)
            if point is None:
                continue
            w.triggered = True
            stopped.update(w.req.linked_ids)
            if w.req.type is OrderType.STOP_MARKET:
                self._fill(m, w, self.slippage.price(point, w.side, tick), full, False, bar, point)
            elif _through(w, point):
                self._fill(m, w, w.limit, full, False, bar, point)
        for w in [w for w in live if w.rests and w.req.order_id not in stopped]:
            extreme = bar.low if w.side is Side.BUY else bar.high
            if _through(w, extreme):
                self._fill(m, w, w.limit, full, w.req.type is OrderType.LIMIT, bar, extreme)

    def events(self) -> list[Event]:
        """Drain the events produced since the last call, in order."""
        out, self._events = self._events, []
        return out

    # --- account ---------------------------------------------------------------------------------

    def position(self, instrument: str) -> Decimal:
        return self._markets[instrument].position

    def cash(self, instrument: str) -> Decimal:
        """Quote-currency cash flow of all fills, fees included."""
        return self._markets[instrument].cash

    def equity(self, instrument: str, mark: Decimal | None = None) -> Decimal:
        """Cash + position marked at ``mark`` (default: the last print)."""
        m = self._markets[instrument]
        price = m.last if mark is None else mark
        if price is None:
            raise ValueError(f"no print for {instrument} yet: pass the mark to value it at")
        return m.cash + m.position * price

    def working(self, instrument: str) -> list[str]:
        return list(self._markets[instrument].orders)

    # --- internals -------------------------------------------------------------------------------

    def _advance(self, instrument: str, ts: int) -> _Market:
        m = self._markets[instrument]
        m.seq += 1
        m.now = ts
        for oid, w in list(m.orders.items()):
            if w.req.expire_ts is not None and ts >= w.req.expire_ts:
                del m.orders[oid]
                self._events.append(OrderExpired(oid, ts))
        return m

    @staticmethod
    def _live(m: _Market, ts: int) -> list[_Working]:
        return [w for w in m.orders.values() if w.active_seq <= m.seq and w.active_ts <= ts]

    def _fill(self, m: _Market, w: _Working, price: Decimal, available: Decimal, maker: bool,
              source: Trade | Bar, print_price: Decimal | None = None) -> Decimal:
        if w.req.order_id not in m.orders:
            return available
        # on the step grid, as a venue's LOT_SIZE: a print amount finer than the step fills less
        qty = self.instruments[w.req.instrument].round_qty(min(w.leaves, available))
        if w.req.reduce_only:
            qty = min(qty, max(ZERO, -m.position * w.side.sign))
        if qty <= 0:
            return available
        fee = self.fees.fee(qty, price, maker)
        w.filled += qty
        m.position += qty * w.side.sign
        m.cash -= qty * price * w.side.sign + fee
        self.fees_paid += fee
        if isinstance(source, Trade):
            trade_id = source.trade_id or f"p{m.seq}"
            seen, aggressor = source.price, source.aggressor
        else:
            trade_id, seen, aggressor = f"bar{m.seq}", print_price or source.open, None
        self.fills.append(Fill(w.req.order_id, w.req.instrument, w.side, w.req.type, qty, price,
                               fee, maker, source.ts, trade_id, m.seq, seen, aggressor))
        self._events.append(OrderFilled(w.req.order_id, qty, price, source.ts, trade_id, fee,
                                        "MAKER" if maker else "TAKER", w.leaves))
        if w.leaves <= 0:
            del m.orders[w.req.order_id]
        return available - qty


def _reaches(w: _Working, price: Decimal) -> bool:
    return price <= w.stop if w.side is Side.SELL else price >= w.stop


def _through(w: _Working, price: Decimal) -> bool:
    """A print strictly through the limit: below a buy limit, above a sell limit."""
    return price < w.limit if w.side is Side.BUY else price > w.limit


def _bar_trigger(w: _Working, bar: Bar) -> Decimal | None:
    """Where a stop triggers inside a bar: the open if the bar gaps through it, else the trigger."""
    stop = w.stop
    if w.side is Side.SELL:
        if bar.open <= stop:
            return bar.open
        return stop if bar.low <= stop else None
    if bar.open >= stop:
        return bar.open
    return stop if bar.high >= stop else None


def pump(exchange: PaperExchange, manager) -> int:
    """Deliver the exchange's events to the manager until neither has anything left to say."""
    n = 0
    refused: list[VenueEventRejected] = []
    while events := exchange.events():
        for event in events:
            try:
                manager.apply(event)
            except VenueEventRejected as exc:  # the rest of the batch is still delivered
                refused.append(exc)
        n += len(events)
    if refused:
        refused[0].also.extend(refused[1:])
        raise refused[0]
    return n


def trades_from_frame(frame) -> list[Trade]:
    """Tardis trades CSV rows (``timestamp`` µs, ``side``, ``price``, ``amount``, ``id``)."""
    return [Trade(int(ts) * 1000, require_number(str(p), "price"),
                  require_number(str(a), "amount"),
                  Side.BUY if s == "buy" else Side.SELL, str(i))
            for ts, p, a, s, i in zip(frame["timestamp"], frame["price"], frame["amount"],
                                      frame["side"], frame["id"], strict=True)]

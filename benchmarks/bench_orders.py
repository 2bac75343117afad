"""Order management (``trading/manager.py``): submit, modify, cancel and fill handling, each
operation timed on its own against a steady book of ten protected long positions.

Every timed call is the whole command: validation, the contingency rules, the transaction into
the store and the venue request. Setup and clean-up (acknowledgements, closing what the call
opened) run outside the timer, so the book neither grows nor empties. The venue records requests
and nothing else, the clock advances 20 ms per reading so the 100/s submit throttle stays in the
path without tripping. No public library exposes these operations to time beside them (Nautilus'
order manager lives inside its trading kernel), so the rows carry latency goals, not ratios.

The tails are CPython's, not the order logic's: a submit leaves about a dozen new tracked objects
(orders, list, store rows), so every ~60 bracket submits a generation-0 collection (~60 µs) lands
inside the call, and every ~700 a generation-1 one (~1 ms). The process keeps default GC settings.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal

from bot4_dagster.perf import Benchmark, Report, Timing
from bot4_dagster.perf.harness import bench_scale
from bot4_dagster.trading.manager import OrderManager
from bot4_dagster.trading.orders import Instrument, OrderSpec, OrderType, Side
from bot4_dagster.trading.store import SQLiteStore
from bot4_dagster.trading.venue import RecordingVenue

GROUP = "orders"
S = "BTCUSDT"
BTC = Instrument(S, tick=Decimal("0.1"), step=Decimal("0.001"), min_notional=Decimal(5))
QTY = Decimal("0.010")
GOAL = "p99 <= 20 µs"
OPEN_BRACKETS = 10


class SteppingClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        self.now += 20_000_000
        return self.now


class SteadyBook:
    """A manager on a recording venue, holding ``OPEN_BRACKETS`` filled, protected brackets."""

    def __init__(self, store=None) -> None:
        self.venue = RecordingVenue()
        self.m = OrderManager(self.venue, [BTC], store, clock=SteppingClock())
        self.m.on_price(S, "50000")
        for _ in range(OPEN_BRACKETS):
            self.protected_bracket()
        self.venue.requests.clear()

    def bracket(self):
        return self.m.submit_bracket(S, Side.BUY, QTY, take_profit="51000", stop_loss="49000")

    def protected_bracket(self):
        lst = self.bracket()
        entry, tp, sl = lst.order_ids
        self.m.on_accepted(entry)
        self.m.on_fill(entry, QTY, "50000", trade_id="e")
        self.m.on_accepted(tp)
        self.m.on_accepted(sl)
        return lst

    def close_list(self, list_id: str) -> None:
        """Cancel what is still open in the list and acknowledge every cancel."""
        self.m.cancel_list(list_id)
        for o in self.m.list_orders(list_id):
            if not o.is_closed:
                self.m.on_canceled(o.id)
        self.venue.requests.clear()


def per_call(op: Callable[[object], object], setup: Callable[[], object],
             teardown: Callable[[object, object], None], n: int) -> Timing:
    """Time ``op(setup())`` alone, ``n`` times; ``teardown(arg, result)`` restores the book."""
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        arg = setup()
        t0 = clock()
        result = op(arg)
        samples.append((clock() - t0) / 1e9)
        teardown(arg, result)
    return Timing(tuple(samples))


def _calls() -> int:
    return max(50, int(3_000 * bench_scale()))


def _operations(b: SteadyBook) -> dict[str, tuple]:
    m = b.m
    limit = OrderSpec(S, Side.BUY, QTY, OrderType.LIMIT, price=Decimal(49500))
    modify_target = m.submit_order(limit).order_ids[0]
    m.on_accepted(modify_target)
    prices = iter(Decimal(49500) - Decimal(k % 50) for k in range(10**9))

    def accepted_limit():
        oid = m.submit_order(limit).order_ids[0]
        m.on_accepted(oid)
        return oid

    def accepted_bracket():
        lst = b.bracket()
        m.on_accepted(lst.order_ids[0])
        return lst

    def take_rest(lst, _):
        _, tp, sl = lst.order_ids
        m.on_fill(tp, m.orders[tp].leaves, "51000", trade_id="tp2")
        m.on_canceled(sl)
        b.venue.requests.clear()

    def released(lst, _):
        m.on_accepted(lst.order_ids[1])
        m.on_accepted(lst.order_ids[2])
        take_rest(lst, None)

    def nothing():
        return None

    return {
        "submit_order": (
            lambda _: m.submit_order(limit), nothing,
            lambda _, lst: b.close_list(lst.id),
            "one LIMIT order: checks, store transaction, venue request"),
        "submit_oco": (
            lambda _: m.submit_oco(S, Side.SELL, QTY, take_profit="50600", stop_loss="49400"),
            nothing, lambda _, lst: b.close_list(lst.id),
            "reduce-only take-profit + stop on the long position, both sent"),
        "submit_bracket": (
            lambda _: b.bracket(), nothing, lambda _, lst: b.close_list(lst.id),
            "MARKET entry sent, take-profit and stop held until it fills"),
        "modify_price": (
            lambda _: m.modify(modify_target, price=next(prices)), nothing,
            lambda *_: b.venue.requests.clear(), "re-price a working LIMIT"),
        "cancel_order": (
            lambda oid: m.cancel(oid), accepted_limit,
            lambda oid, _: (m.on_canceled(oid), b.venue.requests.clear()),
            "cancel a working LIMIT (PENDING_CANCEL + request)"),
        "fill_entry_release": (
            lambda lst: m.on_fill(lst.order_ids[0], QTY, "50000", trade_id="e"),
            accepted_bracket, released,
            "bracket entry fills: both exits sized to the position and sent"),
        "fill_partial_exit": (
            lambda lst: m.on_fill(lst.order_ids[1], QTY / 2, "51000", trade_id="tp1"),
            b.protected_bracket, take_rest,
            "half the take-profit fills: the stop shrinks to the rest (OUO)"),
    }


def _measure(report: Report, name: str, timing: Timing, notes: str, unit: str = "operation",
             goal: str | None = GOAL) -> None:
    report.add(Benchmark(name, timing, group=GROUP, unit=unit, items=1, goal=goal,
                         notes=f"{notes}; {OPEN_BRACKETS} open brackets in the book"))


def _bench_memory(report: Report) -> None:
    b = SteadyBook()
    for name, (op, setup, teardown, notes) in _operations(b).items():
        if not report.wants(name, GROUP):
            continue
        per_call(op, setup, teardown, 200)  # warm up
        gc.collect()
        _measure(report, name, per_call(op, setup, teardown, _calls()), notes)


def _bench_durable(report: Report) -> None:
    for sync in ("NORMAL", "FULL"):
        name = f"submit_bracket_sqlite_{sync.lower()}"
        if not report.wants(name, GROUP):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(f"{tmp}/orders.sqlite", synchronous=sync)
            try:
                b = SteadyBook(store)
                op, setup, teardown, _ = _operations(b)["submit_bracket"]
                per_call(op, setup, teardown, 50)
                n = _calls() if sync == "NORMAL" else max(50, _calls() // 10)
                timing = per_call(op, setup, teardown, n)
            finally:
                store.close()
        durability = ("survives a process crash (WAL, no fsync per commit)" if sync == "NORMAL"
                      else "survives power loss (fsync per commit)")
        _measure(report, name, timing, f"submit_bracket with the SQLite store, {durability}",
                 goal=None)


def run(report: Report) -> None:
    _bench_memory(report)
    _bench_durable(report)

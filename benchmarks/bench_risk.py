"""Risk clamps (``trading/risk/``): one full 8-layer evaluation of a typical decision, and one
state-machine update. Latency budgets only: no public library implements these layers, so there
is no reference to time beside them."""

from __future__ import annotations

import itertools

from bot4_dagster.perf import Report
from bot4_dagster.trading.clock import SECOND
from bot4_dagster.trading.risk import (
    AccountState,
    CrisisSignals,
    Instrument,
    MarketState,
    RiskState,
    TradeProposal,
    evaluate,
)

GROUP = "risk"
T0 = 1_709_294_400 * SECOND  # 2024-03-01 12:00 UTC in int nanoseconds, the one clock unit


def typical_inputs() -> tuple[TradeProposal, AccountState, MarketState, Instrument]:
    """A BTC entry with three open positions (one in BTC itself), calm markets, 4 % drawdown."""
    account = AccountState(
        equity=100_000.0, high_water_mark=104_000.0, daily_pnl=-500.0, session_pnl=-800.0,
        positions={"ETHUSDT": 12_000.0, "SOLUSDT": -5_000.0, "BTCUSDT": 3_000.0})
    market = MarketState(
        marks={"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 100.0},
        vols={"BTCUSDT": 0.03, "ETHUSDT": 0.04, "SOLUSDT": 0.06},
        correlations={("BTCUSDT", "ETHUSDT"): 0.8, ("BTCUSDT", "SOLUSDT"): 0.6,
                      ("ETHUSDT", "SOLUSDT"): 0.65},
        signals=CrisisSignals(vol_ratio=1.3, return_5m=0.002, sigma_5m=0.004))
    filters = Instrument("BTCUSDT", tick=0.1, step=0.001, min_notional=5.0,
                         max_notional=1_000_000.0)
    proposal = TradeProposal(
        "BTCUSDT", "BUY", entry=50_010.0, stop=49_000.0, take_profit=52_500.0, p=0.58,
        bucket_trades=400, bucket_wins=236, fee_rate=0.0004, spread=0.1, impact=2.0)
    return proposal, account, market, filters


def run(report: Report) -> None:
    if not (report.wants("evaluate_8_layers", GROUP) or report.wants("state_update", GROUP)):
        return
    proposal, account, market, filters = typical_inputs()
    state = RiskState()
    decision = evaluate(proposal, account, market, filters, state, T0)
    report.measure(
        "evaluate_8_layers", lambda: evaluate(proposal, account, market, filters, state, T0),
        group=GROUP, unit="decision", items=1, goal="p99 <= 20 µs",
        notes=f"evaluate(): L1-L8 + step floor + trace, 3 open positions; binding "
              f"{decision.binding}, {decision.quantity:g} BTC; pure Python; no reference "
              "library implements these layers")
    clock = itertools.count(T0)
    signals = market.signals
    report.measure(
        "state_update", lambda: state.update(next(clock), account, signals),
        group=GROUP, unit="update", items=1, goal="p99 <= 20 µs",
        notes="RiskState.update(): equity and crisis-signal observation, no transition; "
              "no reference library")

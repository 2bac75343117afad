"""Risk clamps (``trading/risk/``) against trading.md §5 R1–R8.

R1 Kelly, R2 properties (hypothesis: every layer non-increasing, final = floor(min · m6 · m7),
binding layer logged), R3 step floor and minNotional, R4 volatility target, R5 correlated add,
R6–R8 the state machine with explicit timestamps; plus L8 sanity checks, reduce-only exits, the
rendered trace and bad inputs.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot4_dagster.trading.clock import SECOND
from bot4_dagster.trading.risk import (
    AccountState,
    CrisisSignals,
    DenialCode,
    Instrument,
    MarketState,
    RiskConfig,
    RiskDecision,
    RiskState,
    TradeProposal,
    TradingState,
    assess_crisis,
    drawdown_multiplier,
    evaluate,
    floor_to_step,
    kelly_fraction,
    layers,
    shrunk_probability,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MIN, HOUR = timedelta(minutes=1), timedelta(hours=1)
BTC, ETH, SOL = "BTCUSDT", "ETHUSDT", "SOLUSDT"
FILTERS = Instrument(BTC, tick=0.1, step=0.001, min_notional=5.0)
CALM = CrisisSignals()
CRASH = CrisisSignals(return_5m=-0.06)


def account(equity: float = 100_000.0, hwm: float | None = None, **kw) -> AccountState:
    return AccountState(equity, equity if hwm is None else hwm, **kw)


def drawdown(dd: float, **kw) -> AccountState:
    return account(100_000.0 * (1 - dd), hwm=100_000.0, **kw)


def market(vols: dict | None = None, rho: float = 0.5, signals: CrisisSignals = CALM,
           **kw) -> MarketState:
    return MarketState(
        marks=kw.pop("marks", {BTC: 50_000.0, ETH: 3_000.0, SOL: 100.0}),
        vols={BTC: 0.01, ETH: 0.01, SOL: 0.01} if vols is None else vols,
        correlations=kw.pop("correlations", {(BTC, ETH): rho, (BTC, SOL): 0.2, (ETH, SOL): 0.2}),
        signals=signals, **kw)


def entry(**kw) -> TradeProposal:
    """A BTC long with an edge: p = 0.6, b = 2 (tp 2,000 above, stop 1,000 below), no costs."""
    base = dict(instrument=BTC, side="BUY", entry=50_000.0, stop=49_000.0, take_profit=52_000.0,
                p=0.6, bucket_trades=500, bucket_wins=300)
    return TradeProposal(**(base | kw))


def run(proposal: TradeProposal | None = None, acct: AccountState | None = None,
        mkt: MarketState | None = None, filters: Instrument = FILTERS,
        state: RiskState | None = None, now: datetime | int = T0,
        config: RiskConfig | None = None) -> RiskDecision:
    return evaluate(proposal or entry(), acct or account(), mkt or market(), filters,
                    state or RiskState(config), now)


# ------------------------------------------------------------------------------- R1 Kelly


def test_r1_quarter_kelly_of_a_coin_flip_with_edge_is_capped_at_two_percent():
    assert kelly_fraction(0.55, 1.0) == pytest.approx(0.10)
    # b = 1: tp and stop both 1,000 away, no fees or slippage; the bucket record is stronger
    # than p, so p̂ = p = 0.55.
    d = run(entry(take_profit=51_000.0, p=0.55, bucket_trades=1000, bucket_wins=600))
    l1 = d.step("L1").inputs
    assert l1["b"] == 1.0 and l1["p_hat"] == 0.55
    assert l1["f_star"] == pytest.approx(0.10)
    assert l1["f"] == 0.02  # quarter Kelly 0.025, capped at f_cap
    assert d.step("L1").value == pytest.approx(0.02 * 100_000 / 1_000)
    uncapped = run(entry(take_profit=51_000.0, p=0.55, bucket_trades=1000, bucket_wins=600),
                   config=RiskConfig(f_cap=0.05))
    assert uncapped.step("L1").inputs["f"] == pytest.approx(0.025)


def test_r1_no_edge_at_p_one_half():
    d = run(entry(take_profit=51_000.0, p=0.5, bucket_trades=1000, bucket_wins=600))
    assert not d.accepted and d.code is DenialCode.NO_EDGE and d.quantity == 0
    assert d.binding == "L1" and d.step("L1").inputs["f_star"] == pytest.approx(0.0)


def test_l1_sizes_on_the_smaller_of_calibrated_p_and_the_shrunk_bucket_rate():
    # Calibrator says 0.7, but the bucket won 50 of 100: (50 + 10)/(100 + 20) = 0.5, and at
    # b = 1 a coin flip has no edge.
    assert shrunk_probability(50, 100) == 0.5
    d = run(entry(take_profit=51_000.0, p=0.7, bucket_trades=100, bucket_wins=50))
    assert d.code is DenialCode.NO_EDGE and d.step("L1").inputs["p_hat"] == 0.5
    # A strong record does not lift an unconvinced calibrator.
    assert run(entry(p=0.55, bucket_trades=1000, bucket_wins=900)).step("L1").inputs[
        "p_hat"] == 0.55


def test_l1_thin_bucket_risks_at_most_half_a_percent():
    d = run(entry(p=0.6, bucket_trades=49, bucket_wins=40))
    assert d.step("L1").inputs["f"] == 0.005
    assert run(entry(p=0.6, bucket_trades=50, bucket_wins=40)).step("L1").inputs["f"] == 0.02


def test_l1_payoff_ratio_is_net_of_round_turn_fees_and_slippage():
    d = run(entry(fee_rate=0.001, spread=20.0, impact=10.0))
    fee_unit, slip = 2 * 0.001 * 50_000, 0.5 * 20.0 + 10.0
    assert d.step("L1").inputs["b"] == pytest.approx((2_000 - fee_unit) / (1_000 + fee_unit + slip))
    # Fees eating the whole take-profit distance leave no edge.
    assert run(entry(take_profit=50_100.0, fee_rate=0.001)).code is DenialCode.NO_EDGE


def test_no_stop_is_denied():
    d = run(entry(stop=None))
    assert d.code is DenialCode.NO_STOP and d.binding == "L1"


def test_l2_risk_budget_counts_fees_on_its_own_notional():
    d = run(entry(fee_rate=0.0005, spread=10.0))
    q2 = d.step("L2").value
    loss_at_stop = q2 * (1_000 + 5.0) + 2 * 0.0005 * q2 * 50_000
    assert loss_at_stop == pytest.approx(0.01 * 100_000)


# ---------------------------------------------------------------- R2 properties (hypothesis)

NAMES = (BTC, ETH, SOL)


@st.composite
def scenarios(draw, benign: bool = False
              ) -> tuple[TradeProposal, AccountState, MarketState, Instrument]:
    """Random valid inputs; ``benign`` keeps the gates (edge, state, crisis, band) mostly open
    so that the sizing layers, not a denial, decide."""
    equity = draw(st.floats(1e3, 1e7))
    positions = {n: draw(st.floats(-0.6, 0.6)) * equity for n in NAMES if draw(st.booleans())}
    worst = 0.0 if benign else 1.0
    acct = AccountState(equity, equity / (1 - draw(st.floats(0.0, 0.2 - 0.12 * benign))),
                        positions, daily_pnl=draw(st.floats(-0.05 + 0.03 * benign, 0.02)) * equity,
                        session_pnl=draw(st.floats(-0.06 + 0.04 * benign, 0.02)) * equity)
    tick = draw(st.sampled_from([0.01, 0.1, 1.0]))
    price = draw(st.integers(100, 10**6)) * tick
    side = draw(st.sampled_from(["BUY", "SELL"]))
    sgn = 1 if side == "BUY" else -1
    reduce_only = draw(st.booleans()) and draw(st.booleans())
    n = draw(st.integers(0, 2000))
    proposal = TradeProposal(
        BTC, side, price, price * (1 - sgn * draw(st.floats(0.001, 0.3))),
        price * (1 + sgn * draw(st.floats(0.001, 0.5))),
        p=draw(st.floats(0.5 * benign, 1.0)), bucket_trades=n,
        bucket_wins=draw(st.integers(int(0.6 * n) if benign else 0, n)),
        fee_rate=draw(st.floats(0.0, 0.002)), spread=draw(st.floats(0.0, 1e-3)) * price,
        impact=draw(st.floats(0.0, 1e-3)) * price,
        quantity=draw(st.none() | st.floats(1e-6, 1e3)), reduce_only=reduce_only)
    signals = CrisisSignals(
        vol_ratio=draw(st.floats(0.0, 3.0 - 1.0 * benign)),
        return_5m=draw(st.floats(-0.06, 0.06)) * worst,
        sigma_5m=draw(st.none() | st.floats(0.002, 0.05)),
        spread_ratio=draw(st.floats(0, 4 - 1.5 * benign)), depth_ratio=draw(st.floats(0.1, 2.0)),
        mean_correlation=draw(st.floats(-1, 1)), feed_age_seconds=draw(st.floats(0, 12)) * worst,
        error_rate=draw(st.floats(0, 0.06)) * worst)
    band = 0.03 - 0.02 * benign
    mkt = MarketState(
        marks={BTC: price * (1 + draw(st.floats(-band, band))), ETH: 3_000.0, SOL: 100.0},
        vols={n: draw(st.floats(0.002, 0.3)) for n in NAMES},
        correlations={(a, b): draw(st.floats(-1.0, 1.0))
                      for i, a in enumerate(NAMES) for b in NAMES[i + 1:]},
        signals=signals)
    step = draw(st.sampled_from([1e-5, 0.001, 0.01, 0.25, 1.0]))
    filters = Instrument(
        BTC, tick, step, min_notional=draw(st.floats(0.0, 100.0)),
        max_notional=draw(st.none() | st.floats(100.0, 1e6)),
        min_qty=draw(st.sampled_from([0.0, step])))
    return proposal, acct, mkt, filters


def _expected_quantity(d: RiskDecision, filters: Instrument) -> float:
    """§2.2's composition recomputed from the layers' own values: floor(min(q) · m6 · m7)."""
    multipliers = {"L6", "L7"} if not d.proposal.reduce_only else set()
    caps = [s.value for s in d.steps if s.layer in {"L1", "L2", "L3", "L4", "L5"} - multipliers]
    m = [s.value for s in d.steps if s.layer in multipliers]
    request = d.proposal.quantity if d.proposal.quantity is not None else math.inf
    return floor_to_step(min(request, *caps) * m[0] * m[1] if m else min(request, *caps),
                         filters.step)


@settings(max_examples=400, deadline=None)
@given(st.booleans().flatmap(lambda benign: scenarios(benign=benign)))
def test_r2_no_layer_increases_size_and_final_is_the_floored_composition(scenario):
    proposal, acct, mkt, filters = scenario
    d = evaluate(proposal, acct, mkt, filters, RiskState(), T0)
    for s in d.steps:
        assert 0.0 <= s.after <= s.before, s
    assert d.quantity == d.steps[-1].after
    if not d.accepted:
        last = d.steps[-1]
        assert d.quantity == 0 and last.code is d.code and d.binding == last.layer
        return
    assert d.quantity == _expected_quantity(d, filters)
    assert d.quantity * proposal.entry >= filters.min_notional and d.quantity >= filters.min_qty
    steps_of_size = d.quantity / float(filters.step)
    assert abs(steps_of_size - round(steps_of_size)) < 1e-6 * max(1.0, steps_of_size)


@settings(max_examples=400, deadline=None)
@given(scenarios(benign=True))
def test_r2_binding_layer_is_the_one_that_set_the_final_size(scenario):
    proposal, acct, mkt, filters = scenario
    d = evaluate(proposal, acct, mkt, filters, RiskState(), T0)
    assume(d.accepted)
    layers = [s.layer for s in d.steps]
    pre_floor = d.step("L4f").before
    start = layers.index(d.binding) + 1 if d.binding != "REQ" else 0
    if d.binding != "REQ":
        bound = d.step(d.binding)
        assert bound.after < bound.before and bound.after == pre_floor
    else:
        assert pre_floor == proposal.quantity
    for s in d.steps[start:]:
        assert s.layer == "L4f" or s.after == s.before, (d.binding, s)
    named = d.binding_step.name if d.binding != "REQ" else "requested quantity"
    assert d.headline().endswith(f"binding {d.binding} {named}".replace("REQ ", ""))


@settings(max_examples=300, deadline=None)
@given(scenarios(benign=True), st.sampled_from(["kelly_fraction", "f_cap", "r_max", "v_pos",
                                     "max_leverage", "max_instrument_share", "max_order_share",
                                     "max_gross", "max_net", "sigma_max", "max_cluster",
                                     "dd_floor_multiplier", "single_signal_multiplier"]))
def test_r2_tightening_any_limit_never_increases_the_size(scenario, field):
    proposal, acct, mkt, filters = scenario
    loose = evaluate(proposal, acct, mkt, filters, RiskState(), T0)
    tight_config = dataclasses.replace(RiskConfig(), **{field: getattr(RiskConfig(), field) / 2})
    tight = evaluate(proposal, acct, mkt, filters, RiskState(tight_config), T0)
    assert tight.quantity <= loose.quantity


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=9, max_size=9),
       st.none() | st.floats(1e-3, 1e3))
def test_r2_the_combinator_cannot_increase_size_whatever_a_layer_returns(layer_values,
                                                                          request_qty):
    """Rogue layers returning NaN, ∞, negatives or multipliers > 1 still cannot grow the size."""
    values = iter(layer_values)
    rogue = layers._why("rogue")

    def layer(c, size):
        return next(values), rogue, (), None

    plan = tuple((name, label, kind, layer) for name, label, kind, _ in layers._ENTRY_PLAN)
    original = layers._ENTRY_PLAN
    layers._ENTRY_PLAN = plan
    try:
        d = run(entry(quantity=request_qty))
    finally:
        layers._ENTRY_PLAN = original
    before = request_qty if request_qty is not None else math.inf
    for s in d.steps:
        assert s.before == before and 0.0 <= s.after <= s.before
        before = s.after


# ------------------------------------------------------------------ R3 step floor, minimums


def test_r3_floor_is_decimal_exact_and_never_rounds_up():
    assert floor_to_step(0.3, 0.1) == 0.3  # 0.3 / 0.1 is 2.9999999999999996 in binary
    assert floor_to_step(0.12399999, 0.001) == 0.123
    assert floor_to_step(0.999999, 0.001) == 0.999
    assert floor_to_step(7.0, 0.25) == 7.0 and floor_to_step(7.2, 0.25) == 7.0
    assert floor_to_step(1.7e-5, 1e-5) == 1e-5
    assert floor_to_step(0.0, 0.001) == 0.0 and floor_to_step(-1.0, 0.001) == 0.0


@settings(max_examples=500, deadline=None)
@given(st.floats(0.0, 1e6), st.sampled_from([1e-8, 1e-5, 0.001, 0.01, 0.1, 0.25, 1.0, 10.0]))
def test_r3_floor_property(q, step):
    out = floor_to_step(q, step)
    assert 0.0 <= out <= q
    assert q - out < step * (1 + 1e-9) + 1e-9 * q
    grid_point = float(round(out / step) * Decimal(repr(step)))
    assert out == grid_point == floor_to_step(grid_point, step)  # a grid point floors to itself


def test_r3_sub_min_notional_is_denied_never_rounded_up():
    filters = Instrument(BTC, tick=0.1, step=0.001, min_notional=60.0)
    # 0.00199 BTC = 99.5 USDT before the floor, 0.001 BTC = 50 USDT after: denied, not 0.002.
    d = run(entry(quantity=0.00199), filters=filters)
    assert d.code is DenialCode.NOTIONAL_BELOW_MIN and d.quantity == 0
    floor = d.step("L4f")
    assert floor.inputs["q"] == 0.001 and floor.inputs["notional"] == 50.0
    assert "never rounded up" in floor.reason
    assert run(entry(quantity=0.0012), filters=Instrument(BTC, 0.1, 0.001, min_notional=50.0)
               ).quantity == 0.001


def test_r3_min_qty_and_zero_size():
    d = run(entry(quantity=0.004), filters=Instrument(BTC, 0.1, 0.001, min_qty=0.005))
    assert d.code is DenialCode.QTY_BELOW_MIN
    d = run(entry(quantity=0.0004), filters=Instrument(BTC, 0.1, 0.001))
    assert d.code is DenialCode.ZERO_SIZE


def test_r3_final_quantity_is_the_floored_clamp():
    d = run(entry(), mkt=market(vols={BTC: 0.3, ETH: 0.01, SOL: 0.01}))
    assert d.binding == "L3" and d.step("L3").value == pytest.approx(1 / 15)
    assert d.quantity == floor_to_step(d.step("L3").value, FILTERS.step) == 0.066


# --------------------------------------------------------------------- R4 volatility target


def test_r4_doubling_sigma_halves_q3():
    one = run(entry(), mkt=market(vols={BTC: 0.2, ETH: 0.01, SOL: 0.01}))
    two = run(entry(), mkt=market(vols={BTC: 0.4, ETH: 0.01, SOL: 0.01}))
    assert two.step("L3").value == one.step("L3").value / 2
    assert one.binding == two.binding == "L3"
    # q3 = v_pos · Eq / (σ · E): 1 % of 100k per 20 % daily move of a 50k coin = 0.1 BTC.
    assert one.step("L3").value == pytest.approx(0.1)
    assert (one.quantity, two.quantity) == (0.1, 0.05)


def test_l3_leverage_cap_binds_for_a_very_quiet_instrument():
    d = run(entry(), mkt=market(vols={BTC: 0.001, ETH: 0.01, SOL: 0.01}),
            config=RiskConfig(v_pos=0.5, r_max=1.0, f_cap=1.0, max_order_share=1.0,
                              max_instrument_share=1.0, max_gross=10.0, max_net=10.0,
                              sigma_max=1.0, max_cluster=10.0))
    assert d.step("L3").value == pytest.approx(3 * 100_000 / 50_000)
    assert "leverage cap 3x" in d.step("L3").reason


# ----------------------------------------------------------- R5 correlated add, L4/L5 limits


def test_r5_a_correlated_add_beyond_the_cluster_cap_is_scaled():
    held = account(positions={ETH: 45_000.0})
    d = run(entry(), acct=held, mkt=market(rho=0.9))
    l5 = d.step("L5")
    assert d.binding == "L5" and l5.inputs["limit"] == "cluster"
    assert l5.inputs["cluster"] == "BTCUSDT+ETHUSDT" and l5.inputs["room"] == 5_000.0
    assert d.quantity == 0.1  # 50 % cluster cap − 45 % held = 5,000 USDT of BTC
    unlinked = run(entry(), acct=held, mkt=market(rho=0.5))
    assert unlinked.step("L5").inputs["cluster"] == BTC and unlinked.quantity == 0.2  # order cap


def test_l5_cluster_linkage_is_transitive():
    mkt = market(correlations={(BTC, ETH): 0.9, (ETH, SOL): 0.8, (BTC, SOL): 0.3})
    d = run(entry(), acct=account(positions={ETH: 10_000.0, SOL: 38_000.0}), mkt=mkt)
    assert d.step("L5").inputs["cluster"] == "BTCUSDT+ETHUSDT+SOLUSDT"
    assert d.step("L5").inputs["x_cluster"] == 2_000.0


def test_l5_sigma_cap_is_exact():
    """After the clamped trade, √(wᵀΣw) sits on σ_max (checked with numpy, independently)."""
    vols = {BTC: 0.05, ETH: 0.06, SOL: 0.01}
    positions = {ETH: 20_000.0}
    config = RiskConfig(f_cap=1.0, r_max=1.0, v_pos=1.0, max_order_share=1.0,
                        max_instrument_share=1.0)
    d = run(entry(), acct=account(positions=positions), mkt=market(vols=vols, rho=0.6),
            config=config, filters=Instrument(BTC, 0.1, 1e-8))
    assert d.step("L5").inputs["limit"] == "sigma"
    added = d.step("L5").value * 50_000
    w = np.array([added, positions[ETH]]) / 100_000
    s = np.array([vols[BTC], vols[ETH]])
    cov = np.outer(s, s) * np.array([[1.0, 0.6], [0.6, 1.0]])
    assert math.sqrt(w @ cov @ w) == pytest.approx(0.02, rel=1e-9)


def test_l5_gross_and_net_caps():
    long_book = account(positions={ETH: 70_000.0, SOL: 25_000.0})  # net 95 % of equity
    d = run(entry(), acct=long_book, mkt=market(rho=0.1, correlations={
        (BTC, ETH): 0.1, (BTC, SOL): 0.1, (ETH, SOL): 0.1}))
    assert d.step("L5").inputs["limit"] == "net" and d.step("L5").inputs["room"] == 5_000.0
    hedged = account(positions={ETH: 75_000.0, SOL: -72_000.0})  # gross 147 %
    d = run(entry(), acct=hedged, mkt=market(correlations={
        (BTC, ETH): 0.1, (BTC, SOL): 0.1, (ETH, SOL): -0.1}))
    assert d.step("L5").inputs["limit"] == "gross" and d.step("L5").inputs["room"] == 3_000.0


def test_l4_opposite_trade_may_unwind_before_it_adds():
    long_btc = account(positions={BTC: 20_000.0})
    short = entry(side="SELL", stop=51_000.0, take_profit=48_000.0)
    d = run(short, acct=long_btc)
    # 25 % cap: unwind 20k, then 25k short = 45k of room; the 10 % order cap binds.
    assert d.step("L4").inputs["instrument_room"] == 45_000.0
    assert d.quantity == 0.2


def test_l4_entry_off_the_tick_grid_is_denied():
    d = run(entry(entry=50_000.05))
    assert d.code is DenialCode.PRICE_NOT_ON_TICK and d.binding == "L4"


# ------------------------------------------------------------------------ R6 drawdown states


def test_r6_drawdown_hysteresis():
    state = RiskState()
    assert state.update(T0, drawdown(0.10)) is TradingState.REDUCING
    assert state.update(T0 + HOUR, drawdown(0.08)) is TradingState.REDUCING
    assert state.update(T0 + 2 * HOUR, drawdown(0.07)) is TradingState.REDUCING  # < 24 h
    assert state.update(T0 + 23 * HOUR, drawdown(0.074)) is TradingState.REDUCING
    assert state.update(T0 + 24 * HOUR, drawdown(0.076)) is TradingState.REDUCING  # DD ≥ 7.5 %
    assert state.update(T0 + 25 * HOUR, drawdown(0.074)) is TradingState.ACTIVE


def test_r6_the_24_hours_count_from_the_last_breach():
    state = RiskState()
    state.update(T0, drawdown(0.10))
    state.update(T0 + 12 * HOUR, drawdown(0.11))
    assert state.update(T0 + 30 * HOUR, drawdown(0.05)) is TradingState.REDUCING
    assert state.update(T0 + 36 * HOUR, drawdown(0.05)) is TradingState.ACTIVE


def test_r6_fifteen_percent_halts_until_a_manual_reset():
    state = RiskState()
    assert state.update(T0, drawdown(0.15)) is TradingState.HALTED
    assert state.update(T0 + 48 * HOUR, drawdown(0.0)) is TradingState.HALTED
    d = run(entry(), state=state, now=T0 + 48 * HOUR)
    assert d.code is DenialCode.TRADING_HALTED and "drawdown 15.00%" in d.step("L8").reason
    # HALTED passes nothing new, not even a reduce-only exit.
    exit_long = entry(side="SELL", stop=None, take_profit=None, p=None, reduce_only=True)
    d = run(exit_long, acct=account(positions={BTC: 10_000.0}), state=state,
            now=T0 + 48 * HOUR)
    assert d.code is DenialCode.TRADING_HALTED
    assert state.reset(T0 + 48 * HOUR) is TradingState.ACTIVE  # the DD latch expired meanwhile
    assert run(entry(), state=state, now=T0 + 48 * HOUR).accepted


def test_r6_reset_lands_in_reducing_while_the_drawdown_latch_holds():
    state = RiskState()
    state.update(T0, drawdown(0.16))
    assert state.reset(T0 + HOUR) is TradingState.REDUCING
    assert state.update(T0 + 2 * HOUR, drawdown(0.16)) is TradingState.HALTED  # still 16 % down


def test_reducing_denies_entries_and_passes_reduce_only_exits():
    state = RiskState()
    state.update(T0, drawdown(0.10))
    later = T0 + HOUR
    d = run(entry(), acct=drawdown(0.08), state=state, now=later)
    assert d.code is DenialCode.TRADING_STATE_REDUCING and "drawdown was ≥ 10%" in str(d)
    held = drawdown(0.08, positions={BTC: 20_000.0})
    exit_long = entry(side="SELL", stop=None, take_profit=None, p=None, reduce_only=True)
    d = run(exit_long, acct=held, state=state, now=later)
    assert d.accepted and d.quantity == 0.4  # the whole 20k position at the 50k mark
    assert d.step("L1").reason.startswith("not applied")
    wrong_way = entry(side="BUY", stop=None, take_profit=None, p=None, reduce_only=True)
    assert run(wrong_way, acct=held, state=state, now=later).code is \
        DenialCode.REDUCE_ONLY_WOULD_INCREASE_POSITION


def test_l6_multiplier_is_linear_between_five_and_ten_percent():
    config = RiskConfig()
    assert drawdown_multiplier(0.049, config) == 1.0
    assert drawdown_multiplier(0.075, config) == pytest.approx(0.625)
    assert drawdown_multiplier(0.10, config) == drawdown_multiplier(0.2, config) == 0.25
    cut = run(entry(quantity=1.0), acct=drawdown(0.075))
    assert cut.step("L6").value == pytest.approx(0.625) and cut.binding == "L6"
    assert cut.quantity == floor_to_step(0.625 * cut.step("L5").after, FILTERS.step)


def test_daily_loss_reduces_until_midnight_utc():
    state = RiskState()
    down = account(97_000.0, hwm=100_000.0, daily_pnl=-3_000.0)  # 3 % of the day's start
    assert state.update(T0 + 3 * HOUR, down) is TradingState.REDUCING
    assert state.update(T0 + 11 * HOUR + 59 * MIN, account(97_000.0, hwm=100_000.0)) is \
        TradingState.REDUCING
    midnight = datetime(2024, 3, 2, tzinfo=UTC)
    assert state.update(midnight, account(97_000.0, hwm=100_000.0)) is TradingState.ACTIVE
    # Without any state update, the account alone already blocks entries.
    assert run(entry(), acct=down).code is DenialCode.TRADING_STATE_REDUCING


# ----------------------------------------------------------------------------- R7 crisis


def test_r7_a_six_percent_five_minute_candle_is_crisis_within_one_tick():
    assert run(entry(), mkt=market(signals=CRASH)).code is DenialCode.CRISIS  # no update needed
    state = RiskState()
    assert state.update(T0, account(), CRASH) is TradingState.REDUCING and state.in_crisis
    d = run(entry(), state=state, now=T0 + MIN)
    assert d.code is DenialCode.CRISIS and "not yet 60 calm minutes" in d.step("L7").reason


def test_r7_crisis_ends_only_after_sixty_calm_minutes():
    state = RiskState()
    state.update(T0, account(), CRASH)
    for minute in range(1, 61):  # calm from T0 + 1 min on
        state.update(T0 + minute * MIN, account(), CALM)
    assert state.in_crisis  # calm for 59 minutes
    assert state.update(T0 + 61 * MIN, account(), CALM) is TradingState.ACTIVE
    assert run(entry(), state=state, now=T0 + 61 * MIN).accepted


def test_r7_a_reading_above_eighty_percent_restarts_the_calm_clock():
    state = RiskState()
    state.update(T0, account(), CRASH)
    state.update(T0 + MIN, account(), CALM)
    state.update(T0 + 30 * MIN, account(), CrisisSignals(vol_ratio=2.1))  # 84 % of 2.5
    state.update(T0 + 61 * MIN, account(), CALM)
    assert state.in_crisis
    assert state.update(T0 + 90 * MIN, account(), CALM) is TradingState.REDUCING
    assert state.update(T0 + 121 * MIN, account(), CALM) is TradingState.ACTIVE


@pytest.mark.parametrize("signals, fired, crisis", [
    (CrisisSignals(vol_ratio=2.5), ("volatility",), False),
    (CrisisSignals(spread_ratio=3.0), ("liquidity",), False),
    (CrisisSignals(depth_ratio=0.3), ("liquidity",), False),
    (CrisisSignals(mean_correlation=0.85), ("correlation",), False),
    (CrisisSignals(vol_ratio=2.5, mean_correlation=0.9), ("volatility", "correlation"), True),
    (CrisisSignals(return_5m=0.05), ("speed",), True),
    (CrisisSignals(return_5m=0.02, sigma_5m=0.005), ("speed",), True),  # 4σ
    (CrisisSignals(feed_age_seconds=10.0), (), False),  # strictly more than 10 s
    (CrisisSignals(feed_age_seconds=10.5), ("health",), True),
    (CrisisSignals(error_rate=0.051), ("health",), True),
])
def test_r7_signal_thresholds(signals, fired, crisis):
    a = assess_crisis(signals, RiskConfig())
    assert a.fired == fired and a.crisis is crisis


def test_r7_one_signal_halves_the_size():
    calm = run(entry(quantity=1.0))
    one = run(entry(quantity=1.0), mkt=market(signals=CrisisSignals(vol_ratio=2.6)))
    assert one.step("L7").value == 0.5 and one.binding == "L7"
    assert one.quantity == floor_to_step(calm.step("L7").after * 0.5, FILTERS.step)


def test_r7_reduce_only_exits_pass_a_crisis():
    state = RiskState()
    state.update(T0, account(), CRASH)
    exit_long = entry(side="SELL", stop=None, take_profit=None, p=None, reduce_only=True,
                      quantity=0.1)
    d = run(exit_long, acct=account(positions={BTC: 20_000.0}), mkt=market(signals=CRASH),
            state=state, now=T0)
    assert d.accepted and d.quantity == 0.1


# ------------------------------------------------------------- R8 StoplossGuard, kill switch


def test_r8_four_stop_losses_in_24_candles_lock_entries_for_4_candles():
    state = RiskState()
    for i, name in enumerate((ETH, SOL, ETH)):
        state.record_exit(T0 + 10 * i * MIN, name, stop_loss=True)
    assert run(entry(), state=state, now=T0 + 25 * MIN).accepted
    state.record_exit(T0 + 30 * MIN, SOL, stop_loss=True)  # 4th within 24 five-minute candles
    d = run(entry(), state=state, now=T0 + 31 * MIN)
    assert d.code is DenialCode.STOPLOSS_GUARD and d.binding == "L6"
    assert "locked until 2024-03-01 12:50:00 UTC" in d.step("L6").reason
    assert run(entry(), state=state, now=T0 + 50 * MIN).accepted


def test_r8_stop_losses_spread_over_more_than_24_candles_do_not_lock():
    state = RiskState()
    for minutes in (0, 40, 80, 125):  # the first has left the 120-minute window
        state.record_exit(T0 + minutes * MIN, ETH, stop_loss=True)
    assert run(entry(), state=state, now=T0 + 126 * MIN).accepted


def test_pair_cooldown_after_an_exit_rounds_up_to_the_candle():
    state = RiskState()
    state.record_exit(T0 + 77 * timedelta(seconds=1), BTC, stop_loss=False)
    d = run(entry(), state=state, now=T0 + 14 * MIN)
    assert d.code is DenialCode.PAIR_COOLDOWN and "12:15:00" in d.step("L6").reason
    assert run(entry(), state=state, now=T0 + 15 * MIN).accepted
    assert run(entry(instrument=ETH, entry=3_000.0, stop=2_950.0, take_profit=3_100.0),
               state=state, now=T0 + 14 * MIN).accepted


def test_r8_session_loss_of_five_percent_trips_the_kill_switch():
    down = account(95_000.0, hwm=100_000.0, session_pnl=-5_000.0)
    assert run(entry(), acct=down).code is DenialCode.KILL_SWITCH  # before any update
    state = RiskState()
    assert state.update(T0, down) is TradingState.HALTED
    assert state.halt[0] is DenialCode.KILL_SWITCH
    recovered = account(99_000.0, hwm=100_000.0)
    assert state.update(T0 + HOUR, recovered) is TradingState.HALTED
    assert run(entry(), acct=recovered, state=state, now=T0 + HOUR).code is \
        DenialCode.KILL_SWITCH
    state.reset(T0 + 2 * HOUR)
    assert run(entry(), acct=recovered, state=state, now=T0 + 2 * HOUR).accepted


# ------------------------------------------------------------------------------- L8 sanity


def test_l8_price_band():
    assert run(entry(entry=51_000.0, stop=50_000.0, take_profit=53_000.0)).accepted  # 2.0 %
    d = run(entry(entry=51_100.0, stop=50_000.0, take_profit=53_000.0))
    assert d.code is DenialCode.PRICE_BAND and "2.20% from mark" in d.step("L8").reason


def test_l8_submit_throttle_per_second_and_per_minute():
    state = RiskState()
    t, ms = int(T0.timestamp()) * SECOND, SECOND // 1000  # the one clock unit: int nanoseconds
    for i in range(10):
        state.record_submit(t + i * 50 * ms)
    assert run(entry(), state=state, now=t + 500 * ms).code is DenialCode.RATE_LIMIT_EXCEEDED
    assert run(entry(), state=state, now=t + 1000 * ms).accepted  # the first has left the window
    for i in range(190):
        state.record_submit(t + 2000 * ms + i * 250 * ms)
    assert run(entry(), state=state, now=t + 50 * SECOND).code is DenialCode.RATE_LIMIT_EXCEEDED
    assert run(entry(), state=state, now=t + 61 * SECOND).accepted


# ---------------------------------------------------------------------------- the trace


def test_trace_of_a_clamped_decision_reads_clearly():
    d = run(entry(), acct=account(positions={ETH: 45_000.0}), mkt=market(rho=0.9))
    text = d.explain()
    lines = text.splitlines()
    assert lines[0] == ("ACCEPTED BUY BTCUSDT @ 50000: 0.1 (notional 5,000.00); binding L5 "
                        "portfolio exposure")
    assert lines[1].split() == ["layer", "name", "before", "after", "reason"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == ["L1", "L2", "L3", "L4", "L5*", "L6", "L7", "L4f", "L8"]
    assert rows["L5*"].split()[:6] == ["L5*", "portfolio", "exposure", "0.2", "0.1", "cluster"]
    assert rows["L5*"].endswith("cluster BTCUSDT+ETHUSDT (ρ>0.7) holds 45,000.00 of 50,000.00 "
                                "allowed → room 5,000.00")
    assert rows["L1"].endswith("= 2.000% of equity at risk; p̂=0.5962 (p=0.6000, bucket 0.5962 "
                               "n=500), b=2.000")
    assert "budget 1.00% of equity = 1,000.00 over stop 1000" in rows["L2"]
    assert rows["L4f"].endswith("floored to step 0.001: notional 5,000.00 ≥ min 5")
    assert str(d) == text
    detailed = d.explain(inputs=True)
    assert "inputs: gross=45000, gross_cap=150000" in detailed
    record = d.records()[4]
    assert record["layer"] == "L5" and record["before"] == 0.2 and record["after"] == 0.1
    assert record["inputs"]["limit"] == "cluster" and record["code"] is None


def test_trace_of_a_denial_names_the_code_and_stops():
    d = run(entry(stop=None))
    assert d.explain().splitlines() == [
        "DENIED BUY BTCUSDT @ 50000: NO_STOP at L1 edge-gated Kelly",
        "layer  name              before  after  reason",
        "L1*    edge-gated Kelly       ∞      0  no stop-loss: the risk to the stop is undefined",
        "(later layers not evaluated: denied at L1)",
    ]
    assert repr(d) == "RiskDecision(DENIED BUY BTCUSDT @ 50000: NO_STOP at L1 edge-gated Kelly)"


def test_requested_quantity_within_every_limit_binds_nothing():
    d = run(entry(quantity=0.05))
    assert d.accepted and d.quantity == 0.05 and d.binding == "REQ"
    assert "binding requested quantity" in d.headline()


# ---------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("build, match", [
    (lambda: entry(entry=-1.0), "entry must be a positive finite number"),
    (lambda: entry(entry=math.nan), "entry must be a positive finite number"),
    (lambda: entry(stop=50_500.0), "stop 50500.0 must be below entry 50000.0 for a BUY"),
    (lambda: entry(side="SELL"), "stop 49000.0 must be above entry 50000.0 for a SELL"),
    (lambda: entry(take_profit=49_500.0), "take_profit 49500.0 must be above entry"),
    (lambda: entry(take_profit=None), "an entry needs take_profit"),
    (lambda: entry(p=1.2), r"p must be a probability in \[0, 1\], got 1.2"),
    (lambda: entry(p=None), "p must be a probability"),
    (lambda: entry(bucket_wins=600), r"bucket_wins \(600\) exceeds bucket_trades \(500\)"),
    (lambda: entry(bucket_trades=10.0), "bucket_trades must be an integer"),
    (lambda: entry(side="HOLD"), "side must be BUY or SELL, got 'HOLD'"),
    (lambda: entry(fee_rate=0.5), "fee_rate is a fraction per side"),
    (lambda: entry(quantity=0.0), "quantity must be a positive finite number"),
    (lambda: entry(instrument=""), "instrument must be a non-empty string"),
    (lambda: account(0.0), "equity must be a positive finite number"),
    (lambda: account(positions={BTC: math.inf}), "position notional for 'BTCUSDT' must be"),
    (lambda: account(daily_pnl=100_000.0), "daily_pnl 100000.0 implies a starting equity <= 0"),
    (lambda: market(rho=1.5), r"must be in \[-1, 1\], got 1.5"),
    (lambda: market(correlations={(BTC, BTC): 1.0}), "pairs of two different instruments"),
    (lambda: market(vols={BTC: 0.0}), r"vols\['BTCUSDT'\] must be a positive"),
    (lambda: CrisisSignals(return_5m=-1.5), "return_5m must be a finite return > -1"),
    (lambda: CrisisSignals(mean_correlation=2.0), "mean_correlation must be in"),
    (lambda: Instrument(BTC, tick=0.1, step=0.0), "step must be a positive finite number"),
    (lambda: Instrument(BTC, 0.1, 0.001, max_qty=0.0), "max_qty must be > 0"),
    (lambda: RiskConfig(dd_exit=0.12), r"dd_exit \(0.12\) must be below dd_reducing"),
    (lambda: RiskConfig(dd_halt=0.08), "drawdown thresholds must increase"),
    (lambda: RiskConfig(kelly_fraction=0.0), r"kelly_fraction must be in \(0, 1\]"),
    (lambda: RiskConfig(sl_guard_trades=2.5), "sl_guard_trades must be an integer >= 1"),
    (lambda: floor_to_step(math.inf, 0.001), "cannot floor an unbounded quantity"),
])
def test_bad_inputs_are_rejected_with_clear_messages(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_evaluation_context_is_rejected():
    with pytest.raises(ValueError, match="naive datetime"):
        run(now=datetime(2024, 3, 1, 12))
    with pytest.raises(ValueError, match="no daily volatility for 'BTCUSDT'"):
        run(mkt=market(vols={ETH: 0.01}))
    with pytest.raises(ValueError, match="no mark price for 'BTCUSDT'"):
        run(mkt=market(marks={ETH: 3_000.0}))
    no_pairs = market(correlations={})
    assert run(acct=account(positions={BTC: 1_000.0}), mkt=no_pairs).accepted  # no pair needed
    with pytest.raises(ValueError, match=r"no entry for \('BTCUSDT', 'ETHUSDT'\)"):
        run(acct=account(positions={ETH: 1_000.0}), mkt=no_pairs)
    state = RiskState()
    state.update(T0, account())
    with pytest.raises(ValueError, match="time went backwards"):
        state.update(T0 - MIN, account())

"""Hostile numbers at the risk layer's boundary (issue 11 §2).

Every helper is O(1) and total: steps of 1e-16 or 1e-20 (a decrement loop used to hang),
subnormal, huge (1e308, 10**400) and non-finite inputs give a ``ValueError`` with the value named
or the clamp the docstring documents, never ``OverflowError``, ``ZeroDivisionError`` or a hang.
The monotonicity properties of the layers are extended to the whole accepted input range.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_risk import BTC, ETH, SOL, T0, account, entry, market

from bot4_dagster.trading.risk import (
    AccountState,
    CrisisSignals,
    Instrument,
    MarketState,
    RiskConfig,
    RiskState,
    TradeProposal,
    drawdown_multiplier,
    evaluate,
    floor_to_step,
    kelly_fraction,
    shrunk_probability,
)

TINY_STEPS = [1e-16, 1e-20, 1e-300, 5e-324, Decimal("1e-20"), Decimal("3e-18")]
STEPS = [*TINY_STEPS, 1e-8, 0.001, 0.1, 0.25, 7.0, 1e15, 1e300]
SUBNORMAL = 5e-324


def _reference_floor(q: float, step: float | Decimal) -> float:
    """The largest grid point k·step, as the double it is returned as, that is <= q."""
    if not q > 0:
        return 0.0
    s = Fraction(Decimal(repr(step)) if isinstance(step, float) else step)
    k = math.floor(Fraction(q) / s)

    def point(j: int) -> float:
        return float(j * s) if j * s <= Fraction(2**1024) else math.inf

    if point(k + 1) <= q:  # the next grid point rounds onto q itself
        return q
    return point(k)


@pytest.mark.parametrize("step", STEPS, ids=repr)
@pytest.mark.parametrize("q", [SUBNORMAL, 1e-320, 1e-20, 0.3, 1.0, 12345.678, 1e15, 1e300,
                               1.7976931348623157e308], ids=repr)
def test_floor_to_step_is_exact_for_tiny_and_huge_steps_and_quantities(q, step):
    assert floor_to_step(q, step) == _reference_floor(q, step)


@settings(max_examples=600, deadline=None)
@given(st.floats(0.0, 1.7976931348623157e308, allow_subnormal=True),
       st.floats(0.0, 1.7976931348623157e308, allow_subnormal=True), st.sampled_from(STEPS))
def test_floor_to_step_is_monotone_never_above_q_and_exact_over_every_float(a, b, step):
    lo, hi = min(a, b), max(a, b)
    f_lo, f_hi = floor_to_step(lo, step), floor_to_step(hi, step)
    assert 0.0 <= f_lo <= lo and 0.0 <= f_hi <= hi
    assert f_lo <= f_hi
    assert f_hi == _reference_floor(hi, step)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: floor_to_step(math.nan, 0.001), "quantity must be a finite number, got nan"),
    (lambda: floor_to_step(math.inf, 0.001), "cannot floor an unbounded quantity"),
    (lambda: floor_to_step(10**400, 0.001), r"quantity must be a finite number, got 1000"),
    (lambda: floor_to_step("1", 0.001), "quantity must be a finite number"),
    (lambda: floor_to_step(1.0, 0.0), "step must be a positive finite number, got 0.0"),
    (lambda: floor_to_step(1.0, -1e-20), "step must be a positive finite number"),
    (lambda: floor_to_step(1.0, math.nan), "step must be a positive finite number, got nan"),
    (lambda: floor_to_step(1.0, math.inf), "step must be a positive finite number, got inf"),
    (lambda: floor_to_step(1.0, Decimal("sNaN")), "step must be a positive finite number"),
    (lambda: floor_to_step(1.0, True), "step must be a positive finite number, got True"),
    (lambda: kelly_fraction(math.nan, 2.0), "probability p must be a finite number, got nan"),
    (lambda: kelly_fraction(1.5, 2.0), r"probability p must be in \[0, 1\]"),
    (lambda: kelly_fraction(0.6, 0.0), "payoff ratio b must be > 0, got 0.0"),
    (lambda: kelly_fraction(0.6, math.nan), "payoff ratio b must be > 0, got nan"),
    (lambda: kelly_fraction(0.6, 10**400), "payoff ratio b must be a finite number"),
    (lambda: shrunk_probability(3, 2), "0 <= wins <= trades"),
    (lambda: shrunk_probability(1, 2, a=math.inf), "prior a must be a finite number"),
    (lambda: shrunk_probability(1, 2, a=0.0), "priors must be > 0"),
    (lambda: drawdown_multiplier(math.nan, RiskConfig()), "drawdown must be a number, got nan"),
    (lambda: drawdown_multiplier("0.1", RiskConfig()), "drawdown must be a number"),
])
def test_helpers_refuse_what_has_no_answer(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_helpers_clamp_where_the_answer_is_a_limit():
    """The documented clamps: a quantity <= 0 or -inf floors to 0; an unbounded payoff gives
    Kelly p, one so small that (1 - p)/b overflows gives -inf (no edge); an infinite drawdown
    gets the floor multiplier; counts beyond 2**53 (and 10**400) stay exact."""
    assert floor_to_step(-math.inf, 0.001) == floor_to_step(-1e308, 1e-20) == 0.0
    assert floor_to_step(SUBNORMAL, 0.001) == 0.0
    assert kelly_fraction(0.6, math.inf) == 0.6
    assert kelly_fraction(0.6, SUBNORMAL) == -math.inf
    config = RiskConfig()
    assert drawdown_multiplier(math.inf, config) == drawdown_multiplier(1e308, config) \
        == config.dd_floor_multiplier
    assert drawdown_multiplier(-math.inf, config) == drawdown_multiplier(SUBNORMAL, config) == 1.0
    assert shrunk_probability(10**400, 10**400) == 1.0
    assert shrunk_probability(0, 10**300) < shrunk_probability(1, 10**300) \
        == float(Fraction(11, 10**300 + 20))
    assert shrunk_probability(2**60, 2**61) == pytest.approx(0.5, abs=1e-15)


HOSTILE = [math.nan, math.inf, -math.inf, 1e308, 10**400, SUBNORMAL, -SUBNORMAL]
WHERE = {
    "equity": lambda v: account(v),
    "high-water mark": lambda v: AccountState(100_000.0, v),
    "position notional": lambda v: account(positions={BTC: v}),
    "daily pnl": lambda v: account(daily_pnl=v),
    "entry price": lambda v: entry(entry=v),
    "stop": lambda v: entry(stop=v),
    "take-profit": lambda v: entry(take_profit=v),
    "quantity": lambda v: entry(quantity=v),
    "spread": lambda v: entry(spread=v),
    "fee rate": lambda v: entry(fee_rate=v),
    "mark": lambda v: market(marks={BTC: v, ETH: 3_000.0, SOL: 100.0}),
    "volatility": lambda v: market(vols={BTC: v, ETH: 0.01, SOL: 0.01}),
    "correlation": lambda v: market(correlations={(BTC, ETH): v, (BTC, SOL): 0.2,
                                                  (ETH, SOL): 0.2}),
    "5-minute return": lambda v: CrisisSignals(return_5m=v),
    "volatility ratio": lambda v: CrisisSignals(vol_ratio=v),
    "tick": lambda v: Instrument(BTC, v, 0.001),
    "step": lambda v: Instrument(BTC, 0.1, v),
    "max_qty": lambda v: Instrument(BTC, 0.1, 0.001, max_qty=v),
    "kelly fraction setting": lambda v: RiskConfig(kelly_fraction=v),
}
# a subnormal position, pnl, spread or correlation is flushed to 0 (documented), a signed
# value may be -subnormal there too; everything else must be refused
FLUSHED = {"position notional", "daily pnl", "spread", "fee rate", "correlation",
           "5-minute return", "volatility ratio"}


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize("where", WHERE)
def test_hostile_inputs_are_refused_or_flushed_when_built(where, value):
    if where in FLUSHED and value in (SUBNORMAL, -SUBNORMAL):
        WHERE[where](value)  # accepted as 0.0
        return
    if where == "max_qty" and value in (1e308, 10**400):  # no cap beyond the instrument's bound
        inst = WHERE[where](value)
        assert inst.qty_bound == inst.step * 10**15  # what the order layer accepts
        return
    with pytest.raises(ValueError) as refused:
        WHERE[where](value)
    assert str(refused.value) and type(refused.value) is ValueError


@st.composite
def extreme_scenarios(draw):
    """Inputs across the whole accepted range (every number in [1e-12, 1e15] or 0, steps and
    ticks down to 1e-18): evaluation must give a decision, never an arithmetic error."""
    def log(lo, hi):
        return 10.0 ** draw(st.floats(math.log10(lo), math.log10(hi)))

    equity = log(1e-12, 1e15)
    side = draw(st.sampled_from(["BUY", "SELL"]))
    sgn = 1 if side == "BUY" else -1
    price = log(1e-9, 1e12)
    stop = price * (1 - sgn * draw(st.floats(1e-6, 0.9)))
    tp = price * (1 + sgn * draw(st.floats(1e-6, 50.0 if side == "BUY" else 0.9)))
    n = draw(st.integers(0, 10**6))
    proposal = TradeProposal(BTC, side, price, stop, tp, p=draw(st.floats(0.0, 1.0)),
                             bucket_trades=n, bucket_wins=draw(st.integers(0, n)),
                             quantity=draw(st.none() | st.just(log(1e-12, 1e15))),
                             reduce_only=draw(st.booleans()))
    acct = AccountState(equity, min(1e15, equity * draw(st.floats(1.0, 100.0))),
                        {BTC: draw(st.floats(-1, 1)) * equity} if draw(st.booleans()) else {})
    mkt = MarketState(marks={BTC: price}, vols={BTC: log(1e-12, 1e3)}, correlations={})
    step, tick = draw(st.sampled_from([1e-18, 1e-12, 1e-8, 1.0, 1e6])), log(1e-18, 1e6)
    filters = Instrument(BTC, tick, step, min_notional=draw(st.sampled_from([0.0, 5.0, 1e9])))
    return proposal, acct, mkt, filters


@settings(max_examples=500, deadline=None)
@given(extreme_scenarios())
def test_evaluation_is_total_and_monotone_over_the_whole_accepted_range(scenario):
    proposal, acct, mkt, filters = scenario
    d = evaluate(proposal, acct, mkt, filters, RiskState(), T0)
    for s in d.steps:
        assert 0.0 <= s.after <= s.before, s
        assert not math.isnan(s.after)
    assert d.quantity == d.steps[-1].after and math.isfinite(d.quantity)
    assert d.accepted == (d.quantity > 0)

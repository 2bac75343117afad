"""The eight risk-clamp layers of trading.md §2.2 and the ACTIVE / REDUCING / HALTED state machine.

Every decision is ``q = floor_step(min(q1..q5) · m6 · m7)``, then L8 accepts or denies. L1–L5
return caps, L6–L7 multipliers; one combinator applies them as ``min(size, cap)`` and
``size · clip(m, 0, 1)`` and the step floor can only round down, so **no layer can increase size**
by construction, whatever a layer computes. A layer may also deny with a stable
:class:`DenialCode`; the first denial ends the evaluation.

Each :class:`RiskDecision` carries its trace (per layer: size before and after, the inputs used,
a one-line reason) and renders as a short table, so any clamp can be audited after the fact.

Units: prices in quote currency per unit, quantities in base units, notionals (quantity · price)
and PnL in quote currency, volatilities and shares as fractions (0.02 = 2 %), times as int
nanoseconds since the Unix epoch (the trading layer's one clock unit) or aware datetimes. The
instrument is the order layer's ``Instrument`` and the codes its ``DenialCode``: one vocabulary.
Every input number is finite, not subnormal and at most 1e15 in magnitude (prices, equities,
volatilities and quantities at least 1e-12), or its constructor raises ``ValueError``.

Choices the spec leaves open: L1 sizes on p̂ = min(calibrated p, (wins + a)/(n + a + b₀)), so
both the calibrator and the bucket's shrunk track record must show the edge (a thin or unlucky
bucket pulls p̂ toward 1/2; an overconfident calibrator is capped by the record). Fees per unit
are the round turn 2·fee_rate·E in L1 and L2, and L2 is solved for q because its fee term depends
on the notional. L5 solves the σ_p quadratic for the exact cap. Reduce-only exits skip the sizing
layers, are capped at the open position, pass REDUCING and CRISIS, and are denied only when
HALTED or by L8's sanity checks. Missing market data raises ``ValueError`` rather than reading
as zero risk.

Pure Python on purpose: one evaluation is a few dozen scalar operations, where numpy's per-call
overhead would cost more than the arithmetic. Inputs are validated once, when the small frozen
input objects are built, so :func:`evaluate` itself stays on the fast path.
"""

from ..instrument import Instrument
from ..vocabulary import DenialCode, Side, TradingState
from .config import RiskConfig
from .inputs import (
    AccountState,
    CrisisAssessment,
    CrisisSignals,
    MarketState,
    TradeProposal,
    assess_crisis,
)
from .layers import evaluate
from .sizing import drawdown_multiplier, floor_to_step, kelly_fraction, shrunk_probability
from .state import RiskState
from .trace import LayerStep, RiskDecision

__all__ = [
    "AccountState", "CrisisAssessment", "CrisisSignals", "DenialCode", "Instrument",
    "LayerStep", "MarketState", "RiskConfig", "RiskDecision", "RiskState", "Side",
    "TradeProposal", "TradingState", "assess_crisis", "drawdown_multiplier", "evaluate",
    "floor_to_step", "kelly_fraction", "shrunk_probability",
]

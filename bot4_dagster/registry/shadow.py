"""Shadow mode (reference/trading.md §3.2, M6): a challenger sees the champion's bars and
decides as if it traded, against a paper exchange of its own.

Safe by construction: a ``Shadow`` is given no order manager and no risk state, only the bars,
the windows and the champion's prediction, so it cannot place a live order or change what the
live path sizes. Each bar leaves a record: both models' probabilities and targets, the shadow's
paper fills, and the paired difference of the two targets' returns on that bar, which is what
the promotion gate compares (``promotion.paired_bound``).

``decide`` turns a prediction into a target position (base units, signed). It is the decision
engine's policy, applied to both models alike, so the comparison is of the models only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ..serving.champion import Champion, Prediction
from ..trading.instrument import Instrument
from ..trading.orders import OrderType
from ..trading.paper import Bar, FeeModel, Fill, PaperExchange, SlippageModel
from ..trading.venue import SubmitOrder
from ..trading.vocabulary import Side

Decide = Callable[[Prediction], Decimal]


@dataclass(frozen=True)
class ShadowBar:
    ts: int
    champion: float  # calibrated probabilities
    shadow: float
    champion_target: Decimal
    shadow_target: Decimal
    fills: tuple[Fill, ...]  # the shadow's paper fills on this bar's open
    difference_bps: float | None  # (shadow − champion) return of the previous targets, per unit


class Shadow:
    """``candidate`` (registered ``version``) in shadow on ``instrument``."""

    def __init__(self, candidate: Champion, *, version: str, instrument: Instrument,
                 decide: Decide, fees: FeeModel | None = None,
                 slippage: SlippageModel | None = None):
        self.candidate, self.version, self.instrument = candidate, version, instrument
        self.decide = decide
        self.exchange = PaperExchange([instrument], fees=fees, slippage=slippage)
        self.records: list[ShadowBar] = []
        self._last: tuple[Decimal, Decimal, Decimal] | None = None  # close, both targets
        self._orders = 0

    def on_bar(self, bar: Bar, window: np.ndarray, champion: Prediction) -> ShadowBar:
        """``bar`` has closed and ``window`` ends with it; ``champion`` is the live
        prediction on the same window. Orders decided now fill at the next bar's open."""
        before = len(self.exchange.fills)
        self.exchange.on_bar(self.instrument.symbol, bar)
        fills = tuple(self.exchange.fills[before:])
        difference = None
        if self._last is not None:
            close, champion_target, shadow_target = self._last
            change = (bar.close - close) / close * 10_000
            difference = float((shadow_target - champion_target) * change)
        ours = self.candidate.predict(window)
        shadow_target, champion_target = self.decide(ours), self.decide(champion)
        self._trade_to(shadow_target, bar.ts)
        record = ShadowBar(bar.ts, champion.probability, ours.probability, champion_target,
                           shadow_target, fills, difference)
        self.records.append(record)
        self._last = (bar.close, champion_target, shadow_target)
        return record

    def _trade_to(self, target: Decimal, ts: int) -> None:
        delta = target - self.exchange.position(self.instrument.symbol)
        if delta == 0:
            return
        self._orders += 1
        side = Side.BUY if delta > 0 else Side.SELL
        self.exchange.submit(SubmitOrder(
            f"shadow-{self.version}-{self._orders}", self.instrument.symbol, side,
            OrderType.MARKET, abs(delta), None, None, False, None, (), None, ts))

    def differences(self) -> np.ndarray:
        """The paired per-bar differences (bps per unit) for ``promotion.paired_bound``."""
        return np.array([r.difference_bps for r in self.records if r.difference_bps is not None])

"""The frozen inputs of a risk decision: the proposed trade, the account and the market (with the
crisis signals); the instrument's filters are the order layer's ``Instrument``. Validated once when
built, every number by the rules of ``config`` (finite, not subnormal, bounded), so evaluation
stays fast and never meets ``inf``."""

# Hot path: plain comparisons rather than min()/max() (in CPython 3.11 a call costs ~90 ns, a
# comparison ~20 ns, and one evaluation has a 20 µs budget).
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from ..vocabulary import Side
from .config import INF, RiskConfig, _count, _non_negative, _number, _positive, _store

# ------------------------------------------------------------------------------------ inputs


def _side(value: Side | str) -> Side:
    try:
        return Side(str(value).upper())
    except ValueError:
        raise ValueError(f"side must be BUY or SELL, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class TradeProposal:
    """One order the decision engine wants to place; validated here so evaluation is fast.

    Entries need ``take_profit`` and ``p``; a missing ``stop`` is allowed so that L1 can deny it
    with ``NO_STOP``. ``reduce_only`` orders only shrink an opposite position: they skip the
    sizing layers and pass in REDUCING; ``quantity`` defaults to the whole position.
    """

    instrument: str
    side: Side | str
    entry: float  # E: intended (limit) price
    stop: float | None  # sl: stop-loss price, below E for a BUY, above for a SELL
    take_profit: float | None = None  # tp: beyond E on the profitable side
    p: float | None = None  # calibrated probability that tp is hit before sl
    bucket_trades: int = 0  # n: past trades in p's calibration bucket
    bucket_wins: int = 0  # wins among those n
    fee_rate: float = 0.0  # fee per side, fraction of notional (round turn = 2 · fee_rate)
    spread: float = 0.0  # quoted ask − bid, price units
    impact: float = 0.0  # expected market impact per unit, price units
    quantity: float | None = None  # requested size; None lets the layers size it
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.instrument, str) and bool(self.instrument)):
            raise ValueError(f"instrument must be a non-empty string, got {self.instrument!r}")
        object.__setattr__(self, "side", _side(self.side))
        _positive("entry", self.entry)
        for name in ("fee_rate", "spread", "impact"):
            _store(self, name, _non_negative(name, getattr(self, name)))
        if self.fee_rate >= 0.1:
            raise ValueError(f"fee_rate is a fraction per side, got {self.fee_rate}")
        if self.quantity is not None:
            _positive("quantity", self.quantity)
        if self.reduce_only is not True and self.reduce_only is not False:
            raise ValueError(f"reduce_only must be a bool, got {self.reduce_only!r}")
        if not self.reduce_only:
            self._check_bracket()

    def _check_bracket(self) -> None:
        buy = self.side is Side.BUY
        if self.stop is not None:
            _positive("stop", self.stop)
            if not (self.stop < self.entry if buy else self.stop > self.entry):
                raise ValueError(f"stop {self.stop} must be {'below' if buy else 'above'} entry "
                                 f"{self.entry} for a {self.side}")
        if self.take_profit is None:
            raise ValueError("an entry needs take_profit: binary Kelly sizes on the tp/sl payoff "
                             "ratio")
        _positive("take_profit", self.take_profit)
        if not (self.take_profit > self.entry if buy else self.take_profit < self.entry):
            raise ValueError(f"take_profit {self.take_profit} must be "
                             f"{'above' if buy else 'below'} entry {self.entry} for a {self.side}")
        p = None if self.p is None else _number("p", self.p, "a probability in [0, 1]")
        if not (p is not None and 0.0 <= p <= 1.0):
            raise ValueError(f"p must be a probability in [0, 1], got {self.p!r}")
        _store(self, "p", p)
        for name in ("bucket_trades", "bucket_wins"):
            _count(name, getattr(self, name))
        if self.bucket_wins > self.bucket_trades:
            raise ValueError(f"bucket_wins ({self.bucket_wins}) exceeds bucket_trades "
                             f"({self.bucket_trades})")


@dataclass(frozen=True, slots=True)
class AccountState:
    """Mark-to-market account snapshot; positions are signed notionals (+ long, − short)."""

    equity: float
    high_water_mark: float
    positions: Mapping[str, float] = field(default_factory=dict)
    daily_pnl: float = 0.0  # since 00:00 UTC
    session_pnl: float = 0.0  # since the session (and kill switch) started
    gross: float = field(init=False, repr=False)  # Σ|notional|
    net: float = field(init=False, repr=False)  # Σ notional
    drawdown: float = field(init=False, repr=False)  # 1 − equity / HWM, ≥ 0
    daily_loss: float = field(init=False, repr=False)  # loss as a share of start-of-day equity
    session_loss: float = field(init=False, repr=False)  # loss as a share of session-start equity
    held: tuple[str, ...] = field(init=False, repr=False)  # instruments with a non-zero position

    def __post_init__(self) -> None:
        _positive("equity", self.equity)
        _positive("high_water_mark", self.high_water_mark)
        positions = {}
        for name, notional in dict(self.positions).items():
            x = _number(f"position notional for {name!r}", notional)
            positions[name] = notional if x else 0.0  # a subnormal notional is flushed to 0
        for name in ("daily_pnl", "session_pnl"):
            value = _number(name, getattr(self, name))
            _store(self, name, value)
            if not (self.equity - value > 0):
                raise ValueError(f"{name} {value} implies a starting equity <= 0 "
                                 f"(equity {self.equity})")
        put = object.__setattr__
        put(self, "positions", MappingProxyType(positions))
        put(self, "gross", math.fsum(abs(n) for n in positions.values()))
        put(self, "net", math.fsum(positions.values()))
        # A high-water mark below equity is a new high not booked yet: no drawdown.
        # (HWM − Eq)/HWM, not 1 − Eq/HWM: exact at round numbers (90k under 100k is 10 %).
        put(self, "drawdown", max(0.0, (self.high_water_mark - self.equity)
                                  / self.high_water_mark))
        put(self, "daily_loss", max(0.0, -self.daily_pnl / (self.equity - self.daily_pnl)))
        put(self, "session_loss", max(0.0, -self.session_pnl / (self.equity - self.session_pnl)))
        put(self, "held", tuple(name for name, notional in positions.items() if notional))


@dataclass(frozen=True, slots=True)
class CrisisSignals:
    """The five crisis readings of L7 at one time; defaults are a calm market."""

    vol_ratio: float = 1.0  # (a) σ_1h / σ_30d
    return_5m: float = 0.0  # (b) last 5-minute return, signed fraction
    sigma_5m: float | None = None  # (b) typical 5 m return σ; None ⇒ only the 5 % rule applies
    spread_ratio: float = 1.0  # (c) spread / its 7-day median
    depth_ratio: float = 1.0  # (c) depth within 10 bps / its median
    mean_correlation: float = 0.0  # (d) mean pairwise ρ of 5 m returns over 1 day
    feed_age_seconds: float = 0.0  # (e) age of the newest market data
    error_rate: float = 0.0  # (e) reject/error share of requests over 5 minutes

    def __post_init__(self) -> None:
        for name in ("vol_ratio", "spread_ratio", "depth_ratio", "feed_age_seconds",
                     "error_rate"):
            _store(self, name, _non_negative(name, getattr(self, name)))
        r = _number("return_5m", self.return_5m, "a finite return > -1")
        if not r > -1:
            raise ValueError(f"return_5m must be a finite return > -1, got {self.return_5m!r}")
        _store(self, "return_5m", r)
        if self.sigma_5m is not None:
            _positive("sigma_5m", self.sigma_5m)
        rho = _number("mean_correlation", self.mean_correlation, "in [-1, 1]")
        if not -1 <= rho <= 1:
            raise ValueError(f"mean_correlation must be in [-1, 1], got {self.mean_correlation!r}")
        _store(self, "mean_correlation", rho)


SIGNALS = ("volatility", "speed", "liquidity", "correlation", "health")


class CrisisAssessment(NamedTuple):
    """Severities are reading / threshold (low-side depth: threshold / reading); ≥ 1 fires."""

    severities: tuple[float, float, float, float, float]  # in SIGNALS order
    fired: tuple[str, ...]
    crisis: bool  # S ≥ 2, or speed or health alone

    @property
    def signal_count(self) -> int:  # S ("count" is tuple's own method)
        return len(self.fired)

    def calm(self, share: float) -> bool:
        return max(self.severities) < share


def assess_crisis(signals: CrisisSignals, config: RiskConfig) -> CrisisAssessment:
    """L7's signal count S and crisis verdict from one set of readings."""
    return CrisisAssessment(*_assess(signals, config))


def _assess(s: CrisisSignals, c: RiskConfig
            ) -> tuple[tuple[float, float, float, float, float], tuple[str, ...], bool]:
    # Plain comparisons instead of max(): this runs on every decision.
    move = abs(s.return_5m)
    speed = move / c.crisis_move_5m
    if s.sigma_5m is not None and move / (c.crisis_move_sigmas * s.sigma_5m) > speed:
        speed = move / (c.crisis_move_sigmas * s.sigma_5m)
    liquidity = s.spread_ratio / c.crisis_spread_ratio
    depth = c.crisis_depth_ratio / s.depth_ratio if s.depth_ratio > 0 else INF
    if depth > liquidity:
        liquidity = depth
    vol = s.vol_ratio / c.crisis_vol_ratio
    corr = s.mean_correlation / c.crisis_mean_corr if s.mean_correlation > 0 else 0.0
    health = s.feed_age_seconds / c.crisis_feed_stale_seconds
    if s.error_rate / c.crisis_error_rate > health:
        health = s.error_rate / c.crisis_error_rate
    sev = (vol, speed, liquidity, corr, health)
    if vol < 1.0 and speed < 1.0 and liquidity < 1.0 and corr < 1.0 and health <= 1.0:
        return sev, (), False
    # Health thresholds are strict ("stale > 10 s", "error rate > 5 %"); the others are ≥.
    fired = tuple(name for name, hit in (("volatility", vol >= 1.0), ("speed", speed >= 1.0),
                                         ("liquidity", liquidity >= 1.0),
                                         ("correlation", corr >= 1.0), ("health", health > 1.0))
                  if hit)
    crisis = len(fired) >= 2 or speed >= 1.0 or health > 1.0
    return sev, fired, crisis


@dataclass(frozen=True, slots=True)
class MarketState:
    """One market snapshot shared by every decision of a tick.

    ``vols`` are EWMA daily volatilities (λ = ``RiskConfig.vol_lambda``) for the traded and every
    held instrument; ``correlations`` (either key order) must cover every pair among them that L5
    meets. A missing number is an error, not a silent zero: L5 cannot bound risk it cannot see.
    """

    marks: Mapping[str, float]
    vols: Mapping[str, float]
    correlations: Mapping[tuple[str, str], float] = field(default_factory=dict)
    signals: CrisisSignals = field(default_factory=CrisisSignals)
    rho: Mapping[str, Mapping[str, float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for label, table in (("marks", self.marks), ("vols", self.vols)):
            for name, value in table.items():
                _positive(f"{label}[{name!r}]", value)
        rho: dict[str, dict[str, float]] = {}
        for pair, value in self.correlations.items():
            if not (isinstance(pair, tuple) and len(pair) == 2 and pair[0] != pair[1]):
                raise ValueError("correlation keys are pairs of two different instruments, got "
                                 f"{pair!r}")
            x = _number(f"correlation {pair}", value, "in [-1, 1]")
            if not -1.0 <= x <= 1.0:
                raise ValueError(f"correlation {pair} must be in [-1, 1], got {value!r}")
            a, b = pair
            rho.setdefault(a, {})[b] = x
            rho.setdefault(b, {})[a] = x
        put = object.__setattr__
        put(self, "marks", MappingProxyType(dict(self.marks)))
        put(self, "vols", MappingProxyType(dict(self.vols)))
        put(self, "rho", MappingProxyType(rho))

    def mark(self, instrument: str) -> float:
        try:
            return self.marks[instrument]
        except KeyError:
            raise ValueError(f"MarketState.marks has no mark price for {instrument!r}") from None

    def vol(self, instrument: str) -> float:
        try:
            return self.vols[instrument]
        except KeyError:
            raise ValueError(f"MarketState.vols has no daily volatility for {instrument!r}, "
                             "which L3/L5 need") from None

    def correlation(self, a: str, b: str) -> float:
        if a == b:
            return 1.0
        try:
            return self.rho[a][b]
        except KeyError:
            raise ValueError(f"MarketState.correlations has no entry for ({a!r}, {b!r}); L5 "
                             "needs ρ for every pair of traded and held instruments") from None

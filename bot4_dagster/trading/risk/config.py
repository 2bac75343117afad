"""Risk limits and number rules: ``RiskConfig``, the one object holding every default of the eight
layers (trading.md §2.2), and the checks every input number passes. Sides, trading states and
denial codes are the shared vocabulary's (``trading.vocabulary``)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from ..boundary import describe
from ..vocabulary import DenialCode

INF = math.inf
MAX_MAGNITUDE = 1e15
"""No input number may exceed this in magnitude: equities, prices, notionals and quantities of
any real market fit, and a product or quotient of a few of them stays far from float overflow
(so no layer can meet ``inf`` or an ``OverflowError``)."""
MIN_SCALE = 1e-12
"""Prices, equities, volatilities and quantities are at least this (a smaller price or equity
is a unit error, and dividing by it would overflow)."""
_TINY = sys.float_info.min  # below it a float is subnormal: flushed to 0 (a documented clamp)
_FLIP_TOLERANCE = 1e-9  # relative slack so a reduce-only exit of the whole position is not cut

__all__ = ["INF", "MAX_MAGNITUDE", "MIN_SCALE", "DenialCode", "RiskConfig"]


def _real(value: object) -> float | None:
    """``value`` as a float if it is an int or float (not bool), finite and at most
    MAX_MAGNITUDE in magnitude, else None. A subnormal value is flushed to 0.0: no reading
    that small means anything, and flushed it cannot overflow a quotient."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        x = float(value)
    except OverflowError:  # an int beyond the float range (10**400)
        return None
    if not (math.isfinite(x) and abs(x) <= MAX_MAGNITUDE):
        return None
    return 0.0 if abs(x) < _TINY else x


def _number(name: str, value: object, what: str = "a finite number") -> float:
    x = _real(value)
    if x is None:
        raise ValueError(f"{name} must be {what} (|x| <= {MAX_MAGNITUDE:g}), got "
                         f"{describe(value)}")
    return x


def _positive(name: str, value: object) -> float:
    x = _real(value)
    if x is None or x < MIN_SCALE:
        raise ValueError(f"{name} must be a positive finite number in [{MIN_SCALE:g}, "
                         f"{MAX_MAGNITUDE:g}], got {describe(value)}")
    return x


def _non_negative(name: str, value: object) -> float:
    x = _real(value)
    if x is None or x < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (at most {MAX_MAGNITUDE:g}), got "
                         f"{describe(value)}")
    return x


def _fraction(name: str, value: object) -> float:
    x = _real(value)
    if x is None or not 0 < x <= 1:
        raise ValueError(f"{name} must be in (0, 1] (not subnormal), got {describe(value)}")
    return x


def _count(name: str, value: object, low: int = 0) -> None:
    if not (type(value) is int and low <= value <= MAX_MAGNITUDE):
        raise ValueError(f"{name} must be an integer >= {low} (at most {MAX_MAGNITUDE:g}), got "
                         f"{describe(value)}")


def _store(obj: object, name: str, x: float) -> None:
    """Keep a flushed subnormal as 0.0 on a frozen input (other values stay as given)."""
    if x == 0.0 and getattr(obj, name) != 0:
        object.__setattr__(obj, name, 0.0)


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Every default of trading.md §2.2 in one frozen, validated object (shares are of equity)."""

    # L1 edge-gated fractional Kelly
    kelly_fraction: float = 0.25  # k: quarter Kelly keeps 44 % of max growth, P(-50 %) ≈ 0.8 %
    f_cap: float = 0.02  # most equity risked to the stop on one trade
    prior_wins: float = 10.0  # a: Beta-prior pseudo-wins shrinking the bucket's hit rate to 1/2
    prior_losses: float = 10.0  # b₀: Beta-prior pseudo-losses
    min_bucket_trades: int = 50  # a calibration bucket with fewer trades is "thin" ...
    thin_bucket_f_cap: float = 0.005  # ... and may risk at most this much
    # L2 per-trade risk budget (FixedRiskSizer)
    r_max: float = 0.01  # equity lost at the stop, fees and slippage included
    spread_slippage_share: float = 0.5  # slip_est = this · spread + impact (half-spread crossing)
    # L3 volatility target
    v_pos: float = 0.01  # equity moved by a 1σ daily move of one position
    max_leverage: float = 3.0  # one position's notional ≤ this · equity
    vol_lambda: float = 0.94  # RiskMetrics EWMA decay the σ̂ in MarketState.vols should use
    # L4 instrument and order limits
    max_instrument_share: float = 0.25  # c_i: one instrument's notional after the trade
    max_order_share: float = 0.10  # one order's notional
    # L5 portfolio exposure and correlation
    max_gross: float = 1.5  # G: Σ|notional| after the trade
    max_net: float = 1.0  # N: |Σ notional| after the trade
    sigma_max: float = 0.02  # ex-ante daily portfolio σ_p = √(wᵀΣw) ceiling
    cov_lambda: float = 0.97  # EWMA decay the correlations in MarketState should use
    max_cluster: float = 0.50  # C: gross of one correlation cluster after the trade
    cluster_rho: float = 0.7  # single-linkage threshold: ρ above this joins a cluster
    # L6 drawdown breaker (mark-to-market equity) and protections
    dd_scale_start: float = 0.05  # m6 = 1 below this drawdown ...
    dd_reducing: float = 0.10  # ... falls linearly to dd_floor_multiplier here; ≥ ⇒ REDUCING
    dd_floor_multiplier: float = 0.25  # m6 at and beyond dd_reducing
    dd_halt: float = 0.15  # drawdown ⇒ HALTED (manual reset)
    dd_exit: float = 0.075  # leave drawdown-REDUCING only below this drawdown ...
    reducing_min_seconds: float = 86_400.0  # ... and this long after DD was last ≥ dd_reducing
    daily_loss_reducing: float = 0.03  # daily loss ⇒ REDUCING until the next 00:00 UTC
    candle_seconds: float = 300.0  # bar length the StoplossGuard and cooldown count in (5 m)
    sl_guard_trades: int = 4  # StoplossGuard: this many stop-loss exits ...
    sl_guard_lookback_candles: int = 24  # ... within this many candles ...
    sl_guard_lock_candles: int = 4  # ... lock new entries for this many candles
    pair_cooldown_candles: int = 2  # no new entry on an instrument this soon after its exit
    # L7 crisis / regime detector (each signal's threshold)
    crisis_vol_ratio: float = 2.5  # (a) σ_1h / σ_30d ≥ this
    crisis_move_sigmas: float = 4.0  # (b) |r_5m| ≥ this · σ_5m ...
    crisis_move_5m: float = 0.05  # (b) ... or |r_5m| ≥ this
    crisis_spread_ratio: float = 3.0  # (c) spread ≥ this · its 7-day median ...
    crisis_depth_ratio: float = 0.30  # (c) ... or depth within 10 bps ≤ this · its median
    crisis_mean_corr: float = 0.85  # (d) mean pairwise ρ (5 m returns over 1 d) ≥ this
    crisis_feed_stale_seconds: float = 10.0  # (e) market data older than this ...
    crisis_error_rate: float = 0.05  # (e) ... or reject/error rate over 5 m above this
    single_signal_multiplier: float = 0.5  # m7 with exactly one of (a), (c), (d)
    crisis_calm_seconds: float = 3600.0  # CRISIS ends after this long with every signal ...
    crisis_calm_share: float = 0.8  # ... below this share of its threshold
    # L8 pre-trade sanity and throttles
    price_band: float = 0.02  # |limit − mark| / mark ≤ this
    max_submits_per_second: int = 10  # submits in any 1 s window
    max_submits_per_minute: int = 200  # submits in any 60 s window
    kill_switch_loss: float = 0.05  # session loss ⇒ HALTED (manual reset)

    def __post_init__(self) -> None:
        for name in ("kelly_fraction", "f_cap", "thin_bucket_f_cap", "r_max", "v_pos",
                     "dd_scale_start", "dd_reducing", "dd_floor_multiplier", "dd_halt", "dd_exit",
                     "daily_loss_reducing", "vol_lambda", "cov_lambda", "crisis_depth_ratio",
                     "crisis_calm_share", "price_band", "kill_switch_loss", "crisis_error_rate",
                     "crisis_mean_corr", "spread_slippage_share"):
            _fraction(name, getattr(self, name))
        for name in ("prior_wins", "prior_losses", "max_leverage", "max_gross", "max_net",
                     "max_instrument_share", "max_order_share", "max_cluster", "sigma_max",
                     "reducing_min_seconds", "candle_seconds", "crisis_vol_ratio",
                     "crisis_move_sigmas", "crisis_move_5m", "crisis_spread_ratio",
                     "crisis_feed_stale_seconds", "crisis_calm_seconds"):
            _positive(name, getattr(self, name))
        for name in ("min_bucket_trades", "sl_guard_trades", "sl_guard_lookback_candles",
                     "sl_guard_lock_candles", "pair_cooldown_candles", "max_submits_per_second",
                     "max_submits_per_minute"):
            _count(name, getattr(self, name), low=1)
        if not (-1 < _number("cluster_rho", self.cluster_rho) < 1):
            raise ValueError(f"cluster_rho must be in (-1, 1), got {self.cluster_rho}")
        if not (0 <= _number("single_signal_multiplier", self.single_signal_multiplier) <= 1):
            raise ValueError("single_signal_multiplier must be in [0, 1], got "
                             f"{self.single_signal_multiplier}")
        if not (self.dd_scale_start < self.dd_reducing < self.dd_halt):
            raise ValueError("drawdown thresholds must increase (dd_scale_start < dd_reducing < "
                             f"dd_halt), got {self.dd_scale_start} / {self.dd_reducing} / "
                             f"{self.dd_halt}")
        if not (self.dd_exit < self.dd_reducing):
            raise ValueError(f"dd_exit ({self.dd_exit}) must be below dd_reducing "
                             f"({self.dd_reducing}), or REDUCING would have no hysteresis")

"""Risk vocabulary and limits: denial codes and ``RiskConfig``, the one object holding every
default of the eight layers (trading.md §2.2). Sides and trading states are the order layer's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

INF = math.inf
DAY = 86_400.0
_FLIP_TOLERANCE = 1e-9  # relative slack so a reduce-only exit of the whole position is not cut


class DenialCode(StrEnum):
    """Stable reasons a decision is denied; callers and logs match on these, never on text."""

    NO_EDGE = "NO_EDGE"  # L1: quarter-Kelly fraction ≤ 0 (or tp not beyond fees)
    NO_STOP = "NO_STOP"  # L1/L2: no stop-loss, so no risk to size against
    PRICE_NOT_ON_TICK = "PRICE_NOT_ON_TICK"  # L4: entry price off the venue's tick grid
    REDUCE_ONLY_NO_POSITION = "REDUCE_ONLY_NO_POSITION"  # L4: nothing opposite to reduce
    STOPLOSS_GUARD = "STOPLOSS_GUARD"  # L6: too many stop-loss exits lately, entries locked
    PAIR_COOLDOWN = "PAIR_COOLDOWN"  # L6: the instrument exited within its cooldown
    CRISIS = "CRISIS"  # L7: crisis detector says m7 = 0
    ZERO_SIZE = "ZERO_SIZE"  # step floor: nothing left after the clamps
    BELOW_MIN_QTY = "BELOW_MIN_QTY"  # step floor: below the venue's minimum quantity
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"  # step floor: below minNotional (never rounded up)
    TRADING_HALTED = "TRADING_HALTED"  # L8: state HALTED (drawdown ≥ 15 %)
    KILL_SWITCH = "KILL_SWITCH"  # L8: state HALTED by the session-PnL kill switch
    TRADING_STATE_REDUCING = "TRADING_STATE_REDUCING"  # L8: REDUCING and the order adds risk
    PRICE_BAND = "PRICE_BAND"  # L8: limit price too far from the mark
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"  # L8: submit throttle


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _fraction(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0 < value <= 1):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


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
    reducing_min_seconds: float = DAY  # ... and this long after drawdown was last ≥ dd_reducing
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
            value = getattr(self, name)
            if not (type(value) is int and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (-1 < self.cluster_rho < 1):
            raise ValueError(f"cluster_rho must be in (-1, 1), got {self.cluster_rho}")
        if not (0 <= self.single_signal_multiplier <= 1):
            raise ValueError("single_signal_multiplier must be in [0, 1], got "
                             f"{self.single_signal_multiplier}")
        if not (self.dd_scale_start < self.dd_reducing < self.dd_halt):
            raise ValueError("drawdown thresholds must increase (dd_scale_start < dd_reducing < "
                             f"dd_halt), got {self.dd_scale_start} / {self.dd_reducing} / "
                             f"{self.dd_halt}")
        if not (self.dd_exit < self.dd_reducing):
            raise ValueError(f"dd_exit ({self.dd_exit}) must be below dd_reducing "
                             f"({self.dd_reducing}), or REDUCING would have no hysteresis")

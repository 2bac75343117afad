"""The ACTIVE / REDUCING / HALTED state machine with its hysteresis, breakers and throttles.

Times are the trading layer's one clock unit, int nanoseconds since the epoch (or aware
datetimes, converted exactly); the durations in ``RiskConfig`` are seconds and are converted once
here. The submit limits are the order layer's ``Throttle``."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from ..clock import DAY, MINUTE, NEVER, SECOND, iso, seconds_to_ns, to_ns
from ..throttle import Throttle
from ..vocabulary import DenialCode, TradingState
from .config import RiskConfig
from .inputs import AccountState, CrisisAssessment, CrisisSignals, assess_crisis
from .sizing import _ceil_candle

# ---------------------------------------------------------------------------- state machine


class RiskState:
    """ACTIVE / REDUCING / HALTED with hysteresis, StoplossGuard, pair cooldowns and the submit log.

    The trading state is the most severe of independent latches, each with its own exit rule:
    drawdown ≥ 10 % (exit when DD < 7.5 % and 24 h after DD was last ≥ 10 %), daily loss ≥ 3 %
    (until the next 00:00 UTC), CRISIS (exit after 60 min with every signal < 80 % of its
    threshold) give REDUCING; drawdown ≥ 15 % or the session kill switch give HALTED, which only
    :meth:`reset` clears. Observations must come in time order.
    """

    __slots__ = (
        "_calm_since",
        "_calm_window",
        "_candle",
        "_cooldowns",
        "_crisis_since",
        "_daily_until",
        "_dd_breach",
        "_halt",
        "_now",
        "_per_minute",
        "_per_second",
        "_reducing_min",
        "_sl_exits",
        "_sl_lock_until",
        "config",
    )

    def __init__(self, config: RiskConfig | None = None) -> None:
        self.config = cfg = RiskConfig() if config is None else config
        self._candle = seconds_to_ns(cfg.candle_seconds)
        self._reducing_min = seconds_to_ns(cfg.reducing_min_seconds)
        self._calm_window = seconds_to_ns(cfg.crisis_calm_seconds)
        self._now = NEVER
        self._halt: tuple[DenialCode, str] | None = None
        self._dd_breach: int | None = None  # last time drawdown ≥ dd_reducing was seen
        self._daily_until: int | None = None
        self._crisis_since: int | None = None
        self._calm_since: int | None = None
        self._sl_exits: deque[int] = deque()
        self._sl_lock_until = NEVER
        self._cooldowns: dict[str, int] = {}
        self._per_second = Throttle(cfg.max_submits_per_second, SECOND)
        self._per_minute = Throttle(cfg.max_submits_per_minute, MINUTE)

    # ---- reading
    @property
    def trading_state(self) -> TradingState:
        """The state as of the last observation."""
        if self._halt is not None:
            return TradingState.HALTED
        return TradingState.REDUCING if self._reducing(self._now) else TradingState.ACTIVE

    @property
    def in_crisis(self) -> bool:
        return self._crisis_since is not None

    @property
    def halt(self) -> tuple[DenialCode, str] | None:
        """(code, reason) while HALTED."""
        return self._halt

    def _reducing(self, t: int) -> bool:
        return (self._dd_breach is not None or self._crisis_since is not None
                or (self._daily_until is not None and t < self._daily_until))

    def reducing_reasons(self, now: int | datetime) -> list[str]:
        """Why the state is REDUCING at ``now`` (empty if it is not), one phrase per latch."""
        return self._reasons(to_ns(now))

    def _reasons(self, t: int) -> list[str]:
        cfg = self.config
        out = []
        if self._dd_breach is not None:
            out.append(f"drawdown was ≥ {cfg.dd_reducing:.0%} at {iso(self._dd_breach)}; exit "
                       f"needs DD < {cfg.dd_exit:.1%} and {cfg.reducing_min_seconds / 3600:g} h")
        if self._daily_until is not None and t < self._daily_until:
            out.append(f"daily loss ≥ {cfg.daily_loss_reducing:.0%} until "
                       f"{iso(self._daily_until)}")
        if self._crisis_since is not None:
            out.append(f"CRISIS since {iso(self._crisis_since)}")
        return out

    def entry_lock(self, now: int | datetime,
                   instrument: str) -> tuple[DenialCode, int] | None:
        """StoplossGuard lock or the instrument's cooldown in force at ``now``, with its end."""
        t = now if type(now) is int else to_ns(now)
        if t < self._sl_lock_until:
            return DenialCode.STOPLOSS_GUARD, self._sl_lock_until
        until = self._cooldowns.get(instrument)
        if until is not None and t < until:
            return DenialCode.PAIR_COOLDOWN, until
        return None

    def submit_counts(self, now: int | datetime) -> tuple[int, int]:
        """Submits that count against the 1 s and the 60 s limits at ``now``."""
        t = now if type(now) is int else to_ns(now)
        return self._per_second.count(t), self._per_minute.count(t)

    def __repr__(self) -> str:
        why = ([self._halt[1]] if self._halt else []) + self._reasons(self._now)
        return f"RiskState({self.trading_state}{': ' + '; '.join(why) if why else ''})"

    # ---- observing
    def _advance(self, now: int | datetime) -> int:
        t = to_ns(now)
        if not (t >= self._now):
            raise ValueError(f"time went backwards: {iso(t)} is before the last "
                             f"observation at {iso(self._now)}")
        self._now = t
        if self._daily_until is not None and t >= self._daily_until:
            self._daily_until = None
        return t

    def update(self, now: int | datetime, account: AccountState,
               signals: CrisisSignals | None = None) -> TradingState:
        """Feed one equity (and optionally crisis-signal) observation; returns the new state."""
        t = self._advance(now)
        cfg = self.config
        dd = account.drawdown
        if self._halt is None and account.session_loss >= cfg.kill_switch_loss:
            why = (f"kill switch: session loss {account.session_loss:.2%} ≥ "
                   f"{cfg.kill_switch_loss:.0%} at {iso(t)}")
            self._halt = (DenialCode.KILL_SWITCH, why)
        if self._halt is None and dd >= cfg.dd_halt:
            self._halt = (DenialCode.TRADING_HALTED,
                          f"drawdown {dd:.2%} ≥ {cfg.dd_halt:.0%} at {iso(t)}")
        if dd >= cfg.dd_reducing:
            self._dd_breach = t
        elif (self._dd_breach is not None and dd < cfg.dd_exit
              and t - self._dd_breach >= self._reducing_min):
            self._dd_breach = None
        if account.daily_loss >= cfg.daily_loss_reducing:
            self._daily_until = (t // DAY + 1) * DAY
        if signals is not None:
            self._observe_signals(t, assess_crisis(signals, cfg))
        return self.trading_state

    def _observe_signals(self, t: int, assessment: CrisisAssessment) -> None:
        cfg = self.config
        if assessment.crisis:
            if self._crisis_since is None:
                self._crisis_since = t
            self._calm_since = None
        elif self._crisis_since is not None:
            if not assessment.calm(cfg.crisis_calm_share):
                self._calm_since = None
                return
            if self._calm_since is None:
                self._calm_since = t
            if t - self._calm_since >= self._calm_window:
                self._crisis_since = self._calm_since = None

    def record_exit(self, now: int | datetime, instrument: str, *, stop_loss: bool) -> None:
        """A position on ``instrument`` closed: start its cooldown; count stop-loss exits."""
        t = self._advance(now)
        cfg = self.config
        candle = self._candle
        self._cooldowns[instrument] = _ceil_candle(t + cfg.pair_cooldown_candles * candle, candle)
        if not stop_loss:
            return
        exits = self._sl_exits
        exits.append(t)
        while exits and exits[0] <= t - cfg.sl_guard_lookback_candles * candle:
            exits.popleft()
        if len(exits) >= cfg.sl_guard_trades:
            until = _ceil_candle(t + cfg.sl_guard_lock_candles * candle, candle)
            self._sl_lock_until = max(self._sl_lock_until, until)

    def record_submit(self, now: int | datetime) -> None:
        """An order was sent to the venue; the L8 throttles count these."""
        t = self._advance(now)
        self._per_second.record(t)
        self._per_minute.record(t)

    def reset(self, now: int | datetime) -> TradingState:
        """Manual reset of HALTED; REDUCING latches keep their own exit rules.

        A halt condition that still holds (drawdown ≥ 15 % against the same high-water mark,
        the same session loss) halts again at the next :meth:`update`: re-base the HWM or start
        a new session first.
        """
        self._advance(now)
        self._halt = None
        return self.trading_state

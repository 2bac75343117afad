"""The ACTIVE / REDUCING / HALTED state machine with its hysteresis, breakers and throttles."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from datetime import datetime

from ..orders import TradingState
from .config import DAY, INF, DenialCode, RiskConfig
from .inputs import AccountState, CrisisAssessment, CrisisSignals, assess_crisis
from .sizing import _ceil_candle, _iso, _seconds

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
        "_cooldowns",
        "_crisis_since",
        "_daily_until",
        "_dd_breach",
        "_halt",
        "_now",
        "_sl_exits",
        "_sl_lock_until",
        "_submits",
        "config",
    )

    def __init__(self, config: RiskConfig | None = None) -> None:
        self.config = RiskConfig() if config is None else config
        self._now = -INF
        self._halt: tuple[DenialCode, str] | None = None
        self._dd_breach: float | None = None  # last time drawdown ≥ dd_reducing was seen
        self._daily_until: float | None = None
        self._crisis_since: float | None = None
        self._calm_since: float | None = None
        self._sl_exits: deque[float] = deque()
        self._sl_lock_until = -INF
        self._cooldowns: dict[str, float] = {}
        self._submits: list[float] = []

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

    def _reducing(self, t: float) -> bool:
        return (self._dd_breach is not None or self._crisis_since is not None
                or (self._daily_until is not None and t < self._daily_until))

    def reducing_reasons(self, now: float | datetime) -> list[str]:
        """Why the state is REDUCING at ``now`` (empty if it is not), one phrase per latch."""
        return self._reasons(_seconds(now))

    def _reasons(self, t: float) -> list[str]:
        cfg = self.config
        out = []
        if self._dd_breach is not None:
            out.append(f"drawdown was ≥ {cfg.dd_reducing:.0%} at {_iso(self._dd_breach)}; exit "
                       f"needs DD < {cfg.dd_exit:.1%} and {cfg.reducing_min_seconds / 3600:g} h")
        if self._daily_until is not None and t < self._daily_until:
            out.append(f"daily loss ≥ {cfg.daily_loss_reducing:.0%} until "
                       f"{_iso(self._daily_until)}")
        if self._crisis_since is not None:
            out.append(f"CRISIS since {_iso(self._crisis_since)}")
        return out

    def entry_lock(self, now: float | datetime,
                   instrument: str) -> tuple[DenialCode, float] | None:
        """StoplossGuard lock or the instrument's cooldown in force at ``now``, with its end."""
        now = now if type(now) is float else _seconds(now)
        if now < self._sl_lock_until:
            return DenialCode.STOPLOSS_GUARD, self._sl_lock_until
        until = self._cooldowns.get(instrument)
        if until is not None and now < until:
            return DenialCode.PAIR_COOLDOWN, until
        return None

    def submits_within(self, now: float | datetime, seconds: float) -> int:
        """Submits recorded in the window (now − seconds, now]."""
        now = now if type(now) is float else _seconds(now)
        subs = self._submits
        return bisect_right(subs, now) - bisect_right(subs, now - seconds)

    def __repr__(self) -> str:
        why = ([self._halt[1]] if self._halt else []) + self._reasons(self._now)
        return f"RiskState({self.trading_state}{': ' + '; '.join(why) if why else ''})"

    # ---- observing
    def _advance(self, now: float | datetime) -> float:
        t = _seconds(now)
        if not (t >= self._now):
            raise ValueError(f"time went backwards: {_iso(t)} is before the last "
                             f"observation at {_iso(self._now)}")
        self._now = t
        if self._daily_until is not None and t >= self._daily_until:
            self._daily_until = None
        return t

    def update(self, now: float | datetime, account: AccountState,
               signals: CrisisSignals | None = None) -> TradingState:
        """Feed one equity (and optionally crisis-signal) observation; returns the new state."""
        t = self._advance(now)
        cfg = self.config
        dd = account.drawdown
        if self._halt is None and account.session_loss >= cfg.kill_switch_loss:
            why = (f"kill switch: session loss {account.session_loss:.2%} ≥ "
                   f"{cfg.kill_switch_loss:.0%} at {_iso(t)}")
            self._halt = (DenialCode.KILL_SWITCH, why)
        if self._halt is None and dd >= cfg.dd_halt:
            self._halt = (DenialCode.TRADING_HALTED,
                          f"drawdown {dd:.2%} ≥ {cfg.dd_halt:.0%} at {_iso(t)}")
        if dd >= cfg.dd_reducing:
            self._dd_breach = t
        elif (self._dd_breach is not None and dd < cfg.dd_exit
              and t - self._dd_breach >= cfg.reducing_min_seconds):
            self._dd_breach = None
        if account.daily_loss >= cfg.daily_loss_reducing:
            self._daily_until = (math.floor(t / DAY) + 1) * DAY
        if signals is not None:
            self._observe_signals(t, assess_crisis(signals, cfg))
        return self.trading_state

    def _observe_signals(self, t: float, assessment: CrisisAssessment) -> None:
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
            if t - self._calm_since >= cfg.crisis_calm_seconds:
                self._crisis_since = self._calm_since = None

    def record_exit(self, now: float | datetime, instrument: str, *, stop_loss: bool) -> None:
        """A position on ``instrument`` closed: start its cooldown; count stop-loss exits."""
        t = self._advance(now)
        cfg = self.config
        candle = cfg.candle_seconds
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

    def record_submit(self, now: float | datetime) -> None:
        """An order was sent to the venue; the L8 throttle counts these."""
        t = self._advance(now)
        subs = self._submits
        if subs and subs[0] <= t - 60.0:
            del subs[:bisect_right(subs, t - 60.0)]
        subs.append(t)

    def reset(self, now: float | datetime) -> TradingState:
        """Manual reset of HALTED; REDUCING latches keep their own exit rules.

        A halt condition that still holds (drawdown ≥ 15 % against the same high-water mark,
        the same session loss) halts again at the next :meth:`update`: re-base the HWM or start
        a new session first.
        """
        self._advance(now)
        self._halt = None
        return self.trading_state

"""The automatic rollback rule (reference/trading.md §4.3) as a pure function of the evidence
and the registry's recent history, with a readable trace.

After a promotion the previous champion P stays in shadow, so the new champion is judged on
paired differences Δᵢ = r_i(new) − r_i(P) (bps per decision, same bars):

- **statistical rollback**: the 99 % upper bound of mean Δ below −δ_RB on ``consecutive``
  evaluations in a row (one failing look is noise, three are a trend);
- **hysteresis**: between −δ_RB and −δ_NI nothing happens, so a champion a little worse than
  its predecessor is neither rolled back nor celebrated: no flapping around a threshold;
- **guardrails** (drawdown, inference error rate, p99 latency, drift of the top features) roll
  back at once and bypass the cooldown;
- **cooldown**: no automatic statistical change within ``cooldown`` of the last alias change;
- **flap guard**: a second automatic rollback within ``flap_window`` freezes auto-deploy, for a
  human to look at;
- **quarantine**: a rolled-back version is never promoted automatically again.

A rollback is one alias write (``champion`` → P) and one audit record; this module decides,
the registry writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from .promotion import paired_bound

NONE, INCONCLUSIVE, ROLLBACK, FROZEN = "none", "inconclusive", "rollback", "frozen"


@dataclass(frozen=True)
class RollbackConfig:
    delta_rb: float = 5.0  # bps: the degradation that warrants a rollback
    delta_ni: float = 2.0  # bps: the promotion gate's margin; the band between is hysteresis
    level: float = 0.99  # of the upper bound
    consecutive: int = 3
    n_min: int = 248  # paired decisions (promotion.paired_sample_size())
    cooldown: timedelta = timedelta(hours=24)
    flap_limit: int = 2
    flap_window: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class Guardrails:
    """One look at the live champion's health; ``breaches`` lists what is outside its limit."""

    drawdown: float = 0.0  # of the model's sleeve
    max_drawdown: float = 0.08  # min(8 %, 1.5 × backtest MaxDD), set by the caller
    error_rate: float = 0.0  # inference errors / predictions, over the last 4 intervals
    p99_latency_ms: float = 0.0
    drifted_features: int = 0  # top features with PSI > 0.25

    def breaches(self) -> tuple[str, ...]:
        out = []
        if self.drawdown > self.max_drawdown:
            out.append(f"drawdown {self.drawdown:.1%} > {self.max_drawdown:.1%}")
        if self.error_rate > 0.01:
            out.append(f"inference error rate {self.error_rate:.2%} > 1%")
        if self.p99_latency_ms > 500.0:
            out.append(f"p99 latency {self.p99_latency_ms:.0f} ms > 500 ms")
        if self.drifted_features >= 3:
            out.append(f"{self.drifted_features} top features drifted (PSI > 0.25)")
        return tuple(out)


@dataclass(frozen=True)
class History:
    """What the rule remembers between evaluations."""

    failing_in_row: int = 0
    last_alias_change: datetime | None = None
    rollbacks: tuple[datetime, ...] = ()  # automatic ones
    frozen: bool = False  # auto-deploy frozen by the flap guard
    quarantined: frozenset[str] = field(default_factory=frozenset)  # versions


@dataclass(frozen=True)
class Verdict:
    action: str  # NONE, INCONCLUSIVE, ROLLBACK or FROZEN
    trace: tuple[str, ...]
    history: History  # to pass to the next evaluation
    freeze: bool = False  # this rollback froze auto-deploy


def evaluate(differences: object, now: datetime, history: History, *, version: str,
             previous: str | None, guardrails: Guardrails = Guardrails(),
             config: RollbackConfig = RollbackConfig()) -> Verdict:
    """One evaluation of champion ``version`` against its predecessor ``previous``."""
    trace: list[str] = []
    breaches = guardrails.breaches()
    if breaches:
        trace.append("guardrail breach (bypasses the cooldown): " + "; ".join(breaches))
        return _rollback(trace, now, history, version, previous, config)
    if history.frozen:
        return Verdict(FROZEN, ("auto-deploy is frozen by the flap guard: a human decides",),
                       history)
    d = np.asarray(differences, dtype=np.float64).ravel()
    n = d.size
    if n < config.n_min:
        trace.append(f"{n:,} paired decisions < n_min = {config.n_min:,}: inconclusive")
        return Verdict(INCONCLUSIVE, tuple(trace), replace(history, failing_in_row=0))
    comparison = paired_bound(d, level=config.level, upper=True)
    trace.append("new − previous: " + comparison.describe("upper"))
    if comparison.bound >= -config.delta_rb:
        band = comparison.bound >= -config.delta_ni
        trace.append("no degradation shown" if band else
                     f"inside the dead band (−{config.delta_rb:g}, −{config.delta_ni:g}) bps: "
                     "hysteresis, no action")
        return Verdict(NONE, tuple(trace), replace(history, failing_in_row=0))
    failing = history.failing_in_row + 1
    trace.append(f"UCB below −{config.delta_rb:g} bps: failing evaluation {failing} of "
                 f"{config.consecutive} in a row")
    if failing < config.consecutive:
        return Verdict(NONE, tuple(trace), replace(history, failing_in_row=failing))
    last = history.last_alias_change
    if last is not None and now - last < config.cooldown:
        trace.append(f"in the cooldown ({now - last} since the last alias change, "
                     f"< {config.cooldown}): no automatic change")
        return Verdict(NONE, tuple(trace), replace(history, failing_in_row=failing))
    return _rollback(trace, now, history, version, previous, config)


def _rollback(trace: list[str], now: datetime, history: History, version: str,
              previous: str | None, config: RollbackConfig) -> Verdict:
    if previous is None:
        trace.append("no previous champion to return to: reduce exposure instead")
        return Verdict(INCONCLUSIVE, tuple(trace), history)
    recent = (*(t for t in history.rollbacks if now - t < config.flap_window), now)
    freeze = len(recent) >= config.flap_limit
    trace.append(f"rollback: champion → {previous}; version {version} quarantined")
    if freeze:
        trace.append(f"{len(recent)} automatic rollbacks within {config.flap_window}: "
                     "auto-deploy frozen")
    after = History(failing_in_row=0, last_alias_change=now, rollbacks=recent, frozen=freeze,
                    quarantined=history.quarantined | {version})
    return Verdict(ROLLBACK, tuple(trace), after, freeze)


def may_promote(version: str, history: History) -> tuple[bool, str]:
    """Whether an automatic promotion of ``version`` is allowed, and why not."""
    if history.frozen:
        return False, "auto-deploy is frozen by the flap guard"
    if version in history.quarantined:
        return False, f"version {version} was rolled back: only a new version is promoted"
    return True, "allowed"


def false_rollback_rate(config: RollbackConfig = RollbackConfig(), *, deployments: int = 2000,
                        days: int = 28, per_day: int = 200, window: int = 1000,
                        sigma: float = 50.0, rho: float = 0.8,
                        seed: int = 0) -> tuple[float, float]:
    """An A/A simulation of the rule: the new champion is as good as its predecessor, looked at
    once a day for ``days`` over the last ``window`` paired decisions (§4.3's W = min(7 days,
    1,000)). The share of deployments rolled back at least once, and its binomial standard
    error. Paired differences are normal with Var(Δ) = 2σ²(1 − ρ)."""
    rng = np.random.default_rng(seed)
    spread = float(np.sqrt(2.0 * sigma**2 * (1.0 - rho)))
    start = datetime(2026, 1, 1)
    rolled = 0
    for _ in range(deployments):
        deltas = rng.normal(0.0, spread, days * per_day)
        history = History(last_alias_change=start)
        for day in range(1, days + 1):
            seen = deltas[max(0, day * per_day - window):day * per_day]
            verdict = evaluate(seen, start + timedelta(days=day), history, version="new",
                               previous="old", config=config)
            history = verdict.history
            if verdict.action == ROLLBACK:
                rolled += 1
                break
    rate = rolled / deployments
    return rate, float(np.sqrt(rate * (1.0 - rate) / deployments))

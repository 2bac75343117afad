"""Promotion statistics as pure functions with readable traces (reference/trading.md §3.2, §4.2,
§4.3): the sample sizes an A/B comparison needs, sticky canary routing, and the gates of the
shadow → canary 10/25/50/100 % → champion path.

Returns are per decision, net of costs, in basis points. A gate never acts on too little data:
below the minimum sample it is INCONCLUSIVE, and so is a confidence bound that straddles the
gate's threshold. Every decision carries its trace, the sentences an auditor reads.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache

import numpy as np
from scipy import stats

from ..ml._inputs import finite_vector
from ..ml.stats import required_observations, sample_size_means, sample_size_paired

#: the canary's share of capital at each step; 0 is the shadow (predictions and paper fills only)
STEPS = (0.0, 0.10, 0.25, 0.50, 1.00)
DELTA_NI_BPS = 2.0  # non-inferiority margin of a canary step
MIN_PER_ARM = 200  # never fewer decisions per arm, whatever the power calculation says
MIN_TRADES = 30  # closed trades per arm
MIN_DWELL = timedelta(hours=48)
SIGMA_BPS, EFFECT_BPS, RHO = 50.0, 5.0, 0.8  # §4.2's planning values

ADVANCE, HOLD, INCONCLUSIVE, ROLLBACK = "advance", "hold", "inconclusive", "rollback"


def per_arm_sample_size(delta_bps: float = EFFECT_BPS, sigma_bps: float = SIGMA_BPS, *,
                        alpha: float = 0.05, power: float = 0.8) -> int:
    """Decisions per arm of an independent (canary) comparison, one-sided:
    max(200, ⌈(z_{1−α}+z_{1−β})²·2σ²/δ²⌉). §4.2's values (σ = 50, δ = 5 bps) give 1,237."""
    return max(MIN_PER_ARM, sample_size_means(delta_bps, sigma_bps, alpha=alpha, power=power,
                                              alternative="one-sided"))


def paired_sample_size(delta_bps: float = EFFECT_BPS, sigma_bps: float = SIGMA_BPS,
                       rho: float = RHO, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Paired decisions of a shadow comparison (both models on the same bars), one-sided:
    Var(Δ) = 2σ²(1 − ρ). §4.2's ρ = 0.8 needs (z+z)²·1000/25 = 247.3, so 248 once rounded up
    (§4.2 quotes it rounded, ≈ 247); no floor of 200 applies to a paired design."""
    return sample_size_paired(delta_bps, sigma_bps, rho, alpha=alpha, power=power,
                              alternative="one-sided")


def planning_values() -> dict[str, float]:
    """§4.2's two figures unrounded, for the record: independent arms and the paired shadow."""
    return {"per_arm": required_observations(EFFECT_BPS, 2 * SIGMA_BPS**2,
                                             alternative="one-sided"),
            "paired": required_observations(EFFECT_BPS, 2 * SIGMA_BPS**2 * (1 - RHO),
                                            alternative="one-sided")}


# --- sticky routing -------------------------------------------------------------------------


@lru_cache(maxsize=1 << 16)
def route_unit(strategy: str, symbol: str, salt: str = "") -> float:
    """A uniform number in [0, 1) fixed by (strategy, symbol, salt): the routing key. blake2b is
    keyed by the salt (one per rollout), so each rollout picks its own canary set. Cached: the
    pairs a process trades are few and asked every tick (~2 µs to hash, ~0.1 µs cached)."""
    digest = hashlib.blake2b(f"{strategy}\x1f{symbol}".encode(), digest_size=8,
                             key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def routes_to_canary(strategy: str, symbol: str, share: float, salt: str = "") -> bool:
    """Whether (strategy, symbol) trades with the canary at capital ``share``: sticky (the same
    pair always gets the same answer within a rollout) and monotone (a pair on the canary at 10 %
    stays on it at 25 %), so no instrument is ever traded by two models at once."""
    return route_unit(strategy, symbol, salt) < share


# --- gates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Candidate minus reference, in bps per decision, with its one-sided confidence bound."""

    n_candidate: int
    n_reference: int
    difference: float
    standard_error: float
    df: float
    bound: float  # the lower (or upper) confidence bound of the difference
    level: float  # its confidence level

    def describe(self, side: str) -> str:
        return (f"Δ = {self.difference:+.2f} bps (SE {self.standard_error:.2f}, ν = "
                f"{self.df:.0f}), {side} {self.level:.0%} bound {self.bound:+.2f} bps on "
                f"{self.n_candidate:,} vs {self.n_reference:,} decisions")


def welch_bound(candidate: object, reference: object, *, level: float = 0.95,
                upper: bool = False) -> Comparison:
    """One-sided Welch bound of mean(candidate) − mean(reference) (independent arms)."""
    a, b = finite_vector(candidate, "candidate", 2), finite_vector(reference, "reference", 2)
    va, vb = np.var(a, ddof=1) / a.size, np.var(b, ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if se > 0 else math.inf
    diff = float(a.mean() - b.mean())
    t = float(stats.t.ppf(level, df))
    return Comparison(a.size, b.size, diff, se, df, diff + t * se if upper else diff - t * se,
                      level)


def paired_bound(differences: object, *, level: float = 0.95, upper: bool = False) -> Comparison:
    """One-sided t bound of the mean of paired differences Δᵢ = r_i(candidate) − r_i(reference)."""
    d = finite_vector(differences, "differences", 2)
    se = float(np.std(d, ddof=1) / math.sqrt(d.size))
    diff = float(d.mean())
    t = float(stats.t.ppf(level, d.size - 1))
    return Comparison(d.size, d.size, diff, se, d.size - 1.0,
                      diff + t * se if upper else diff - t * se, level)


@dataclass(frozen=True)
class Decision:
    action: str  # ADVANCE, HOLD, INCONCLUSIVE or ROLLBACK
    step: float  # the share the candidate holds after the decision
    trace: tuple[str, ...] = field(default_factory=tuple)
    comparison: Comparison | None = None


def next_step(share: float) -> float:
    if share not in STEPS:
        raise ValueError(f"share {share!r} is not a step of {STEPS}")
    return STEPS[min(STEPS.index(share) + 1, len(STEPS) - 1)]


def gate(share: float, comparison: Comparison, *, dwell: timedelta, n_min: int,
         guardrail_breaches: tuple[str, ...] = (), trades: tuple[int, int] | None = None,
         delta_ni: float = DELTA_NI_BPS, min_dwell: timedelta = MIN_DWELL) -> Decision:
    """One promotion look at a candidate holding ``share``: ROLLBACK on any guardrail breach;
    INCONCLUSIVE below ``n_min`` decisions (or ``MIN_TRADES`` closed trades) per arm; HOLD
    before the minimum dwell or while the 95 % lower bound is not above the threshold
    (−δ_NI for a canary step, 0 for the final step to 100 %); else ADVANCE."""
    trace = [f"step {share:.0%}: {comparison.describe('lower')}"]
    if guardrail_breaches:
        trace.append("guardrails breached: " + "; ".join(guardrail_breaches))
        return Decision(ROLLBACK, 0.0, tuple(trace), comparison)
    if min(comparison.n_candidate, comparison.n_reference) < n_min:
        trace.append(f"fewer than n_min = {n_min:,} decisions per arm: no decision")
        return Decision(INCONCLUSIVE, share, tuple(trace), comparison)
    if trades is not None and min(trades) < MIN_TRADES:
        trace.append(f"fewer than {MIN_TRADES} closed trades per arm ({trades}): no decision")
        return Decision(INCONCLUSIVE, share, tuple(trace), comparison)
    if dwell < min_dwell:
        trace.append(f"dwell {dwell} is below the minimum {min_dwell}: hold")
        return Decision(HOLD, share, tuple(trace), comparison)
    target = next_step(share)
    threshold = 0.0 if target == 1.0 else -delta_ni
    rule = ("superiority (LCB > 0) for the final step" if target == 1.0
            else f"non-inferiority (LCB > −{delta_ni:g} bps)")
    if comparison.bound > threshold:
        trace.append(f"{rule} holds: advance to {target:.0%}")
        return Decision(ADVANCE, target, tuple(trace), comparison)
    trace.append(f"{rule} not shown: hold at {share:.0%}")
    return Decision(HOLD, share, tuple(trace), comparison)

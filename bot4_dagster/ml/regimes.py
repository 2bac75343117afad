"""Volatility regimes: every bar labelled low / normal / high / crisis from its conditional
volatility, for regime-specific calibration and the risk clamps.

Thresholds are quantiles of the fit window's conditional volatility: below the 25th percentile is
``low``, up to the 75th ``normal``, up to the 95th ``high``. **Crisis rule:** volatility above the
95th percentile of the fit window, i.e. the worst 5% of the window's own history. Thresholds are
kept, so bars after the window (the online path) are labelled on the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

REGIMES = ("low", "normal", "high", "crisis")


@dataclass(frozen=True)
class VolatilityRegimes:
    low: float  # upper edge of "low"
    high: float  # lower edge of "high"
    crisis: float  # lower edge of "crisis"
    quantiles: tuple[float, float, float] = (0.25, 0.75, 0.95)

    @classmethod
    def fit(cls, sigma,
            quantiles: tuple[float, float, float] = (0.25, 0.75, 0.95)) -> VolatilityRegimes:
        values = np.asarray(sigma, dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            raise ValueError("no finite volatility to set regime thresholds from")
        if not 0 < quantiles[0] < quantiles[1] < quantiles[2] < 1:
            raise ValueError(f"quantiles must increase inside (0, 1), got {quantiles}")
        low, high, crisis = np.quantile(values, quantiles)
        q_low, q_high, q_crisis = (float(q) for q in quantiles)
        return cls(float(low), float(high), float(crisis), (q_low, q_high, q_crisis))

    def codes(self, sigma) -> np.ndarray:
        """0 low, 1 normal, 2 high, 3 crisis; -1 where volatility is undefined."""
        values = np.asarray(sigma, dtype=np.float64)
        out = np.searchsorted([self.low, self.high, self.crisis], values,
                              side="left").astype(np.int8)
        out[~np.isfinite(values)] = -1
        return out

    def label(self, sigma) -> pd.Categorical:
        codes = self.codes(sigma)
        return pd.Categorical.from_codes(codes, categories=list(REGIMES))

    def table(self) -> pd.DataFrame:
        lo, hi, cr = self.quantiles
        return pd.DataFrame({
            "regime": list(REGIMES),
            "volatility from": [0.0, self.low, self.high, self.crisis],
            "volatility to": [self.low, self.high, self.crisis, np.inf],
            "rule": [f"<= q{lo:.0%}", f"q{lo:.0%} .. q{hi:.0%}", f"q{hi:.0%} .. q{cr:.0%}",
                     f"> q{cr:.0%} of the fit window"],
        })

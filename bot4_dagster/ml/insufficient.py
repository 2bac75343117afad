"""The one error every pipeline stage raises when its input is too small to give a result.

A stage either produces a result or says which stage, which symbol, what it needs and what it
has, e.g. "GARCH for BTCUSDT needs at least 101 bars; it has 57". Each minimum is derived from
the stage's own parameters (windows, horizon, folds, embargo, test thresholds), so changing a
parameter changes what the message asks for. It is a ``ValueError``, so callers that guarded
the old ``ValueError`` keep working.
"""

from __future__ import annotations


class InsufficientData(ValueError):
    """``stage`` needs at least ``need`` ``unit`` (bars, labels, events, ...) and got ``have``;
    ``noun`` names what the stage makes, for the message when there is nothing at all."""

    def __init__(self, stage: str, symbol: str | None, need: int, have: int, unit: str,
                 why: str = "", *, noun: str | None = None):
        self.stage, self.symbol, self.need, self.have, self.unit, self.why = (
            stage, symbol, int(need), int(have), unit, why)
        self.noun = noun or stage
        super().__init__(self._message())

    def _message(self) -> str:
        who = f" for {self.symbol}" if self.symbol else ""
        if self.have == 0:
            text = f"no {self.noun}{who}: 0 {self.unit}; {self.stage} needs at least {self.need:,}"
        else:
            text = (f"{self.stage}{who} needs at least {self.need:,} {self.unit}; "
                    f"it has {self.have:,}")
        return f"{text} ({self.why})" if self.why else text

    def __reduce__(self):  # picklable across Dagster's process boundary
        return (_rebuild, (self.stage, self.symbol, self.need, self.have, self.unit, self.why,
                           self.noun))


def _rebuild(stage, symbol, need, have, unit, why, noun) -> InsufficientData:
    return InsufficientData(stage, symbol, need, have, unit, why, noun=noun)

"""The decision and its trace: per layer the size before and after, the inputs and a reason,
rendered as a table a person can read."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..vocabulary import DenialCode
from .config import INF
from .inputs import TradeProposal

# -------------------------------------------------------------------------------- the trace


class _Why(NamedTuple):
    """A reason: a format template and the names of the inputs a layer returns, in order."""

    template: str
    keys: tuple[str, ...]


def _why(template: str, *keys: str) -> _Why:
    return _Why(template, keys)


class LayerStep(NamedTuple):
    """One row of the trace. Inputs are kept as a tuple and ``reason`` is rendered only when
    read, which keeps the decision path cheap."""

    layer: str  # "L1" … "L8"; "L4f" is the step floor with the venue minimums
    name: str
    value: float  # the layer's cap (L1–L5), multiplier (L6, L7) or floored size (L4f)
    before: float
    after: float
    why: _Why
    values: tuple[Any, ...]
    code: DenialCode | None = None

    @property
    def inputs(self) -> dict[str, Any]:
        return dict(zip(self.why.keys, self.values, strict=True))

    @property
    def reason(self) -> str:
        return self.why.template.format(**self.inputs)


def _fmt_q(x: float) -> str:
    return "∞" if x == INF else f"{x:.6g}"


def _fmt_input(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


class RiskDecision:
    """The outcome of one evaluation with its full trace (read-only).

    Rows are kept as plain tuples and become :class:`LayerStep` objects only when read.
    """

    __slots__ = ("_binding", "_code", "_proposal", "_quantity", "_rows")

    def __init__(self, proposal: TradeProposal, rows: tuple[tuple, ...], quantity: float,
                 code: DenialCode | None, binding: str) -> None:
        self._proposal, self._rows, self._quantity = proposal, rows, quantity
        self._code, self._binding = code, binding

    @property
    def proposal(self) -> TradeProposal:
        return self._proposal

    @property
    def quantity(self) -> float:
        """Final size (floored to the step); 0 when denied."""
        return self._quantity

    @property
    def code(self) -> DenialCode | None:
        """None when accepted."""
        return self._code

    @property
    def binding(self) -> str:
        """Layer that set the final size; "REQ" when the requested quantity did."""
        return self._binding

    @property
    def steps(self) -> tuple[LayerStep, ...]:
        return tuple(LayerStep._make(r) for r in self._rows)

    @property
    def accepted(self) -> bool:
        return self._code is None

    @property
    def notional(self) -> float:
        return self._quantity * self._proposal.entry

    def step(self, layer: str) -> LayerStep:
        for r in self._rows:
            if r[0] == layer:
                return LayerStep._make(r)
        raise KeyError(f"layer {layer!r} was not evaluated (have {[r[0] for r in self._rows]})")

    @property
    def binding_step(self) -> LayerStep | None:
        return None if self._binding == "REQ" else self.step(self._binding)

    def records(self) -> list[dict[str, Any]]:
        """The trace as plain dicts, for logs and the warehouse."""
        return [{"layer": s.layer, "name": s.name, "before": s.before, "after": s.after,
                 "inputs": s.inputs, "reason": s.reason,
                 "code": None if s.code is None else str(s.code)} for s in self.steps]

    def headline(self) -> str:
        p = self._proposal
        what = f"{p.side} {p.instrument} @ {p.entry:g}" + (" reduce-only" if p.reduce_only else "")
        if self.accepted:
            return (f"ACCEPTED {what}: {self._quantity:g} (notional {self.notional:,.2f}); "
                    f"binding {self._binding_label()}")
        return f"DENIED {what}: {self._code} at {self._binding_label()}"

    def _binding_label(self) -> str:
        s = self.binding_step
        return "requested quantity" if s is None else f"{s.layer} {s.name}"

    def explain(self, inputs: bool = False) -> str:
        """Headline plus one row per evaluated layer (* marks the binding one); ``inputs=True``
        adds what each layer used."""
        steps = self.steps
        rows = [("layer", "name", "before", "after", "reason")]
        for s in steps:
            mark = "*" if s.layer == self._binding else ""
            rows.append((s.layer + mark, s.name, _fmt_q(s.before), _fmt_q(s.after), s.reason))
        width = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [self.headline()]
        for i, r in enumerate(rows):
            cells = (r[0].ljust(width[0]), r[1].ljust(width[1]), r[2].rjust(width[2]),
                     r[3].rjust(width[3]), r[4])
            lines.append("  ".join(cells))
            if inputs and i > 0:
                used = ", ".join(f"{k}={_fmt_input(v)}" for k, v in steps[i - 1].inputs.items())
                lines.append(" " * (width[0] + 2) + "inputs: " + used)
        if not self.accepted and steps[-1].layer != "L8":
            lines.append(f"(later layers not evaluated: denied at {steps[-1].layer})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def __repr__(self) -> str:
        return f"RiskDecision({self.headline()})"

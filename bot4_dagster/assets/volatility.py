"""``ml/garch_volatility``: GARCH(1,1)-t conditional volatility and regimes per symbol, with an
asset check that refits with ``arch`` and fails when the two disagree."""

import dagster as dg
import pandas as pd

from ..automation.conditions import refresh_when_deps_update
from ..automation.partitions import SYMBOLS
from ..ml.insufficient import InsufficientData
from ..ml.volatility import compare_with_arch, estimate_volatility
from ..report import markdown_image, plot_volatility
from .keys import BARS, VOLATILITY
from .metadata import column_schema, table


@dg.asset(
    key=VOLATILITY,
    partitions_def=SYMBOLS,
    ins={"bars": dg.AssetIn(BARS)},
    metadata={"partition_expr": "symbol",
              "dagster/column_schema": column_schema("ml.garch_volatility")},
    automation_condition=refresh_when_deps_update(),
    check_specs=[dg.AssetCheckSpec(
        "matches_arch", asset=VOLATILITY, blocking=True, partitions_def=SYMBOLS,
        description="Refit with arch: log-likelihood not lower by more than 1e-8 relative, "
                    "each parameter equal to 1e-4 (relative to max(1, |θ|)) or to 1% of arch's "
                    "standard error, whichever is looser")],
    kinds={"duckdb", "numba"},
    group_name="volatility",
    code_version="2",
    description="GARCH(1,1) with Student's t errors on percent returns of the closes (scaled up "
                "by powers of ten when their variance is below 0.1): conditional volatility and "
                "low / normal / high / crisis regimes per bar.",
)
def garch_volatility(context: dg.AssetExecutionContext, bars: pd.DataFrame):
    symbol = context.partition_key
    try:
        estimate = estimate_volatility(bars.set_index("ts")["close"], symbol=symbol)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None
    fit, comparison = estimate.fit, compare_with_arch(estimate.fit, estimate.returns)
    frame = estimate.frame()
    png = plot_volatility(frame.index.to_series(), frame["ret"], frame["sigma"], frame["regime"],
                          f"{symbol}: GARCH(1,1)-t volatility and regimes")
    return dg.MaterializeResult(
        value=estimate.table(symbol),
        metadata={
            "scale": dg.MetadataValue.float(estimate.scale),
            "returns": ("percent" if estimate.scale == 100
                        else f"decimal returns x {estimate.scale:g}"),
            "parameters": table(fit.summary()),
            "loglik": dg.MetadataValue.float(fit.loglik),
            "persistence": dg.MetadataValue.float(fit.persistence),
            "half_life_bars": dg.MetadataValue.float(fit.half_life),
            "diagnostics": table(estimate.diagnostics),
            "regimes": table(estimate.regime_table()),
            "plot": dg.MetadataValue.md(markdown_image(png, "volatility")),
        },
        check_results=[dg.AssetCheckResult(
            check_name="matches_arch", passed=comparison.passed,
            metadata={"result": comparison.reason,
                      "loglik": dg.MetadataValue.float(comparison.loglik),
                      "arch_loglik": dg.MetadataValue.float(comparison.arch_loglik),
                      "max_param_difference": dg.MetadataValue.float(comparison.max_param_diff),
                      "difference_vs_allowance": dg.MetadataValue.float(comparison.excess),
                      "parameters": table(comparison.params)})],
    )

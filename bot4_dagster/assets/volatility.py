"""``ml/garch_volatility``: GARCH(1,1)-t conditional volatility and regimes per symbol, with an
asset check that refits with ``arch`` and fails when the two disagree."""

import base64

import dagster as dg
import pandas as pd

from ..automation.partitions import SYMBOLS
from ..ml.volatility import compare_with_arch, estimate_volatility
from ..report import plot_volatility
from .keys import BARS, BY_SYMBOL

KEY = dg.AssetKey(["ml", "garch_volatility"])


@dg.asset(
    key=KEY,
    partitions_def=SYMBOLS,
    ins={"bars": dg.AssetIn(BARS, partition_mapping=BY_SYMBOL)},
    metadata={"partition_expr": "symbol"},
    check_specs=[dg.AssetCheckSpec(
        "matches_arch", asset=KEY, blocking=True,
        description="Refit with arch: log-likelihood not lower by more than 1e-8 relative, "
                    "parameters equal to 1e-4")],
    kinds={"duckdb", "numba"},
    group_name="volatility",
    code_version="1",
    description="GARCH(1,1) with Student's t errors on percent returns of the closes (scaled up "
                "by powers of ten when their variance is below 0.1): conditional volatility and "
                "low / normal / high / crisis regimes per bar.",
)
def garch_volatility(context: dg.AssetExecutionContext, bars: pd.DataFrame):
    symbol = context.partition_key
    if len(bars) < 101:
        raise dg.Failure(f"{symbol} has {len(bars)} bars in the warehouse; GARCH needs at least 101")
    estimate = estimate_volatility(bars.set_index("ts")["close"])
    fit = estimate.fit
    comparison = compare_with_arch(fit, estimate.returns)
    frame = estimate.frame()
    stored = pd.concat([bars[["symbol", "ts"]].set_index(bars["ts"]), frame], axis=1).reset_index(drop=True)
    stored["regime"] = stored["regime"].astype("string")
    stored["scale"] = estimate.scale  # ret and sigma are decimal returns x scale
    png = plot_volatility(frame.index.to_series(), frame["ret"], frame["sigma"], frame["regime"],
                          f"{symbol}: GARCH(1,1)-t volatility and regimes")
    regime_counts = frame["regime"].value_counts().reindex(estimate.regimes.table()["regime"])
    return dg.MaterializeResult(
        value=stored,
        metadata={
            "rows": len(stored),
            "scale": dg.MetadataValue.float(estimate.scale),
            "returns": "percent" if estimate.scale == 100 else f"decimal returns x {estimate.scale:g}",
            "parameters": dg.MetadataValue.md(fit.summary().to_markdown(floatfmt=".6g")),
            "loglik": dg.MetadataValue.float(fit.loglik),
            "persistence": dg.MetadataValue.float(fit.persistence),
            "half_life_bars": dg.MetadataValue.float(fit.half_life),
            "diagnostics": dg.MetadataValue.md(estimate.diagnostics.to_markdown(index=False, floatfmt=".4g")),
            "regimes": dg.MetadataValue.md(estimate.regimes.table().assign(
                bars=regime_counts.to_numpy()).to_markdown(index=False, floatfmt=".4g")),
            "plot": dg.MetadataValue.md(
                f"![volatility](data:image/png;base64,{base64.b64encode(png).decode()})"),
        },
        check_results=[dg.AssetCheckResult(
            check_name="matches_arch", passed=comparison.passed,
            metadata={"result": comparison.reason, "loglik": comparison.loglik,
                      "arch_loglik": comparison.arch_loglik,
                      "max_param_difference": comparison.max_param_diff,
                      "parameters": dg.MetadataValue.md(comparison.params.to_markdown(floatfmt=".8g"))})],
    )

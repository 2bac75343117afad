"""``ml/calibrator`` per symbol: the ensemble's nested out-of-fold probability calibrated by
isotonic maps, globally and per volatility regime, each scored on rows its maps never saw."""

import dagster as dg
import pandas as pd

from ..automation.conditions import refresh_when_deps_update
from ..automation.partitions import SYMBOLS
from ..ml.calibration_report import DEFAULT_BLEND, calibration_report
from ..ml.insufficient import InsufficientData
from ..report import markdown_image, plot_reliability
from .keys import CALIBRATOR, FOLDS, OOF
from .metadata import column_schema, table


@dg.asset(
    key=CALIBRATOR, partitions_def=SYMBOLS, group_name="models",
    ins={"oof": dg.AssetIn(OOF), "folds": dg.AssetIn(FOLDS)},
    metadata={"partition_expr": "symbol", "dagster/column_schema": column_schema("ml.calibrator")},
    automation_condition=refresh_when_deps_update(), kinds={"duckdb", "scikitlearn"},
    code_version="1",
    description=f"Isotonic calibration of the '{DEFAULT_BLEND}' blend's nested out-of-fold "
                "probability, one map per GARCH volatility regime (global map below the minimum "
                "count), cross-fitted on the purged K-fold splits: Brier, log-loss, ECE and the "
                "Murphy decomposition before and after, per regime.",
)
def calibrator(context: dg.AssetExecutionContext, oof: pd.DataFrame,
               folds: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key
    try:
        report = calibration_report(oof, folds, symbol=symbol)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None
    gain, gain_se = report.improvement()
    return dg.MaterializeResult(value=report.stored, metadata={
        "blend": report.blend,
        "brier_improvement": dg.MetadataValue.float(gain),
        "brier_improvement_se": dg.MetadataValue.float(gain_se),
        **{name: table(frame) for name, frame in report.tables().items()},
        "reliability": dg.MetadataValue.md(markdown_image(plot_reliability(
            report.curves(), f"{symbol}: reliability out of fold, before and after calibration"),
            "reliability diagram")),
    })

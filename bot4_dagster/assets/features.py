"""``features/microstructure_features``: the 21 microstructure features per symbol, from the
symbol's bars, trades and quotes in the warehouse (trades and quotes where the source has them)."""

import dagster as dg
import pandas as pd

from ..automation.conditions import refresh_when_deps_update
from ..automation.partitions import SYMBOLS
from ..features.microstructure import FEATURES as FEATURE_NAMES
from ..features.table import availability_counts, feature_table
from ..ml.insufficient import InsufficientData
from ..report import markdown_image, plot_microstructure, summarize
from .keys import BARS, FEATURES, QUOTES, TRADES
from .metadata import column_schema, table


def _volume_unit(context: dg.AssetExecutionContext, symbol: str) -> str:
    """The unit the bars were ingested in, from the latest bars materialization of this symbol."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BARS, asset_partitions=[symbol]), limit=1).records
    unit = records[0].asset_materialization.metadata.get("volume_unit") if records else None
    if unit is not None and unit.value in ("base", "quote"):
        return unit.value
    context.log.warning(f"no volume unit recorded for {symbol}'s bars; assuming base currency")
    return "base"


@dg.asset(
    key=FEATURES,
    partitions_def=SYMBOLS,
    ins={"bars": dg.AssetIn(BARS), "trades": dg.AssetIn(TRADES), "quotes": dg.AssetIn(QUOTES)},
    metadata={"partition_expr": "symbol",
              "dagster/column_schema": column_schema("features.microstructure_features")},
    automation_condition=refresh_when_deps_update(TRADES, QUOTES),
    kinds={"duckdb", "numba"},
    group_name="features",
    code_version="2",
    description="21 microstructure features per bar (docs/microstructure.md): Kyle, Amihud and "
                "Hasbrouck lambdas, VPIN, Huang-Stoll and Roll spreads, Corwin-Schultz, ...",
)
def microstructure(context: dg.AssetExecutionContext, bars: pd.DataFrame, trades: pd.DataFrame,
                   quotes: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key
    unit = _volume_unit(context, symbol)
    try:
        stored, availability = feature_table(bars, trades, quotes, symbol=symbol, volume_unit=unit)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None
    counts = availability_counts(availability)
    return dg.MaterializeResult(value=stored, metadata={
        "volume_unit": unit,
        "inputs": f"{len(bars):,} bars, {len(trades):,} trades, {len(quotes):,} quotes",
        **{status: dg.MetadataValue.int(n) for status, n in counts.items()},
        "availability": table(availability),
        "summary": table(summarize(stored, list(FEATURE_NAMES))),
        "plot": dg.MetadataValue.md(markdown_image(
            plot_microstructure(stored["ts"], stored, symbol), "VPIN and Kyle lambda")),
    })

"""``features/microstructure_features``: the 21 microstructure features per symbol, from the
symbol's bars (all months), trades and quotes (all days) in the warehouse."""

import base64

import dagster as dg
import pandas as pd

from ..automation.partitions import MONTHS, SYMBOLS
from ..features.microstructure import FEATURES, QUOTE_FEATURES, microstructure_features
from ..report import plot_series, summarize
from .keys import BARS, BY_SYMBOL, QUOTES, TRADES


def _volume_unit(context: dg.AssetExecutionContext, symbol: str) -> str:
    """The unit the bars were ingested in, from the latest bars materialization of this symbol."""
    keys = [str(dg.MultiPartitionKey({"symbol": symbol, "month": month}))
            for month in MONTHS.get_partition_keys()]
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BARS, asset_partitions=keys), limit=1).records
    unit = records[0].asset_materialization.metadata.get("volume_unit") if records else None
    if unit is not None and unit.value in ("base", "quote"):
        return unit.value
    context.log.warning(f"no volume unit recorded for {symbol}'s bars; assuming base currency")
    return "base"


def _png(ts: pd.Series, frame: pd.DataFrame, symbol: str) -> str:
    panels = []
    for exact, fallback, label in (("vpin", "vpin_bvc", "VPIN"), ("kyle_lambda", "kyle_lambda_bar", "Kyle λ")):
        name = exact if frame[exact].notna().any() else fallback
        panels.append((f"{label}\n({name})", frame[name]))
    png = plot_series(ts, panels, f"{symbol}: VPIN and Kyle lambda")
    return f"![VPIN and Kyle lambda](data:image/png;base64,{base64.b64encode(png).decode()})"


@dg.asset(
    key=["features", "microstructure_features"],
    partitions_def=SYMBOLS,
    ins={
        "bars": dg.AssetIn(BARS, partition_mapping=BY_SYMBOL),
        "trades": dg.AssetIn(TRADES, partition_mapping=BY_SYMBOL),
        "quotes": dg.AssetIn(QUOTES, partition_mapping=BY_SYMBOL),
    },
    metadata={"partition_expr": "symbol"},
    kinds={"duckdb", "numba"},
    group_name="features",
    code_version="1",
    description="21 microstructure features per bar (docs/microstructure.md): Kyle, Amihud and "
                "Hasbrouck lambdas, VPIN, Huang-Stoll and Roll spreads, Corwin-Schultz, ...",
)
def microstructure(context: dg.AssetExecutionContext, bars: pd.DataFrame, trades: pd.DataFrame,
                   quotes: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key
    if bars.empty:
        raise dg.Failure(f"no bars for {symbol} in the warehouse: materialize market/bars first")
    unit = _volume_unit(context, symbol)
    has_trades = not trades.empty
    frame = microstructure_features(
        bars, trades if has_trades else None, quotes if has_trades and not quotes.empty else None,
        volume_unit=unit)
    availability = frame.attrs["availability"]
    for name in QUOTE_FEATURES:
        if name not in frame:
            frame[name] = float("nan")
    stored = pd.concat([bars[["symbol", "ts"]], frame[list(FEATURES + QUOTE_FEATURES)]], axis=1)
    counts = availability["status"].value_counts()
    return dg.MaterializeResult(value=stored, metadata={
        "rows": len(stored),
        "volume_unit": unit,
        "inputs": f"{len(bars):,} bars, {len(trades):,} trades, {len(quotes):,} quotes",
        "exact": int(counts.get("exact", 0)),
        "approximate": int(counts.get("approximate", 0)),
        "unavailable": int(counts.get("unavailable", 0)),
        "availability": dg.MetadataValue.md(availability.to_markdown(index=False)),
        "summary": dg.MetadataValue.md(summarize(frame, list(FEATURES)).to_markdown(floatfmt=".4g")),
        "plot": dg.MetadataValue.md(_png(bars["ts"], frame, symbol)),
    })

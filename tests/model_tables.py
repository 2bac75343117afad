"""The stored tables a model stage starts from, built by the stages' own functions on the first
``n`` real FTX BTC-PERP 1-minute bars: bars, features, labels and folds."""

from __future__ import annotations

from functools import cache

from synthetic_microstructure import load_ftx_bars

from bot4_dagster.features.table import feature_table
from bot4_dagster.ml.folds import fold_splitters, folds_table
from bot4_dagster.ml.labels import label_table
from bot4_dagster.ml.volatility import estimate_volatility

SYMBOL = "BTC-PERP"


@cache
def ftx_tables(n: int):
    bars = load_ftx_bars().iloc[:n].assign(symbol=SYMBOL)
    features, _ = feature_table(bars, symbol=SYMBOL, volume_unit="quote")
    volatility = estimate_volatility(bars.set_index("ts")["close"]).table(SYMBOL)
    labels = label_table(bars, volatility, symbol=SYMBOL, upper=2.0, lower=2.0, horizon=10)
    folds = folds_table(labels, fold_splitters(labels, symbol=SYMBOL), symbol=SYMBOL)
    return bars, features, labels, folds

"""What every warehouse column means: name, DuckDB type as stored, and a description a quant can
act on, per table. The Dagster layer turns it into each asset's ``dagster/column_schema``.

Column names and their order come from the code that writes each table (``data.tables`` for the
market tables, the ``COLUMNS`` of each stage's library module for the rest), so the catalog
cannot list a column a table does not have; the descriptions live here. Feature descriptions
follow docs/microstructure.md, whose feature numbers (T1..T13, B1..B8) they start with.
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import tables
from .features import table as features
from .ml import (
    calibration_report,
    candidate,
    ensemble_report,
    folds,
    labels,
    leakage,
    oof,
    training,
    volatility,
)
from .perf import manifest
from .registry import versions

_SYMBOL = ("VARCHAR", "Instrument as the source names it, e.g. BTCUSDT (the partition key)")
_TS = ("TIMESTAMPTZ", "Bar open time, UTC; the bar covers [ts, ts + interval)")
_FLOAT = "DOUBLE"

MARKET = {
    "bars": {
        "symbol": _SYMBOL[1],
        "ts": "Bar open time, UTC (TIMESTAMP_NS holds UTC: DuckDB has no zone-aware nanosecond "
              "type); the bar covers [ts, ts + interval)",
        "open": "First trade price of the bar, quote currency",
        "high": "Highest trade price of the bar, quote currency",
        "low": "Lowest trade price of the bar, quote currency",
        "close": "Last trade price of the bar, quote currency",
        "volume": "Volume traded in the bar, in the source's unit (base currency, or quote "
                  "currency when the bars' volume_unit metadata says 'quote')",
        "buy_volume": "Taker (aggressor) buy volume of the bar, same unit as volume; NULL when "
                      "the source has none",
        "trade_count": "Number of trades in the bar; NULL when the source has none",
    },
    "trades": {
        "symbol": _SYMBOL[1],
        "ts": "Exchange time of the trade, UTC, to the nanosecond (TIMESTAMP_NS holds UTC)",
        "price": "Trade price, quote currency",
        "amount": "Traded quantity, base currency",
        "side": "Aggressor side: +1 buyer-initiated, -1 seller-initiated",
        "trade_id": "Exchange trade id, strictly increasing per symbol",
    },
    "quotes": {
        "symbol": _SYMBOL[1],
        "ts": "Exchange time of the best bid/ask update, UTC, to the nanosecond (TIMESTAMP_NS "
              "holds UTC)",
        "bid": "Best bid price, quote currency",
        "ask": "Best ask price, quote currency",
        "bid_size": "Quantity at the best bid, base currency",
        "ask_size": "Quantity at the best ask, base currency",
    },
}

FEATURES = {
    "signed_volume_imbalance": "T1: net aggressor volume share Σ(b·v)/Σv over the trade window, "
                               "in [-1, 1]; without trades from taker buy volume or bulk volume "
                               "classification",
    "trade_count_imbalance": "T2: net share of buyer-initiated trades Σb/N over the trade window",
    "kyle_lambda": "T3: Kyle's lambda, price change per unit of signed volume: OLS without "
                   "intercept of Δp on b·v over the trade window's trades",
    "amihud_lambda": "T4: Amihud's lambda, OLS without intercept of |r| on dollar volume over "
                     "the regression window: return per dollar traded",
    "hasbrouck_lambda": "T5: Hasbrouck's lambda, OLS without intercept of r on Σb·√(p·v) over "
                        "the regression window",
    "vpin": "T6: VPIN, mean |buy − sell| / bucket volume over the last 50 volume buckets, "
            "aggressor sides from trades",
    "huang_stoll_spread": "T7: Huang–Stoll traded spread 2a/p̄ from the OLS of Δp on (ΔQ, "
                          "Q_{t-1}) over the regression window's trades, a share of price",
    "huang_stoll_adverse_share": "T8: Huang–Stoll adverse-selection share c/a of the spread, "
                                 "from the same regression",
    "roll_spread_tick": "T9: Roll spread from trade prices, 2√max(0, −cov(Δp_t, Δp_{t-1}))/p̄ "
                        "over the trade window, a share of price",
    "trade_intensity": "T10: ln(1 + number of trades in the bar)",
    "mean_trade_size": "T11: ln of the mean trade size (base currency) over the trade window",
    "vwap_deviation": "T12: (close − VWAP)/VWAP of the bar's own trades",
    "sign_autocorr": "T13: correlation of consecutive trade signs over the trade window "
                     "(order splitting, herding)",
    "roll_measure": "B1: Roll measure 2√max(0, −cov(Δc_k, Δc_{k-1})) over the bar window, in "
                    "price units",
    "roll_impact": "B2: Roll measure per dollar traded in the bar (B1 / dollar volume)",
    "corwin_schultz_spread": "B3: Corwin–Schultz spread from highs and lows (AFML 19.1), a share "
                             "of price",
    "becker_parkinson_vol": "B4: Becker–Parkinson volatility from highs and lows (AFML 19.2), "
                            "per bar",
    "kyle_lambda_bar": "B5: Kyle's lambda from bars, OLS without intercept of Δc on sign(Δc)·V "
                       "over the bar window",
    "amihud_illiquidity": "B6: Amihud illiquidity, mean |r|/dollar volume over the regression "
                          "window",
    "vpin_bvc": "B7: VPIN with bulk volume classification: buy share Φ(Δc/σ) of each bar's "
                "volume",
    "parkinson_vol": "B8: Parkinson volatility √(Σ ln²(H/L) / (4 ln 2 · W)) over the bar window, "
                     "per bar",
    "effective_spread": "Effective spread 2b(p − m)/m, mean over the trade window's trades; m the "
                        "mid quoted just before the trade (NaN without quotes)",
    "realized_spread": "Realized spread 2b(p − m(t+5 s))/m: what the liquidity provider keeps "
                       "after 5 s (NaN without quotes)",
    "price_impact": "Price impact, effective − realized spread: how far the mid moved against "
                    "the liquidity provider within 5 s (NaN without quotes)",
}

COMPUTED = {
    "features.microstructure_features": (features.COLUMNS, {
        "symbol": _SYMBOL, "ts": _TS, **{name: (_FLOAT, text) for name, text in FEATURES.items()},
    }),
    "ml.garch_volatility": (volatility.COLUMNS, {
        "symbol": _SYMBOL, "ts": _TS,
        "ret": (_FLOAT, ("Close-to-close return of the bar, decimal × scale (percent when scale "
                         "is 100); NULL for the first bar")),
        "sigma": (_FLOAT, ("GARCH(1,1)-t conditional volatility of the bar's return, known at the "
                           "previous close; same units as ret")),
        "std_resid": (_FLOAT, "Standardised residual z = (ret − μ) / sigma"),
        "regime": ("VARCHAR", ("low / normal / high / crisis: sigma against the 25%, 75% and 95% "
                               "quantiles of the fit window's sigma (crisis: the worst 5%)")),
        "scale": (_FLOAT, ("Factor from decimal returns to ret and sigma: 100 percent, 1,000 per "
                           "mille, 10,000 basis points")),
    }),
    "ml.labels": (labels.COLUMNS, {
        "symbol": _SYMBOL,
        "t0": ("TIMESTAMPTZ", ("Event start: open time (UTC) of the bar at whose close the event "
                               "is entered")),
        "t1": ("TIMESTAMPTZ", ("Event end: open time (UTC) of the bar whose close touches the "
                               "first barrier")),
        "label": ("TINYINT", ("+1 upper barrier first, -1 lower barrier first, 0 vertical barrier "
                              "(horizon reached)")),
        "ret": (_FLOAT, "Decimal return from the close of t0 to the close of t1"),
        "barrier": ("VARCHAR", "The barrier touched first: upper, lower or vertical"),
        "sigma": (_FLOAT, ("Next-bar GARCH volatility at t0 as a decimal return; barriers sit at "
                           "±k × sigma")),
        "weight": (_FLOAT, ("Average uniqueness (AFML ch. 4): the share of the label's span it "
                            "shares with no other label, in (0, 1]")),
    }),
    "ml.cv_folds": (folds.COLUMNS, {
        "symbol": _SYMBOL,
        "scheme": ("VARCHAR", ("purged_kfold, walk_forward (purged, expanding) or cpcv "
                               "(combinatorial purged)")),
        "split": ("INTEGER", ("Split number within the scheme, from 0 (CPCV: in "
                              "itertools.combinations order of the test folds)")),
        "t0": ("TIMESTAMPTZ", "Label start: the key into ml.labels"),
        "role": ("VARCHAR", ("train, test, purged (its span overlaps a test label) or embargoed "
                             "(just after a test block); labels a split does not use have no row")),
        "path": ("INTEGER", ("CPCV backtest path that uses this test row's prediction; NULL "
                             "otherwise")),
        "embargo": ("BIGINT", ("Labels embargoed after each test block: ceil(embargo share × "
                               "labels)")),
        "folds": ("BIGINT", "Number of folds: K, or N for CPCV"),
        "test_folds": ("BIGINT", "Folds tested per split: k for CPCV, 1 otherwise"),
    }),
    "ml.leakage_proof": (leakage.COLUMNS, {
        "symbol": _SYMBOL,
        "measure": ("VARCHAR", ("AUC under shuffled and purged K-fold, the inflation purging "
                                "removes, and on permuted labels the purged AUC and strategy "
                                "Sharpe")),
        "value": (_FLOAT, "The measure's value (AUC in [0, 1], Sharpe ratio per event)"),
        "note": ("VARCHAR", "Standard error and pass/fail of the permuted-label tests"),
    }),
    "ml.base_models": (training.COLUMNS, {
        "symbol": _SYMBOL,
        "learner": ("VARCHAR", ("attention_lstm, hist_gradient_boosting, logistic (standardised) "
                                "or extra_trees")),
        "scheme": ("VARCHAR", "purged_kfold (out-of-fold) or walk_forward (trained on the past)"),
        "split": ("BIGINT", "Split of the scheme in ml.cv_folds the model was trained on"),
        "n_train": ("BIGINT", "Training samples (after purging and embargo)"),
        "n_test": ("BIGINT", "Test samples the model predicted (never seen in training)"),
        "seconds": (_FLOAT, "Wall time of the step: input fitting, training and prediction"),
        "best_epoch": ("BIGINT", ("LSTM: epoch with the lowest inner-validation loss, whose "
                                  "weights were kept; -1 for the other learners")),
        "path": ("VARCHAR", "Directory of the stored model under BOT4_HOME/models/folds"),
        "sha256": ("VARCHAR", "sha256 of the model file (safetensors or skops), checked on load"),
        "size": ("BIGINT", "Bytes of the model and its fitted-inputs file"),
        "history": ("VARCHAR", "LSTM: JSON list of epoch, train_loss, val_loss; [] otherwise"),
        "attention": ("VARCHAR", ("LSTM: JSON attention weights (heads x L x L) of the split's "
                                  "last test window; NULL otherwise")),
    }),
    "ml.oof_predictions": (oof.COLUMNS, {
        "symbol": _SYMBOL,
        "scheme": ("VARCHAR", "purged_kfold (every sample once) or walk_forward (past only)"),
        "split": ("BIGINT", "Split whose model made the prediction"),
        "t0": ("TIMESTAMPTZ", "Label start: the key into ml.labels"),
        "learner": ("VARCHAR", "The base learner that predicted"),
        "proba": (_FLOAT, ("Out-of-fold probability that the upper barrier is touched first, "
                           "from a model that never trained on this sample")),
        "y": ("TINYINT", "1 if the upper barrier was touched first (label > 0), else 0"),
        "weight": (_FLOAT, "The label's average uniqueness, its weight in every score"),
        "ret": (_FLOAT, "The event's return, what a strategy trading the prediction earns"),
        "regime": ("TINYINT", ("Volatility regime at t0 on the split's own GARCH and thresholds "
                               "(0 low, 1 normal, 2 high, 3 crisis, -1 undefined)")),
    }),
    "ml.stacking_ensemble": (ensemble_report.COLUMNS, {
        "symbol": _SYMBOL,
        "evaluation": ("VARCHAR", ("walk_forward (headline: trained on the past, splits 1+) or "
                                   "purged_kfold_oof (learners and nested-OOF stacking)")),
        "model": ("VARCHAR", "A learner, a blend mode, or base_rate (the reference)"),
        "kind": ("VARCHAR", "learner, blend or reference"),
        "n": ("BIGINT", "Samples scored, all predicted out of sample"),
        "auc": (_FLOAT, "Area under the ROC curve (average-rank ties)"),
        "auc_se": (_FLOAT, "Hanley-McNeil standard error of the AUC"),
        "log_loss": (_FLOAT, "Uniqueness-weighted log-loss, probabilities clipped to 1e-6"),
        "log_loss_se": (_FLOAT, "Standard error of the weighted mean log-loss"),
        "brier": (_FLOAT, "Uniqueness-weighted Brier score"),
        "brier_se": (_FLOAT, "Standard error of the weighted mean Brier score"),
    }),
    "ml.calibrator": (calibration_report.COLUMNS, {
        "symbol": _SYMBOL,
        "blend": ("VARCHAR", "The blend calibrated (its nested out-of-fold probability)"),
        "scope": ("VARCHAR", "all rows, or the rows of one volatility regime"),
        "method": ("VARCHAR", "uncalibrated, global isotonic or per regime isotonic"),
        "n": ("BIGINT", "Samples scored, each by calibrators that never fitted on it"),
        "brier": (_FLOAT, "Uniqueness-weighted Brier score"),
        "brier_se": (_FLOAT, "Standard error of the weighted mean Brier score"),
        "log_loss": (_FLOAT, "Uniqueness-weighted log-loss, probabilities clipped to 1e-6"),
        "log_loss_se": (_FLOAT, "Standard error of the weighted mean log-loss"),
        "ece": (_FLOAT, "Expected calibration error, 10 equal-width bins"),
        "ece_quantile": (_FLOAT, "Expected calibration error, 10 equal-mass bins"),
        "reliability": (_FLOAT, "Murphy reliability (miscalibration; lower is better)"),
        "resolution": (_FLOAT, "Murphy resolution (separation of outcomes; higher is better)"),
        "uncertainty": (_FLOAT, "Murphy uncertainty: base rate × (1 − base rate)"),
        "brier_improvement": (_FLOAT, "1 − Brier / Brier of the uncalibrated blend"),
        "brier_improvement_se": (_FLOAT, "Delta-method standard error of the improvement"),
    }),
    "ml.model_candidates": (candidate.COLUMNS, {
        "symbol": _SYMBOL,
        "id": ("VARCHAR", ("Bundle id: the first 16 hex digits of its manifest's sha256, and the "
                           "name of its directory")),
        "created_at": ("TIMESTAMPTZ", "When the bundle was built"),
        "profile": ("VARCHAR", "Training profile of the learners (quick or full)"),
        "blend": ("VARCHAR", "Blend mode of the learners' probabilities (weighted)"),
        "learners": ("VARCHAR", "The learners, comma-separated, in the order of the blend"),
        "features": ("BIGINT", "Inputs per bar the learners read (names in the manifest)"),
        "window": ("BIGINT", "Bars of inputs the attention LSTM reads, up to t0"),
        "samples": ("BIGINT", "Labelled samples every learner was fitted on"),
        "train_start": ("TIMESTAMPTZ", "First label start (t0) trained on"),
        "train_end": ("TIMESTAMPTZ", "Last label end (t1) trained on"),
        "git_commit": ("VARCHAR", "Commit of the code that built it (NULL outside git)"),
        "run_id": ("VARCHAR", "Dagster run that built it"),
        "parent": ("VARCHAR", "The symbol's previous candidate when it was built (NULL: first)"),
        "sha256": ("VARCHAR", "sha256 of manifest.json, which holds every file's sha256"),
        "size": ("BIGINT", "Bytes of the bundle: manifest and weights.safetensors"),
        "path": ("VARCHAR", "Directory of the bundle under BOT4_HOME/models/candidates"),
    }),
    "registry.model_versions": (versions.COLUMNS, {
        "symbol": _SYMBOL,
        "model": ("VARCHAR", "The MLflow registered model, bot4.<strategy>.<symbol>"),
        "version": ("BIGINT", "MLflow version number, one per registered bundle"),
        "aliases": ("VARCHAR", "Aliases pointing at it, comma-separated (champion, shadow, ...)"),
        "bundle_id": ("VARCHAR", "The bundle it is: ml.model_candidates.id"),
        "artifact_sha256": ("VARCHAR", "sha256 of the bundle's manifest.json (a version tag)"),
        "dagster_run_id": ("VARCHAR", "Dagster run that built the bundle"),
        "git_sha": ("VARCHAR", "Commit of the code that built the bundle"),
        "parent_version": ("VARCHAR", "Version of the parent bundle, or none"),
        "quarantined": ("BOOLEAN", "Rolled back or quarantined: never promoted automatically"),
        "registered_at": ("TIMESTAMPTZ", "When the version was created in MLflow"),
        "model_uri": ("VARCHAR", "models:/<model>/<version>, for MLflow's API and UI"),
    }),
    "perf.manifest": (tuple(manifest.COLUMNS), {
        "benchmark": ("VARCHAR", "Benchmark name, group/case"),
        "group": ("VARCHAR", "Benchmark group (ingest, features, garch, cv, ...)"),
        "unit": ("VARCHAR", "What one timed call processes"),
        "p50_s": (_FLOAT, "Median seconds per call, ours"),
        "p95_s": (_FLOAT, "95th percentile seconds per call, ours"),
        "p99_s": (_FLOAT, "99th percentile seconds per call, ours"),
        "throughput_per_s": (_FLOAT, "Units processed per second at the median"),
        "reference": ("VARCHAR", "The library call timed beside ours, if any"),
        "reference_p50_s": (_FLOAT, "Median seconds per call of the reference"),
        "ratio": (_FLOAT, "Reference p50 / our p50: above 1 we are faster"),
        "goal": ("VARCHAR", "The performance goal the benchmark is held to, if any"),
        "met": ("BOOLEAN", "Whether the goal was met in this report"),
        "measured_at": ("VARCHAR", "When the report was written (ISO 8601)"),
        "git_commit": ("VARCHAR", "Commit the benchmarks ran on"),
    }),
}


@dataclass(frozen=True)
class CatalogColumn:
    name: str
    type: str  # DuckDB type as stored
    description: str


def _market(name: str) -> tuple[CatalogColumn, ...]:
    spec = tables.TABLES[name]
    return tuple(CatalogColumn(c.name, c.sql, MARKET[name].get(c.name, "")) for c in spec.columns)


def _computed(columns: tuple[str, ...], described: dict) -> tuple[CatalogColumn, ...]:
    return tuple(CatalogColumn(name, *described.get(name, ("", ""))) for name in columns)


CATALOG: dict[str, tuple[CatalogColumn, ...]] = {
    **{tables.TABLES[name].name: _market(name) for name in MARKET},
    **{table: _computed(*spec) for table, spec in COMPUTED.items()},
}


def table_columns(table: str) -> tuple[CatalogColumn, ...]:
    """The columns of warehouse table ``table`` ("schema.table"), in stored order."""
    try:
        return CATALOG[table]
    except KeyError:
        raise KeyError(f"no catalog entry for {table!r}; known: {', '.join(CATALOG)}") from None

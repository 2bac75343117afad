"""Every stage on too little data: features → GARCH → labels → folds → leakage proof either
produce a result or raise ``InsufficientData`` saying which stage, which symbol, what it needs and
what it has. Real data throughout: the Binance trades (2 hours, resampled to 1-minute bars by
``kernels.bars.trades_to_bars``) and prefixes of the FTX 1-minute bars, at and just below each
stage's minimum."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from synthetic_microstructure import load_binance_trades, load_ftx_bars

from bot4_dagster.features.table import feature_table, minimum_bars
from bot4_dagster.kernels.bars import trades_to_bars
from bot4_dagster.ml.cv import TEST, TRAIN
from bot4_dagster.ml.folds import (
    SCHEMES,
    FoldSettings,
    fold_splitters,
    folds_table,
    label_reach,
    label_t1,
    role_matrices,
    stored_fold_violations,
)
from bot4_dagster.ml.insufficient import InsufficientData
from bot4_dagster.ml.labels import label_table
from bot4_dagster.ml.leakage import MIN_EVENTS, leakage_proof_of_tables
from bot4_dagster.ml.volatility import MIN_BARS, estimate_volatility

MINUTE_NS = 60_000_000_000
HORIZON = 10


@pytest.fixture(scope="module")
def trades() -> pd.DataFrame:
    return load_binance_trades()


@pytest.fixture(scope="module")
def trade_bars(trades) -> pd.DataFrame:
    """The trades' 1-minute bars as the warehouse holds them (126 bars, 00:00 .. 02:05)."""
    b = trades_to_bars(pd.DatetimeIndex(trades["ts"]).asi8, trades["price"].to_numpy(),
                       trades["amount"].to_numpy(), trades["side"].to_numpy(), MINUTE_NS)
    return pd.DataFrame({
        "symbol": "BTCUSDT", "ts": pd.to_datetime(b["ts"], unit="ns", utc=True),
        "open": b["open"], "high": b["high"], "low": b["low"], "close": b["close"],
        "volume": b["volume"], "buy_volume": b["buy_volume"], "trade_count": b["count"]})


@pytest.fixture(scope="module")
def ftx() -> pd.DataFrame:
    return load_ftx_bars().assign(symbol="BTC-PERP")


def run_chain(bars, trades, symbol, *, volume_unit="base", horizon=HORIZON):
    """Each stage's library call in turn: (outputs so far, the InsufficientData that stopped it)."""
    out = {}
    try:
        out["features"], _ = feature_table(bars, trades, symbol=symbol, volume_unit=volume_unit)
        estimate = estimate_volatility(bars.set_index("ts")["close"], symbol=symbol)
        out["garch"] = estimate.table(symbol)
        out["labels"] = label_table(bars, out["garch"], symbol=symbol, upper=2.0, lower=2.0,
                                    horizon=horizon)
        out["folds"] = folds_table(out["labels"], fold_splitters(out["labels"], symbol=symbol),
                                   symbol=symbol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # sklearn: small bootstrap samples
            report = leakage_proof_of_tables(out["features"], out["labels"], symbol=symbol)
        out["leakage"] = report.stored(symbol)
    except InsufficientData as exc:
        return out, exc
    return out, None


def assert_results(out: dict, stages: tuple[str, ...]) -> None:
    assert tuple(out) == stages
    for name, frame in out.items():
        assert len(frame) > 0, name
    if "folds" in out:
        assert stored_fold_violations(out["folds"], out["labels"]) == []


# ---------------------------------------------------------------- the two small real inputs


def test_two_hours_of_trades(trade_bars, trades):
    out, stop = run_chain(trade_bars, trades, "BTCUSDT")
    assert_results(out, ("features", "garch", "labels", "folds"))
    assert len(out["features"]) == len(out["garch"]) == 126
    assert len(out["labels"]) == 126 - HORIZON
    assert stop.stage == "leakage proof" and stop.need == MIN_EVENTS and 0 < stop.have < 100
    assert str(stop).startswith("leakage proof for BTCUSDT needs at least 900 events with every "
                                f"feature defined; it has {stop.have} (")


@pytest.mark.parametrize("horizon", [10, 20])  # 20 (the library default) raised IndexError
def test_first_1499_ftx_bars(ftx, horizon):
    out, stop = run_chain(ftx.iloc[:1499], None, "BTC-PERP", volume_unit="quote", horizon=horizon)
    assert_results(out, ("features", "garch", "labels", "folds"))
    assert len(out["labels"]) == 1499 - horizon
    assert (stop.stage, stop.symbol, stop.need) == ("leakage proof", "BTC-PERP", 900)
    # bulk volume classification needs a day of bars for its σ (bvc_sigma_window = 1,440 bars):
    # the approximated signed volume imbalance starts a day in, which leaves so few events
    assert "(signed_volume_imbalance is first defined at 2022-01-01 23:15:00+00:00;" in str(stop)


def test_a_day_and_a_half_of_ftx_bars_proves_no_leakage(ftx):
    out, stop = run_chain(ftx.iloc[:4000], None, "BTC-PERP", volume_unit="quote")
    assert stop is None
    assert_results(out, ("features", "garch", "labels", "folds", "leakage"))
    assert out["leakage"]["measure"].iloc[0] == "shuffled K-fold AUC (leaks)"


# ---------------------------------------------------------------- at and just below each minimum


def test_features_minimum_is_the_longest_fixed_window(ftx, trade_bars, trades):
    need = minimum_bars()
    assert need == 61  # regression window 60 returns + 1
    frame, _ = feature_table(ftx.iloc[:need], symbol="BTC-PERP", volume_unit="quote")
    assert len(frame) == need
    # at the minimum every fixed-window feature has its first value, in the last bar
    for name in ("amihud_illiquidity", "amihud_lambda", "roll_measure", "parkinson_vol"):
        assert frame[name].notna().sum() >= 1 and np.isfinite(frame[name].iloc[-1]), name
    assert frame["amihud_illiquidity"].notna().sum() == 1
    with_trades, _ = feature_table(trade_bars.iloc[:need], trades, symbol="BTCUSDT")
    assert with_trades["hasbrouck_lambda"].notna().sum() == 1
    with pytest.raises(InsufficientData) as below:
        feature_table(ftx.iloc[:need - 1], symbol="BTC-PERP", volume_unit="quote")
    assert str(below.value) == ("the microstructure feature table for BTC-PERP needs at least "
                                "61 bars; it has 60 (the longest fixed window must fill once)")
    with pytest.raises(InsufficientData, match=r"^no microstructure features for BTCUSDT: 0 bars"):
        feature_table(trade_bars.iloc[:0], trades, symbol="BTCUSDT")


def test_features_minimum_follows_the_windows(ftx):
    assert minimum_bars(regression_window=30) == 31
    assert minimum_bars(regression_window=10, bar_window=40) == 42
    frame, _ = feature_table(ftx.iloc[:31], symbol="BTC-PERP", regression_window=30)
    assert frame["amihud_illiquidity"].notna().sum() == 1
    with pytest.raises(InsufficientData, match="needs at least 31 bars; it has 30"):
        feature_table(ftx.iloc[:30], symbol="BTC-PERP", regression_window=30)


def test_garch_minimum(ftx, trade_bars):
    assert MIN_BARS == 101
    estimate = estimate_volatility(ftx["close"].iloc[:MIN_BARS], symbol="BTC-PERP")
    assert np.isfinite(estimate.fit.loglik) and len(estimate.returns) == 100
    with pytest.raises(InsufficientData) as below:
        estimate_volatility(ftx["close"].iloc[:MIN_BARS - 1], symbol="BTC-PERP")
    assert str(below.value).startswith("GARCH for BTC-PERP needs at least 101 bars; it has 100")
    with pytest.raises(InsufficientData) as short:
        estimate_volatility(trade_bars["close"].iloc[:57], symbol="BTCUSDT")
    assert str(short.value) == ("GARCH for BTCUSDT needs at least 101 bars; it has 57 "
                                "(GARCH(1,1) is fitted on at least 100 returns)")
    with pytest.raises(InsufficientData, match=r"^no GARCH volatility for BTCUSDT: 0 bars"):
        estimate_volatility(trade_bars["close"].iloc[:0], symbol="BTCUSDT")


def test_chain_at_the_garch_minimum(ftx):
    out, stop = run_chain(ftx.iloc[:MIN_BARS], None, "BTC-PERP", volume_unit="quote")
    assert_results(out, ("features", "garch", "labels", "folds"))
    assert stop.stage == "leakage proof"
    out, stop = run_chain(ftx.iloc[:MIN_BARS - 1], None, "BTC-PERP", volume_unit="quote")
    assert tuple(out) == ("features",) and stop.stage == "GARCH"


@pytest.mark.parametrize("horizon", [1, 5, 10])
def test_labels_minimum_is_the_horizon_plus_one(ftx, horizon):
    bars = ftx.iloc[:300]
    volatility = estimate_volatility(bars.set_index("ts")["close"]).table("BTC-PERP")
    labels = label_table(bars.iloc[:horizon + 1], volatility, symbol="BTC-PERP", upper=2.0,
                         lower=2.0, horizon=horizon)
    assert len(labels) == 1 and labels["t0"].iloc[0] == bars["ts"].iloc[0]
    with pytest.raises(InsufficientData) as below:
        label_table(bars.iloc[:horizon], volatility, symbol="BTC-PERP", upper=2.0, lower=2.0,
                    horizon=horizon)
    assert str(below.value).startswith(f"triple-barrier labelling for BTC-PERP needs at least "
                                       f"{horizon + 1} bars; it has {horizon}")


def test_no_labels_without_bars_or_volatility(ftx, trade_bars):
    volatility = estimate_volatility(ftx.set_index("ts")["close"].iloc[:300]).table("BTC-PERP")
    with pytest.raises(InsufficientData, match=r"^no labels for BTCUSDT: 0 bars; triple-barrier "
                                               r"labelling needs at least 11"):
        label_table(trade_bars.iloc[:0], volatility, symbol="BTCUSDT", upper=2.0, lower=2.0,
                    horizon=10)
    # bars whose times the volatility does not cover: no bar has a sigma, no event
    with pytest.raises(InsufficientData, match=r"^no labels for BTCUSDT: 0 events"):
        label_table(trade_bars, volatility, symbol="BTCUSDT", upper=2.0, lower=2.0, horizon=10)


@pytest.fixture(scope="module")
def ftx_labels(ftx) -> pd.DataFrame:
    bars = ftx.iloc[:2000]
    volatility = estimate_volatility(bars.set_index("ts")["close"]).table("BTC-PERP")
    return label_table(bars, volatility, symbol="BTC-PERP", upper=2.0, lower=2.0, horizon=HORIZON)


@pytest.mark.parametrize(("settings", "binding", "title"), [
    (FoldSettings(), "walk_forward", "purged walk-forward CV (5 test folds)"),
    (FoldSettings(2, 10, 1, 0.4), "purged_kfold", "purged 2-fold CV"),
    (FoldSettings(5, 6, 3, 0.05), "cpcv", "combinatorial purged CV (6 folds, 3 tested)"),
])
def test_fold_minimum_of_each_scheme(ftx_labels, settings, binding, title):
    kwargs = dict(n_splits=settings.n_splits, cpcv_folds=settings.cpcv_folds,
                  cpcv_test_folds=settings.cpcv_test_folds, embargo_pct=settings.embargo_pct)
    reach = label_reach(label_t1(ftx_labels.iloc[:30]))
    need = {scheme: settings.minimum(scheme, reach) for scheme in SCHEMES}
    assert max(need, key=need.get) == binding
    at, below = ftx_labels.iloc[:need[binding]], ftx_labels.iloc[:need[binding] - 1]
    assert label_reach(label_t1(at)) == label_reach(label_t1(below)) == reach
    splitters = fold_splitters(at, symbol="BTC-PERP", **kwargs)
    stored = folds_table(at, splitters, symbol="BTC-PERP")
    assert stored_fold_violations(stored, at) == []
    with pytest.raises(InsufficientData) as short:
        fold_splitters(below, symbol="BTC-PERP", **kwargs)
    assert str(short.value).startswith(
        f"{title} for BTC-PERP needs at least {need[binding]} labels; it has {need[binding] - 1}")


def test_folds_at_and_above_the_minimum_train_on_every_split(ftx_labels):
    reach = label_reach(label_t1(ftx_labels.iloc[:30]))
    need = max(FoldSettings().minimum(scheme, reach) for scheme in SCHEMES)
    for n in range(need, need + 40):
        for scheme, matrix in role_matrices(fold_splitters(ftx_labels.iloc[:n])).items():
            assert ((matrix == TRAIN).any(axis=1) & (matrix == TEST).any(axis=1)).all(), (scheme, n)


def test_no_folds_without_labels(ftx_labels):
    with pytest.raises(InsufficientData, match=r"^no folds for BTC-PERP: 0 labels; purged "
                                               r"walk-forward CV"):
        fold_splitters(ftx_labels.iloc[:0], symbol="BTC-PERP")


@pytest.fixture(scope="module")
def leakage_inputs(ftx):
    bars = ftx.iloc[:4000]
    features, _ = feature_table(bars, symbol="BTC-PERP", volume_unit="quote")
    volatility = estimate_volatility(bars.set_index("ts")["close"]).table("BTC-PERP")
    labels = label_table(bars, volatility, symbol="BTC-PERP", upper=2.0, lower=2.0, horizon=HORIZON)
    return features, labels


def test_leakage_proof_minimum_is_900_events(leakage_inputs):
    features, labels = leakage_inputs
    x = features.set_index("ts").drop(columns=["symbol"]).reindex(pd.DatetimeIndex(labels["t0"]))
    usable = np.flatnonzero(x.loc[:, x.notna().any()].notna().all(axis=1).to_numpy())
    assert MIN_EVENTS == 900 and len(usable) > MIN_EVENTS
    at = labels.iloc[:usable[MIN_EVENTS - 1] + 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = leakage_proof_of_tables(features, at, symbol="BTC-PERP")
    assert report.n_samples == MIN_EVENTS and report.stride == 1
    with pytest.raises(InsufficientData) as below:
        leakage_proof_of_tables(features, labels.iloc[:usable[MIN_EVENTS - 1]], symbol="BTC-PERP")
    assert str(below.value).startswith("leakage proof for BTC-PERP needs at least 900 events with "
                                       "every feature defined; it has 899")


def test_leakage_proof_needs_both_classes(leakage_inputs):
    features, labels = leakage_inputs
    with pytest.raises(InsufficientData) as one_class:
        leakage_proof_of_tables(features, labels.assign(label=-1), symbol="BTC-PERP")
    assert str(one_class.value).startswith(
        "no leakage proof for BTC-PERP: 0 events with label > 0 (upper barrier) in the training "
        "set of split 0")


def test_leakage_proof_needs_features(leakage_inputs):
    features, labels = leakage_inputs
    empty = features.assign(**{c: np.nan for c in features.columns if c not in ("symbol", "ts")})
    with pytest.raises(InsufficientData, match=r"^no leakage proof for BTC-PERP: 0 features"):
        leakage_proof_of_tables(empty, labels, symbol="BTC-PERP")


def test_the_error_survives_pickling_and_is_a_value_error():
    error = InsufficientData("GARCH", "BTCUSDT", 101, 57, "bars", "why", noun="GARCH volatility")
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, ValueError) and str(again) == str(error)
    assert (again.stage, again.symbol, again.need, again.have, again.noun) == (
        "GARCH", "BTCUSDT", 101, 57, "GARCH volatility")
    assert str(InsufficientData("GARCH", None, 101, 57, "bars")) == (
        "GARCH needs at least 101 bars; it has 57")

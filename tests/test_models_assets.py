"""``ml/base_models``, ``ml/oof_predictions``, ``ml/stacking_ensemble``, ``ml/calibrator`` and
``ml/model_candidate`` in Dagster on the bundled S&P 500 bars (since 2016): one step per
(learner, scheme, split), the stored tables, the metadata a user reads (metrics with standard
errors, diversity, PBO, DSR, calibration before and after, plots), and the candidate's bundle,
lineage and blocking check."""

from __future__ import annotations

import shutil

import dagster as dg
import pandas as pd
import pytest
from pipeline import materialize, metadata_of

from bot4_dagster.assets.keys import (
    BARS,
    BASE_MODELS,
    CALIBRATOR,
    CANDIDATE,
    ENSEMBLE,
    FEATURES,
    FOLDS,
    LABELS,
    OOF,
    VOLATILITY,
)
from bot4_dagster.automation.partitions import SYMBOLS
from bot4_dagster.data.warehouse import Slice, Warehouse
from bot4_dagster.definitions import build_definitions
from bot4_dagster.ml.bundle import read_bundle
from bot4_dagster.ml.ensemble import BLEND_MODES
from bot4_dagster.ml.learners import LEARNERS
from bot4_dagster.ml.regime_calibration import METHODS
from bot4_dagster.ml.regimes import REGIMES
from bot4_dagster.resources import MarketDataResource

SYMBOL = "SP500"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    defs = build_definitions(MarketDataResource(symbols=[SYMBOL]), str(tmp / "w.duckdb"))
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        env.setenv("BOT4_HOME", str(tmp / "bot4_home"))
        instance.add_dynamic_partitions(SYMBOLS.name, [SYMBOL])
        first = materialize(defs, instance, SYMBOL, BARS, FEATURES, VOLATILITY, LABELS, FOLDS,
                            ops={"market__bars": {"start": "2016-01-01"}})
        assert first.success
        result = materialize(defs, instance, SYMBOL, BASE_MODELS, OOF, ENSEMBLE, CALIBRATOR,
                             CANDIDATE)
        again = materialize(defs, instance, SYMBOL, CANDIDATE)
        yield dict(result=result, again=again, warehouse=Warehouse(tmp / "w.duckdb"),
                   home=tmp / "bot4_home", instance=instance)


def test_every_learner_scheme_and_split_is_its_own_step(trained):
    result = trained["result"]
    assert result.success
    steps = {e.step_key for e in result.all_events if e.is_step_success}
    trained_steps = [s for s in steps if "train_split[" in s]
    assert len(trained_steps) == len(LEARNERS) * 10  # 5 purged K-fold + 5 walk-forward splits
    for learner in LEARNERS:
        assert any(f"[{learner}_walk_forward_4]" in s for s in trained_steps), learner


def test_the_stored_tables(trained):
    warehouse = trained["warehouse"]
    models = warehouse.read(Slice("ml.base_models", {"symbol": [SYMBOL]}), order_by=None)
    assert len(models) == len(LEARNERS) * 10 and models["sha256"].str.len().eq(64).all()
    oof = warehouse.read(Slice("ml.oof_predictions", {"symbol": [SYMBOL]}), order_by=None)
    labels = warehouse.read(Slice("ml.labels", {"symbol": [SYMBOL]}), order_by="t0")
    kfold = oof[oof["scheme"] == "purged_kfold"]
    assert (kfold.groupby("learner")["t0"].nunique() == len(labels)).all()
    ensemble = warehouse.read(Slice("ml.stacking_ensemble", {"symbol": [SYMBOL]}), order_by=None)
    walk = ensemble[ensemble["evaluation"] == "walk_forward"]
    assert set(walk["model"]) == {*LEARNERS, *BLEND_MODES, "base_rate"}
    calibration = warehouse.read(Slice("ml.calibrator", {"symbol": [SYMBOL]}), order_by=None)
    overall = calibration[calibration["scope"] == "all"]
    assert list(overall["method"]) == list(METHODS)
    assert (overall["n"] == len(labels)).all()  # every sample, each scored out of fold
    assert set(calibration["scope"]) <= {"all", *REGIMES}


def test_the_metadata_a_user_reads(trained):
    result = trained["result"]
    models = metadata_of(result, BASE_MODELS)
    for key in ("training_seconds", "per_fold", "learning_curves", "attention"):
        assert key in models, key
    assert "data:image/png;base64," in models["attention"].value
    ensemble = metadata_of(result, ENSEMBLE)
    for key in ("walk_forward", "scores", "purged_kfold_oof", "weights", "diversity", "pairs",
                "pbo", "deflated_sharpe_ratio", "selected"):
        assert key in ensemble, key
    assert 0 <= ensemble["pbo"].value <= 1
    assert 0 <= ensemble["diversity_score"].value <= 1
    calibration = metadata_of(result, CALIBRATOR)
    for key in ("brier_improvement", "brier_improvement_se", "overall", "brier_decomposition",
                "per_regime", "maps", "reliability"):
        assert key in calibration, key
    assert "data:image/png;base64," in calibration["reliability"].value
    assert calibration["brier_improvement_se"].value > 0
    logs = [e.message for e in result.all_events if e.event_type_value == "ENGINE_EVENT"]
    assert logs  # the run's own events are there; per-epoch lines are in the step logs


def test_the_candidate_bundle_is_stored_indexed_checked_and_has_lineage(trained):
    first, again = trained["result"], trained["again"]
    assert again.success
    index = trained["warehouse"].read(Slice("ml.model_candidates", {"symbol": [SYMBOL]}),
                                      order_by="created_at")
    assert len(index) == 2  # every stored bundle of the symbol, oldest first
    older, newer = index.iloc[0], index.iloc[1]
    assert newer["parent"] == older["id"] and pd.isna(older["parent"])
    assert newer["run_id"] == again.run_id and older["run_id"] == first.run_id
    assert set(newer["learners"].split(",")) == set(LEARNERS)
    bundle = read_bundle(newer["path"])  # verifies every sha256 and the header
    assert str(trained["home"]) in newer["path"] and bundle.id == newer["id"]
    lineage = bundle.manifest["lineage"]
    assert lineage["partitions"] == {"symbol": SYMBOL} and lineage["profile"] == "quick"
    assert lineage["git_commit"] is None or len(lineage["git_commit"]) == 40
    assert set(lineage["data_versions"]) == {"market/bars", "features/microstructure_features",
                                             "ml/labels", "ml/cv_folds", "ml/oof_predictions"}
    assert all(lineage["data_versions"].values())
    meta = metadata_of(again, CANDIDATE)
    assert meta["bundle_id"].value == newer["id"] and meta["bytes"].value == newer["size"]
    assert meta["path"].value == newer["path"] and meta["parent"].value == older["id"]
    for key in ("lineage", "fit_seconds", "blend_weights", "calibration_maps", "sha256"):
        assert key in meta, key
    checks = list(again.get_asset_check_evaluations())
    assert len(checks) == 1 and checks[0].passed
    comparisons = checks[0].metadata["comparisons"].value.records
    assert len(comparisons) == 2 * len(LEARNERS) + 9 and all(r.data["passed"] for r in comparisons)


def test_a_tampered_bundle_fails_the_blocking_check(trained, tmp_path):
    from bot4_dagster.ml.bundle import WEIGHTS
    from bot4_dagster.ml.candidate_check import check_newest
    from bot4_dagster.ml.dataset import learning_samples

    warehouse = trained["warehouse"]
    tables = {name: warehouse.read(Slice(name, {"symbol": [SYMBOL]}), order_by=None)
              for name in ("market.bars", "features.microstructure_features", "ml.labels",
                           "ml.oof_predictions", "ml.cv_folds", "ml.model_candidates")}
    samples = learning_samples(tables["market.bars"], tables["features.microstructure_features"],
                               tables["ml.labels"], symbol=SYMBOL)
    index = tables["ml.model_candidates"]
    copy = tmp_path / index["id"].iloc[-1]
    shutil.copytree(index["path"].iloc[-1], copy)
    data = bytearray((copy / WEIGHTS).read_bytes())
    data[-3] ^= 0xFF
    (copy / WEIGHTS).write_bytes(bytes(data))
    result = check_newest(index.assign(path=str(copy)), samples, tables["ml.oof_predictions"],
                          tables["ml.cv_folds"], symbol=SYMBOL)
    assert not result.passed and "sha256" in result.problem and WEIGHTS in result.problem


def test_the_training_profile_comes_from_the_flag_or_the_environment(monkeypatch):
    from argparse import Namespace

    from bot4_dagster.cli import _run_config
    from bot4_dagster.resources.training import TrainingResource

    source = MarketDataResource()
    monkeypatch.delenv("BOT4_TRAINING_PROFILE", raising=False)
    config = _run_config(source, Namespace(profile=None))["resources"]
    assert config["training"]["config"]["profile"] == "quick" and "market_data" in config
    monkeypatch.setenv("BOT4_TRAINING_PROFILE", "full")
    assert _run_config(source, Namespace(profile=None))["resources"]["training"]["config"][
        "profile"] == "full"
    assert _run_config(source, Namespace(profile="quick"))["resources"]["training"]["config"][
        "profile"] == "quick"
    monkeypatch.setenv("BOT4_TRAINING_PROFILE", "fast")
    with pytest.raises(ValueError, match="BOT4_TRAINING_PROFILE: unknown training profile 'fast'"):
        TrainingResource.from_env()

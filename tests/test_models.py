"""Base learners trained fold by fold on the real FTX 1-minute bars: out-of-fold predictions that
never come from a model that saw the row, models stored without pickle and verified on load, and
the walk-forward evaluation and stacking report computed only on rows predicted out of sample."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from model_tables import SYMBOL, ftx_tables

from bot4_dagster.ml import artifacts
from bot4_dagster.ml.artifacts import load_fold_model, save_fold_model
from bot4_dagster.ml.dataset import learning_samples
from bot4_dagster.ml.ensemble import BLEND_MODES
from bot4_dagster.ml.ensemble_report import ensemble_report
from bot4_dagster.ml.learners import LEARNERS, LSTM, PROFILES, profile
from bot4_dagster.ml.oof import SCHEMES, fold_splits, oof_table, probability_matrix, train_fold
from bot4_dagster.ml.training import model_index, train_planned, training_plan

TABULAR = [name for name in LEARNERS if name != LSTM]
QUICK = dataclasses.replace(PROFILES["quick"], boosting_iterations=30, trees=40, epochs=3)


@pytest.fixture(scope="module")
def tables():
    return ftx_tables(5000)


@pytest.fixture(scope="module")
def trained(tables, tmp_path_factory, monkeypatch_module):
    """Every tabular learner on every split of both schemes, through the step function."""
    monkeypatch_module.setenv("BOT4_HOME", str(tmp_path_factory.mktemp("home")))
    samples = learning_samples(*tables[:3], symbol=SYMBOL)
    jobs = training_plan(samples, tables[3], tuple(TABULAR), SCHEMES)
    rows = pd.concat([train_planned(job, samples, symbol=SYMBOL, settings=QUICK)
                      for job in jobs], ignore_index=True)
    return jobs, rows


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_plan_has_one_step_per_learner_scheme_and_split(tables):
    samples = learning_samples(*tables[:3], symbol=SYMBOL)
    jobs = training_plan(samples, tables[3], tuple(LEARNERS), SCHEMES)
    splits = {s: tables[3].loc[tables[3]["scheme"] == s, "split"].nunique() for s in SCHEMES}
    assert len(jobs) == len(LEARNERS) * sum(splits.values())
    assert len({(j["learner"], j["scheme"], j["split"]) for j in jobs}) == len(jobs)
    for job in jobs:
        train, test = fold_splits(tables[3], samples, job["scheme"])[job["split"]]
        assert job["train"] == train.tolist() and job["test"] == test.tolist()


def test_every_sample_gets_one_out_of_fold_probability_per_learner(tables, trained):
    _, rows = trained
    oof = oof_table(rows, SYMBOL)
    kfold = oof[oof["scheme"] == "purged_kfold"]
    counts = kfold.groupby(["learner", "t0"]).size()
    assert (counts == 1).all()
    assert kfold.groupby("learner")["t0"].nunique().eq(len(tables[2])).all()
    assert oof["proba"].between(0, 1).all()
    labels = tables[2].set_index("t0")
    np.testing.assert_array_equal(kfold["y"].to_numpy(),
                                  (labels.loc[kfold["t0"], "label"].to_numpy() > 0))


def test_no_prediction_comes_from_a_model_that_trained_on_its_row(tables, trained):
    _, rows = trained
    samples = learning_samples(*tables[:3], symbol=SYMBOL)
    for scheme in SCHEMES:
        for split, (train, test) in enumerate(fold_splits(tables[3], samples, scheme)):
            assert not set(train) & set(test)
            predicted = rows[(rows["scheme"] == scheme) & (rows["split"] == split)]
            assert set(pd.DatetimeIndex(predicted["t0"])) == set(samples.t0[test])
            spans = pd.IntervalIndex.from_arrays(samples.t0[train].asi8,
                                                 pd.DatetimeIndex(samples.t1.iloc[train]).asi8,
                                                 closed="both")
            for t0, t1 in zip(samples.t0[test].asi8[::50],
                              pd.DatetimeIndex(samples.t1.iloc[test]).asi8[::50], strict=True):
                assert not spans.overlaps(pd.Interval(t0, t1, closed="both")).any()
        if scheme == "walk_forward":  # trained on the past only
            for train, test in fold_splits(tables[3], samples, scheme):
                assert samples.t1.iloc[train].max() < samples.t0[test].min()


def test_the_model_index_points_at_verified_files(trained):
    jobs, rows = trained
    index = model_index(rows, SYMBOL)
    assert len(index) == len(jobs)
    for row in index.itertuples():
        assert artifacts.sha256_of(pytest.importorskip("pathlib").Path(row.path)
                                   / "model.skops") == row.sha256
        assert row.n_train > 0 and row.n_test > 0 and row.seconds > 0


def _one_fold(tables, learner):
    samples = learning_samples(*tables[:3], symbol=SYMBOL)
    train, test = fold_splits(tables[3], samples, "walk_forward")[-1]
    return samples, test, train_fold(samples, train, test, learner, QUICK, scheme="walk_forward",
                                     split=4)


@pytest.mark.parametrize("learner", TABULAR)
def test_a_stored_model_loads_and_predicts_the_same(tables, tmp_path, learner):
    samples, test, fold = _one_fold(tables, learner)
    stored = save_fold_model(fold, SYMBOL, root=tmp_path)
    model, inputs = load_fold_model(stored)
    np.testing.assert_array_equal(model.predict_proba(fold.inputs.tabular(samples, test))[:, 1],
                                  fold.proba)
    assert inputs.columns == fold.inputs.columns and inputs.garch == fold.inputs.garch
    assert inputs.regimes == fold.inputs.regimes
    np.testing.assert_array_equal(inputs.std, fold.inputs.std)
    assert [p.name for p in tmp_path.iterdir()] == [stored.path.name]  # nothing half written


def test_a_changed_model_file_is_refused(tables, tmp_path):
    _, _, fold = _one_fold(tables, "logistic")
    stored = save_fold_model(fold, SYMBOL, root=tmp_path)
    path = stored.path / stored.model_file
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match=r"sha256 .* is not the recorded"):
        load_fold_model(stored)


def test_types_outside_the_trusted_list_are_refused(tables, tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    _, _, fold = _one_fold(tables, "logistic")
    stored = save_fold_model(fold, SYMBOL, root=tmp_path)
    sio.dump(FunctionTransformer(json.dumps), stored.path / stored.model_file)
    digest = artifacts.sha256_of(stored.path / stored.model_file)
    forged = artifacts.StoredModel(stored.path, stored.model_file, digest, stored.inputs_sha256,
                                   stored.size)
    with pytest.raises(ValueError, match=r"outside the trusted list: json\.dumps"):
        load_fold_model(forged)


def test_a_killed_write_leaves_no_model_directory(tables, tmp_path, monkeypatch):
    _, _, fold = _one_fold(tables, "logistic")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifacts, "_save_inputs", killed)
    with pytest.raises(KeyboardInterrupt):
        save_fold_model(fold, SYMBOL, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_walk_forward_figures_use_only_rows_predicted_out_of_sample(tables, trained):
    _, rows = trained
    oof = oof_table(rows, SYMBOL)
    report = ensemble_report(oof, tables[2], symbol=SYMBOL)
    walk = report.walk_forward
    wide = probability_matrix(oof, "walk_forward")
    evaluated = wide[wide["split"] > wide["split"].min()]
    assert set(walk.metrics["model"]) == {*TABULAR, *BLEND_MODES, "base_rate"}
    assert (walk.metrics["n"] == len(evaluated)).all()
    assert walk.probabilities.index.equals(evaluated.index)
    assert walk.metrics[["auc_se", "log_loss_se", "brier_se"]].gt(0).all().all()
    assert 0 <= walk.pbo <= 1 and 0 <= walk.deflated_sharpe <= 1
    assert walk.n_trials == len(TABULAR) + len(BLEND_MODES)
    weighted = report.blenders["weighted"].weights_
    assert weighted.min() >= 0 and abs(weighted.sum() - 1) < 1e-9
    stored = report.stored
    assert set(stored["evaluation"]) == {"walk_forward", "purged_kfold_oof"}
    assert (stored["symbol"] == SYMBOL).all()
    assert 0 <= report.diversity.D_av <= 1


def test_a_blend_for_a_split_is_fitted_on_earlier_splits_only(tables, trained):
    """Poisoning the last split's labels changes no blended prediction of earlier splits."""
    from bot4_dagster.ml.evaluation import blended_forward

    _, rows = trained
    wide = probability_matrix(oof_table(rows, SYMBOL), "walk_forward")
    last = wide["split"].max()
    poisoned = wide.copy()
    poisoned.loc[poisoned["split"] == last, "y"] = 1 - poisoned.loc[poisoned["split"] == last, "y"]
    for mode in ("weighted", "stacking", "rank"):
        clean, dirty = (blended_forward(w, TABULAR, mode) for w in (wide, poisoned))
        pd.testing.assert_series_equal(clean, dirty)


def test_unknown_profiles_and_learners_are_named():
    with pytest.raises(ValueError, match="unknown training profile 'fast'; choose one of quick"):
        profile("fast")
    from bot4_dagster.ml.learners import make_learner

    with pytest.raises(ValueError, match="unknown learner 'svm'"):
        make_learner("svm", QUICK)


def test_the_lstm_history_is_recorded_per_epoch(tables, tmp_path, monkeypatch):
    monkeypatch.setenv("BOT4_HOME", str(tmp_path))
    seen = []
    samples = learning_samples(*tables[:3], symbol=SYMBOL)
    job = next(j for j in training_plan(samples, tables[3], (LSTM,), SCHEMES)
               if j["scheme"] == "walk_forward" and j["split"] == 1)
    rows = train_planned(job, samples, symbol=SYMBOL, settings=QUICK,
                         progress=lambda *epoch: seen.append(epoch))
    index = model_index(rows, SYMBOL)
    history = json.loads(index["history"].iat[0])
    assert len(history) == len(seen) >= 1
    attention = np.asarray(json.loads(index["attention"].iat[0]))
    assert attention.shape == (4, QUICK.window, QUICK.window)
    np.testing.assert_allclose(attention.sum(axis=-1), 1, atol=1e-4)

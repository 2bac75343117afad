"""The learners as flat arrays (bot4_dagster.ml.flat_models): the numpy forward pass equals each
fitted learner's ``predict_proba`` on a real problem (S&P 500 daily returns from ``arch.data``:
lagged returns and volatility predicting the sign of the next day), through NaN inputs, sample
weights, stumps and single-leaf trees; the arrays survive a bundle and predict in a process
where torch and scikit-learn cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from arch.data import sp500
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier

from bot4_dagster.ml.bundle import read_bundle, write_bundle
from bot4_dagster.ml.flat_models import FlatModel, flatten, predict_flat
from bot4_dagster.ml.learners import fit_weighted, make_learner, profile
from bot4_dagster.ml.lstm import AttentionLSTM

REPO = Path(__file__).resolve().parents[1]
TRAIN = 3000
EXACT = 1e-12


def _returns() -> np.ndarray:
    close = sp500.load()["Adj Close"].to_numpy(np.float64)
    return 100.0 * np.diff(np.log(close))


@pytest.fixture(scope="module")
def problem() -> dict[str, np.ndarray]:
    """Tabular inputs at t (the last 1, 2 and 5 days' returns, 20-day volatility, |r|) and the
    sign of day t+1; the weights are |r(t+1)| (big days count more)."""
    r = _returns()
    t = np.arange(20, len(r) - 1)
    five = np.convolve(r, np.ones(5), "full")[:len(r)]
    vol = np.array([r[i - 19:i + 1].std() for i in t])
    x = np.column_stack([r[t], r[t - 1], five[t], vol, np.abs(r[t])])
    y = (r[t + 1] > 0).astype(np.int64)
    rng = np.random.default_rng(7)
    holes = x.copy()  # NaN in every feature, so some fall on features fitted without any
    holes[rng.random(x.shape) < 0.15] = np.nan
    return {"x": x[:TRAIN], "y": y[:TRAIN], "w": np.abs(r[t + 1])[:TRAIN],
            "test": x[TRAIN:], "test_nan": holes[TRAIN:]}


def _train_with_gaps(problem) -> np.ndarray:
    """Training inputs with values missing in feature 0 only: features 1-4 meet NaN first at
    prediction, where scikit-learn sends it to the child that had more training samples."""
    x = problem["x"].copy()
    x[np.random.default_rng(3).random(len(x)) < 0.1, 0] = np.nan
    return x


def _agrees(flat: FlatModel, model, x: np.ndarray, tol: float = EXACT) -> np.ndarray:
    ours, theirs = predict_flat(flat, x), model.predict_proba(x)[:, 1]
    assert ours.shape == theirs.shape == (len(x),)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol)
    return ours


def _splits(flat: FlatModel) -> np.ndarray:
    return flat.arrays["is_leaf"] == 0


# --- gradient-boosted trees ------------------------------------------------------------------


def test_boosted_trees_match_sklearn_with_missing_values(problem):
    model = fit_weighted(make_learner("hist_gradient_boosting", profile("quick")),
                         _train_with_gaps(problem), problem["y"], None)
    flat = flatten("hist_gradient_boosting", model)
    assert flat.meta["n_trees"] == len(model._predictors) == 50
    offsets = flat.arrays["tree_offsets"]
    assert offsets[0] == 0 and offsets[-1] == len(flat.arrays["value"])
    assert flat.arrays["baseline"][0] == model._baseline_prediction[0, 0]
    _agrees(flat, model, problem["test"])
    with_nan = _agrees(flat, model, problem["test_nan"])
    # the NaN paths are really taken, both ways, on features fitted with and without NaN
    moves = flat.arrays["missing_go_to_left"][_splits(flat)]
    assert 0 < moves.sum() < moves.size
    assert set(flat.arrays["feature"][_splits(flat)]) >= {0, 1, 2, 3, 4}
    filled = np.nan_to_num(problem["test_nan"], nan=0.0)
    assert (np.abs(with_nan - predict_flat(flat, filled)) > 1e-6).mean() > 0.2
    _agrees(flat, model, _on_thresholds(flat, problem["test"][0]))


def _on_thresholds(flat: FlatModel, row: np.ndarray) -> np.ndarray:
    """Copies of ``row`` with one split's feature set to just below, at, and just above its
    threshold, for every split: a value equal to the threshold goes left."""
    rows = []
    for node in np.flatnonzero(_splits(flat) & np.isfinite(flat.arrays["threshold"])):
        threshold = flat.arrays["threshold"][node]
        for value in (np.nextafter(threshold, -np.inf), threshold,
                      np.nextafter(threshold, np.inf)):
            probe = row.copy()
            probe[flat.arrays["feature"][node]] = value
            rows.append(probe)
    return np.array(rows)


def test_boosted_trees_with_sample_weights(problem):
    model = fit_weighted(make_learner("hist_gradient_boosting", profile("quick")),
                         _train_with_gaps(problem), problem["y"], problem["w"])
    unweighted = HistGradientBoostingClassifier(**model.get_params()).fit(
        _train_with_gaps(problem), problem["y"])
    flat = flatten("hist_gradient_boosting", model)
    ours = _agrees(flat, model, problem["test_nan"])
    assert np.abs(ours - unweighted.predict_proba(problem["test_nan"])[:, 1]).max() > 1e-3


@pytest.mark.parametrize("params, nodes", [
    (dict(max_depth=1), 3),  # stumps: a root split and two leaves
    (dict(min_samples_leaf=2000), 1),  # no split is allowed: every tree is one leaf
], ids=["stumps", "single-leaf"])
def test_boosted_stumps_and_single_leaf_trees(problem, params, nodes):
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0, **params).fit(
        _train_with_gaps(problem), problem["y"])
    flat = flatten("hist_gradient_boosting", model)
    assert set(np.diff(flat.arrays["tree_offsets"])) == {nodes}
    _agrees(flat, model, problem["test_nan"])


def test_boosted_trees_refuse_what_the_flat_form_cannot_hold(problem, monkeypatch):
    x, y = problem["x"][:600], problem["y"][:600]
    three = HistGradientBoostingClassifier(max_iter=3).fit(x, np.digitize(x[:, 0], [-1, 1]))
    with pytest.raises(ValueError, match="binary"):
        flatten("hist_gradient_boosting", three)
    codes = np.column_stack([np.digitize(x[:, 0], [-1, 0, 1]), x[:, 1:]])
    categorical = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]).fit(
        codes, y)
    with pytest.raises(ValueError, match="categorical"):
        flatten("hist_gradient_boosting", categorical)
    binary = HistGradientBoostingClassifier(max_iter=3).fit(x, y)
    with pytest.raises(ValueError, match="must be a ExtraTreesClassifier"):
        flatten("extra_trees", binary)
    import sklearn

    monkeypatch.setattr(sklearn, "__version__", "1.10.0")
    with pytest.raises(ValueError, match=r"scikit-learn 1\.10\.0"):
        flatten("hist_gradient_boosting", binary)


# --- extremely randomised trees --------------------------------------------------------------


def test_extra_trees_match_sklearn(problem):
    model = fit_weighted(make_learner("extra_trees", profile("quick")), problem["x"],
                         problem["y"], problem["w"])
    assert model.min_samples_leaf == 20
    flat = flatten("extra_trees", model)
    assert flat.meta["n_trees"] == 100
    assert ((flat.arrays["value"] >= 0) & (flat.arrays["value"] <= 1)).all()
    _agrees(flat, model, problem["test"])
    # scikit-learn's trees compare float32 inputs: a value next to a threshold decides
    # differently unless the inputs are rounded the same way
    _agrees(flat, model, _on_thresholds(flat, problem["test"][0]))


def test_extra_trees_with_missing_values_and_small_trees(problem):
    model = ExtraTreesClassifier(n_estimators=30, min_samples_leaf=50, random_state=1).fit(
        _train_with_gaps(problem), problem["y"], sample_weight=problem["w"])
    flat = flatten("extra_trees", model)
    _agrees(flat, model, problem["test_nan"])
    stumps = ExtraTreesClassifier(n_estimators=10, max_depth=1, random_state=1).fit(
        problem["x"], problem["y"])
    _agrees(flatten("extra_trees", stumps), stumps, problem["test"])
    leaves = ExtraTreesClassifier(n_estimators=5, min_samples_leaf=TRAIN, random_state=1).fit(
        problem["x"], problem["y"])
    flat = flatten("extra_trees", leaves)
    assert set(np.diff(flat.arrays["tree_offsets"])) == {1}
    _agrees(flat, leaves, problem["test"])


def test_corrupt_tree_arrays_are_refused_not_looped_on(problem):
    model = HistGradientBoostingClassifier(max_iter=2, max_depth=2).fit(problem["x"],
                                                                        problem["y"])
    flat = flatten("hist_gradient_boosting", model)
    left = flat.arrays["left"].copy()
    left[0] = 0  # the root's left child is the root: an endless walk
    with pytest.raises(ValueError, match="left child lies outside its tree or before"):
        predict_flat(FlatModel(flat.name, {**flat.arrays, "left": left}, flat.meta),
                     problem["test"])
    feature = flat.arrays["feature"].copy()
    feature[0] = 99
    with pytest.raises(ValueError, match="feature outside"):
        predict_flat(FlatModel(flat.name, {**flat.arrays, "feature": feature}, flat.meta),
                     problem["test"])
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        predict_flat(flat, problem["test"][:, :4])


# --- logistic regression ---------------------------------------------------------------------


def test_logistic_pipeline_matches_sklearn(problem):
    model = fit_weighted(make_learner("logistic", profile("quick")), problem["x"],
                         problem["y"], problem["w"])
    flat = flatten("logistic", model)
    np.testing.assert_array_equal(flat.arrays["mean"], model.named_steps["scale"].mean_)
    np.testing.assert_array_equal(flat.arrays["coef"], model.named_steps["model"].coef_)
    _agrees(flat, model, problem["test"])
    with pytest.raises(ValueError, match="non-finite"):
        predict_flat(flat, problem["test_nan"])


# --- attention LSTM --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def windows() -> dict[str, np.ndarray]:
    """Windows of 8 days (standardised return and |return|), label: the next day is up."""
    r = _returns()[-1400:]
    feats = np.column_stack([r, np.abs(r)])
    feats = (feats - feats.mean(axis=0)) / feats.std(axis=0)
    ends = np.arange(8, len(r) - 1)
    x = np.stack([feats[e - 8:e] for e in ends]).astype(np.float32)
    return {"x": x[:1000], "y": (r[ends[:1000]] > 0).astype(np.int64), "test": x[1000:]}


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_lstm_forward_matches_torch(windows, pooling):
    model = AttentionLSTM(hidden=8, heads=2, pooling=pooling, epochs=3, batch_size=128,
                          threads=1, seed=1).fit(windows["x"], windows["y"])
    flat = flatten("attention_lstm", model)
    assert flat.meta == {"learner": "attention_lstm", "n_features": 2, "window": 8,
                         "hidden": 8, "heads": 2, "pooling": pooling, "layer_norm_eps": 1e-5}
    assert all(a.dtype == np.float32 for a in flat.arrays.values())
    assert ("score.weight" in flat.arrays) == (pooling == "attention")
    p = _agrees(flat, model, windows["test"], tol=1e-5)
    assert p.std() > 1e-4  # the windows are told apart, so the comparison means something
    with pytest.raises(ValueError, match=r"windows \(n, 8, 2\)"):
        predict_flat(flat, windows["test"][:, 1:])


def test_unknown_learner_is_refused():
    with pytest.raises(ValueError, match="unknown learner 'svm'"):
        flatten("svm", object())
    with pytest.raises(ValueError, match="unknown learner 'svm'"):
        predict_flat(FlatModel("svm", {}, {}), np.zeros((1, 1)))


# --- through a bundle, without torch or scikit-learn ------------------------------------------


def test_flat_models_predict_from_a_bundle_without_torch_or_sklearn(problem, windows, tmp_path):
    """Every learner flattened into one bundle; a fresh interpreter in which importing torch,
    sklearn or scipy fails maps it and reproduces the predictions."""
    models = {
        "hist_gradient_boosting": fit_weighted(make_learner("hist_gradient_boosting",
                                                            profile("quick")),
                                               _train_with_gaps(problem), problem["y"], None),
        "extra_trees": ExtraTreesClassifier(n_estimators=10, min_samples_leaf=20,
                                            random_state=0).fit(problem["x"], problem["y"]),
        "logistic": fit_weighted(make_learner("logistic", profile("quick")), problem["x"],
                                 problem["y"], problem["w"]),
        "attention_lstm": AttentionLSTM(hidden=8, heads=2, epochs=1, threads=1).fit(
            windows["x"], windows["y"]),
    }
    flats = {name: flatten(name, model) for name, model in models.items()}
    arrays = {k: v for flat in flats.values() for k, v in flat.named_arrays().items()}
    manifest = {
        "features": ["r1", "r2", "r5", "vol20", "abs_r1"], "window": 8,
        "learners": list(flats), "blend": "mean", "regimes": {"low": 0.5, "high": 1.5},
        "calibrator": None, "models": {name: flat.meta for name, flat in flats.items()},
        "lineage": {"git_commit": "0" * 40, "run_id": "test", "partitions": ["SPX"],
                    "data_versions": {}, "train_window": [0, TRAIN], "profile": "quick",
                    "parent": None}}
    stored = write_bundle(arrays, manifest, tmp_path / "candidates")
    inputs = {name: windows["test"][:100] if name == "attention_lstm" else
              np.nan_to_num(problem["test_nan"][:200]) if name == "logistic" else
              problem["test_nan"][:200] for name in models}
    for name, x in inputs.items():
        np.save(tmp_path / f"{name}.npy", x)
    script = textwrap.dedent(f"""
        import json, sys
        for blocked in ("torch", "sklearn", "scipy"):
            sys.modules[blocked] = None  # any import of them now raises ImportError
        import numpy as np
        from bot4_dagster.ml.bundle import read_bundle
        from bot4_dagster.ml.flat_models import FlatModel, predict_flat
        bundle = read_bundle({str(stored.path)!r})
        out = {{}}
        for name, meta in bundle.manifest["models"].items():
            flat = FlatModel.from_named(name, dict(bundle.arrays), meta)
            out[name] = predict_flat(flat, np.load({str(tmp_path)!r} + f"/{{name}}.npy")).tolist()
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert set(got) == set(models)
    for name, model in models.items():
        tol = 1e-5 if name == "attention_lstm" else EXACT
        np.testing.assert_allclose(got[name], model.predict_proba(inputs[name])[:, 1], rtol=0,
                                   atol=tol, err_msg=name)
    # in this process too, the mapped (read-only) arrays predict exactly like the originals
    bundle = read_bundle(stored.path)
    hgb = FlatModel.from_named("hist_gradient_boosting", dict(bundle.arrays),
                               bundle.manifest["models"]["hist_gradient_boosting"])
    assert not hgb.arrays["threshold"].flags.writeable
    x = inputs["hist_gradient_boosting"]
    np.testing.assert_array_equal(predict_flat(hgb, x),
                                  predict_flat(flats["hist_gradient_boosting"], x))


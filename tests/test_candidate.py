"""The model candidate on real FTX minutes: every learner refitted on all samples and stored as
one bundle that predicts, from its arrays alone, what the training objects predict; the check
that proves it (and fails when any part is wrong); the index of stored candidates."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from model_tables import SYMBOL, ftx_candidate

from bot4_dagster.ml.bundle import MANIFEST, WEIGHTS, read_bundle, write_bundle
from bot4_dagster.ml.bundle_model import BundleModel, selftest
from bot4_dagster.ml.candidate import candidate_index, latest_candidate
from bot4_dagster.ml.candidate_check import check_candidate, check_newest
from bot4_dagster.ml.learners import LEARNERS, LSTM, PROFILES
from bot4_dagster.ml.oof import learner_inputs
from bot4_dagster.provenance import git_commit

QUICK = PROFILES["quick"]


@pytest.fixture(scope="module")
def built():
    """The four learners' out-of-fold predictions on 4,000 real minutes, and the candidate."""
    return ftx_candidate(4000)


def _check(built, path):
    return check_candidate(path, built["samples"], built["oof"], built["folds"], symbol=SYMBOL)


def test_the_bundle_predicts_what_the_training_objects_predict_on_every_sample(built):
    candidate, samples = built["candidate"], built["samples"]
    model = BundleModel(read_bundle(built["stored"].path))
    assert model.learners == tuple(sorted(LEARNERS))
    rows = np.arange(len(samples))
    inputs = _final_inputs(samples)
    P = model.learner_probabilities(inputs.tabular(samples, rows),
                                    inputs.windows(samples, rows, QUICK.window))
    for k, name in enumerate(model.learners):
        expected = candidate.models[name].predict_proba(
            learner_inputs(samples, inputs, rows, name, QUICK))[:, 1]
        np.testing.assert_allclose(P[:, k], expected, rtol=0,
                                   atol=1e-5 if name == LSTM else 1e-12, err_msg=name)


def _final_inputs(samples):
    from bot4_dagster.ml.dataset import FoldInputs

    return FoldInputs.fit(samples, np.arange(len(samples)), symbol=SYMBOL)


def test_the_check_passes_on_every_comparison(built):
    result = _check(built, built["stored"].path)
    assert result.passed and result.problem is None
    table = result.table()
    assert table["passed"].all() and len(table) == 2 * len(LEARNERS) + 9
    assert set(table.loc[table["comparison"].str.contains("out-of-fold|serving"),
                         "rows"]) == {256}
    lstm = table[table["comparison"] == f"learner {LSTM}"].iloc[0]
    assert 0 < lstm["max_abs_error"] <= 1e-5  # float32 network vs its float64 reference


def _rewritten(built, tmp_path, change):
    """A valid bundle (every sha256 consistent) whose arrays ``change`` has altered."""
    bundle = read_bundle(built["stored"].path)
    arrays = {name: np.array(value) for name, value in bundle.arrays.items()}
    change(arrays)
    manifest = {k: v for k, v in bundle.manifest.items()
                if k not in ("format_version", "arrays", "files")}
    return write_bundle(arrays, manifest, tmp_path).path


def _shift(name, by):
    def change(arrays):
        arrays[name] = arrays[name] + by
    return change


CALIBRATED_OOF = "calibrated out-of-fold probabilities"


@pytest.mark.parametrize(("array", "by", "failing", "champion_refuses"), [
    ("calibrator/global/y", 0.003, {"calibration", CALIBRATED_OOF}, True),
    ("blend/weights", np.array([0.02, -0.02, 0.0, 0.0]),
     {"blend", "blend of out-of-fold probabilities", CALIBRATED_OOF,
      "serving: calibrated ensemble"}, False),
    ("inputs/mean", 0.01, {"inputs at t0 (tabular)", "input windows"}, False),
    ("logistic/intercept", 0.05, {"learner logistic"}, True),
    ("hist_gradient_boosting/baseline", 0.05, {"learner hist_gradient_boosting"}, True),
    ("attention_lstm/head.bias", np.float32(0.05),
     {"learner attention_lstm", "serving: learner attention_lstm"}, False),
    ("serving/attention_lstm/head_b", np.float32(0.05), set(), True),
])
def test_the_check_fails_where_the_bundle_is_wrong(built, tmp_path, array, by, failing,
                                                   champion_refuses):
    """Each array shifted in a valid bundle (sha256s consistent): exactly the comparisons that
    read it fail, and the champion refuses at load when its own self-test reads it."""
    result = _check(built, _rewritten(built, tmp_path, _shift(array, by)))
    table = result.table()
    assert not result.passed
    assert set(table.loc[~table["passed"], "comparison"]) == failing
    assert (result.problem is not None) == champion_refuses
    if champion_refuses:
        assert "serving champion refused it" in result.problem
        assert "self-test failed" in result.problem


def test_the_check_refuses_a_tampered_bundle_before_comparing(built, tmp_path):
    import shutil

    copy = tmp_path / built["stored"].id
    shutil.copytree(built["stored"].path, copy)
    data = bytearray((copy / WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / WEIGHTS).write_bytes(bytes(data))
    result = _check(built, copy)
    assert not result.passed and result.agreements == []
    assert WEIGHTS in result.problem and "sha256" in result.problem


def test_the_check_names_a_bundle_trained_on_other_data(built, tmp_path):
    path = _rewritten(built, tmp_path, _shift("selftest/t0", 17))
    result = _check(built, path)
    assert not result.passed and "trained on other data" in result.problem


def test_no_pickle_and_the_manifest_says_what_serving_needs(built):
    path = built["stored"].path
    assert sorted(p.name for p in path.iterdir()) == [MANIFEST, WEIGHTS]
    assert not (path / WEIGHTS).read_bytes().startswith(b"\x80")  # a pickle's first byte
    manifest = json.loads((path / MANIFEST).read_text())
    assert [e["name"] for e in manifest["learners"]] == sorted(LEARNERS)
    assert manifest["window"] == QUICK.window and len(manifest["features"]) > 10
    assert manifest["blend"]["mode"] == "weighted"
    assert sum(manifest["blend"]["weights"].values()) == pytest.approx(1.0)
    assert set(manifest["calibrator"]["served_by"]) == {"undefined", "low", "normal", "high",
                                                       "crisis"}
    lineage = manifest["lineage"]
    assert lineage["run_id"] == "run-1" and lineage["data_versions"] == {"ml/labels": "abc"}
    assert lineage["git_commit"] == git_commit() and lineage["profile"] == "quick"
    assert lineage["train_window"]["samples"] == len(built["samples"])
    assert lineage["parent"] is None
    for name in ("inputs/median", "inputs/mean", "inputs/std", "garch/params", "garch/scale",
                 "regimes/thresholds", "blend/weights", "calibrator/global/x",
                 "hist_gradient_boosting/missing_go_to_left", "extra_trees/tree_offsets",
                 "logistic/coef", "attention_lstm/lstm.weight_ih_l0"):
        assert name in manifest["arrays"], name


def test_the_bundle_serves_in_a_process_without_torch_sklearn_or_scipy(built):
    script = textwrap.dedent(f"""
        import sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "sklearn", "scipy"):
                    raise ImportError(f"{{name}} is not allowed on the serving path")

        sys.meta_path.insert(0, Refuse())
        from bot4_dagster.ml.bundle import read_bundle
        from bot4_dagster.ml.bundle_model import BundleModel, selftest

        results = selftest(BundleModel(read_bundle({str(built["stored"].path)!r})))
        assert all(r.passed for r in results), results
        print(len(results), sorted(m for m in ("torch", "sklearn", "scipy") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(LEARNERS) + 2), "[]"]


def test_the_selftest_is_what_the_training_objects_predicted(built):
    candidate = built["candidate"]
    a = candidate.arrays
    assert a["selftest/learner_proba"].shape == (64, len(LEARNERS))
    assert all(r.passed for r in selftest(BundleModel(read_bundle(built["stored"].path))))
    assert ((a["selftest/calibrated"] >= 0.01) & (a["selftest/calibrated"] <= 0.99)).all()


def test_the_index_lists_the_symbol_s_bundles_oldest_first_with_their_parents(built, tmp_path):
    samples, oof, folds = built["samples"], built["oof"], built["folds"]
    first = built["candidate"].write(tmp_path)
    assert latest_candidate(SYMBOL, tmp_path) == first.id
    other = dict(built["candidate"].manifest, symbol="ETH-PERP")
    write_bundle(built["candidate"].arrays, other, tmp_path)
    (tmp_path / ".writing-abc").mkdir()  # a killed write's leftovers
    fake = tmp_path / "0123456789abcdef"
    fake.mkdir()
    (fake / MANIFEST).write_text((first.path / MANIFEST).read_text())  # not its address
    child_manifest = dict(built["candidate"].manifest, created_at="2099-01-01T00:00:00+00:00")
    child_manifest["lineage"] = dict(child_manifest["lineage"],
                                     parent=latest_candidate(SYMBOL, tmp_path))
    child = write_bundle(built["candidate"].arrays, child_manifest, tmp_path)
    index = candidate_index(SYMBOL, tmp_path)
    assert list(index["id"]) == [first.id, child.id]
    assert index["parent"].iloc[1] == first.id and pd.isna(index["parent"].iloc[0])
    assert (index["sha256"].str[:16] == index["id"]).all()
    assert index["size"].iloc[0] == first.size
    assert check_newest(index, samples, oof, folds, symbol=SYMBOL).bundle_id == child.id
    assert candidate_index(SYMBOL, tmp_path / "nothing").empty


def test_a_candidate_without_all_four_learners_is_refused_by_name(built):
    from bot4_dagster.ml.candidate import build_candidate

    oof = built["oof"][built["oof"]["learner"] != LSTM]
    with pytest.raises(ValueError, match=f"missing: {LSTM}"):
        build_candidate(built["samples"], oof, built["folds"], symbol=SYMBOL, settings=QUICK)

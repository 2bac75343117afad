"""Serving benchmarks: the whole champion (four learners, blend, per-regime calibration) from a
memory-mapped bundle on numba kernels, against the training objects (torch eager on one thread
+ scikit-learn ``predict_proba``), TorchScript (trace + freeze) and ONNX Runtime (the LSTM through
``torch.onnx``, the scikit-learn learners through skl2onnx), all in this process.

Two bundles: the default (``quick`` profile, trained here on the first 10,000 FTX minutes) and
the same with a larger LSTM (window 128, hidden 128; its weights are a fresh initialisation,
which costs what trained weights cost). Every reference runs the same work as the champion: raw
window in, inputs standardised, four learners, the weighted blend and the isotonic map.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from bot4_dagster.ml.bundle import read_bundle, write_bundle
from bot4_dagster.perf import Report

from ._data import FTX_BARS

GROUP = "serving"
SYMBOL = "BTC-PERP"
N_BARS = 10_000
LARGE = {"window": 128, "hidden": 128}
BATCH = 256
TABULAR = ("extra_trees", "hist_gradient_boosting", "logistic")


@cache
def _built() -> dict:
    """The default candidate of the first ``N_BARS`` FTX minutes, its training objects and raw
    windows of its samples; and the large-LSTM variant of the same bundle."""
    home = Path(tempfile.mkdtemp(prefix="bot4-bench-serving-"))
    before = os.environ.get("BOT4_HOME")
    os.environ["BOT4_HOME"] = str(home)  # the setup's fold models go here, not into the user's
    try:
        return _train(home)
    finally:
        if before is None:
            os.environ.pop("BOT4_HOME", None)
        else:
            os.environ["BOT4_HOME"] = before


def _train(home: Path) -> dict:
    from bot4_dagster.features.table import feature_table
    from bot4_dagster.ml.candidate import build_candidate, fit_ensemble
    from bot4_dagster.ml.dataset import FoldInputs, learning_samples
    from bot4_dagster.ml.folds import fold_splitters, folds_table
    from bot4_dagster.ml.labels import label_table
    from bot4_dagster.ml.learners import LEARNERS, PROFILES
    from bot4_dagster.ml.oof import oof_table
    from bot4_dagster.ml.training import train_planned, training_plan
    from bot4_dagster.ml.volatility import estimate_volatility

    raw = pd.read_csv(FTX_BARS).iloc[:N_BARS]
    bars = raw[["open", "high", "low", "close", "volume"]].copy()
    bars.insert(0, "ts", pd.to_datetime(raw["timestamp"], utc=True))
    features, _ = feature_table(bars, symbol=SYMBOL, volume_unit="quote")
    volatility = estimate_volatility(bars.set_index("ts")["close"]).table(SYMBOL)
    labels = label_table(bars, volatility, symbol=SYMBOL, upper=2.0, lower=2.0, horizon=10)
    folds = folds_table(labels, fold_splitters(labels, symbol=SYMBOL), symbol=SYMBOL)
    samples = learning_samples(bars, features, labels, symbol=SYMBOL)
    quick = PROFILES["quick"]
    jobs = training_plan(samples, folds, LEARNERS, ("purged_kfold",))
    oof = oof_table(pd.concat([train_planned(job, samples, symbol=SYMBOL, settings=quick)
                               for job in jobs], ignore_index=True), SYMBOL)
    candidate = build_candidate(  # lineage as a Dagster run records it, so it can be registered
        samples, oof, folds, symbol=SYMBOL, settings=quick, run_id="benchmark",
        data_versions={"market/bars": f"first {N_BARS:,} FTX minutes of the shared data"})
    stored = candidate.write(home / "candidates")
    inputs = FoldInputs.fit(samples, np.arange(len(samples)), symbol=SYMBOL)
    rows = np.linspace(quick.window, len(samples) - 1, 512).astype(np.int64)
    large_net, large_path = _large_bundle(stored.path, home, len(inputs.columns))
    return dict(home=home, samples=samples, oof=oof, folds=folds, candidate=candidate,
                path=stored.path, inputs=inputs, large_net=large_net, large_path=large_path,
                ensemble=fit_ensemble(oof, folds, symbol=SYMBOL),
                raw=inputs.raw_windows(samples, rows, quick.window),
                raw_large=inputs.raw_windows(samples, rows, LARGE["window"]))


def _large_bundle(path: Path, home: Path, n_features: int):
    """The default bundle with a freshly initialised LSTM of ``LARGE`` size in place of its own
    (flat arrays and serving layout; the self-test rows stay the default LSTM's, so it is loaded
    without the self-test)."""
    import torch

    from bot4_dagster.ml.lstm import AttentionNet
    from bot4_dagster.serving.layout import LSTM_PREFIX, lstm_layout

    torch.manual_seed(0)
    net = AttentionNet(n_features, hidden=LARGE["hidden"], heads=4).eval()
    state = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    bundle = read_bundle(path)
    arrays = {k: np.array(v) for k, v in bundle.arrays.items()
              if not k.startswith(("attention_lstm/", LSTM_PREFIX))}
    arrays |= {f"attention_lstm/{k}": v for k, v in state.items()} | lstm_layout(state, 4)
    manifest = {k: v for k, v in bundle.manifest.items()
                if k not in ("format_version", "arrays", "files")}
    manifest["window"] = LARGE["window"]
    for entry in manifest["learners"]:
        if entry["name"] == "attention_lstm":
            entry["meta"] = dict(entry["meta"], window=LARGE["window"], hidden=LARGE["hidden"])
    return net, write_bundle(arrays, manifest, home / "large").path


# --- the references: the same work, by the training objects, TorchScript and ONNX Runtime ------


class _Pipeline:
    """Raw window → standardised inputs → four learners → weighted blend → isotonic map, with
    ``lstm(window32 (n, L, F))`` and ``tabular[name](rows (n, F))`` returning P(class 1)."""

    def __init__(self, inputs, blender, calibrator, lstm, tabular):
        self.inputs, self.blender, self.calibrator = inputs, blender, calibrator
        self.lstm, self.tabular = lstm, tabular
        self.sigma = list(inputs.columns).index("garch_sigma")

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        filled = np.where(np.isfinite(raw), raw, self.inputs.median)
        std = (filled - self.inputs.mean) / self.inputs.std
        rows = std[:, -1]
        P = np.column_stack([self.lstm(std.astype(np.float32))]
                            + [self.tabular[name](rows) for name in TABULAR])
        regime = self.inputs.regimes.codes(raw[:, -1, self.sigma])
        return self.calibrator.predict(self.blender.blend(P), regime)


def _sklearn(models: dict) -> dict:
    return {name: (lambda rows, m=models[name]: m.predict_proba(rows)[:, 1]) for name in TABULAR}


def _torch_eager(net):
    import torch

    torch.set_num_threads(1)

    def run(window32: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.sigmoid(net.logit(torch.from_numpy(window32))).numpy()
    return run


def _torchscript(net, example: np.ndarray):
    import torch

    torch.set_num_threads(1)

    class Probability(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.sigmoid(self.inner.logit(x))

    with torch.inference_mode():
        traced = torch.jit.freeze(torch.jit.trace(Probability(net).eval(),
                                                  torch.from_numpy(example)))

    def run(window32: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return traced(torch.from_numpy(window32)).numpy()
    return run


def _onnx_session(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _onnx_lstm(net, example: np.ndarray):
    import io

    import torch

    class Probability(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.sigmoid(self.inner.logit(x))

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the exporter's note on LSTM batch sizes: h0/c0 are zeros
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(Probability(net).eval(), (torch.from_numpy(example),), buffer,
                          input_names=["x"], output_names=["p"], dynamo=False,
                          opset_version=17, dynamic_axes={"x": {0: "batch"}, "p": {0: "batch"}})
    session = _onnx_session(buffer.getvalue())
    return lambda window32: session.run(None, {"x": window32})[0]


def _onnx_tabular(models: dict, n_features: int) -> dict:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    out = {}
    for name in TABULAR:
        onx = convert_sklearn(models[name], initial_types=[("x", FloatTensorType([None,
                                                                                  n_features]))],
                              options={id(models[name]): {"zipmap": False}}, target_opset=17)
        session = _onnx_session(onx.SerializeToString())
        out[name] = (lambda rows, s=session: s.run(None, {"x": rows.astype(np.float32)})[1][:, 1])
    return out


# --- benchmarks -----------------------------------------------------------------------------


def _references(built: dict, net, example: np.ndarray) -> dict:
    """The three references, each a ``_Pipeline`` with the candidate's own blender and
    calibrator (refitted as the candidate fits them)."""
    models = built["candidate"].models
    ensemble = built["ensemble"]

    def pipe(lstm, tabular) -> _Pipeline:
        return _Pipeline(built["inputs"], ensemble.blender, ensemble.calibrator, lstm, tabular)

    return {
        "torch eager + scikit-learn": pipe(_torch_eager(net), _sklearn(models)),
        "TorchScript + scikit-learn": pipe(_torchscript(net, example), _sklearn(models)),
        "ONNX Runtime": pipe(_onnx_lstm(net, example),
                             _onnx_tabular(models, len(built["inputs"].columns))),
    }


GOALS = {"torch eager + scikit-learn": ">= 3x", "ONNX Runtime": ">= 1.5x",
         "TorchScript + scikit-learn": "p99 <= 250 µs"}


def _bench_one(report: Report, label: str, champion, raw: np.ndarray, references: dict,
               goal_override: dict | None = None) -> None:
    windows = [raw[i] for i in range(len(raw))]
    state = {"i": 0}

    def ours():
        state["i"] = (state["i"] + 1) % len(windows)
        return champion.predict(windows[state["i"]])

    for name, reference in references.items():
        ref_state = {"i": 0}

        def ref(reference=reference, ref_state=ref_state):
            ref_state["i"] = (ref_state["i"] + 1) % len(windows)
            return reference(windows[ref_state["i"]][None])

        calibrated, _, _ = champion.predict_many(raw[:64])
        gap = float(np.abs(calibrated - reference(raw[:64])).max())
        goal = (goal_override or GOALS)[name]
        report.compare(f"{label}_batch1_vs_{_slug(name)}", ours, ref, reference_name=name,
                       group=GROUP, items=1, unit="1 window", goal=goal,
                       notes=f"raw window {raw.shape[1]}x{raw.shape[2]} in, calibrated "
                             f"probability out, cycling {len(windows)} real FTX windows; max "
                             f"|Δ| of the calibrated probability vs the reference on 64 windows "
                             f"{gap:.1e}")


def _slug(name: str) -> str:
    return {"torch eager + scikit-learn": "torch_sklearn", "TorchScript + scikit-learn":
            "torchscript", "ONNX Runtime": "onnxruntime"}[name]


def _bench_batch(report: Report, label: str, champion, raw: np.ndarray, reference) -> None:
    batch = raw[:BATCH] if len(raw) >= BATCH else np.resize(raw, (BATCH, *raw.shape[1:]))
    report.compare(f"{label}_batch{BATCH}_vs_torch_sklearn", lambda: champion.predict_many(batch),
                   lambda: reference(batch), reference_name="torch eager + scikit-learn",
                   group=GROUP, items=BATCH, unit=f"{BATCH} windows", goal=">= 1x",
                   notes="throughput: the champion's batch path against the training objects' "
                         "batched predict_proba")


def _bench_load_and_swap(report: Report, path: Path) -> None:
    from bot4_dagster.serving.champion import Champion, ChampionSlot

    Champion.load(path)  # kernels compiled and cached
    size = sum(p.stat().st_size for p in Path(path).iterdir())
    rss = _resident_memory(path)
    report.measure("default_cold_load", lambda: Champion.load(path), group=GROUP,
                   unit="bundle", items=1, goal="p50 <= 5 ms",
                   notes=f"read_bundle (manifest, sha256 of {size / 1e6:.2f} MB, safetensors "
                         "header) + map + the self-test's 65 predictions through the cached "
                         f"kernels; resident memory of a process serving it {rss['champion']} "
                         f"MB, of one holding the training objects (torch + scikit-learn) "
                         f"{rss['training']} MB")
    slot = ChampionSlot(Champion.load(path))
    other = Champion.load(path)
    report.measure("swap", lambda: slot.swap(other), group=GROUP, unit="swap", items=1,
                   goal="p99 <= 10 µs", notes="ChampionSlot.swap: one reference assignment")


_RSS = """
import json, sys, psutil
import numpy as np
if sys.argv[1] == "champion":
    from bot4_dagster.serving.champion import Champion
    champion = Champion.load(sys.argv[2])
    champion.predict(np.load(sys.argv[3]))
else:
    import pathlib
    import torch, sklearn  # noqa: F401
    from bot4_dagster.ml.artifacts import StoredModel, load_fold_model
    for entry in json.loads(sys.argv[4]):
        load_fold_model(StoredModel(**{**entry, "path": pathlib.Path(entry["path"])}))
print(psutil.Process().memory_info().rss / 1e6)
"""


def _resident_memory(path: Path) -> dict[str, str]:
    """RSS of a fresh process serving the champion, and of one that loaded the four training
    objects (stored as fold models) instead."""
    from bot4_dagster.ml.artifacts import save_fold_model
    from bot4_dagster.ml.oof import FoldModel

    built = _built()
    window = built["home"] / "window.npy"
    np.save(window, built["raw"][0])
    stored = []
    for name, model in built["candidate"].models.items():
        fold = FoldModel(name, "candidate", 0, model, built["inputs"], np.arange(1),
                         np.zeros(1), len(built["samples"]), 0.0)
        s = save_fold_model(fold, SYMBOL, built["home"] / "training_objects")
        stored.append({**dataclasses.asdict(s), "path": str(s.path)})
    out = {}
    for kind in ("champion", "training"):
        done = subprocess.run([sys.executable, "-c", _RSS, kind, str(path), str(window),
                               json.dumps(stored)], capture_output=True, text=True, timeout=300,
                              check=True)
        out[kind] = f"{float(done.stdout.strip()):.0f}"
    return out


def run(report: Report) -> None:
    if not any(report.wants(name, GROUP) for name in
               ("default", "large", "cold_load", "swap")):
        return
    from bot4_dagster.serving.champion import Champion

    built = _built()
    if report.wants("default", GROUP):
        champion = Champion.load(built["path"])
        net = built["candidate"].models["attention_lstm"].net_.eval()
        refs = _references(built, net, built["raw"][:1].astype(np.float32))
        _bench_one(report, "default", champion, built["raw"], refs)
        _bench_batch(report, "default", champion, built["raw"],
                     refs["torch eager + scikit-learn"])
    if report.wants("large", GROUP):
        large = Champion.load(built["large_path"], selftest=False)
        refs = _references(built, built["large_net"],
                           built["raw_large"][:1].astype(np.float32))
        _bench_one(report, "large_lstm", large, built["raw_large"], refs,
                   GOALS | {"TorchScript + scikit-learn": ">= 1x"})
        _bench_batch(report, "large_lstm", large, built["raw_large"],
                     refs["torch eager + scikit-learn"])
    if report.wants("cold_load", GROUP) or report.wants("swap", GROUP):
        _bench_load_and_swap(report, built["path"])

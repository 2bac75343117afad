"""The model candidate of one symbol: every base learner refitted on all samples, with the blend
and the per-regime calibrator of the calibration stage, stored as one bundle (:mod:`.bundle`)
that the serving side maps without torch or scikit-learn.

Arrays of ``weights.safetensors`` (names and order in the manifest):

- ``<learner>/...``: each learner's flat arrays (:mod:`.flat_models`);
- ``inputs/median``, ``inputs/mean``, ``inputs/std``: imputation and standardisation per
  feature, in the order of ``features``;
- ``garch/params`` (names in ``regimes.garch.params``) and ``garch/scale``: the GARCH(1,1) whose
  volatility is an input and sets the regime; ``regimes/thresholds``: the upper volatility edges
  of low, normal and high (crisis is above the last);
- ``blend/weights``: the ``weighted`` blend, one weight per learner in the order of ``learners``;
- ``calibrator/<map>/x`` and ``/y``: the isotonic knots of the global map and of every regime
  with a map of its own (``calibrator.served_by`` says which map serves which regime);
- ``serving/*``: the same LSTM and the parameters of every blend mode, laid out for the serving
  kernels (:mod:`bot4_dagster.serving.layout`);
- ``selftest/*``: ``SELFTEST_ROWS`` samples' inputs and what the training objects predicted for
  them, so whatever loads the bundle can prove it computes what was trained.

Lineage in the manifest: git commit (and whether the checkout was dirty), Dagster run id, the
partition, the data versions of the inputs, the train window, the training profile and the
parent (the symbol's previous candidate).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..provenance import git_commit, git_dirty
from ..serving.layout import blend_layout, lstm_layout
from ..settings import candidates_dir
from .bundle import StoredBundle, read_manifest, write_bundle
from .calibration_report import DEFAULT_BLEND, calibration_report
from .dataset import RETURN_BARS, FoldInputs, Samples
from .ensemble import BLEND_MODES, StackingEnsemble
from .flat_models import flatten
from .learners import LEARNERS, LSTM, Profile
from .oof import probability_matrix, train_fold
from .regime_calibration import GLOBAL, RegimeCalibrator, map_name
from .regimes import REGIMES

SELFTEST_ROWS = 64
COLUMNS = ("symbol", "id", "created_at", "profile", "blend", "learners", "features", "window",
           "samples", "train_start", "train_end", "git_commit", "run_id", "parent", "sha256",
           "size", "path")  # ml.model_candidates


@dataclass(frozen=True)
class Candidate:
    """A candidate before it is stored: the bundle's arrays and manifest, and the fitted
    training objects they were taken from."""

    symbol: str
    arrays: dict[str, np.ndarray]
    manifest: dict[str, Any]
    models: dict[str, Any]  # learner -> fitted model
    seconds: dict[str, float]  # learner -> fitting seconds

    def write(self, root: Path | None = None) -> StoredBundle:
        return write_bundle(self.arrays, self.manifest, root)

    def tables(self) -> dict[str, pd.DataFrame]:
        """What a user reads of a candidate: fitting time per learner, the blend's weights, and
        which calibration map serves each regime."""
        calibrator = self.manifest["calibrator"]
        weights = self.manifest["blend"]["weights"]
        return {
            "fit_seconds": pd.DataFrame({"learner": list(self.seconds),
                                         "seconds": list(self.seconds.values())}),
            "blend_weights": pd.DataFrame({"learner": list(weights),
                                           "weight": list(weights.values())}),
            "calibration_maps": pd.DataFrame(
                [{"regime": regime, "served by": served,
                  "fit rows": calibrator["fit_rows"][regime],
                  "knots": calibrator["maps"][served]["knots"]}
                 for regime, served in calibrator["served_by"].items()]),
        }


def build_candidate(samples: Samples, oof: pd.DataFrame, folds: pd.DataFrame, *, symbol: str,
                    settings: Profile, seed: int = 0, run_id: str | None = None,
                    data_versions: Mapping[str, str | None] | None = None,
                    parent: str | None = None, progress=None,
                    log: Callable[[str], None] | None = None) -> Candidate:
    """Fit every learner on all of ``samples`` and assemble the candidate's bundle.

    The blend weights are fitted on every purged K-fold out-of-fold row (the stacking stage's
    ``weighted`` blender), the calibrator on the nested out-of-fold blend (the calibration
    stage's), so neither saw a probability from a model trained on the row it fits.
    """
    say = log or (lambda message: None)
    ensemble_fit = fit_ensemble(oof, folds, symbol=symbol)
    learners, blender, calibrator = (ensemble_fit.learners, ensemble_fit.blender,
                                     ensemble_fit.calibrator)
    missing = [name for name in LEARNERS if name not in learners]
    if missing:
        raise ValueError(f"a model candidate of {symbol} needs the purged K-fold out-of-fold "
                         f"predictions of all of {', '.join(LEARNERS)} (the serving champion "
                         f"runs the four); missing: {', '.join(missing)}")
    every = np.arange(len(samples))
    inputs = FoldInputs.fit(samples, every, symbol=symbol)
    selftest = selftest_rows(len(samples))
    models, seconds, predicted = {}, {}, []
    for name in learners:
        say(f"fitting {name} on all {len(samples):,} samples")
        fold = train_fold(samples, every, selftest, name, settings, scheme="candidate",
                          seed=seed, progress=progress, symbol=symbol, inputs=inputs)
        models[name], seconds[name] = fold.model, fold.seconds
        predicted.append(fold.proba)
        say(f"{name} fitted in {fold.seconds:.1f} s")
    flat = [flatten(name, models[name]) for name in learners]
    P = np.column_stack(predicted)
    regime = inputs.regime_codes(samples, selftest)
    ensemble = blender.blend(P)
    arrays: dict[str, np.ndarray] = {}
    for model in flat:
        arrays |= model.named_arrays()
    arrays |= _input_arrays(inputs)
    arrays["blend/weights"] = np.asarray(blender.weights_, dtype=np.float64)
    arrays |= _calibrator_arrays(calibrator)
    lstm = next(m for m in flat if m.name == LSTM)
    arrays |= lstm_layout(lstm.arrays, int(lstm.meta["heads"]))
    arrays |= blend_layout(ensemble_fit.blenders)
    arrays |= {
        "selftest/t0": samples.t0[selftest].as_unit("ns").asi8,
        "selftest/tabular": inputs.tabular(samples, selftest),
        "selftest/windows": inputs.windows(samples, selftest, settings.window),
        "selftest/regime": regime,
        "selftest/learner_proba": P,
        "selftest/ensemble": ensemble,
        "selftest/calibrated": calibrator.predict(ensemble, regime),
    }
    manifest = {
        "symbol": symbol,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "features": list(inputs.columns),
        "window": settings.window,
        "learners": [{"name": m.name, "meta": m.meta} for m in flat],
        "blend": {"mode": DEFAULT_BLEND, "fitted_on": "purged K-fold out-of-fold probabilities",
                  "weights": dict(zip(learners, map(float, blender.weights_),
                                      strict=True))},
        "inputs": {"return_bars": list(RETURN_BARS), "missing": "training median",
                   "scaling": "training mean and standard deviation (1 when constant)",
                   "window_padding": "0 (the training mean) before the first bar"},
        "regimes": {"names": list(REGIMES), "quantiles": list(inputs.regimes.quantiles),
                    "thresholds": [inputs.regimes.low, inputs.regimes.high,
                                   inputs.regimes.crisis],
                    "garch": {"params": list(inputs.garch.params), "scale": inputs.garch.scale,
                              "fit_bars": list(inputs.garch.fit_bars), "dist": "t"}},
        "calibrator": _calibrator_manifest(calibrator),
        "selftest": {"rows": len(selftest),
                     "tolerance": {"attention_lstm": 1e-5, "others": 1e-12}},
        "lineage": {
            "git_commit": git_commit(), "git_dirty": git_dirty(), "run_id": run_id,
            "partitions": {"symbol": symbol}, "data_versions": dict(data_versions or {}),
            "train_window": {"first_t0": samples.t0[0].isoformat(),
                             "last_t0": samples.t0[-1].isoformat(),
                             "last_t1": pd.Timestamp(samples.t1.max()).isoformat(),
                             "samples": len(samples)},
            "profile": settings.name, "parent": parent},
    }
    return Candidate(symbol, arrays, manifest, models, seconds)


@dataclass(frozen=True)
class EnsembleFit:
    """What a candidate blends and calibrates with, from the stored out-of-fold predictions."""

    learners: list[str]  # in the order of the blend's weights
    blender: StackingEnsemble  # ``weighted``, fitted on every purged K-fold out-of-fold row
    blenders: dict[str, StackingEnsemble]  # every blend mode, fitted the same way
    calibrator: RegimeCalibrator  # fitted on the nested out-of-fold blend
    kfold: pd.DataFrame  # the purged K-fold probabilities, one row per sample (t0)


def fit_ensemble(oof: pd.DataFrame, folds: pd.DataFrame, *, symbol: str) -> EnsembleFit:
    report = calibration_report(oof, folds, symbol=symbol, blend=DEFAULT_BLEND)
    kfold = probability_matrix(oof, "purged_kfold")
    P, y, w = (kfold[report.learners].to_numpy(), kfold["y"].to_numpy(),
               kfold["weight"].to_numpy())
    blenders = {mode: StackingEnsemble(mode=mode).fit(P, y, sample_weight=w)
                for mode in BLEND_MODES}
    return EnsembleFit(report.learners, blenders[DEFAULT_BLEND], blenders, report.calibrator,
                       kfold)


def selftest_rows(n: int, count: int = SELFTEST_ROWS) -> np.ndarray:
    """Sample positions spread evenly over the ``n`` samples, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(np.int64))


def _input_arrays(inputs: FoldInputs) -> dict[str, np.ndarray]:
    g = inputs.garch
    return {"inputs/median": inputs.median, "inputs/mean": inputs.mean, "inputs/std": inputs.std,
            "garch/params": np.array(list(g.params.values()), dtype=np.float64),
            "garch/scale": np.array([g.scale], dtype=np.float64),
            "regimes/thresholds": np.array([inputs.regimes.low, inputs.regimes.high,
                                            inputs.regimes.crisis], dtype=np.float64)}


def _maps(calibrator: RegimeCalibrator) -> dict[str, Any]:
    return {GLOBAL: calibrator.global_} | {map_name(code): m
                                           for code, m in sorted(calibrator.maps_.items())}


def _calibrator_arrays(calibrator: RegimeCalibrator) -> dict[str, np.ndarray]:
    out = {}
    for name, isotonic in _maps(calibrator).items():
        out[f"calibrator/{name}/x"] = np.asarray(isotonic.X_thresholds_, dtype=np.float64)
        out[f"calibrator/{name}/y"] = np.asarray(isotonic.y_thresholds_, dtype=np.float64)
    return out


def _calibrator_manifest(calibrator: RegimeCalibrator) -> dict[str, Any]:
    served = {"undefined": GLOBAL} | {name: (name if code in calibrator.maps_ else GLOBAL)
                                      for code, name in enumerate(REGIMES)}
    return {"method": "isotonic per volatility regime, global map below min_count",
            "fitted_on": f"nested out-of-fold '{DEFAULT_BLEND}' blend",
            "bounds": list(calibrator.bounds), "min_count": int(calibrator.min_count),
            "maps": {name: {"knots": int(m.X_thresholds_.size)}
                     for name, m in _maps(calibrator).items()},
            "fit_rows": {("undefined" if code < 0 else REGIMES[code]): n
                         for code, n in calibrator.counts_.items()},
            "served_by": served}


# --- the index of stored candidates (ml.model_candidates) -------------------------------------


def candidate_index(symbol: str, root: Path | None = None) -> pd.DataFrame:
    """Every stored bundle of ``symbol`` under ``root`` (default ``BOT4_HOME/models/candidates``),
    oldest first: what ``ml.model_candidates`` holds. A directory whose manifest does not match
    its address is not a bundle and is left out (``read_bundle`` refuses it)."""
    root = Path(root) if root is not None else candidates_dir()
    rows = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name.startswith(".") or not path.is_dir():
            continue
        try:
            manifest = read_manifest(path)
        except ValueError:
            continue
        if manifest.get("symbol") == symbol:
            rows.append(_index_row(path, manifest))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    for column in ("train_start", "train_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    frame = frame.sort_values(["created_at", "id"], ignore_index=True)
    return frame.astype({c: "string" for c in ("symbol", "id", "profile", "blend", "learners",
                                                "git_commit", "run_id", "parent", "sha256",
                                                "path")}
                        | {"features": "int64", "window": "int64", "samples": "int64",
                           "size": "int64"})


def _index_row(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    lineage = manifest["lineage"]
    window = lineage["train_window"]
    files = manifest["files"]
    return {"symbol": manifest["symbol"], "id": path.name, "created_at": manifest["created_at"],
            "profile": lineage["profile"], "blend": manifest["blend"]["mode"],
            "learners": ",".join(e["name"] for e in manifest["learners"]),
            "features": len(manifest["features"]), "window": manifest["window"],
            "samples": window["samples"], "train_start": window["first_t0"],
            "train_end": window["last_t1"], "git_commit": lineage["git_commit"],
            "run_id": lineage["run_id"], "parent": lineage["parent"],
            "sha256": _manifest_sha256(path),
            "size": sum(int(e["bytes"]) for e in files.values())
            + (path / "manifest.json").stat().st_size,
            "path": str(path)}


def _manifest_sha256(path: Path) -> str:
    return hashlib.sha256((path / "manifest.json").read_bytes()).hexdigest()


def latest_candidate(symbol: str, root: Path | None = None) -> str | None:
    """The id of ``symbol``'s newest stored candidate (a new candidate's parent), if any."""
    index = candidate_index(symbol, root)
    return None if index.empty else str(index["id"].iloc[-1])

"""Trained fold models on disk, without pickle, each file with its sha256.

A fold model is a directory: the learner (``model.safetensors`` for the LSTM, ``model.skops`` for
scikit-learn, loaded with an explicit list of trusted types) and ``inputs.safetensors``, the
arrays and parameters its inputs were fitted with (columns, imputation medians, scaler, the fold's
GARCH, regime thresholds). Directories are content-addressed under
``BOT4_HOME/models/folds/<symbol>/``: written into a temporary directory, then renamed, so a
killed write leaves no half model and the same model is stored once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ..settings import state_dir
from .dataset import FoldGarch, FoldInputs
from .learners import LSTM
from .oof import FoldModel
from .regimes import VolatilityRegimes

# what a stored scikit-learn learner may contain beyond skops' defaults
TRUSTED_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
INPUTS = "inputs.safetensors"


@dataclass(frozen=True)
class StoredModel:
    path: Path  # the model's directory
    model_file: str
    sha256: str  # of the model file
    inputs_sha256: str
    size: int  # bytes of both files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def models_dir() -> Path:
    return state_dir() / "models"


def save_fold_model(fold: FoldModel, symbol: str, root: Path | None = None) -> StoredModel:
    """Write ``fold`` under ``root`` (default ``BOT4_HOME/models/folds/<symbol>``), atomically."""
    root = Path(root) if root is not None else models_dir() / "folds" / symbol
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=root))
    try:
        if fold.learner == LSTM:
            model_file = "model.safetensors"
            fold.model.save(staging / model_file)
        else:
            model_file = "model.skops"
            import skops.io as sio  # here, not at the top: importing skops takes ~2.5 s

            sio.dump(fold.model, staging / model_file)
        _save_inputs(fold.inputs, staging / INPUTS)
        digest, inputs_digest = sha256_of(staging / model_file), sha256_of(staging / INPUTS)
        size = sum(p.stat().st_size for p in staging.iterdir())
        final = root / f"{fold.learner}-{fold.scheme}-{fold.split}-{digest[:16]}"
        if final.exists():
            shutil.rmtree(staging)
        else:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StoredModel(final, model_file, digest, inputs_digest, size)


def load_fold_model(stored: StoredModel):
    """The learner and its ``FoldInputs`` parameters, after checking both files' sha256."""
    for name, expected in ((stored.model_file, stored.sha256), (INPUTS, stored.inputs_sha256)):
        actual = sha256_of(stored.path / name)
        if actual != expected:
            raise ValueError(f"{stored.path / name}: sha256 {actual} is not the recorded "
                             f"{expected}; the file changed after it was written")
    path = stored.path / stored.model_file
    if stored.model_file.endswith(".safetensors"):
        from .lstm import AttentionLSTM

        model = AttentionLSTM.load(path, sha256=stored.sha256)
    else:
        import skops.io as sio

        untrusted = set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES)
        if untrusted:
            raise ValueError(f"{path}: refusing to load types outside the trusted list: "
                             f"{', '.join(sorted(untrusted))}")
        model = sio.load(path, trusted=list(TRUSTED_TYPES))
    return model, load_inputs(stored.path / INPUTS)


def _save_inputs(inputs: FoldInputs, path: Path) -> None:
    arrays = {"median": inputs.median, "mean": inputs.mean, "std": inputs.std}
    meta = {
        "columns": list(inputs.columns),
        "garch": {"params": inputs.garch.params, "scale": inputs.garch.scale,
                  "fit_bars": list(inputs.garch.fit_bars)},
        "regimes": {"low": inputs.regimes.low, "high": inputs.regimes.high,
                    "crisis": inputs.regimes.crisis, "quantiles": list(inputs.regimes.quantiles)},
    }
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}, path,
              metadata={"inputs": json.dumps(meta)})


@dataclass(frozen=True)
class InputParameters:
    """What ``FoldInputs`` was fitted to, as stored (the per-bar matrix is recomputed)."""

    columns: tuple[str, ...]
    median: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    garch: FoldGarch
    regimes: VolatilityRegimes


def load_inputs(path: Path) -> InputParameters:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads((f.metadata() or {})["inputs"])
    arrays = load_file(str(path))
    garch = meta["garch"]
    regimes = meta["regimes"]
    return InputParameters(
        tuple(meta["columns"]), arrays["median"], arrays["mean"], arrays["std"],
        FoldGarch(garch["params"], garch["scale"], tuple(garch["fit_bars"])),
        VolatilityRegimes(regimes["low"], regimes["high"], regimes["crisis"],
                          tuple(regimes["quantiles"])))

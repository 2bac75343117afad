"""A verified candidate bundle as a predictor, in numpy alone: the reference the serving kernels
and the candidate's blocking check are held to.

It reads nothing but the bundle's arrays and manifest (layout in :mod:`.candidate`): each
learner's flat arrays through :func:`.flat_models.predict_flat`, the linear blend's weights, and
the isotonic map of each volatility regime, looked up with the same interpolation kernel the
calibrator fitted them with. Neither torch nor scikit-learn is imported on this path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels import interp
from .bundle import Bundle, BundleError
from .flat_models import LSTM, FlatModel, predict_flat

GLOBAL = "global"
UNDEFINED = "undefined"
REGIME_NAMES = ("low", "normal", "high", "crisis")  # codes 0 .. 3; -1 is UNDEFINED
LINEAR_BLENDS = ("mean", "weighted")


@dataclass(frozen=True)
class InputParameters:
    """What turns a bar's raw inputs into the learners' inputs, as the bundle stores them."""

    features: tuple[str, ...]
    median: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    garch: dict[str, float]  # the GARCH(1,1) parameters by name
    garch_scale: float  # decimal returns x scale = the returns GARCH was fitted on
    regime_thresholds: np.ndarray  # upper edges of low, normal, high volatility


class BundleModel:
    """Predictions of one bundle: per learner, blended, calibrated per regime."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        manifest, arrays = bundle.manifest, bundle.arrays
        self.id = bundle.id
        self.features = tuple(manifest["features"])
        self.window = int(manifest["window"])
        self.learners = tuple(entry["name"] for entry in manifest["learners"])
        self.flat = {entry["name"]: FlatModel.from_named(entry["name"], dict(arrays),
                                                         entry["meta"])
                     for entry in manifest["learners"]}
        blend = manifest["blend"]
        if blend.get("mode") not in LINEAR_BLENDS:
            raise BundleError(f"{bundle.path}: blend mode {blend.get('mode')!r} is not one this "
                              f"predictor serves ({', '.join(LINEAR_BLENDS)})")
        self.weights = self._array("blend/weights")
        if self.weights.shape != (len(self.learners),):
            raise BundleError(f"{bundle.path}: blend/weights has shape {self.weights.shape} for "
                              f"{len(self.learners)} learners")
        calibrator = manifest["calibrator"]
        self.bounds = tuple(float(b) for b in calibrator["bounds"])
        self.maps = {name: (self._array(f"calibrator/{name}/x"),
                            self._array(f"calibrator/{name}/y"))
                     for name in calibrator["maps"]}
        served = calibrator["served_by"]
        if GLOBAL not in self.maps or set(served.values()) - set(self.maps):
            raise BundleError(f"{bundle.path}: the calibrator needs a global map and a map for "
                              f"every regime it serves (maps {sorted(self.maps)}, served_by "
                              f"{served})")
        self.served_by = {code: served[name] for code, name in
                          enumerate(REGIME_NAMES)} | {-1: served[UNDEFINED]}

    def _array(self, name: str) -> np.ndarray:
        if name not in self.bundle.arrays:
            raise BundleError(f"{self.bundle.path}: array {name!r} is missing")
        return self.bundle.arrays[name]

    def learner_probabilities(self, tabular: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """(n, learners): each learner's P(upper barrier first); the LSTM reads ``windows``
        (n, window, features), the others ``tabular`` (n, features)."""
        return np.column_stack([predict_flat(self.flat[name], windows if name == LSTM
                                             else tabular) for name in self.learners])

    def blend(self, P: np.ndarray) -> np.ndarray:
        """The blended probability of each row of P (n, learners)."""
        return np.asarray(P, dtype=np.float64) @ self.weights

    def calibrate(self, q: np.ndarray, regime: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Calibrated probabilities of blended ``q`` at regime codes ``regime`` (-1 .. 3), and
        the name of the map that served each row."""
        q = np.ascontiguousarray(q, dtype=np.float64)
        codes = np.asarray(regime, dtype=np.int64)
        out = np.empty_like(q)
        names = [self.served_by.get(int(c), GLOBAL) for c in codes]
        for name, (x, y) in self.maps.items():
            rows = np.flatnonzero(np.asarray(names) == name)
            if rows.size:
                out[rows] = interp(np.ascontiguousarray(x), np.ascontiguousarray(y),
                                   np.ascontiguousarray(q[rows]))
        return out, names

    def predict(self, tabular: np.ndarray, windows: np.ndarray,
                regime: np.ndarray) -> np.ndarray:
        """The calibrated ensemble probability of each row."""
        return self.calibrate(self.blend(self.learner_probabilities(tabular, windows)),
                              regime)[0]

    def input_parameters(self) -> InputParameters:
        regimes = self.bundle.manifest["regimes"]
        names = regimes["garch"]["params"]
        values = self._array("garch/params")
        return InputParameters(self.features, self._array("inputs/median"),
                               self._array("inputs/mean"), self._array("inputs/std"),
                               dict(zip(names, map(float, values), strict=True)),
                               float(self._array("garch/scale")[0]),
                               self._array("regimes/thresholds"))


@dataclass(frozen=True)
class Agreement:
    """One comparison of a bundle's predictions with the training objects'."""

    what: str
    rows: int
    max_abs_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(self.max_abs_error <= self.tolerance)


def agreement(what: str, got: np.ndarray, expected: np.ndarray, tolerance: float) -> Agreement:
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return Agreement(f"{what} (shape {got.shape}, expected {expected.shape})", 0, np.inf,
                         tolerance)
    error = np.abs(got - expected)
    worst = float(np.nanmax(error)) if error.size else 0.0
    if (np.isnan(got) != np.isnan(expected)).any():
        worst = np.inf
    return Agreement(what, int(got.shape[0]) if got.ndim else 1, worst, tolerance)


def selftest(model: BundleModel) -> list[Agreement]:
    """The bundle's own predictions of its ``selftest/*`` rows against what the training objects
    predicted for them when it was built: each learner (the LSTM within its float32 tolerance),
    the blend and the calibration."""
    a, manifest = model.bundle.arrays, model.bundle.manifest
    tolerance = manifest["selftest"]["tolerance"]
    P = model.learner_probabilities(a["selftest/tabular"], a["selftest/windows"])
    out = [agreement(f"learner {name}", P[:, k], a["selftest/learner_proba"][:, k],
                     tolerance["attention_lstm" if name == LSTM else "others"])
           for k, name in enumerate(model.learners)]
    out.append(agreement("blend", model.blend(a["selftest/learner_proba"]),
                         a["selftest/ensemble"], tolerance["others"]))
    calibrated, _ = model.calibrate(a["selftest/ensemble"], a["selftest/regime"])
    out.append(agreement("calibration", calibrated, a["selftest/calibrated"],
                         tolerance["others"]))
    return out

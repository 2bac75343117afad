"""The champion: one candidate bundle served from its memory-mapped arrays by numba kernels,
without torch, scikit-learn or scipy.

``Champion.load(path)`` verifies the bundle (``read_bundle``: manifest, sha256 of every file,
safetensors header) before mapping it; every array is then a read-only view of the mapping,
nothing is copied. Loading ends with the bundle's self-test through the kernels, which
compiles them (or loads them from numba's on-disk cache) and proves that this process computes
what the training objects computed: a bundle that does not reproduce them is refused.

A window is the last ``L`` bars of raw inputs (``features`` of the manifest, oldest first):
missing values are imputed with the training medians and every column standardised as in
training; the LSTM reads the window in float32, the other learners its last row in float64, and
the regime comes from the last bar's GARCH volatility. Rows before a symbol's first bar are the
training mean (what training pads with). Swapping champions is one reference assignment
(:class:`ChampionSlot`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..kernels import blend, inputs, isotonic, lstm, trees
from ..kernels.blend import MODES
from ..kernels.lstm import scratch_size
from ..ml.bundle import Bundle, BundleError, read_bundle
from .layout import BLEND_PREFIX, LSTM_ARRAYS, LSTM_PREFIX

LEARNERS = ("attention_lstm", "extra_trees", "hist_gradient_boosting", "logistic")
REGIMES = ("low", "normal", "high", "crisis")
TREE_ARRAYS = ("feature", "threshold", "left", "right", "is_leaf", "missing_go_to_left",
               "value", "tree_offsets")


# the numba dispatchers, typed as what they are: callables over arrays of several dtypes
blend_one: Callable[..., float] = blend.blend_one
regime_code: Callable[..., int] = inputs.regime_code
standardize: Callable[..., None] = inputs.standardize
interp_one: Callable[..., float] = isotonic.interp_one
lstm_last_attention: Callable[..., float] = lstm.lstm_last_attention
lstm_last_attention_many: Callable[..., None] = lstm.lstm_last_attention_many
expit: Callable[..., float] = trees.expit
logistic: Callable[..., None] = trees.logistic
logistic_one: Callable[..., float] = trees.logistic_one
tree_sum: Callable[..., None] = trees.tree_sum
tree_sum_one: Callable[..., float] = trees.tree_sum_one


class Prediction(NamedTuple):
    probability: float  # calibrated ensemble P(upper barrier first)
    regime: str  # low / normal / high / crisis / undefined
    learners: np.ndarray  # each learner's probability, in Champion.learners order
    blended: float  # before calibration


@dataclass(frozen=True)
class _Lstm:
    args: Any  # the weight arguments of kernels.lstm, in order
    heads: int
    eps: float


class Champion:
    """A loaded, verified bundle that predicts one window at a time or many."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.id = bundle.id
        manifest = bundle.manifest
        self.features = tuple(manifest["features"])
        self.window = int(manifest["window"])
        self.learners = tuple(entry["name"] for entry in manifest["learners"])
        if self.learners != LEARNERS:
            raise self._refuse(f"learners {list(self.learners)}; this champion serves "
                               f"{list(LEARNERS)}")
        meta = {entry["name"]: entry["meta"] for entry in manifest["learners"]}
        if meta["attention_lstm"]["pooling"] != "last":
            raise self._refuse("the LSTM pools by attention; the serving kernel reads the last "
                               "step (retrain with pooling='last', the default)")
        self.median, self.mean, self.std = (self._get(f"inputs/{n}")
                                            for n in ("median", "mean", "std"))
        self.thresholds = self._get("regimes/thresholds")
        self.sigma_column = self.features.index("garch_sigma")
        network = meta["attention_lstm"]
        weights = [self._get(LSTM_PREFIX + n) for n in LSTM_ARRAYS[:-1]]
        head_b = float(self._get(LSTM_PREFIX + "head_b")[0])
        self._lstm = _Lstm((*weights, head_b), int(network["heads"]),
                           float(network["layer_norm_eps"]))
        hidden = int(network["hidden"])
        self._scratch = np.empty(scratch_size(self.window, hidden, self._lstm.heads),
                                 dtype=np.float32)
        self._trees: dict[str, Any] = {name: tuple(self._get(f"{name}/{a}") for a in TREE_ARRAYS)
                       for name in ("extra_trees", "hist_gradient_boosting")}
        self._baseline = float(self._get("hist_gradient_boosting/baseline")[0])
        self._n_et_trees = len(self._trees["extra_trees"][-1]) - 1
        self._logistic: Any = (self._get("logistic/mean"), self._get("logistic/scale"),
                          np.ascontiguousarray(self._get("logistic/coef")[0]),
                          float(self._get("logistic/intercept")[0]))
        self.blend_mode = manifest["blend"]["mode"]
        self._blend: Any = self._blend_args(self.blend_mode)
        calibrator = manifest["calibrator"]
        maps = {name: (self._get(f"calibrator/{name}/x"), self._get(f"calibrator/{name}/y"))
                for name in calibrator["maps"]}
        served = calibrator["served_by"]
        # by regime code: 0 .. 3, then -1 (undefined) as the last entry
        self._maps = (*(maps[served[name]] for name in REGIMES), maps[served["undefined"]])
        self._raw = np.empty((self.window, len(self.features)))
        self._std = np.empty((self.window, len(self.features)))
        self._std32 = np.empty((self.window, len(self.features)), dtype=np.float32)
        self._p = np.empty(len(LEARNERS))
        self._sorted = np.empty(len(LEARNERS))

    @classmethod
    def load(cls, path: Path | str, *, selftest: bool = True) -> Champion:
        """Verify, map and (by default) self-test the bundle at ``path``."""
        champion = cls(read_bundle(path))
        if selftest:
            champion.selftest()
        return champion

    def _refuse(self, rule: str) -> BundleError:
        return BundleError(f"{self.bundle.path}: {rule}")

    def _get(self, name: str) -> np.ndarray:
        array = self.bundle.arrays.get(name)
        if array is None:
            raise self._refuse(f"array {name!r} is missing (a bundle built before the serving "
                               "layout: rematerialize ml/model_candidate)")
        return array

    def _blend_args(self, mode: str) -> tuple:
        if mode not in MODES:
            raise self._refuse(f"unknown blend mode {mode!r}")
        empty: Any = np.empty(0)
        weights = rank_x = rank_y = coef = empty
        train_sorted: Any = np.empty((0, len(LEARNERS)))
        intercept, clip = 0.0, 0.5
        prefix = f"{BLEND_PREFIX}{mode}/"
        if mode in ("mean", "weighted"):
            weights = self._get(prefix + "weights")
        elif mode == "rank":
            train_sorted = self._get(prefix + "train_sorted")
            rank_x, rank_y = self._get(prefix + "x"), self._get(prefix + "y")
        elif mode == "stacking":
            coef = self._get(prefix + "coef")
            intercept = float(self._get(prefix + "intercept")[0])
            clip = float(self._get(prefix + "clip")[0])
        return MODES.index(mode), weights, train_sorted, rank_x, rank_y, coef, intercept, clip

    def with_blend(self, mode: str) -> Champion:
        """The same champion blending by ``mode`` (the calibrator stays the shipped mode's)."""
        other = Champion(self.bundle)
        other.blend_mode, other._blend = mode, other._blend_args(mode)
        return other

    # --- one window --------------------------------------------------------------------------

    def predict(self, window: np.ndarray) -> Prediction:
        """The calibrated probability of one raw window (L, features)."""
        raw = np.asarray(window, dtype=np.float64)
        if raw.shape != self._raw.shape:
            raise ValueError(f"a window is {self._raw.shape} (bars, features), got {raw.shape}")
        standardize(raw, self.median, self.mean, self.std, self._std)
        self._std32[:] = self._std
        code = regime_code(raw[-1, self.sigma_column], self.thresholds)
        return self._predict_standardized(self._std32, self._std[-1], code)

    def _predict_standardized(self, window32: np.ndarray, row: np.ndarray,
                              code: int) -> Prediction:
        p = self._p
        net = self._lstm
        p[0] = lstm_last_attention(window32, *net.args, net.heads, net.eps, self._scratch)
        row32 = row.astype(np.float32)
        p[1] = tree_sum_one(row32, *self._trees["extra_trees"], 0.0) / self._n_et_trees
        p[2] = expit(tree_sum_one(row, *self._trees["hist_gradient_boosting"], self._baseline))
        p[3] = logistic_one(row, *self._logistic)
        q = blend_one(p, *self._blend, self._sorted)
        return Prediction(self.calibrate(q, code), _regime_name(code), p.copy(), float(q))

    def calibrate(self, q: float, code: int) -> float:
        """The calibrated probability of blended ``q`` in regime ``code`` (-1 .. 3)."""
        x, y = self._maps[code]
        return float(interp_one(x, y, q))

    # --- many windows ------------------------------------------------------------------------

    def predict_many(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For raw windows (n, L, features): calibrated probabilities (n,), regime codes (n,; -1
        undefined) and the learners' probabilities (n, learners)."""
        raw = np.asarray(windows, dtype=np.float64)
        if raw.ndim != 3 or raw.shape[1:] != self._raw.shape:
            raise ValueError(f"windows are (n, {self._raw.shape[0]}, {self._raw.shape[1]}), "
                             f"got {raw.shape}")
        flat = raw.reshape(-1, raw.shape[2])
        standardized = np.empty_like(flat)
        standardize(flat, self.median, self.mean, self.std, standardized)
        std = standardized.reshape(raw.shape)
        codes = np.array([regime_code(s, self.thresholds) for s in raw[:, -1, self.sigma_column]],
                         dtype=np.int8)
        return self._many_standardized(std.astype(np.float32), np.ascontiguousarray(std[:, -1]),
                                       codes)

    def _many_standardized(self, windows32: np.ndarray, rows: np.ndarray,
                           codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = rows.shape[0]
        P = np.empty((n, len(LEARNERS)))
        out = np.empty(n)
        net = self._lstm
        lstm_last_attention_many(windows32, *net.args, net.heads, net.eps, self._scratch, out)
        P[:, 0] = out
        tree_sum(rows.astype(np.float32), *self._trees["extra_trees"], 0.0, out)
        P[:, 1] = out / self._n_et_trees
        tree_sum(rows, *self._trees["hist_gradient_boosting"], self._baseline, out)
        P[:, 2] = 1.0 / (1.0 + np.exp(-out))
        logistic(rows, *self._logistic, out)
        P[:, 3] = out
        calibrated = np.empty(n)
        for i in range(n):
            calibrated[i] = self.calibrate(blend_one(P[i], *self._blend, self._sorted),
                                           codes[i])
        return calibrated, codes, P

    # --- proof -------------------------------------------------------------------------------

    def selftest(self) -> None:
        """Predict the bundle's self-test rows through the kernels, one at a time and as a
        batch; refuse the bundle unless they equal the training objects' predictions."""
        a = self.bundle.arrays
        windows, rows = a["selftest/windows"], a["selftest/tabular"]
        codes = a["selftest/regime"].astype(np.int8)
        calibrated, _, P = self._many_standardized(np.ascontiguousarray(windows), rows, codes)
        one = self._predict_standardized(windows[0], rows[0], int(codes[0]))
        expected = a["selftest/learner_proba"]
        tolerance = self.bundle.manifest["selftest"]["tolerance"]
        worst = np.abs(P - expected).max(axis=0)
        limits = np.array([tolerance["attention_lstm"]] + [tolerance["others"]] * 3)
        # the shipped blend and calibration, given the recorded learner probabilities
        wrong = [f"{name} off by {err:.2e}" for name, err, limit
                 in zip(LEARNERS, worst, limits, strict=True) if not err <= limit]
        if self.blend_mode == self.bundle.manifest["blend"]["mode"]:
            q = np.array([blend_one(e, *self._blend, self._sorted) for e in expected])
            blend_error = float(np.abs(q - a["selftest/ensemble"]).max())
            cal = np.array([interp_one(*self._maps[c], v) for c, v in zip(codes, q, strict=True)])
            cal_error = float(np.abs(cal - a["selftest/calibrated"]).max())
            wrong += [f"{what} off by {err:.2e}" for what, err in
                      (("blend", blend_error), ("calibration", cal_error))
                      if not err <= tolerance["others"]]
        if abs(one.probability - calibrated[0]) > 1e-12:
            wrong.append("one window and the batch disagree")
        if wrong:
            raise self._refuse("self-test failed, the kernels do not reproduce the training "
                               "objects: " + "; ".join(wrong))


def _regime_name(code: int) -> str:
    return REGIMES[code] if 0 <= code < len(REGIMES) else "undefined"


class ChampionSlot:
    """Where the live path reads its champion: a swap is one reference assignment, so a
    decision in flight finishes on the champion it started with."""

    def __init__(self, champion: Champion):
        self.champion = champion

    def swap(self, new: Champion) -> Champion:
        """Make ``new`` the champion; the previous one is returned (for a rollback)."""
        old, self.champion = self.champion, new
        return old

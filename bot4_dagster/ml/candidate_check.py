"""The candidate's acceptance test: the stored bundle, read back through the verifying loader,
must compute what the training side computes.

Three comparisons, each against something the bundle did not produce itself:

- **self-test**: every learner, the blend and the calibration on the bundle's self-test rows,
  against the training objects' predictions recorded when it was built;
- **inputs**: the self-test rows' inputs rebuilt from the warehouse's bars and features with
  only the bundle's parameters (medians, scaler, GARCH, regime thresholds), against the inputs
  the learners were given;
- **out of fold**: the bundle's blend and per-regime calibration of the stored out-of-fold
  probabilities of a sample of rows, against the blender and calibrator refitted from the
  warehouse's tables as the calibration stage fits them;
- **serving**: the numba champion (``serving.Champion``, which also runs the self-test through
  its kernels when it loads) on the raw input windows of a sample of rows, against the numpy
  reference: each learner, the regime, and the calibrated ensemble given its learners.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..serving.champion import Champion
from .bundle import BundleError, read_bundle
from .bundle_model import Agreement, BundleModel, agreement, selftest
from .candidate import fit_ensemble, selftest_rows
from .dataset import FoldGarch, FoldInputs, Samples
from .flat_models import LSTM
from .regimes import VolatilityRegimes

OOF_ROWS = 256
EXACT = 1e-12


@dataclass(frozen=True)
class CandidateCheck:
    bundle_id: str
    agreements: list[Agreement]
    problem: str | None = None  # why the bundle could not be compared at all

    @property
    def passed(self) -> bool:
        return self.problem is None and all(a.passed for a in self.agreements)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"comparison": a.what, "rows": a.rows,
                              "max_abs_error": a.max_abs_error, "tolerance": a.tolerance,
                              "passed": a.passed} for a in self.agreements])


def check_newest(index: pd.DataFrame, samples: Samples, oof: pd.DataFrame,
                 folds: pd.DataFrame, *, symbol: str) -> CandidateCheck:
    """``check_candidate`` on the newest bundle of ``index`` (``ml.model_candidates`` rows)."""
    if index.empty:
        return CandidateCheck("none", [], f"no stored candidate of {symbol}")
    newest = index.sort_values("created_at").iloc[-1]
    return check_candidate(newest["path"], samples, oof, folds, symbol=symbol)


def check_candidate(path: Path | str, samples: Samples, oof: pd.DataFrame, folds: pd.DataFrame,
                    *, symbol: str, oof_rows: int = OOF_ROWS) -> CandidateCheck:
    path = Path(path)
    try:
        model = BundleModel(read_bundle(path))
    except BundleError as error:
        return CandidateCheck(path.name, [], str(error))
    rows = samples.t0.as_unit("ns").get_indexer(
        pd.to_datetime(np.asarray(model.bundle.arrays["selftest/t0"]), utc=True))
    if (rows < 0).any():
        return CandidateCheck(model.id, [], "the bundle's self-test rows are not samples of the "
                                            "stored labels: it was trained on other data")
    rebuilt = _rebuilt_inputs(model, samples)
    agreements = (selftest(model) + _inputs(model, rebuilt, samples, rows)
                  + _out_of_fold(model, oof, folds, symbol, oof_rows))
    try:
        champion = Champion.load(path)
    except BundleError as error:
        return CandidateCheck(model.id, agreements, f"the serving champion refused it: {error}")
    return CandidateCheck(model.id, agreements + _serving(champion, model, rebuilt, samples,
                                                          oof_rows))


def _rebuilt_inputs(model: BundleModel, samples: Samples) -> FoldInputs:
    """Every bar's inputs recomputed from raw bars with the bundle's parameters only."""
    p = model.input_parameters()
    manifest = model.bundle.manifest["regimes"]
    low, high, crisis = map(float, p.regime_thresholds)
    bare = FoldInputs(p.features, p.median, p.mean, p.std,
                      FoldGarch(p.garch, p.garch_scale, tuple(manifest["garch"]["fit_bars"])),
                      VolatilityRegimes(low, high, crisis, tuple(manifest["quantiles"])),
                      np.empty((0, len(p.features))))
    return dataclasses.replace(bare, matrix=bare.transform(samples))


def _inputs(model: BundleModel, rebuilt: FoldInputs, samples: Samples,
            rows: np.ndarray) -> list[Agreement]:
    """The self-test rows' inputs, rebuilt, against those the learners were given."""
    a = model.bundle.arrays
    return [
        agreement("inputs at t0 (tabular)", rebuilt.tabular(samples, rows),
                  a["selftest/tabular"], EXACT),
        agreement("input windows", rebuilt.windows(samples, rows, model.window),
                  a["selftest/windows"], 0.0),
        agreement("volatility regime", rebuilt.regime_codes(samples, rows),
                  a["selftest/regime"], 0.0),
    ]


def _out_of_fold(model: BundleModel, oof: pd.DataFrame, folds: pd.DataFrame, symbol: str,
                 count: int) -> list[Agreement]:
    """Calibrated out-of-fold probabilities: the bundle against the refitted training objects."""
    fit = fit_ensemble(oof, folds, symbol=symbol)
    if list(model.learners) != fit.learners:
        return [Agreement(f"learners {list(model.learners)} vs the stored out-of-fold "
                          f"predictions' {fit.learners}", 0, np.inf, 0.0)]
    picked = fit.kfold.iloc[selftest_rows(len(fit.kfold), count)]
    P = picked[fit.learners].to_numpy(np.float64)
    regime = picked["regime"].to_numpy(np.int8)
    expected_blend = fit.blender.blend(P)
    got_blend = model.blend(P)
    got, _ = model.calibrate(got_blend, regime)
    return [agreement("blend of out-of-fold probabilities", got_blend, expected_blend, EXACT),
            agreement("calibrated out-of-fold probabilities", got,
                      fit.calibrator.predict(expected_blend, regime), EXACT)]


def _serving(champion: Champion, model: BundleModel, rebuilt: FoldInputs, samples: Samples,
             count: int) -> list[Agreement]:
    """The champion's predictions of raw windows against the numpy reference's."""
    rows = selftest_rows(len(samples), count)
    calibrated, codes, P = champion.predict_many(
        rebuilt.raw_windows(samples, rows, model.window))
    expected = model.learner_probabilities(rebuilt.tabular(samples, rows),
                                           rebuilt.windows(samples, rows, model.window))
    out = [agreement(f"serving: learner {name}", P[:, k], expected[:, k],
                     1e-5 if name == LSTM else EXACT)
           for k, name in enumerate(model.learners)]
    out.append(agreement("serving: volatility regime", codes,
                         rebuilt.regime_codes(samples, rows), 0.0))
    reference, _ = model.calibrate(model.blend(P), codes)
    out.append(agreement("serving: calibrated ensemble", calibrated, reference, EXACT))
    return out

"""The stacking stage of one symbol: the five blends fitted on the purged K-fold out-of-fold
probabilities (what a candidate model would ship), the learners' diversity on the same
predictions, the nested out-of-fold score of logistic stacking, and the walk-forward evaluation
of every learner and blend (``evaluation.py``), which is the figure to believe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .ensemble import (
    BLEND_MODES,
    Diversity,
    StackingEnsemble,
    diversity,
    pairwise_table,
    stacking_oof,
)
from .evaluation import METRIC_COLUMNS, WalkForwardReport, metrics_row, walk_forward_report
from .insufficient import InsufficientData
from .oof import probability_matrix

COLUMNS = ("symbol", "evaluation", *METRIC_COLUMNS)  # ml.stacking_ensemble
STAGE = "stacking ensemble"


@dataclass(frozen=True)
class EnsembleReport:
    learners: list[str]
    blenders: dict[str, StackingEnsemble]  # fitted on every purged K-fold OOF row
    diversity: Diversity
    pairs: pd.DataFrame
    oof_metrics: pd.DataFrame  # purged K-fold: learners, and stacking scored by nested OOF
    walk_forward: WalkForwardReport
    stored: pd.DataFrame  # ``COLUMNS``: both evaluations

    def weights(self) -> pd.DataFrame:
        """Blend weights per mode and learner (stacking: the meta-learner's coefficients)."""
        rows = {}
        for mode, blender in self.blenders.items():
            if mode == "stacking" and blender.meta_ is not None:
                rows["stacking (coefficients on logits)"] = blender.meta_.coef_[0]
            elif mode in ("mean", "weighted"):
                rows[mode] = blender.weights_
        return pd.DataFrame(rows, index=self.learners).T


def ensemble_report(oof: pd.DataFrame, labels: pd.DataFrame, *, symbol: str,
                    n_splits: int = 5) -> EnsembleReport:
    """Everything the stacking stage reports, from the stored out-of-fold predictions."""
    kfold = probability_matrix(oof, "purged_kfold")
    learners = sorted(oof["learner"].unique())
    if len(learners) < 2 or len(kfold) < 2 * n_splits:
        raise InsufficientData(STAGE, symbol, 2 * n_splits, len(kfold),
                               "samples with an out-of-fold probability from every learner",
                               f"{len(learners)} learner(s) predicted")
    P, y, w = kfold[learners].to_numpy(), kfold["y"].to_numpy(), kfold["weight"].to_numpy()
    blenders = {mode: StackingEnsemble(mode=mode).fit(P, y, sample_weight=w)
                for mode in BLEND_MODES}
    t1 = _t1(labels, kfold.index)
    embargo = max(1, len(kfold) // 100)
    nested = stacking_oof(P, y, t1, n_splits=n_splits, embargo=embargo, sample_weight=w)
    rows = [metrics_row(name, "learner", y, kfold[name].to_numpy(), w) for name in learners]
    rows.append(metrics_row("stacking (nested OOF)", "blend", y, nested, w))
    oof_metrics = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    walk = walk_forward_report(probability_matrix(oof, "walk_forward"), labels, learners)
    stored = pd.concat([walk.metrics.assign(evaluation="walk_forward"),
                        oof_metrics.assign(evaluation="purged_kfold_oof")], ignore_index=True)
    stored.insert(0, "symbol", symbol)
    stored = stored[list(COLUMNS)].astype({"symbol": "string", "evaluation": "string",
                                           "model": "string", "kind": "string", "n": "int64"})
    return EnsembleReport(learners, blenders, diversity(P, y),
                          pairwise_table(P, y, learners), oof_metrics, walk, stored)


def _t1(labels: pd.DataFrame, t0: pd.Index) -> pd.Series:
    """Label ends of the samples at ``t0`` (the nested split purges with them)."""
    ends = pd.Series(pd.to_datetime(labels["t1"], utc=True).to_numpy(),
                     index=pd.DatetimeIndex(pd.to_datetime(labels["t0"], utc=True)))
    out = ends.reindex(pd.DatetimeIndex(t0))
    if out.isna().any():
        raise ValueError("out-of-fold predictions name samples that are not labels")
    return pd.Series(np.asarray(out.to_numpy()), index=pd.DatetimeIndex(t0))


def diversity_table(d: Diversity) -> pd.DataFrame:
    """The diversity measures, named, with how many pairs each left out as undefined."""
    rows = [("D_av (disagreement; the specification's diversity score)", d.D_av, "D"),
            ("Q_av (Yule's Q; lower = more diverse)", d.Q_av, "Q"),
            ("rho_av (correlation of correctness)", d.rho_av, "rho"),
            ("DF_av (double fault; lower = more diverse)", d.DF_av, "DF"),
            ("KW (Kohavi-Wolpert variance)", d.KW, "KW"),
            ("E (entropy)", d.E, "E"), ("kappa (interrater agreement)", d.kappa, "kappa"),
            ("1 - mean Spearman of probabilities", d.spearman_diversity, "spearman")]
    return pd.DataFrame([{"measure": name, "value": value, "undefined": d.undefined[key]}
                         for name, value, key in rows])

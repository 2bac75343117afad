"""Split generation of combinatorial purged CV for a million samples, against skfolio."""

from __future__ import annotations

import numpy as np
import pandas as pd
from skfolio.model_selection import CombinatorialPurgedCV as SkfolioCPCV

from bot4_dagster.ml.cv import CombinatorialPurgedCV
from bot4_dagster.perf import Report

GROUP = "cv"
N_SAMPLES = 1_000_000
HORIZON, EMBARGO = 5, 10


def _consume(splits) -> int:
    """Materialise every split's index arrays, as a training loop would."""
    total = 0
    for train, test in splits:
        total += len(train) + (len(test) if not isinstance(test, list) else sum(map(len, test)))
    return total


def run(report: Report) -> None:
    if not report.wants("cpcv_split_1m", GROUP):
        return
    t0 = pd.date_range("2020-01-01", periods=N_SAMPLES, freq="min")
    t1 = pd.Series(t0[np.minimum(np.arange(N_SAMPLES) + HORIZON, N_SAMPLES - 1)], index=t0)
    x = np.zeros((N_SAMPLES, 1))
    ours = CombinatorialPurgedCV(10, 2, t1, embargo=EMBARGO)
    theirs = SkfolioCPCV(n_folds=10, n_test_folds=2, purged_size=HORIZON, embargo_size=EMBARGO)
    report.compare(
        "cpcv_split_1m", lambda: _consume(ours.split(x)), lambda: _consume(theirs.split(x)),
        reference_name="skfolio CombinatorialPurgedCV", group=GROUP, items=45 * N_SAMPLES,
        unit=f"45 splits x {N_SAMPLES:,} samples", goal=">= 1x", warmup=1, repeat=5,
        notes="N=10, k=2, labels t1 = t0 + 5 bars, embargo 10; same index sets as skfolio; "
              "one split's arrays at a time (O(n) memory per split)",
    )

"""The leakage proof's statistics: the AUC standard error it judges permuted labels by."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bot4_dagster.ml.leakage import LeakageReport, auc_standard_error


def test_hanley_mcneil_standard_error_matches_the_spread_of_null_aucs():
    rng = np.random.default_rng(7)
    n_pos, n_neg = 300, 500
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    aucs = [roc_auc_score(y, rng.random(len(y))) for _ in range(2000)]
    assert np.std(aucs) == pytest.approx(auc_standard_error(0.5, n_pos, n_neg), rel=0.06)


def test_report_judgements():
    report = LeakageReport(10_000, 12, 5, 100, auc_shuffled=0.74, auc_purged=0.52,
                           auc_permuted=0.51, auc_permuted_se=0.004, sharpe_permuted=0.02,
                           sharpe_permuted_se=0.01)
    assert report.inflation == pytest.approx(0.22)
    assert report.permuted_auc_ok and report.permuted_sharpe_ok
    assert not LeakageReport(10_000, 12, 5, 100, 0.74, 0.52, 0.52, 0.004, 0.2, 0.01).permuted_auc_ok
    assert list(report.table()["measure"])[:2] == ["shuffled K-fold AUC (leaks)", "purged K-fold AUC"]

"""The leakage proof's statistics: the AUC standard error it judges permuted labels by."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bot4_dagster.ml.leakage import (
    COLUMNS,
    MIN_EVENTS,
    SHARPE_LIMIT,
    LeakageReport,
    Z,
    auc_standard_error,
    event_stride,
)


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
    assert list(report.table()["measure"])[:2] == ["shuffled K-fold AUC (leaks)",
                                                   "purged K-fold AUC"]


def test_minimum_events_come_from_the_sharpe_test():
    assert MIN_EVENTS == 900  # (3 SE / 0.1)²: a Sharpe of noise has SE 1/√n
    assert Z * (1 / np.sqrt(MIN_EVENTS)) <= SHARPE_LIMIT < Z * (1 / np.sqrt(MIN_EVENTS - 1))


@pytest.mark.parametrize(("n_events", "max_samples", "stride"), [
    (0, 25_000, 1), (25_000, 25_000, 1), (25_001, 25_000, 2), (45_021, 25_000, 2),
    (10_042, 1_000, 11)])
def test_event_stride(n_events, max_samples, stride):
    assert event_stride(n_events, max_samples) == stride
    assert -(-n_events // stride) <= max(max_samples, 1)


def test_event_stride_refuses_a_cap_below_the_minimum():
    with pytest.raises(ValueError, match="max_samples must be at least 900"):
        event_stride(10_000, 899)


def test_stored_rows():
    report = LeakageReport(10_000, 12, 5, 100, 0.74, 0.52, 0.51, 0.004, 0.02, 0.01, stride=2)
    stored = report.stored("SP500")
    assert list(stored.columns) == list(COLUMNS) == ["symbol", "measure", "value", "note"]
    assert (stored["symbol"] == "SP500").all() and len(stored) == 5
    assert stored["value"].tolist() == report.table()["value"].tolist()
    assert report.as_dict()["stride"] == 2

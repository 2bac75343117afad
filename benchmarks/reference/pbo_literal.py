"""A literal transcription of CSCV (Bailey, Borwein, López de Prado & Zhu 2017),
reference/numerics.md §7.

Independent of :mod:`bot4_dagster.ml.stats`: for every split it concatenates the rows of the
in-sample and out-of-sample blocks, computes each strategy's Sharpe ratio (mean / std, ddof = 1)
from those rows, picks n* = argmax IS Sharpe, ranks the OOS Sharpe ratios with
``scipy.stats.rankdata`` (average ties) and takes the logit of rank/(N+1). It is obviously correct
and slow (O(T·N) per split); tests compare the block-sum implementation with it and benchmarks
time it as the reference.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.stats import rankdata


def _sharpe(rows: np.ndarray) -> np.ndarray:
    return rows.mean(axis=0) / rows.std(axis=0, ddof=1)


def pbo_literal(returns: object, n_blocks: int = 16) -> tuple[float, np.ndarray]:
    """(PBO, logits per split in ``itertools.combinations`` order) by the paper's recipe."""
    x = np.asarray(returns, dtype=np.float64)
    x = x[x.shape[0] % n_blocks:]  # drop the first T mod S rows
    blocks = np.split(x, n_blocks)
    n = x.shape[1]
    logits = []
    for inside in combinations(range(n_blocks), n_blocks // 2):
        outside = [b for b in range(n_blocks) if b not in inside]
        is_rows = np.concatenate([blocks[b] for b in inside])
        oos_rows = np.concatenate([blocks[b] for b in outside])
        best = int(np.argmax(_sharpe(is_rows)))
        rank = rankdata(_sharpe(oos_rows))[best]
        omega = rank / (n + 1)
        logits.append(np.log(omega / (1 - omega)))
    lam = np.array(logits)
    return float(np.mean(lam <= 0)), lam

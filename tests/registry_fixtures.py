"""Bundles and registries for the registry tests: small synthetic bundles (verified like any
other, written in milliseconds) and an embedded MLflow store copied from one migrated template,
so each test starts from an empty registry without paying MLflow's schema migration again."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import numpy as np

from bot4_dagster.ml.bundle import write_bundle

LINEAGE = {"git_commit": "0123456789abcdef0123456789abcdef01234567", "git_dirty": False,
           "run_id": "dagster-run-1", "partitions": {"symbol": "BTC-PERP"},
           "data_versions": {"ml/labels": "abc", "market/bars": "def"},
           "train_window": {"first_t0": "2022-01-01T00:00:00+00:00",
                            "last_t0": "2022-01-03T00:00:00+00:00", "samples": 4000},
           "profile": "quick", "parent": None}


def synthetic_manifest(symbol: str = "BTC-PERP", **lineage) -> dict:
    return {"symbol": symbol, "features": ["return_1", "garch_sigma"], "window": 16,
            "learners": ["logistic"], "blend": "mean", "regimes": {}, "calibrator": {},
            "lineage": {**LINEAGE, "partitions": {"symbol": symbol}, **lineage}}


def synthetic_bundle(root: Path, seed: int = 0, *, symbol: str = "BTC-PERP",
                     **lineage) -> Path:
    """A verifiable bundle (not servable: no serving layout) whose arrays depend on ``seed``."""
    arrays = {"w": np.random.default_rng(seed).normal(size=64)}
    return write_bundle(arrays, synthetic_manifest(symbol, **lineage), root).path


@cache
def _template(tmp: str) -> Path:
    from bot4_dagster.registry.model_registry import ModelRegistry

    home = Path(tmp) / "template"
    registry = ModelRegistry(home=home)
    registry.client.search_registered_models()  # migrate the schema once
    return home


def fresh_home(tmp_root: Path, target: Path) -> Path:
    """An empty embedded registry folder at ``target``, copied from the migrated template."""
    template = _template(str(tmp_root))
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("*.lock", "cache"))
    return target

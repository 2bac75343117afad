"""Registry benchmarks on the embedded MLflow store (SQLite under a temporary folder): a rollback
(the champion alias write, the failed version's tags and two audit records, under the lock)
against ``set_registered_model_alias`` alone; alias resolution; loading the champion by alias
(resolve, locate, verify, map, self-test); canary routing; registering the default bundle."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bot4_dagster.ml.bundle import write_bundle
from bot4_dagster.perf import Benchmark, Report
from bot4_dagster.perf.harness import Timing

GROUP = "registry"
ROLLBACKS = 100
REGISTRATIONS = 7
MANIFEST = {"symbol": "BTC-PERP", "features": ["return_1"], "window": 16,
            "learners": ["logistic"], "blend": "mean", "regimes": {}, "calibrator": {},
            "lineage": {"git_commit": "0" * 40, "run_id": "bench", "partitions": {"symbol":
                        "BTC-PERP"}, "data_versions": {"ml/labels": "bench"},
                        "train_window": {"samples": 1}, "profile": "quick", "parent": None}}


def _registry(root: Path, name: str):
    from bot4_dagster.registry.model_registry import ModelRegistry

    return ModelRegistry(home=root / name)


def _bench_rollback(report: Report, root: Path) -> None:
    registry = _registry(root, "rollback")
    for seed in range(ROLLBACKS + 1):
        arrays = {"w": np.random.default_rng(seed).normal(size=8)}
        registry.register(write_bundle(arrays, MANIFEST, root / "bundles").path)
    name = "bot4.triple_barrier.BTC-PERP"
    registry.promote(name, "1")
    ours, alias_only = [], []
    for version in range(2, ROLLBACKS + 2):
        registry.promote(name, str(version))  # not timed: makes a champion to roll back
        start = time.perf_counter_ns()
        registry.rollback(name, reason="benchmark", automatic=True)
        ours.append((time.perf_counter_ns() - start) / 1e9)
        start = time.perf_counter_ns()
        registry.client.set_registered_model_alias(name, "canary", "1")
        alias_only.append((time.perf_counter_ns() - start) / 1e9)
    report.add(Benchmark(
        "rollback", Timing(tuple(ours), 1), group=GROUP, unit="rollback", items=1,
        reference_name="set_registered_model_alias alone",
        reference=Timing(tuple(alias_only), 1), goal="p99 <= 100 ms",
        notes=f"{ROLLBACKS} rollbacks, each after a promotion: recovery scan, the plan (champion "
              "alias, delete previous_champion, 4 tags on the failed version) and two audit "
              "records (WAL, synchronous=FULL), under the file lock; interleaved with the "
              "reference"))
    report.measure("resolve_alias", lambda: registry.resolve(name, "champion"), group=GROUP,
                   unit="resolution", items=1, goal="p99 <= 50 ms",
                   notes="get_model_version_by_alias on SQLite: once per decision cycle, "
                         "then the version is pinned")


def _bench_load(report: Report, root: Path, bundle: Path) -> None:
    registry = _registry(root, "load")
    pinned = registry.register(bundle).pinned
    registry.promote(pinned.name, pinned.version)
    registry.load(pinned.name)  # kernels compiled and cached
    report.measure("load_champion_by_alias", lambda: registry.load(pinned.name), group=GROUP,
                   unit="load", items=1, goal="p50 <= 50 ms", warmup=2,
                   notes="resolve the alias, locate the bundle in the artifact store, check its "
                         "manifest against the artifact_sha256 tag, then Champion.load (sha256 "
                         "of every file, map, self-test); no mlflow.pyfunc")


def _bench_register(report: Report, root: Path, bundle: Path) -> None:
    samples = []
    for i in range(REGISTRATIONS):
        registry = _registry(root, f"register{i}")
        registry.client.search_registered_models()  # the schema migration is not timed
        start = time.perf_counter_ns()
        registry.register(bundle)
        samples.append((time.perf_counter_ns() - start) / 1e9)
        shutil.rmtree(registry.home)
    size = sum(p.stat().st_size for p in bundle.iterdir())
    report.add(Benchmark(
        "register_default_bundle", Timing(tuple(samples), 1), group=GROUP, unit="bundle",
        items=1, notes=f"verify the {size / 1e6:.2f} MB bundle, then run, logged model, "
                       "artifacts, version with lineage tags, two audit records; each on a "
                       "fresh registry (the first registration creates the experiment)"))


def _bench_routing(report: Report) -> None:
    from bot4_dagster.registry.promotion import routes_to_canary

    report.measure("canary_routing", lambda: routes_to_canary("triple_barrier", "BTC-PERP",
                                                              0.10, "rollout-1"),
                   group=GROUP, unit="decision", items=1, goal="p99 <= 1 µs",
                   notes="keyed blake2b of (strategy, symbol, rollout salt), cached per pair (the "
                         "first decision for a pair hashes: ~2 µs); sticky and monotone in the "
                         "share")


def run(report: Report) -> None:
    names = ("rollback", "resolve_alias", "load_champion", "register_default", "canary_routing")
    if not any(report.wants(name, GROUP) for name in names):
        return
    root = Path(tempfile.mkdtemp(prefix="bot4-bench-registry-"))
    try:
        if report.wants("rollback", GROUP) or report.wants("resolve_alias", GROUP):
            _bench_rollback(report, root)
        if report.wants("load_champion", GROUP) or report.wants("register_default", GROUP):
            from .bench_serving import _built

            bundle = Path(_built()["path"])
            if report.wants("load_champion", GROUP):
                _bench_load(report, root, bundle)
            if report.wants("register_default", GROUP):
                _bench_register(report, root, bundle)
        if report.wants("canary_routing", GROUP):
            _bench_routing(report)
    finally:
        shutil.rmtree(root, ignore_errors=True)

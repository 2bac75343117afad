"""The MLflow registry (reference/trading.md §5, M1-M5): registration with mandatory lineage,
aliases and no stages, loading by alias through the verifying champion, pickle refused, the
rollback as alias and tag writes, and an audit record for every decision."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from registry_fixtures import fresh_home, synthetic_bundle, synthetic_manifest

from bot4_dagster.ml.bundle import MANIFEST, WEIGHTS, BundleError, write_bundle
from bot4_dagster.registry.audit import DONE, STARTED
from bot4_dagster.registry.lineage import MANDATORY, LineageError
from bot4_dagster.registry.model_registry import (
    CHAMPION,
    PREVIOUS,
    ModelRegistry,
    RegistryError,
)

ROOT = Path(__file__).resolve().parents[1]
NAME = "bot4.triple_barrier.BTC-PERP"


@pytest.fixture
def registry(tmp_path_factory, tmp_path) -> ModelRegistry:
    return ModelRegistry(home=fresh_home(tmp_path_factory.getbasetemp(), tmp_path / "mlflow"))


@pytest.fixture
def bundles(tmp_path) -> list[Path]:
    first = synthetic_bundle(tmp_path / "candidates", 1)
    return [first, synthetic_bundle(tmp_path / "candidates", 2, parent=first.name),
            synthetic_bundle(tmp_path / "candidates", 3)]


def _champion_chain(registry, bundles) -> None:
    """Versions 1, 2, 3; 1 was champion, 2 is champion now, 3 is the challenger."""
    for bundle in bundles:
        registry.register(bundle)
    registry.promote(NAME, "1")
    registry.promote(NAME, "2")
    registry.assign_challenger(NAME, "3")


# --- M1: lineage ----------------------------------------------------------------------------


@pytest.mark.parametrize(("lineage", "missing"), [
    ({"run_id": None}, "dagster_run_id"),
    ({"git_commit": None}, "git_sha"),
    ({"data_versions": {}}, "data_versions"),
    ({"train_window": None}, "train_window"),
])
def test_m1_registration_without_mandatory_lineage_fails_and_writes_nothing(
        registry, tmp_path, lineage, missing):
    bundle = synthetic_bundle(tmp_path / "candidates", 9, **lineage)
    with pytest.raises(LineageError, match=missing):
        registry.register(bundle)
    assert registry.client.search_registered_models() == []
    assert registry.audit.records() == []


def test_m1_versions_increment_and_carry_run_model_and_sha(registry, bundles):
    versions = [registry.register(b).pinned for b in bundles]
    assert [v.version for v in versions] == ["1", "2", "3"]
    for bundle, v in zip(bundles, versions, strict=True):
        assert set(MANDATORY) <= set(v.tags)
        assert v.run_id and v.tags["model_id"].startswith("m-")
        assert v.tags["artifact_sha256"] == v.sha256
        assert v.sha256.startswith(bundle.name)
        assert registry.client.get_run(v.run_id).data.tags["dagster_run_id"] == "dagster-run-1"
    assert versions[1].tags["parent_version"] == "1"
    assert versions[0].tags["parent_version"] == "none"
    assert json.loads(versions[0].tags["data_versions"]) == {"market/bars": "def",
                                                             "ml/labels": "abc"}


def test_registering_the_same_bundle_again_returns_its_version(registry, bundles):
    first = registry.register(bundles[0])
    again = registry.register(bundles[0])
    assert again.reused and not first.reused and again.pinned.version == "1"
    assert len(registry.client.search_model_versions(f"name = '{NAME}'")) == 1


def test_a_damaged_bundle_is_refused_before_any_write(registry, bundles):
    weights = bundles[0] / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(BundleError, match="bytes"):
        registry.register(bundles[0])
    assert registry.client.search_registered_models() == []


# --- M2: aliases ----------------------------------------------------------------------------


def test_m2_moving_an_alias_repoints_one_version_and_a_version_holds_several(
        registry, bundles):
    _champion_chain(registry, bundles)
    assert registry.aliases(NAME) == {"champion": "2", "previous_champion": "1",
                                      "shadow": "3", "challenger": "3"}
    pinned = registry.resolve(NAME, CHAMPION)
    registry.promote(NAME, "3")
    assert registry.aliases(NAME) == {"champion": "3", "previous_champion": "2"}
    assert pinned.version == "2"  # a pinned version does not follow the alias
    registry.assign_challenger(NAME, "1")
    assert sorted(registry.client.get_model_version(NAME, "1").aliases) == [
        "challenger", "shadow"]


def test_an_unknown_alias_and_a_missing_alias_are_named(registry, bundles):
    registry.register(bundles[0])
    with pytest.raises(RegistryError, match="unknown alias 'production'"):
        registry.resolve(NAME, "production")
    with pytest.raises(RegistryError, match="no version has the alias 'champion'"):
        registry.resolve(NAME, CHAMPION)


def test_m3_no_stages_anywhere():
    pattern = re.compile(r"transition_model_version_stage|current_stage|archive_existing")
    sources = [*ROOT.glob("bot4_dagster/**/*.py"), *ROOT.glob("benchmarks/**/*.py")]
    assert sources
    offenders = [str(p) for p in sources if pattern.search(p.read_text())]
    assert offenders == []


# --- M4 / M5: what is loaded ----------------------------------------------------------------


def test_m4_locate_verifies_the_bundle_against_the_version_tag(registry, bundles):
    registry.register(bundles[0])
    registry.promote(NAME, "1")
    pinned = registry.resolve(NAME, CHAMPION)
    path = registry.locate(pinned)
    assert path.name == bundles[0].name and path != bundles[0]  # the store's own copy
    (path / MANIFEST).write_text((path / MANIFEST).read_text().replace("16", "17", 1))
    with pytest.raises(BundleError, match="artifact_sha256 tag says"):
        registry.locate(pinned)
    assert "version 1:" in registry.check(NAME)["champion"]


def test_m4_a_512_mb_bundle_maps_without_reading_it_into_memory(tmp_path):
    """Verifying hashes every byte, but mapping touches none: the resident set grows by far
    less than the file (measured in a fresh process)."""
    big = write_bundle({"w": np.ones(128 * 1024 * 1024, dtype=np.float32)},
                       synthetic_manifest(), tmp_path / "big")
    script = textwrap.dedent(f"""
        import resource, sys
        from bot4_dagster.ml.bundle import read_bundle

        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * resource.getpagesize()

        before = rss()
        bundle = read_bundle({str(big.path)!r})
        w = bundle.arrays["w"]
        assert not w.flags.writeable and w.size == 128 * 1024 * 1024
        print(rss() - before)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    grown = int(out.split()[-1])
    assert grown < 0.05 * big.size, f"resident set grew by {grown:,} bytes"


def test_m5_pickle_files_are_refused_at_registration_and_at_loading(registry, bundles):
    (bundles[0] / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(RegistryError, match=r"pickle and its kin\): model.pkl"):
        registry.register(bundles[0])
    registry.register(bundles[1])
    registry.promote(NAME, "1")
    pinned = registry.resolve(NAME, CHAMPION)
    (registry.locate(pinned) / "extra.joblib").write_bytes(b"x")
    with pytest.raises(RegistryError, match=r"extra\.joblib"):
        registry.locate(pinned)


# --- rollback, quarantine, audit ------------------------------------------------------------


def test_rollback_repoints_the_champion_and_quarantines_the_failed_version(registry, bundles):
    _champion_chain(registry, bundles)
    record = registry.rollback(NAME, reason="UCB99 < -5 bps three times", automatic=True,
                               metrics={"ucb99": -7.5})
    assert record.version == "2"
    assert registry.aliases(NAME) == {"champion": "1", "challenger": "3", "shadow": "3"}
    tags = registry.version(NAME, "2").tags
    assert tags["quarantined"] == "true" and tags["rollback_reason"].startswith("UCB99")
    assert json.loads(tags["metrics_snapshot"]) == {"ucb99": -7.5}
    assert record.plan[0] == ["set_alias", CHAMPION, "1"]  # the one alias write comes first
    with pytest.raises(RegistryError, match="quarantined"):
        registry.promote(NAME, "2")
    history = registry.history(NAME)
    assert history.quarantined == {"2"} and len(history.rollbacks) == 1
    assert history.last_alias_change is not None and not history.frozen
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback(NAME, reason="again")


def test_the_flap_guard_freezes_auto_deploy(registry, bundles):
    _champion_chain(registry, bundles)
    registry.rollback(NAME, reason="guardrail: drawdown", automatic=True, freeze=True)
    assert registry.client.get_registered_model(NAME).tags["auto_deploy"] == "frozen"
    assert registry.history(NAME).frozen


def test_every_decision_is_audited_with_its_plan_and_trace(registry, bundles):
    _champion_chain(registry, bundles)
    registry.record(NAME, version="3", inputs={"n": 120}, trace=["inconclusive: n < n_min"])
    records = registry.audit.records(NAME)
    kinds = [(r.kind, r.status) for r in records]
    assert kinds == [("register", STARTED), ("register", DONE)] * 3 + [
        ("promote", STARTED), ("promote", DONE)] * 2 + [
        ("challenger", STARTED), ("challenger", DONE), ("decision", DONE)]
    promoted = records[9]
    assert promoted.plan[:2] == [["set_alias", PREVIOUS, "1"], ["set_alias", CHAMPION, "2"]]
    assert promoted.trace[-1] == "version 2 is the champion"
    assert records[-1].inputs == {"n": 120}
    assert registry.audit.unfinished() == []


def test_the_embedded_store_lives_under_bot4_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BOT4_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry = ModelRegistry()
    assert registry.embedded
    assert registry.tracking_uri == f"sqlite:///{tmp_path / 'state' / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert not ModelRegistry(home=tmp_path / "other").embedded


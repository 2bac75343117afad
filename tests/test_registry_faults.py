"""The registry under faults: a process killed (SIGKILL) at every step of a registration, a
promotion and a rollback leaves every alias on an existing, verified version, and the audit log
says what happened once the next registry operation has recovered; two processes registering at
once both get their version; and the same registry works against a real ``mlflow server``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path

import pytest
from registry_fixtures import fresh_home, synthetic_bundle

from bot4_dagster.registry.audit import DONE, FAILED, RECOVERED
from bot4_dagster.registry.model_registry import CHAMPION, ModelRegistry

NAME = "bot4.triple_barrier.BTC-PERP"
OPERATIONS = {
    "register": lambda r, bundle: r.register(bundle),
    "promote": lambda r, bundle: r.promote(NAME, "3"),
    "rollback": lambda r, bundle: r.rollback(NAME, reason="UCB99 below -5 bps", automatic=True),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    """A registry home with versions 1-3 (1 previous champion, 2 champion, 3 challenger) and a
    fourth bundle not yet registered."""
    root = tmp_path_factory.mktemp("faults")
    home = fresh_home(tmp_path_factory.getbasetemp(), root / "home")
    registry = ModelRegistry(home=home)
    for seed in (1, 2, 3):
        registry.register(synthetic_bundle(root / "candidates", seed))
    registry.promote(NAME, "1")
    registry.promote(NAME, "2")
    registry.assign_challenger(NAME, "3")
    return home, synthetic_bundle(root / "candidates", 4)


def _run_in_child(home: Path, operation: str, bundle: Path, crash_at: int | None) -> int:
    """Run ``operation`` in a forked process that SIGKILLs itself at its ``crash_at``-th step;
    the child's wait status."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            steps = 0

            def on_step(name: str) -> None:
                nonlocal steps
                steps += 1
                if steps == crash_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            OPERATIONS[operation](ModelRegistry(home=home, on_step=on_step), bundle)
            os._exit(0)
        except BaseException:
            os._exit(3)
    return os.waitpid(pid, 0)[1]


def _steps(home: Path, operation: str, bundle: Path) -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    registry = ModelRegistry(home=home, on_step=names.append)
    OPERATIONS[operation](registry, bundle)
    return names, registry.aliases(NAME)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_kill_at_every_step_is_recovered(base, tmp_path, operation):
    home, bundle = base
    clean = shutil.copytree(home, tmp_path / "clean")
    steps, after = _steps(clean, operation, bundle)
    before = ModelRegistry(home=home).aliases(NAME)
    assert len(steps) >= 4 and (after != before) == (operation != "register")
    for k, step in enumerate(steps, start=1):
        crashed = shutil.copytree(home, tmp_path / f"crash{k}")
        status = _run_in_child(crashed, operation, bundle, crash_at=k)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, step
        registry = ModelRegistry(home=crashed)
        registry.recover()
        checked = registry.check(NAME)
        assert all(v.endswith("verified") for v in checked.values()), (step, checked)
        assert registry.audit.unfinished() == [], step
        last = registry.audit.records(NAME)[-1]
        assert last.kind == operation, step
        if operation == "register" and last.status == FAILED:  # killed before the version
            assert step in ("register: audit started", "register: run created",
                            "register: artifacts logged"), step
            assert registry.aliases(NAME) == before
            continue
        assert last.status in (DONE, RECOVERED), step
        assert registry.aliases(NAME) == after, step
        assert (last.status == DONE) == step.endswith("audit done"), step
    if operation == "register":  # a failed registration is simply made again
        again = ModelRegistry(home=tmp_path / "crash1").register(bundle)
        assert again.pinned.version == "4" and not again.reused


def test_two_processes_registering_at_once_get_two_versions(tmp_path):
    """Into a registry that does not exist yet: both create it, one migrates MLflow's schema."""
    home = tmp_path / "home"
    bundles = [synthetic_bundle(tmp_path / "candidates", seed) for seed in (11, 12)]
    go = tmp_path / "go"
    pids = []
    for i, bundle in enumerate(bundles):
        pid = os.fork()
        if pid == 0:
            try:
                while not go.exists():
                    time.sleep(0.001)
                ModelRegistry(home=home).register(bundle)
                os._exit(0)
            except BaseException:
                (tmp_path / f"child{i}.err").write_text(traceback.format_exc())
                os._exit(3)
        pids.append(pid)
    go.touch()
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
    assert codes == [0, 0], [p.read_text() for p in tmp_path.glob("child*.err")]
    registry = ModelRegistry(home=home)
    versions = registry.client.search_model_versions(f"name = '{NAME}'")
    assert sorted(v.version for v in versions) == [1, 2]
    assert {v.tags["bundle_id"] for v in versions} == {b.name for b in bundles}
    assert [r.status for r in registry.audit.records(NAME)].count(DONE) == 2


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on a free loopback port, stopped by its PID afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115  (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY":
                                                   "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer in 120 s"
            time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.slow
def test_the_registry_works_against_a_real_mlflow_server(mlflow_server, tmp_path):
    registry = ModelRegistry(mlflow_server, home=tmp_path / "client")
    assert not registry.embedded
    bundles = [synthetic_bundle(tmp_path / "candidates", seed) for seed in (1, 2)]
    first = registry.register(bundles[0]).pinned
    assert first.source.startswith("models:/m-")
    registry.register(bundles[1])
    registry.promote(NAME, "1")
    registry.promote(NAME, "2")
    pinned = registry.resolve(NAME, CHAMPION)
    path = registry.locate(pinned)  # downloaded through the server into the verified cache
    assert path.is_relative_to(tmp_path / "client" / "cache") and path.name == bundles[1].name
    assert registry.check(NAME) == {"champion": "version 2 verified",
                                    "previous_champion": "version 1 verified"}
    registry.rollback(NAME, reason="guardrail: drawdown 9% > 8%")
    assert registry.aliases(NAME) == {"champion": "1"}
    assert registry.version(NAME, "2").tags["quarantined"] == "true"

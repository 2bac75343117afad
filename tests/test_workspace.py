"""The code location that ``make ui`` serves: workspace.yaml validates, ``dg check defs`` and
``dg list defs`` load it from [tool.dg], and ``make ui`` (``dg dev``) shows the assets on
127.0.0.1 without Dagster's "use 'dg dev' instead" supersession warning."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the venv running the tests: ROOT/.venv under `make test`
DAGSTER = VENV / "bin" / "dagster"
DG = VENV / "bin" / "dg"
ASSETS = {"market/bars", "market/trades", "market/quotes", "features/microstructure_features",
          "ml/garch_volatility", "perf/manifest"}


def _env(**extra: str) -> dict[str, str]:
    """This environment without a DAGSTER_HOME or an enclosing make's flags (jobserver fds)."""
    drop = {"DAGSTER_HOME", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def test_workspace_validates(tmp_path):
    env = _env(DAGSTER_HOME=str(tmp_path))
    result = subprocess.run([str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dg_check_and_list_defs(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = _env(DAGSTER_HOME=str(home), BOT4_HOME=str(tmp_path / "state"), VIRTUAL_ENV=str(VENV))
    check = subprocess.run([str(DG), "check", "defs"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All definitions loaded successfully." in check.stdout
    listed = subprocess.run([str(DG), "list", "defs", "--json"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    defs = json.loads(listed.stdout)
    assert ASSETS.issubset({a["asset_key"] for a in defs["assets"]})
    assert defs["asset_checks"] and defs["jobs"] and defs["schedules"] and defs["sensors"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_make_ui_serves_the_asset_graph_on_loopback(tmp_path):
    """Runs the Makefile's own ``ui`` recipe (``-o`` skips the install step, VENV points it at
    the venv under test) on a free port, with BOT4_HOME in tmp_path as ``make ui UI_PORT=...``
    would, so DAGSTER_HOME is what ``bot4 home`` gives the Makefile."""
    port = _free_port()
    state = tmp_path / "state"
    log_path = tmp_path / "make_ui.log"
    command = ["make", "-s", "-o", f"{VENV}/.installed-stamp", "ui", f"VENV={VENV}",
               f"UI_PORT={port}", f"BOT4_HOME={state}"]
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group, so the whole tree can be stopped
    try:
        deadline = time.monotonic() + 180
        keys = None
        while time.monotonic() < deadline and keys is None and server.poll() is None:
            time.sleep(1)
            try:
                nodes = _graphql(port, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
                keys = {"/".join(n["assetKey"]["path"]) for n in nodes} or None
            except OSError:
                continue
        assert keys is not None, (f"make ui did not answer on 127.0.0.1:{port}:\n"
                                  f"{log_path.read_text()}")
        assert ASSETS.issubset(keys)
        locations = _graphql(port, "{ workspaceOrError { ... on Workspace { locationEntries {"
                                   " name loadStatus } } } }")["data"]["workspaceOrError"]
        assert locations["locationEntries"] == [{"name": "bot4_dagster", "loadStatus": "LOADED"}]
    finally:
        _stop_tree(server)
    output = log_path.read_text()
    assert f"Serving dagster-webserver on http://127.0.0.1:{port}" in output, output
    assert "SupersessionWarning" not in output and "Use 'dg dev' instead" not in output, output
    assert "does not match the virtual environment" not in output, output
    # the instance is the one `bot4 home` creates under BOT4_HOME, with telemetry off
    home = state / "dagster_home"
    assert "enabled: false" in (home / "dagster.yaml").read_text()
    assert (home / "history" / "runs.db").is_file()


def _stop_tree(server: subprocess.Popen) -> None:
    """SIGINT to the process group (as Ctrl-C would), then make sure every process it started is
    gone: code servers may run in process groups of their own."""
    children = psutil.Process(server.pid).children(recursive=True)
    os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    alive = [c for c in children if c.is_running()]
    for child in alive:
        child.terminate()
    _, still = psutil.wait_procs(alive, timeout=10)
    for child in still:
        child.kill()

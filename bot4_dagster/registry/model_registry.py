"""The model registry on MLflow 3: one registered model per (strategy, symbol), one version per
model candidate bundle, aliases instead of stages, and an audit record for every decision.

MLflow keeps what it is good at, versions, tags, aliases and the artifact store, and the serving
path never loads through it: ``load`` resolves an alias once, locates the bundle (a local path
on the embedded store, a verified download cache for a remote server) and hands it to
``Champion.load``, which checks every sha256 before it maps the weights.

Every write goes through a plan: a list of idempotent alias and tag writes, recorded in the
audit log before the first MLflow call and closed after the last. A process killed anywhere in
between leaves an unfinished plan that the next registry operation (or ``recover()``) finishes,
so aliases never stay half-moved. Processes that share ``BOT4_HOME`` serialise their operations
on a file lock.

Embedded default: SQLite store ``BOT4_HOME/mlflow/mlflow.db`` and artifacts under
``BOT4_HOME/mlflow/artifacts``; ``MLFLOW_TRACKING_URI`` (or ``tracking_uri=``) points it at a
team's server instead.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ml.bundle import MANIFEST, BundleError, read_bundle
from ..serving.champion import Champion
from ..settings import registry_dir
from .audit import DONE, FAILED, RECOVERED, STARTED, AuditLog, Record
from .lineage import LineageError, lineage_tags, missing_tags, unsafe_files
from .rollback import History

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # bot4 never phones home
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from mlflow import MlflowClient  # after the two defaults above
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

CHAMPION, CHALLENGER, PREVIOUS, SHADOW, CANARY = (
    "champion", "challenger", "previous_champion", "shadow", "canary")
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS, SHADOW, CANARY)
DEFAULT_STRATEGY = "triple_barrier"  # also RegistryResource.strategy
EXPERIMENT = "bot4-model-candidates"
QUARANTINED = "quarantined"


#: the version an operation is about, and its writes in order
Plan = tuple[str | None, list[list[Any]]]


class RegistryError(RuntimeError):
    """A registry operation refused, with the rule it broke."""


def model_name(strategy: str, symbol: str) -> str:
    """The registered model of (strategy, symbol); MLflow names may not hold '/' or ':'."""
    name = f"bot4.{strategy}.{symbol}"
    if any(c in name for c in "/:") or not strategy or not symbol:
        raise RegistryError(f"cannot name a registered model after strategy {strategy!r} and "
                            f"symbol {symbol!r}: '/' and ':' are not allowed")
    return name


@dataclass(frozen=True)
class Pinned:
    """A version resolved from an alias: what a decision cycle serves and logs with every
    prediction and order."""

    name: str
    alias: str | None
    version: str
    source: str  # the version's source: the bundle directory, or models:/<model_id>
    sha256: str  # of its manifest.json, from the version's artifact_sha256 tag
    run_id: str | None
    tags: Mapping[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Loaded:
    pinned: Pinned
    champion: Champion
    path: Path


@dataclass(frozen=True)
class Registered:
    pinned: Pinned
    reused: bool  # True when this bundle was registered before (same manifest sha256)


class ModelRegistry:
    """The registry of bot4's model candidates on the MLflow server at ``tracking_uri``.

    ``on_step(name)`` is called between every two writes of an operation (MLflow calls and
    audit records); fault-injection tests kill the process there."""

    def __init__(self, tracking_uri: str | None = None, *, home: Path | str | None = None,
                 on_step: Callable[[str], None] | None = None):
        self.home = Path(home) if home is not None else registry_dir()
        self.home.mkdir(parents=True, exist_ok=True)
        self.embedded = not (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
        self.tracking_uri = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                             or f"sqlite:///{self.home / 'mlflow.db'}")
        self.audit = AuditLog(self.home / "audit.sqlite")
        self.cache = self.home / "cache"
        self._on_step = on_step or (lambda name: None)
        self._experiment: str | None = None
        # MLflow migrates a new SQLite store on first use, which two processes must not do at once
        with self._locked():
            self.client = MlflowClient(tracking_uri=self.tracking_uri,
                                       registry_uri=self.tracking_uri)
            if self.embedded:
                self.client.search_experiments(max_results=1)
                self.client.search_registered_models(max_results=1)
                _write_ahead_log(self.home / "mlflow.db")

    # --- registration -----------------------------------------------------------------------

    def register(self, bundle_dir: Path | str, *, strategy: str = DEFAULT_STRATEGY,
                 actor: str = "") -> Registered:
        """Register the verified bundle at ``bundle_dir`` as a new version of its (strategy,
        symbol) model, with the mandatory lineage tags; the same bundle again returns its
        existing version. Refused, before any write, for an unverifiable bundle, a pickle-like
        file (M5) or incomplete lineage (M1)."""
        path = Path(bundle_dir).resolve()
        unsafe = unsafe_files(path) if path.is_dir() else []
        if unsafe:
            raise RegistryError(f"{path}: refused, it holds files that may run code when "
                                f"loaded (pickle and its kin): {', '.join(unsafe)}")
        manifest = read_bundle(path).manifest  # every sha256 and the header, or BundleError
        sha = _sha256(path / MANIFEST)
        name = model_name(strategy, manifest["symbol"])
        with self._locked():
            self._recover_unlocked()
            existing = self._by_sha(name, sha)
            if existing is not None:
                return Registered(existing, reused=True)
            parent = self._parent_version(name, manifest["lineage"].get("parent"))
            tags = lineage_tags(manifest, sha, parent)
            inputs = {"bundle": str(path), "bundle_id": path.name, "tags": tags}
            started = self.audit.append(model=name, kind="register", status=STARTED,
                                        actor=actor, inputs=inputs,
                                        trace=[f"register bundle {path.name} of "
                                               f"{manifest['symbol']}"])
            self._step("register: audit started")
            pinned = self._create_version(name, path, manifest, tags, strategy)
            self.audit.append(model=name, kind="register", status=DONE, version=pinned.version,
                              actor=actor, inputs=inputs, operation=started.operation,
                              trace=[f"registered as version {pinned.version} ({pinned.uri})"])
            self._step("register: audit done")
            return Registered(pinned, reused=False)

    def _create_version(self, name: str, path: Path, manifest: Mapping[str, Any],
                        tags: dict[str, str], strategy: str) -> Pinned:
        experiment = self._experiment_id()
        symbol = manifest["symbol"]
        run = self.client.create_run(experiment, run_name=f"{symbol} {path.name}",
                                     tags={**tags, "symbol": symbol, "strategy": strategy})
        run_id = run.info.run_id
        self._step("register: run created")
        logged = self.client.create_logged_model(experiment, name=path.name,
                                                 source_run_id=run_id, tags=tags)
        self.client.log_model_artifacts(logged.model_id, str(path), artifact_path=path.name)
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self.client.set_terminated(run_id)
        self._step("register: artifacts logged")
        self._ensure_model(name, strategy, symbol)
        # a server resolves models:/<model_id> itself; the embedded store's lookup would use the
        # process-wide tracking URI, so it gets the artifact location directly
        source = (f"{logged.artifact_location.rstrip('/')}/{path.name}" if self.embedded
                  else logged.model_uri)
        version = self.client.create_model_version(
            name, source=source, run_id=run_id, model_id=logged.model_id,
            tags={**tags, "model_id": logged.model_id, "bundle_id": path.name,
                  "profile": str(manifest["lineage"].get("profile"))},
            description=f"model candidate bundle {path.name} of {symbol}")
        self._step("register: version created")
        return _pinned(name, None, version)

    def _experiment_id(self) -> str:
        if self._experiment is None:
            found = self.client.get_experiment_by_name(EXPERIMENT)
            if found is not None:
                self._experiment = found.experiment_id
            else:
                location = (self.home / "artifacts").as_uri() if self.embedded else None
                try:
                    self._experiment = self.client.create_experiment(
                        EXPERIMENT, artifact_location=location)
                except MlflowException as exc:  # created meanwhile by another process
                    found = self.client.get_experiment_by_name(EXPERIMENT)
                    if found is None:
                        raise exc from None
                    self._experiment = found.experiment_id
        return self._experiment

    def _ensure_model(self, name: str, strategy: str, symbol: str) -> None:
        try:
            self.client.create_registered_model(
                name, tags={"strategy": strategy, "symbol": symbol},
                description=f"bot4 models of strategy {strategy} on {symbol}")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _by_sha(self, name: str, sha: str) -> Pinned | None:
        try:
            found = self.client.search_model_versions(
                f"name = '{name}' and tag.artifact_sha256 = '{sha}'")
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return _pinned(name, None, min(found, key=lambda v: int(v.version))) if found else None

    def _parent_version(self, name: str, parent_bundle: str | None) -> str | None:
        if not parent_bundle:
            return None
        found = self.client.search_model_versions(
            f"name = '{name}' and tag.bundle_id = '{parent_bundle}'")
        return min((v.version for v in found), key=int) if found else None

    # --- reading ----------------------------------------------------------------------------

    def resolve(self, name: str, alias: str) -> Pinned:
        """The version ``alias`` points at now: resolve once per decision cycle, then serve
        the pinned version until the next reload."""
        _check_alias(alias)
        try:
            version = self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            raise RegistryError(f"{name}: no version has the alias {alias!r} "
                                f"({exc.message})") from None
        return _pinned(name, alias, version)

    def version(self, name: str, version: str) -> Pinned:
        return _pinned(name, None, self.client.get_model_version(name, str(version)))

    def aliases(self, name: str) -> dict[str, str]:
        """alias -> version of ``name``."""
        return {alias: str(v) for alias, v in
                self.client.get_registered_model(name).aliases.items()}

    def locate(self, pinned: Pinned) -> Path:
        """The bundle directory of ``pinned`` on this machine, verified against the version's
        artifact_sha256 tag: the store's own files for a local artifact root, else a download
        into ``cache/`` (atomic: a temporary folder, then a rename)."""
        where = self.client.get_model_version_download_uri(pinned.name, pinned.version)
        bundle_id = pinned.tags.get("bundle_id", "")
        if not where.rstrip("/").endswith("/" + bundle_id):
            where = f"{where.rstrip('/')}/{bundle_id}"
        parsed = urllib.parse.urlparse(where)
        if parsed.scheme in ("", "file"):
            path = Path(urllib.parse.unquote(parsed.path))
        else:
            path = self.cache / pinned.sha256[:16] / Path(parsed.path).name
            if not path.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                    import mlflow.artifacts

                    got = Path(mlflow.artifacts.download_artifacts(
                        artifact_uri=where, dst_path=tmp,
                        tracking_uri=self.tracking_uri))
                    try:
                        os.rename(got, path)
                    except OSError:
                        if not path.is_dir():  # not merely downloaded meanwhile by another
                            raise
        unsafe = unsafe_files(path) if path.is_dir() else []
        if unsafe:
            raise RegistryError(f"{pinned.uri}: refused, its artifact holds pickle-like files: "
                                f"{', '.join(unsafe)}")
        if not (path / MANIFEST).is_file():
            raise BundleError(f"{pinned.uri}: no bundle at {path}")
        actual = _sha256(path / MANIFEST)
        if actual != pinned.sha256:
            raise BundleError(f"{pinned.uri}: the bundle at {path} has manifest sha256 {actual}, "
                              f"the version's artifact_sha256 tag says {pinned.sha256}")
        return path

    def load(self, name: str, alias: str = CHAMPION, *, selftest: bool = True) -> Loaded:
        """Resolve ``alias`` once, locate the bundle and map it through ``Champion.load``
        (which verifies every file before mapping): never through mlflow.pyfunc."""
        pinned = self.resolve(name, alias)
        if pinned.tags.get(QUARANTINED) == "true" and alias == CHAMPION:
            raise RegistryError(f"{pinned.uri} is quarantined and still holds the champion "
                                "alias: refusing to serve it")
        path = self.locate(pinned)
        return Loaded(pinned, Champion.load(path, selftest=selftest), path)

    def check(self, name: str) -> dict[str, str]:
        """alias -> 'version N verified' or the problem: every alias must point at an
        existing version whose bundle verifies."""
        out = {}
        for alias, version in sorted(self.aliases(name).items()):
            try:
                pinned = self.version(name, version)
                missing = missing_tags(pinned.tags)
                if missing:
                    raise RegistryError(f"lineage tags missing: {', '.join(missing)}")
                read_bundle(self.locate(pinned))
                out[alias] = f"version {version} verified"
            except (RegistryError, BundleError, MlflowException, OSError) as exc:
                out[alias] = f"version {version}: {exc}"
        return out

    def history(self, name: str) -> History:
        """What the rollback rule remembers, rebuilt from the audit log and the tags."""
        changes, rollbacks = [], []
        for record in self.audit.records(name):
            if record.status in (DONE, RECOVERED) and any(
                    step[0] in ("set_alias", "delete_alias") for step in record.plan):
                changes.append(_when(record))
                if record.kind == "rollback" and record.inputs.get("automatic"):
                    rollbacks.append(_when(record))
        model = self.client.get_registered_model(name)
        quarantined = frozenset(str(v.version) for v in self.client.search_model_versions(
            f"name = '{name}' and tag.{QUARANTINED} = 'true'"))
        return History(last_alias_change=max(changes) if changes else None,
                       rollbacks=tuple(rollbacks), quarantined=quarantined,
                       frozen=model.tags.get("auto_deploy") == "frozen")

    # --- decisions --------------------------------------------------------------------------

    def assign_challenger(self, name: str, version: str, *, actor: str = "",
                          inputs: Mapping[str, Any] | None = None,
                          trace: Sequence[str] = ()) -> Record:
        """``challenger`` and ``shadow`` → ``version``: it sees the champion's bars, predicts
        and paper-trades, and places no order."""
        def plan() -> Plan:
            self._promotable(name, version)
            return version, [["set_alias", CHALLENGER, version], ["set_alias", SHADOW, version]]
        return self._execute(name, "challenger", plan, actor, inputs,
                             [*trace, f"version {version} is the challenger, in shadow"])

    def start_canary(self, name: str, version: str, share: float, *, actor: str = "",
                     inputs: Mapping[str, Any] | None = None,
                     trace: Sequence[str] = ()) -> Record:
        """``canary`` → ``version`` at capital ``share`` (a tag the router reads)."""
        if not 0.0 < share < 1.0:
            raise RegistryError(f"a canary share is in (0, 1), got {share}")

        def plan() -> Plan:
            self._promotable(name, version)
            return version, [["set_alias", CANARY, version],
                             ["version_tag", version, "canary_share", f"{share:g}"]]
        return self._execute(name, "canary", plan, actor, inputs,
                             [*trace, f"version {version} canary at {share:.0%}"])

    def promote(self, name: str, version: str, *, actor: str = "",
                inputs: Mapping[str, Any] | None = None, trace: Sequence[str] = ()) -> Record:
        """``champion`` → ``version``; the old champion becomes ``previous_champion``, which the
        serving side keeps running in shadow so the rollback rule compares on paired bars.
        The promoted version leaves ``challenger``, ``shadow`` and ``canary``."""
        def plan() -> Plan:
            self._promotable(name, version)
            aliases = self.aliases(name)
            current = aliases.get(CHAMPION)
            steps: list[list[Any]] = []
            if current and current != version:
                steps.append(["set_alias", PREVIOUS, current])
            steps.append(["set_alias", CHAMPION, version])
            steps += [["delete_alias", alias] for alias in (CHALLENGER, SHADOW, CANARY)
                      if aliases.get(alias) == version]
            return version, [*steps, ["version_tag", version, "promoted_at", _now()]]
        return self._execute(name, "promote", plan, actor, inputs,
                             [*trace, f"version {version} is the champion"])

    def rollback(self, name: str, *, reason: str, actor: str = "", automatic: bool = False,
                 freeze: bool = False, metrics: Mapping[str, Any] | None = None,
                 trace: Sequence[str] = ()) -> Record:
        """``champion`` → ``previous_champion`` (one alias write, first in the plan); the
        failed version is tagged with the reason, the time and the metrics and quarantined;
        ``freeze`` (the flap guard) tags the model ``auto_deploy=frozen``."""
        inputs = {"reason": reason, "automatic": automatic, "metrics": dict(metrics or {})}

        def plan() -> Plan:
            aliases = self.aliases(name)
            failed, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS)
            if failed is None or previous is None:
                raise RegistryError(f"{name}: nothing to roll back to (champion {failed}, "
                                    f"previous_champion {previous})")
            steps = [["set_alias", CHAMPION, previous], ["delete_alias", PREVIOUS],
                     ["version_tag", failed, QUARANTINED, "true"],
                     ["version_tag", failed, "rollback_reason", reason],
                     ["version_tag", failed, "rollback_at", _now()],
                     ["version_tag", failed, "metrics_snapshot",
                      json.dumps(inputs["metrics"], sort_keys=True, default=str)[:4000]]]
            if freeze:
                steps.append(["model_tag", "auto_deploy", "frozen"])
            return failed, steps
        return self._execute(name, "rollback", plan, actor, inputs,
                             [*trace, f"rollback: {reason}"])

    def quarantine(self, name: str, version: str, *, reason: str, actor: str = "") -> Record:
        """Tag ``version`` so no automatic promotion picks it again."""
        def plan() -> Plan:
            return version, [["version_tag", version, QUARANTINED, "true"],
                             ["version_tag", version, "quarantine_reason", reason]]
        return self._execute(name, "quarantine", plan, actor, {"reason": reason},
                             [f"version {version} quarantined: {reason}"])

    def record(self, name: str, *, kind: str = "decision", version: str | None = None,
               actor: str = "", inputs: Mapping[str, Any] | None = None,
               trace: Sequence[str] = ()) -> Record:
        """A decision that changes nothing in MLflow (a gate that holds, an inconclusive
        look): one audit record."""
        return self.audit.append(model=name, kind=kind, status=DONE, version=version,
                                 actor=actor, inputs=inputs, trace=trace)

    def _promotable(self, name: str, version: str) -> None:
        tags = self.version(name, version).tags
        if tags.get(QUARANTINED) == "true":
            raise RegistryError(f"{name} version {version} is quarantined "
                                f"({tags.get('rollback_reason') or tags.get('quarantine_reason')}"
                                "): only a new version can be promoted")
        missing = missing_tags(tags)
        if missing:
            raise LineageError(f"{name} version {version} lacks lineage tags: "
                               f"{', '.join(missing)}")

    # --- the write path ---------------------------------------------------------------------

    def _execute(self, name: str, kind: str, plan: Callable[[], Plan], actor: str,
                 inputs: Mapping[str, Any] | None, trace: Sequence[str]) -> Record:
        """Under the lock, after recovering: build the plan from the current aliases, record
        it, make its writes, record that it is done."""
        with self._locked():
            self._recover_unlocked()
            version, steps = plan()
            started = self.audit.append(model=name, kind=kind, status=STARTED, version=version,
                                        actor=actor, inputs=inputs, trace=trace, plan=steps)
            self._step(f"{kind}: audit started")
            self._apply(name, steps, kind)
            done = self.audit.append(model=name, kind=kind, status=DONE, version=version,
                                     actor=actor, inputs=inputs, trace=trace, plan=steps,
                                     operation=started.operation)
            self._step(f"{kind}: audit done")
            return done

    def _apply(self, name: str, steps: Sequence[Sequence[Any]], kind: str) -> None:
        # MlflowClient re-reads the whole registered model (every version and tag) before each
        # write to refuse prompts: most of a write's time, growing with the versions. A plan
        # writes to a model bot4 has just read, so it calls the registry client directly.
        writes = self.client._get_registry_client()
        for step in steps:
            action, *args = step
            if action == "set_alias":
                writes.set_registered_model_alias(name, args[0], str(args[1]))
            elif action == "delete_alias":
                try:
                    writes.delete_registered_model_alias(name, args[0])
                except MlflowException as exc:  # already gone: idempotent
                    if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                        raise
            elif action == "version_tag":
                writes.set_model_version_tag(name, str(args[0]), args[1], args[2])
            elif action == "model_tag":
                writes.set_registered_model_tag(name, args[0], args[1])
            else:
                raise RegistryError(f"unknown plan step {step!r}")
            self._step(f"{kind}: {action} {' '.join(map(str, args[:2]))}")

    def recover(self) -> list[Record]:
        """Finish every operation a killed process left unfinished; the records written."""
        with self._locked():
            return self._recover_unlocked()

    def _recover_unlocked(self) -> list[Record]:
        written = []
        for record in self.audit.unfinished():
            common: dict[str, Any] = dict(
                model=record.model, kind=record.kind, actor=f"recovery, pid {os.getpid()}",
                inputs=record.inputs, operation=record.operation)
            if record.kind == "register":
                found = self._by_sha(record.model, record.inputs["tags"]["artifact_sha256"])
                if found is None:
                    written.append(self.audit.append(
                        status=FAILED, trace=[*record.trace, "interrupted before a version "
                                              "was created: nothing registered"], **common))
                    continue
                written.append(self.audit.append(
                    status=RECOVERED, version=found.version, **common,
                    trace=[*record.trace, f"interrupted after version {found.version} was "
                           "created: recorded now"]))
                continue
            self._apply(record.model, record.plan, f"recovery of {record.kind}")
            written.append(self.audit.append(
                status=RECOVERED, version=record.version, plan=record.plan, **common,
                trace=[*record.trace, "interrupted: the plan's remaining writes were made "
                       "now"]))
        return written

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.home / "registry.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _step(self, name: str) -> None:
        self._on_step(name)


def _write_ahead_log(path: Path) -> None:
    """Switch the embedded store to SQLite's write-ahead log (persistent in the file): one
    fsync per commit instead of the rollback journal's several, and readers never block the
    writer. Every MLflow write is its own commit, so this is most of a rollback's latency."""
    with closing(sqlite3.connect(path, timeout=30.0)) as conn:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")


def _pinned(name: str, alias: str | None, version: Any) -> Pinned:
    tags = dict(version.tags)
    return Pinned(name, alias, str(version.version), version.source,
                  tags.get("artifact_sha256", ""), version.run_id, tags)


def _check_alias(alias: str) -> None:
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias {alias!r}; bot4 uses {', '.join(ALIASES)}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _when(record: Record) -> dt.datetime:
    return dt.datetime.fromisoformat(record.at)


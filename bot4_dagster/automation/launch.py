"""Launch planned runs (``plan.py``) as runs of the workspace's code location, and follow them.

Each run is created from the code location's remote job, with its remote origin, and handed to
the instance's run launcher: exactly what the UI's "Materialize" and the daemon do, so the runs
appear under their jobs and on the Overview timeline and can be re-executed from the UI. A run
starts when the runs it waits for succeeded and is skipped when one failed. Runs of one symbol
never overlap between concurrent invocations (a lock per partition under BOT4_HOME), so three
``bot4 run`` at once leave the warehouse as the same three in sequence. The console gets one
line per step and the root cause of a failure.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import DagsterRunStatus

from ..settings import state_dir
from .plan import Plan, PlannedRun

INVOCATION_TAG = "bot4/invocation"
PROGRESS = "[progress] "  # user log lines with this prefix are shown on the console
ENGINE_SKIP = "Dependencies for step"  # how the executor logs a step it does not run
CHECK_FAILED = "DagsterAssetCheckFailedError"  # a blocking check failed after materializing
WIDTH = 14  # the console's first column: a symbol, or the assets of an unpartitioned run
WATCHED = {
    DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED, DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.RUN_FAILURE,
}


@dataclass
class StepOutcome:
    asset: str
    status: str = "running"  # running | ok | failed | skipped
    seconds: float = 0.0
    facts: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: int = 0
    failed_checks: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class RunOutcome:
    planned: PlannedRun
    run_id: str | None = None
    status: str = "waiting"  # waiting | running | succeeded | failed | skipped
    steps: dict[str, StepOutcome] = field(default_factory=dict)
    error: str = ""
    cursor: str | None = None
    lock: object = None  # the partition lock while the run is ours
    waiting_for: str | None = None  # PID of the bot4 run that holds the partition


def root_cause(error) -> str:
    """The innermost cause of a Dagster error, as ``Type: message``: the ConnectionError or the
    broken rule, not the DagsterExecutionStepExecutionError wrapped around it."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    return message if message.startswith(error.cls_name) else f"{error.cls_name}: {message}"


def _failure_text(event) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    return root_cause(data.error) if data.error else "step failed"


class Launcher:
    """Launches planned runs through a workspace and follows them until all have finished."""

    def __init__(self, instance: dg.DagsterInstance, workspace_context, *,
                 tags: Mapping[str, str], run_config: Mapping, parallel: int = 2,
                 say: Callable[[str], None] = print, verbose: bool = False):
        self.instance = instance
        self.context = workspace_context
        self.tags = dict(tags)
        self.run_config = dict(run_config)
        self.parallel = max(1, parallel)
        self.say = say
        self.verbose = verbose

    def run(self, plan: Plan, poll_s: float = 0.5) -> list[RunOutcome]:
        outcomes = [RunOutcome(p) for p in plan.runs]
        try:
            while any(o.status in ("waiting", "running") for o in outcomes):
                for outcome in outcomes:
                    if outcome.status == "running":
                        self._follow(outcome)
                self._start_ready(outcomes)
                if any(o.status in ("waiting", "running") for o in outcomes):
                    time.sleep(poll_s)
        finally:
            for outcome in outcomes:
                _unlock(outcome.lock)
        return outcomes

    def _start_ready(self, outcomes: list[RunOutcome]) -> None:
        for outcome in outcomes:
            if sum(o.status == "running" for o in outcomes) >= self.parallel:
                return
            if outcome.status != "waiting":
                continue
            upstream = [outcomes[i] for i in outcome.planned.upstream]
            if any(u.status in ("failed", "skipped") for u in upstream):
                outcome.status = "skipped"
                failed = ", ".join(u.planned.label for u in upstream if u.status != "succeeded")
                outcome.error = f"upstream run failed ({failed})"
                self.say(f"  {outcome.planned.label:<{WIDTH}} skipped: {outcome.error}")
            elif all(u.status == "succeeded" for u in upstream):
                lock, holder = _try_lock(outcome.planned.partition or "__unpartitioned__")
                if lock is not None:
                    outcome.lock = lock
                    self._launch(outcome)
                elif outcome.waiting_for != holder:
                    outcome.waiting_for = holder
                    self.say(f"  {outcome.planned.label:<{WIDTH}} another bot4 run (PID {holder}) "
                             "is running it; waiting…")

    def _launch(self, outcome: RunOutcome) -> None:
        planned = outcome.planned
        workspace = self.context.create_request_context()
        location = next(iter(workspace.code_locations))
        repository = next(iter(location.get_repositories().values()))
        selector = JobSubsetSelector(location_name=location.name, repository_name=repository.name,
                                     job_name=planned.job, op_selection=None,
                                     asset_selection=planned.assets)
        job = location.get_job(selector)
        run_config = self.run_config_for(planned)
        plan = location.get_execution_plan(job, run_config, step_keys_to_execute=None,
                                           known_state=None, instance=self.instance)
        tags = {**job.tags, **self.tags}
        if planned.partition is not None:
            tags["dagster/partition"] = planned.partition
        run = self.instance.create_run(
            job_name=job.name, run_id=None, run_config=run_config, resolved_op_selection=None,
            step_keys_to_execute=None, op_selection=None, status=DagsterRunStatus.NOT_STARTED,
            root_run_id=None, parent_run_id=None, tags=tags, job_snapshot=job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=job.parent_job_snapshot,
            remote_job_origin=job.get_remote_origin(), job_code_origin=job.get_python_origin(),
            asset_selection=frozenset(planned.assets), asset_check_selection=None,
            asset_graph=repository.asset_graph)
        outcome.run_id, outcome.status = run.run_id, "running"
        outcome.steps = {key: StepOutcome(name) for key, name in _step_names(plan).items()}
        self.say(f"  {planned.label:<{WIDTH}} run {run.run_id[:8]} ({job.name}) launched")
        self.instance.launch_run(run.run_id, workspace)

    def run_config_for(self, planned: PlannedRun) -> dict:
        """The invocation's run config, cut to the ops this run executes."""
        config = {k: v for k, v in self.run_config.items() if k != "ops"}
        ops = {op: c for op, c in self.run_config.get("ops", {}).items()
               if op in {"__".join(a.path) for a in planned.assets}}
        return {**config, "ops": ops} if ops else config

    def _follow(self, outcome: RunOutcome) -> None:
        connection = self.instance.get_records_for_run(outcome.run_id, cursor=outcome.cursor)
        for record in connection.records:
            self._on_entry(outcome, record.event_log_entry)
        outcome.cursor = connection.cursor
        run = self.instance.get_run_by_id(outcome.run_id)
        if run is not None and run.is_finished and not connection.has_more:
            outcome.status = "succeeded" if run.status == DagsterRunStatus.SUCCESS else "failed"
            if outcome.status == "failed" and not outcome.error:
                failed = [s for s in outcome.steps.values() if s.status == "failed"]
                outcome.error = failed[0].error if failed else f"run ended {run.status.value}"
            for step in outcome.steps.values():
                if step.status == "running":
                    step.status = "skipped" if outcome.status == "failed" else step.status
            _unlock(outcome.lock)
            outcome.lock = None
            self.say(f"  {outcome.planned.label:<{WIDTH}} run {outcome.run_id[:8]} "
                     f"{outcome.status}")

    def _on_entry(self, outcome: RunOutcome, entry) -> None:
        event = entry.dagster_event
        label = outcome.planned.label
        if event is None:  # a log line: an asset's progress or warning, or the engine's
            message = entry.user_message
            if message.startswith(PROGRESS):
                self.say(f"  {label:<{WIDTH}}   {message[len(PROGRESS):]}")
            elif (self.verbose or entry.level >= logging.WARNING) and not message.startswith(
                    ENGINE_SKIP):  # a skipped step gets its own line
                self.say(f"  {label:<{WIDTH}}   {message}")
            return
        if event.event_type not in WATCHED:
            return
        step = outcome.steps.get(event.step_key or "")
        if event.event_type == DagsterEventType.RUN_FAILURE:
            data = event.job_failure_data
            if data is not None and data.error is not None and not outcome.error:
                outcome.error = root_cause(data.error)
            return
        if step is None:
            return
        if event.event_type == DagsterEventType.STEP_START:
            step.seconds = entry.timestamp
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            step.facts += _facts(event.materialization.metadata)
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if evaluation.passed:
                step.checks_passed += 1
            else:
                step.checks_failed += 1
                step.facts.append(f"check {evaluation.check_name} FAILED")
                result = evaluation.metadata.get("result")
                step.failed_checks.append(f"blocking check {evaluation.check_name} failed"
                                          + (f": {result.value}" if result is not None else ""))
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
                                  DagsterEventType.STEP_SKIPPED):
            step.seconds = entry.timestamp - step.seconds if step.seconds else 0.0
            step.status = {DagsterEventType.STEP_SUCCESS: "ok",
                           DagsterEventType.STEP_FAILURE: "FAILED",
                           DagsterEventType.STEP_SKIPPED: "skipped"}[event.event_type]
            if event.event_type == DagsterEventType.STEP_FAILURE:
                step.error = _failure_text(event)
                if step.failed_checks and CHECK_FAILED in step.error:
                    # the step ended because a blocking check failed after the materialization:
                    # the check's own verdict is the root cause
                    step.error = "; ".join(step.failed_checks)
                if not outcome.error:
                    outcome.error = f"{step.asset}: {step.error}"
            self.say(_step_line(label, step))


def _step_names(plan) -> dict[str, str]:
    """Step key -> what the step materializes or checks, from the run's execution plan."""
    names = {}
    for step in plan.execution_plan_snapshot.steps:
        properties = [o.properties for o in step.outputs if o.properties is not None]
        assets = [p.asset_key for p in properties if p.asset_key is not None]
        checks = [p.asset_check_key for p in properties if p.asset_check_key is not None]
        if assets:
            names[step.key] = assets[0].to_user_string()
        elif checks:
            names[step.key] = f"{checks[0].asset_key.to_user_string()} {checks[0].name}"
    return names


def _facts(metadata: Mapping) -> list[str]:
    facts = []
    for key, name in (("rows_inserted", "new"), ("rows_unchanged", "unchanged"),
                      ("dagster/partition_row_count", "rows"), ("dagster/row_count", "rows")):
        if key in metadata:
            facts.append(f"{metadata[key].value:,} {name}")
    return facts


def _step_line(label: str, step: StepOutcome) -> str:
    parts = list(step.facts)
    if step.checks_passed or step.checks_failed:
        parts.append(f"checks {step.checks_passed}/{step.checks_passed + step.checks_failed} "
                     "passed")
    timing = f"{step.seconds:5.1f} s" if step.status != "skipped" else "       "
    line = f"  {label:<{WIDTH}} {step.asset:<34} {step.status:<7} {timing}"
    if parts:
        line += "  " + ", ".join(parts)
    if step.error:
        line += "\n" + "\n".join(f"{'':{WIDTH + 4}}{text}" for text in step.error.splitlines()[:12])
    return line


def _lock_path(name: str):
    path = state_dir() / "locks" / f"partition-{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _try_lock(name: str):
    """(handle, None) with the partition's lock held, or (None, PID of the holder)."""
    handle = open(_lock_path(name), "a+")  # noqa: SIM115 - held until the run finishes
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        return None, holder
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle, None


def _unlock(handle) -> None:
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

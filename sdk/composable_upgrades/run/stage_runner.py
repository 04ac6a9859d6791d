"""The policy of a run: batches, step barriers, max-fail, stops, the journal.

Every step is a barrier over the hosts upgraded together (the whole
controlplane stage, or one batch of another stage): the executor runs that
step's playbook on all of them before any starts the next step. Finished
(batch, step, host) units go to the journal as each step ends; ``resume``
skips them. What runs a step is an :class:`~.executor.Executor`; nothing here
knows Ansible.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from composable_upgrades.errors import StageNotFinishedError
from composable_upgrades.model.kinds import RunStatus, StageKind, TaskStatus, UnitStatus
from composable_upgrades.planning.prepared import PlannedStep, PreparedPlan
from composable_upgrades.run.events import Progress, ProgressEvent, StopRequest
from composable_upgrades.run.executor import (
    BatchJob, BatchSession, Executor, StepCallbacks, StepReport)
from composable_upgrades.run.request import RunRequest, stage_guard
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.results import RecordSink, RunResult, StepOutcome, TaskRecord
from composable_upgrades.state.store import new_run_id


def run_request(plan: PreparedPlan, request: RunRequest, executor: Executor, *,
                journal: Journal, sink: RecordSink, progress: Progress | None = None,
                stop: StopRequest | None = None, notes: Iterable[str] = (),
                run_id: str | None = None) -> RunResult:
    """Run ``request`` with ``executor``: the stage guard, the journal, the
    record ``sink`` and ``progress``, from start to end."""
    stage = request.stage
    result = RunResult(run_id=run_id or new_run_id(stage.name), stage=stage.name,
                       plan_sha=plan.sha256, status=RunStatus.NOTHING_TO_DO,
                       started=time.time(), options=request.options.as_dict(),
                       batches=list(request.batches), notes=list(notes))
    guard(plan, journal, request, result)
    finished: set[tuple[int | str, str]] = set()
    if request.options.resume:
        finished = journal.progress([stage], tags=request.options.tags)[
            stage.name].finished
    runner = StageRunner(request, executor, journal=journal, sink=sink,
                         progress=progress, stop=stop or StopRequest())
    result.run_dir = executor.start(result.run_id, stage.name)
    sink.start_run(result)
    try:
        runner.run(result, finished)
    except BaseException:
        if result.status == RunStatus.NOTHING_TO_DO:
            result.status = RunStatus.FAILED
        raise
    finally:
        result.ended = time.time()
        journal.record_run(stage.sha256, {
            "run": result.run_id, "stage": stage.name, "status": result.status,
            "started": result.started, "ended": result.ended,
            "hosts": len(request.hosts), "failed": result.failed_hosts})
        sink.finish_run(result)
        runner.emit("run_end", status=result.status)
    return result


def guard(plan: PreparedPlan, journal: Journal, request: RunRequest,
          result: RunResult) -> None:
    """Refuse while a needed stage is unfinished, unless forced (then say so)."""
    pending = stage_guard(plan, journal, request.stage)
    if not pending:
        return
    name, left = pending[0]
    if not request.options.force:
        raise StageNotFinishedError(name, left, needed_by=(
            "converge" if request.stage.kind == StageKind.CONVERGE
            else f"stage {request.stage.name!r}"))
    result.notes.append("forced: " + "; ".join(
        f"stage {n} unfinished ({len(p)} hosts pending)" for n, p in pending))


class StageRunner:
    """The batches and steps of one run of one stage; see :func:`run_request`."""

    def __init__(self, request: RunRequest, executor: Executor, *, journal: Journal,
                 sink: RecordSink, progress: Progress | None, stop: StopRequest) -> None:
        self.request = request
        self.stage = request.stage
        self.executor = executor
        self.journal = journal
        self.sink = sink
        self.progress = progress or (lambda event: None)
        self.stop = stop
        self.units_done = 0
        self.units_total = 0

    def run(self, result: RunResult, finished: set[tuple[int | str, str]]) -> None:
        """Run every batch, step by step, skipping ``finished`` units."""
        steps, batches = self.request.steps, self.request.batches
        self.units_total = sum(1 for b in batches for s in steps for h in b
                               if (s, h) not in finished)
        self.emit("run_start", message=f"{len(self.request.hosts)} hosts, "
                  f"{len(batches)} batch{'es' if len(batches) != 1 else ''}, "
                  f"steps {', '.join(map(str, steps))}")
        for number, batch in enumerate(batches, start=1):
            session = self.executor.open_batch(BatchJob(
                run_id=result.run_id, stage=self.stage.name, batch=number,
                hosts=tuple(batch), steps=tuple(steps), options=self.request.options))
            try:
                if not self.run_batch(result, session, number, batch, finished):
                    return
            finally:
                session.close()
        if result.status not in (RunStatus.FAILED, RunStatus.INTERRUPTED):
            result.status = RunStatus.SUCCESSFUL

    def run_batch(self, result: RunResult, session: BatchSession, number: int,
                  batch: Sequence[str], finished: set[tuple[int | str, str]]) -> bool:
        """Run the steps of one batch; False when the run stops here."""
        batched = self.stage.kind == StageKind.BATCHED
        max_fail = self.request.options.max_fail_percentage or 0
        failed_in_batch: set[str] = set()
        for step in self.request.steps:
            todo = [h for h in batch if (step, h) not in finished
                    and h not in failed_in_batch]
            if not todo:
                continue
            outcome = self.run_step(result, session, number, step, todo)
            failed_in_batch.update(outcome.failed)
            if outcome.interrupted or self.stop.now:
                result.status = RunStatus.INTERRUPTED
                return False
            share = 100.0 * len(failed_in_batch) / len(batch)
            if outcome.failed and (not batched or share > max_fail):
                result.status = RunStatus.FAILED
                result.notes.append(
                    f"stopped after step {step} of batch {number}: "
                    f"{len(failed_in_batch)} of {len(batch)} hosts failed"
                    + (f" (more than --max-fail-percentage {max_fail})"
                       if batched else ""))
                return False
            if self.stop.after_step:
                result.status = RunStatus.INTERRUPTED
                result.notes.append(f"stopped on request after step {step} "
                                    f"of batch {number}")
                return False
        if failed_in_batch:
            result.status = RunStatus.FAILED
        return True

    def run_step(self, result: RunResult, session: BatchSession, batch: int,
                 step: int | str, hosts: list[str]) -> StepOutcome:
        """Run one step on ``hosts`` of a batch; journal and report how it went."""
        started = time.time()
        batches = len(self.request.batches)
        in_play = self.request.in_play(step, hosts)
        self.emit("step_start", batch=batch, batches=batches, step=step,
                  message=f"{len(hosts)} hosts" + _waves(self.stage.step(step), in_play))
        report = StepReport(rc=0)
        if in_play:
            job = self.request.job(result.run_id, batch, step, in_play)
            # Started before it runs: a step cut short stays unfinished on
            # every host it touched, whatever older runs journaled.
            self.journal.record_started(self.stage.sha256, result.run_id,
                                        self.stage.name, batch, step, in_play,
                                        tags=self.request.options.tags)
            report = session.run_step(job, self.callbacks(batch, step))
            result.records.extend(report.records)
            result.notes.extend(report.notes)
        failed = set() if report.interrupted else set(report.failed)
        if not report.interrupted and report.rc != 0 and not failed:
            # The step failed without a host failure (a syntax error, a
            # missing module, a crash): it did not run anywhere.
            failed = set(in_play)
            said = " / ".join(line for line in report.output if line)
            result.notes.append(f"ansible-playbook exited {report.rc} at step {step} "
                                f"of batch {batch}: {said or 'no output'}")
        if not report.interrupted:
            # The history holds a unit's records before the journal has it.
            self.sink.flush()
            self.record_units(result, batch, step, hosts, failed)
        outcome = StepOutcome(batch=batch, step=step, hosts=tuple(hosts),
                              failed=tuple(h for h in hosts if h in failed),
                              started=started, ended=time.time(), rc=report.rc,
                              interrupted=report.interrupted)
        result.steps.append(outcome)
        self.emit("step_end", batch=batch, batches=batches, step=step,
                  status=RunStatus.INTERRUPTED if report.interrupted else
                  (UnitStatus.FAILED if outcome.failed else UnitStatus.OK),
                  message=f"{len(outcome.failed)} failed" if outcome.failed else None)
        return outcome

    def record_units(self, result: RunResult, batch: int, step: int | str,
                     hosts: list[str], failed: set[str]) -> None:
        """Journal the hosts that finished and failed a step."""
        ok_hosts = [h for h in hosts if h not in failed]
        if failed and self.stage.kind != StageKind.BATCHED:
            # Plays of these stages are any_errors_fatal: one host's failure
            # stopped every host, so none of them finished the step.
            ok_hosts = []
        tags = self.request.options.tags
        for status, units in ((UnitStatus.OK, ok_hosts),
                              (UnitStatus.FAILED, [h for h in hosts if h in failed])):
            self.journal.record_units(self.stage.sha256, result.run_id,
                                      self.stage.name, batch, step, units,
                                      status, tags=tags)
        self.units_done += len(hosts)

    def callbacks(self, batch: int, step: int | str) -> StepCallbacks:
        """What the executor calls during one step."""
        def record(record: TaskRecord) -> None:
            self.sink.add(record)
            if record.status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE):
                self.emit("host_done", batch=batch, step=step, host=record.host,
                          status=record.status, task=record.task,
                          message=record.message)

        return StepCallbacks(
            task=lambda name: self.emit("task", batch=batch, step=step, task=name),
            record=record, stop_now=lambda: self.stop.now)

    def emit(self, kind: str, **fields: Any) -> None:
        """Tell ``progress`` about the run."""
        self.progress(ProgressEvent(kind=kind, stage=self.stage.name,
                                    units_done=self.units_done,
                                    units_total=self.units_total, **fields))


def _waves(step: PlannedStep, hosts: Sequence[str]) -> str:
    """How the step's role plays run, when more than one does: ``; at once:
    Database + Messaging, then Controller``."""
    playing = set(hosts)
    waves = [[p.role for p in step.plays if p.role in wave and playing & set(p.hosts)]
             for wave in step.waves]
    waves = [w for w in waves if w]
    if sum(len(w) for w in waves) < 2:
        return ""
    return "; plays " + ", then ".join(" + ".join(w) for w in waves)

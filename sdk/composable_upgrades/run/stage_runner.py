"""The policy of a run: batches, step barriers, max-fail, stops, the journal,
hooks and pauses between batches.

Every step is a barrier over the hosts upgraded together (the whole
controlplane stage, or one batch of another stage): the executor runs that
step's playbook on all of them before any starts the next step. Finished
(batch, step, host) units go to the journal as each step ends; ``resume``
skips them. What runs a step is an :class:`~.executor.Executor`; nothing here
knows Ansible.

Around the batches run the hooks (:mod:`.hooks`): ``pre_stage`` before the
first batch with work, ``pre_batch`` and ``post_batch`` around each batch
with work, ``post_stage`` after the last one. A hook that fails stops the run
at that boundary. Each hook run is journaled; a resume skips hooks that
succeeded at their boundary, runs again those that did not, and, for a batch
whose steps are all finished, runs only its ``post_batch`` hooks that did not
succeed. ``pause_after`` stops cleanly once that many batches have run (the
next boundary is the next batch's ``pre_batch``); ``confirm`` is asked before
every batch after the first, and a no stops the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from composable_upgrades.errors import StageNotFinishedError
from composable_upgrades.model.kinds import RunStatus, StageKind, TaskStatus, UnitStatus
from composable_upgrades.planning.prepared import PlannedStep, PreparedPlan
from composable_upgrades.run.events import Progress, ProgressEvent, StopRequest
from composable_upgrades.run.executor import (
    BatchJob, BatchSession, Executor, StepCallbacks, StepReport)
from composable_upgrades.run.hooks import Hook, HookCall, HookRunner
from composable_upgrades.run.request import RunRequest, stage_guard
from composable_upgrades.state.journal import Journal, StageProgress
from composable_upgrades.state.results import RecordSink, RunResult, StepOutcome, TaskRecord
from composable_upgrades.state.store import new_run_id


def run_request(plan: PreparedPlan, request: RunRequest, executor: Executor, *,
                journal: Journal, sink: RecordSink, progress: Progress | None = None,
                stop: StopRequest | None = None, notes: Iterable[str] = (),
                run_id: str | None = None, hook_runner: HookRunner | None = None,
                confirm: Confirm | None = None) -> RunResult:
    """Run ``request`` with ``executor``: the stage guard, the journal, the
    record ``sink`` and ``progress``, from start to end.

    ``hook_runner`` runs the request's hooks (one for ``plan`` by default);
    ``confirm(batch, hosts)`` is asked before each batch after the first.
    """
    stage = request.stage
    result = RunResult(run_id=run_id or new_run_id(stage.name), stage=stage.name,
                       plan_sha=plan.sha256, status=RunStatus.NOTHING_TO_DO,
                       started=time.time(), options=request.options.as_dict(),
                       batches=list(request.batches), notes=list(notes))
    guard(plan, journal, request, result)
    finished: set[tuple[int | str, str]] = set()
    earlier = StageProgress(stage.name, tuple(stage.hosts), tuple(stage.numbers))
    if request.options.resume:
        earlier = journal.progress([stage], tags=request.options.tags)[stage.name]
        finished = earlier.finished
        replayed = sorted({step for step, host in earlier.begun
                           if host in request.hosts}, key=str)
        if replayed:
            # TripleO's tasks are meant to be idempotent; say it all the same.
            result.notes.append(
                f"resuming: step{'s' if len(replayed) > 1 else ''} "
                f"{', '.join(map(str, replayed))} began and never ended on "
                f"{len({h for s, h in earlier.begun if h in request.hosts})} hosts; "
                "they run again from their first task")
    hook_runner = hook_runner or HookRunner(plan)
    runner = StageRunner(request, executor, journal=journal, sink=sink,
                         progress=progress, stop=stop or StopRequest(),
                         hook_runner=hook_runner, earlier=earlier, confirm=confirm)
    result.run_dir = executor.start(result.run_id, stage.name)
    hook_runner.run_dir = result.run_dir
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


#: Asked before a batch after the first: (batch number, its hosts) -> go on?
Confirm = Callable[[int, tuple[str, ...]], bool]


class StageRunner:
    """The batches and steps of one run of one stage; see :func:`run_request`."""

    def __init__(self, request: RunRequest, executor: Executor, *, journal: Journal,
                 sink: RecordSink, progress: Progress | None, stop: StopRequest,
                 hook_runner: HookRunner | None = None,
                 earlier: StageProgress | None = None,
                 confirm: Confirm | None = None) -> None:
        self.request = request
        self.stage = request.stage
        self.executor = executor
        self.journal = journal
        self.sink = sink
        self.progress = progress or (lambda event: None)
        self.stop = stop
        self.units_done = 0
        self.units_total = 0
        self.stops_acknowledged = 0
        self.hook_runner = hook_runner
        self.earlier = earlier
        self.confirm = confirm

    def run(self, result: RunResult, finished: set[tuple[int | str, str]]) -> None:
        """Run every batch, step by step, skipping ``finished`` units, with the
        hooks around them; stop at a failed hook, a pause or a refusal."""
        steps, batches = self.request.steps, self.request.batches
        self.units_total = sum(1 for b in batches for s in steps for h in b
                               if (s, h) not in finished)
        self.emit("run_start", message=f"{len(self.request.hosts)} hosts, "
                  f"{len(batches)} batch{'es' if len(batches) != 1 else ''}, "
                  f"steps {', '.join(map(str, steps))}")
        work = [self.has_work(batch, finished) for batch in batches]
        if not self.boundary(result, "pre_stage", 0, self.request.hosts, any(work)):
            return
        ran = 0
        pause = self.request.options.pause_after
        for number, batch in enumerate(batches, start=1):
            if work[number - 1] and ran and not self.go_on(result, number, batch,
                                                            ran, pause):
                return
            if not self.boundary(result, "pre_batch", number, batch, work[number - 1]):
                return
            if work[number - 1]:
                session = self.executor.open_batch(BatchJob(
                    run_id=result.run_id, stage=self.stage.name, batch=number,
                    hosts=tuple(batch), steps=tuple(steps),
                    options=self.request.options))
                try:
                    if not self.run_batch(result, session, number, batch, finished):
                        return
                finally:
                    session.close()
                ran += 1
            if not self.boundary(result, "post_batch", number, batch, work[number - 1]):
                return
        if result.status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
            return
        if not self.boundary(result, "post_stage", 0, self.request.hosts, any(work)):
            return
        result.status = RunStatus.SUCCESSFUL

    def has_work(self, batch: Sequence[str],
                 finished: set[tuple[int | str, str]]) -> bool:
        """True if a step of ``batch`` is unfinished on a host that plays it."""
        return any((step, host) not in finished for step in self.request.steps
                   for host in self.request.in_play(step, batch))

    def go_on(self, result: RunResult, number: int, batch: Sequence[str],
              ran: int, pause: int | None) -> bool:
        """Before batch ``number`` (``ran`` batches done): stop on request,
        pause, or ask."""
        left = len(self.request.batches) - number + 1
        if self.stop.after_step:
            result.status = RunStatus.INTERRUPTED
            result.notes.append(f"stopped on request before batch {number}")
            return False
        if pause is not None and ran >= pause:
            said = f"paused after {ran} batch{'es' if ran != 1 else ''} (--pause-after {pause})"
        elif self.confirm is not None and not self.confirm(number, tuple(batch)):
            said = f"stopped before batch {number}: not confirmed"
        else:
            return True
        result.status = RunStatus.SUCCESSFUL
        result.notes.append(f"{said}; {left} of {len(self.request.batches)} batches "
                            "left; continue with --resume")
        self.emit("note", message=result.notes[-1])
        return False

    def boundary(self, result: RunResult, point: str, batch: int,
                 hosts: Sequence[str], work: bool) -> bool:
        """Run the hooks of ``point``; False (the run failed) if one fails.

        Without ``work`` at this boundary, only hooks that began or failed
        in an earlier run and did not succeed since run (again).
        """
        hooks = self.request.hooks.at(point)
        if not hooks or self.hook_runner is None:
            return True
        call = HookCall(stage=self.stage.name, point=point, batch=batch,
                        batches=len(self.request.batches), hosts=tuple(hosts))
        for hook in hooks:
            earlier = self.earlier
            if earlier is not None and (
                    earlier.hook_ok(point, batch, hook.name) if work
                    else not earlier.hook_unfinished(point, batch, hook.name)):
                continue
            if not self.run_hook(result, hook, call):
                return False
        return True

    def run_hook(self, result: RunResult, hook: Hook, call: HookCall) -> bool:
        """Run one hook: journaled, recorded, reported; True if it succeeded."""
        assert self.hook_runner is not None
        sha, run_id = self.stage.sha256, result.run_id
        self.journal.record_hook(sha, run_id, self.stage.name, call.point, call.batch,
                                 hook.name, "started")
        self.emit("step_start", batch=call.batch, batches=call.batches,
                  step=call.point, message=f"hook {hook.name}")
        self.emit("task", batch=call.batch, step=call.point, task=f"hook {hook.name}")
        outcome = self.hook_runner.run(hook, call, lambda: self.stop.now)
        record = outcome.record(run_id)
        result.records.append(record)
        self.sink.add(record)
        self.sink.flush()
        self.journal.record_hook(sha, run_id, self.stage.name, call.point, call.batch,
                                 hook.name, UnitStatus.OK if outcome.ok
                                 else UnitStatus.FAILED, message=outcome.error)
        if not outcome.ok:
            self.emit("host_done", batch=call.batch, step=call.point,
                      host=record.host, status=record.status, task=record.task,
                      message=outcome.error)
        self.emit("step_end", batch=call.batch, batches=call.batches, step=call.point,
                  status=UnitStatus.OK if outcome.ok else UnitStatus.FAILED,
                  message=None if outcome.ok else f"hook {hook.name} failed")
        if outcome.ok:
            return True
        result.status = RunStatus.FAILED
        result.notes.append(outcome.failure_line())
        return False

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

        def stop_now() -> bool:
            self.acknowledge_stop(batch, step)
            return self.stop.now

        return StepCallbacks(
            task=lambda name: self.emit("task", batch=batch, step=step, task=name),
            record=record, stop_now=stop_now)

    def acknowledge_stop(self, batch: int, step: int | str) -> None:
        """Say at once what a new Ctrl-C does (asked while a step runs, not
        from the signal handler, which may interrupt a write to the terminal)."""
        count = self.stop.count
        if count <= self.stops_acknowledged:
            return
        self.stops_acknowledged = count
        self.emit("stop_requested", batch=batch, step=step, message=(
            f"stopping after step {step} of batch {batch}; Ctrl-C again to stop now"
            if count == 1 else f"stopping now, during step {step} of batch {batch}"))

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

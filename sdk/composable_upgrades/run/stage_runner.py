"""The policy of a run: batches, step barriers, max-fail, stops, the journal,
hooks and pauses between batches.

Every step is a barrier over the hosts upgraded together (the whole
controlplane stage, or one batch of another stage): the executor runs that
step's playbook on all of them before any starts the next step. Finished
(batch, step, host) units go to the journal as each step ends; ``resume``
skips them. What runs a step is an :class:`~.executor.Executor`; nothing here
knows Ansible.

Around the batches run the hooks (:mod:`.hooks`, run by :mod:`.boundaries`):
``pre_stage`` before the first batch with work, ``pre_batch`` and
``post_batch`` around each batch with work, ``post_stage`` after the last
one. In converge, ``pre_batch`` and ``post_batch`` go around each host's
reboot instead: with them, the reboot step (its plays one host at a time)
runs on one host after the other, each between its hooks, so a compute is
drained before it reboots. A hook that fails stops the run
at that boundary. Each hook run is journaled; a resume skips hooks that
succeeded at their boundary, runs again those that did not, and, for a batch
whose steps are all finished, runs only its ``post_batch`` hooks that did not
succeed. ``pause_after`` stops cleanly once that many batches have run (the
next boundary is the next batch's ``pre_batch``): the run ends ``paused``;
``confirm`` is asked before every batch after the first, and a no pauses the
same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from composable_upgrades.errors import StageNotFinishedError
from composable_upgrades.model.kinds import RunStatus, StageKind
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.run.events import Progress, ProgressEvent, StopRequest
from composable_upgrades.run.executor import (
    BatchJob, BatchSession, Executor)
from composable_upgrades.run.boundaries import Boundaries
from composable_upgrades.run.hooks import HookRunner
from composable_upgrades.run.one_by_one import one_host_at_a_time
from composable_upgrades.run.request import RunRequest, stage_guard
from composable_upgrades.run.step_runs import StepRuns
from composable_upgrades.state.journal import Journal, StageProgress
from composable_upgrades.state.results import RecordSink, RunResult
from composable_upgrades.state.store import new_run_id


def run_request(plan: PreparedPlan, request: RunRequest, executor: Executor, *,
                journal: Journal, sink: RecordSink, progress: Progress | None = None,
                stop: StopRequest | None = None, notes: Iterable[str] = (),
                run_id: str | None = None, hook_runner: HookRunner | None = None,
                confirm: Confirm | None = None,
                requested: float | None = None) -> RunResult:
    """Run ``request`` with ``executor``: the stage guard, the journal, the
    record ``sink`` and ``progress``, from start to end.

    ``hook_runner`` runs the request's hooks (one for ``plan`` by default);
    ``confirm(batch, hosts)`` is asked before each batch after the first;
    ``requested`` is when the run was asked for (:attr:`.RunResult.requested`).
    """
    stage = request.stage
    result = RunResult(run_id=run_id or new_run_id(stage.name), stage=stage.name,
                       plan_sha=plan.sha256, status=RunStatus.NOTHING_TO_DO,
                       started=time.time(), options=request.options.as_dict(),
                       batches=list(request.batches), notes=list(notes),
                       requested=requested)
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
                         hook_runner=hook_runner, earlier=earlier,
                         confirm=_timed(confirm, result) if confirm else None)
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


def _timed(confirm: Confirm, result: RunResult) -> Confirm:
    """``confirm``, with the time spent waiting for each answer added to
    ``result.waited`` (a forecast leaves it out)."""
    def asked(batch: int, hosts: tuple[str, ...]) -> bool:
        began = time.monotonic()
        try:
            return confirm(batch, hosts)
        finally:
            result.waited += time.monotonic() - began
    return asked


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
        self.units_total = 0
        self.confirm = confirm
        self.steps = StepRuns(request, journal=journal, sink=sink, emit=self.emit,
                              stop=stop)
        self.hooks = Boundaries(request, journal=journal, sink=sink,
                                hook_runner=hook_runner, earlier=earlier,
                                emit=self.emit, stop_now=lambda: self.stop.now)

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
        if not self.hooks.at(result, "pre_stage", 0, self.request.hosts, any(work)):
            return
        ran = 0
        pause = self.request.options.pause_after
        # Converge's batch hooks go around each host's reboot, not its batch.
        around = self.stage.kind != StageKind.CONVERGE
        for number, batch in enumerate(batches, start=1):
            if work[number - 1] and ran and not self.go_on(result, number, batch,
                                                            ran, pause):
                return
            if around and not self.hooks.at(result, "pre_batch", number, batch,
                                            work[number - 1]):
                return
            session = self.executor.open_batch(BatchJob(
                run_id=result.run_id, stage=self.stage.name, batch=number,
                hosts=tuple(batch), steps=tuple(steps),
                options=self.request.options)) if work[number - 1] else None
            try:
                if not self.run_batch(result, session, number, batch, finished):
                    return
            finally:
                if session is not None:
                    session.close()
            ran += session is not None
            if around and not self.hooks.at(result, "post_batch", number, batch,
                                            work[number - 1]):
                return
        if result.status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
            return
        if not self.hooks.at(result, "post_stage", 0, self.request.hosts, any(work)):
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
        # Not a success: the stage is not done. Not a failure: nothing failed.
        result.status = RunStatus.PAUSED
        result.notes.append(f"{said}; {left} of {len(self.request.batches)} batches "
                            "left; continue with --resume")
        self.emit("note", message=result.notes[-1])
        return False

    def run_batch(self, result: RunResult, session: BatchSession | None,
                  number: int, batch: Sequence[str],
                  finished: set[tuple[int | str, str]]) -> bool:
        """Run the steps of one batch; False when the run stops here.

        Without a ``session`` (nothing left to run), only the hooks of its
        steps run one host at a time that did not succeed run again.
        """
        batched = self.stage.kind == StageKind.BATCHED
        max_fail = self.request.options.max_fail_percentage or 0
        failed_in_batch: set[str] = set()
        for step in self.request.steps:
            if self.request.one_by_one(step):
                if not one_host_at_a_time(
                        result, session, number, step, batch, finished,
                        request=self.request, hooks=self.hooks, steps=self.steps,
                        stop=self.stop):
                    return False
                continue
            todo = [h for h in batch if (step, h) not in finished
                    and h not in failed_in_batch]
            if not todo or session is None:
                continue
            outcome = self.steps.run(result, session, number, step, todo)
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

    def emit(self, kind: str, **fields: Any) -> None:
        """Tell ``progress`` about the run."""
        self.progress(ProgressEvent(kind=kind, stage=self.stage.name,
                                    units_done=self.steps.units_done,
                                    units_total=self.units_total, **fields))


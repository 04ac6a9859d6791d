"""Running one step of a batch through the executor's session: journaled
before it runs and as its hosts finish, its records to the run's sink, its
progress told, a Ctrl-C acknowledged while it runs.

Which steps run, on which hosts and in which order is the stage runner's
policy (:mod:`.stage_runner`); this module runs the one it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from composable_upgrades.model.kinds import RunStatus, StageKind, TaskStatus, UnitStatus
from composable_upgrades.planning.prepared import PlannedStep
from composable_upgrades.run.events import StopRequest
from composable_upgrades.run.executor import BatchSession, StepCallbacks, StepReport
from composable_upgrades.run.request import RunRequest
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.results import RecordSink, RunResult, StepOutcome, TaskRecord


class StepRuns:
    """The steps of one run of ``request``, each run by a batch's session.

    ``units_done`` counts the (step, host) units ended so far; ``emit(kind,
    **fields)`` tells the run's progress.
    """

    def __init__(self, request: RunRequest, *, journal: Journal, sink: RecordSink,
                 emit: Callable[..., None], stop: StopRequest) -> None:
        self.request = request
        self.stage = request.stage
        self.journal = journal
        self.sink = sink
        self.emit = emit
        self.stop = stop
        self.units_done = 0
        self.stops_acknowledged = 0

    def run(self, result: RunResult, session: BatchSession, batch: int,
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

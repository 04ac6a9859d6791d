"""An in-memory executor for the stage runner's tests: nothing runs, each
host's outcome of each step is scripted."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from composable_upgrades.model.kinds import TaskStatus
from composable_upgrades.run.executor import (
    BatchJob, StepCallbacks, StepJob, StepReport, StepwiseSession)
from composable_upgrades.state.results import TaskRecord


class FakeExecutor:
    """Runs steps in memory.

    ``outcomes`` maps (step, host) to a task status (``failed``,
    ``unreachable``...; default ``ok``); ``exits`` maps a step to the exit code
    of a step that fails before any host does; ``during`` is called with each
    job before it "runs" (to ask for a stop, say). ``jobs`` lists what ran.
    """

    def __init__(self, outcomes: Mapping[tuple[int | str, str], str] | None = None, *,
                 exits: Mapping[int | str, int] | None = None,
                 during: Callable[[StepJob], None] | None = None) -> None:
        self.outcomes = dict(outcomes or {})
        self.exits = dict(exits or {})
        self.during = during
        self.jobs: list[StepJob] = []

    def start(self, run_id: str, stage: str) -> str | None:
        return None

    def open_batch(self, job: BatchJob) -> StepwiseSession:
        return StepwiseSession(self)

    def run_step(self, job: StepJob, callbacks: StepCallbacks) -> StepReport:
        self.jobs.append(job)
        if self.during:
            self.during(job)
        if callbacks.stop_now():
            return StepReport(rc=254, interrupted=True)
        if job.step in self.exits:
            return StepReport(rc=self.exits[job.step],
                              output=(f"ERROR! step {job.step} is broken",))
        records = []
        for host in job.hosts:
            callbacks.task(f"step {job.step} on {host}")
            status = TaskStatus(self.outcomes.get((job.step, host), TaskStatus.OK))
            record = TaskRecord(
                run_id=job.run_id, stage=job.stage, batch=job.batch, step=job.step,
                host=host, role=None, task=f"step {job.step} on {host}",
                service=None, action="fake", status=status, start=None,
                duration=None, message="" if status == TaskStatus.OK else "it broke")
            callbacks.record(record)
            records.append(record)
        failed = frozenset(r.host for r in records
                           if r.status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE))
        return StepReport(rc=2 if failed else 0, failed=failed, records=tuple(records))

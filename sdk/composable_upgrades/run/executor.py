"""The seam between deciding what runs and running it.

The stage runner (:mod:`.stage_runner`) decides the batches, the step
barriers, max-fail and stops; an :class:`Executor` opens a
:class:`BatchSession` per batch, which runs the batch's steps one at a time,
on the hosts the runner names, and says how each went. How a session keeps
its processes between steps is its own affair: :class:`StepwiseSession` runs
each step as one call; :class:`~.ansible.AnsibleExecutor` keeps one
ansible-playbook process per role across the batch (:mod:`.lanes`). The tests
use an in-memory executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from composable_upgrades.run.options import RunOptions
from composable_upgrades.state.results import TaskRecord


@dataclass(frozen=True)
class StepJob:
    """One step of one batch to run: its playbook (a file of the plan
    folder), on ``hosts``, with the run's ``options``."""

    run_id: str
    stage: str
    batch: int
    step: int | str
    hosts: tuple[str, ...]
    playbook: str
    options: RunOptions


@dataclass(frozen=True)
class BatchJob:
    """One batch of a run: its ``hosts`` and the ``steps`` it may run, in order."""

    run_id: str
    stage: str
    batch: int
    hosts: tuple[str, ...]
    steps: tuple[int | str, ...]
    options: RunOptions


@dataclass(frozen=True)
class StepCallbacks:
    """What an executor calls while a step runs.

    ``task`` when a task starts (its name), ``record`` for each task result
    as it comes, ``stop_now`` polled to know whether to cut the step short.
    """

    task: Callable[[str | None], None]
    record: Callable[[TaskRecord], None]
    stop_now: Callable[[], bool]


@dataclass(frozen=True)
class StepReport:
    """How a step ended.

    ``failed``: the hosts that failed it, as the executor saw them; ``output``:
    the last lines of the executor's own messages (errors, warnings), to say
    why a step failed before any host did.
    """

    rc: int
    failed: frozenset[str] = frozenset()
    interrupted: bool = False
    records: tuple[TaskRecord, ...] = ()
    output: tuple[str, ...] = field(default=())
    #: Why hosts failed without a task failing (a process that died), for the
    #: run's notes.
    notes: tuple[str, ...] = ()


class BatchSession(Protocol):
    """Runs the steps of one batch, one at a time."""

    def run_step(self, job: StepJob, callbacks: StepCallbacks) -> StepReport:
        """Run ``job`` (a step of the batch) to its end, or until
        ``callbacks.stop_now()``; no host of it starts the next step before
        the runner asks for it."""
        ...

    def close(self) -> None:
        """End the batch: stop whatever still waits for a step."""
        ...


class Executor(Protocol):
    """Runs batches of a run's steps."""

    def start(self, run_id: str, stage: str) -> str | None:
        """Get ready for a run; returns the run's folder, if it has one."""
        ...

    def open_batch(self, job: BatchJob) -> BatchSession:
        """A session for the steps of one batch."""
        ...


class StepRunner(Protocol):
    """Something that runs one step as one call."""

    def run_step(self, job: StepJob, callbacks: StepCallbacks) -> StepReport: ...


class StepwiseSession:
    """A batch session that runs each step as one call of ``runner``."""

    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner

    def run_step(self, job: StepJob, callbacks: StepCallbacks) -> StepReport:
        """Run ``job`` with one call of the runner."""
        return self.runner.run_step(job, callbacks)

    def close(self) -> None:
        """Nothing waits between calls."""

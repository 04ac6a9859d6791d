"""The seam between deciding what runs and running it.

The stage runner (:mod:`.stage_runner`) decides the batches, the step
barriers, max-fail and stops; an :class:`Executor` runs one step's playbook on
some hosts and says how it went. :class:`~.ansible.AnsibleExecutor` does that
with ansible-runner on this machine; the tests use an in-memory one.
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


class Executor(Protocol):
    """Runs one step's playbook on some hosts."""

    def start(self, run_id: str, stage: str) -> str | None:
        """Get ready for a run; returns the run's folder, if it has one."""
        ...

    def run_step(self, job: StepJob, callbacks: StepCallbacks) -> StepReport:
        """Run ``job`` to its end (or until ``callbacks.stop_now()``)."""
        ...

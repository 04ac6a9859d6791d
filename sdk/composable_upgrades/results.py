"""Results of runs: per host, step and task records, as plain data.

A :class:`RunResult` is what :func:`~composable_upgrades.execute.run_stage`
returns; its records are also streamed to the run history as they happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Task outcomes, as Ansible reports them.
STATUSES = ("ok", "changed", "failed", "skipped", "unreachable", "ignored")

#: Run outcomes.
SUCCESSFUL = "successful"
FAILED = "failed"
INTERRUPTED = "interrupted"
DRY_RUN = "dry-run"
NOTHING_TO_DO = "nothing to do"


@dataclass(frozen=True)
class TaskRecord:
    """One task's outcome on one host."""

    run_id: str
    stage: str
    batch: int
    step: int | str
    host: str
    role: str | None
    task: str
    service: str | None
    action: str | None
    status: str
    start: float | None
    duration: float | None
    message: str = ""


@dataclass(frozen=True)
class StepOutcome:
    """One step of one batch: which hosts ran it, which failed, how long."""

    batch: int
    step: int | str
    hosts: tuple[str, ...]
    failed: tuple[str, ...]
    started: float
    ended: float
    rc: int
    interrupted: bool = False

    @property
    def duration(self) -> float:
        """Wall time of the step, in seconds."""
        return self.ended - self.started


@dataclass
class RunResult:
    """A run of one stage: options, outcome, steps and task records."""

    run_id: str
    stage: str
    plan_sha: str
    status: str
    started: float
    ended: float = 0.0
    options: Mapping[str, Any] = field(default_factory=dict)
    batches: list[tuple[str, ...]] = field(default_factory=list)
    steps: list[StepOutcome] = field(default_factory=list)
    records: list[TaskRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_dir: str | None = None

    @property
    def ok(self) -> bool:
        """True if the run did everything it was asked without failure."""
        return self.status in (SUCCESSFUL, NOTHING_TO_DO, DRY_RUN)

    @property
    def duration(self) -> float:
        """Wall time of the run, in seconds."""
        return max(0.0, self.ended - self.started)

    @property
    def failed_hosts(self) -> list[str]:
        """Hosts that failed a step in this run, in the order they failed."""
        return list(dict.fromkeys(h for s in self.steps for h in s.failed))

    @property
    def reproduce_script(self) -> str | None:
        """The shell script that repeats this run's ansible-playbook calls."""
        import os
        return (os.path.join(self.run_dir, "ansible-playbook-command.sh")
                if self.run_dir else None)

    def host_steps(self) -> tuple[list[str], list[tuple]]:
        """Hosts x steps outcome table: ``ok``, ``failed`` or blank."""
        step_ids = list(dict.fromkeys(s.step for s in self.steps))
        outcome: dict[str, dict[int | str, str]] = {}
        for s in self.steps:
            for host in s.hosts:
                outcome.setdefault(host, {})[s.step] = \
                    "failed" if host in s.failed else (
                        "stopped" if s.interrupted else "ok")
        columns = ["Host"] + [f"Step {s}" for s in step_ids]
        rows = [(host,) + tuple(steps.get(s, "") for s in step_ids)
                for host, steps in outcome.items()]
        return columns, rows

    def step_times(self) -> tuple[list[str], list[tuple]]:
        """Elapsed time per step (summed over batches), in seconds."""
        totals: dict[int | str, float] = {}
        hosts: dict[int | str, int] = {}
        failed: dict[int | str, int] = {}
        for s in self.steps:
            totals[s.step] = totals.get(s.step, 0.0) + s.duration
            hosts[s.step] = hosts.get(s.step, 0) + len(s.hosts)
            failed[s.step] = failed.get(s.step, 0) + len(s.failed)
        return (["Step", "Hosts", "Failed", "Elapsed (s)"],
                [(s, hosts[s], failed[s], round(t, 1)) for s, t in totals.items()])


class RecordSink(Protocol):
    """Where a run streams its records (the run history)."""

    def start_run(self, result: RunResult) -> None: ...

    def add(self, record: TaskRecord) -> None: ...

    def finish_run(self, result: RunResult) -> None: ...


class NullSink:
    """A sink that keeps nothing."""

    def start_run(self, result: RunResult) -> None:
        return None

    def add(self, record: TaskRecord) -> None:
        return None

    def finish_run(self, result: RunResult) -> None:
        return None

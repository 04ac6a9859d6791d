"""Results of runs: per host, step and task records, as plain data.

A :class:`RunResult` is what :func:`~composable_upgrades.run.execute.run_stage`
returns; its records are also streamed to the run history as they happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from composable_upgrades.model.kinds import RunStatus, TaskStatus

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    from matplotlib.axes import Axes

#: Run outcomes (aliases of :class:`.kinds.RunStatus`, kept for older callers).
#: The script in each run folder that repeats the run's ansible-playbook calls.
REPRODUCE_SCRIPT = "ansible-playbook-command.sh"

SUCCESSFUL = RunStatus.SUCCESSFUL
FAILED = RunStatus.FAILED
INTERRUPTED = RunStatus.INTERRUPTED
DRY_RUN = RunStatus.DRY_RUN
NOTHING_TO_DO = RunStatus.NOTHING_TO_DO


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
        return self.status in (RunStatus.SUCCESSFUL, RunStatus.NOTHING_TO_DO,
                               RunStatus.DRY_RUN)

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
        return (os.path.join(self.run_dir, REPRODUCE_SCRIPT)
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

    def outcome_table(self) -> tuple[list[str], list[tuple]]:
        """:meth:`host_steps` with a last row of the elapsed time per step."""
        columns, rows = self.host_steps()
        elapsed: dict[int | str, float] = {}
        for s in self.steps:
            elapsed[s.step] = elapsed.get(s.step, 0.0) + s.duration
        return columns, rows + [("elapsed (s)",) + tuple(
            round(t, 1) for t in elapsed.values())]

    # -- frames and plots (pandas and matplotlib are imported when used) ----

    def to_frame(self) -> pandas.DataFrame:
        """One row per host, step and task, in the order they ran."""
        return records_frame(self.records)

    def failures(self) -> pandas.DataFrame:
        """The failed and unreachable task records, with their messages."""
        return records_frame([r for r in self.records if r.status in FAILURES])

    def summary(self) -> pandas.DataFrame:
        """One row per step (batches added up): hosts ok, hosts failed, wall time.

        ``wall_time`` is in seconds; hosts of a step stopped by a second
        Ctrl-C count as neither ok nor failed.
        """
        import pandas

        order: dict[int | str, list[float]] = {}
        for s in self.steps:
            totals = order.setdefault(s.step, [0, 0, 0.0])
            if not s.interrupted:
                totals[0] += len(s.hosts) - len(s.failed)
            totals[1] += len(s.failed)
            totals[2] += s.duration
        return pandas.DataFrame(
            [(step, int(ok), int(bad), wall) for step, (ok, bad, wall) in order.items()],
            columns=["step", "hosts_ok", "hosts_failed", "wall_time"])

    def timeline(self, ax: Axes | None = None) -> Axes:
        """A Gantt chart of the run: one bar per host per step per batch.

        Bars span the host's first task start to its last task end in the
        step (the step's span when the host has no timed task), coloured by
        outcome; x is seconds since the run started. Draws on ``ax`` or on a
        new figure; returns the Axes.
        """
        from matplotlib.patches import Patch

        if ax is None:
            import matplotlib.pyplot as plt
            _, ax = plt.subplots(figsize=(10, 1.5 + 0.3 * min(
                100, len({h for s in self.steps for h in s.hosts}))))
        bars = _bars(self)
        hosts = list(dict.fromkeys(b.host for b in bars))
        row = {h: i for i, h in enumerate(hosts)}
        origin = self.started or min((b.start for b in bars), default=0.0)
        ax.barh([row[b.host] for b in bars],
                [max(b.end - b.start, 0.0) for b in bars],
                left=[b.start - origin for b in bars], height=0.6,
                color=[TIMELINE_COLOURS[b.outcome] for b in bars],
                edgecolor="none")
        for s in self.steps:
            ax.axvline(s.started - origin, color="0.85", linewidth=0.8, zorder=0)
            ax.annotate(f"{s.batch}/{s.step}" if len(self.batches) > 1 else str(s.step),
                        (s.started - origin, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, 2), textcoords="offset points", fontsize=7,
                        color="0.4")
        ax.set_yticks(range(len(hosts)), hosts)
        ax.invert_yaxis()
        ax.set_xlabel("seconds since the run started")
        ax.set_title(f"{self.stage}: run {self.run_id} ({self.status})", pad=14)
        used = list(dict.fromkeys(b.outcome for b in bars))
        if used:
            ax.legend(handles=[Patch(color=TIMELINE_COLOURS[o], label=o) for o in used],
                      loc="lower right", fontsize=7)
        return ax


#: Task outcomes that mean a host failed.
FAILURES = (TaskStatus.FAILED, TaskStatus.UNREACHABLE)

#: Bar colours of :meth:`RunResult.timeline`, by outcome.
TIMELINE_COLOURS = {"ok": "tab:green", "failed": "tab:red",
                    "stopped": "tab:orange", "no tasks": "0.75"}

#: Columns of :meth:`RunResult.to_frame`, the :class:`TaskRecord` fields.
RECORD_COLUMNS = ("run_id", "stage", "batch", "step", "host", "role", "service",
                  "task", "action", "status", "start", "duration", "message")


@dataclass(frozen=True)
class _Bar:
    host: str
    start: float
    end: float
    outcome: str


def _bars(result: RunResult) -> list[_Bar]:
    """Span and outcome of each (batch, step, host) of ``result``."""
    spans: dict[tuple[int, int | str, str], list[float]] = {}
    bad: set[tuple[int, int | str, str]] = set()
    for r in result.records:
        key = (r.batch, r.step, r.host)
        if r.status in FAILURES:
            bad.add(key)
        if r.start is None:
            continue
        end = r.start + (r.duration or 0.0)
        span = spans.get(key)
        if span is None:
            spans[key] = [r.start, end]
        else:
            span[0] = min(span[0], r.start)
            span[1] = max(span[1], end)
    bars = []
    for s in result.steps:
        failed = set(s.failed)
        for host in s.hosts:
            key = (s.batch, s.step, host)
            start, end = spans.get(key, (s.started, s.ended))
            outcome = ("failed" if host in failed or key in bad else
                       "stopped" if s.interrupted else
                       "ok" if key in spans else "no tasks")
            bars.append(_Bar(host, start, end, outcome))
    return bars


def records_frame(records: list[TaskRecord]) -> pandas.DataFrame:
    """Task records as a DataFrame (columns :data:`RECORD_COLUMNS`)."""
    import operator

    import pandas

    row = operator.attrgetter(*RECORD_COLUMNS)
    frame = pandas.DataFrame([row(r) for r in records], columns=list(RECORD_COLUMNS))
    if not records:
        frame = frame.astype({"batch": "int64", "start": "float64",
                              "duration": "float64"})
    return frame


class RecordSink(Protocol):
    """Where a run streams its records (the run history)."""

    def start_run(self, result: RunResult) -> None: ...

    def add(self, record: TaskRecord) -> None: ...

    def flush(self) -> None:
        """Write what is buffered now (before the journal counts its units)."""
        ...

    def finish_run(self, result: RunResult) -> None: ...

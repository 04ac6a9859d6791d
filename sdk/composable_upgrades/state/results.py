"""Results of runs: per host, step and task records, as plain data.

A :class:`RunResult` is what :func:`~composable_upgrades.run.execute.run_stage`
returns; its records are also streamed to the run history as they happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from composable_upgrades.model.kinds import FAILURES, RunStatus
from composable_upgrades.state.run_timeline import draw_timeline

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    from matplotlib.axes import Axes

#: Run outcomes (aliases of :class:`.kinds.RunStatus`, kept for older callers).
#: The script in each run folder that repeats the run's ansible-playbook calls.
REPRODUCE_SCRIPT = "ansible-playbook-command.sh"

SUCCESSFUL = RunStatus.SUCCESSFUL
FAILED = RunStatus.FAILED
INTERRUPTED = RunStatus.INTERRUPTED
PAUSED = RunStatus.PAUSED
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
    #: When the run was asked for, if known: a command's own start (the
    #: seconds before ``started`` are its start-up).
    requested: float | None = None
    #: Seconds the run waited for the operator's answers (``confirm``).
    waited: float = 0.0

    @property
    def ok(self) -> bool:
        """True if the run did everything it was asked without failure (a
        paused run did what it was asked: the batches before its pause)."""
        return self.status in (RunStatus.SUCCESSFUL, RunStatus.PAUSED,
                               RunStatus.NOTHING_TO_DO, RunStatus.DRY_RUN)

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
        """Hosts x steps outcome table: ``ok``, ``failed`` or blank; steps in
        step order (a resumed run starts some hosts at a later step)."""
        step_ids = step_order(s.step for s in self.steps)
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
            round(elapsed[step], 1) for step in step_order(elapsed))]

    # -- frames and plots (pandas and matplotlib are imported when used) ----

    def to_frame(self) -> pandas.DataFrame:
        """One row per host, step and task, in the order they ran: the records
        as they are stored (``start`` in seconds since the epoch, exact
        durations); :meth:`tasks` is the same for reading."""
        return records_frame(self.records)

    def tasks(self) -> pandas.DataFrame:
        """One row per host, step and task, in the order they ran, for reading:
        ``start`` as local date-times and ``duration`` in seconds rounded to
        0.1 (the columns of :meth:`to_frame` but ``run_id``)."""
        return _readable(records_frame(self.records)).drop(columns=["run_id"])

    def failures(self) -> pandas.DataFrame:
        """The failed and unreachable task records, with their messages."""
        return records_frame([r for r in self.records if r.status in FAILURES])

    def batch_table(self) -> pandas.DataFrame:
        """One row per batch: its number, how many hosts, and the hosts."""
        import pandas

        return pandas.DataFrame(
            [(number, len(hosts), ", ".join(hosts))
             for number, hosts in enumerate(self.batches, start=1)],
            columns=["batch", "count", "hosts"])

    def summary(self) -> pandas.DataFrame:
        """One row per step (batches added up), in step order: hosts ok, hosts
        failed, wall time.

        ``wall_time`` is in seconds; hosts of a step stopped by a second
        Ctrl-C count as neither ok nor failed.
        """
        import pandas

        totals: dict[int | str, list[float]] = {}
        for s in self.steps:
            row = totals.setdefault(s.step, [0, 0, 0.0])
            if not s.interrupted:
                row[0] += len(s.hosts) - len(s.failed)
            row[1] += len(s.failed)
            row[2] += s.duration
        return pandas.DataFrame(
            [(step, int(totals[step][0]), int(totals[step][1]), totals[step][2])
             for step in step_order(totals)],
            columns=["step", "hosts_ok", "hosts_failed", "wall_time"])

    def timeline(self, ax: Axes | None = None) -> Axes:
        """A Gantt chart of the run on a wall-clock axis: one bar per host per
        step per batch, coloured by the host's role, with its outcome
        (:func:`~.run_timeline.draw_timeline`). Draws on ``ax`` or on a new
        figure; returns the Axes."""
        return draw_timeline(self, ax)



#: Columns of :meth:`RunResult.to_frame`, the :class:`TaskRecord` fields.
RECORD_COLUMNS = ("run_id", "stage", "batch", "step", "host", "role", "service",
                  "task", "action", "status", "start", "duration", "message")


def step_order(steps: Any) -> list[int | str]:
    """The distinct steps of ``steps`` in run order: numbers ascending, then
    converge's named phases in the order they came."""
    seen = list(dict.fromkeys(steps))
    return sorted(s for s in seen if isinstance(s, int)) + [
        s for s in seen if not isinstance(s, int)]


def _readable(frame: pandas.DataFrame) -> pandas.DataFrame:
    """``frame`` (of :func:`records_frame`) with ``start`` as local
    date-times (to the millisecond) and ``duration`` rounded to 0.1 s."""
    import datetime

    import pandas

    frame = frame.copy()
    frame["start"] = pandas.to_datetime(
        [None if pandas.isna(t) else datetime.datetime.fromtimestamp(t)
         for t in frame["start"]]).round("ms")
    frame["duration"] = frame["duration"].round(1)
    return frame


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

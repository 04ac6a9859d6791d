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
        step per batch, coloured by the host's role.

        A bar spans the host's first task start to its last task end in the
        step (the step's span when the host has no timed task). A strip under
        each bar shows its outcome (:data:`TIMELINE_COLOURS`); a failed
        host-step is also outlined in red and labelled with the task that
        failed. Above the axes, each step is marked where it starts, and each
        batch (a dashed line) with ``batch N``. In a ``reboot`` step, each
        host is labelled ``rebooted`` or ``skipped``. The legend (roles, then
        outcomes) is outside the axes, on the right. Draws on ``ax`` or on a
        new figure; returns the Axes.
        """
        import matplotlib.dates as mdates
        from matplotlib.collections import PolyCollection
        from matplotlib.colors import to_rgba
        from matplotlib.patches import Patch

        bars = _bars(self)
        hosts = list(dict.fromkeys(b.host for b in bars))
        if ax is None:
            import matplotlib.pyplot as plt
            _, ax = plt.subplots(figsize=(12, 1.8 + 0.3 * min(100, len(hosts))),
                                 layout="constrained")
        row = {h: i for i, h in enumerate(hosts)}
        roles = list(dict.fromkeys(b.role for b in bars))
        colour = dict(zip(roles, _role_colours(len(roles))))
        x = _wall_clock
        # Role-coloured bars in one collection (faint where the host had no
        # task at the step); the outcome strips are the Axes' patches (one
        # per bar), under each bar.
        ax.add_collection(PolyCollection(
            [_box(x(b.start), x(max(b.end, b.start)), row[b.host] - 0.3,
                  row[b.host] + 0.2) for b in bars],
            facecolors=[to_rgba(colour[b.role], 0.3 if b.outcome == "no tasks" else 1.0)
                        for b in bars],
            edgecolors=[TIMELINE_COLOURS["failed"] if b.outcome == "failed"
                        else "none" for b in bars],
            linewidths=1.5))
        ax.barh([row[b.host] + 0.3 for b in bars],
                [x(max(b.end, b.start)) - x(b.start) for b in bars],
                left=[x(b.start) for b in bars], height=0.16,
                color=[TIMELINE_COLOURS[b.outcome] for b in bars], edgecolor="none")
        labelled = False
        for b in bars:
            label = (b.task if b.outcome == "failed" else
                     ("rebooted" if b.rebooted else "skipped")
                     if b.rebooted is not None else "")
            if label:
                labelled = True
                ax.annotate(_short(label), (x(max(b.end, b.start)), row[b.host]),
                            xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=7, annotation_clip=False,
                            color=TIMELINE_COLOURS["failed"]
                            if b.outcome == "failed" else "0.25")
        ax.autoscale_view()
        left, right = ax.get_xlim()
        if labelled:  # room on the right for the labels of the last bars
            right += (right - left) * 0.15
            ax.set_xlim(left, right)
        self._mark_steps(ax, right - left)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.set_yticks(range(len(hosts)), hosts)
        ax.set_ylim(len(hosts) - 0.4, -0.6)
        ax.set_xlabel("wall-clock time")
        ax.set_title(f"{self.stage}: run {self.run_id} ({self.status})",
                     pad=30 if len(self.batches) > 1 else 16)
        # One legend, outside the axes: the roles (bar colours), then the
        # outcomes (strip colours).
        used = list(dict.fromkeys(b.outcome for b in bars))
        handles = ([Patch(color=colour[r], label=r or "(no role)") for r in roles]
                   + [Patch(color=TIMELINE_COLOURS[o], label=f"outcome: {o}")
                      for o in used])
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      fontsize=7, frameon=False, borderaxespad=0.0)
        return ax

    def _mark_steps(self, ax: Axes, span: float) -> None:
        """A line where each step of each batch starts, labelled above the
        axes with its step; a dashed line and ``batch N`` where a batch
        starts. A label that would run into the one before it (``span``: the
        x range) is left out, so that the labels stay readable."""
        batched = len(self.batches) > 1
        char = span * 0.0065  # about one character of a 7-point label
        free_step = free_batch = float("-inf")
        batch = None
        for s in self.steps:
            at = _wall_clock(s.started)
            first = batched and s.batch != batch
            batch = s.batch
            ax.axvline(at, color="0.45" if first else "0.85",
                       linewidth=0.9 if first else 0.7,
                       linestyle="--" if first else "-", zorder=0)
            if first and at >= free_batch:
                text = f"batch {s.batch}"
                ax.annotate(text, (at, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(2, 15), textcoords="offset points",
                            fontsize=8, color="0.2")
                free_batch = at + char * 1.2 * (len(text) + 1)
            text = str(s.step) if batched else f"step {s.step}"
            if at >= free_step:
                ax.annotate(text, (at, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(2, 3), textcoords="offset points", fontsize=7,
                            color="0.4")
                free_step = at + char * (len(text) + 1)


#: Task outcomes that mean a host failed.
FAILURES = (TaskStatus.FAILED, TaskStatus.UNREACHABLE)

#: Outcome colours of :meth:`RunResult.timeline` (the strip under each bar).
TIMELINE_COLOURS = {"ok": "tab:green", "failed": "tab:red",
                    "stopped": "tab:orange", "no tasks": "0.75"}

#: The converge phase whose hosts :meth:`RunResult.timeline` labels
#: ``rebooted`` (a task changed something there) or ``skipped``.
REBOOT_STEP = "reboot"

#: Columns of :meth:`RunResult.to_frame`, the :class:`TaskRecord` fields.
RECORD_COLUMNS = ("run_id", "stage", "batch", "step", "host", "role", "service",
                  "task", "action", "status", "start", "duration", "message")


def step_order(steps: Any) -> list[int | str]:
    """The distinct steps of ``steps`` in run order: numbers ascending, then
    converge's named phases in the order they came."""
    seen = list(dict.fromkeys(steps))
    return sorted(s for s in seen if isinstance(s, int)) + [
        s for s in seen if not isinstance(s, int)]


@dataclass(frozen=True)
class _Bar:
    host: str
    start: float
    end: float
    outcome: str
    role: str | None = None
    task: str = ""               # the task that failed, if any
    rebooted: bool | None = None  # in a reboot step: rebooted or skipped


def _bars(result: RunResult) -> list[_Bar]:
    """Span, outcome and role of each (batch, step, host) of ``result``."""
    spans: dict[tuple[int, int | str, str], list[float]] = {}
    failed_task: dict[tuple[int, int | str, str], str] = {}
    changed: set[tuple[int, int | str, str]] = set()
    roles: dict[str, str | None] = {}
    for r in result.records:
        key = (r.batch, r.step, r.host)
        roles.setdefault(r.host, r.role)
        if r.status in FAILURES:
            failed_task.setdefault(key, r.task)
        elif r.status == TaskStatus.CHANGED:
            changed.add(key)
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
            outcome = ("failed" if host in failed or key in failed_task else
                       "stopped" if s.interrupted else
                       "ok" if key in spans else "no tasks")
            rebooted = (key in changed if s.step == REBOOT_STEP
                        and outcome == "ok" else None)
            bars.append(_Bar(host, start, end, outcome, roles.get(host),
                             failed_task.get(key, ""), rebooted))
    return bars


def _wall_clock(moment: float) -> float:
    """``moment`` (seconds since the epoch) as a Matplotlib date, local time."""
    import datetime

    import matplotlib.dates as mdates

    return mdates.date2num(datetime.datetime.fromtimestamp(moment))


def _box(left: float, right: float, bottom: float, top: float) -> list[tuple]:
    return [(left, bottom), (left, top), (right, top), (right, bottom)]


def _role_colours(count: int) -> list[Any]:
    """``count`` distinct colours, one per role, none of them an outcome's
    (green, red, orange, grey)."""
    import matplotlib

    tab10, tab20b = matplotlib.colormaps["tab10"], matplotlib.colormaps["tab20b"]
    palette = [tab10(i) for i in (0, 4, 5, 6, 8, 9)] + [tab20b(i) for i in range(20)]
    return [palette[i % len(palette)] for i in range(count)]


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


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

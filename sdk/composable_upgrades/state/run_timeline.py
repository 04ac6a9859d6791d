"""A run drawn as a Gantt chart: :meth:`~composable_upgrades.state.results.RunResult.timeline`.

One bar per host per step per batch on a wall-clock axis, coloured by role,
with a strip for its outcome, the failed task named, and the steps and
batches marked above the axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from composable_upgrades.model.kinds import FAILURES, TaskStatus

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes


class TimedRun(Protocol):
    """What a timeline reads of a run (a :class:`~.results.RunResult`)."""

    run_id: str
    stage: str
    status: str
    batches: Sequence[Any]
    steps: Sequence[Any]
    records: Sequence[Any]

#: Outcome colours of :func:`draw_timeline` (the strip under each bar).
TIMELINE_COLOURS = {"ok": "tab:green", "failed": "tab:red",
                    "stopped": "tab:orange", "no tasks": "0.75"}

#: The converge phase whose hosts :func:`draw_timeline` labels
#: ``rebooted`` (a task changed something there) or ``skipped``.
REBOOT_STEP = "reboot"


def draw_timeline(result: TimedRun, ax: Axes | None = None) -> Axes:
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

    bars = _bars(result)
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
    _mark_steps(result, ax, right - left)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.set_yticks(range(len(hosts)), hosts)
    ax.set_ylim(len(hosts) - 0.4, -0.6)
    ax.set_xlabel("wall-clock time")
    ax.set_title(f"{result.stage}: run {result.run_id} ({result.status})",
                 pad=30 if len(result.batches) > 1 else 16)
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

def _mark_steps(result: TimedRun, ax: Axes, span: float) -> None:
    """A line where each step of each batch starts, labelled above the
    axes with its step; a dashed line and ``batch N`` where a batch
    starts. A label that would run into the one before it (``span``: the
    x range) is left out, so that the labels stay readable."""
    batched = len(result.batches) > 1
    char = span * 0.0065  # about one character of a 7-point label
    free_step = free_batch = float("-inf")
    batch = None
    for s in result.steps:
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


@dataclass(frozen=True)
class _Bar:
    host: str
    start: float
    end: float
    outcome: str
    role: str | None = None
    task: str = ""               # the task that failed, if any
    rebooted: bool | None = None  # in a reboot step: rebooted or skipped


def _bars(result: TimedRun) -> list[_Bar]:
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

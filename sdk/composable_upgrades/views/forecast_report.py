"""A forecast's figures and how they are shown: frames, the comparison with
a finished run, a Gantt chart.

:class:`Forecast` holds the :class:`Estimate` of every stage, batch and step
that :func:`.forecast_model.predict` drew; it knows nothing of how they were
drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from composable_upgrades.errors import StageError
from composable_upgrades.state.results import RunResult
from composable_upgrades.views.forecast_learning import Learned

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    from matplotlib.axes import Axes


@dataclass(frozen=True)
class Estimate:
    """One figure of a forecast: a step of a batch, a batch, or a stage.

    ``batch`` and ``step`` are None for the coarser figures. ``p50`` and
    ``p90`` are seconds (None when nothing of it was recorded);
    ``observations`` is how many recorded durations it rests on; ``missing``
    names its role plays that have none.
    """

    stage: str
    batch: int | None
    step: int | str | None
    hosts: int
    p50: float | None
    p90: float | None
    observations: int
    missing: tuple[str, ...] = ()
    start: float = 0.0


@dataclass(frozen=True)
class Forecast:
    """The expected duration of stages, their batches and steps (seconds).

    ``start`` of a step is where its median begins, counted from the start of
    its stage: a forecast drawn as a Gantt chart (:meth:`plot`).
    """

    stages: tuple[Estimate, ...]
    batches: tuple[Estimate, ...]
    steps: tuple[Estimate, ...]
    batch_size: str | None
    forks: int
    learned: Learned = field(repr=False)
    batch_hosts: Mapping[str, tuple[tuple[str, ...], ...]] = field(
        default_factory=dict, repr=False)

    @property
    def missing(self) -> tuple[str, ...]:
        """Role plays with no recorded duration (``Compute step 3``)."""
        return tuple(dict.fromkeys(m for s in self.stages for m in s.missing))

    @property
    def note(self) -> str:
        """One line on what the figures leave out ('' when nothing)."""
        if not self.missing:
            return ""
        runs = len(self.learned.runs)
        where = f"{runs or 'no'} recorded run{'s' if runs != 1 else ''}"
        return (f"no recorded duration ({where}) for {_named(self.missing)}: "
                "the figures leave them out")

    def total(self) -> pandas.DataFrame:
        """One row per stage: hosts, batches, p50, p90, observations."""
        import pandas

        batches = {s.stage: sum(1 for b in self.batches if b.stage == s.stage)
                   for s in self.stages}
        return pandas.DataFrame(
            [(s.stage, s.hosts, batches[s.stage], s.p50, s.p90, s.observations)
             for s in self.stages],
            columns=["stage", "hosts", "batches", "p50", "p90", "observations"])

    def to_frame(self, by: str = "step") -> pandas.DataFrame:
        """One row per step of each batch (``by="step"``), per batch or per
        stage: stage, batch, step, hosts, p50, p90, observations, start."""
        import pandas

        rows = {"step": self.steps, "batch": self.batches, "stage": self.stages}
        if by not in rows:
            raise ValueError(f"by must be one of {', '.join(rows)}, not {by!r}")
        return pandas.DataFrame(
            [(e.stage, e.batch, e.step, e.hosts, e.p50, e.p90, e.observations,
              e.start) for e in rows[by]],
            columns=["stage", "batch", "step", "hosts", "p50", "p90",
                     "observations", "start"])

    def compare(self, run: RunResult) -> pandas.DataFrame:
        """Forecast against what a finished ``run`` of one of its stages took.

        One row per batch and step, and a last row (step ``"total"``) for the
        whole run: the forecast's p50 and p90, the measured seconds (a step's
        from the end of the one before, so the overheads are counted where
        the forecast counts them), the error ``(p50 - measured) / measured``
        and whether the measure is within the p90.
        """
        import pandas

        predicted = {(e.batch, e.step): e for e in self.steps if e.stage == run.stage}
        stage = next((s for s in self.stages if s.stage == run.stage), None)
        if stage is None:
            raise StageError(f"the forecast has no stage {run.stage!r} "
                             f"({', '.join(s.stage for s in self.stages)})",
                             stage=run.stage)
        rows = []
        for (batch, step), seconds in _step_walls(run).items():
            e = predicted.get((batch, step))
            rows.append((run.stage, batch, step, e.p50 if e else None,
                         e.p90 if e else None, seconds))
        rows.append((run.stage, None, "total", stage.p50, stage.p90, run.duration))
        frame = pandas.DataFrame(rows, columns=["stage", "batch", "step", "p50",
                                                "p90", "measured"])
        frame["error"] = (frame["p50"] - frame["measured"]) / frame["measured"]
        frame["within_p90"] = frame["measured"] <= frame["p90"]
        return frame

    def plot(self, run: RunResult | None = None, ax: Axes | None = None,
             stage: str | None = None) -> Axes:
        """A Gantt chart of the forecast: one bar per batch and step, from its
        median start, its median long, a whisker to its 90th percentile; with
        ``run``, the measured steps of that run beside it. Returns the Axes."""
        if ax is None:
            import matplotlib.pyplot as plt
            _, ax = plt.subplots(figsize=(10, 4))
        stage = stage or (run.stage if run is not None else self.stages[0].stage)
        steps = [e for e in self.steps if e.stage == stage and e.p50 is not None]
        labels = [f"{e.batch}/{e.step}" for e in steps]
        ax.barh([i - 0.2 for i in range(len(steps))], [e.p50 for e in steps],
                left=[e.start for e in steps], height=0.4, color="tab:blue",
                label="forecast (p50, whisker to p90)")
        ax.errorbar([e.start + e.p50 for e in steps], [i - 0.2 for i in range(len(steps))],
                    xerr=[[0] * len(steps), [e.p90 - e.p50 for e in steps]],
                    fmt="none", ecolor="tab:blue", capsize=2, linewidth=0.8)
        if run is not None:
            walls = _step_walls(run)
            at, index = 0.0, {(e.batch, e.step): i for i, e in enumerate(steps)}
            for (batch, step), seconds in walls.items():
                if (batch, step) in index:
                    ax.barh(index[(batch, step)] + 0.2, seconds, left=at, height=0.4,
                            color="tab:orange",
                            label="measured" if at == 0.0 else None)
                at += seconds
        ax.set_yticks(range(len(steps)), labels)
        ax.invert_yaxis()
        ax.set_ylabel("batch/step")
        ax.set_xlabel("seconds since the stage started")
        ax.set_title(f"{stage}: forecast" + (f" and run {run.run_id}" if run else ""))
        ax.legend(loc="lower right", fontsize=7)
        return ax


def _step_walls(run: RunResult) -> dict[tuple[int, Any], float]:
    """Each batch and step of ``run``: seconds from the end of the step
    before (the run's start for the first) to its last task's end."""
    ends: dict[tuple[int, Any], float] = {}
    for r in run.records:
        if r.start is not None:
            key = (r.batch, r.step)
            ends[key] = max(ends.get(key, 0.0), r.start + (r.duration or 0.0))
    walls, mark = {}, run.started
    for key, end in ends.items():
        walls[key] = max(0.0, end - mark)
        mark = end
    return walls


def _named(missing: Sequence[str]) -> str:
    """``Compute steps 0-5; CephStorage step 3``: role plays, grouped by role."""
    steps: dict[str, list[str]] = {}
    for item in missing:
        role, _, number = item.rpartition(" step ")
        steps.setdefault(role, []).append(number)
    parts = []
    for role, numbers in steps.items():
        parts.append(f"{role} step{'s' if len(numbers) > 1 else ''} {_span(numbers)}")
    return "; ".join(parts)


def _span(numbers: Sequence[str]) -> str:
    """``0-5`` for consecutive step numbers, else them all."""
    if len(numbers) > 2 and all(n.isdigit() for n in numbers):
        values = [int(n) for n in numbers]
        if values == list(range(values[0], values[0] + len(values))):
            return f"{values[0]}-{values[-1]}"
    return ", ".join(numbers)

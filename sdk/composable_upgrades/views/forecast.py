"""How long a stage will take, before it runs: a forecast learned from records.

A forecast follows what ``run`` does. A stage runs batch after batch; within
a batch every step is a barrier; a step's role plays run in waves, the plays
of a wave at once, each in its role's lane (one ansible-playbook process per
role and batch, :mod:`composable_upgrades.run.lanes`), whose forks are its
share of the run's. A lane runs a play task by task (Ansible's linear
strategy): each task ends when the slowest of the lane's hosts has done it,
and with fewer forks than hosts the hosts go through the forks as they free
up. So a step of a batch takes the slowest lane of each wave, summed over
waves, plus the step's own overhead; a batch of 50 hosts waits for the
slowest of 50, not for the average.

What the records teach (:func:`learn`):

- per role, step and task, the durations of each host's task: the
  *intrinsic* part, with the contention taken out;
- *contention*: how much a host's task takes longer for each task running
  at the same time (many forks on few CPUs), the slope of duration against
  concurrency among the hosts of one task;
- overheads: a batch's start-up (the lanes' processes) at its first step,
  the barrier between two steps, and the end of the run, each what the wall
  time of the records shows beyond the tasks' own.

A forecast (:func:`forecast`) draws each host's duration from what was
recorded (a smoothed bootstrap, so that the slowest of many hosts can be
slower than the slowest one seen), adds the contention its wave's
concurrency gives, schedules the hosts of each lane on its forks, adds the
overheads drawn from those seen, and repeats: the median and the 90th
percentile of those draws are the figures. Roles and steps with no record
are named (:attr:`Forecast.missing`), never counted as zero silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from composable_upgrades.errors import StageError
from composable_upgrades.model.kinds import RunStatus, StageKind
from composable_upgrades.planning.prepared import PreparedPlan, PreparedStage
from composable_upgrades.run.environment import default_forks
from composable_upgrades.run.lanes import lane_forks, lane_steps
from composable_upgrades.run.limits import batches_of
from composable_upgrades.state.results import RunResult, TaskRecord
from composable_upgrades.state.workdir import Workdir
from composable_upgrades.views.history import History

if TYPE_CHECKING:  # pragma: no cover
    import numpy
    import pandas
    from matplotlib.axes import Axes

#: How many times a forecast plays the stage out.
DRAWS = 400
#: The draws' seed: the same plan, history and options give the same figures.
SEED = 16
#: The quantiles a forecast gives.
P50, P90 = 0.5, 0.9

Key = tuple[str, Any]  # (role, step)


@dataclass(frozen=True)
class Learned:
    """What recorded runs teach a forecast (see the module's docstring).

    ``durations``: (role, step) -> task -> intrinsic per-host durations, in
    seconds; ``contention``: seconds a host's task gains per task running at
    the same time, and its standard error; ``startup``, ``barrier``, ``ending``: the overheads seen at
    a batch's first step, at each later step, and at the end of a run.
    """

    durations: Mapping[Key, Mapping[str, tuple[float, ...]]]
    contention: float
    contention_error: float = 0.0
    startup: tuple[float, ...] = ()
    barrier: tuple[float, ...] = ()
    ending: tuple[float, ...] = ()
    runs: tuple[str, ...] = ()

    def observations(self, role: str, step: Any) -> int:
        """How many host-task durations of ``role`` at ``step`` were recorded."""
        return sum(len(v) for v in self.durations.get((role, step), {}).values())


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


# -- learning ----------------------------------------------------------------

def histories(working_dir: str | os.PathLike[str],
              history: History | str | os.PathLike[str]
              | Iterable[History | str | os.PathLike[str]] | None) -> list[History]:
    """The histories to learn from: ``history`` (working dirs or
    :class:`History` objects), default the plan's own."""
    if history is None:
        history = [working_dir]
    elif isinstance(history, (History, str, os.PathLike)):
        history = [history]
    return [h if isinstance(h, History) else History(h) for h in history]


def learn(sources: Sequence[History]) -> Learned:
    """What the successful (or paused) stage runs of ``sources`` teach (see the module)."""
    samples: dict[Key, dict[str, list[tuple[float, float]]]] = {}
    overheads: dict[str, list[float]] = {"startup": [], "barrier": [], "ending": []}
    runs = []
    for source in sources:
        waves = _plan_waves(source)
        for row in source.run_rows():
            if row.kind != "stage" \
                    or row.status not in (RunStatus.SUCCESSFUL, RunStatus.PAUSED) \
                    or row.arguments.get("tags"):
                continue
            run = source.run(row.run_id)
            timed = [r for r in run.records
                     if r.start is not None and r.duration is not None]
            if not timed:
                continue
            runs.append(f"{source.path}:{row.run_id}")
            forks = int(row.arguments.get("forks") or default_forks())
            _learn_run(run, timed, forks, waves.get(run.stage, {}), samples, overheads)
    contention, error = _contention(samples)
    durations = {key: {task: tuple(max(0.0, d - contention * c) for d, c in values)
                       for task, values in tasks.items()}
                 for key, tasks in samples.items()}
    return Learned(durations=durations, contention=contention, contention_error=error,
                   **{kind: tuple(values) for kind, values in overheads.items()},
                   runs=tuple(runs))


def _plan_waves(source: History) -> dict[str, dict[Any, tuple[tuple[str, ...], ...]]]:
    """Stage -> step -> waves of the plan in ``source``'s working dir, if any."""
    workdir = source.workdir
    if not workdir.has_plan():
        return {}
    try:
        plan = workdir.load_plan()
    except Exception:  # noqa: BLE001 - a damaged plan only loses the waves
        return {}
    return {s.name: {step.number: step.waves for step in s.steps} for s in plan.stages}


def _learn_run(run: RunResult, timed: list[TaskRecord], forks: int,
               waves: Mapping[Any, tuple[tuple[str, ...], ...]],
               samples: dict[Key, dict[str, list[tuple[float, float]]]],
               overheads: dict[str, list[float]]) -> None:
    """Add one run's durations (with their concurrency) and overheads."""
    import numpy

    groups: dict[tuple[int, Any], list[TaskRecord]] = {}
    for r in timed:
        groups.setdefault((r.batch, r.step), []).append(r)
    mark = run.started
    last_batch = None
    for (batch, step), records in groups.items():
        starts = numpy.array([r.start for r in records])
        ends = starts + numpy.array([r.duration for r in records])
        concurrency = _concurrency(starts, ends)
        for r, c in zip(records, concurrency):
            samples.setdefault((r.role or "", step), {}).setdefault(
                r.task, []).append((r.duration, float(c)))
        end = float(ends.max())
        modelled = _recorded_step(records, forks, waves.get(step))
        kind = "startup" if batch != last_batch else "barrier"
        overheads[kind].append(max(0.0, end - mark - modelled))
        mark, last_batch = end, batch
    if run.ended:
        overheads["ending"].append(max(0.0, run.ended - mark))


def _concurrency(starts: numpy.ndarray, ends: numpy.ndarray) -> numpy.ndarray:
    """Each interval's time-averaged count of intervals running with it
    (itself included)."""
    import numpy

    overlap = numpy.clip(numpy.minimum(ends[:, None], ends[None, :])
                         - numpy.maximum(starts[:, None], starts[None, :]), 0, None)
    length = ends - starts
    at_start = ((starts[None, :] <= starts[:, None])
                & (ends[None, :] > starts[:, None])).sum(axis=1)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        averaged = overlap.sum(axis=1) / length
    return numpy.where(length > 0, averaged, numpy.maximum(at_start, 1))


def _recorded_step(records: list[TaskRecord], forks: int,
                   waves: tuple[tuple[str, ...], ...] | None) -> float:
    """The seconds the recorded durations of one step take, scheduled as the
    lanes run them: each role's tasks one after the other, each over the
    role's hosts on its forks; the slowest lane of each wave."""
    by_role: dict[str, dict[str, list[TaskRecord]]] = {}
    for r in sorted(records, key=lambda r: r.start):
        by_role.setdefault(r.role or "", {}).setdefault(r.task, []).append(r)
    hosts = {role: len({r.host for t in tasks.values() for r in t})
             for role, tasks in by_role.items()}
    groups = [tuple(w) for w in waves] if waves else [tuple(by_role)]
    total = 0.0
    for wave in groups:
        lanes = [role for role in wave if role in by_role]
        together = sum(hosts[r] for r in lanes)
        slowest = 0.0
        for role in lanes:
            slots = min(hosts[role], max(1, round(forks * hosts[role] / together)))
            slowest = max(slowest, sum(_schedule([r.duration for r in t], slots)
                                       for t in by_role[role].values()))
        total += slowest
    return total


def _schedule(durations: Sequence[float], slots: int) -> float:
    """When the last of ``durations`` ends, each starting on the first free slot."""
    free = [0.0] * max(1, slots)
    for d in durations:
        i = free.index(min(free))
        free[i] += d
    return max(free)


def _contention(samples: Mapping[Key, Mapping[str, list[tuple[float, float]]]]
                ) -> tuple[float, float]:
    """Seconds per concurrent task, and its standard error: the slope of
    duration against concurrency within each task (hosts of one task do the
    same work), pooled."""
    groups = [values for tasks in samples.values() for values in tasks.values()
              if len(values) >= 2]
    centred = []
    for values in groups:
        md = sum(d for d, _ in values) / len(values)
        mc = sum(c for _, c in values) / len(values)
        centred.extend((d - md, c - mc) for d, c in values)
    den = sum(c * c for _, c in centred)
    if den <= 1e-9:
        return 0.0, 0.0
    slope = sum(d * c for d, c in centred) / den
    freedom = len(centred) - len(groups) - 1
    if freedom <= 0:
        return max(0.0, slope), 0.0
    variance = sum((d - slope * c) ** 2 for d, c in centred) / freedom
    return max(0.0, slope), (variance / den) ** 0.5


# -- forecasting -------------------------------------------------------------

def forecast(working_dir: str | os.PathLike[str], *, stage: str | None = None,
             batch_size: int | str | Sequence[int | str] | None = None,
             forks: int | None = None,
             history: History | str | os.PathLike[str]
             | Iterable[History | str | os.PathLike[str]] | None = None,
             draws: int = DRAWS) -> Forecast:
    """The forecast of the plan prepared in ``working_dir`` (every stage, or
    ``stage``), run with ``batch_size`` (what ``run --batch-size`` accepts;
    batched stages only) and ``forks`` (default: ``min(4 x CPUs, 100)``),
    learned from ``history``: working dirs or :class:`History` objects
    (default: the plan's own run history)."""
    plan = Workdir.at(working_dir).load_plan()
    learned = learn(histories(working_dir, history))
    return predict(plan, learned, stage=stage, batch_size=batch_size, forks=forks,
                   draws=draws)


def what_if(working_dir: str | os.PathLike[str], *,
            batch_sizes: Sequence[int | str | None] = (None,),
            forks: Sequence[int | None] = (None,), stage: str | None = None,
            history: History | str | os.PathLike[str]
            | Iterable[History | str | os.PathLike[str]] | None = None,
            draws: int = DRAWS) -> pandas.DataFrame:
    """The window of each combination of ``batch_sizes`` and ``forks``, for
    ``stage`` (default: every batched stage): one row each with the batches,
    the largest batch (``down``: hosts upgraded at once, and ``down_pct``, its
    share of the stage's hosts), p50, p90 and observations."""
    import pandas

    plan = Workdir.at(working_dir).load_plan()
    learned = learn(histories(working_dir, history))
    names = [stage] if stage else [s.name for s in plan.stages
                                   if s.kind == StageKind.BATCHED]
    rows = []
    for name in names:
        for size in batch_sizes:
            for count in forks:
                f = predict(plan, learned, stage=name, batch_size=size, forks=count,
                            draws=draws)
                s = f.stages[0]
                down = max((len(b) for b in f.batch_hosts[name]), default=0)
                rows.append((name, "all" if size is None else str(size), f.forks,
                             len(f.batch_hosts[name]), down,
                             round(100.0 * down / s.hosts, 1) if s.hosts else 0.0,
                             s.p50, s.p90, s.observations))
    return pandas.DataFrame(rows, columns=[
        "stage", "batch_size", "forks", "batches", "down", "down_pct", "p50", "p90",
        "observations"])


def predict(plan: PreparedPlan, learned: Learned, *, stage: str | None = None,
            batch_size: int | str | Sequence[int | str] | None = None,
            forks: int | None = None, draws: int = DRAWS) -> Forecast:
    """The forecast of ``plan`` from what was ``learned``; see :func:`forecast`."""
    import numpy

    total_forks = int(forks) if forks else default_forks()
    size = _batch_size(batch_size)
    stages = [plan.stage(stage)] if stage else list(plan.stages)
    if stage and size is not None and stages[0].kind != StageKind.BATCHED:
        raise StageError(f"stage {stage!r} runs all its hosts together; a batch "
                         "size applies to the batched stages", stage=stage)
    rng = numpy.random.default_rng(SEED)
    # The slope is uncertain, and its error weighs on every host at once.
    contention = numpy.clip(rng.normal(learned.contention, learned.contention_error,
                                       size=(draws, 1)), 0.0, None)
    out_stages, out_batches, out_steps = [], [], []
    layout = {}
    for st in stages:
        batches = _stage_batches(plan, st, size)
        layout[st.name] = tuple(batches)
        stage_draws = numpy.zeros(draws)
        missing: list[str] = []
        observed: set[Key] = set()
        at = 0.0
        for number, batch in enumerate(batches, start=1):
            batch_draws = numpy.zeros(draws)
            first = True
            for step in st.steps:
                in_play = set(batch) & step.hosts
                if not in_play:
                    continue
                values, keys, gaps = _step_draws(st, step, batch, total_forks, learned,
                                                 contention, rng, draws)
                overhead = learned.startup if first else learned.barrier
                values = values + _bootstrap(overhead, rng, draws)
                first = False
                missing.extend(g for g in gaps if g not in missing)
                observed.update(keys)
                count = sum(learned.observations(*k) for k in keys)
                known = bool(keys)
                p50, p90 = _quantiles(values) if known else (None, None)
                out_steps.append(Estimate(
                    st.name, number, step.number, len(in_play), p50, p90, count,
                    tuple(gaps), start=at))
                at += p50 or 0.0
                batch_draws += values
            p50, p90 = _quantiles(batch_draws)
            out_batches.append(Estimate(st.name, number, None, len(batch), p50, p90,
                                        sum(e.observations for e in out_steps
                                            if e.stage == st.name and e.batch == number)))
            stage_draws += batch_draws
        stage_draws += _bootstrap(learned.ending, rng, draws)
        p50, p90 = _quantiles(stage_draws)
        known = bool(observed)
        out_stages.append(Estimate(
            st.name, None, None, sum(len(b) for b in batches),
            p50 if known else None, p90 if known else None,
            sum(learned.observations(*k) for k in observed), tuple(missing)))
    return Forecast(stages=tuple(out_stages), batches=tuple(out_batches),
                    steps=tuple(out_steps), batch_size=size, forks=total_forks,
                    learned=learned, batch_hosts=layout)


def _batch_size(value: int | str | Sequence[int | str] | None) -> str | None:
    """``run --batch-size``'s text for ``value`` (a list becomes ``1,5,20%``)."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _stage_batches(plan: PreparedPlan, stage: PreparedStage,
                   size: str | None) -> list[tuple[str, ...]]:
    """The batches ``run`` would make of every host of ``stage``."""
    hosts = list(stage.hosts)
    if stage.kind != StageKind.BATCHED or size is None:
        return [tuple(hosts)] if hosts else []
    return batches_of(hosts, size, {h: plan.role_of(h) or "" for h in hosts})


def _step_draws(stage: PreparedStage, step: Any, batch: Sequence[str], forks: int,
                learned: Learned, contention: numpy.ndarray,
                rng: numpy.random.Generator, draws: int
                ) -> tuple[numpy.ndarray, list[Key], list[str]]:
    """Draws of one step of one batch (without its overhead), the (role, step)
    keys it rests on, and its role plays with no record."""
    import numpy

    batch_set = set(batch)
    by_role = {play.role: len(batch_set.intersection(play.hosts))
               for s in stage.steps for play in s.plays}
    plays = {play.role: play for play in step.plays
             if batch_set.intersection(play.hosts)
             and any(not t.never for t in play.tasks)}
    keys, gaps = [], []
    total = numpy.zeros(draws)
    for wave in step.waves:
        lanes = []
        for role in wave:
            play = plays.get(role)
            if play is None:
                continue
            tasks = learned.durations.get((role, step.number))
            if not tasks:
                gaps.append(f"{role} step {step.number}")
                continue
            keys.append((role, step.number))
            hosts = len(batch_set.intersection(play.hosts))
            steps = lane_steps(stage, role, stage.numbers, stage.numbers[0])
            share = lane_forks(forks, stage, role, hosts, by_role, steps)
            lanes.append((hosts, min(hosts, share), tasks))
        if lanes:
            total += _wave_draws(lanes, contention, rng, draws)
    return total, keys, gaps


def _smoothed(values: Sequence[float], rng: numpy.random.Generator,
              shape: tuple[int, int]) -> numpy.ndarray:
    """Draws from ``values`` with Gaussian noise of Silverman's bandwidth:
    the slowest of many draws may pass the slowest value seen."""
    import numpy

    data = numpy.asarray(values, dtype=float)
    drawn = rng.choice(data, size=shape)
    if len(data) > 1 and data.std() > 0:
        width = 1.06 * data.std(ddof=1) * len(data) ** -0.2
        drawn = drawn + rng.normal(0.0, width, size=shape)
    return numpy.clip(drawn, 0.0, None)


def _wave_draws(lanes: list[tuple[int, int, Mapping[str, tuple[float, ...]]]],
                contention: numpy.ndarray, rng: numpy.random.Generator,
                draws: int) -> numpy.ndarray:
    """Draws of one wave: the slowest of its lanes (hosts, forks, durations).

    Each host's task takes its intrinsic duration plus ``contention`` times
    the tasks running with it, averaged over its life as the records measure
    it: first every fork of the wave busy, then, a few times over, what the
    schedule that gives says (fewer at the end of a lane, when its last hosts
    run alone).
    """
    import numpy

    intrinsic = [[_smoothed(values, rng, (draws, hosts)) for values in tasks.values()]
                 for hosts, _, tasks in lanes]
    full = float(sum(slots for _, slots, _ in lanes))
    concurrency = [[numpy.full_like(w, full) for w in tasks] for tasks in intrinsic]
    for rounds in range(_REFINE + 1):
        starts, ends, finish = [], [], []
        for (hosts, slots, _), tasks, levels in zip(lanes, intrinsic, concurrency):
            at = numpy.zeros(draws)
            for w, c in zip(tasks, levels):
                began, ended = _schedule_times(w + contention * c, slots, at)
                starts.append(began)
                ends.append(ended)
                at = ended.max(axis=1)
            finish.append(at)
        jobs = sum(e.shape[1] for e in ends)
        if rounds == _REFINE or not contention.any() or jobs > _REFINE_JOBS:
            break
        averaged = _concurrency_draws(numpy.hstack(starts), numpy.hstack(ends))
        split = numpy.cumsum([e.shape[1] for e in ends])[:-1]
        parts = iter(numpy.split(averaged, split, axis=1))
        concurrency = [[next(parts) for _ in tasks] for tasks in intrinsic]
    return numpy.max(numpy.vstack(finish), axis=0)


#: How many times the concurrency of a wave's tasks is recomputed from the
#: schedule, and up to how many host-tasks a wave is (beyond: every fork busy
#: throughout, which overestimates a little).
_REFINE = 3
_REFINE_JOBS = 400


def _schedule_times(durations: numpy.ndarray, slots: int, at: numpy.ndarray
                    ) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Per draw (row), when each host starts and ends, each host on the first
    free fork from ``at`` on."""
    import numpy

    draws, hosts = durations.shape
    if hosts <= slots:
        began = numpy.repeat(at[:, None], hosts, axis=1)
        return began, began + durations
    free = numpy.repeat(at[:, None], slots, axis=1)
    rows = numpy.arange(draws)
    began = numpy.empty_like(durations)
    for j in range(hosts):
        i = free.argmin(axis=1)
        began[:, j] = free[rows, i]
        free[rows, i] += durations[:, j]
    return began, began + durations


def _concurrency_draws(starts: numpy.ndarray, ends: numpy.ndarray) -> numpy.ndarray:
    """:func:`_concurrency` of each draw (row)."""
    import numpy

    overlap = numpy.clip(numpy.minimum(ends[:, :, None], ends[:, None, :])
                         - numpy.maximum(starts[:, :, None], starts[:, None, :]),
                         0, None).sum(axis=2)
    length = ends - starts
    with numpy.errstate(invalid="ignore", divide="ignore"):
        return numpy.where(length > 0, overlap / length, 1.0)


def _bootstrap(values: Sequence[float], rng: numpy.random.Generator,
               draws: int) -> numpy.ndarray:
    import numpy

    if not values:
        return numpy.zeros(draws)
    return rng.choice(numpy.asarray(values, dtype=float), size=draws)


def _quantiles(values: numpy.ndarray) -> tuple[float, float]:
    import numpy

    return (round(float(numpy.quantile(values, P50)), 2),
            round(float(numpy.quantile(values, P90)), 2))


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

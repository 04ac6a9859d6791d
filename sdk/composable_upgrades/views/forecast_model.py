"""The forecast's statistical model: a stage played out many times.

:func:`predict` draws each host's duration from what was recorded (a
smoothed bootstrap of a resample per draw, so that the slowest of many
hosts can be slower than the slowest one seen, and so that what few
observations leave uncertain weighs on every batch of a draw), adds the
contention of the tasks that start with it, schedules the hosts of each
lane on its forks, adds the overheads drawn from those seen (the command's
start-up once per run), and repeats: the median and the 90th percentile of
those draws are the figures (see :mod:`.forecast` for what a stage's time
is made of).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from composable_upgrades.errors import StageError
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.prepared import PreparedPlan, PreparedStage
from composable_upgrades.run.environment import default_forks
from composable_upgrades.run.lanes import lane_forks, lane_steps
from composable_upgrades.run.limits import batches_of
from composable_upgrades.views.forecast_learning import Key, Learned, starting_together
from composable_upgrades.views.forecast_report import Estimate, Forecast

if TYPE_CHECKING:  # pragma: no cover
    import numpy

#: How many times a forecast plays the stage out.
DRAWS = 400
#: The draws' seed: the same plan, history and options give the same figures.
SEED = 16
#: The quantiles a forecast gives.
P50, P90 = 0.5, 0.9


def predict(plan: PreparedPlan, learned: Learned, *, stage: str | None = None,
            batch_size: int | str | Sequence[int | str] | None = None,
            forks: int | None = None, draws: int = DRAWS) -> Forecast:
    """The forecast of ``plan`` from what was ``learned``; see
    :func:`.forecast.forecast`."""
    import numpy

    total_forks = int(forks) if forks else default_forks()
    size = _batch_size(batch_size)
    stages = [plan.stage(stage)] if stage else list(plan.stages)
    if stage and size is not None and stages[0].kind != StageKind.BATCHED:
        raise StageError(f"stage {stage!r} runs all its hosts together; a batch "
                         "size applies to the batched stages", stage=stage)
    rng = numpy.random.default_rng(SEED)
    sampler = _Sampler(rng, draws)
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
                                                 contention, sampler)
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
        stage_draws += (_bootstrap(learned.command, rng, draws)
                        + _bootstrap(learned.ending, rng, draws))
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
                learned: Learned, contention: numpy.ndarray, sampler: _Sampler
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
    total = numpy.zeros(sampler.draws)
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
            lanes.append((hosts, min(hosts, share),
                          {(role, step.number, t): v for t, v in tasks.items()}))
        if lanes:
            total += _wave_draws(lanes, contention, sampler)
    return total, keys, gaps


class _Sampler:
    """Draws of per-host task durations, one row per draw.

    Each draw first resamples the observations of a task (a bootstrap of
    the sample itself), then draws every host of every batch from that
    resample: what a few observations say about the distribution is
    uncertain, and that uncertainty weighs on all the batches of a draw at
    once rather than averaging out over them. Gaussian noise of
    Silverman's bandwidth lets the slowest of many draws pass the slowest
    value seen.
    """

    def __init__(self, rng: numpy.random.Generator, draws: int) -> None:
        self.rng, self.draws = rng, draws
        self._pools: dict[Any, tuple[numpy.ndarray, float]] = {}

    def durations(self, key: Any, values: Sequence[float], hosts: int) -> numpy.ndarray:
        """A (draws, hosts) array of durations drawn from ``values``, the
        observations of the task ``key``."""
        import numpy

        if key not in self._pools:
            data = numpy.asarray(values, dtype=float)
            pool = data[self.rng.integers(0, len(data), size=(self.draws, len(data)))]
            width = (1.06 * data.std(ddof=1) * len(data) ** -0.2
                     if len(data) > 1 and data.std() > 0 else 0.0)
            self._pools[key] = (pool, width)
        pool, width = self._pools[key]
        picks = self.rng.integers(0, pool.shape[1], size=(self.draws, hosts))
        drawn = numpy.take_along_axis(pool, picks, axis=1)
        if width:
            drawn = drawn + self.rng.normal(0.0, width, size=drawn.shape)
        return numpy.clip(drawn, 0.0, None)


def _wave_draws(lanes: list[tuple[int, int, Mapping[Any, tuple[float, ...]]]],
                contention: numpy.ndarray, sampler: _Sampler) -> numpy.ndarray:
    """Draws of one wave: the slowest of its lanes (hosts, forks, durations).

    Each host's task takes its intrinsic duration plus ``contention`` times
    the tasks that start with it (:func:`.starting_together`, as the records
    are measured): first every fork of the wave starting at once, then, a
    few times over, what the schedule that gives says (the hosts a lane
    starts as its forks free up start more and more apart).
    """
    import numpy

    intrinsic = [[sampler.durations(key, values, hosts) for key, values in tasks.items()]
                 for hosts, _, tasks in lanes]
    full = float(sum(slots for _, slots, _ in lanes))
    together = [[numpy.full_like(w, full) for w in tasks] for tasks in intrinsic]
    for rounds in range(_REFINE + 1):
        starts, ends, finish = [], [], []
        for (hosts, slots, _), tasks, levels in zip(lanes, intrinsic, together):
            at = numpy.zeros(sampler.draws)
            for w, c in zip(tasks, levels):
                began, ended = _schedule_times(w + contention * c, slots, at)
                starts.append(began)
                ends.append(ended)
                at = ended.max(axis=1)
            finish.append(at)
        jobs = sum(e.shape[1] for e in ends)
        if rounds == _REFINE or not contention.any() or jobs > _REFINE_JOBS:
            break
        counts = starting_together(numpy.hstack(starts))
        split = numpy.cumsum([e.shape[1] for e in ends])[:-1]
        parts = iter(numpy.split(counts, split, axis=1))
        together = [[next(parts) for _ in tasks] for tasks in intrinsic]
    return numpy.max(numpy.vstack(finish), axis=0)


#: How many times the count of a wave's tasks starting together is
#: recomputed from the schedule, and up to how many host-tasks a wave is
#: (beyond: every fork starting at once throughout, which overestimates).
_REFINE = 3
_REFINE_JOBS = 2000


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

"""What recorded runs teach a forecast (:func:`learn`).

From the successful stage runs of one or more run histories:

- per role, step and task, the durations of each host's task: the
  *intrinsic* part, with the contention taken out;
- *contention*: how much a host's task takes longer for each task that
  starts with it (many forks on few CPUs), the slope of duration against
  that count among the hosts of one task (:func:`starting_together`);
- overheads: the command's start-up before the run starts (when the run
  recorded when it was asked for), a batch's start-up (the lanes'
  processes) at its first step, the barrier between two steps, and the end
  of the run, each what the wall time of the records shows beyond the
  tasks' own.

:mod:`.forecast_model` draws a forecast from it; :mod:`.forecast` explains
the model as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from composable_upgrades.model.kinds import RunStatus
from composable_upgrades.run.environment import default_forks
from composable_upgrades.state.results import RunResult, TaskRecord
from composable_upgrades.views.history import History

if TYPE_CHECKING:  # pragma: no cover
    import numpy

Key = tuple[str, Any]  # (role, step)


@dataclass(frozen=True)
class Learned:
    """What recorded runs teach a forecast (see the module's docstring).

    ``durations``: (role, step) -> task -> intrinsic per-host durations, in
    seconds; ``contention``: seconds a host's task gains per task starting
    with it (:func:`starting_together`), and its standard error; ``command``,
    ``startup``, ``barrier``, ``ending``: the overheads seen before a run
    started, at a batch's first step, at each later step, and at the end of
    a run.
    """

    durations: Mapping[Key, Mapping[str, tuple[float, ...]]]
    contention: float
    contention_error: float = 0.0
    command: tuple[float, ...] = ()
    startup: tuple[float, ...] = ()
    barrier: tuple[float, ...] = ()
    ending: tuple[float, ...] = ()
    runs: tuple[str, ...] = ()

    def observations(self, role: str, step: Any) -> int:
        """How many host-task durations of ``role`` at ``step`` were recorded."""
        return sum(len(v) for v in self.durations.get((role, step), {}).values())


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
    overheads: dict[str, list[float]] = {"command": [], "startup": [], "barrier": [],
                                         "ending": []}
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
            if row.requested is not None:
                overheads["command"].append(max(0.0, row.started - row.requested))
            forks = int(row.arguments.get("forks") or default_forks())
            _learn_run(run, timed, forks, waves.get(run.stage, {}), samples, overheads,
                       waited=row.waited > 0)
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
               overheads: dict[str, list[float]], *, waited: bool = False) -> None:
    """Add one run's durations (with how many tasks started with each) and
    overheads. A run that ``waited`` for the operator before its batches
    (``--confirm-each``) teaches no batch's start-up but the first's: the
    others hold the wait."""
    import numpy

    groups: dict[tuple[int, Any], list[TaskRecord]] = {}
    for r in timed:
        groups.setdefault((r.batch, r.step), []).append(r)
    mark = run.started
    last_batch = None
    for (batch, step), records in groups.items():
        starts = numpy.array([r.start for r in records])
        ends = starts + numpy.array([r.duration for r in records])
        together = starting_together(starts)
        for r, c in zip(records, together):
            samples.setdefault((r.role or "", step), {}).setdefault(
                r.task, []).append((r.duration, float(c)))
        end = float(ends.max())
        modelled = _recorded_step(records, forks, waves.get(step))
        kind = "startup" if batch != last_batch else "barrier"
        if not (waited and kind == "startup" and last_batch is not None):
            overheads[kind].append(max(0.0, end - mark - modelled))
        mark, last_batch = end, batch
    if run.ended:
        overheads["ending"].append(max(0.0, run.ended - mark))


#: Seconds within which tasks that start count as starting together.
START_WINDOW = 0.5


def starting_together(starts: numpy.ndarray) -> numpy.ndarray:
    """For each task, how many tasks (itself included) start within
    :data:`START_WINDOW` of it; of each row, for a 2-D array (one per draw).

    A host's task contends for the CPUs mostly while it starts (its worker
    process, the module's Python): the hosts that a lane starts together at
    a step's beginning each took 1.5 s over their own work on the 2-core
    machine of doc/performance.rst, the hosts that start one by one as forks
    free up 0.4 s, though 8 tasks were running in both cases.
    """
    import numpy

    rows = numpy.atleast_2d(starts)
    counts = numpy.empty(rows.shape, dtype=float)
    for i, row in enumerate(rows):
        ordered = numpy.sort(row)
        counts[i] = (numpy.searchsorted(ordered, row + START_WINDOW, side="right")
                     - numpy.searchsorted(ordered, row - START_WINDOW, side="left"))
    return counts if numpy.ndim(starts) == 2 else counts[0]


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
    """Seconds per task starting together, and its standard error: the slope
    of duration against that count within each task (hosts of one task do the
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

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

The forecast comes in three parts: what the records teach
(:mod:`.forecast_learning`: per-host task durations, the contention of
tasks starting together, the overheads of the command's and each batch's
start-up, barriers and the run's end), the statistical model that plays
the stage out many times from it (:mod:`.forecast_model`), and the
figures with their frames, comparison and chart (:mod:`.forecast_report`).
This module puts them together: a plan's forecast from its run history
(:func:`forecast`) and a table of what other batch sizes and forks would
give (:func:`what_if`). Roles and steps with no
record are named (:attr:`.Forecast.missing`), never counted as zero silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from composable_upgrades.model.kinds import StageKind
from composable_upgrades.state.workdir import Workdir
from composable_upgrades.views.forecast_learning import histories, learn
from composable_upgrades.views.forecast_model import DRAWS, predict
from composable_upgrades.views.forecast_report import Forecast
from composable_upgrades.views.history import History

if TYPE_CHECKING:  # pragma: no cover
    import pandas


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


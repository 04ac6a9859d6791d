"""The run history of a stack, read back: runs as a table, a run as a RunResult.

:class:`History` reads what :class:`~.store.HistoryStore` wrote to
``<working-dir>/composable-upgrade/history.sqlite``. A run read back has the
options, notes, batches and task records it had; its step outcomes are rebuilt
from the task records (see :meth:`History.run`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import replace
from typing import TYPE_CHECKING

from composable_upgrades.errors import WorkdirError
from composable_upgrades.model.redact import scrub_text
from composable_upgrades.model.secret_digests import SECRET_DIGESTS_FILE, SecretDigests
from composable_upgrades.state.results import FAILURES, RunResult, StepOutcome, TaskRecord
from composable_upgrades.state.store import HistoryStore, RunRow
from composable_upgrades.state.workdir import Workdir

if TYPE_CHECKING:  # pragma: no cover
    import pandas

#: Columns of :meth:`History.runs`.
RUN_COLUMNS = ("run_id", "kind", "stage", "status", "started", "ended",
               "duration", "hosts", "failed_hosts", "tasks", "plan_sha",
               "arguments", "notes")


class History:
    """The run history of the stack whose working directory is ``working_dir``."""

    def __init__(self, working_dir: str | os.PathLike[str]) -> None:
        self.workdir = Workdir.at(working_dir)
        self.store = HistoryStore(self.workdir.history_path)

    @property
    def path(self) -> str:
        """The history file."""
        return self.store.path

    def run_rows(self) -> list[RunRow]:
        """Every run, oldest first (no pandas needed)."""
        return self.store.runs()

    def runs(self) -> pandas.DataFrame:
        """One row per run (prepare, stage run, converge), newest last.

        ``started`` and ``ended`` are Unix times; ``hosts``, ``failed_hosts``
        and ``tasks`` count the run's task records.
        """
        import pandas

        return pandas.DataFrame(
            [(r.run_id, r.kind, r.stage, r.status, r.started, r.ended,
              r.duration, r.hosts, r.failed_hosts, r.tasks, r.plan_sha,
              dict(r.arguments), [self.scrub(n) for n in r.notes])
             for r in self.store.runs()],
            columns=list(RUN_COLUMNS))

    def run(self, run_id: str) -> RunResult:
        """The run ``run_id`` as a :class:`~.results.RunResult`.

        Its step outcomes are rebuilt from the task records, one per batch
        and step: the hosts with a record there, those with a failed or
        unreachable task, from the first task's start to the last one's end.
        A host that ran no task at a step is not in that step. Raises
        :class:`~.errors.WorkdirError` if the history has no such run.
        """
        row = self.store.run(run_id)
        if row is None:
            raise WorkdirError(f"no run {run_id!r} in the run history "
                               f"({self._known()})", path=self.path)
        # Scrubbed again as shown: records stored by an older version, or
        # forms of secrets the run's scrubbing missed then.
        records = [r if r.message == (clean := self.scrub(r.message))
                   else replace(r, message=clean)
                   for r in self.store.records(run_id)]
        return RunResult(
            run_id=row.run_id, stage=row.stage or row.kind,
            plan_sha=row.plan_sha or "", status=row.status, started=row.started,
            ended=row.ended or 0.0, options=dict(row.arguments),
            batches=[tuple(b) for b in row.batches],
            steps=step_outcomes(records, default_time=row.started),
            records=records, notes=[self.scrub(n) for n in row.notes],
            run_dir=row.run_dir, requested=row.requested, waited=row.waited)

    def scrub(self, text: str) -> str:
        """``text`` as the history shows it: the secrets of the current and the
        previous plan's outputs masked, then every form that
        :func:`~composable_upgrades.model.redact.scrub_text` knows."""
        for digests in self._digests:
            text = digests.mask(text)
        return scrub_text(text)

    @functools.cached_property
    def _digests(self) -> tuple[SecretDigests, ...]:
        found = (SecretDigests.read(os.path.join(folder, SECRET_DIGESTS_FILE))
                 for folder in (self.workdir.plan_dir, self.workdir.previous_plan_dir))
        return tuple(d for d in found if d)

    def _known(self) -> str:
        runs = self.store.runs()
        if not runs:
            return "no run recorded yet"
        latest = ", ".join(r.run_id for r in runs[-3:])
        return f"{len(runs)} runs; latest: {latest}"


def step_outcomes(records: list[TaskRecord], *,
                  default_time: float = 0.0) -> list[StepOutcome]:
    """Step outcomes rebuilt from task records, in the order the steps ran."""
    steps: dict[tuple[int, int | str], dict] = {}
    for r in records:
        key = (r.batch, r.step)
        step = steps.get(key)
        if step is None:
            step = steps[key] = {"hosts": {}, "failed": {}, "start": None, "end": None}
        step["hosts"][r.host] = None
        if r.status in FAILURES:
            step["failed"][r.host] = None
        if r.start is not None:
            end = r.start + (r.duration or 0.0)
            if step["start"] is None or r.start < step["start"]:
                step["start"] = r.start
            if step["end"] is None or end > step["end"]:
                step["end"] = end
    outcomes = []
    for (batch, number), step in steps.items():
        started = default_time if step["start"] is None else step["start"]
        outcomes.append(StepOutcome(
            batch=batch, step=number, hosts=tuple(step["hosts"]),
            failed=tuple(step["failed"]), started=started,
            ended=started if step["end"] is None else step["end"],
            rc=2 if step["failed"] else 0))
    return outcomes

"""The run history read back: runs as :class:`RunRow` s, a run's task records.

:class:`HistoryReader` holds the queries; :class:`~.store.HistoryStore`, the
writer, is one too, and :class:`~.history.History` reads through it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from composable_upgrades.state.results import TaskRecord
from composable_upgrades.state.store_schema import RUN_COLUMNS, TASK_COLUMNS, Reader

# Steps are stored as text; numbers come back as integers.
_STEP_VALUE = ("CASE WHEN step != '' AND step NOT GLOB '*[^0-9]*' "
               "THEN CAST(step AS INTEGER) ELSE step END")
_SELECT_TASKS = ("SELECT " + ", ".join(_STEP_VALUE if c == "step" else c
                                       for c in TASK_COLUMNS)
                 + " FROM tasks WHERE run_id = ? ORDER BY id")
_SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
# Hosts, hosts with a failed or unreachable task, and tasks, of a run.
_COUNTS = ("COUNT(DISTINCT host), COUNT(DISTINCT CASE WHEN status IN "
           "('failed', 'unreachable') THEN host END), COUNT(*)")


@dataclass(frozen=True)
class RunRow:
    """One row of the ``runs`` table, decoded, with counts from ``tasks``."""

    run_id: str
    kind: str
    stage: str | None
    plan_sha: str | None
    arguments: Mapping[str, Any]
    started: float
    ended: float | None
    status: str
    notes: tuple[str, ...]
    batches: tuple[tuple[str, ...], ...]
    run_dir: str | None
    requested: float | None = None
    waited: float = 0.0
    hosts: int = 0
    failed_hosts: int = 0
    tasks: int = 0

    @property
    def duration(self) -> float | None:
        """Wall time in seconds (None while running)."""
        return None if self.ended is None else max(0.0, self.ended - self.started)


class HistoryReader:
    """Queries of the run history file at ``path`` (none of them writes,
    except to migrate a file an older version wrote)."""

    path: str

    def schema_version(self) -> int:
        """The file's schema version (0: no history yet)."""
        with Reader(self.path) as db:
            return 0 if db is None else db.execute("PRAGMA user_version").fetchone()[0]

    def runs(self) -> list[RunRow]:
        """Every run, oldest first, with host, failed host and task counts."""
        with Reader(self.path) as db:
            if db is None:
                return []
            counts = {row[0]: row[1:] for row in db.execute(
                f"SELECT run_id, {_COUNTS} FROM tasks GROUP BY run_id")}
            rows = db.execute(f"{_SELECT_RUNS} ORDER BY started, rowid").fetchall()
        return [_run_row(row, counts.get(row[0], (0, 0, 0))) for row in rows]

    def run(self, run_id: str) -> RunRow | None:
        """The run ``run_id`` (None if the history has no such run)."""
        with Reader(self.path) as db:
            if db is None:
                return None
            row = db.execute(f"{_SELECT_RUNS} WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            counts = db.execute(f"SELECT {_COUNTS} FROM tasks WHERE run_id = ?",
                                (run_id,)).fetchone()
        return _run_row(row, counts)

    def records(self, run_id: str) -> list[TaskRecord]:
        """The task records of ``run_id``, in the order they were added."""
        with Reader(self.path) as db:
            if db is None:
                return []
            rows = db.execute(_SELECT_TASKS, (run_id,)).fetchall()
        return list(itertools.starmap(TaskRecord, rows))


def _run_row(row: Sequence[Any], counts: Sequence[int]) -> RunRow:
    (run_id, kind, stage, plan_sha, arguments, started, ended, status, notes,
     batches, run_dir, requested, waited) = row
    return RunRow(run_id=run_id, kind=kind, stage=stage, plan_sha=plan_sha,
                  arguments=json.loads(arguments), started=started, ended=ended,
                  status=status, notes=tuple(json.loads(notes)),
                  batches=tuple(tuple(b) for b in json.loads(batches)),
                  run_dir=run_dir, requested=requested, waited=waited,
                  hosts=counts[0], failed_hosts=counts[1], tasks=counts[2])

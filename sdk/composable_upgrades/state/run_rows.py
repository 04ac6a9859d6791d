"""The ``runs`` table of the run history: a row per prepare, stage run or
converge, written as the run starts and ends (:class:`~.store.HistoryStore`
calls these, each in a transaction of its own).

Only what the run already holds is stored: the arguments are the run's
options, redacted once more in case a caller passes a secret.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from composable_upgrades.model.kinds import RunKind, RunStatus
from composable_upgrades.model.redact import redact
from composable_upgrades.state.results import RunResult


def insert_run(db: sqlite3.Connection, result: RunResult) -> None:
    """The row of ``result``'s run, as it starts."""
    db.execute(
        "INSERT INTO runs (run_id, kind, stage, plan_sha, arguments, "
        "started, status, notes, batches, run_dir, requested) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (result.run_id, _run_kind(result), result.stage,
         result.plan_sha, _json(dict(result.options)), result.started,
         RunStatus.RUNNING, _json(list(result.notes)),
         _json([list(b) for b in result.batches]), result.run_dir,
         result.requested))


def update_run(db: sqlite3.Connection, result: RunResult) -> None:
    """``result``'s row, with how its run ended."""
    db.execute(
        "UPDATE runs SET ended = ?, status = ?, notes = ?, "
        "batches = ?, run_dir = ?, waited = ? WHERE run_id = ?",
        (result.ended, result.status, _json(list(result.notes)),
         _json([list(b) for b in result.batches]), result.run_dir,
         result.waited, result.run_id))


def insert_prepare(db: sqlite3.Connection, run_id: str, plan_sha: str,
                   arguments: Mapping[str, Any], started: float, ended: float,
                   status: RunStatus, notes: Sequence[str]) -> None:
    """The row of a prepare."""
    db.execute(
        "INSERT INTO runs (run_id, kind, stage, plan_sha, arguments, "
        "started, ended, status, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, RunKind.PREPARE, None, plan_sha, _json(dict(arguments)),
         started, ended, status, _json(list(notes))))


def mark_interrupted(db: sqlite3.Connection, note: str) -> list[str]:
    """Mark every ``running`` run ``interrupted``, ending when its last task
    record ended (else when it started), with ``note``; returns their ids."""
    marked: list[str] = []
    rows = db.execute(
        "SELECT r.run_id, r.started, r.notes, MAX(t.start + "
        "COALESCE(t.duration, 0)) FROM runs r LEFT JOIN tasks t "
        "ON t.run_id = r.run_id WHERE r.status = ? GROUP BY r.run_id",
        (RunStatus.RUNNING,)).fetchall()
    for run_id, started, notes, last in rows:
        try:
            kept = list(json.loads(notes))
        except ValueError:
            kept = []
        db.execute("UPDATE runs SET status = ?, ended = ?, notes = ? "
                   "WHERE run_id = ?",
                   (RunStatus.INTERRUPTED, max(started, last or started),
                    _json([*kept, note]), run_id))
        marked.append(run_id)
    return marked


def _json(value: Any) -> str:
    return json.dumps(redact(value), sort_keys=True, default=str)


def _run_kind(result: RunResult) -> RunKind:
    from composable_upgrades.planning.stages import CONVERGE
    return RunKind.CONVERGE if result.stage == CONVERGE else RunKind.STAGE

"""The run history: every prepare and run, and every task record, in SQLite.

``<working-dir>/composable-upgrade/history.sqlite`` (:attr:`.Workdir.history_path`)
holds two tables: ``runs`` (one row per prepare, stage run or converge) and
``tasks`` (one row per task per host, in the order they happened). A
:class:`HistoryStore` is the :class:`~.results.RecordSink` a run streams its
records to; it buffers them and writes them in chunks, so a large run costs
little. :class:`~.history.History` reads the file back.

The schema is versioned by ``PRAGMA user_version`` and migrated forward when
a store opens the file for writing; the file is in WAL mode, so the history
can be read while a run writes it. Only what the run already holds is stored:
task messages are scrubbed of secrets by the executor, and the arguments are
the run's options (redacted once more, in case a caller passes a secret).
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from composable_upgrades.errors import WorkdirError
from composable_upgrades.model.redact import redact
from composable_upgrades.state.results import RunResult, TaskRecord
from composable_upgrades.state.workdir import Workdir

#: Version of the schema this module writes (``PRAGMA user_version``).
SCHEMA_VERSION = 1

#: Run kinds.
KIND_PREPARE = "prepare"
KIND_STAGE = "stage"
KIND_CONVERGE = "converge"
KINDS = (KIND_PREPARE, KIND_STAGE, KIND_CONVERGE)

#: Status of a run that has started and not (yet) finished.
RUNNING = "running"

#: Default number of buffered records that triggers a write.
FLUSH_EVERY = 1000
#: Default age (seconds) of the oldest buffered record that triggers a write.
FLUSH_SECONDS = 2.0

_SCHEMA_V1 = """
CREATE TABLE runs (
    run_id    TEXT PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('prepare', 'stage', 'converge')),
    stage     TEXT,
    plan_sha  TEXT,
    arguments TEXT NOT NULL DEFAULT '{}',
    started   REAL NOT NULL,
    ended     REAL,
    status    TEXT NOT NULL,
    notes     TEXT NOT NULL DEFAULT '[]',
    batches   TEXT NOT NULL DEFAULT '[]',
    run_dir   TEXT
);
CREATE INDEX runs_by_start ON runs (started);
CREATE TABLE tasks (
    id        INTEGER PRIMARY KEY,
    run_id    TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    stage     TEXT NOT NULL,
    batch     INTEGER NOT NULL,
    step      TEXT NOT NULL,
    host      TEXT NOT NULL,
    role      TEXT,
    task      TEXT NOT NULL,
    service   TEXT,
    action    TEXT,
    status    TEXT NOT NULL CHECK (status IN
              ('changed', 'ok', 'failed', 'skipped', 'unreachable', 'ignored')),
    start     REAL,
    duration  REAL,
    message   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tasks_by_run ON tasks (run_id);
"""

#: Migrations: ``_MIGRATIONS[n]`` takes the schema from version n to n + 1.
_MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1,)

_TASK_COLUMNS = ("run_id", "stage", "batch", "step", "host", "role", "task",
                 "service", "action", "status", "start", "duration", "message")
_INSERT_TASK = (f"INSERT INTO tasks ({', '.join(_TASK_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_TASK_COLUMNS))})")
# Steps are stored as text; numbers come back as integers.
_STEP_VALUE = ("CASE WHEN step != '' AND step NOT GLOB '*[^0-9]*' "
               "THEN CAST(step AS INTEGER) ELSE step END")
_SELECT_TASKS = ("SELECT " + ", ".join(_STEP_VALUE if c == "step" else c
                                       for c in _TASK_COLUMNS)
                 + " FROM tasks WHERE run_id = ? ORDER BY id")
_RUN_COLUMNS = ("run_id", "kind", "stage", "plan_sha", "arguments", "started",
                "ended", "status", "notes", "batches", "run_dir")


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
    hosts: int = 0
    failed_hosts: int = 0
    tasks: int = 0

    @property
    def duration(self) -> float | None:
        """Wall time in seconds (None while running)."""
        return None if self.ended is None else max(0.0, self.ended - self.started)


def new_run_id(kind: str, started: float | None = None) -> str:
    """A run id as the executor makes them: ``<time>-<kind>-<6 hex>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    return f"{stamp}-{kind}-{uuid.uuid4().hex[:6]}"


def _json(value: Any) -> str:
    return json.dumps(redact(value), sort_keys=True, default=str)


#: A record as a ``tasks`` row (the TEXT column turns a step number to text).
_record_row = operator.attrgetter(*_TASK_COLUMNS)


def _run_kind(result: RunResult) -> str:
    from composable_upgrades.planning.stages import CONVERGE
    return KIND_CONVERGE if result.stage == CONVERGE else KIND_STAGE


class HistoryStore:
    """The run history file; a :class:`~.results.RecordSink` for runs.

    Records given to :meth:`add` are buffered and written with one
    ``executemany`` per chunk: when ``flush_every`` are waiting, when the
    oldest has waited ``flush_seconds`` (so the history of a long run can be
    followed from another terminal), and at :meth:`finish_run`. Nothing is
    opened until the first write or read.
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 flush_every: int = FLUSH_EVERY,
                 flush_seconds: float = FLUSH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if flush_every < 1:
            raise ValueError("flush_every must be at least 1")
        self.path = os.path.abspath(os.fspath(path))
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.error: str | None = None
        self.written = 0
        self._clock = clock
        self._buffer: list[TaskRecord] = []
        self._oldest = 0.0
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def at(cls, working_dir: str | os.PathLike[str], **kwargs: Any) -> HistoryStore:
        """The history of the stack whose working directory is ``working_dir``."""
        return cls(Workdir.at(working_dir).history_path, **kwargs)

    # -- the RecordSink protocol -------------------------------------------

    def start_run(self, result: RunResult) -> None:
        """Record that ``result``'s run started; :class:`WorkdirError` if the
        history cannot be written (nothing has run yet)."""
        with self._lock:
            self._buffer.clear()
            self.error = None
            self.written = 0
            self._write(lambda db: db.execute(
                "INSERT INTO runs (run_id, kind, stage, plan_sha, arguments, "
                "started, status, notes, batches, run_dir) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (result.run_id, _run_kind(result), result.stage,
                 result.plan_sha, _json(dict(result.options)), result.started,
                 RUNNING, _json(list(result.notes)),
                 _json([list(b) for b in result.batches]), result.run_dir)))

    def add(self, record: TaskRecord) -> None:
        """Buffer one record; write the buffer when it is full or old."""
        with self._lock:
            if not self._buffer:
                self._oldest = self._clock()
            self._buffer.append(record)
            if (len(self._buffer) >= self.flush_every
                    or self._clock() - self._oldest >= self.flush_seconds):
                self._flush_quietly()

    def finish_run(self, result: RunResult) -> None:
        """Write what is buffered and the run's outcome, then close the file.

        A write that failed during the run does not stop the run: it is
        reported here, as a note of the result.
        """
        with self._lock:
            self._flush_quietly()
            if self.error:
                result.notes.append(f"the run history is incomplete: {self.error}")
            try:
                self._write(lambda db: db.execute(
                    "UPDATE runs SET ended = ?, status = ?, notes = ?, "
                    "batches = ?, run_dir = ? WHERE run_id = ?",
                    (result.ended, result.status, _json(list(result.notes)),
                     _json([list(b) for b in result.batches]), result.run_dir,
                     result.run_id)))
            except WorkdirError as exc:
                if not self.error:
                    self.error = str(exc)
                    result.notes.append(
                        f"the run history has no outcome for this run: {exc}")
            self._close()

    # -- prepare runs ------------------------------------------------------

    def record_prepare(self, plan_sha: str, arguments: Mapping[str, Any],
                       started: float, ended: float, status: str,
                       notes: Sequence[str] = ()) -> str:
        """Record a prepare; returns its run id."""
        run_id = new_run_id(KIND_PREPARE, started)
        with self._lock:
            self._write(lambda db: db.execute(
                "INSERT INTO runs (run_id, kind, stage, plan_sha, arguments, "
                "started, ended, status, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, KIND_PREPARE, None, plan_sha, _json(dict(arguments)),
                 started, ended, status, _json(list(notes)))))
            self._close()
        return run_id

    # -- writing -----------------------------------------------------------

    def flush(self) -> None:
        """Write the buffered records now; :class:`WorkdirError` on failure."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        rows = list(map(_record_row, self._buffer))
        self._buffer.clear()
        self._write(lambda db: db.executemany(_INSERT_TASK, rows))
        self.written += len(rows)

    def _flush_quietly(self) -> None:
        """Flush; on failure keep the message, drop the records, go on."""
        if self.error:
            self._buffer.clear()
            return
        try:
            self._flush()
        except WorkdirError as exc:
            self.error = f"{exc} ({self.written} task records were written)"

    def _write(self, work: Callable[[sqlite3.Connection], Any]) -> None:
        """Run ``work`` in one transaction."""
        db = self._open_for_writing()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise WorkdirError(f"cannot write the run history: {_one_line(exc)}",
                               path=self.path) from exc

    def _open_for_writing(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            # Created private, as the journal is; SQLite gives its -wal and
            # -shm files the same mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise WorkdirError(f"cannot create the run history: {exc.strerror}",
                               path=self.path) from exc
        db = _connect(self.path)
        try:
            _migrate(db, self.path)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            db.close()
            raise WorkdirError(f"cannot use the run history: {_one_line(exc)}",
                               path=self.path) from exc
        except BaseException:
            db.close()
            raise
        self._connection = db
        return db

    def close(self) -> None:
        """Write what is buffered and close the file."""
        with self._lock:
            self._flush_quietly()
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- reading -----------------------------------------------------------

    def schema_version(self) -> int:
        """The file's schema version (0: no history yet)."""
        with self._reader() as db:
            return 0 if db is None else db.execute("PRAGMA user_version").fetchone()[0]

    def runs(self) -> list[RunRow]:
        """Every run, oldest first, with host, failed host and task counts."""
        with self._reader() as db:
            if db is None:
                return []
            counts = {row[0]: row[1:] for row in db.execute(
                "SELECT run_id, COUNT(DISTINCT host), COUNT(DISTINCT CASE "
                "WHEN status IN ('failed', 'unreachable') THEN host END), "
                "COUNT(*) FROM tasks GROUP BY run_id")}
            rows = db.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs "
                              "ORDER BY started, rowid").fetchall()
        return [_run_row(row, counts.get(row[0], (0, 0, 0))) for row in rows]

    def run(self, run_id: str) -> RunRow | None:
        """The run ``run_id`` (None if the history has no such run)."""
        with self._reader() as db:
            if db is None:
                return None
            row = db.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs "
                             "WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            counts = db.execute(
                "SELECT COUNT(DISTINCT host), COUNT(DISTINCT CASE WHEN status "
                "IN ('failed', 'unreachable') THEN host END), COUNT(*) "
                "FROM tasks WHERE run_id = ?", (run_id,)).fetchone()
        return _run_row(row, counts)

    def records(self, run_id: str) -> list[TaskRecord]:
        """The task records of ``run_id``, in the order they were added."""
        with self._reader() as db:
            if db is None:
                return []
            rows = db.execute(_SELECT_TASKS, (run_id,)).fetchall()
        return list(itertools.starmap(TaskRecord, rows))

    def _reader(self) -> _Reader:
        return _Reader(self.path)


class _Reader:
    """A read connection for one ``with`` block; None if there is no history."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection | None:
        if not os.path.isfile(self.path):
            return None
        try:
            self.db = _connect(self.path)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            self._close()
            raise WorkdirError(f"cannot read the run history: {_one_line(exc)}",
                               path=self.path) from exc
        if version == 0:
            self._close()
            return None
        if version > SCHEMA_VERSION:
            self._close()
            raise _newer(self.path, version)
        if version < SCHEMA_VERSION:
            self._close()
            _upgrade_in_place(self.path)
            self.db = _connect(self.path)
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._close()
        if isinstance(exc, sqlite3.Error):
            raise WorkdirError(f"cannot read the run history: {_one_line(exc)}",
                               path=self.path) from exc

    def _close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (BEGIN ... COMMIT).
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None,
                         check_same_thread=False)
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _newer(path: str, version: int) -> WorkdirError:
    return WorkdirError(f"run history written by a newer version of this tool "
                        f"(schema {version}, this one knows {SCHEMA_VERSION})",
                        path=path)


def _migrate(db: sqlite3.Connection, path: str) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, one version at a time."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise _newer(path, version)
        for number in range(version, SCHEMA_VERSION):
            for statement in _statements(_MIGRATIONS[number]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _upgrade_in_place(path: str) -> None:
    db = _connect(path)
    try:
        _migrate(db, path)
    except sqlite3.Error as exc:
        raise WorkdirError(f"cannot upgrade the run history: {_one_line(exc)}",
                           path=path) from exc
    finally:
        db.close()


def _statements(script: str) -> Iterable[str]:
    return (s.strip() for s in script.split(";") if s.strip())


def _run_row(row: Sequence[Any], counts: Sequence[int]) -> RunRow:
    (run_id, kind, stage, plan_sha, arguments, started, ended, status, notes,
     batches, run_dir) = row
    return RunRow(run_id=run_id, kind=kind, stage=stage, plan_sha=plan_sha,
                  arguments=json.loads(arguments), started=started, ended=ended,
                  status=status, notes=tuple(json.loads(notes)),
                  batches=tuple(tuple(b) for b in json.loads(batches)),
                  run_dir=run_dir, hosts=counts[0], failed_hosts=counts[1],
                  tasks=counts[2])

"""The run history file's schema, migrations and connections.

:class:`~.store.HistoryStore` writes the file and :class:`~.store_reader.HistoryReader`
reads it; both open it here. The schema is versioned by ``PRAGMA
user_version`` and migrated forward one version at a time, when the file is
opened for writing or, read by a newer tool, before it is read.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from composable_upgrades.errors import WorkdirError

#: Version of the schema this module writes (``PRAGMA user_version``).
SCHEMA_VERSION = 2

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

# Version 2: when a run was asked for (a command's own start), before the
# run itself started, None when unknown; and the seconds it waited for the
# operator's answers (--confirm-each) while it ran.
_SCHEMA_V2 = """
ALTER TABLE runs ADD COLUMN requested REAL;
ALTER TABLE runs ADD COLUMN waited REAL NOT NULL DEFAULT 0;
"""

# The files SQLite keeps beside the history.
_SIDE_FILES = ("-wal", "-shm", "-journal")

#: Migrations: ``_MIGRATIONS[n]`` takes the schema from version n to n + 1.
_MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2)

#: Columns of the ``tasks`` table, in :class:`~.results.TaskRecord` order.
TASK_COLUMNS = ("run_id", "stage", "batch", "step", "host", "role", "task",
                "service", "action", "status", "start", "duration", "message")
#: Columns of the ``runs`` table.
RUN_COLUMNS = ("run_id", "kind", "stage", "plan_sha", "arguments", "started",
               "ended", "status", "notes", "batches", "run_dir", "requested", "waited")


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit."""
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None,
                         check_same_thread=False)
    db.execute("PRAGMA foreign_keys = ON")
    return db


def one_line(exc: BaseException) -> str:
    """An SQLite error's message on one line."""
    return " ".join(str(exc).split())


def open_for_writing(path: str) -> sqlite3.Connection:
    """Create the file if need be (private), migrate it, turn on WAL."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Created private, as the journal is; SQLite gives its -wal and
        # -shm files the same mode. Never through a symbolic link: SQLite
        # would follow one and write wherever it points.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        for suffix in _SIDE_FILES:
            if os.path.islink(path + suffix):
                raise OSError(errno.ELOOP, "is a symbolic link", path + suffix)
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else path
        what = ("is a symbolic link; this tool does not write through links: "
                "remove it" if exc.errno == errno.ELOOP
                else f"cannot create the run history: {exc.strerror}")
        raise WorkdirError(what, path=where) from exc
    db = connect(path)
    try:
        _migrate(db, path)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        db.close()
        raise WorkdirError(f"cannot use the run history: {one_line(exc)}",
                           path=path) from exc
    except BaseException:
        db.close()
        raise
    return db


def write(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], Any], *,
          path: str) -> None:
    """Run ``work`` in one transaction; :class:`WorkdirError` on failure."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise WorkdirError(f"cannot write the run history: {one_line(exc)}",
                           path=path) from exc


class Reader:
    """A read connection for one ``with`` block; None if there is no history."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection | None:
        if os.path.islink(self.path):  # SQLite may write its -shm beside it
            raise WorkdirError("is a symbolic link; this tool does not use "
                               "files through links: remove it", path=self.path)
        if not os.path.isfile(self.path):
            return None
        try:
            self.db = connect(self.path)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            self._close()
            raise WorkdirError(f"cannot read the run history: {one_line(exc)}",
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
            self.db = connect(self.path)
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._close()
        if isinstance(exc, sqlite3.Error):
            raise WorkdirError(f"cannot read the run history: {one_line(exc)}",
                               path=self.path) from exc

    def _close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


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
    db = connect(path)
    try:
        _migrate(db, path)
    except sqlite3.Error as exc:
        raise WorkdirError(f"cannot upgrade the run history: {one_line(exc)}",
                           path=path) from exc
    finally:
        db.close()


def _statements(script: str) -> Iterable[str]:
    return (s.strip() for s in script.split(";") if s.strip())

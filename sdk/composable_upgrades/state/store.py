"""The run history: every prepare and run, and every task record, in SQLite.

``<working-dir>/composable-upgrade/history.sqlite`` (:attr:`.Workdir.history_path`)
holds two tables: ``runs`` (one row per prepare, stage run or converge) and
``tasks`` (one row per task per host, in the order they happened). A
:class:`HistoryStore` is the :class:`~.results.RecordSink` a run streams its
records to; it buffers them and writes them in chunks, so a large run costs
little; its queries are :class:`~.store_reader.HistoryReader`'s, and
:class:`~.history.History` reads the file back through them.

The schema (:mod:`.store_schema`) is versioned by ``PRAGMA user_version`` and
migrated forward when a store opens the file for writing; the file is in WAL
mode, so the history can be read while a run writes it. Only what the run already holds is stored:
task messages are scrubbed of secrets by the executor, and the arguments are
the run's options (redacted once more, in case a caller passes a secret:
:mod:`.run_rows` writes the ``runs`` table).
"""

from __future__ import annotations

import operator
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from composable_upgrades.errors import WorkdirError
from composable_upgrades.model.kinds import RunKind, RunStatus
from composable_upgrades.state import run_rows, store_schema
from composable_upgrades.state.results import RunResult, TaskRecord
from composable_upgrades.state.store_reader import HistoryReader, RunRow
from composable_upgrades.state.store_schema import SCHEMA_VERSION, TASK_COLUMNS
from composable_upgrades.state.workdir import Workdir

#: Status of a run that has started and not (yet) finished (an alias of
#: :attr:`.kinds.RunStatus.RUNNING`, kept for older callers).
RUNNING = RunStatus.RUNNING

#: Default number of buffered records that triggers a write.
FLUSH_EVERY = 1000
#: Default age (seconds) of the oldest buffered record that triggers a write.
FLUSH_SECONDS = 2.0

_INSERT_TASK = (f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(TASK_COLUMNS))})")


def new_run_id(kind: str, started: float | None = None) -> str:
    """A run id as the executor makes them: ``<time>-<kind>-<6 hex>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    return f"{stamp}-{kind}-{uuid.uuid4().hex[:6]}"


#: A record as a ``tasks`` row (the TEXT column turns a step number to text).
_record_row = operator.attrgetter(*TASK_COLUMNS)


class HistoryStore(HistoryReader):
    """The run history file; a :class:`~.results.RecordSink` for runs, and a
    :class:`~.store_reader.HistoryReader` of what it holds.

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
            self._write(lambda db: run_rows.insert_run(db, result))

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
                self._write(lambda db: run_rows.update_run(db, result))
            except WorkdirError as exc:
                if not self.error:
                    self.error = str(exc)
                    result.notes.append(
                        f"the run history has no outcome for this run: {exc}")
            self._close()

    # -- prepare runs ------------------------------------------------------

    def record_prepare(self, plan_sha: str, arguments: Mapping[str, Any],
                       started: float, ended: float, status: RunStatus,
                       notes: Sequence[str] = ()) -> str:
        """Record a prepare; returns its run id."""
        run_id = new_run_id(RunKind.PREPARE, started)
        with self._lock:
            self._write(lambda db: run_rows.insert_prepare(
                db, run_id, plan_sha, arguments, started, ended, status, notes))
            self._close()
        return run_id

    # -- runs whose process died ---------------------------------------------

    def mark_interrupted(self, note: str) -> list[str]:
        """Mark every ``running`` run ``interrupted``, ending when its last
        task record ended (else when it started), with ``note``; returns
        their ids. Only for a caller that holds the stack's run lock, so
        that no run is alive."""
        marked: list[str] = []
        with self._lock:
            try:
                self._write(lambda db: marked.extend(run_rows.mark_interrupted(db, note)))
            finally:
                self._close()
        return marked

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
        if self._connection is None:
            self._connection = store_schema.open_for_writing(self.path)
        store_schema.write(self._connection, work, path=self.path)

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


__all__ = ["HistoryStore", "RunRow", "RUNNING", "SCHEMA_VERSION", "new_run_id"]

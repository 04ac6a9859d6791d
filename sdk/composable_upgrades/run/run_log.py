"""``run.log``: a run told as timestamped lines, in its run folder, as it goes.

One line per batch and step as it starts and ends, one per host at the end
of each step (its tasks by outcome), and one per failed task (host, task,
message) as it comes, each flushed so ``tail -f`` follows the run. Task names
and messages go through the plan's
:meth:`~composable_upgrades.planning.prepared.PreparedPlan.scrub`: a failure
message may quote a secret from the outputs. So do the run's notes, before
they reach the sink behind the log (the history).

:class:`RunLog` listens to a run twice over: to its progress events and, as a
:class:`~composable_upgrades.state.results.RecordSink` in front of the run's
own sink, to its task records.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import IO

from composable_upgrades.model.kinds import TaskStatus
from composable_upgrades.model.redact import scrub_text
from composable_upgrades.run.events import ProgressEvent
from composable_upgrades.state.results import FAILURES, RecordSink, RunResult, TaskRecord

#: The file name of the log in each run folder.
RUN_LOG = "run.log"


def stamp(when: float | None = None) -> str:
    """A local time as the log writes it (seconds; ISO 8601 with its offset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(when))


class RunLog:
    """The ``run.log`` of one run (``path``), written as the run goes."""

    def __init__(self, path: str, sink: RecordSink, *,
                 scrub: Callable[[str], str] = scrub_text) -> None:
        self.path = path
        self.sink = sink
        self.scrub = scrub
        self._file: IO[str] | None = None
        self._hosts: dict[tuple[int, int | str], dict[str, Counter[str]]] = {}

    # -- progress ---------------------------------------------------------------

    def progress(self, event: ProgressEvent) -> None:
        """Log what a progress event says (used as the run's progress callback)."""
        where = f"batch {event.batch}/{event.batches} step {event.step}"
        if event.kind == "run_start":
            self.write(f"stage {event.stage}: run starts: {event.message}")
        elif event.kind == "step_start":
            self.write(f"stage {event.stage} {where}: starts on {event.message}")
        elif event.kind == "step_end":
            for host, counts in self._hosts.pop((event.batch, event.step), {}).items():
                self.write(f"stage {event.stage} batch {event.batch} step "
                           f"{event.step}: {host}: {_outcome(counts)}")
            self.write(f"stage {event.stage} {where}: {event.status}"
                       + (f" ({event.message})" if event.message else ""))
        elif event.kind == "note" and event.message:
            self.write(f"note: {event.message}")
        elif event.kind == "run_end":
            self.write(f"stage {event.stage}: run ends: {event.status}")
            self.close()

    # -- records (a sink in front of the run's own) -------------------------------

    def start_run(self, result: RunResult) -> None:
        """Start the log with the run's id and options (notes masked, for the
        sink too)."""
        result.notes[:] = [self.scrub(n) for n in result.notes]
        self.sink.start_run(result)
        options = {k: v for k, v in result.options.items() if v not in (None, False)}
        self.write(f"run {result.run_id} of stage {result.stage} (plan "
                   f"{result.plan_sha[:12]}); options: "
                   + (", ".join(f"{k}={v}" for k, v in options.items()) or "none"))
        for note in result.notes:
            self.write(f"note: {note}")

    def add(self, record: TaskRecord) -> None:
        """Count a task's outcome on its host; log a failure at once."""
        self.sink.add(record)
        counts = self._hosts.setdefault((record.batch, record.step), {}) \
            .setdefault(record.host, Counter())
        counts[str(record.status)] += 1
        if record.status in FAILURES:
            self.write(f"stage {record.stage} batch {record.batch} step {record.step}: "
                       f"{record.host}: {record.status}: task "
                       f"{record.task!r}: {record.message or 'no message'}")

    def flush(self) -> None:
        """Write what the sink buffers."""
        self.sink.flush()

    def finish_run(self, result: RunResult) -> None:
        """End the log with the run's outcome and notes (masked, for the sink
        too)."""
        result.notes[:] = [self.scrub(n) for n in result.notes]
        self.sink.finish_run(result)
        for note in result.notes:
            self.write(f"note: {note}")
        self.write(f"run {result.run_id}: {result.status} in {result.duration:.1f}s"
                   + (f"; failed hosts: {', '.join(result.failed_hosts)}"
                      if result.failed_hosts else ""))

    # -- the file ------------------------------------------------------------------

    def write(self, line: str) -> None:
        """Append one timestamped line, secrets masked, and flush it."""
        if self._file is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(f"{stamp()} {self.scrub(line)}\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (a later line opens it again)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _outcome(counts: Counter[str]) -> str:
    """A host's step: failed or ok, and its tasks by outcome."""
    bad = [s for s in (TaskStatus.FAILED, TaskStatus.UNREACHABLE) if counts[s]]
    head = str(bad[0]) if bad else "ok"
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{head} ({detail})"

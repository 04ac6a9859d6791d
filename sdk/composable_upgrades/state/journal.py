"""The journal: what of a plan has run, kept next to the plan.

One JSON object per line in ``state/journal.jsonl``, appended and fsynced as
units finish, each tied to the hash of the stage it ran (its playbooks, task
files and hosts): a new plan whose stage is unchanged keeps that stage's
progress. A unit is one host
finishing (or failing) one step of one batch of a stage; a run line closes
each run. Resume skips finished units; status and the stage guards read the
progress from here. A line torn by a kill is ignored when read and ended
before the next append.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.model.kinds import StageKind, UnitStatus

JOURNAL_FILE = "journal.jsonl"

#: Unit outcomes (aliases of :class:`.kinds.UnitStatus`, kept for older callers).
OK = UnitStatus.OK
FAILED = UnitStatus.FAILED


@dataclass
class StageProgress:
    """Progress of one stage of one plan."""

    stage: str
    hosts: tuple[str, ...]
    steps: tuple[int | str, ...]
    finished: set[tuple[int | str, str]] = field(default_factory=set)
    failed: dict[str, int | str] = field(default_factory=dict)
    runs: list[Mapping[str, Any]] = field(default_factory=list)

    def host_done(self, host: str) -> bool:
        """True if ``host`` finished every step of the stage."""
        return all((step, host) in self.finished for step in self.steps)

    @property
    def done(self) -> list[str]:
        """Hosts that finished every step."""
        return [h for h in self.hosts if self.host_done(h)]

    @property
    def failed_hosts(self) -> list[str]:
        """Hosts whose last attempt at a step failed."""
        return [h for h in self.hosts if h in self.failed and not self.host_done(h)]

    @property
    def pending(self) -> list[str]:
        """Hosts that have not finished every step (failed ones included)."""
        return [h for h in self.hosts if not self.host_done(h)]

    @property
    def started(self) -> bool:
        """True if anything of the stage has run."""
        return bool(self.finished or self.failed)

    @property
    def finished_stage(self) -> bool:
        """True if every host finished every step."""
        return not self.pending

    @property
    def state(self) -> str:
        """``finished``, ``failed``, ``partly done`` or ``not started``."""
        if self.finished_stage:
            return "finished"
        if self.failed_hosts:
            return "failed"
        return "partly done" if self.started else "not started"


class Journal:
    """The journal file of a working directory's state folder."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, JOURNAL_FILE)

    def entries(self) -> list[dict[str, Any]]:
        """Every readable entry."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                lines = handle.readlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by a kill mid-write
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def append(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Append entries and fsync, so a kill right after loses none."""
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        if not text:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A line torn by a kill: end it, so this entry starts afresh.
                text = "\n" + text
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def record_units(self, stage_sha: str, run_id: str, stage: str, batch: int,
                     step: int | str, hosts: Iterable[str], status: UnitStatus, *,
                     tags: str | None = None) -> None:
        """Record ``hosts`` finishing (or failing) ``step`` of a batch.

        ``tags``: the run ran only the tasks with these tags; such a unit
        does not finish the step (except on the external stage, which is
        always run by tags).
        """
        now = time.time()
        self.append({"kind": "unit", "sha": stage_sha, "run": run_id,
                     "stage": stage, "batch": batch, "step": step, "host": h,
                     "status": status, "time": now, "tags": tags or None}
                    for h in hosts)

    def record_run(self, stage_sha: str, run: Mapping[str, Any]) -> None:
        """Record the end of a run (id, stage, status, times, options)."""
        self.append([{"kind": "run", "sha": stage_sha, **run}])

    def progress(self, stages: Iterable[Any]) -> dict[str, StageProgress]:
        """Progress of each stage (:class:`.PreparedStage` objects)."""
        stages = list(stages)
        result = {s.name: StageProgress(s.name, tuple(s.hosts), tuple(s.numbers))
                  for s in stages}
        sha = {s.name: s.sha256 for s in stages}
        # The external stage always runs by tags.
        by_tags = {s.name for s in stages if s.kind == StageKind.EXTERNAL}
        for entry in self.entries():
            progress = result.get(entry.get("stage"))
            if progress is None or entry.get("sha") != sha[progress.stage]:
                continue
            if entry.get("kind") == "run":
                progress.runs.append(entry)
                continue
            if entry.get("tags") and progress.stage not in by_tags:
                continue  # only some tasks ran: the step is not done
            unit = (entry["step"], entry["host"])
            if entry["status"] == UnitStatus.OK:
                progress.finished.add(unit)
                if progress.failed.get(entry["host"]) == entry["step"]:
                    del progress.failed[entry["host"]]
            else:
                progress.failed[entry["host"]] = entry["step"]
        return result

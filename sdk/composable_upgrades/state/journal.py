"""The journal: what of a plan has run, kept next to the plan.

One JSON object per line in ``state/journal.jsonl``, appended and fsynced as
units finish, each tied to the hash of the stage it ran (its playbooks, task
files and hosts): a new plan whose stage is unchanged keeps that stage's
progress. A unit is one host
finishing (or failing) one step of one batch of a stage; a run line closes
each run. Resume skips finished units; status and the stage guards read the
progress from here. A line torn by a kill is ignored when read and ended
before the next append.

Entries are read in order, and the last word on a (step, host) unit wins: a
unit is finished only while its latest entry is ``ok``. A step is journaled
as ``started`` on its hosts before it runs, so a step cut short (by Ctrl-C,
a kill or a crash) is unfinished on every host it touched, whatever an older
run left. A ``reset`` line (``--rerun``, ``--restart``) discards the
progress of some hosts before a run does their steps again; a ``start`` line
opens each run, so a run without its closing line is in progress (or was
killed).

A ``start`` line also keeps the run's schedule of batches, so that a
``--resume`` continues the same one; ``hook`` lines record each hook run at
a boundary of a batch or of the stage (``started``, then ``ok`` or
``failed``), so that a resume runs again the hooks that did not succeed.
Hook lines count from the last ``start`` of a run that was not a resume.
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
#: A unit whose step began; it stays unfinished until ``ok`` follows it.
STARTED = "started"


@dataclass
class StageProgress:
    """Progress of one stage of one plan."""

    stage: str
    hosts: tuple[str, ...]
    steps: tuple[int | str, ...]
    finished: set[tuple[int | str, str]] = field(default_factory=set)
    failed: dict[str, int | str] = field(default_factory=dict)
    runs: list[Mapping[str, Any]] = field(default_factory=list)
    #: Units whose step began and never ended (cut short, or running now).
    begun: set[tuple[int | str, str]] = field(default_factory=set)
    #: ``reset`` lines of ``--rerun`` runs (their hosts and time).
    reruns: list[Mapping[str, Any]] = field(default_factory=list)
    #: ``start`` lines of runs whose closing ``run`` line never came.
    open_runs: list[Mapping[str, Any]] = field(default_factory=list)
    #: The ``start`` line of the last run that had a schedule of batches.
    schedule: Mapping[str, Any] | None = None
    #: The ``start`` line of the last run.
    last_start: Mapping[str, Any] | None = None
    #: The last word on each hook run: (point, batch, hook) -> status.
    hooks: dict[tuple[str, int, str], str] = field(default_factory=dict)

    def hook_ok(self, point: str, batch: int, hook: str) -> bool:
        """True if ``hook`` succeeded at ``point`` of ``batch`` (0: the stage)."""
        return self.hooks.get((point, batch, hook)) == UnitStatus.OK

    def hook_unfinished(self, point: str, batch: int, hook: str) -> bool:
        """True if ``hook`` began or failed at ``point`` of ``batch`` and has
        not succeeded since."""
        return self.hooks.get((point, batch, hook), UnitStatus.OK) != UnitStatus.OK

    def touched(self, host: str) -> bool:
        """True if anything of the stage ran (or began) on ``host``."""
        return (host in self.failed
                or any(h == host for _, h in self.finished | self.begun))

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
        return bool(self.finished or self.failed or self.begun)

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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                     0o600)
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

    def record_started(self, stage_sha: str, run_id: str, stage: str, batch: int,
                       step: int | str, hosts: Iterable[str], *,
                       tags: str | None = None) -> None:
        """Record that ``step`` of a batch begins on ``hosts``: until an ``ok``
        follows, the step is unfinished there."""
        self.record_units(stage_sha, run_id, stage, batch, step, hosts,
                          STARTED, tags=tags)  # type: ignore[arg-type]

    def record_reset(self, stage_sha: str, run_id: str, stage: str,
                     hosts: Iterable[str], steps: Iterable[int | str], *,
                     rerun: bool) -> None:
        """Discard the progress of ``steps`` of ``stage`` on ``hosts``, before a
        run does them again (``rerun``: finished work, on purpose)."""
        self.append([{"kind": "reset", "sha": stage_sha, "run": run_id,
                      "stage": stage, "hosts": list(hosts), "steps": list(steps),
                      "rerun": rerun, "time": time.time()}])

    def record_hook(self, stage_sha: str, run_id: str, stage: str, point: str,
                    batch: int, hook: str, status: str, *,
                    message: str | None = None) -> None:
        """Record a hook run at ``point`` of ``batch`` (0: the stage's own
        points): ``started`` before it runs, then ``ok`` or ``failed``."""
        self.append([{"kind": "hook", "sha": stage_sha, "run": run_id,
                      "stage": stage, "point": point, "batch": batch,
                      "hook": hook, "status": status, "message": message,
                      "time": time.time()}])

    def record_start(self, stage_sha: str, run: Mapping[str, Any]) -> None:
        """Record the start of a run (id, stage, pid, batches, time; its
        ``schedule``, ``batch_size`` and ``batch_by``; ``resume``)."""
        self.append([{"kind": "start", "sha": stage_sha, "time": time.time(), **run}])

    def record_run(self, stage_sha: str, run: Mapping[str, Any]) -> None:
        """Record the end of a run (id, stage, status, times, options)."""
        self.append([{"kind": "run", "sha": stage_sha, **run}])

    def progress(self, stages: Iterable[Any], *,
                 tags: str | None = None) -> dict[str, StageProgress]:
        """Progress of each stage (:class:`.PreparedStage` objects).

        ``tags``: on the external stage (always run by tags), count only the
        runs with these tags (None: any).
        """
        stages = list(stages)
        result = {s.name: StageProgress(s.name, tuple(s.hosts), tuple(s.numbers))
                  for s in stages}
        sha = {s.name: s.sha256 for s in stages}
        # The external stage always runs by tags.
        by_tags = {s.name for s in stages if s.kind == StageKind.EXTERNAL}
        starts: dict[str, Mapping[str, Any]] = {}
        for entry in self.entries():
            progress = result.get(entry.get("stage"))
            if progress is None or entry.get("sha") != sha[progress.stage]:
                continue
            kind = entry.get("kind")
            if kind == "run":
                progress.runs.append(entry)
                starts.pop(entry.get("run"), None)
                continue
            if kind == "start":
                starts[entry.get("run")] = entry
                progress.last_start = entry
                if entry.get("schedule") is not None:
                    progress.schedule = entry
                if not entry.get("resume"):
                    progress.hooks.clear()
                continue
            if kind == "hook":
                progress.hooks[(str(entry.get("point")), int(entry.get("batch") or 0),
                                str(entry.get("hook")))] = str(entry.get("status"))
                continue
            if kind == "reset":
                _reset(progress, entry)
                continue
            if kind != "unit" or "step" not in entry or "host" not in entry:
                continue
            if entry.get("status") == STARTED and entry.get("run") in starts:
                # where the run is now: the step it began last
                starts[entry["run"]] = {**starts[entry["run"]], "at": {
                    "batch": entry.get("batch"), "step": entry.get("step"),
                    "time": entry.get("time")}}
            if progress.stage in by_tags:
                if tags is not None and entry.get("tags") != tags:
                    continue
            elif entry.get("tags"):
                continue  # only some tasks ran: the step is not done
            _unit(progress, entry)
        for entry in starts.values():
            result[entry["stage"]].open_runs.append(entry)
        return result


def _unit(progress: StageProgress, entry: Mapping[str, Any]) -> None:
    """Apply one unit line: its status is now the unit's last word."""
    unit = (entry["step"], entry["host"])
    status = entry["status"]
    progress.finished.discard(unit)
    progress.begun.discard(unit)
    if status == UnitStatus.OK:
        progress.finished.add(unit)
        if progress.failed.get(entry["host"]) == entry["step"]:
            del progress.failed[entry["host"]]
    elif status == STARTED:
        progress.begun.add(unit)
    else:
        progress.failed[entry["host"]] = entry["step"]


def _reset(progress: StageProgress, entry: Mapping[str, Any]) -> None:
    """Apply a reset line: its hosts' progress of its steps is gone."""
    hosts, steps = set(entry.get("hosts") or ()), list(entry.get("steps") or ())
    for unit in [u for u in progress.finished | progress.begun
                 if u[1] in hosts and u[0] in steps]:
        progress.finished.discard(unit)
        progress.begun.discard(unit)
    for host in hosts:
        if progress.failed.get(host) in steps:
            del progress.failed[host]
    if entry.get("rerun"):
        progress.reruns.append(entry)

"""Status: where each stage of the prepared plan stands, from the journal."""

from __future__ import annotations

import os
from dataclasses import dataclass

from composable_upgrades.model.kinds import StageKind
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.workdir import Workdir


@dataclass(frozen=True)
class StageStatus:
    """One stage: its state, its hosts by outcome, and its last run."""

    stage: str
    kind: StageKind
    state: str
    hosts: tuple[str, ...]
    done: tuple[str, ...]
    failed: tuple[str, ...]
    pending: tuple[str, ...]
    last_run: str | None
    last_status: str | None
    last_started: float | None
    last_duration: float | None


def status(working_dir: str | os.PathLike[str]) -> list[StageStatus]:
    """The state of every stage of the plan prepared in ``working_dir``."""
    workdir = Workdir.at(working_dir)
    plan = workdir.load_plan()
    progress = Journal(workdir.state_dir).progress(plan.stages)
    result = []
    for stage in plan.stages:
        state = progress[stage.name]
        last = state.runs[-1] if state.runs else {}
        started, ended = last.get("started"), last.get("ended")
        result.append(StageStatus(
            stage=stage.name, kind=stage.kind, state=state.state,
            hosts=stage.hosts, done=tuple(state.done),
            failed=tuple(state.failed_hosts),
            pending=tuple(h for h in state.pending if h not in state.failed_hosts),
            last_run=last.get("run"), last_status=last.get("status"),
            last_started=started,
            last_duration=(ended - started) if started and ended else None))
    return result

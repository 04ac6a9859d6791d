"""Status: where each stage of the prepared plan stands, from the journal."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.state.journal import Journal, StageProgress
from composable_upgrades.state.workdir import Workdir


@dataclass(frozen=True)
class RunInProgress:
    """A run that has started and not ended, and whose process is alive:
    where it is (the step it began last) and since when."""

    run_id: str
    started: float
    batch: int | None = None
    batches: int | None = None
    step: int | str | None = None
    step_started: float | None = None


@dataclass(frozen=True)
class StageStatus:
    """One stage: its state, its hosts by outcome, and its last run.

    ``running``: a run of it in progress; ``rerun_after_converge``: hosts it
    ran on again (``--rerun``) after converge had run.
    """

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
    running: RunInProgress | None = None
    rerun_after_converge: tuple[str, ...] = field(default=())


def status(working_dir: str | os.PathLike[str]) -> list[StageStatus]:
    """The state of every stage of the plan prepared in ``working_dir``."""
    workdir = Workdir.at(working_dir)
    plan = workdir.load_plan()
    progress = Journal(workdir.state_dir).progress(plan.stages)
    converged = _converged_at(plan, progress)
    result = []
    for stage in plan.stages:
        state = progress[stage.name]
        last = state.runs[-1] if state.runs else {}
        started, ended = last.get("started"), last.get("ended")
        running = _running(state)
        result.append(StageStatus(
            stage=stage.name, kind=stage.kind,
            state="running" if running else state.state,
            hosts=stage.hosts, done=tuple(state.done),
            failed=tuple(state.failed_hosts),
            pending=tuple(h for h in state.pending if h not in state.failed_hosts),
            last_run=last.get("run"), last_status=last.get("status"),
            last_started=started,
            last_duration=(ended - started) if started and ended else None,
            running=running,
            rerun_after_converge=_reruns_after(state, converged)
            if stage.kind in (StageKind.CONTROLPLANE, StageKind.BATCHED) else ()))
    return result


def next_command(working_dir: str | os.PathLike[str]) -> list[str]:
    """The arguments of ``openstack overcloud upgrade`` to type next.

    A stage started and not finished comes first (resumed), then the first
    upgrade stage not started, then converge; once converge has finished,
    ``status``. The external stage, run by tags when the operator chooses,
    is never the next command.
    """
    for stage in status(working_dir):
        if stage.kind == StageKind.EXTERNAL or stage.state == "finished":
            continue
        verb = (["converge"] if stage.kind == StageKind.CONVERGE
                else ["run", "--stage", stage.stage])
        if stage.running:
            return ["status"]
        if stage.state in ("failed", "partly done"):
            return verb + ["--resume"]
        return verb
    return ["status"]


def _converged_at(plan: PreparedPlan, progress: Mapping[str, StageProgress]
                  ) -> float | None:
    """When converge first ran (the start of its first run), if it has."""
    times = [run["started"] for s in plan.stages if s.kind == StageKind.CONVERGE
             for run in progress[s.name].runs
             if isinstance(run.get("started"), (int, float))]
    return min(times) if times else None


def _reruns_after(state: StageProgress, since: float | None) -> tuple[str, ...]:
    if since is None:
        return ()
    hosts = [h for entry in state.reruns if (entry.get("time") or 0) > since
             for h in entry.get("hosts") or ()]
    return tuple(dict.fromkeys(hosts))


def _running(state: StageProgress) -> RunInProgress | None:
    """The newest run of ``state`` that started, never ended, and whose
    process still lives (a killed run is not running)."""
    for entry in reversed(state.open_runs):
        if _alive(entry.get("pid")):
            at: Mapping[str, Any] = entry.get("at") or {}
            return RunInProgress(
                run_id=str(entry.get("run")), started=float(entry.get("time") or 0),
                batch=at.get("batch"), batches=entry.get("batches"),
                step=at.get("step"), step_started=at.get("time"))
    return None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

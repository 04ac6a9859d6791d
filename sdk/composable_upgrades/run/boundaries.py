"""The hooks of a run at its boundaries: which run (again, on a resume), and
how each is journaled, recorded and reported.

The stage runner (:mod:`.stage_runner`) says where the boundaries are:
around the stage and each batch, and, in converge, around each host's
reboot (``StageRunner.run_one_by_one``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from composable_upgrades.model.kinds import RunStatus, UnitStatus
from composable_upgrades.run.hooks import Hook, HookCall, HookRunner
from composable_upgrades.run.request import RunRequest
from composable_upgrades.state.journal import Journal, StageProgress
from composable_upgrades.state.results import RecordSink, RunResult

#: Tells the run's progress callback: (kind, fields).
Emit = Callable[..., None]


class Boundaries:
    """Runs the hooks of ``request`` at its boundaries, with ``hook_runner``.

    ``earlier``: the stage's progress before the run (its hook runs), so a
    resume skips the hooks that succeeded and runs again those that did not.
    """

    def __init__(self, request: RunRequest, *, journal: Journal, sink: RecordSink,
                 hook_runner: HookRunner | None, earlier: StageProgress | None,
                 emit: Emit, stop_now: Callable[[], bool]) -> None:
        self.request = request
        self.stage = request.stage
        self.journal = journal
        self.sink = sink
        self.hook_runner = hook_runner
        self.earlier = earlier
        self.emit = emit
        self.stop_now = stop_now

    def at(self, result: RunResult, point: str, batch: int, hosts: Sequence[str],
           work: bool, *, batches: int | None = None,
           step: int | str | None = None) -> bool:
        """Run the hooks of ``point``; False (the run failed) if one fails.

        Without ``work`` at this boundary, only hooks that began or failed
        in an earlier run and did not succeed since run (again).
        """
        hooks = self.request.hooks.at(point)
        if not hooks or self.hook_runner is None:
            return True
        call = HookCall(stage=self.stage.name, point=point, batch=batch,
                        batches=len(self.request.batches) if batches is None
                        else batches, hosts=tuple(hosts), step=step)
        for hook in hooks:
            earlier = self.earlier
            if earlier is not None and (
                    earlier.hook_ok(point, batch, hook.name) if work
                    else not earlier.hook_unfinished(point, batch, hook.name)):
                continue
            if not self.run_hook(result, hook, call):
                return False
        return True

    def run_hook(self, result: RunResult, hook: Hook, call: HookCall) -> bool:
        """Run one hook: journaled, recorded, reported; True if it succeeded."""
        assert self.hook_runner is not None
        sha, run_id = self.stage.sha256, result.run_id
        self.journal.record_hook(sha, run_id, self.stage.name, call.point, call.batch,
                                 hook.name, "started")
        self.emit("step_start", batch=call.batch, batches=call.batches,
                  step=call.point, message=f"hook {hook.name}" + _on(call))
        self.emit("task", batch=call.batch, step=call.point, task=f"hook {hook.name}")
        outcome = self.hook_runner.run(hook, call, self.stop_now)
        record = outcome.record(run_id)
        result.records.append(record)
        self.sink.add(record)
        self.sink.flush()
        self.journal.record_hook(sha, run_id, self.stage.name, call.point, call.batch,
                                 hook.name, UnitStatus.OK if outcome.ok
                                 else UnitStatus.FAILED, message=outcome.error)
        if not outcome.ok:
            self.emit("host_done", batch=call.batch, step=call.point,
                      host=record.host, status=record.status, task=record.task,
                      message=outcome.error)
        self.emit("step_end", batch=call.batch, batches=call.batches, step=call.point,
                  status=UnitStatus.OK if outcome.ok else UnitStatus.FAILED,
                  message=None if outcome.ok else f"hook {hook.name} failed")
        if outcome.ok:
            return True
        result.status = RunStatus.FAILED
        result.notes.append(outcome.failure_line())
        return False


def _on(call: HookCall) -> str:
    """`` (reboot of compute-1)`` for a hook around one host's step."""
    if call.step is None:
        return ""
    return f" ({call.step} of {', '.join(call.hosts)})"


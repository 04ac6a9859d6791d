"""Converge's reboot, one host at a time between the batch hooks.

The reboot play of converge goes through its hosts one at a time
(``serial: 1``). When a run has ``pre_batch`` or ``post_batch`` hooks (a
compute drain, an API check), each host runs the reboot step alone, between
them, as a batch of its own: a compute is emptied before it reboots and
enabled again after. Which steps go this way is
:meth:`.request.RunRequest.one_by_one`'s to say; the stage runner
(:mod:`.stage_runner`) calls :func:`one_host_at_a_time` for them.
"""

from __future__ import annotations

from collections.abc import Sequence

from composable_upgrades.model.kinds import RunStatus
from composable_upgrades.run.boundaries import Boundaries
from composable_upgrades.run.events import StopRequest
from composable_upgrades.run.executor import BatchSession
from composable_upgrades.run.request import RunRequest
from composable_upgrades.run.step_runs import StepRuns
from composable_upgrades.state.results import RunResult


def one_host_at_a_time(result: RunResult, session: BatchSession | None, number: int,
                       step: int | str, batch: Sequence[str],
                       finished: set[tuple[int | str, str]], *, request: RunRequest,
                       hooks: Boundaries, steps: StepRuns, stop: StopRequest) -> bool:
    """Run ``step`` of batch ``number`` on each host of ``batch`` alone,
    between the ``pre_batch`` and ``post_batch`` hooks; False when the run
    stops here (a hook or the step failed on that host, or a stop).

    Each host is numbered by its place among the stage's hosts of the step,
    the same on a resume, which skips the ``finished`` units and the hooks
    that succeeded. Without a ``session`` (nothing left to run), only hooks
    that did not succeed run again.
    """
    order = request.one_by_one_order(step)
    chosen = set(batch)
    for index, host in enumerate(order, start=1):
        if host not in chosen:
            continue
        work = session is not None and (step, host) not in finished
        where = {"batches": len(order), "step": step}
        if not hooks.at(result, "pre_batch", index, (host,), work, **where):
            return False
        if session is not None and work:
            outcome = steps.run(result, session, number, step, [host])
            if outcome.interrupted or stop.now:
                result.status = RunStatus.INTERRUPTED
                return False
            if outcome.failed:
                result.status = RunStatus.FAILED
                result.notes.append(f"stopped at step {step} of {host} "
                                    f"(host {index} of {len(order)}): it failed")
                return False
        if not hooks.at(result, "post_batch", index, (host,), work, **where):
            return False
        if work and stop.after_step and host != order[-1]:
            result.status = RunStatus.INTERRUPTED
            result.notes.append(f"stopped on request after step {step} of {host}")
            return False
    return True

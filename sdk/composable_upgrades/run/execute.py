"""Running a stage of a prepared plan: the public entry points.

:func:`run_stage` checks the request, takes the stack's lock, checks it
again, and hands the run to the stage runner (:mod:`.stage_runner`, the
policy) with the ansible-runner executor (:mod:`.ansible`); ``dry_run``
returns the :class:`~.preview.RunPreview` instead. Every check runs before
anything is written, so a refused run leaves the working dir as it was.
:func:`check_run` is the same checks alone, for a command to make before it
asks for confirmation.

Around the runner, the run is journaled (its start, what a ``rerun`` or
``restart`` discards; the runner journals each step) and logged to the
``run.log`` of its run folder (:mod:`.run_log`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from composable_upgrades.model.fleet import Fleet
from composable_upgrades.model.kinds import RunStatus
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.run.ansible import AnsibleExecutor
from composable_upgrades.run.executor import Executor
from composable_upgrades.run.nodes import NodesSpec, run_nodes
from composable_upgrades.run.streaming import StreamingExecutor
from composable_upgrades.run.events import Progress, ProgressEvent, StopRequest
from composable_upgrades.run.hooks import HookFunction, HookRunner
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.preview import DryRunResult, preview_run
from composable_upgrades.run.request import RunRequest, checked_request
from composable_upgrades.run.run_log import RUN_LOG, RunLog
from composable_upgrades.run.stage_runner import Confirm, run_request
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.lock import acquire, stale_lock_note
from composable_upgrades.state.results import RecordSink, RunResult
from composable_upgrades.state.store import HistoryStore, new_run_id
from composable_upgrades.state.workdir import Workdir


def run_stage(working_dir: str | os.PathLike[str], stage: str,
              options: RunOptions | None = None, *,
              fleet: Fleet | str | None = None,
              ssh_key: str | os.PathLike[str] | None = None,
              dry_run: bool = False, progress: Progress | None = None,
              sink: RecordSink | None = None, stop: StopRequest | None = None,
              hooks: Mapping[str, Sequence[HookFunction | str]] | None = None,
              confirm: Confirm | None = None,
              execution_nodes: NodesSpec | None = None,
              requested: float | None = None,
              **overrides: Any) -> RunResult:
    """Run one stage of the plan prepared in ``working_dir``.

    ``options`` (a :class:`~.options.RunOptions`), and any of its fields
    given by name (``batch_size=2``, ``resume=True``...), say what to run:
    ``limit`` narrows the hosts; ``batch_size`` (``N``, ``N%`` or a schedule
    such as ``"1,5,20%"``, the last value repeating) splits a
    non-controlplane stage into batches, each of which runs every step;
    ``batch_by`` keeps hosts of different values of a variable (or roles)
    in different batches; failed hosts count against
    ``max_fail_percentage`` (default 0) of their batch. ``pause_after``
    stops cleanly after that many batches (a ``resume`` continues the same
    schedule); ``confirm(batch, hosts)`` is asked before every batch after
    the first. ``hooks_file`` (an option; default: the hooks file kept by
    ``prepare``, if any) and ``hooks`` (by point:
    callables ``fn(stage, batch, hosts)``, built-in names or playbooks) run
    around the batches and the stage (see :mod:`.hooks`); a failed hook
    stops the run there. ``resume`` skips units the journal has as finished; a stage with
    unfinished progress refuses to start without ``resume`` or ``restart``,
    and finished work (or an upgrade stage after converge) without ``rerun``.
    ``steps`` (or
    ``playbooks``) restrict the run to some steps; a run with ``tags`` does
    not count towards finishing the stage. A stage refuses to start while the
    stages it needs are unfinished, unless ``force``. Ctrl-C once stops after
    the current step; twice stops now. Records go to the working dir's run
    history unless another ``sink`` is given. ``ssh_key`` is the overcloud
    hosts' private key (see :func:`~.request.ssh_key_env`).
    ``execution_nodes`` (a node file, its data, or :class:`~.nodes.ExecutionNodes`;
    default: the one kept in the plan) runs each step on those machines at
    once, through ansible-runner's streaming (see doc/scale-out.rst). ``dry_run``
    runs nothing and returns a :class:`~.preview.DryRunResult`. ``requested``
    is when the run was asked for (a command's own start; default: this
    call), recorded so that a forecast counts the start-up before the run.
    """
    requested = time.time() if requested is None else requested
    options = RunOptions.build(options, **overrides)
    workdir = Workdir.at(working_dir)
    if dry_run:
        plan, env, request = checked_request(workdir, stage, options, fleet=fleet,
                                             ssh_key=ssh_key, journal=False)
        request = _with_hooks(request, hooks)
        nodes = run_nodes(plan, execution_nodes)
        now = time.time()
        return DryRunResult(run_id=new_run_id(stage), stage=stage,
                            plan_sha=plan.sha256, status=RunStatus.DRY_RUN,
                            started=now, ended=now, options=request.options.as_dict(),
                            batches=list(request.batches),
                            preview=preview_run(plan, request, env, nodes=nodes))
    # Refuse before anything is written (the lock makes the state folder).
    checked_plan, _, checked = checked_request(workdir, stage, options, fleet=fleet,
                                               ssh_key=ssh_key)
    _with_hooks(checked, hooks)
    run_nodes(checked_plan, execution_nodes)
    # The lock comes first: a prepare cannot swap the plan under this run.
    with acquire(workdir.state_dir, purpose=f"run of stage {stage}") as lock:
        plan, env, request = checked_request(workdir, stage, options, fleet=fleet,
                                             ssh_key=ssh_key)
        request = _with_hooks(request, hooks)
        run_id = new_run_id(stage)
        run_dir = os.path.join(workdir.runs_dir, run_id)
        journal = Journal(workdir.state_dir)
        _journal_start(journal, request, run_id)
        log = RunLog(os.path.join(run_dir, RUN_LOG),
                     HistoryStore(workdir.history_path) if sink is None else sink,
                     scrub=plan.scrub)
        nodes = run_nodes(plan, execution_nodes)
        executor: Executor = (StreamingExecutor(plan, run_dir, nodes, env=env) if nodes
                              else AnsibleExecutor(plan, run_dir, env=env))
        hook_runner = HookRunner(plan, env=env, builtin=_builtin_hooks(plan, request))
        stop = stop or StopRequest()
        with _sigint(stop):
            return run_request(
                plan, request, executor, run_id=run_id, journal=journal, sink=log,
                progress=_both(log.progress, progress), stop=stop,
                hook_runner=hook_runner, confirm=confirm, requested=requested,
                notes=[stale_lock_note(lock.stale_owner)] if lock.stale_owner else [])


def check_run(working_dir: str | os.PathLike[str], stage: str,
              options: RunOptions | None = None, *,
              fleet: Fleet | str | None = None,
              ssh_key: str | os.PathLike[str] | None = None,
              execution_nodes: NodesSpec | None = None,
              **overrides: Any) -> tuple[PreparedPlan, RunRequest]:
    """Every check :func:`run_stage` makes before it runs, and nothing run or
    written: the plan and the request as the run would see them now.

    Raises what :func:`run_stage` would: a needed stage unfinished, finished
    work without ``rerun``, unfinished work without ``resume`` or ``restart``
    (:class:`~.request.UnfinishedWorkError`), the lock held, a fleet, key or
    execution node file that does not fit, an option that does not apply.
    """
    options = RunOptions.build(options, **overrides)
    plan, _, request = checked_request(Workdir.at(working_dir), stage, options,
                                       fleet=fleet, ssh_key=ssh_key)
    run_nodes(plan, execution_nodes)
    return plan, request


def _journal_start(journal: Journal, request: RunRequest, run_id: str) -> None:
    """Open the run in the journal, after discarding what it starts again."""
    stage = request.stage
    if request.reset:
        journal.record_reset(stage.sha256, run_id, stage.name, request.reset,
                             request.steps, rerun=request.options.rerun)
    options = request.options
    journal.record_start(stage.sha256, {
        "run": run_id, "stage": stage.name, "pid": os.getpid(),
        "hosts": len(request.hosts), "batches": len(request.batches),
        # What a --resume continues: the same batches, the same hooks.
        "schedule": [list(b) for b in request.batches],
        "batch_size": (list(options.batch_size)
                       if isinstance(options.batch_size, (list, tuple))
                       else options.batch_size),
        "batch_by": options.batch_by, "resume": options.resume,
        "hooks_file": request.hooks.source,
        "plan_hooks": request.hooks.kept})


def _with_hooks(request: RunRequest,
                hooks: Mapping[str, Sequence[HookFunction | str]] | None
                ) -> RunRequest:
    """``request`` with the SDK caller's ``hooks`` after those of its hooks
    file (or of the plan)."""
    if not hooks:
        return request
    return replace(request, hooks=request.hooks.plus(hooks))


def _builtin_hooks(plan: PreparedPlan, request: RunRequest):
    """What runs the built-in hooks of ``request`` (None if it names none)."""
    if not request.hooks.builtins:
        return None
    from composable_upgrades.run.drain import NOVA_COMPUTE, NovaDrain

    computes = frozenset(h for role in plan.roles.values()
                         if NOVA_COMPUTE in role.services for h in role.hosts)
    aliases = {name: (host.fqdn,) for name, host in plan.hosts.items() if host.fqdn}
    return NovaDrain.from_cloud(request.options.overcloud_cloud, computes=computes,
                                aliases=aliases).run_hook


def _both(first: Progress, second: Progress | None) -> Progress:
    """A progress callback that tells ``first``, then ``second`` if any."""
    if second is None:
        return first

    def tell(event: ProgressEvent) -> None:
        first(event)
        second(event)
    return tell


@contextlib.contextmanager
def _sigint(stop: StopRequest) -> Iterator[None]:
    """``stop`` as the SIGINT handler (in the main thread, where Python can)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

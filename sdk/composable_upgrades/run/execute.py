"""Running a stage of a prepared plan: the public entry points.

:func:`run_stage` checks the request, takes the stack's lock, and hands the
run to the stage runner (:mod:`.stage_runner`, the policy) with the
ansible-runner executor (:mod:`.ansible`); ``dry_run`` returns the
:class:`~.preview.RunPreview` instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from composable_upgrades.model.fleet import Fleet
from composable_upgrades.model.kinds import RunStatus
from composable_upgrades.run.ansible import AnsibleExecutor
from composable_upgrades.run.events import Progress, StopRequest
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.preview import DryRunResult, preview_run
from composable_upgrades.run.request import checked_request
from composable_upgrades.run.stage_runner import run_request
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
              **overrides: Any) -> RunResult:
    """Run one stage of the plan prepared in ``working_dir``.

    ``options`` (a :class:`~.options.RunOptions`), and any of its fields
    given by name (``batch_size=2``, ``resume=True``...), say what to run:
    ``limit`` narrows the hosts; ``batch_size`` (``N`` or ``N%``) splits a
    non-controlplane stage into batches, each of which runs every step;
    failed hosts count against ``max_fail_percentage`` (default 0) of their
    batch. ``resume`` skips units the journal has as finished. ``steps`` (or
    ``playbooks``) restrict the run to some steps; a run with ``tags`` does
    not count towards finishing the stage. A stage refuses to start while the
    stages it needs are unfinished, unless ``force``. Ctrl-C once stops after
    the current step; twice stops now. Records go to the working dir's run
    history unless another ``sink`` is given. ``ssh_key`` is the overcloud
    hosts' private key (see :func:`~.request.ssh_key_env`). ``dry_run``
    runs nothing and returns a :class:`~.preview.DryRunResult`.
    """
    options = RunOptions.build(options, **overrides)
    workdir = Workdir.at(working_dir)
    if dry_run:
        plan, env, request = checked_request(workdir, stage, options, fleet=fleet,
                                             ssh_key=ssh_key)
        now = time.time()
        return DryRunResult(run_id=new_run_id(stage), stage=stage,
                            plan_sha=plan.sha256, status=RunStatus.DRY_RUN,
                            started=now, ended=now, options=request.options.as_dict(),
                            batches=list(request.batches),
                            preview=preview_run(plan, request, env))
    # The lock comes first: a prepare cannot swap the plan under this run.
    with acquire(workdir.state_dir, purpose=f"run of stage {stage}") as lock:
        plan, env, request = checked_request(workdir, stage, options, fleet=fleet,
                                             ssh_key=ssh_key)
        run_id = new_run_id(stage)
        executor = AnsibleExecutor(plan, os.path.join(workdir.runs_dir, run_id),
                                   env=env)
        stop = stop or StopRequest()
        with _sigint(stop):
            return run_request(
                plan, request, executor, run_id=run_id,
                journal=Journal(workdir.state_dir),
                sink=HistoryStore(workdir.history_path) if sink is None else sink,
                progress=progress, stop=stop,
                notes=[stale_lock_note(lock.stale_owner)] if lock.stale_owner else [])


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

"""The executor that runs steps with ansible-runner on this machine.

ansible-playbook runs in ansible-runner's default (pexpect) mode: it reads
events as they come, asks the cancel callback between reads, and starts
ansible-playbook in a session of its own, so a Ctrl-C at the terminal reaches
this process only (see doc/performance.rst for why not the subprocess mode).

A batch runs in lanes (:mod:`.lanes`, :mod:`.lane_session`): one
ansible-playbook process per role, alive across the batch's steps, each held
at a barrier between steps until the run releases it. The roles of one wave
of a step run at once; the next wave starts when they have all finished.
:meth:`AnsibleExecutor.run_step` runs one step as one call (one process for
the step's plays, in order). Each step is also appended to the run's
reproduce script as that one call, from the same argv as a dry run shows.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from composable_upgrades.errors import RunError
from composable_upgrades.model.fleet import FAULT_TAG, Fleet
from composable_upgrades.model.names import UNDERCLOUD_GROUP
from composable_upgrades.planning.plan import UNDERCLOUD_HOST
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.run.ansible_events import StepEvents, TaskIndex
from composable_upgrades.run.environment import path_for
from composable_upgrades.run.executor import (
    BatchJob, BatchSession, StepCallbacks, StepJob, StepReport, StepwiseSession)
from composable_upgrades.run.lane_session import LaneSession
from composable_upgrades.run.options import RunOptions, ansible_command
from composable_upgrades.run.run_folder import start_run_folder
from composable_upgrades.state.results import REPRODUCE_SCRIPT

#: ansible-playbook's exit code when ansible-runner could not start it.
_NOT_FOUND = 127
#: ansible-runner's status of a run its cancel callback stopped.
_CANCELED = "canceled"


def ansible_playbook_binary() -> str:
    """ansible-playbook next to this Python (a venv need not be activated)."""
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("ansible-playbook")
    if not found:
        raise RunError("ansible-playbook not found next to "
                       f"{sys.executable} nor on PATH")
    return found


class AnsibleExecutor:
    """Runs the steps of one run of ``plan`` with ansible-runner.

    ``run_dir`` is the run's folder (ansible-runner's private data dir, and
    the reproduce script's home); ``env`` is the run's environment
    (:func:`.environment.run_environment`). ``lanes`` False runs every step
    of a batch as one call of its own.
    """

    def __init__(self, plan: PreparedPlan, run_dir: str, *,
                 env: Mapping[str, str] | None = None,
                 binary: str | None = None, lanes: bool = True) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.env = dict(env or {})
        self.binary = binary or ansible_playbook_binary()
        self.lanes = lanes
        self.inventory = plan.file("inventory.yaml")
        self.task_index = TaskIndex(plan)
        self.roles = {name: host.role for name, host in plan.hosts.items()}
        self.roles[UNDERCLOUD_HOST] = UNDERCLOUD_GROUP

    def command(self, job: StepJob) -> list[str]:
        """The ansible-playbook command line of ``job``."""
        return ansible_command(self.options(job.options, job.hosts), binary=self.binary,
                               inventory=self.inventory, hosts=job.hosts,
                               playbook=self.plan.file(job.playbook))

    def options(self, options: RunOptions, hosts: Iterable[str]) -> RunOptions:
        """``options`` for a call on ``hosts``: on a rehearsal fleet where none
        of them has an injected fault, the fault check is skipped by its tag
        (it would cost an Ansible worker per host and step for nothing)."""
        if self.plan.fleet_root is None or Fleet.at(self.plan.fleet_root).has_faults(
                [*hosts, UNDERCLOUD_HOST]):
            return options
        skip = ",".join(t for t in (options.skip_tags, FAULT_TAG) if t)
        return RunOptions.build(options, skip_tags=skip)

    def start(self, run_id: str, stage: str) -> str:
        """Create the run folder: ansible-runner settings, script header."""
        start_run_folder(self.run_dir, self.plan.path, self.env, (
            f"Run {run_id}: stage {stage} of the plan in {self.plan.path}.\n"
            "The steps of the run, in order, one ansible-playbook call per step "
            "and batch\n(the run itself keeps one process per role across a "
            "batch's steps)."))
        return self.run_dir

    def open_batch(self, job: BatchJob) -> BatchSession:
        """The lanes of one batch (or one call per step, without lanes)."""
        if not self.lanes:
            return StepwiseSession(self)
        return LaneSession(self, job)

    def note_step(self, job: StepJob) -> None:
        """Append ``job``'s call to the reproduce script."""
        with open(os.path.join(self.run_dir, REPRODUCE_SCRIPT), "a",
                  encoding="utf-8") as handle:
            handle.write(f"\n# batch {job.batch}, step {job.step}\n"
                         f"{shlex.join(self.command(job))}\n")

    def run_step(self, job: StepJob, callbacks: StepCallbacks) -> StepReport:
        """Run ``job`` as one ansible-playbook call."""
        import ansible_runner

        self.note_step(job)
        argv = self.command(job)
        ident = f"batch{job.batch}-step{job.step}"
        events = StepEvents(run_id=job.run_id, stage=job.stage, batch=job.batch,
                            step=job.step, callbacks=callbacks, roles=self.roles,
                            task_index=self.task_index, scrub=self.plan.scrub)
        try:
            runner = ansible_runner.run(
                **self.runner_arguments(argv, ident), event_handler=events.handle,
                cancel_callback=callbacks.stop_now)
        except Exception as exc:  # ansible-runner raises plain exceptions
            raise RunError(f"cannot run ansible-playbook for step {job.step}: {exc}",
                           stage=job.stage, step=job.step) from exc
        finally:
            self.forget_command(ident)
        rc = runner.rc if isinstance(runner.rc, int) else 1
        if rc == _NOT_FOUND:
            raise RunError(f"ansible-playbook not found ({self.binary})",
                           stage=job.stage, step=job.step, rc=rc)
        return StepReport(rc=rc, failed=frozenset(events.failed_hosts()),
                          interrupted=runner.status == _CANCELED,
                          records=tuple(events.records), output=tuple(events.output))

    def runner_arguments(self, argv: list[str], ident: str) -> dict[str, Any]:
        """ansible-runner's arguments for running ``argv``."""
        return dict(
            private_data_dir=self.run_dir, ident=ident, project_dir=self.plan.path,
            binary=argv[0], cmdline=shlex.join(argv[1:]), quiet=True,
            suppress_env_files=True,
            envvars={**self.env, "PATH": path_for(self.binary)})

    def forget_command(self, ident: str) -> None:
        """Delete the command file ansible-runner writes: it holds the whole
        environment, OS_PASSWORD and the like included; the reproduce script
        says what ran."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.run_dir, "artifacts", ident, "command"))

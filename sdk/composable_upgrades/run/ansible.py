"""The executor that runs steps with ansible-runner on this machine.

The one module that imports ``ansible_runner``. ansible-playbook runs in
ansible-runner's default (pexpect) mode: it reads events as they come, asks
the cancel callback between reads, and starts ansible-playbook in a session
of its own, so a Ctrl-C at the terminal reaches this process only (see
doc/performance.rst for why not the subprocess mode).

A batch runs in lanes (:mod:`.lanes`): one ansible-playbook process per role,
alive across the batch's steps, each held at a barrier between steps until
the run releases it. The roles of one wave of a step run at once; the next
wave starts when they have all finished. :meth:`AnsibleExecutor.run_step`
runs one step as one call (one process for the step's plays, in order).
Each step is also appended to the run's reproduce script as that one call,
from the same argv as a dry run shows.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.errors import RunError, WorkdirError
from composable_upgrades.model.deployment import UNDERCLOUD_GROUP
from composable_upgrades.model.fleet import FAULT_TAG, Fleet
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.plan import UNDERCLOUD_HOST
from composable_upgrades.planning.prepared import PreparedPlan, PreparedStage
from composable_upgrades.run.ansible_events import StepEvents, TaskIndex
from composable_upgrades.run.environment import path_for
from composable_upgrades.run.executor import (
    BatchJob, BatchSession, StepCallbacks, StepJob, StepReport, StepwiseSession)
from composable_upgrades.run.lanes import (
    BARRIER, PLAYING, LanePlan, install_barrier_plugin, lane_forks, lane_playbook,
    lane_steps)
from composable_upgrades.run.options import RunOptions, ansible_command
from composable_upgrades.state.results import REPRODUCE_SCRIPT

#: ansible-playbook's exit code when ansible-runner could not start it.
_NOT_FOUND = 127
#: ansible-runner's status of a run its cancel callback stopped.
_CANCELED = "canceled"
#: Seconds between two checks of the stop request while events are awaited.
_POLL = 0.05


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


@dataclass
class Lane:
    """One running lane: its plan, process, events and where it stands.

    Barrier ``i`` comes before ``plan.steps[i]``: a lane that has reached
    barrier ``released`` has finished every step it was let into.
    """

    plan: LanePlan
    #: The hosts still playing, as the last barrier reported them.
    playing: frozenset[str]
    events: StepEvents | None = None
    released: int = 0
    reached: int = 0
    ended: bool = False
    rc: int | None = None
    status: str | None = None
    cancel: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def next_step(self) -> int | str | None:
        """The step the lane may be let into next (None: no step left)."""
        steps = self.plan.steps
        return steps[self.released] if self.released < len(steps) else None

    @property
    def settled(self) -> bool:
        """Whether the lane has finished the steps it was let into."""
        return self.ended or self.reached > self.released


class LaneSession:
    """The lanes of one batch: see :mod:`.lanes`.

    Events of every lane's process come through one queue and are handled in
    the calling thread, so records reach the run's sink in order per lane.
    """

    def __init__(self, executor: AnsibleExecutor, job: BatchJob) -> None:
        self.executor = executor
        self.job = job
        self.stage: PreparedStage = executor.plan.stage(job.stage)
        self.lane_dir = os.path.join(executor.run_dir, "lanes")
        self.gate_dir = os.path.join(self.lane_dir, f"batch{job.batch}-barriers")
        os.makedirs(self.gate_dir, exist_ok=True)
        install_barrier_plugin(self.lane_dir)
        self.events: queue.Queue[tuple[Lane, str, Any]] = queue.Queue()
        self.lanes: dict[str, Lane] = {}
        self.started = 0
        batch = set(job.hosts)
        self.by_role = {play.role: len(batch.intersection(play.hosts))
                        for step in self.stage.steps for play in step.plays}

    # -- the BatchSession protocol -------------------------------------------

    def run_step(self, job: StepJob, callbacks: StepCallbacks) -> StepReport:
        """Release the step's waves one after the other; see :mod:`.lanes`."""
        self.executor.note_step(job)
        step = self.stage.step(job.step)
        hosts = set(job.hosts)
        wanted = {play.role: hosts.intersection(play.hosts) for play in step.plays}
        report = _Report()
        # The records in the order they came, across the lanes (as the sink
        # got them).
        given = callbacks
        callbacks = StepCallbacks(
            task=given.task, stop_now=given.stop_now,
            record=lambda record: (report.records.append(record),
                                   given.record(record))[-1])
        for wave in step.waves:
            roles = [r for r in wave if wanted.get(r)]
            lanes = [self.lane_for(role, job.step, frozenset(wanted[role]), callbacks)
                     for role in roles]
            for lane in lanes:
                lane.events.step = job.step
                lane.events.callbacks = _naming_role(callbacks, lane.plan.role) \
                    if len(wave) > 1 else callbacks
                lane.events.records = []
                self.release(lane, job.step)
            if not self.wait(lambda: all(lane.settled for lane in lanes), callbacks):
                report.interrupted = True
                break
            for lane in lanes:
                report.add(lane, job.step, wanted[lane.plan.role])
            if report.failed and not self.stage_continues_on_failure():
                break
        return report.done()

    def close(self) -> None:
        """Stop the lanes still waiting for a step; wait for every process."""
        for lane in self.lanes.values():
            if not lane.ended:
                lane.cancel = True
        self.wait(lambda: all(lane.ended for lane in self.lanes.values()), None)
        for lane in self.lanes.values():
            if lane.thread is not None:
                lane.thread.join()

    # -- lanes ---------------------------------------------------------------

    def stage_continues_on_failure(self) -> bool:
        """Whether other plays of a step go on after a host failed: in the
        batched stages only (the others' plays are any_errors_fatal)."""
        return self.stage.kind == StageKind.BATCHED

    def lane_for(self, role: str, step: int | str, hosts: frozenset[str],
                 callbacks: StepCallbacks) -> Lane:
        """The lane that runs ``role``'s play of ``step`` on ``hosts``: the
        current one if it waits for that step with those hosts, else a new one."""
        lane = self.lanes.get(role)
        if (lane is not None and not lane.ended and lane.next_step == step
                and lane.playing == hosts):
            return lane
        if lane is not None and not lane.ended:
            lane.cancel = True
            self.wait(lambda: lane.ended, None)
        return self.start_lane(role, step, hosts, callbacks)

    def start_lane(self, role: str, step: int | str, hosts: frozenset[str],
                   callbacks: StepCallbacks) -> Lane:
        """Start a lane of ``role`` from ``step`` on ``hosts``."""
        import ansible_runner

        self.started += 1
        executor, job = self.executor, self.job
        steps = lane_steps(self.stage, role, job.steps, step)
        ordered = tuple(h for h in job.hosts if h in hosts)
        plan = LanePlan(
            name=f"batch{job.batch}-{role}-{self.started}", role=role, hosts=ordered,
            steps=steps, forks=lane_forks(self.total_forks(), self.stage, role,
                                          len(ordered), self.by_role, steps))
        path = os.path.join(self.lane_dir, f"{plan.name}.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(lane_playbook(executor.plan, self.stage, plan, self.gate_dir,
                                       os.getpid()))
        lane = Lane(plan=plan, playing=hosts)
        lane.events = StepEvents(
            run_id=job.run_id, stage=job.stage, batch=job.batch, step=step,
            callbacks=callbacks, roles=executor.roles, task_index=executor.task_index,
            barrier=BARRIER, on_barrier=lambda task, data: _at_barrier(lane, task, data),
            scrub=executor.plan.scrub)
        argv = ansible_command(
            RunOptions.build(executor.options(job.options, ordered), forks=plan.forks),
            binary=executor.binary, inventory=executor.inventory, hosts=ordered,
            playbook=path)
        try:
            thread, _ = ansible_runner.run_async(
                **executor.runner_arguments(argv, plan.name),
                event_handler=lambda event: self.events.put((lane, "event", event))
                or False,
                cancel_callback=lambda: lane.cancel,
                finished_callback=lambda runner: self.events.put(
                    (lane, "end", (runner.rc, runner.status))))
        except Exception as exc:  # ansible-runner raises plain exceptions
            raise RunError(f"cannot run ansible-playbook for {role}: {exc}",
                           stage=job.stage, step=step) from exc
        lane.thread = thread
        self.lanes[role] = lane
        return lane

    def total_forks(self) -> int:
        """The run's forks, which the lanes of a wave share."""
        forks = self.job.options.forks or self.executor.env.get("ANSIBLE_FORKS")
        try:
            return max(1, int(forks or 5))
        except ValueError:
            return 5

    def release(self, lane: Lane, step: int | str) -> None:
        """Let ``lane`` into ``step``."""
        path = lane.plan.gate_file(self.gate_dir, step)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write("go\n")
        os.replace(path + ".tmp", path)
        lane.released += 1

    def wait(self, until: Callable[[], bool],
             callbacks: StepCallbacks | None) -> bool:
        """Handle the lanes' events until ``until()``; False if a stop cut it
        short (every lane is then cancelled and ended)."""
        stopping = False
        while not until():
            if callbacks is not None and not stopping and callbacks.stop_now():
                stopping = True
                for lane in self.lanes.values():
                    lane.cancel = True
                until = lambda: all(lane.ended for lane in self.lanes.values())  # noqa: E731
            try:
                lane, kind, payload = self.events.get(timeout=_POLL)
            except queue.Empty:
                self.bury_dead_lanes()
                continue
            self.handle(lane, kind, payload)
        return not stopping

    def bury_dead_lanes(self) -> None:
        """End the lanes whose thread died without saying so (ansible-runner
        failed before its finished callback): an exit without stats."""
        for lane in self.lanes.values():
            if not lane.ended and lane.thread is not None and not lane.thread.is_alive() \
                    and self.events.empty():
                lane.rc, lane.status, lane.ended = 1, "error", True

    def handle(self, lane: Lane, kind: str, payload: Any) -> None:
        """One event of ``lane``'s process."""
        if kind == "event":
            lane.events.handle(payload)
        else:
            lane.rc, lane.status = payload
            lane.ended = True
            self.executor.forget_command(lane.plan.name)


def _naming_role(callbacks: StepCallbacks, role: str) -> StepCallbacks:
    """``callbacks`` whose task names say the role: plays run at once."""
    return StepCallbacks(task=lambda name: callbacks.task(f"{role}: {name}"),
                         record=callbacks.record, stop_now=callbacks.stop_now)


def _at_barrier(lane: Lane, task: str, data: Mapping[str, Any]) -> None:
    """A result of a barrier task of ``lane``: at "playing", the hosts left."""
    if task.endswith(PLAYING):
        res = data.get("res") or {}
        lane.playing = frozenset(res.get("ansible_play_hosts") or ())
        lane.reached += 1


class _Report:
    """A step's report, put together from its lanes."""

    def __init__(self) -> None:
        self.rc = 0
        self.failed: set[str] = set()
        self.interrupted = False
        self.records: list = []
        self.output: list[str] = []
        self.notes: list[str] = []

    def add(self, lane: Lane, step: int | str, hosts: Iterable[str]) -> None:
        """What ``lane`` did of ``step`` on ``hosts``."""
        hosts = set(hosts)
        if not lane.ended:
            self.failed |= hosts - lane.playing
            return
        rc = lane.rc if isinstance(lane.rc, int) else 1
        if rc == _NOT_FOUND:
            raise RunError(f"ansible-playbook not found ({lane.plan.name})",
                           step=step, rc=rc)
        stats = lane.events.stats_failed
        if stats is not None:
            # The process's exit code covers every step it ran (4 for a host
            # unreachable two steps ago): this step's failures are its hosts
            # that the final stats count.
            failed = hosts & stats
        else:
            failed = hosts & lane.events.failed
            if rc != 0 and not failed:
                # The process ended without stats or a host failing (a
                # syntax error, a missing module, a crash): the step did not
                # run on its hosts.
                failed = hosts
                said = " / ".join(line for line in lane.events.output if line)
                self.notes.append(f"ansible-playbook exited {rc} at step {step} "
                                  f"({lane.plan.role}): {said or 'no output'}")
        self.failed |= failed
        if failed and rc != 0:
            self.rc = self.rc or rc
        self.output.extend(lane.events.output)

    def done(self) -> StepReport:
        """The report."""
        return StepReport(rc=self.rc if not self.interrupted else 254,
                          failed=frozenset(() if self.interrupted else self.failed),
                          interrupted=self.interrupted, records=tuple(self.records),
                          output=tuple(self.output[-3:]), notes=tuple(self.notes))


def start_run_folder(run_dir: str, plan_path: str, env: Mapping[str, str],
                     header: str) -> None:
    """Create a run's folder: ansible-runner's settings, and the reproduce
    script's start (``header`` as comments, the run's environment exported)."""
    try:
        os.makedirs(run_dir)
    except OSError as exc:
        raise WorkdirError(f"cannot create the run folder: {exc.strerror}",
                           path=os.path.dirname(run_dir)) from exc
    write_runner_settings(run_dir)
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    path = os.path.join(run_dir, REPRODUCE_SCRIPT)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"#!/usr/bin/env bash\n{comments}set -euo pipefail\n"
                     f"cd {shlex.quote(plan_path)}\n{exports}")
    os.chmod(path, 0o755)


def write_runner_settings(run_dir: str) -> None:
    """ansible-runner settings of every step of a run.

    No stdout file: it would hold task output unredacted, and the records
    stream to the run history instead. (ansible-runner reads its settings
    from ``env/settings`` and drops any passed in when that file is missing.)
    """
    os.makedirs(os.path.join(run_dir, "env"))
    with open(os.path.join(run_dir, "env", "settings"), "w", encoding="utf-8") as handle:
        # A short pexpect timeout: the cancel callback is asked that often.
        handle.write('{"suppress_output_file": true, "pexpect_timeout": 0.2}\n')



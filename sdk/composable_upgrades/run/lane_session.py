"""The lanes of one batch as its session: gates, waves and the step's report.

A lane waits at a barrier before each of its steps (see :mod:`.lanes`);
:class:`LaneSession` lets it in by writing its gate file, a wave of a step at
a time, learns at each barrier which of the lane's hosts are still playing,
and puts each step's report together from the lanes that ran it. Starting,
cancelling and listening to the lanes' processes is
:class:`~.lane_processes.LaneProcesses`'.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from composable_upgrades.errors import RunError
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.prepared import PreparedPlan, PreparedStage
from composable_upgrades.run.ansible_events import StepEvents, TaskIndex
from composable_upgrades.run.executor import BatchJob, StepCallbacks, StepJob, StepReport
from composable_upgrades.run.lane_processes import Lane, LaneProcesses
from composable_upgrades.run.lanes import (
    BARRIER, PLAYING, LanePlan, install_barrier_plugin, lane_forks, lane_playbook,
    lane_steps)
from composable_upgrades.run.options import RunOptions, ansible_command

#: ansible-playbook's exit code when ansible-runner could not start it.
_NOT_FOUND = 127


class LaneExecutor(Protocol):
    """What a lane session needs of its executor
    (:class:`~.ansible.AnsibleExecutor`)."""

    plan: PreparedPlan
    run_dir: str
    env: Mapping[str, str]
    binary: str
    inventory: str
    roles: Mapping[str, str]
    task_index: TaskIndex

    def note_step(self, job: StepJob) -> None: ...

    def options(self, options: RunOptions, hosts: Iterable[str]) -> RunOptions: ...

    def runner_arguments(self, argv: list[str], ident: str) -> dict[str, Any]: ...

    def forget_command(self, ident: str) -> None: ...


class LaneSession:
    """The lanes of one batch: see :mod:`.lanes`.

    Events of every lane's process come through one queue and are handled in
    the calling thread, so records reach the run's sink in order per lane.
    """

    def __init__(self, executor: LaneExecutor, job: BatchJob) -> None:
        self.executor = executor
        self.job = job
        self.stage: PreparedStage = executor.plan.stage(job.stage)
        self.lane_dir = os.path.join(executor.run_dir, "lanes")
        self.gate_dir = os.path.join(self.lane_dir, f"batch{job.batch}-barriers")
        os.makedirs(self.gate_dir, exist_ok=True)
        install_barrier_plugin(self.lane_dir)
        self.processes = LaneProcesses(executor.forget_command)
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
            if not self.processes.wait(lambda: all(lane.settled for lane in lanes),
                                       callbacks):
                report.interrupted = True
                break
            for lane in lanes:
                report.add(lane, job.step, wanted[lane.plan.role])
            if report.failed and not self.stage_continues_on_failure():
                break
        return report.done()

    def close(self) -> None:
        """Stop the lanes still waiting for a step; wait for every process."""
        self.processes.close()

    # -- lanes ---------------------------------------------------------------

    def stage_continues_on_failure(self) -> bool:
        """Whether other plays of a step go on after a host failed: in the
        batched stages only (the others' plays are any_errors_fatal)."""
        return self.stage.kind == StageKind.BATCHED

    def lane_for(self, role: str, step: int | str, hosts: frozenset[str],
                 callbacks: StepCallbacks) -> Lane:
        """The lane that runs ``role``'s play of ``step`` on ``hosts``: the
        current one if it waits for that step with those hosts, else a new one."""
        lane = self.processes.lanes.get(role)
        if (lane is not None and not lane.ended and lane.next_step == step
                and lane.playing == hosts):
            return lane
        if lane is not None and not lane.ended:
            self.processes.stop(lane)
        return self.start_lane(role, step, hosts, callbacks)

    def start_lane(self, role: str, step: int | str, hosts: frozenset[str],
                   callbacks: StepCallbacks) -> Lane:
        """Start a lane of ``role`` from ``step`` on ``hosts``."""
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
            self.processes.start(lane, executor.runner_arguments(argv, plan.name))
        except Exception as exc:  # ansible-runner raises plain exceptions
            raise RunError(f"cannot run ansible-playbook for {role}: {exc}",
                           stage=job.stage, step=step) from exc
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

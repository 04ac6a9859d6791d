"""The dry run: what a run would do, as data, and nothing run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from composable_upgrades.errors import RunError
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.run.ansible import AnsibleExecutor, ansible_playbook_binary
from composable_upgrades.run.nodes import ExecutionNodes
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.streaming import node_command
from composable_upgrades.run.request import RunRequest
from composable_upgrades.state.results import RunResult


@dataclass(frozen=True)
class StepCommand:
    """One ansible-playbook call a run would make: a step of a batch."""

    batch: int
    step: int | str
    hosts: tuple[str, ...]
    argv: tuple[str, ...]
    #: The execution node that would run it (None: this machine).
    node: str | None = None


@dataclass(frozen=True)
class RunPreview:
    """What a run of ``stage`` would do: its hosts, batches, steps, options,
    and the ansible-playbook call of each step of each batch, in order.

    ``environment``: the ANSIBLE_* settings of its calls (forks, SSH
    arguments, plugin paths, the key);
    ``hooks``: the hooks that would run, in order, as (point, batch, hook)
    (batch 0 at the stage's own points; in converge, ``pre_batch`` and
    ``post_batch`` around each host's reboot, numbered by host);
    ``execution_nodes`` and ``estimate`` (seconds) are for later executors.
    """

    stage: str
    kind: StageKind
    hosts: tuple[str, ...]
    batches: tuple[tuple[str, ...], ...]
    steps: tuple[int | str, ...]
    options: RunOptions
    commands: tuple[StepCommand, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    hooks: tuple[tuple[str, int, str], ...] = ()
    execution_nodes: tuple[str, ...] = ()
    estimate: float | None = None


@dataclass
class DryRunResult(RunResult):
    """What ``run_stage(..., dry_run=True)`` returns: a run of nothing, and
    its :class:`RunPreview`."""

    preview: RunPreview | None = None


def _batch_hooks(request: RunRequest, number: int) -> list[tuple[str, int, str]]:
    return [(point, number, h.name) for point in ("pre_batch", "post_batch")
            for h in request.hooks.at(point)]


def _step_commands(request: RunRequest, executor: AnsibleExecutor,
                   nodes: ExecutionNodes | None, assignment: Mapping[str, str],
                   number: int, step: int | str,
                   hosts: tuple[str, ...]) -> list[StepCommand]:
    """The calls that run ``step`` of batch ``number`` on ``hosts``."""
    job = request.job("", number, step, hosts)
    if nodes is None:
        return [StepCommand(batch=number, step=step, hosts=hosts,
                            argv=tuple(executor.command(job)))]
    return [StepCommand(batch=number, step=step, hosts=part, node=name,
                        argv=tuple(node_command(nodes.node(name), job, part)))
            for name, part in nodes.split(assignment, hosts).items()]


def preview_run(plan: PreparedPlan, request: RunRequest,
                env: Mapping[str, str] | None = None, *,
                nodes: ExecutionNodes | None = None) -> RunPreview:
    """The preview of ``request``: every call that a run without failures
    would make (a ``resume`` skips the finished units)."""
    try:
        binary = ansible_playbook_binary()
    except RunError:
        binary = "ansible-playbook"  # the dry run shows it all the same
    executor = AnsibleExecutor(plan, "", env=env, binary=binary)
    commands = []
    assignment = nodes.assign(plan, request.hosts) if nodes else {}
    hooks = [("pre_stage", 0, h.name) for h in request.hooks.at("pre_stage")]
    # Converge's batch hooks go around each host's reboot, not its batch.
    around = request.stage.kind != StageKind.CONVERGE
    for number, batch in enumerate(request.batches, start=1):
        hooks += _batch_hooks(request, number) if around else []
        for step in request.steps:
            hosts = request.in_play(step, batch)
            if not hosts:
                continue
            # One host at a time between the hooks, or all together.
            order = request.one_by_one_order(step) if request.one_by_one(step) else ()
            parts = [(order.index(h) + 1, (h,)) for h in hosts] if order \
                else [(0, hosts)]
            for place, part_hosts in parts:
                hooks += _batch_hooks(request, place) if place else []
                commands += _step_commands(request, executor, nodes, assignment,
                                           number, step, part_hosts)
    return RunPreview(stage=request.stage.name, kind=request.stage.kind,
                      hosts=request.hosts, batches=request.batches,
                      steps=request.steps, options=request.options,
                      commands=tuple(commands), environment=dict(executor.env),
                      execution_nodes=tuple(nodes.describe(plan, request.hosts))
                      if nodes else (),
                      hooks=tuple(hooks + [("post_stage", 0, h.name)
                                           for h in request.hooks.at("post_stage")]))

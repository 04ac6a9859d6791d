"""Before a run: its options checked against the plan, its hosts, steps and
batches decided, its SSH key found, and the stages it needs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace

from composable_upgrades.errors import OptionError, StageError
from composable_upgrades.model.fleet import Fleet
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.prepared import PreparedPlan, PreparedStage
from composable_upgrades.run.executor import StepJob
from composable_upgrades.run.limits import batches_of, select_hosts
from composable_upgrades.run.environment import run_environment
from composable_upgrades.run.options import RunOptions
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.workdir import Workdir


@dataclass(frozen=True)
class RunRequest:
    """What a run will do: its stage, hosts, steps, batches and options.

    ``options.steps`` holds the steps chosen by ``steps`` or ``playbooks``.
    """

    stage: PreparedStage
    hosts: tuple[str, ...]
    steps: tuple[int | str, ...]
    batches: tuple[tuple[str, ...], ...]
    options: RunOptions

    def in_play(self, step: int | str, hosts: Iterable[str]) -> tuple[str, ...]:
        """The ``hosts`` that a play of ``step`` runs on."""
        playing = self.stage.step(step).hosts
        return tuple(h for h in hosts if h in playing)

    def job(self, run_id: str, batch: int, step: int | str,
            hosts: Iterable[str]) -> StepJob:
        """The job of running ``step`` of batch ``batch`` on ``hosts``."""
        return StepJob(run_id=run_id, stage=self.stage.name, batch=batch, step=step,
                       hosts=tuple(hosts), playbook=self.stage.step(step).playbook,
                       options=self.options)


def plan_run(plan: PreparedPlan, stage: str,
             options: RunOptions | None = None) -> RunRequest:
    """Check a run's options against ``plan`` and decide hosts, steps, batches."""
    options = options or RunOptions()
    target = plan.stage(stage)
    _check_batching(target, options)
    named = _named_steps(target, options)
    if not target.hosts:
        raise StageError(f"stage {stage!r} has no hosts", stage=stage)
    hosts = select_hosts(plan, target.hosts, options.limit)
    if not hosts:
        raise StageError(f"--limit {options.limit} matches no host of stage "
                         f"{stage!r}", stage=stage)
    batches = (batches_of(hosts, options.batch_size)
               if target.kind == StageKind.BATCHED else [tuple(hosts)])
    return RunRequest(stage=target, hosts=tuple(hosts),
                      steps=tuple(s for s in target.numbers
                                  if not named or s in named),
                      batches=tuple(batches),
                      options=replace(options, steps=named or None))


def _check_batching(stage: PreparedStage, options: RunOptions) -> None:
    if stage.kind != StageKind.BATCHED:
        for value, option in ((options.batch_size, "--batch-size"),
                              (options.max_fail_percentage, "--max-fail-percentage")):
            if value is not None:
                raise StageError(f"stage {stage.name!r} runs all its hosts "
                                 f"together and stops at the first failure; "
                                 f"{option} applies to the batched stages",
                                 stage=stage.name)
    share = options.max_fail_percentage
    if share is not None and not 0 <= share <= 100:
        raise OptionError("must be between 0 and 100", option="--max-fail-percentage",
                          value=share)


def _named_steps(stage: PreparedStage, options: RunOptions) -> list[int | str]:
    """The steps ``options`` name, by number or by playbook (none: all)."""
    steps = list(options.steps or ())
    playbooks = list(options.playbooks or ())
    if playbooks and playbooks != ["all"]:
        by_name = {name: step for step, name in stage.step_playbooks.items()}
        unknown = [p for p in playbooks if os.path.basename(p) not in by_name]
        if unknown:
            raise StageError(f"--playbook {unknown[0]}: not a step playbook of "
                             f"stage {stage.name!r} ({', '.join(by_name)})",
                             stage=stage.name)
        steps = [by_name[os.path.basename(p)] for p in playbooks]
    unknown = [s for s in steps if s not in stage.numbers]
    if unknown:
        raise StageError(f"stage {stage.name!r} has no step {unknown[0]!r} (steps: "
                         f"{', '.join(map(str, stage.numbers))})", stage=stage.name)
    return steps


def check_fleet(plan: PreparedPlan, fleet: Fleet | str | None) -> None:
    """Refuse a ``fleet`` other than the one the plan was prepared for."""
    if fleet is None:
        return
    root = fleet.root if isinstance(fleet, Fleet) else Fleet.at(fleet).root
    planned = plan.fleet_root
    if planned is None:
        raise OptionError(f"the plan in {plan.path} was prepared without a "
                          "fleet; prepare it again with --fleet to rehearse",
                          option="--fleet", value=root)
    if os.path.realpath(planned) != os.path.realpath(root):
        raise OptionError(f"does not match the fleet the plan was prepared "
                          f"for ({planned})", option="--fleet", value=root)


#: Where TripleO keeps the key for its overcloud hosts, in the order
#: python-tripleoclient looks ({working_dir} is the stack's working dir).
SSH_KEY_FILES = ("{working_dir}/ssh_private_key", "~/.ssh/id_rsa_tripleo",
                 "~/.ssh/id_rsa")


def ssh_key_env(working_dir: str, plan: PreparedPlan,
                ssh_key: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``ANSIBLE_PRIVATE_KEY_FILE`` for a run, as an environment to add.

    ``ssh_key`` if given (it must exist); else the first of
    :data:`SSH_KEY_FILES` that exists; nothing on a local-connection
    rehearsal fleet (an SSH fleet's hosts take a key like real ones).
    """
    if ssh_key is not None:
        path = os.path.abspath(os.path.expanduser(os.fspath(ssh_key)))
        if not os.path.isfile(path):
            raise OptionError("no such file", option="--overcloud-ssh-key", value=path)
        return {"ANSIBLE_PRIVATE_KEY_FILE": path}
    if plan.is_rehearsal and plan.fleet_transport == "local":
        return {}
    for pattern in SSH_KEY_FILES:
        path = os.path.expanduser(pattern.format(working_dir=working_dir))
        if os.path.isfile(path):
            return {"ANSIBLE_PRIVATE_KEY_FILE": os.path.abspath(path)}
    return {}


def checked_request(workdir: Workdir, stage: str, options: RunOptions, *,
                    fleet: Fleet | str | None = None,
                    ssh_key: str | os.PathLike[str] | None = None
                    ) -> tuple[PreparedPlan, dict[str, str], RunRequest]:
    """The plan, the run's environment and its request, all checked."""
    plan = workdir.load_plan()
    check_fleet(plan, fleet)
    env = run_environment(options, extra=ssh_key_env(workdir.path, plan, ssh_key))
    return plan, env, plan_run(plan, stage, options)


def stage_guard(plan: PreparedPlan, journal: Journal, stage: PreparedStage
                ) -> list[tuple[str, list[str]]]:
    """Earlier stages that must be finished before ``stage``: (name, pending)."""
    if stage.kind in (StageKind.EXTERNAL, StageKind.CONTROLPLANE):
        return []
    progress = journal.progress(plan.stages)
    if stage.kind == StageKind.BATCHED:
        required = [s for s in plan.stages if s.kind == StageKind.CONTROLPLANE]
    else:  # converge: every upgrade stage
        required = [s for s in plan.stages
                    if s.kind in (StageKind.CONTROLPLANE, StageKind.BATCHED)]
    return [(s.name, progress[s.name].pending) for s in required
            if progress[s.name].pending]

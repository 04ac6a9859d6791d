"""The upgrade plan: stages -> steps -> role plays -> services -> tasks.

:func:`build_plan` decides everything that runs and in which order; the
playbooks and the inventory written by :mod:`.prepare` are a rendering of it,
and ``plan.json`` is its serialised form (:meth:`UpgradePlan.to_dict`), read
back as a :class:`~.prepared.PreparedPlan`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from composable_upgrades.planning import stages as stagelib
from composable_upgrades.planning.prepared import UNATTRIBUTED, PreparedPlan
from composable_upgrades.planning.stages import unknown_stage
from composable_upgrades.planning.converge_work import load_converge_work
from composable_upgrades.planning.dependencies import Dependencies, order_tasks, stable_order
from composable_upgrades.model.deployment import EXTERNAL_KIND, Deployment
from composable_upgrades.model.names import OVERCLOUD_GROUP, UNDERCLOUD_GROUP
from composable_upgrades.model.tasks import Task
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.model.steps import STEP_RANGES, step_name
from composable_upgrades.planning.variables import select_vars, used_names

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from composable_upgrades.model.fleet import Fleet

PLAN_FORMAT = 1
UNDERCLOUD_HOST = "undercloud"

#: Stage kinds (aliases of :class:`.kinds.StageKind`, kept for older callers).
KIND_CONTROLPLANE = StageKind.CONTROLPLANE
KIND_BATCHED = StageKind.BATCHED
KIND_EXTERNAL = StageKind.EXTERNAL
KIND_CONVERGE = StageKind.CONVERGE


#: The user TripleO's own inventory reaches overcloud hosts as.
DEFAULT_SSH_USER = "tripleo-admin"

@dataclass(frozen=True)
class RolePlay:
    """The tasks one role (or group) runs at one step, in order.

    ``serial`` set: the play's hosts go through it that many at a time.
    """

    role: str
    hosts: tuple[str, ...]
    tasks: tuple[Task, ...]
    serial: int | None = None

    @property
    def services(self) -> list[str | None]:
        """Services of the tasks, in order of first task (None: unattributed)."""
        return list(dict.fromkeys(t.service for t in self.tasks))


@dataclass(frozen=True)
class Step:
    """One step of a stage: a barrier over the stage's (or batch's) hosts.

    Upgrade steps are numbered; the converge stage's deployment-wide phases
    after its post-upgrade steps are named (``rpc_unpin`` ...).
    """

    number: int | str
    plays: tuple[RolePlay, ...]
    #: The roles whose plays run at the same time, wave after wave; no
    #: dependency orders two plays of one wave (default: one play a wave).
    waves: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.waves:
            object.__setattr__(self, "waves", tuple((p.role,) for p in self.plays))


@dataclass(frozen=True)
class Stage:
    """A group of roles upgraded together, step by step."""

    name: str
    kind: StageKind
    task_kind: str
    roles: tuple[str, ...]
    hosts: tuple[str, ...]
    steps: tuple[Step, ...]

    @property
    def playbook(self) -> str:
        """File name of the stage playbook in the plan folder."""
        return f"{self.name}.yaml"

    def step_playbook(self, step: int | str) -> str:
        """File name of the playbook of one step of this stage."""
        return step_playbook_name(self.name, step)


def step_playbook_name(stage: str, step: int | str) -> str:
    """File name of the playbook of ``step`` of ``stage``."""
    return f"{step_name(stage, step)}.yaml"


@dataclass(frozen=True)
class UpgradePlan:
    """What an upgrade runs, where and in which order."""

    deployment: Deployment
    stages: tuple[Stage, ...]
    dependencies: Dependencies
    stage_source: str
    warnings: tuple[str, ...] = ()
    fleet: Fleet | None = None
    global_vars: Mapping[str, Any] = field(default_factory=dict, repr=False,
                                           compare=False)
    role_vars: Mapping[str, Mapping[str, Any]] = field(
        default_factory=dict, repr=False, compare=False)
    withheld_vars: tuple[str, ...] = ()
    variant: str | None = None  # "noop" for a no-op rehearsal
    ssh_user: str = DEFAULT_SSH_USER

    @property
    def stack(self) -> str:
        """Name of the overcloud stack."""
        return self.deployment.stack

    def stage(self, name: str) -> Stage:
        """The stage called ``name``; :class:`StageError` if none."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise unknown_stage(name, [s.name for s in self.stages])

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data: what ``plan.json`` holds."""
        deployment = self.deployment
        stage_of = {r: s.name for s in self.stages
                    if s.kind in (StageKind.CONTROLPLANE, StageKind.BATCHED)
                    for r in s.roles}
        return {
            "format": PLAN_FORMAT,
            "stack": self.stack,
            "variant": self.variant,
            "stages": [_stage_dict(s) for s in self.stages],
            "roles": {r.name: {"stage": stage_of.get(r.name),
                               "services": list(r.services),
                               "hosts": list(r.hosts)}
                      for r in deployment.roles},
            "hosts": {h.name: {"role": h.role, "fqdn": h.fqdn,
                               "address": h.address}
                      for h in deployment.hosts.values()},
            "dependencies": self.dependencies.to_dict(),
            "dependency_sources": list(self.dependencies.sources),
            "stage_source": self.stage_source,
            "vars": {"global": list(self.global_vars),
                     "roles": {r: list(v) for r, v in self.role_vars.items()},
                     "withheld": list(self.withheld_vars)},
            "warnings": list(self.warnings),
            "fleet": self.fleet.to_dict() if self.fleet else None,
            "ssh_user": self.ssh_user,
        }

    def prepared(self) -> PreparedPlan:
        """The plan as typed plan data, as a prepare would write it."""
        return PreparedPlan.from_dict(self.to_dict())

    def rows(self, by: str = "step", *, stage: str | None = None,
             role: str | None = None) -> tuple[list[str], list[tuple]]:
        """Columns and rows of the plan table (see :meth:`.PreparedPlan.rows`)."""
        return self.prepared().rows(by, stage=stage, role=role)

    def to_frame(self) -> pandas.DataFrame:
        """One row per stage/step/role/service with task counts."""
        return self.prepared().to_frame()


def _stage_dict(stage: Stage) -> dict[str, Any]:
    return {
        "name": stage.name, "kind": stage.kind, "task_kind": stage.task_kind,
        "roles": list(stage.roles), "hosts": list(stage.hosts),
        "playbook": stage.playbook,
        "steps": [{
            "step": step.number,
            "playbook": stage.step_playbook(step.number),
            "waves": [list(wave) for wave in step.waves],
            "plays": [{
                "role": play.role, "hosts": list(play.hosts),
                "serial": play.serial,
                "services": [s or UNATTRIBUTED for s in play.services],
                "tasks": [{"name": t.name, "service": t.service,
                           "index": t.index, "never": t.never,
                           "binding": t.binding.source}
                          for t in play.tasks],
            } for play in step.plays],
        } for step in stage.steps],
    }


def build_plan(deployment: Deployment, *,
               stages_file: str | os.PathLike[str] | None = None,
               dependencies: Dependencies | None = None,
               converge_file: str | os.PathLike[str] | None = None,
               fleet: Fleet | None = None,
               ssh_user: str = DEFAULT_SSH_USER) -> UpgradePlan:
    """Plan the upgrade of ``deployment``; its hosts are reached as ``ssh_user``."""
    dependencies = dependencies or Dependencies.builtin()
    assignment = stagelib.assign_stages(deployment, stages_file)
    warnings: list[str] = []
    stages: list[Stage] = []
    if deployment.external_upgrade_tasks:
        stages.append(_external_stage(deployment, dependencies))
    upgrade_roles: list[str] = []
    for name, roles in assignment.stages:
        kind = (StageKind.CONTROLPLANE if name == stagelib.CONTROLPLANE
                else StageKind.BATCHED)
        stages.append(_role_stage(deployment, name, kind, "upgrade_tasks",
                                  roles, dependencies, warnings))
        upgrade_roles.extend(roles)
    converge = _role_stage(deployment, stagelib.CONVERGE, StageKind.CONVERGE,
                           "post_upgrade_tasks", tuple(upgrade_roles),
                           dependencies, warnings)
    work = load_converge_work(deployment, converge_file)
    if fleet is not None and not work.from_outputs:
        # A fleet plays every host on this machine: only the tasks of outputs
        # (declared sandboxed) stay in its sandboxes; other work is recorded.
        work = work.recorded()
        warnings.append(f"rehearsal fleet: the {work.source} are no-op records "
                        "here (they would act on this machine)")
    phases = tuple(
        Step(phase, (RolePlay(OVERCLOUD_GROUP, converge.hosts, tasks,
                              serial=1 if phase == "reboot" else None),))
        for phase, tasks in work.phases if tasks and converge.hosts)
    stages.append(replace(converge, steps=converge.steps + phases))
    for role in deployment.roles:
        if not role.hosts:
            warnings.append(f"role {role.name} has no hosts: nothing of it runs")
    global_vars, role_vars, withheld = _inventory_vars(deployment, stages)
    if work.unmanaged_packages:
        global_vars["unmanaged_packages"] = list(work.unmanaged_packages)
    for name in withheld:
        warnings.append(f"variable {name} is used by tasks but holds secrets: "
                        "left out of the inventory")
    return UpgradePlan(deployment=deployment, stages=tuple(stages),
                       dependencies=dependencies, stage_source=assignment.source,
                       warnings=tuple(warnings), fleet=fleet,
                       global_vars=global_vars, role_vars=role_vars,
                       withheld_vars=tuple(withheld), ssh_user=ssh_user)


def _inventory_vars(deployment: Deployment, stages: Sequence[Stage]
                    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """Variables the planned tasks use: global ones and each role's own."""
    used_by_role: dict[str, set[str]] = {}
    everywhere: set[str] = set()  # used by plays over every role
    for stage in stages:
        for step in stage.steps:
            for play in step.plays:
                names = used_names(t.body for t in play.tasks)
                if play.role == OVERCLOUD_GROUP:
                    everywhere |= names
                else:
                    used_by_role.setdefault(play.role, set()).update(names)
    for role in deployment.roles:
        used_by_role.setdefault(role.name, set()).update(everywhere)
    everything = set().union(*used_by_role.values()) if used_by_role else set()
    global_vars, withheld = select_vars(deployment.global_vars, everything)
    role_vars: dict[str, dict[str, Any]] = {}
    for role in deployment.roles:
        used = used_by_role.get(role.name, set())
        selected, held = select_vars(role.group_vars, used)
        selected.setdefault("tripleo_role_name", role.name)
        if "service_names" in used:
            selected.setdefault("service_names", list(role.services))
        role_vars[role.name] = selected
        withheld.extend(held)
    return global_vars, role_vars, sorted(set(withheld))


def _role_stage(deployment: Deployment, name: str, kind: StageKind, task_kind: str,
                roles: Sequence[str], dependencies: Dependencies,
                warnings: list[str]) -> Stage:
    role_objs = [deployment.role(r) for r in roles]
    steps = []
    for number in STEP_RANGES[task_kind]:
        plays = []
        for role in role_objs:
            if not role.hosts:
                continue
            tasks = [t for t in role.tasks(task_kind) if t.runs_at(number)]
            if tasks:
                ordered = order_tasks(tasks, lambda t: t.service, dependencies)
                plays.append(RolePlay(role.name, role.hosts, tuple(ordered)))
        if plays:
            ordered, waves = _order_plays(plays, dependencies, name, number, warnings)
            steps.append(Step(number, ordered, waves))
    hosts = tuple(h for r in role_objs for h in r.hosts)
    return Stage(name=name, kind=kind, task_kind=task_kind,
                 roles=tuple(r.name for r in role_objs), hosts=hosts,
                 steps=tuple(steps))


def _order_plays(plays: list[RolePlay], dependencies: Dependencies, stage: str,
                 step: int, warnings: list[str]
                 ) -> tuple[tuple[RolePlay, ...], tuple[tuple[str, ...], ...]]:
    """Order the role plays of a step so dependencies run first, and group
    them in waves: a play runs in the wave after the last play it is ordered
    against (either way: a pair the outputs order for a cycle stays apart)."""
    by_role = {p.role: p for p in plays}
    services = {p.role: {s for s in p.services if s} for p in plays}

    def must_follow(a: str, b: str) -> bool:
        # a's service s needs b's service dep; when b runs s too, both run
        # the pair in order inside their own plays, so no order between them.
        return any(dep in services[b] and s not in services[b]
                   for s in services[a] for dep in dependencies.requires(s))

    ordered, dropped = stable_order(list(by_role), must_follow)
    for a, b in dropped:
        warnings.append(
            f"stage {stage} step {step}: roles {a} and {b} depend on each "
            f"other's services; {a} runs first, as in the outputs")
    wave_of: dict[str, int] = {}
    for index, role in enumerate(ordered):
        wave_of[role] = 1 + max((wave_of[before] for before in ordered[:index]
                                 if must_follow(role, before)
                                 or must_follow(before, role)), default=-1)
    waves = tuple(tuple(r for r in ordered if wave_of[r] == w)
                  for w in range(max(wave_of.values()) + 1))
    return tuple(by_role[r] for r in ordered), waves


def _external_stage(deployment: Deployment, dependencies: Dependencies) -> Stage:
    steps = []
    for number in STEP_RANGES[EXTERNAL_KIND]:
        tasks = [t for t in deployment.external_upgrade_tasks if t.runs_at(number)]
        if tasks:
            ordered = order_tasks(tasks, lambda t: t.service, dependencies)
            steps.append(Step(number, (RolePlay(UNDERCLOUD_GROUP, (UNDERCLOUD_HOST,),
                                                tuple(ordered)),)))
    return Stage(name=stagelib.EXTERNAL, kind=StageKind.EXTERNAL,
                 task_kind=EXTERNAL_KIND, roles=(UNDERCLOUD_GROUP,),
                 hosts=(UNDERCLOUD_HOST,), steps=tuple(steps))

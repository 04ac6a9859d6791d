"""A no-op rehearsal of a real plan: what would run where, in which order.

The rehearsal variant keeps the plan's stages, steps, role plays, task order,
step binding and tags, and replaces every task by a ``debug`` no-op that
records its name, service, step and host. Tasks tagged ``never`` are left
out, as Ansible leaves them out of a run that does not ask for their tags;
other conditions are recorded in the no-op's message, not evaluated. Run on a
local fleet of the plan's hosts, it shows the order and the timing of an
upgrade without touching anything.
"""

from __future__ import annotations

from dataclasses import replace

from composable_upgrades.errors import FleetError
from composable_upgrades.planning.noop_tasks import noop_task
from composable_upgrades.planning.plan import RolePlay, Stage, Step, UpgradePlan

def noop_variant(plan: UpgradePlan) -> UpgradePlan:
    """The rehearsal variant of ``plan`` (which must target a fleet)."""
    if plan.fleet is None:
        raise FleetError("a no-op rehearsal runs on a local fleet: prepare it "
                         "with a fleet")
    stages = []
    never = 0
    for stage in plan.stages:
        steps = []
        for step in stage.steps:
            plays = []
            for play in step.plays:
                never += sum(1 for t in play.tasks if t.never)
                tasks = tuple(noop_task(t, step.number) for t in play.tasks
                              if not t.never)
                if tasks:
                    plays.append(RolePlay(play.role, play.hosts, tasks, play.serial))
            if plays:
                kept = {p.role for p in plays}
                waves = tuple(w for w in (tuple(r for r in wave if r in kept)
                                          for wave in step.waves) if w)
                steps.append(Step(step.number, tuple(plays), waves))
        stages.append(Stage(name=stage.name, kind=stage.kind,
                            task_kind=stage.task_kind, roles=stage.roles,
                            hosts=stage.hosts, steps=tuple(steps)))
    return replace(plan, stages=tuple(stages), variant="noop",
                   warnings=plan.warnings + (
                       "no-op rehearsal: every task is replaced by a debug that "
                       f"records it; {never} task{'s' if never != 1 else ''} "
                       "tagged 'never' left out, as a run leaves them out",))

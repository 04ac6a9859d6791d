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

import re
from dataclasses import replace
from typing import Any

from composable_upgrades.errors import UpgradeError
from composable_upgrades.model.deployment import Task
from composable_upgrades.planning.plan import UNATTRIBUTED, RolePlay, Stage, Step, UpgradePlan

_END_RAW = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")


def _raw(text: str) -> str:
    """Text that Ansible shows as is, braces included."""
    return "{% raw %}" + _END_RAW.sub("", text) + "{% endraw %}"


def noop_task(task: Task, step: int | str) -> Task:
    """The no-op that stands for ``task`` at ``step``."""
    when = task.body.get("when")
    conditions = [when] if isinstance(when, (str, bool)) else list(when or [])
    # Ansible templates the message: what comes from the outputs stays raw.
    service = _raw(task.service) if task.service else UNATTRIBUTED
    record = (f"rehearsal | step {step} | {service} | {_raw(task.name)} | "
              "on {{ inventory_hostname }}")
    body: dict[str, Any] = {
        "name": task.name,
        "ansible.builtin.debug": {"msg": record},
    }
    if conditions:
        body["vars"] = {"rehearsal_conditions": [_raw(str(c)) for c in conditions]}
    if task.tags:
        body["tags"] = list(task.tags)
    return replace(task, body=body)


def noop_variant(plan: UpgradePlan) -> UpgradePlan:
    """The rehearsal variant of ``plan`` (which must target a fleet)."""
    if plan.fleet is None:
        raise UpgradeError("a no-op rehearsal runs on a local fleet: prepare it "
                           "with a fleet")
    stages = []
    for stage in plan.stages:
        steps = []
        for step in stage.steps:
            plays = []
            for play in step.plays:
                tasks = tuple(noop_task(t, step.number) for t in play.tasks
                              if not t.never)
                if tasks:
                    plays.append(RolePlay(play.role, play.hosts, tasks, play.serial))
            if plays:
                steps.append(Step(step.number, tuple(plays)))
        stages.append(Stage(name=stage.name, kind=stage.kind,
                            task_kind=stage.task_kind, roles=stage.roles,
                            hosts=stage.hosts, steps=tuple(steps)))
    return replace(plan, stages=tuple(stages), variant="noop",
                   warnings=plan.warnings + ("no-op rehearsal: every task is "
                                             "replaced by a debug that records it",))

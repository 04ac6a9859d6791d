"""What changed between two plans: tasks added, removed or moved; services.

A task is known by its kind (upgrade, post-upgrade, external, converge), its
role (or group), its name and its occurrence among the role's tasks of that
name, so a task that Heat now puts at another step, or whose role moved to
another stage, is *moved*, not removed and added. A task that runs at several
steps (no step binding) is one task with several steps. Tasks that stay in a
step but run in another order among the tasks both plans have there (a
dependency change, a template's reordering) are reported one row each.

The hooks a plan keeps (``prepare --hooks-file``) are compared too: a hook
is known by its point and name (and occurrence there); one that is new,
gone, or whose playbook's content changed is a row.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from composable_upgrades.errors import PlanError, PlanNotFoundError
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.state.workdir import PLAN_FILE, Workdir, load_plan_dir

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from composable_upgrades.planning.plan import UpgradePlan

#: A plan as :func:`plan_diff` takes it.
PlanLike = Union[PreparedPlan, "UpgradePlan", Mapping[str, Any]]

TASK_ADDED = "task added"
TASK_REMOVED = "task removed"
TASK_MOVED = "task moved"
TASK_REORDERED = "task order changed"
SERVICE_ADDED = "service added"
SERVICE_REMOVED = "service removed"
HOOK_ADDED = "hook added"
HOOK_REMOVED = "hook removed"
HOOK_CHANGED = "hook playbook changed"
CHANGES = (SERVICE_REMOVED, SERVICE_ADDED, TASK_REMOVED, TASK_MOVED,
           TASK_REORDERED, TASK_ADDED, HOOK_REMOVED, HOOK_ADDED, HOOK_CHANGED)

#: Columns of :func:`diff_rows`; :func:`plan_diff` names them in snake case.
COLUMNS = ("Change", "Stage", "Role", "Service", "Task", "Old step", "New step",
           "Old stage")

_TaskKey = tuple[str, str, str, int]  # kind, role, name, occurrence


@dataclass(frozen=True)
class _Placed:
    """Where a task is in one plan."""

    stage: str
    service: str | None
    steps: tuple[int | str, ...]
    position: int


def as_prepared(plan: PlanLike) -> PreparedPlan:
    """A prepared plan, plan or plan data (``plan.json`` content) as typed data."""
    if isinstance(plan, PreparedPlan):
        return plan
    if isinstance(plan, Mapping):
        if "stages" not in plan or "roles" not in plan:
            raise PlanError("not a plan: expected the content of plan.json "
                            "(with 'stages' and 'roles')")
        return PreparedPlan.from_dict(plan)
    prepared = getattr(plan, "prepared", None)
    if prepared is None:
        raise PlanError(f"not a plan: {type(plan).__name__}")
    return prepared()


def diff_rows(old: PlanLike, new: PlanLike) -> tuple[list[str], list[tuple]]:
    """Columns and rows of the changes from ``old`` to ``new`` (no pandas)."""
    old_data, new_data = as_prepared(old), as_prepared(new)
    rank = _stage_rank(new_data, old_data)
    rows: list[tuple[tuple, tuple]] = []
    for role, stage, service, change in _service_changes(old_data, new_data):
        rows.append(((rank(stage), role, CHANGES.index(change), 0),
                     (change, stage, role, service, None, None, None, None)))
    before, after = _tasks(old_data), _tasks(new_data)
    for key, was in before.items():
        now = after.get(key)
        if now is None:
            rows.append(((rank(was.stage), key[1], CHANGES.index(TASK_REMOVED),
                          was.position),
                         (TASK_REMOVED, was.stage, key[1], was.service, key[2],
                          _steps(was.steps), None, was.stage)))
        elif now.steps != was.steps or now.stage != was.stage:
            rows.append(((rank(now.stage), key[1], CHANGES.index(TASK_MOVED),
                          now.position),
                         (TASK_MOVED, now.stage, key[1], now.service, key[2],
                          _steps(was.steps), _steps(now.steps), was.stage)))
    for key, now in after.items():
        if key not in before:
            rows.append(((rank(now.stage), key[1], CHANGES.index(TASK_ADDED),
                          now.position),
                         (TASK_ADDED, now.stage, key[1], now.service, key[2],
                          None, _steps(now.steps), None)))
    for (kind, role, step), key, stage, service, position in _reordered(
            old_data, new_data):
        rows.append(((rank(stage), role, CHANGES.index(TASK_REORDERED), position),
                     (TASK_REORDERED, stage, role, service, key[2], step, step, stage)))
    rows.sort(key=lambda item: item[0])
    return list(COLUMNS), [row for _, row in rows] + _hook_rows(old_data, new_data)


def plan_diff(old: PlanLike, new: PlanLike) -> pandas.DataFrame:
    """The changes from ``old`` to ``new``, one row per task or service.

    Each plan is a :class:`~.workdir.PreparedPlan`
    (``Workdir.at(wd).load_plan()``, ``.load_plan("previous")``), an
    :class:`~.plan.UpgradePlan` or plan data as in ``plan.json``. Columns:
    ``change`` (one of :data:`CHANGES`), ``stage`` (where the task or service
    is now; where it was, if removed), ``role``, ``service``, ``task``,
    ``old_step`` and ``new_step`` (a step, or the steps joined by commas for
    a task that runs at several), ``old_stage``. Rows of the kept hooks come
    last: ``task`` is the hook's name, ``old_step`` and ``new_step`` its point.
    """
    import pandas

    columns, rows = diff_rows(old, new)
    names = [c.lower().replace(" ", "_") for c in columns]
    frame = pandas.DataFrame(rows, columns=names)
    for name in ("old_step", "new_step"):  # numbers and names: keep them as is
        index = names.index(name)
        frame[name] = pandas.Series([r[index] for r in rows], dtype=object)
    return frame


def plans_to_compare(working_dir: str | os.PathLike[str],
                     old: str | os.PathLike[str] | None = None,
                     new: str | os.PathLike[str] | None = None
                     ) -> tuple[PreparedPlan, PreparedPlan]:
    """The plans to diff: folders (or ``plan.json`` files) given, else the
    previous and the current plan of ``working_dir``."""
    workdir = Workdir.at(working_dir)
    new_plan = _load(new) if new is not None else workdir.load_plan()
    if old is not None:
        return _load(old), new_plan
    try:
        return workdir.load_plan("previous"), new_plan
    except PlanNotFoundError as exc:
        raise PlanNotFoundError(
            "no previous plan: prepare has not replaced a plan here yet; name "
            "the plan folder to compare with", path=workdir.previous_plan_dir
        ) from exc


def _load(path: str | os.PathLike[str]) -> PreparedPlan:
    path = os.path.abspath(os.fspath(path))
    if os.path.basename(path) == PLAN_FILE and os.path.isfile(path):
        path = os.path.dirname(path)
    return load_plan_dir(path)


def _tasks(plan: PreparedPlan) -> dict[_TaskKey, _Placed]:
    """Every task of the plan, by identity, with its stage and steps."""
    found: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for stage in plan.stages:
        for step in stage.steps:
            number = step.number
            kind = "converge" if isinstance(number, str) else stage.task_kind
            for play in step.plays:
                for task in play.tasks:
                    ident = (kind, play.role, task.name, task.index)
                    entry = found.get(ident)
                    if entry is None:
                        entry = found[ident] = {
                            "stage": stage.name, "service": task.service,
                            "steps": [], "position": len(found)}
                    if number not in entry["steps"]:
                        entry["steps"].append(number)
    # The n-th task of a role with a given name is the same task in both
    # plans, whatever the indexes of the tasks around it.
    by_name: dict[tuple[str, str, str], list[tuple[str, str, str, int]]] = {}
    for ident in found:
        by_name.setdefault(ident[:3], []).append(ident)
    result: dict[_TaskKey, _Placed] = {}
    for name_key, idents in by_name.items():
        for occurrence, ident in enumerate(sorted(idents, key=lambda i: i[3])):
            entry = found[ident]
            result[name_key + (occurrence,)] = _Placed(
                stage=entry["stage"], service=entry["service"],
                steps=tuple(entry["steps"]), position=entry["position"])
    return result


def _orders(plan: PreparedPlan) -> dict[tuple[str, str, int | str], list[tuple]]:
    """The tasks of each (kind, role, step), in run order, as
    ``(key, stage, service, position)`` with keys as :func:`_tasks` gives them."""
    indexes: dict[tuple[str, str, str], set[int]] = {}
    sequences: dict[tuple[str, str, int | str], list[tuple]] = {}
    for stage in plan.stages:
        for step in stage.steps:
            kind = "converge" if isinstance(step.number, str) else stage.task_kind
            for play in step.plays:
                for task in play.tasks:
                    indexes.setdefault((kind, play.role, task.name), set()).add(task.index)
    occurrence = {name + (index,): n for name, found in indexes.items()
                  for n, index in enumerate(sorted(found))}
    position = 0
    for stage in plan.stages:
        for step in stage.steps:
            kind = "converge" if isinstance(step.number, str) else stage.task_kind
            for play in step.plays:
                for task in play.tasks:
                    name = (kind, play.role, task.name)
                    sequences.setdefault((kind, play.role, step.number), []).append(
                        (name + (occurrence[name + (task.index,)],), stage.name,
                         task.service, position))
                    position += 1
    return sequences


def _reordered(old: PreparedPlan, new: PreparedPlan) -> list[tuple]:
    """(place, key, stage, service, position) of each task whose place among
    the tasks both plans have in that step changed."""
    before, after = _orders(old), _orders(new)
    found = []
    for place, now in after.items():
        was = before.get(place)
        if not was:
            continue
        common = {entry[0] for entry in was} & {entry[0] for entry in now}
        old_seq = [entry[0] for entry in was if entry[0] in common]
        new_seq = [entry for entry in now if entry[0] in common]
        if old_seq == [entry[0] for entry in new_seq]:
            continue
        for index, entry in enumerate(new_seq):
            if old_seq[index] != entry[0]:
                found.append((place,) + entry)
    return found


def _service_changes(old: PreparedPlan, new: PreparedPlan
                     ) -> list[tuple[str, str | None, str, str]]:
    """(role, stage, service, change) for services added to or removed from roles."""
    changes = []
    old_roles, new_roles = old.roles, new.roles
    for role in list(new_roles) + [r for r in old_roles if r not in new_roles]:
        was, now = old_roles.get(role), new_roles.get(role)
        before = list(was.services) if was else []
        after = list(now.services) if now else []
        stage = now.stage if now else (was.stage if was else None)
        changes.extend((role, stage, s, SERVICE_REMOVED)
                       for s in before if s not in after)
        changes.extend((role, stage, s, SERVICE_ADDED)
                       for s in after if s not in before)
    return changes


def _hook_rows(old: PreparedPlan, new: PreparedPlan) -> list[tuple]:
    """Rows of the hooks added, removed or whose playbook changed."""
    before, after = _kept_hooks(old), _kept_hooks(new)
    rows = []
    for key, was in before.items():
        if key not in after:
            rows.append((HOOK_REMOVED, None, None, None, key[1], key[0], None, None))
        elif after[key] != was:
            rows.append((HOOK_CHANGED, None, None, None, key[1], key[0], key[0], None))
    rows += [(HOOK_ADDED, None, None, None, key[1], None, key[0], None)
             for key in after if key not in before]
    return rows


def _kept_hooks(plan: PreparedPlan) -> dict[tuple[str, str, int], str | None]:
    """Each kept hook by (point, name, occurrence): its playbook's sha256
    (the built-in's name for a built-in)."""
    found: dict[tuple[str, str, int], str | None] = {}
    for hook in plan.hooks.hooks() if plan.hooks else []:
        occurrence = sum(1 for k in found if k[:2] == (hook.point, hook.name))
        found[(hook.point, hook.name, occurrence)] = hook.sha256 or hook.builtin
    return found


def _stage_rank(*plans: PreparedPlan):
    order: dict[str, int] = {}
    for plan in plans:
        for stage in plan.stages:
            order.setdefault(stage.name, len(order))
    return lambda stage: order.get(stage, len(order)) if stage else len(order)


def _steps(steps: tuple[int | str, ...]) -> int | str:
    return steps[0] if len(steps) == 1 else ", ".join(str(s) for s in steps)

"""A task of the upgrade, as Heat gave it: its step, tags and service.

:func:`make_tasks` checks a task list of the outputs (a role's, RoleConfig's
or the converge work's) and makes :class:`Task` s of it, each bound to its
step (:mod:`.steps`) and attributed to a service (:mod:`.attribution`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.errors import OutputsError
from composable_upgrades.model import attribution
from composable_upgrades.model.steps import StepBinding, bind, is_never, task_tags


@dataclass(frozen=True)
class Task:
    """One entry of a role's (or RoleConfig's) task list, as Heat gave it."""

    kind: str
    role: str | None
    index: int
    name: str
    binding: StepBinding
    tags: tuple[str, ...]
    never: bool
    service: str | None
    evidence: str
    body: Mapping[str, Any] = field(repr=False, compare=False)

    def runs_at(self, step: int) -> bool:
        """True if the task belongs to ``step``."""
        return self.binding.runs_at(step)


def make_tasks(value: Any, *, kind: str, role: str | None,
               services: Sequence[str], source: str, key: str) -> tuple[Task, ...]:
    """Check a task list from ``source`` (at ``key``) and make Tasks of it."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise OutputsError(f"expected a list of tasks, got {type(value).__name__}",
                           source=source, key=key)
    for index, body in enumerate(value):
        if not isinstance(body, Mapping):
            raise OutputsError(f"a task must be a mapping, got {type(body).__name__}",
                               source=source, key=f"{key}[{index}]")
        when = body.get("when")
        if when is not None and not isinstance(when, (str, list, bool)):
            raise OutputsError("expected a string, a list or a boolean",
                               source=source, key=f"{key}[{index}].when")
    found = attribution.attribute(value, services)
    return tuple(
        Task(kind=kind, role=role, index=index, name=display_name(body),
             binding=bind(body), tags=task_tags(body), never=is_never(body),
             service=found[index].service, evidence=found[index].evidence,
             body=body)
        for index, body in enumerate(value))


def display_name(task: Mapping[str, Any]) -> str:
    """The task's name, or a stand-in that says what an unnamed task is."""
    name = task.get("name")
    if isinstance(name, str) and name:
        return name
    if "block" in task:
        first = _first_named(task["block"])
        return f"(unnamed block; first: {first})" if first else "(unnamed block)"
    module = next((k for k in task if k not in _TASK_KEYWORDS), "task")
    return f"(unnamed {module})"


def _first_named(tasks: Any) -> str | None:
    if not isinstance(tasks, list):
        return None
    for task in tasks:
        if isinstance(task, Mapping):
            if isinstance(task.get("name"), str):
                return task["name"]
            inner = _first_named(task.get("block"))
            if inner:
                return inner
    return None


# Task keywords that are not the module (for naming unnamed tasks).
_TASK_KEYWORDS = frozenset({
    "name", "when", "tags", "vars", "become", "become_user", "register",
    "delegate_to", "run_once", "ignore_errors", "failed_when",
    "changed_when", "loop", "with_items", "loop_control", "environment",
    "no_log", "args", "until", "retries", "delay", "notify", "check_mode",
    "any_errors_fatal", "rescue", "always", "block", "throttle",
    "ignore_unreachable", "delegate_facts", "with_dict", "with_sequence",
})

"""Step binding: which steps a TripleO task runs at.

A task is bound to steps by its ``when`` (``step|int == N`` and the variants
THT uses, matched with whitespace removed, as tripleo-common does) or, in the
spec's original form, by ``tags: stepN``. A task with neither runs at every
step. Tasks tagged ``never`` are kept; Ansible runs them only when one of
their tags is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Steps of each kind of task list, as THT's deploy-steps.j2 runs them.
STEP_RANGES: dict[str, range] = {
    "upgrade_tasks": range(0, 6),
    "post_upgrade_tasks": range(0, 4),
    "external_upgrade_tasks": range(0, 3),
}

# ``step|int == 3``, ``(step|int)==3``, ``(step | int) == 3``, ``step == 3``
# once whitespace is gone. tripleo-common searches the joined string items
# of ``when`` for this; so does this module, so both bind the same tasks.
_WHEN_STEP = re.compile(r"\(?step(?:\|int)?\)?==(\d+)")
# Any ``step == <something>``: what follows is read as a step number or not.
_WHEN_STEP_ANY = re.compile(r"(?<![\w.])\(?step(?:\|int)?\)?==(?P<value>[^\s)\]]{0,20})")
_TAG_STEP = re.compile(r"^step(\d+)$")
_SPACE = re.compile(r"\s+")
#: Every step any task list has (upgrade tasks run at 0..5).
ALL_STEPS = range(0, 6)


@dataclass(frozen=True)
class StepBinding:
    """The steps a task runs at; ``steps`` is None for "every step".

    ``problem`` says why the binding is suspect (a step outside
    :data:`ALL_STEPS`, a condition on the step that is no step number): the
    plan warns about it rather than drop the task or run it at every step
    without a word.
    """

    steps: tuple[int, ...] | None
    source: str  # "when", "tags" or "none"
    problem: str | None = None

    def runs_at(self, step: int) -> bool:
        """True if the task belongs to ``step``."""
        return self.steps is None or step in self.steps


def task_tags(task: Mapping[str, Any]) -> tuple[str, ...]:
    """The task's own tags as a tuple of strings (Ansible allows str or list)."""
    tags = task.get("tags")
    if tags is None:
        return ()
    if isinstance(tags, str):
        return tuple(t.strip() for t in tags.split(",") if t.strip())
    if isinstance(tags, list):
        return tuple(str(t) for t in tags)
    return (str(tags),)


def bind(task: Mapping[str, Any]) -> StepBinding:
    """Find the steps ``task`` is bound to."""
    when = task.get("when")
    if when is not None:
        items = when if isinstance(when, list) else [when]
        joined = "".join(_SPACE.sub("", item) for item in items
                         if isinstance(item, str))
        found = _WHEN_STEP.findall(joined)
        unreadable = [m.group("value") for m in _WHEN_STEP_ANY.finditer(joined)
                      if not m.group("value").isdigit()]
        if found:
            return _checked(tuple(sorted({int(n) for n in found})), "when")
        if unreadable:
            # Ansible compares the step with it and never matches: no step.
            return StepBinding((), "when", problem=(
                f"its condition on the step cannot be read as a step number "
                f"(step == {unreadable[0]}): it is planned at no step"))
    tag_steps = sorted({int(m.group(1)) for t in task_tags(task)
                        if (m := _TAG_STEP.match(t))})
    if tag_steps:
        return _checked(tuple(tag_steps), "tags")
    return StepBinding(None, "none")


def _checked(steps: tuple[int, ...], source: str) -> StepBinding:
    outside = [n for n in steps if n not in ALL_STEPS]
    if not outside:
        return StepBinding(steps, source)
    return StepBinding(steps, source, problem=(
        f"bound by its {source} to step {', '.join(map(str, outside))}, outside "
        f"{ALL_STEPS.start}-{ALL_STEPS.stop - 1}: it runs at no step there"))


def is_never(task: Mapping[str, Any]) -> bool:
    """True if the task is tagged ``never`` (runs only when asked by tag)."""
    return "never" in task_tags(task)


def step_name(stage: str, step: int | str) -> str:
    """Name of ``step`` of ``stage``: ``compute_step3``, ``converge_reboot``."""
    return f"{stage}_step{step}" if isinstance(step, int) else f"{stage}_{step}"

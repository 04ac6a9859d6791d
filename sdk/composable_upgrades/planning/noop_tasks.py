"""The no-op that stands for a task in a rehearsal: a ``debug`` that records it.

Used for every task of a no-op rehearsal (:mod:`.noop`), and on any rehearsal
fleet for the tasks that do not come from outputs declared sandboxed (the
built-in converge work): those would act on this machine.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from composable_upgrades.formats.serialize import Unsafe
from composable_upgrades.model.tasks import Task
from composable_upgrades.planning.prepared import UNATTRIBUTED

_END_RAW = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")


def _raw(text: str) -> str:
    """Text that Ansible shows as is, braces included, inside a template."""
    return "{% raw %}" + _END_RAW.sub("", text) + "{% endraw %}"


def noop_task(task: Task, step: int | str) -> Task:
    """The no-op that stands for ``task`` at ``step``.

    Nothing that comes from the outputs is ever templated: the task's name,
    tags and conditions are written ``!unsafe``; the message, a template for
    the host's name, holds the name and service inside a raw block.
    """
    when = task.body.get("when")
    conditions = [when] if isinstance(when, (str, bool)) else list(when or [])
    service = _raw(task.service) if task.service else UNATTRIBUTED
    record = (f"rehearsal | step {step} | {service} | {_raw(task.name)} | "
              "on {{ inventory_hostname }}")
    body: dict[str, Any] = {
        "name": Unsafe(task.name),
        "ansible.builtin.debug": {"msg": record},
    }
    if conditions:
        body["vars"] = {"rehearsal_conditions": [Unsafe(str(c)) for c in conditions]}
    tags = _tags(task)
    if tags:
        body["tags"] = [Unsafe(t) for t in tags]
    return replace(task, body=body)


def _tags(task: Task) -> list[str]:
    """The task's tags, and for a block those of the tasks inside it (but
    ``never``, which only the block's own tags may carry): ``--tags X``
    selects a block whose inner task is tagged X, so it must select its
    no-op too."""
    found = list(task.tags)

    def walk(tasks: Any) -> None:
        for inner in tasks if isinstance(tasks, list) else ():
            if not isinstance(inner, dict):
                continue
            tags = inner.get("tags")
            for tag in [tags] if isinstance(tags, str) else (tags or []):
                if isinstance(tag, str) and tag != "never" and tag not in found:
                    found.append(tag)
            for key in ("block", "rescue", "always"):
                walk(inner.get(key))

    for key in ("block", "rescue", "always"):
        walk(task.body.get(key))
    return found

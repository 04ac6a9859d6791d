"""Variables the upgrade tasks use, so the inventory carries those and no more.

``RoleConfig.global_vars`` and ``RoleGroupVars`` hold far more than the
upgrade tasks read (and ``global_vars`` holds secrets). The inventory gets the
variables whose names appear in the tasks' templates and conditions; values
that are secrets are left out and reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from composable_upgrades.model.redact import is_secret_key, secret_values

# Keys whose string values are raw Jinja expressions rather than templates.
_EXPRESSION_KEYS = frozenset({"when", "failed_when", "changed_when", "until"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def used_names(tasks: Iterable[Mapping[str, Any]]) -> set[str]:
    """Identifiers that appear in the templates and conditions of ``tasks``.

    A superset of the variables read: callers intersect it with the
    variables they could provide.
    """
    names: set[str] = set()
    stack: list[tuple[Any, bool]] = [(task, False) for task in tasks]
    while stack:
        value, expression = stack.pop()
        if isinstance(value, str):
            if expression or "{{" in value or "{%" in value:
                names.update(_IDENTIFIER.findall(value))
        elif isinstance(value, Mapping):
            stack.extend((v, isinstance(k, str) and k in _EXPRESSION_KEYS)
                         for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, expression) for v in value)
    return names


def select_vars(available: Mapping[str, Any], names: set[str]
                ) -> tuple[dict[str, Any], list[str]]:
    """The variables of ``available`` named in ``names``, minus secrets.

    Returns the selected variables (in ``available``'s order) and the sorted
    names left out because they are, or contain, secrets.
    """
    selected: dict[str, Any] = {}
    withheld: list[str] = []
    for key, value in available.items():
        if key not in names:
            continue
        if is_secret_key(key) or secret_values(value):
            withheld.append(key)
        else:
            selected[key] = value
    return selected, sorted(withheld)

"""Variables the upgrade tasks use, so the inventory carries those and no more.

``RoleConfig.global_vars`` and ``RoleGroupVars`` hold far more than the
upgrade tasks read (and ``global_vars`` holds secrets). The inventory gets the
variables that the tasks' templates and conditions read, as Jinja itself finds
them; values that are secrets are left out and reported.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from composable_upgrades.model.redact import is_secret_key, secret_values

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

# Keys whose string values are bare Jinja expressions (Ansible adds the
# ``{{ }}``) rather than templates.
_EXPRESSION_KEYS = frozenset({"when", "failed_when", "changed_when", "until"})


def _never_called(*args: Any, **kwargs: Any) -> None:
    """Stands for a filter or test of Ansible's; templates are never rendered."""


class _AnyName(dict):  # type: ignore[type-arg]
    """Filters or tests under any name: finding a template's variables
    compiles it, and compiling fails on a name the environment lacks."""

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(key, _never_called)


@functools.cache
def _jinja() -> jinja2.Environment:
    """The environment templates are parsed in (jinja2 imported when first
    needed: it is a third of the SDK's import time)."""
    import jinja2

    env = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    env.filters = _AnyName(env.filters)
    env.tests = _AnyName(env.tests)
    return env


@functools.lru_cache(maxsize=4096)
def _template_names(source: str) -> frozenset[str]:
    """The variables a template reads; none when it does not parse (Ansible
    would fail on it before reading any)."""
    from jinja2 import TemplateSyntaxError, meta

    try:
        return frozenset(meta.find_undeclared_variables(_jinja().parse(source)))
    except TemplateSyntaxError:
        return frozenset()


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def used_names(tasks: Iterable[Mapping[str, Any]]) -> set[str]:
    """Variables that the templates and conditions of ``tasks`` read.

    A superset of what a run reads (both sides of a condition count): callers
    intersect it with the variables they could provide.
    """
    names: set[str] = set()
    stack: list[tuple[Any, bool]] = [(task, False) for task in tasks]
    while stack:
        value, expression = stack.pop()
        if isinstance(value, str):
            if _is_template(value):
                names |= _template_names(value)
            elif expression:
                names |= _template_names("{{ " + value + " }}")
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

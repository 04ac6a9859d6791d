"""Service dependencies: "upgrade foo only after bar".

Dependencies are read from YAML (``service: [services it must come after]``):
a built-in TripleO default, and an operator's file whose entries replace the
default's for the services they name. They order a role's tasks within a step
and the role plays of a step.
"""

from __future__ import annotations

import graphlib
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from composable_upgrades.errors import DependencyCycleError, InputFileError
from composable_upgrades.formats.package_data import load_package_yaml
from composable_upgrades.formats.serialize import load_yaml_file

BUILTIN = "built-in dependencies"

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class Dependencies:
    """Service -> the services it must come after; ``sources`` for messages."""

    after: Mapping[str, tuple[str, ...]]
    sources: tuple[str, ...] = (BUILTIN,)
    _closure: dict[str, frozenset[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cycle = _find_cycle(self.after)
        if cycle:
            raise DependencyCycleError(cycle, source=" + ".join(self.sources))

    def requires(self, service: str) -> frozenset[str]:
        """Every service ``service`` must come after, directly or not."""
        cached = self._closure.get(service)
        if cached is None:
            seen: set[str] = set()
            todo = list(self.after.get(service, ()))
            while todo:
                dep = todo.pop()
                if dep not in seen:
                    seen.add(dep)
                    todo.extend(self.after.get(dep, ()))
            cached = self._closure[service] = frozenset(seen)
        return cached

    def to_dict(self) -> dict[str, list[str]]:
        """Plain, sorted data (for plan.json)."""
        return {k: list(v) for k, v in sorted(self.after.items())}

    @classmethod
    def builtin(cls) -> Dependencies:
        """The built-in TripleO default."""
        return cls(after=_parse(load_package_yaml("dependencies.yaml"), BUILTIN))

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *,
             builtin: bool = True) -> Dependencies:
        """The built-in default, with the entries of ``path`` replacing its own."""
        base = cls.builtin() if builtin else cls(after={}, sources=())
        if path is None:
            return base
        path = os.fspath(path)
        data = load_yaml_file(path, "dependencies file")
        merged = dict(base.after)
        merged.update(_parse(data, path))
        return cls(after=merged, sources=base.sources + (path,))


def _parse(data: Any, path: str) -> dict[str, tuple[str, ...]]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InputFileError("expected a mapping of service: [services it "
                             "must come after]", path=path)
    parsed = {}
    for service, after in data.items():
        if isinstance(after, str):
            after = [after]
        if after is None:
            after = []
        if not isinstance(service, str) or not isinstance(after, list) or \
                not all(isinstance(a, str) for a in after):
            raise InputFileError(f"entry {service!r}: expected a list of "
                                 "service names", path=path)
        parsed[service] = tuple(after)
    return parsed


def _find_cycle(after: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as [a, b, ..., a] (each after the next), or None.

    Deterministic: the graph is built in sorted order and the cycle starts at
    its smallest name.
    """
    sorter = graphlib.TopologicalSorter(
        {service: sorted(after[service]) for service in sorted(after)})
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        # graphlib lists each node before the ones that come after it.
        cycle = list(reversed(error.args[1]))[:-1]
        first = cycle.index(min(cycle))
        cycle = cycle[first:] + cycle[:first]
        return cycle + [cycle[0]]
    return None


def stable_order(items: Sequence[T], must_follow: Callable[[T, T], bool]
                 ) -> tuple[list[T], list[tuple[T, T]]]:
    """Order ``items`` so that ``must_follow(a, b)`` puts ``a`` after ``b``.

    Items keep their given order wherever no constraint says otherwise.
    Constraints that cannot all hold (a cycle among the items) are dropped,
    latest first, and returned as ``(a, b)`` pairs so callers can report them.
    """
    index = {item: i for i, item in enumerate(items)}
    preds: dict[T, set[T]] = {item: set() for item in items}
    for a in items:
        for b in items:
            if a != b and must_follow(a, b):
                preds[a].add(b)
    dropped: list[tuple[T, T]] = []
    ordered: list[T] = []
    done: set[T] = set()
    waiting = set(items)
    while waiting:
        ready = [index[i] for i in waiting if preds[i] <= done]
        if not ready:
            # A cycle: release the earliest waiting item, dropping its
            # unmet constraints.
            first = min(waiting, key=index.__getitem__)
            dropped.extend((first, b) for b in sorted(preds[first] - done,
                                                      key=index.__getitem__))
            ready = [index[first]]
        item = items[min(ready)]
        ordered.append(item)
        done.add(item)
        waiting.discard(item)
    return ordered, dropped


def order_tasks(tasks: Sequence[T], service_of: Callable[[T], str | None],
                dependencies: Dependencies) -> list[T]:
    """Reorder one role's tasks of one step by service dependencies.

    A service's tasks stay together and in their order; unattributed tasks
    keep their place; the other slots are filled service by service, in
    dependency order, ties kept in order of first appearance. RoleData lists
    each service's tasks together, so an order that already satisfies the
    dependencies comes back unchanged.
    """
    groups: dict[str, list[T]] = {}
    for task in tasks:
        service = service_of(task)
        if service is not None:
            groups.setdefault(service, []).append(task)
    if len(groups) < 2:
        return list(tasks)
    services, _ = stable_order(
        list(groups), lambda a, b: b in dependencies.requires(a))
    refill = iter(t for s in services for t in groups[s])
    return [task if service_of(task) is None else next(refill) for task in tasks]

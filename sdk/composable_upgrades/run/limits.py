"""``--limit`` and ``--batch-size``: which hosts of a plan an operator means.

A limit is a comma- or colon-separated list of short host names, FQDNs, role
names and globs (``overcloud-novacompute-1*``); an item that starts with
``!`` removes hosts. Each item must match something, so a typo is an error,
not a silently empty run. A batch size is ``N`` hosts, ``N%`` of them, or a
schedule of these (``1,5,20%``, the last repeating, as Ansible's ``serial``);
batches spread each role across them, or keep the hosts of different values
of ``--batch-by`` apart. :func:`stage_batches` is the one place a stage's
hosts become batches.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence

import yaml

from composable_upgrades.errors import OptionError, UnknownHostError
from composable_upgrades.planning.prepared import PreparedPlan

_SPLIT = re.compile(r"[,:]")


def select_hosts(plan: PreparedPlan, candidates: Sequence[str],
                 limit: str | Sequence[str] | None) -> list[str]:
    """The ``candidates`` (in their order) that ``limit`` selects."""
    if not limit:
        return list(candidates)
    items = ([i for part in limit for i in _SPLIT.split(part)]
             if not isinstance(limit, str) else _SPLIT.split(limit))
    items = [i.strip() for i in items if i.strip()]
    roles = {name: role.hosts for name, role in plan.roles.items()}
    names = {name: {name, (info.fqdn or name)} for name, info in plan.hosts.items()}
    for extra in candidates:  # e.g. the undercloud
        names.setdefault(extra, {extra})
    chosen: set[str] = set()
    removed: set[str] = set()
    includes = [i for i in items if not i.startswith("!")]
    for item in items:
        negate = item.startswith("!")
        pattern = item[1:] if negate else item
        matched = _match(pattern, names, roles)
        if not matched:
            raise UnknownHostError(pattern, where="--limit")
        (removed if negate else chosen).update(matched)
    if not includes:
        chosen = set(candidates)
    return [h for h in candidates if h in chosen and h not in removed]


def _match(pattern: str, names: Mapping[str, set[str]],
           roles: Mapping[str, Sequence[str]]) -> set[str]:
    if pattern in roles:
        return set(roles[pattern])
    if any(c in pattern for c in "*?["):
        return {h for h, aliases in names.items()
                if any(fnmatch.fnmatchcase(a, pattern) for a in aliases)}
    return {h for h, aliases in names.items() if pattern in aliases}


#: What ``--batch-size`` takes: ``N``, ``N%``, or a schedule of them
#: (``"1,5,20%"`` or ``[1, 5, "20%"]``).
BatchSize = int | str | Sequence[int | str]


def batch_schedule(batch_size: BatchSize | None) -> tuple[int | str, ...]:
    """The sizes ``--batch-size`` lists, checked: ``()`` for none (one batch).

    Each item is ``N`` hosts or ``N%`` of the stage's hosts, above 0 (and a
    percentage at most 100%); as Ansible's ``serial``, the last one repeats.
    """
    if batch_size is None or batch_size == "":
        return ()
    items = ([p.strip() for p in batch_size.split(",")] if isinstance(batch_size, str)
             else [batch_size] if isinstance(batch_size, int)
             else list(batch_size))
    if not items or any(item == "" for item in items):
        raise OptionError("expected N, N% or a comma-separated list of them "
                          "(1,5,20%)", option="--batch-size", value=repr(batch_size))
    schedule = []
    for item in items:
        batch_hosts(1, item)  # checks it
        text = str(item).strip()
        schedule.append(text if text.endswith("%") else int(text))
    return tuple(schedule)


def batch_sizes(total: int, batch_size: BatchSize | None) -> list[int]:
    """The sizes of the batches of ``total`` hosts: the schedule, its last
    value repeated, the last batch what is left."""
    schedule = batch_schedule(batch_size)
    if not schedule:
        return [total] if total else []
    sizes: list[int] = []
    left = total
    while left > 0:
        item = schedule[min(len(sizes), len(schedule) - 1)]
        size = min(left, batch_hosts(total, item))
        sizes.append(size)
        left -= size
    return sizes


def batches_of(hosts: Sequence[str], batch_size: BatchSize | None,
               roles: Mapping[str, str] | None = None) -> list[tuple[str, ...]]:
    """Split ``hosts`` into batches as ``batch_size`` says (all if None).

    ``batch_size`` is ``N``, ``N%`` or a schedule of them (``1,5,20%``: one
    host, then five, then 20% of ``hosts`` at a time); every batch but the
    last has exactly the size the schedule gives it. Which hosts fill them:
    each role's hosts (``roles``: host -> role) spread across the batches in
    proportion, so a role's hosts go to as many batches as possible; each
    batch lists its hosts in the order given.
    """
    if not hosts:
        return []
    order = _spread(hosts, roles or {})
    rank = {h: i for i, h in enumerate(hosts)}
    batches, at = [], 0
    for size in batch_sizes(len(hosts), batch_size):
        batches.append(tuple(sorted(order[at:at + size], key=rank.__getitem__)))
        at += size
    return batches


def stage_batches(plan: PreparedPlan, hosts: Sequence[str],
                  batch_size: BatchSize | None, *,
                  batch_by: str | None = None) -> list[tuple[str, ...]]:
    """The batches a run of ``hosts`` (of one stage of ``plan``) goes in.

    ``batch_size`` as for :func:`batches_of` (percentages are of ``hosts``);
    roles are spread across batches. ``batch_by`` (``role``, or a host or
    group variable of the plan's inventory: an availability zone, a rack)
    keeps hosts of different values out of the same batch: hosts are taken
    value by value, and a batch ends early, smaller than the schedule says,
    where the hosts of one value run out.
    """
    roles = {h: plan.role_of(h) or "" for h in hosts}
    if not batch_by:
        return batches_of(hosts, batch_size, roles)
    values = roles if batch_by == "role" else host_values(plan, hosts, batch_by)
    groups: dict[object, list[str]] = {}
    for host in hosts:
        groups.setdefault(_key(values.get(host)), []).append(host)
    schedule = batch_schedule(batch_size)
    batches: list[tuple[str, ...]] = []
    for members in groups.values():
        order = _spread(members, roles)
        rank = {h: i for i, h in enumerate(members)}
        while order:
            if schedule:
                item = schedule[min(len(batches), len(schedule) - 1)]
                size = batch_hosts(len(hosts), item)
            else:
                size = len(order)
            batches.append(tuple(sorted(order[:size], key=rank.__getitem__)))
            order = order[size:]
    return batches


def host_values(plan: PreparedPlan, hosts: Sequence[str],
                name: str) -> dict[str, object]:
    """Each of ``hosts``' value of the inventory variable ``name`` (its own,
    else its groups'; missing: None). Refuses a name no host has."""
    try:
        with open(plan.file("inventory.yaml"), encoding="utf-8") as handle:
            inventory = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise OptionError(f"cannot read the plan's inventory: {exc}",
                          option="--batch-by", value=name) from exc
    found: dict[str, object] = {}
    group_vars: dict[str, dict[str, object]] = {}

    def walk(group: Mapping[str, object], inherited: Mapping[str, object]) -> None:
        own = {**inherited, **dict(group.get("vars") or {})}
        for host, host_vars in dict(group.get("hosts") or {}).items():
            merged = {**group_vars.get(host, {}), **own, **dict(host_vars or {})}
            group_vars[host] = merged
        for child in dict(group.get("children") or {}).values():
            walk(child or {}, own)

    for group in dict(inventory).values():
        walk(group or {}, {})
    for host in hosts:
        found[host] = group_vars.get(host, {}).get(name)
    if all(value is None for value in found.values()):
        raise OptionError(f"no host of the run has a variable {name!r}; pass "
                          "'role' or a host or group variable of the inventory",
                          option="--batch-by", value=name)
    return found


def _key(value: object) -> object:
    """A hashable stand-in for an inventory value."""
    return value if isinstance(value, (str, int, float, bool, type(None))) \
        else repr(value)


def batch_hosts(total: int, batch_size: int | str) -> int:
    """How many of ``total`` hosts a ``--batch-size`` of ``N`` or ``N%`` means."""
    text = str(batch_size).strip()
    percent = text.endswith("%")
    try:
        number = float(text[:-1]) if percent else int(text)
    except ValueError as exc:
        raise OptionError("expected a number of hosts (N), a percentage (N%) or "
                          "a comma-separated list of them (1,5,20%)",
                          option="--batch-size", value=repr(batch_size)) from exc
    if number <= 0:
        raise OptionError("expected a number of hosts (N) or a percentage (N%) "
                          "above 0; leave --batch-size out to run every host in "
                          "one batch", option="--batch-size", value=repr(batch_size))
    if percent and number > 100:
        raise OptionError("a percentage of the hosts is at most 100%",
                          option="--batch-size", value=repr(batch_size))
    if percent:
        return max(1, math.ceil(total * number / 100))
    return int(number)


def _spread(hosts: Sequence[str], roles: Mapping[str, str]) -> list[str]:
    """``hosts`` ordered so that each role's hosts are evenly spaced: the
    i-th of a role's k hosts sits at (i + 0.5) / k of the way."""
    by_role: dict[str, list[str]] = {}
    for host in hosts:
        by_role.setdefault(roles.get(host, ""), []).append(host)
    keyed = []
    for role_index, members in enumerate(by_role.values()):
        for i, host in enumerate(members):
            keyed.append(((i + 0.5) / len(members), role_index, host))
    return [host for _, _, host in sorted(keyed)]

"""``--limit`` and ``--batch-size``: which hosts of a plan an operator means.

A limit is a comma- or colon-separated list of short host names, FQDNs, role
names and globs (``overcloud-novacompute-1*``); an item that starts with
``!`` removes hosts. Each item must match something, so a typo is an error,
not a silently empty run. A batch size is ``N`` hosts or ``N%`` of them;
batches spread each role across them.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence

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


def batches_of(hosts: Sequence[str], batch_size: int | str | None,
               roles: Mapping[str, str] | None = None) -> list[tuple[str, ...]]:
    """Split ``hosts`` into batches of ``N`` or ``N%`` hosts (all if None).

    Every batch but the last has exactly that many hosts. Which hosts fill
    them: each role's hosts (``roles``: host -> role) spread across the
    batches in proportion, so a role's hosts go to as many batches as
    possible; each batch lists its hosts in the order given.
    """
    if not hosts:
        return []
    if batch_size is None or batch_size == "":
        return [tuple(hosts)]
    size = batch_hosts(len(hosts), batch_size)
    order = _spread(hosts, roles or {})
    rank = {h: i for i, h in enumerate(hosts)}
    return [tuple(sorted(order[i:i + size], key=rank.__getitem__))
            for i in range(0, len(order), size)]


def batch_hosts(total: int, batch_size: int | str) -> int:
    """How many of ``total`` hosts a ``--batch-size`` of ``N`` or ``N%`` means."""
    text = str(batch_size).strip()
    percent = text.endswith("%")
    try:
        number = float(text[:-1]) if percent else int(text)
    except ValueError as exc:
        raise OptionError("expected a number of hosts (N) or a percentage (N%)",
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

"""``--limit`` and ``--batch-size``: which hosts of a plan an operator means.

A limit is a comma- or colon-separated list of short host names, FQDNs, role
names and globs (``overcloud-novacompute-1*``); an item that starts with
``!`` removes hosts. Each item must match something, so a typo is an error,
not a silently empty run. A batch size is ``N`` hosts or ``N%`` of them.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

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


def batches_of(hosts: Sequence[str], batch_size: int | str | None
               ) -> list[tuple[str, ...]]:
    """Split ``hosts`` into batches of ``N`` or ``N%`` hosts (all if None)."""
    if not hosts:
        return []
    if batch_size in (None, "", 0, "0"):
        return [tuple(hosts)]
    text = str(batch_size).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 < percent <= 100:
                raise ValueError
            size = max(1, math.ceil(len(hosts) * percent / 100))
        else:
            size = int(text)
            if size < 1:
                raise ValueError
    except ValueError as exc:
        raise OptionError("expected a number of hosts (N) or a percentage (N%)",
                          option="--batch-size", value=repr(batch_size)) from exc
    return [tuple(hosts[i:i + size]) for i in range(0, len(hosts), size)]

"""Attributing a role's flat task list back to the services that define them.

RoleData concatenates the tasks of a role's services in ``service_names``
order, so the service index along a flat list never decreases. Each task is
scored per service from evidence in its own text (its name, the roles it
includes, its conditions, its body). Maximum-weight non-decreasing chains of
(task, service) choices are found by dynamic programming; a task becomes an
anchor only when every such chain agrees on its service. Tasks between two
anchors of the same service are then attributed by order. Everything else
stays unattributed: a wrong attribution is worse than none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from operator import add
from typing import Any


@dataclass(frozen=True)
class Attribution:
    """The service a task belongs to (None: unattributed) and why."""

    service: str | None
    evidence: str


# Well-known TripleO names for what a service manages, each mapped to the
# services that may own it, in preference order; the first one the role has
# wins. A service's own name always beats an alias spelled the same.
_ALIASES: dict[str, tuple[str, ...]] = {
    "galera": ("mysql",),
    "mariadb": ("mysql",),
    "rabbitmq": ("oslo_messaging_rpc", "oslo_messaging_notify"),
    "cron": ("logrotate_crond",),
    "crond": ("logrotate_crond",),
    "logrotate": ("logrotate_crond",),
    "iptables": ("tripleo_firewall",),
    "ip6tables": ("tripleo_firewall",),
    "firewall": ("tripleo_firewall",),
    "leapp": ("tripleo_packages",),
    "os net config": ("tripleo_packages",),
    "all packages": ("tripleo_packages",),
    "package and repo": ("tripleo_packages",),
    "dnf": ("tripleo_packages",),
    "yum": ("tripleo_packages",),
    "snmp": ("snmp_disabled",),
    "snmpd": ("snmp_disabled",),
    "consoleauth": ("nova_consoleauth", "nova_vnc_proxy"),
    "novncproxy": ("nova_vnc_proxy",),
    "docker": ("podman",),
    "kernel arg": ("boot_params_service",),
    "kernel args": ("boot_params_service",),
    "kernelargs": ("boot_params_service",),
    "boot params": ("boot_params_service",),
}

# Terms other services' tasks mention in passing (pacemaker manages many
# services; package managers and container runtimes are used by many):
# wherever they appear they score _WEAK_WEIGHT, below any concrete evidence.
_WEAK_TERMS = frozenset({"pacemaker", "docker", "yum", "dnf", "firewall"})
_WEAK_WEIGHT = 1

# Ansible roles that more than one service includes.
_SHARED_ROLES: dict[str, tuple[str, ...]] = {
    "tripleo_kernel": ("kernel", "boot_params_service"),
}

# Evidence sources, strongest first, with their weights.
_SOURCES: tuple[tuple[str, int], ...] = (
    ("name", 8), ("role", 6), ("condition", 4), ("body", 2))
_MAX_BODY_BONUS = 2  # extra points for repeated mentions in the body

_MAX_NODES = 2000    # nodes of one task's tree walked
_MAX_CHARS = 20000   # characters of one task's strings kept

# str.translate is several times faster than a regex on large task bodies.
_SEPARATORS = str.maketrans(
    {chr(c): " " for c in range(128) if not chr(c).isalnum()})
# ``'redis' not in enabled_services`` is evidence against, not for.
_NEGATED = re.compile(
    r"""['"][\w.-]+['"]\s+not\s+in\b|\bnot\s+\(?\s*['"][\w.-]+['"]""")

_ROLE_KEYS = ("include_role", "import_role")
_FACT_KEYS = ("vars", "set_fact")


@dataclass(frozen=True)
class _Term:
    """One spelling (space-padded tokens) that names a service."""

    text: str
    service: int
    weak: bool
    longer: tuple[str, ...]  # terms containing this one, matched instead


@dataclass(frozen=True)
class _Table:
    """Everything about a role's services that does not depend on tasks."""

    services: tuple[str, ...]
    by_first: dict[str, tuple[_Term, ...]]
    shared_roles: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class _Texts:
    """A task's text, split by the kind of evidence it gives."""

    name: str
    role: str
    condition: str
    body: str


def _words(text: str) -> list[str]:
    """Lower-case alphanumeric words of ``text``."""
    return text.lower().translate(_SEPARATORS).split()


def _normalize(text: str) -> str:
    """Words of ``text`` separated by single spaces."""
    return " ".join(_words(text))


@lru_cache(maxsize=256)
def _table(services: tuple[str, ...]) -> _Table:
    """Build (once per distinct service list) the terms naming its services."""
    index: dict[str, int] = {}
    for position, service in enumerate(services):
        index.setdefault(service, position)
    spellings: dict[str, int] = {}
    for alias, owners in _ALIASES.items():
        owner = next((index[o] for o in owners if o in index), None)
        if owner is not None:
            spellings[_normalize(alias)] = owner
    for service, position in index.items():
        spellings[_normalize(service)] = position
    padded = {f" {s} ": i for s, i in spellings.items() if s}
    by_first: dict[str, list[_Term]] = {}
    for text, position in padded.items():
        longer = tuple(o for o in padded if o != text and text in o)
        term = _Term(text, position, text.strip() in _WEAK_TERMS, longer)
        by_first.setdefault(text.split()[0], []).append(term)
    shared = {
        _normalize(role): tuple(index[s] for s in owners if s in index)
        for role, owners in _SHARED_ROLES.items()}
    return _Table(services, {k: tuple(v) for k, v in by_first.items()},
                  {k: v for k, v in shared.items() if v})


def _matches(text: str, table: _Table) -> dict[int, tuple[int, bool]]:
    """Services named in ``text``: index -> (mentions, any strong mention)."""
    if not text:
        return {}
    words = _words(text)
    padded = f" {' '.join(words)} "
    found: dict[int, tuple[int, bool]] = {}
    for token in table.by_first.keys() & words:
        for term in table.by_first[token]:
            count = padded.count(term.text)
            if count:
                count -= sum(padded.count(o) for o in term.longer)
            if count > 0:
                seen, strong = found.get(term.service, (0, False))
                found[term.service] = (seen + count, strong or not term.weak)
    return found


def _role_matches(text: str, table: _Table) -> dict[int, tuple[int, bool]]:
    """Services owning the included roles (one role name per line)."""
    found: dict[int, tuple[int, bool]] = {}
    for line in text.splitlines():
        shared = table.shared_roles.get(_normalize(line))
        hits = ({i: (1, True) for i in shared} if shared
                else _matches(line, table))
        for service, (count, strong) in hits.items():
            seen, was_strong = found.get(service, (0, False))
            found[service] = (seen + count, was_strong or strong)
    return found


def _texts(task: Mapping[str, Any]) -> _Texts:
    """Collect a task's text by evidence kind, bounded in nodes and size."""
    roles: list[str] = []
    conditions: list[str] = []
    body: list[str] = []
    stack: list[Any] = [{k: v for k, v in task.items() if k != "name"}]
    nodes = size = 0
    while stack and nodes < _MAX_NODES and size < _MAX_CHARS:
        node = stack.pop()
        nodes += 1
        if isinstance(node, str):
            body.append(node[:_MAX_CHARS - size])
            size += len(node)
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
        elif isinstance(node, (dict, Mapping)):  # dict first: abc is slow
            _visit(node, stack, roles, conditions, body)
    name = task.get("name")
    return _Texts(name if isinstance(name, str) else "", "\n".join(roles),
                  "\n".join(conditions), "\n".join(body))


def _visit(node: Mapping[str, Any], stack: list[Any], roles: list[str],
           conditions: list[str], body: list[str]) -> None:
    """Take a mapping's own roles, conditions and name; queue the rest."""
    for key, child in node.items():
        if key in _ROLE_KEYS:
            role = child.get("name") if isinstance(child, Mapping) else child
            if isinstance(role, str):
                roles.append(role)
        elif key == "when":
            for condition in child if isinstance(child, list) else [child]:
                if isinstance(condition, str):
                    conditions.append(_NEGATED.sub(" ", condition)
                                      if "not" in condition else condition)
        elif key == "name":
            if isinstance(child, str):
                body.append(child)
        elif key != "tags":
            if key in _FACT_KEYS and isinstance(child, Mapping):
                body.append(" ".join(map(str, child)))
            stack.append(child)


def _candidates(task: Mapping[str, Any],
                table: _Table) -> dict[int, tuple[int, str]]:
    """Score per service named by the task: index -> (score, evidence).

    The evidence is the source that gave the most points (strongest first
    on ties).
    """
    texts = _texts(task)
    per_source = {
        "name": _matches(texts.name, table),
        "role": _role_matches(texts.role, table),
        "condition": _matches(texts.condition, table),
        "body": _matches(texts.body, table),
    }
    scores: dict[int, int] = {}
    labels: dict[int, tuple[int, str]] = {}
    for source, weight in _SOURCES:
        for service, (count, strong) in per_source[source].items():
            points = weight if strong else _WEAK_WEIGHT
            if source == "body":
                points += min(count - 1, _MAX_BODY_BONUS)
            scores[service] = scores.get(service, 0) + points
            if points > labels.get(service, (0, ""))[0]:
                labels[service] = (points, source)
    return {s: (score, labels[s][1]) for s, score in scores.items()}


def _prefix_best(previous: list[int],
                 options: Mapping[int, tuple[int, str]],
                 mirrored: bool = False) -> list[int]:
    """One DP step: best chain weight with last service <= s, for each s.

    With ``mirrored`` the row is indexed by ``width - 1 - s``, which runs
    the same step for chains read backwards (first service >= s).
    """
    row = previous.copy()
    last = len(row) - 1
    for service, (score, _) in options.items():
        row[last - service if mirrored else service] += score
    return list(accumulate(row, max))


def _anchors(candidates: Sequence[dict[int, tuple[int, str]]],
             width: int) -> dict[int, int]:
    """Tasks whose service every maximum-weight chain agrees on."""
    count = len(candidates)
    forward = [[0] * width]  # forward[i][s]: tasks < i, services <= s
    for options in candidates:
        forward.append(_prefix_best(forward[-1], options)
                       if options else forward[-1])
    # backward[i][width - 1 - s]: tasks >= i, services >= s
    backward = [[0] * width]
    for options in reversed(candidates):
        backward.append(_prefix_best(backward[-1], options, mirrored=True)
                        if options else backward[-1])
    backward.reverse()
    optimum = forward[count][width - 1]
    anchors: dict[int, int] = {}
    for i, options in enumerate(candidates):
        if not options:
            continue
        before, after = forward[i], backward[i + 1]
        best = [s for s, (score, _) in options.items()
                if before[s] + score + after[width - 1 - s] == optimum]
        if len(best) == 1 and max(map(add, before, reversed(after))) < optimum:
            anchors[i] = best[0]
    return anchors


def _fill(anchors: Mapping[int, int], count: int,
          width: int) -> list[int | None]:
    """Services by order: anchors, plus gaps that only one service can fill."""
    result: list[int | None] = [None] * count
    bounds = [(-1, 0)] + sorted(anchors.items()) + [(count, width - 1)]
    for (start, low), (end, high) in zip(bounds, bounds[1:]):
        if 0 <= end < count:
            result[end] = high
        if low == high:
            for i in range(start + 1, end):
                result[i] = low
    return result


def attribute(tasks: Sequence[Mapping[str, Any]],
              services: Sequence[str]) -> list[Attribution]:
    """Attribute each task of a role's flat list to one of ``services``.

    Returns one Attribution per task, in order.
    """
    if not tasks or not services:
        return [Attribution(None, "") for _ in tasks]
    table = _table(tuple(services))
    candidates = [_candidates(task, table) if isinstance(task, Mapping) else {}
                  for task in tasks]
    anchors = _anchors(candidates, len(services))
    filled = _fill(anchors, len(tasks), len(services))
    result = []
    for i, service in enumerate(filled):
        if service is None:
            result.append(Attribution(None, ""))
        elif i in anchors:
            result.append(Attribution(table.services[service],
                                      candidates[i][service][1]))
        else:
            result.append(Attribution(table.services[service], "order"))
    return result

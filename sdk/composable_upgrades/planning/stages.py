"""Stages: which roles are upgraded together, and in which order.

By default a role belongs to the ``controlplane`` stage when it runs any
service of the built-in catalog of TripleO control-plane services, and to the
``compute`` stage otherwise (compute, storage, networker ...). A stages file
overrides that: ``stage: [roles or services]`` (or ``stage: {roles: [...],
services: [...]}``), stages in the order they run. Roles it does not place
keep their default stage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from composable_upgrades.errors import InputFileError, StageError, UnknownRoleError
from composable_upgrades.model.deployment import Deployment
from composable_upgrades.model.names import check_name
from composable_upgrades.formats.package_data import load_package_yaml
from composable_upgrades.formats.serialize import load_yaml_file

CONTROLPLANE = "controlplane"
COMPUTE = "compute"
EXTERNAL = "external"
CONVERGE = "converge"
RESERVED = (EXTERNAL, CONVERGE)


@cache
def controlplane_services() -> frozenset[str]:
    """The built-in catalog of control-plane services."""
    return frozenset(load_package_yaml("controlplane-services.yaml"))


def default_stage(services: tuple[str, ...]) -> str:
    """``controlplane`` if any service is in the catalog, else ``compute``."""
    catalog = controlplane_services()
    return CONTROLPLANE if any(s in catalog for s in services) else COMPUTE


@dataclass(frozen=True)
class StageAssignment:
    """Upgrade stages in run order, each with its roles (in outputs order)."""

    stages: tuple[tuple[str, tuple[str, ...]], ...]
    source: str

    def roles(self, stage: str) -> tuple[str, ...]:
        """Roles of ``stage`` (empty if there is no such stage)."""
        return dict(self.stages).get(stage, ())


def assign_stages(deployment: Deployment,
                  path: str | os.PathLike[str] | None = None) -> StageAssignment:
    """Place every role of ``deployment`` in an upgrade stage."""
    wanted = _read_stages_file(os.fspath(path)) if path is not None else {}
    source = os.fspath(path) if path is not None else "built-in catalog"
    known_roles = deployment.role_names
    known_services = set(deployment.services)
    placed: dict[str, str] = {}
    by_service: list[tuple[str, list[str]]] = []
    for stage, names in wanted.items():
        roles, services = list(names["roles"]), list(names["services"])
        for name in names["names"]:
            if name in known_roles:
                roles.append(name)
            elif name in known_services:
                services.append(name)
            else:
                raise UnknownRoleError(name, where=f"{source}: stage {stage!r}: "
                                       "no such role or service",
                                       known=known_roles)
        for name in roles:
            if name not in known_roles:
                raise UnknownRoleError(name, where=f"{source}: stage {stage!r}",
                                       known=known_roles)
            _place(placed, name, stage, source)
        for name in services:
            if name not in known_services:
                raise InputFileError(
                    f"stage {stage!r}: unknown service {name!r}", path=source)
        by_service.append((stage, services))
    # Roles named explicitly win over placement by service, wherever they are.
    for stage, services in by_service:
        for role in deployment.roles:
            if role.name not in placed and set(role.services) & set(services):
                placed[role.name] = stage
    order = list(wanted)
    for role in deployment.roles:
        if role.name not in placed:
            stage = default_stage(role.services)
            placed[role.name] = stage
            if stage not in order:
                order.insert(0 if stage == CONTROLPLANE else len(order), stage)
    stages = tuple(
        (stage, tuple(r for r in known_roles if placed[r] == stage))
        for stage in order)
    return StageAssignment(stages=tuple(s for s in stages if s[1]), source=source)


def _place(placed: dict[str, str], role: str, stage: str, source: str) -> None:
    if placed.get(role, stage) != stage:
        raise InputFileError(f"role {role!r} is in both stage "
                             f"{placed[role]!r} and {stage!r}", path=source)
    placed[role] = stage


def _read_stages_file(path: str) -> dict[str, dict[str, list[str]]]:
    data = load_yaml_file(path, "stages file")
    if not isinstance(data, Mapping) or not data:
        raise InputFileError("expected a mapping of stage: [roles or "
                             "services]", path=path)
    return {_stage_name(stage, path): _stage_members(stage, members, path)
            for stage, members in data.items()}


def _stage_name(stage: Any, path: str) -> str:
    if not isinstance(stage, str):
        raise InputFileError(f"stage name {stage!r} is not a string", path=path)
    if stage in RESERVED:
        raise InputFileError(f"stage name {stage!r} is reserved", path=path)
    return check_name("stage", stage)


def _stage_members(stage: str, members: Any, path: str) -> dict[str, list[str]]:
    if isinstance(members, list):
        return {"roles": [], "services": [], "names": _names(stage, members, path)}
    if isinstance(members, Mapping) and set(members) <= {"roles", "services"}:
        parsed = {key: _names(stage, members.get(key) or [], path)
                  for key in ("roles", "services")}
        return {**parsed, "names": []}
    raise InputFileError(f"stage {stage!r}: expected a list of roles or "
                         "services, or {roles: [...], services: [...]}", path=path)


def _names(stage: str, value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputFileError(f"stage {stage!r}: expected a list of names",
                             path=path)
    return value


def unknown_stage(name: str, known: Sequence[str]) -> StageError:
    """The error for a stage name that the plan does not have."""
    return StageError(f"unknown stage {name!r} (stages: {', '.join(known)})",
                      stage=name)

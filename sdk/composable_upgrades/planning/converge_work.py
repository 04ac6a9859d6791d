"""Converge: the deployment-wide work once every upgrade stage is done.

After the post-upgrade steps (RoleData's ``post_upgrade_tasks``), converge
runs three phases on every overcloud host:

``rpc_unpin``
    unpin RPC versions, now that every service runs the new release;
``packages``
    upgrade packages TripleO does not manage (openvswitch-style), listed in
    ``unmanaged_packages``;
``reboot``
    one host at a time, reboot where a new kernel was installed
    (``kernel_check_tasks`` set the ``kernel_changed`` fact).

The tasks of each phase come from a converge file given to prepare, else the
stack's ``UpgradeConverge`` output, else the built-in TripleO default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from composable_upgrades.errors import InputFileError, OutputsError
from composable_upgrades.model.deployment import CONVERGE_OUTPUT, Deployment, Task, make_tasks
from composable_upgrades.planning.noop_tasks import noop_task
from composable_upgrades.formats.package_data import load_package_yaml
from composable_upgrades.formats.serialize import load_yaml_file

_KEYS = {"rpc_unpin_tasks", "unmanaged_packages", "package_tasks",
         "kernel_check_tasks", "reboot_tasks"}
BUILTIN = "built-in converge tasks"


@dataclass(frozen=True)
class ConvergeWork:
    """The tasks of each deployment-wide phase, and where they came from."""

    phases: tuple[tuple[str, tuple[Task, ...]], ...]
    unmanaged_packages: tuple[str, ...]
    source: str
    from_outputs: bool = False

    def recorded(self) -> ConvergeWork:
        """The same work with every task a no-op that records itself."""
        return replace(self, phases=tuple(
            (phase, tuple(noop_task(t, phase) for t in tasks))
            for phase, tasks in self.phases))


def load_converge_work(deployment: Deployment,
                       path: str | os.PathLike[str] | None = None) -> ConvergeWork:
    """The converge work for ``deployment``: file, else outputs, else built-in."""
    if path is not None:
        source = os.fspath(path)
        spec = _read_file(source)
        error = _file_error(source)
    elif deployment.converge_spec is not None:
        source = f"{deployment.source}: {CONVERGE_OUTPUT}"
        spec = deployment.converge_spec
        error = _outputs_error(deployment.source)
    else:
        source = BUILTIN
        spec = load_package_yaml("converge.yaml")
        error = _file_error(source)
    unknown = sorted(str(key) for key in set(spec) - _KEYS)
    if unknown:
        raise error(f"unknown keys {', '.join(unknown)} (expected "
                    f"{', '.join(sorted(_KEYS))})")
    packages = spec.get("unmanaged_packages") or []
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise error("unmanaged_packages: expected a list of package names")
    services = list(dict.fromkeys(s for r in deployment.roles for s in r.services))

    def tasks(key: str, value: Any, kind: str) -> tuple[Task, ...]:
        try:
            return make_tasks(value, kind=kind, role=None, services=services,
                              source=source, key=key)
        except OutputsError as exc:
            raise error(str(exc).removeprefix(f"{source}: ")) from exc

    check = tasks("kernel_check_tasks", spec.get("kernel_check_tasks"),
                  "reboot_tasks")
    reboot = tasks("reboot_tasks", spec.get("reboot_tasks"), "reboot_tasks")
    reboot_list = [t.body for t in check] + ([{
        "name": "Reboot where the kernel changed, one host at a time",
        "when": "kernel_changed | default(false) | bool",
        "block": [t.body for t in reboot],
    }] if reboot else [])
    phases = (
        ("rpc_unpin", tasks("rpc_unpin_tasks", spec.get("rpc_unpin_tasks"),
                            "rpc_unpin_tasks")),
        ("packages", tasks("package_tasks", spec.get("package_tasks"),
                           "package_tasks") if packages else ()),
        ("reboot", tasks("kernel_check_tasks", reboot_list, "reboot_tasks")),
    )
    return ConvergeWork(phases=phases, unmanaged_packages=tuple(packages),
                        source=source,
                        from_outputs=path is None and deployment.converge_spec is not None)


def _file_error(source: str):
    return lambda message: InputFileError(message, path=source)


def _outputs_error(source: str):
    return lambda message: OutputsError(message, source=source, key=CONVERGE_OUTPUT)


def _read_file(path: str) -> Mapping[str, Any]:
    data = load_yaml_file(path, "converge file")
    if not isinstance(data, Mapping):
        raise InputFileError("expected a mapping of converge phases", path=path)
    return data


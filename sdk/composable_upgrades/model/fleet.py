"""A rehearsal fleet: every host of the plan, played by a local sandbox.

Each host maps to ``ansible_connection=local`` with ``ansible_become=false``
and its own sandbox root under the fleet directory (the ``rehearsal_root``
variable), so upgrades can be rehearsed on one machine without root and
without touching anything outside the fleet directory. Faults are injected
per host, stage and step by a marker file that the plan's plays check first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from composable_upgrades.model.deployment import check_name
from composable_upgrades.model.steps import step_name

FAULTS = "faults"
#: Name of the task, first in every play of a fleet plan, that fails on a fault.
FAULT_CHECK = "Rehearsal fault check"


def fault_marker(stage: str, step: int | str) -> str:
    """Name of the marker file that makes ``step`` of ``stage`` fail on a host.

    Named like the step's playbook: ``compute_step3``, ``converge_reboot``.
    """
    return step_name(stage, step)


@dataclass(frozen=True)
class Fleet:
    """A local rehearsal fleet rooted at ``root`` (an absolute path)."""

    root: str

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> Fleet:
        """The fleet rooted at ``path``."""
        return cls(root=os.path.abspath(os.fspath(path)))

    def host_root(self, host: str) -> str:
        """The sandbox directory that plays ``host``."""
        return os.path.join(self.root, check_name("host", host))

    def host_vars(self, host: str) -> dict[str, Any]:
        """Inventory variables that make ``host`` a local sandbox."""
        return {
            "ansible_connection": "local",
            "ansible_become": False,
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "rehearsal_root": self.host_root(host),
        }

    def create(self, hosts: Iterable[str]) -> None:
        """Create the sandbox directory of each host."""
        for host in hosts:
            os.makedirs(os.path.join(self.host_root(host), FAULTS), exist_ok=True)

    def inject_fault(self, host: str, stage: str, step: int | str) -> str:
        """Make ``step`` of ``stage`` fail on ``host``; returns the marker path."""
        path = os.path.join(self.host_root(host), FAULTS, fault_marker(stage, step))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("injected fault\n")
        return path

    def clear_faults(self, host: str | None = None) -> int:
        """Remove injected faults (of one host, or all); returns how many."""
        removed = 0
        hosts = [host] if host else sorted(os.listdir(self.root)) \
            if os.path.isdir(self.root) else []
        for name in hosts:
            folder = os.path.join(self.host_root(name), FAULTS)
            if os.path.isdir(folder):
                for marker in os.listdir(folder):
                    os.unlink(os.path.join(folder, marker))
                    removed += 1
        return removed

    def to_dict(self) -> dict[str, Any]:
        """Plain data for plan.json."""
        return {"root": self.root}

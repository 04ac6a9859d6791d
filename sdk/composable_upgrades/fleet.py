"""A rehearsal fleet: every host of the plan, played by a local sandbox.

Each host maps to ``ansible_connection=local`` with ``ansible_become=false``
and its own sandbox root under the fleet directory (the ``rehearsal_root``
variable), so upgrades can be rehearsed on one machine without root and
without touching anything outside the fleet directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from composable_upgrades.model import check_name


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

    def to_dict(self) -> dict[str, Any]:
        """Plain data for plan.json."""
        return {"root": self.root}

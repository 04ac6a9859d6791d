"""A rehearsal fleet: every host of the plan, played by a local sandbox.

Each host maps to ``ansible_connection=local`` with ``ansible_become=false``
and its own sandbox root under the fleet directory (the ``rehearsal_root``
variable), so upgrades can be rehearsed on one machine without root and
without touching anything outside the fleet directory. Faults are injected
per host, stage and step by a marker file that the plan's plays check first.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from composable_upgrades.model.names import check_name
from composable_upgrades.errors import FleetError, OptionError
from composable_upgrades.model.steps import step_name

FAULTS = "faults"
#: Name of the task, first in every play of a fleet plan, that fails on a fault.
FAULT_CHECK = "Rehearsal fault check"
#: Its tag: a run on hosts without injected faults skips it (``--skip-tags``),
#: so it costs no Ansible worker per host and step.
FAULT_TAG = "rehearsal_fault_check"


def fault_marker(stage: str, step: int | str) -> str:
    """Name of the marker file that makes ``step`` of ``stage`` fail on a host.

    Named like the step's playbook: ``compute_step3``, ``converge_reboot``.
    """
    return step_name(stage, step)


#: How a fleet's hosts are reached: a local connection, or real SSH to a
#: loopback address of their own (127.0.0.2, 127.0.0.3, ...).
TRANSPORTS = ("local", "ssh")
_FIRST_SSH_ADDRESS = ipaddress.IPv4Address("127.0.0.2")
_LAST_LOOPBACK = ipaddress.IPv4Address("127.255.255.254")


def ssh_address(index: int) -> str:
    """The loopback address of the ``index``-th host (0-based) of an SSH fleet."""
    address = _FIRST_SSH_ADDRESS + index
    if index < 0 or address > _LAST_LOOPBACK:
        raise FleetError(f"no loopback address for host number {index + 1}",
                         path="127.0.0.0/8")
    return str(address)


@dataclass(frozen=True)
class Fleet:
    """A rehearsal fleet rooted at ``root`` (an absolute path).

    ``transport`` ``local``: every host is this machine through a local
    connection, without become. ``ssh``: every host is reached over real SSH
    at its own loopback address and ``ssh_port``, as the inventory's SSH user
    with the run's key, and become goes through sudo, as on an overcloud.
    The sandboxes are the same either way.
    """

    root: str
    transport: str = "local"
    ssh_port: int = 22

    @classmethod
    def at(cls, path: str | os.PathLike[str], *, transport: str = "local",
           ssh_port: int = 22) -> Fleet:
        """The fleet rooted at ``path``."""
        if transport not in TRANSPORTS:
            raise OptionError(f"unknown transport (use one of {', '.join(TRANSPORTS)})",
                              option="--fleet-transport", value=transport)
        if not 0 < ssh_port < 65536:
            raise OptionError("not a TCP port", option="--fleet-ssh-port",
                              value=ssh_port)
        return cls(root=os.path.abspath(os.fspath(path)), transport=transport,
                   ssh_port=ssh_port)

    def host_root(self, host: str) -> str:
        """The sandbox directory that plays ``host``."""
        return os.path.join(self.root, check_name("host", host))

    def host_vars(self, host: str, index: int | None = None) -> dict[str, Any]:
        """Inventory variables that make ``host`` a sandbox of this fleet.

        ``index``: the host's number in the plan (0-based), which gives it its
        address on an SSH fleet; None for this machine itself (the
        undercloud), always reached through a local connection.
        """
        if self.transport == "ssh" and index is not None:
            return {
                "ansible_connection": "ssh",
                "ansible_host": ssh_address(index),
                "ansible_port": self.ssh_port,
                "ansible_python_interpreter": "/usr/bin/python3",
                "rehearsal_root": self.host_root(host),
            }
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

    def has_faults(self, hosts: Iterable[str]) -> bool:
        """Whether any of ``hosts`` has an injected fault."""
        for host in hosts:
            try:
                if os.listdir(os.path.join(self.host_root(host), FAULTS)):
                    return True
            except OSError:
                continue
        return False

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
        if self.transport == "local":
            return {"root": self.root}
        return {"root": self.root, "transport": self.transport,
                "ssh_port": self.ssh_port}

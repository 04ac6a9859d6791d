"""Base classes: turn the SDK's errors into one-line command errors, in one place."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from osc_lib import exceptions
from osc_lib.command import command

#: What a Lister's action returns: column names and rows.
Table = tuple[list[str], list[tuple]]


class _SdkErrors:
    """Runs :meth:`action` and converts :class:`UpgradeError` to CommandError."""

    auth_required = False
    #: Seconds this command waited for the operator's answers.
    waited = 0.0

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from composable_upgrades import UpgradeError
        try:
            return self.action(parsed_args)
        except UpgradeError as exc:
            raise exceptions.CommandError(str(exc)) from exc

    def action(self, parsed_args: argparse.Namespace) -> Any:
        raise NotImplementedError

    def ask(self, question: str) -> str:
        """The operator's answer to ``question`` (the wait is not start-up)."""
        began = time.monotonic()
        try:
            return input(question)
        finally:
            self.waited += time.monotonic() - began

    def requested(self) -> float | None:
        """When the operator asked for what this command does: its start
        (:func:`command_started`) with the waits for answers added."""
        started = command_started()
        return None if started is None else started + self.waited

    def note(self, message: str) -> None:
        """A line for the operator on stderr (stdout stays machine-readable)."""
        self.app.stderr.write(message.rstrip("\n") + "\n")


def command_started() -> float | None:
    """When this ``openstack`` command started, as a Unix time: the process's
    own start, read from /proc (None when this process is not the
    ``openstack`` executable, as when OpenStackClient runs inside another
    program, or where /proc is not there).

    A run records it as when it was asked for: the second or two Python
    takes to load OpenStackClient is part of the command's wall time.
    """
    if os.path.basename(sys.argv[0] if sys.argv else "") != "openstack":
        return None
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            # Fields after the command name's closing parenthesis; the 22nd
            # field of the line (starttime, clock ticks after boot) is the 20th.
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - max(0.0, age)


class UpgradeLister(_SdkErrors, command.Lister):
    """A command that returns a table (``-f table|json|yaml|csv|value``)."""

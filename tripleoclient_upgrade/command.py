"""Base classes: turn the SDK's errors into one-line command errors, in one place."""

from __future__ import annotations

import argparse
from typing import Any

from osc_lib import exceptions
from osc_lib.command import command

#: What a Lister's action returns: column names and rows.
Table = tuple[list[str], list[tuple]]


class _SdkErrors:
    """Runs :meth:`action` and converts :class:`UpgradeError` to CommandError."""

    auth_required = False

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from composable_upgrades import UpgradeError
        try:
            return self.action(parsed_args)
        except UpgradeError as exc:
            raise exceptions.CommandError(str(exc)) from exc

    def action(self, parsed_args: argparse.Namespace) -> Any:
        raise NotImplementedError

    def note(self, message: str) -> None:
        """A line for the operator on stderr (stdout stays machine-readable)."""
        self.app.stderr.write(message.rstrip("\n") + "\n")


class UpgradeLister(_SdkErrors, command.Lister):
    """A command that returns a table (``-f table|json|yaml|csv|value``)."""

"""Options shared by the commands, named as python-tripleoclient names them."""

from __future__ import annotations

import argparse
import os


def add_stack(parser: argparse.ArgumentParser) -> None:
    """``--stack`` (default: $OVERCLOUD_STACK_NAME or ``overcloud``)."""
    parser.add_argument(
        "--stack", default=os.environ.get("OVERCLOUD_STACK_NAME", "overcloud"),
        help="Name or ID of the overcloud stack (default: "
             "$OVERCLOUD_STACK_NAME or 'overcloud').")


def add_working_dir(parser: argparse.ArgumentParser) -> None:
    """``--working-dir`` (default: ~/overcloud-deploy/<stack>)."""
    parser.add_argument(
        "--working-dir", metavar="DIR",
        help="The stack's working directory (default: "
             "~/overcloud-deploy/<stack>). This command writes only to its "
             "composable-upgrade/ subfolder.")


def add_yes(parser: argparse.ArgumentParser, what: str) -> None:
    """``-y/--yes``."""
    parser.add_argument("-y", "--yes", action="store_true", default=False,
                        help=f"Skip the confirmation before {what}.")


def working_dir(parsed_args: argparse.Namespace) -> str:
    """The working directory the arguments ask for."""
    from composable_upgrades import default_working_dir
    return parsed_args.working_dir or default_working_dir(parsed_args.stack)

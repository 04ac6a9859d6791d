"""OpenStackClient plugin interface for the ``overcloud upgrade`` commands.

Kept free of heavy imports: OpenStackClient imports this module at every
start-up, whatever command runs.
"""

import argparse
import logging

from tripleoclient_upgrade import coexistence

LOG = logging.getLogger(__name__)

# Own "overcloud upgrade prepare|run" even beside python-tripleoclient,
# whatever order the plugins load in (see coexistence.py).
coexistence.take_over_tripleoclient_upgrade()

DEFAULT_API_VERSION = "1"
API_VERSION_OPTION = "os_overcloud_upgrade_api_version"
API_NAME = "overcloud_upgrade"
API_VERSIONS = ("1",)


def make_client(instance: object) -> None:
    """The commands need no service client; they call the SDK directly."""
    return None


def build_option_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """No global options of our own."""
    return parser

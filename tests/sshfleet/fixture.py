"""The session-scoped ``ssh_fleet`` fixture: one sshd for all SSH tests.

Import it into a test module (``from tests.sshfleet.fixture import
ssh_fleet``) or list this module in ``pytest_plugins``. It fails, never
skips, when the server cannot run: CI runs as root on a fresh Debian after
``tests/sshfleet/install.sh`` (``make sshfleet``), where it must.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sshfleet.launcher import (SshFleetError, SshFleetServer,
                                     loopback_addresses)

#: How many hosts the session's fleet has (127.0.0.2 onwards), each on its
#: own loopback address: enough for the 50+ concurrent connections a real
#: overcloud upgrade makes.
FLEET_SIZE = 60


@pytest.fixture(scope="session")
def ssh_fleet(tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[SshFleetServer]:
    """sshd on 127.0.0.2..127.0.0.61 for ``tripleo-admin``, whole session."""
    server = SshFleetServer(tmp_path_factory.mktemp("sshfleet"),
                            loopback_addresses(FLEET_SIZE))
    try:
        server.start()
    except SshFleetError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


__all__ = ["FLEET_SIZE", "ssh_fleet"]

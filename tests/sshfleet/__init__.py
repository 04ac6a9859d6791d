"""A fleet of real SSH hosts for tests: OpenSSH on loopback addresses.

Every host of the fleet is a loopback address (127.0.0.2, 127.0.0.3, ...)
served by a real ``sshd`` (``launcher.py``) that accepts the user
``tripleo-admin`` (or another) with a key it generates, with password-less
``sudo`` for become, as on an overcloud node. ``install.sh`` installs
``openssh-server``, ``openssh-client``, ``sudo`` (and ``python3``) with
apt-get when they are missing; the server runs as root.

Use the session-scoped :func:`ssh_fleet` fixture (``fixture.py``; import it
into a test module) or :class:`SshFleetServer` directly.
"""

from tests.sshfleet.fixture import FLEET_SIZE, ssh_fleet
from tests.sshfleet.launcher import (SshFleetError, SshFleetServer,
                                     loopback_addresses, missing_programs)

__all__ = ["FLEET_SIZE", "SshFleetError", "SshFleetServer",
           "loopback_addresses", "missing_programs", "ssh_fleet"]

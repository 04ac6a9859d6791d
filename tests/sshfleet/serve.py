"""Serve an SSH fleet until stopped, for ``make demo-ssh``.

``python -m tests.sshfleet.serve DIR COUNT`` starts sshd on COUNT loopback
addresses (127.0.0.2 onwards) for ``tripleo-admin``, prints ``PORT KEY`` (the
port and the client's private key) once every address answers, and stops
sshd on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import signal
import sys

from tests.sshfleet.launcher import SshFleetError, SshFleetServer, loopback_addresses


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[2].isdigit():
        print("usage: python -m tests.sshfleet.serve DIR COUNT", file=sys.stderr)
        return 2
    server = SshFleetServer(argv[1], loopback_addresses(int(argv[2])))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()
        print(server.port, server.private_key, flush=True)
        signal.pause()
    except SshFleetError as exc:
        print(f"ssh fleet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

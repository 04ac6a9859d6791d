"""One run per stack at a time: a lock file that names its owner.

The lock is an ``flock`` on ``state/lock`` held for the whole run; the file
records the owner's pid and start time. The kernel drops an flock when its
process dies, so a lock file whose flock is free but which names another pid
is stale: it is reported and taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass

from composable_upgrades.errors import LockedError

LOCK_FILE = "lock"


@dataclass
class RunLock:
    """A held lock; release it with :meth:`release` or a ``with`` block."""

    path: str
    fd: int
    stale_owner: dict | None = None

    def release(self) -> None:
        """Free the lock and remove the file."""
        if self.fd < 0:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_owner(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        owner = json.loads(raw) if raw.strip() else None
    except ValueError:
        return None
    return owner if isinstance(owner, dict) else None


def acquire(state_dir: str, *, purpose: str) -> RunLock:
    """Take the stack's run lock; :class:`LockedError` if another run holds it."""
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, LOCK_FILE)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd) or {}
            os.close(fd)
            pid = owner.get("pid")
            since = owner.get("started")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) \
                if isinstance(since, (int, float)) else "an unknown time"
            raise LockedError(
                f"{path}: another run holds the lock (pid {pid}, "
                f"{owner.get('purpose', 'a run')}, since {when}); one run per "
                "stack at a time", path=path, pid=pid)
        # The file may have been unlinked by its owner between our open and
        # flock: then our lock is on a dead inode, so try again.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _read_owner(fd)
    owner = {"pid": os.getpid(), "host": socket.gethostname(),
             "started": time.time(), "purpose": purpose}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(owner).encode())
    os.fsync(fd)
    return RunLock(path=path, fd=fd, stale_owner=stale)


def stale_lock_note(owner: dict) -> str:
    """What to tell the operator about a stale lock that was taken over."""
    return (f"took over a stale lock of pid {owner.get('pid')} "
            f"({owner.get('purpose', 'a run')}, which ended without releasing it)")

"""One run per stack at a time: a lock file that names its owner.

The lock is an ``flock`` on ``state/lock`` held for the whole run; the file
records the owner's pid and start time. The kernel drops an flock when its
process dies, so a lock file whose flock is free but which names another pid
is stale: it is reported and taken over, and the runs the dead owner left
``running`` in the history are marked ``interrupted``. The lock file is
opened without following a symbolic link, and the paths the project writes
are checked for links before the lock is taken.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass

from composable_upgrades.errors import LockedError, WorkdirError
from composable_upgrades.state.store import HistoryStore
from composable_upgrades.state.workdir import HISTORY_FILE, refuse_symlinks

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


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise WorkdirError(f"cannot open the run lock: {exc.strerror}",
                           path=path) from exc


def _held_by(path: str, owner: dict) -> LockedError:
    pid = owner.get("pid")
    since = owner.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) \
        if isinstance(since, (int, float)) else "an unknown time"
    who = (f"pid {pid}, {owner.get('purpose', 'a run')}, since {when}"
           if isinstance(pid, int) else "a run that is just starting")
    return LockedError(f"{path}: another run holds the lock ({who}); one run "
                       "per stack at a time", path=path,
                       pid=pid if isinstance(pid, int) else None)


def acquire(state_dir: str, *, purpose: str) -> RunLock:
    """Take the stack's run lock; :class:`LockedError` if another run holds it.

    A stale lock (its owner died) is taken over: ``stale_owner`` is what its
    file said, with ``interrupted_runs``, the runs marked ``interrupted``.
    """
    root = os.path.dirname(os.path.abspath(state_dir))
    refuse_symlinks(root)
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, LOCK_FILE)
    while True:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd) or {}
            os.close(fd)
            raise _held_by(path, owner) from None
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
    if stale is not None:
        stale = {**stale, "interrupted_runs": _close_dead_runs(root, stale)}
    owner = {"pid": os.getpid(), "host": socket.gethostname(),
             "started": time.time(), "purpose": purpose}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(owner).encode())
    os.fsync(fd)
    return RunLock(path=path, fd=fd, stale_owner=stale)


def _close_dead_runs(root: str, owner: dict) -> list[str]:
    """Mark ``interrupted`` the runs a dead lock owner left ``running``.

    Held by us, the lock says no run is alive: every ``running`` row is a
    dead one. A history that cannot be written is left as it is (the run
    about to start reports it).
    """
    history = os.path.join(root, HISTORY_FILE)
    if not os.path.isfile(history):
        return []
    pid = owner.get("pid")
    try:
        return HistoryStore(history).mark_interrupted(
            f"interrupted: its process (pid {pid}) ended without finishing it")
    except WorkdirError:
        return []


def take_over_stale(state_dir: str) -> dict | None:
    """If the lock is stale, clear it (marking the dead owner's runs
    ``interrupted``) and return what its file said, as :func:`acquire` gives
    it in ``stale_owner``; None if it is free or held by a live run.

    For read-only commands (``status``): they report the takeover with
    :func:`stale_lock_note` without holding the lock afterwards.
    """
    path = os.path.join(state_dir, LOCK_FILE)
    if not os.path.lexists(path):
        return None
    try:
        with acquire(state_dir, purpose="a check of the lock") as lock:
            return lock.stale_owner
    except LockedError:
        return None


def stale_lock_note(owner: dict) -> str:
    """What to tell the operator about a stale lock that was taken over."""
    pid = owner.get("pid")
    who = f"pid {pid}" if isinstance(pid, int) else "a run whose pid is unknown"
    note = (f"took over a stale lock of {who} "
            f"({owner.get('purpose', 'a run')}, which ended without releasing it)")
    runs = owner.get("interrupted_runs") or []
    if runs:
        note += f"; marked interrupted in the history: {', '.join(runs)}"
    return note

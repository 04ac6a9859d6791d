"""How ansible-runner reads ansible-playbook's terminal: without fixed sleeps.

ansible-runner 2.x starts ansible-playbook under a pty through pexpect and
reads it with pexpect's defaults. Two of them cost time on every call and
buy nothing in ansible-runner's loop:

* ``delayafterclose`` (0.1 s): a sleep after closing the pty, to let a child
  still running die before its status is read. ansible-runner closes the
  pty only after ``isalive()`` has returned false, that is after the child
  was reaped, so the sleep always waits for nothing.
* ``delayafterread`` (0.1 ms, 0.3-0.4 ms in practice): a sleep after every
  read. Reads already block in ``poll()`` until output arrives; the sleep
  only slows the reading of event data, and ansible-playbook waits on a
  full pty buffer meanwhile.

Over the six steps of a stage these are 0.6-0.8 s, most of what ansible-
runner adds to the same ansible-playbook calls made by hand
(``benchmarks/run_overhead.py``, ``doc/performance.rst``).

:func:`quick_pty` swaps, for the calls made inside it, the ``spawn`` that
ansible-runner's runner module uses for one with those two delays off. It
leaves pexpect itself and every other user of it alone, and does nothing on
an ansible-runner whose major version it does not know.
"""

from __future__ import annotations

import contextlib
import threading
import types
from collections.abc import Iterator
from importlib import metadata
from typing import Any

#: ansible-runner major versions whose loop closes the pty only after the
#: child has been reaped (the condition for dropping the close delay).
KNOWN_MAJORS = ("2",)

_lock = threading.Lock()
_active = 0


def _spawn_class() -> type:
    import pexpect

    class QuickSpawn(pexpect.spawn):
        """pexpect's spawn with no sleep after reads and after close."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.delayafterread = None
            self.delayafterclose = 0
            self.ptyproc.delayafterclose = 0

    return QuickSpawn


class _Pexpect(types.ModuleType):
    """pexpect as ansible-runner's runner module sees it: QuickSpawn as spawn."""

    def __init__(self, real: types.ModuleType, spawn: type) -> None:
        super().__init__(real.__name__, real.__doc__)
        self.real = real
        self.spawn = spawn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def applies() -> bool:
    """Whether the installed ansible-runner is one :func:`quick_pty` knows."""
    try:
        version = metadata.version("ansible-runner")
    except metadata.PackageNotFoundError:
        return False
    import ansible_runner.runner as module

    return (version.split(".")[0] in KNOWN_MAJORS
            and isinstance(getattr(module, "pexpect", None), types.ModuleType))


@contextlib.contextmanager
def quick_pty() -> Iterator[bool]:
    """ansible-runner calls inside this block read the pty without sleeps.

    Yields whether the swap is in place. Nested and concurrent blocks share
    one swap; the last to leave puts the real module back.
    """
    global _active
    import ansible_runner.runner as module

    with _lock:
        swapped = bool(_active) or applies()
        if swapped:
            if not _active:
                module.pexpect = _Pexpect(module.pexpect, _spawn_class())
            _active += 1
    try:
        yield swapped
    finally:
        if swapped:
            with _lock:
                _active -= 1
                if not _active and isinstance(module.pexpect, _Pexpect):
                    module.pexpect = module.pexpect.real

"""Small helpers the test modules share."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import locale
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any


def tree(directory: Path, *, with_dirs: bool = False) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes), and with
    ``with_dirs`` every folder too (``"name/"`` -> ``b""``)."""
    files: dict[str, bytes] = {}
    for root, dirs, names in os.walk(directory):
        for name in names:
            path = Path(root) / name
            files[str(path.relative_to(directory))] = path.read_bytes()
        if with_dirs:
            for name in dirs:
                files[str((Path(root) / name).relative_to(directory)) + "/"] = b""
    return files


def journaled_run(wd: Path | str, stage: str, **options: Any) -> Any:
    """``stage`` run in memory (tests/fake_executor.py, every host ``ok``):
    the journal and the history of ``wd`` as a real run of it would leave
    them, where a test needs the progress but not the fleet's state."""
    from composable_upgrades.run.options import RunOptions
    from composable_upgrades.run.request import plan_run
    from composable_upgrades.run.stage_runner import run_request
    from composable_upgrades.state.journal import Journal
    from composable_upgrades.state.store import HistoryStore
    from composable_upgrades.state.workdir import Workdir
    from tests.fake_executor import FakeExecutor

    workdir = Workdir.at(wd)
    plan = workdir.load_plan()
    return run_request(plan, plan_run(plan, stage, RunOptions(**options)),
                       FakeExecutor(), journal=Journal(workdir.state_dir),
                       sink=HistoryStore(workdir.history_path))


def error_line(result: Result | subprocess.CompletedProcess) -> str:
    """The one line a failed command printed on stderr (and no traceback)."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- running ``openstack`` -------------------------------------------------------

#: The real executable, next to this Python.
OPENSTACK = Path(sys.executable).with_name("openstack")


@dataclasses.dataclass(frozen=True)
class Result:
    """What one ``openstack`` run gave: exit status and the two streams."""

    returncode: int
    stdout: str
    stderr: str


def cli(argv: Sequence[str], *, env: Mapping[str, str | None] | None = None,
        stdin: str = "", cwd: Path | str | None = None, process: bool = False,
        timeout: float = 300) -> Result:
    """``openstack <argv>``, by default in this process.

    The environment is this process's (``monkeypatch.setenv`` is honoured)
    updated with ``env``, where ``None`` removes a variable; stdin is
    ``stdin``, never a terminal. In-process, ``openstack``'s own entry point
    runs with ``sys.argv``, the environment, the working directory and the
    standard streams swapped for the call, and everything it changes in the
    process's globals (logging, warnings filters, locale, SIGINT handler) is
    put back after it, so no run sees another's; warnings go to its stderr,
    not to pytest's record. ``process=True`` runs the real executable
    instead, end to end.
    """
    environ = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = str(value)
    if process:
        done = subprocess.run([str(OPENSTACK), *argv], env=environ, cwd=cwd,
                              input=stdin, capture_output=True, text=True,
                              timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr)
    return _in_process(list(argv), environ, stdin, cwd)


def operator_env(home: Path, env: Mapping[str, str | None] | None = None
                 ) -> dict[str, str | None]:
    """The ``env`` of :func:`cli` for an operator whose HOME is ``home``:
    none of this process's OS_* variables nor OVERCLOUD_STACK_NAME, only
    ``env``'s."""
    unset: dict[str, str | None] = {
        name: None for name in os.environ
        if name.startswith("OS_") or name == "OVERCLOUD_STACK_NAME"}
    return {**unset, "HOME": str(home), **(env or {})}


def upgrade(*args: str, home: Path, env: Mapping[str, str | None] | None = None,
            **kwargs: Any) -> Result:
    """``openstack overcloud upgrade <args>`` run from ``home`` in
    :func:`operator_env`; ``kwargs`` go to :func:`cli`."""
    return cli(["overcloud", "upgrade", *args], cwd=home,
               env=operator_env(home, env), **kwargs)


# In-process runs swap process-wide state (os.environ, sys.std*, the working
# directory): one at a time.
_IN_PROCESS = threading.Lock()


def _in_process(argv: list[str], environ: dict[str, str], stdin: str,
                cwd: Path | str | None) -> Result:
    stdout, stderr = io.StringIO(), io.StringIO()
    with _IN_PROCESS, _process_state(environ, cwd):
        sys.argv = [str(OPENSTACK), *argv]
        sys.stdin = io.StringIO(stdin)
        sys.stdout, sys.stderr = stdout, stderr
        try:
            # the console script: sys.exit(main()), main() reads sys.argv[1:]
            status: object = _entry_point()()
        except SystemExit as exc:
            status = exc.code
        except Exception:  # what the interpreter prints for an uncaught one
            stderr.write(traceback.format_exc())
            status = 1
    if status is None:
        code = 0
    elif isinstance(status, int):
        code = status & 0xFF
    else:  # sys.exit("message")
        stderr.write(f"{status}\n")
        code = 1
    return Result(code, stdout.getvalue(), stderr.getvalue())


@functools.cache
def _entry_point() -> Callable[[], object]:
    """The ``main`` the ``openstack`` console script calls."""
    (script,) = metadata.entry_points(group="console_scripts", name="openstack")
    return script.load()


@contextlib.contextmanager
def _process_state(environ: dict[str, str], cwd: Path | str | None
                   ) -> Iterator[None]:
    """Swap in ``environ`` and ``cwd``; afterwards put back them, sys.argv,
    the standard streams, the root logger's handlers and level, every
    logger's level, the warnings filters, the locale and SIGINT's handler."""
    saved_environ = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = sys.argv, sys.stdin, sys.stdout, sys.stderr
    root = logging.getLogger()
    saved_handlers, saved_root_level = list(root.handlers), root.level
    saved_levels = {name: (logger.level, logger.disabled)
                    for name, logger in logging.Logger.manager.loggerDict.items()
                    if isinstance(logger, logging.Logger)}
    saved_locale = locale.setlocale(locale.LC_ALL)
    main_thread = threading.current_thread() is threading.main_thread()
    saved_sigint = signal.getsignal(signal.SIGINT) if main_thread else None
    os.environ.clear()
    os.environ.update(environ)
    root.handlers[:] = []  # as in a new process (pytest's own come back after)
    try:
        if cwd is not None:
            os.chdir(cwd)
        with warnings.catch_warnings():
            # as in the real process, a warning shown goes to stderr
            warnings.showwarning = _show_warning
            yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)
        sys.argv, sys.stdin, sys.stdout, sys.stderr = saved_streams
        for handler in root.handlers:
            if handler not in saved_handlers:
                handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_root_level)
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger):
                level, logger.disabled = saved_levels.get(
                    name, (logging.NOTSET, False))
                if logger.level != level:
                    logger.setLevel(level)
        locale.setlocale(locale.LC_ALL, saved_locale)
        if main_thread and saved_sigint is not None:
            signal.signal(signal.SIGINT, saved_sigint)


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: Any = None, line: str | None = None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

"""The stack's working directory and the one subfolder this project owns.

python-tripleoclient keeps its own files in ``~/overcloud-deploy/<stack>/``
(passwords, config-download, ...). Everything this project writes goes to
``<working-dir>/composable-upgrade/`` and nothing else there is touched::

    composable-upgrade/
      plan/              the current plan (playbooks, inventory, plan.json)
      plan.previous/     the plan it replaced, for diffs (see :mod:`.plan_swap`)
      state/             journal of finished units, run lock
      runs/              one ansible-runner folder per run
      history.sqlite     run history
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from composable_upgrades.errors import PlanNotFoundError, UnsafeNameError, WorkdirError
from composable_upgrades.planning.plan import PLAN_FORMAT
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.state.plan_swap import PROBE, PlanSwap

SUBDIR = "composable-upgrade"
PLAN_FILE = "plan.json"
HISTORY_FILE = "history.sqlite"
HASH_FILE = "plan.sha256"
#: Where the project writes, relative to its folder: none may be a symbolic
#: link (a write would land wherever it points).
WRITTEN_PATHS = ("plan", "plan.previous", "state", "runs", "history.sqlite",
                 "history.sqlite-wal", "history.sqlite-shm",
                 "history.sqlite-journal", "state/lock", "state/journal.jsonl")
# A stack name as Heat accepts it: a plain name, never a path.
_STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def check_stack_name(stack: str) -> str:
    """``stack`` if it is a plain stack name; :class:`UnsafeNameError` if not
    (it becomes a folder name: ``../../x`` would leave the working dirs)."""
    if not isinstance(stack, str) or not _STACK_NAME.fullmatch(stack) \
            or ".." in stack or len(stack) > 255:
        raise UnsafeNameError("stack", str(stack)[:80], reason=(
            "is not a stack name (letters, digits, '_', '-' and '.', starting "
            "with a letter)"))
    return stack


def default_working_dir(stack: str) -> str:
    """python-tripleoclient's working directory of ``stack``."""
    return os.path.join(os.path.expanduser("~"), "overcloud-deploy",
                        check_stack_name(stack))


def refuse_symlinks(root: str) -> None:
    """:class:`WorkdirError` naming the first of the project's folder and the
    paths it writes in it (:data:`WRITTEN_PATHS`) that is a symbolic link."""
    for path in (root, *(os.path.join(root, p) for p in WRITTEN_PATHS)):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise WorkdirError(f"cannot check: {exc.strerror}", path=path) from exc
        if stat.S_ISLNK(mode):
            raise WorkdirError(
                f"is a symbolic link (to {os.readlink(path)}); this tool writes "
                "only to files of its own folder: remove the link", path=path)


def content_hash(files: Mapping[str, str]) -> str:
    """sha256 over the files of a plan (paths and contents, in path order)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        data = files[path].encode("utf-8")
        digest.update(f"{path}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class Workdir:
    """The project's folders inside a stack's working directory."""

    path: str

    @classmethod
    def at(cls, working_dir: str | os.PathLike[str]) -> Workdir:
        """The project's folders inside ``working_dir``."""
        return cls(path=os.path.abspath(os.path.expanduser(os.fspath(working_dir))))

    @property
    def root(self) -> str:
        """The one folder of the working dir that this project writes."""
        return os.path.join(self.path, SUBDIR)

    @property
    def plan_dir(self) -> str:
        return os.path.join(self.root, "plan")

    @property
    def previous_plan_dir(self) -> str:
        return os.path.join(self.root, "plan.previous")

    @property
    def state_dir(self) -> str:
        return os.path.join(self.root, "state")

    @property
    def runs_dir(self) -> str:
        return os.path.join(self.root, "runs")

    @property
    def history_path(self) -> str:
        return os.path.join(self.root, HISTORY_FILE)

    def has_plan(self) -> bool:
        """True if a plan has been prepared here."""
        return os.path.isfile(os.path.join(self.plan_dir, PLAN_FILE))

    def load_plan(self, which: str = "current") -> PreparedPlan:
        """The current (or ``"previous"``) prepared plan."""
        directory = self.plan_dir if which == "current" else self.previous_plan_dir
        return load_plan_dir(directory)

    def ensure(self) -> None:
        """Create the project's folder; :class:`WorkdirError` if not writable
        or if a path it writes is a symbolic link."""
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise WorkdirError(f"working directory is not writable: "
                               f"{exc.strerror}", path=self.path) from exc
        refuse_symlinks(self.root)
        try:
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=PROBE)
            probe.close()
        except OSError as exc:
            raise WorkdirError(f"working directory is not writable: "
                               f"{exc.strerror}", path=self.path) from exc

    def recover(self) -> list[str]:
        """Finish or undo what a killed prepare left (call it holding the
        lock); returns what was done, for notes (see :meth:`.PlanSwap.recover`)."""
        return self.swap.recover()

    @property
    def swap(self) -> PlanSwap:
        """The swap of a new plan folder for the current one."""
        return PlanSwap(self.root, self.plan_dir, self.previous_plan_dir)

    def write_plan(self, files: Mapping[str, str], digest: str | None = None, *,
                   then: Callable[[bool], None] | None = None) -> bool:
        """Write a plan's files and swap them in; False if nothing changed.

        The files go to a temporary folder first and are renamed into place,
        the plan they replace kept as ``plan.previous``: a failure leaves the
        current plan as it was. ``then(changed)`` runs last (prepare records
        itself there): if it raises, the swap is undone before the error
        goes on.
        """
        self.ensure()
        digest = digest or content_hash(files)
        if self.has_plan() and _read_hash(self.plan_dir) == digest \
                and _on_disk_hash(self.plan_dir, files) == digest:
            if then:
                then(False)
            return False
        swap = self.swap
        staging = swap.staging()
        try:
            commit, undo = swap.swap_in(
                staging, [*sorted(files.items()), (HASH_FILE, digest + "\n")])
        except OSError as exc:
            raise WorkdirError(f"cannot write the plan: {exc.strerror}",
                               path=self.root) from exc
        try:
            if then:
                then(True)
        except BaseException:
            undo()
            raise
        commit()
        return True


def _on_disk_hash(directory: str, files: Mapping[str, str]) -> str | None:
    """Hash of the plan files as they are on disk (None if one is missing).

    "Unchanged" must mean the files are intact, not just that the recorded
    hash matches: a crash can leave a renamed folder with short files.
    """
    found = {}
    for relative in files:
        try:
            # newline="": as written (a kept hook playbook may have CRLFs).
            with open(os.path.join(directory, relative), encoding="utf-8",
                      newline="") as handle:
                found[relative] = handle.read()
        except (OSError, UnicodeDecodeError):
            return None
    return content_hash(found)


def _read_hash(directory: str) -> str | None:
    try:
        with open(os.path.join(directory, HASH_FILE), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def load_plan_dir(directory: str) -> PreparedPlan:
    """The plan prepared in ``directory`` (a plan folder)."""
    path = os.path.join(directory, PLAN_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError as exc:
        raise PlanNotFoundError("no upgrade plan here: run 'openstack overcloud "
                                "upgrade prepare' first", path=directory) from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise WorkdirError(f"cannot read the plan ({_one_line(exc)}): {REPAIR}",
                           path=path) from exc
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise WorkdirError("plan written by another version of this tool, or "
                           f"damaged: {REPAIR}", path=path)
    try:
        return PreparedPlan.from_dict(data, path=directory,
                                      sha256=_read_hash(directory) or "")
    except WorkdirError as exc:  # the plan's own check: say how to repair
        detail = str(exc).removeprefix(f"{exc.path}: ").split(";")[0]
        raise WorkdirError(f"{detail}: {REPAIR}", path=path) from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise WorkdirError(f"the plan is damaged ({type(exc).__name__}: "
                           f"{_one_line(exc)}): {REPAIR}", path=path) from exc


#: What to do about a plan that cannot be read.
REPAIR = ("run 'openstack overcloud upgrade prepare --force' to write it again")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]

"""The stack's working directory and the one subfolder this project owns.

python-tripleoclient keeps its own files in ``~/overcloud-deploy/<stack>/``
(passwords, config-download, ...). Everything this project writes goes to
``<working-dir>/composable-upgrade/`` and nothing else there is touched::

    composable-upgrade/
      plan/              the current plan (playbooks, inventory, plan.json)
      plan.previous/     the plan it replaced, for diffs
      state/             journal of finished units, run lock
      runs/              one ansible-runner folder per run
      history.sqlite     run history
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from composable_upgrades.errors import PlanNotFoundError, WorkdirError
from composable_upgrades.planning.plan import PLAN_FORMAT
from composable_upgrades.planning.prepared import PreparedPlan

SUBDIR = "composable-upgrade"
PLAN_FILE = "plan.json"
HASH_FILE = "plan.sha256"


def default_working_dir(stack: str) -> str:
    """python-tripleoclient's working directory of ``stack``."""
    return os.path.join(os.path.expanduser("~"), "overcloud-deploy", stack)


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
        return os.path.join(self.root, "history.sqlite")

    def has_plan(self) -> bool:
        """True if a plan has been prepared here."""
        return os.path.isfile(os.path.join(self.plan_dir, PLAN_FILE))

    def load_plan(self, which: str = "current") -> PreparedPlan:
        """The current (or ``"previous"``) prepared plan."""
        directory = self.plan_dir if which == "current" else self.previous_plan_dir
        return load_plan_dir(directory)

    def ensure(self) -> None:
        """Create the project's folder; :class:`WorkdirError` if not writable."""
        try:
            os.makedirs(self.root, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-")
            probe.close()
        except OSError as exc:
            raise WorkdirError(f"working directory is not writable: "
                               f"{exc.strerror}", path=self.path) from exc

    def _swap_in(self, staging: str) -> None:
        """Make ``staging`` the plan, the plan ``plan.previous``; undo on error."""
        if not os.path.isdir(self.plan_dir):
            os.rename(staging, self.plan_dir)
            return
        aside = None
        if os.path.isdir(self.previous_plan_dir):
            aside = tempfile.mkdtemp(prefix=".previous.old-", dir=self.root)
            os.rename(self.previous_plan_dir, os.path.join(aside, "plan"))
        try:
            os.rename(self.plan_dir, self.previous_plan_dir)
            try:
                os.rename(staging, self.plan_dir)
            except OSError:
                os.rename(self.previous_plan_dir, self.plan_dir)
                raise
        except OSError:
            if aside:
                os.rename(os.path.join(aside, "plan"), self.previous_plan_dir)
                os.rmdir(aside)
            raise
        if aside:
            shutil.rmtree(aside, ignore_errors=True)

    def write_plan(self, files: Mapping[str, str], digest: str | None = None) -> bool:
        """Write a plan's files and swap them in; False if nothing changed.

        The files go to a temporary folder first and are renamed into place,
        the plan they replace kept as ``plan.previous``: a failure leaves the
        current plan as it was.
        """
        self.ensure()
        digest = digest or content_hash(files)
        if self.has_plan() and _read_hash(self.plan_dir) == digest \
                and _on_disk_hash(self.plan_dir, files) == digest:
            return False
        staging = tempfile.mkdtemp(prefix=".plan.tmp-", dir=self.root)
        try:
            for relative, text in sorted(files.items()):
                target = os.path.join(staging, relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w", encoding="utf-8") as handle:
                    handle.write(text)
            with open(os.path.join(staging, HASH_FILE), "w", encoding="utf-8") as handle:
                handle.write(digest + "\n")
            self._swap_in(staging)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise WorkdirError(f"cannot write the plan: {exc.strerror}",
                               path=self.root) from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return True


def _on_disk_hash(directory: str, files: Mapping[str, str]) -> str | None:
    """Hash of the plan files as they are on disk (None if one is missing).

    "Unchanged" must mean the files are intact, not just that the recorded
    hash matches: a crash can leave a renamed folder with short files.
    """
    found = {}
    for relative in files:
        try:
            with open(os.path.join(directory, relative), encoding="utf-8") as handle:
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
    except (OSError, ValueError) as exc:
        raise WorkdirError(f"cannot read the plan: {exc}", path=path) from exc
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise WorkdirError("plan written by another version of this tool: "
                           "prepare it again", path=path)
    return PreparedPlan.from_dict(data, path=directory,
                                  sha256=_read_hash(directory) or "")

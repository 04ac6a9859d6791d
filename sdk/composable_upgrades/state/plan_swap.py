"""Putting a new plan folder in place of the current one, all at once.

The new plan's files go to a staging folder first; renames then make it the
plan and the plan it replaces ``plan.previous`` (the one that was there set
aside until the swap is committed), so a failure at any point leaves the
current plan as it was. :meth:`PlanSwap.recover` finishes or undoes what a
swap cut off by a kill left.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Left behind by a prepare that was killed: a new plan being written, the
# plan.previous being replaced, a writability probe.
STAGING = ".plan.tmp-"
ASIDE = ".previous.old-"
PROBE = ".probe-"


@dataclass(frozen=True)
class PlanSwap:
    """The swap of ``plan_dir`` and ``previous_dir``, both in ``root``."""

    root: str
    plan_dir: str
    previous_dir: str

    def staging(self) -> str:
        """A new, empty staging folder for :meth:`swap_in`."""
        return tempfile.mkdtemp(prefix=STAGING, dir=self.root)

    def swap_in(self, staging: str, files: Iterable[tuple[str, str]]
                ) -> tuple[Callable[[], None], Callable[[], None]]:
        """Write ``files`` (relative path, text; in that order) to ``staging``
        and make it the plan, the plan ``plan.previous``.

        Returns ``(commit, undo)``: ``commit`` drops the plan.previous that
        was replaced, ``undo`` puts everything back as it was before. On an
        error ``staging`` is removed and nothing else has changed.
        """
        try:
            for relative, text in files:
                target = os.path.join(staging, relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w", encoding="utf-8") as handle:
                    handle.write(text)
            return self._rename_in(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _rename_in(self, staging: str) -> tuple[Callable[[], None], Callable[[], None]]:
        """Make ``staging`` the plan, the plan ``plan.previous``; undo on error."""
        if not os.path.isdir(self.plan_dir):
            os.rename(staging, self.plan_dir)
            return (lambda: None), (lambda: self._discard(self.plan_dir))
        aside = None
        if os.path.isdir(self.previous_dir):
            aside = tempfile.mkdtemp(prefix=ASIDE, dir=self.root)
            os.rename(self.previous_dir, os.path.join(aside, "plan"))
        try:
            os.rename(self.plan_dir, self.previous_dir)
            try:
                os.rename(staging, self.plan_dir)
            except OSError:
                os.rename(self.previous_dir, self.plan_dir)
                raise
        except OSError:
            if aside:
                os.rename(os.path.join(aside, "plan"), self.previous_dir)
                os.rmdir(aside)
            raise

        def commit() -> None:
            if aside:
                shutil.rmtree(aside, ignore_errors=True)

        def undo() -> None:
            self._discard(self.plan_dir)
            os.rename(self.previous_dir, self.plan_dir)
            if aside:
                os.rename(os.path.join(aside, "plan"), self.previous_dir)
                os.rmdir(aside)
        return commit, undo

    def _discard(self, directory: str) -> None:
        """Remove ``directory`` (renamed first, so it goes at once)."""
        trash = tempfile.mkdtemp(prefix=STAGING, dir=self.root)
        os.rename(directory, os.path.join(trash, "plan"))
        shutil.rmtree(trash, ignore_errors=True)

    def recover(self) -> list[str]:
        """Finish or undo what a killed swap left (call it holding the lock);
        returns what was done, for notes.

        A kill between the renames of a swap can leave no ``plan`` (it was
        renamed to ``plan.previous``) or no ``plan.previous`` (it was set
        aside): both are put back; staging folders and probes are removed.
        """
        done = []
        try:
            names = sorted(os.listdir(self.root))
        except OSError:
            return done
        asides = [os.path.join(self.root, n) for n in names if n.startswith(ASIDE)]
        if not os.path.isdir(self.plan_dir) and os.path.isdir(self.previous_dir):
            os.rename(self.previous_dir, self.plan_dir)
            done.append("put back the plan a killed prepare had moved aside")
        for aside in asides:
            kept = os.path.join(aside, "plan")
            if not os.path.exists(self.previous_dir) and os.path.isdir(kept):
                os.rename(kept, self.previous_dir)
            shutil.rmtree(aside, ignore_errors=True)
        leftovers = [n for n in names if n.startswith((STAGING, PROBE))]
        for name in leftovers:
            path = os.path.join(self.root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        if leftovers or asides:
            done.append(f"removed {len(leftovers) + len(asides)} temporary "
                        "folders a killed prepare left")
        return done

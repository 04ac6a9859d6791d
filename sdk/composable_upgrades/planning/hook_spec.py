"""A hooks file, read and checked, and its copy kept in a plan folder.

A hooks file names, for each point of a stage (:data:`POINTS`), playbooks
to run there or built-in hooks (:data:`BUILTINS`); a relative path is
relative to the hooks file. :meth:`HooksSpec.load` reads one;
:func:`keep_hooks` turns it into the files ``prepare --hooks-file`` keeps in
the plan folder, and the ``hooks`` entry of ``plan.json``
(:class:`KeptHooks` once read back), so the plan's runs use them and a plan
diff shows their changes. Running them is :mod:`composable_upgrades.run.hooks`'s.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.errors import InputFileError
from composable_upgrades.formats.serialize import (
    load_yaml_file, read_regular_file, to_yaml)

#: The points of a stage where hooks run, in the order they come.
POINTS = ("pre_stage", "pre_batch", "post_batch", "post_stage")
#: The built-in hooks a hooks file may name, and the point each belongs to.
BUILTINS = {"nova-drain": "pre_batch", "nova-undrain": "post_batch"}
#: Where a plan folder keeps its hooks: the hooks file, its playbooks beside it.
KEPT_DIR = "hooks"
KEPT_FILE = f"{KEPT_DIR}/hooks.yaml"


@dataclass(frozen=True)
class HookEntry:
    """One entry of a hooks file: a playbook (absolute path) or a built-in.

    ``name`` is the entry as the hooks file gives it: the journal, the
    history and messages call the hook by it.
    """

    point: str
    name: str
    playbook: str | None = None
    builtin: str | None = None


@dataclass(frozen=True)
class HooksSpec:
    """The entries of a hooks file (``source``), by point."""

    source: str
    by_point: Mapping[str, tuple[HookEntry, ...]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HooksSpec:
        """The hooks of a hooks file; every playbook it names must exist."""
        path = os.path.abspath(os.fspath(path))
        data = load_yaml_file(path, "hooks file")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InputFileError("expected a mapping of "
                                 f"{', '.join(POINTS)} to lists of playbooks",
                                 path=path)
        unknown = sorted(str(k) for k in data if k not in POINTS)
        if unknown:
            raise InputFileError(f"unknown hook point {unknown[0]!r} (points: "
                                 f"{', '.join(POINTS)})", path=path)
        base = os.path.dirname(path)
        by_point: dict[str, tuple[HookEntry, ...]] = {}
        for point in POINTS:
            entries = data.get(point) or []
            if isinstance(entries, str):
                entries = [entries]
            if not isinstance(entries, list) or not all(
                    isinstance(e, str) and e.strip() for e in entries):
                raise InputFileError(f"{point}: expected a list of playbook paths",
                                     path=path)
            by_point[point] = tuple(hook_entry(point, e.strip(), base, path)
                                    for e in entries)
        return cls(source=path, by_point=by_point)


def hook_entry(point: str, entry: str, base: str, source: str) -> HookEntry:
    """The hook ``entry`` names at ``point``: a built-in, or a playbook that
    exists (relative to ``base``); :class:`InputFileError` naming ``source``."""
    if entry in BUILTINS:
        if BUILTINS[entry] != point:
            raise InputFileError(f"{point}: the built-in hook {entry!r} runs at "
                                 f"{BUILTINS[entry]}", path=source)
        return HookEntry(point, entry, builtin=entry)
    playbook = os.path.normpath(os.path.join(base, os.path.expanduser(entry)))
    if not os.path.isfile(playbook):
        raise InputFileError(f"{point}: no such playbook {entry!r} ({playbook})",
                             path=source)
    return HookEntry(point, entry, playbook=playbook)


@dataclass(frozen=True)
class KeptHook:
    """A hook of a plan: its name, and its playbook's copy in the plan folder
    (relative path and sha256), or the built-in it is."""

    point: str
    name: str
    playbook: str | None = None
    sha256: str | None = None
    builtin: str | None = None


@dataclass(frozen=True)
class KeptHooks:
    """The hooks a plan keeps (``plan.json``'s ``hooks``): where they came
    from, the kept hooks file, and the hooks by point."""

    source: str
    file: str
    by_point: Mapping[str, tuple[KeptHook, ...]]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeptHooks:
        """Read back what :func:`keep_hooks` wrote."""
        return cls(source=data["source"], file=data["file"], by_point={
            point: tuple(KeptHook(point, h["name"], playbook=h.get("playbook"),
                                  sha256=h.get("sha256"), builtin=h.get("builtin"))
                         for h in data["points"].get(point) or ())
            for point in POINTS})

    def hooks(self) -> list[KeptHook]:
        """Every hook, point after point."""
        return [h for point in POINTS for h in self.by_point.get(point, ())]


def keep_hooks(spec: HooksSpec) -> tuple[dict[str, str], dict[str, Any]]:
    """The files of ``spec`` to keep in a plan folder (relative path -> text)
    and the ``hooks`` entry of ``plan.json``.

    Each playbook is copied byte for byte as ``hooks/NN-<name>`` (NN: its
    order of first mention), and the hooks file as ``hooks/hooks.yaml``
    naming those copies; the same hooks file gives the same files.
    """
    files: dict[str, str] = {}
    copies: dict[str, str] = {}
    points: dict[str, list[dict[str, Any]]] = {}
    rewritten: dict[str, list[str]] = {}
    for point in POINTS:
        points[point], rewritten[point] = [], []
        for entry in spec.by_point.get(point, ()):
            if entry.builtin is not None:
                points[point].append({"name": entry.name, "builtin": entry.builtin})
                rewritten[point].append(entry.builtin)
                continue
            assert entry.playbook is not None
            kept = copies.get(entry.playbook)
            if kept is None:
                kept = (f"{KEPT_DIR}/{len(copies) + 1:02d}-"
                        f"{os.path.basename(entry.playbook)}")
                copies[entry.playbook] = kept
                files[kept] = _playbook_text(entry.playbook, spec.source)
            points[point].append({
                "name": entry.name, "playbook": kept,
                "sha256": hashlib.sha256(files[kept].encode("utf-8")).hexdigest()})
            rewritten[point].append(os.path.basename(kept))
    files[KEPT_FILE] = to_yaml(rewritten, header=(
        f"The hooks of this plan, kept from {spec.source}\n"
        "(playbooks copied beside this file)."))
    return files, {"source": spec.source, "file": KEPT_FILE, "points": points}


def _playbook_text(path: str, source: str) -> str:
    """A hook playbook's text (UTF-8; Ansible, not prepare, reads its plays)."""
    try:
        return read_regular_file(path).decode("utf-8")
    except OSError as exc:
        raise InputFileError(f"cannot read hook playbook {path}: {exc.strerror}",
                             path=source) from exc
    except UnicodeDecodeError as exc:
        raise InputFileError(f"hook playbook {path} is not UTF-8 text (byte "
                             f"{exc.start})", path=source) from exc

"""The releases an upgrade goes from and to, as far as its data tells them.

Stack outputs prepared for an upgrade describe the release being installed:
every service's container images (``ContainerNovaComputeImage``,
``container_image``, ``galera_image``... with the release's tag), and
sometimes release fields of their own (``release_from``/``release_to``, or
with a prefix such as the demo's ``demo_release_from``). The release an
overcloud runs now is only known from such fields: the images of the
outputs are the target's. :func:`find_releases` reads both from any data
(the outputs, or a plan folder's inventory and task files); moving tags such
as pacemaker's ``pcmklatest`` name no release and are left out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: A key that holds the release upgraded from or to (its group says which).
RELEASE_KEY = re.compile(r"(?:^|_)(?:release_(from|to)|(from|to)_release)$", re.I)
#: A key that holds a container image reference.
IMAGE_KEY = re.compile(r"(?:(?:^|_)image(?:_latest)?|Image)$")
#: ``registry[:port]/namespace/name:tag`` (no digest, no template).
IMAGE_REF = re.compile(r"^(?P<repository>[\w.-]+(?::\d+)?(?:/[\w.-]+)*)/"
                       r"(?P<name>[\w.-]+):(?P<tag>\w[\w.-]{0,127})$")
#: Tags that follow whatever release is deployed: not a release.
MOVING_TAGS = frozenset({"pcmklatest", "latest"})


@dataclass(frozen=True)
class ImageRelease:
    """Container images of one repository at one tag."""

    repository: str
    tag: str
    images: tuple[str, ...]


@dataclass(frozen=True)
class Releases:
    """What the data tells of the releases: ``release_from`` and
    ``release_to`` from release fields (None when absent), and the container
    images it deploys, by repository and tag, the most used first."""

    release_from: str | None = None
    release_to: str | None = None
    images: tuple[ImageRelease, ...] = ()

    @property
    def known(self) -> bool:
        """True when the data told anything about a release."""
        return bool(self.release_from or self.release_to or self.images)

    def lines(self) -> list[str]:
        """One line per fact, for a person: ``release 17.1 -> 18.0``,
        ``container images -> quay.io/ns/*:tag (27 images)``."""
        found = []
        if self.release_from or self.release_to:
            found.append(f"release {self.release_from or '?'} -> "
                         f"{self.release_to or '?'}")
        for group in self.images:
            count = len(group.images)
            found.append(f"container images -> {group.repository}/*:{group.tag} "
                         f"({count} image{'s' if count != 1 else ''})")
        return found

    def rows(self) -> tuple[list[str], list[tuple]]:
        """The same as a table: what, from, to."""
        rows: list[tuple] = []
        if self.release_from or self.release_to:
            rows.append(("release", self.release_from or "", self.release_to or ""))
        rows.extend((f"images {g.repository}/* ({len(g.images)})", "", g.tag)
                    for g in self.images)
        return ["What", "From", "To"], rows


def find_releases(*documents: Any) -> Releases:
    """The releases that ``documents`` (nested mappings and lists: stack
    outputs, an inventory, task lists) tell of."""
    fields: dict[str, str] = {}
    images: dict[tuple[str, str], set[str]] = {}
    for key, value in _leaves(documents):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            continue
        release = RELEASE_KEY.search(key)
        if release:
            fields.setdefault((release.group(1) or release.group(2)).lower(), str(value))
            continue
        if isinstance(value, str) and IMAGE_KEY.search(key):
            ref = IMAGE_REF.match(value.strip())
            if ref and ref["tag"] not in MOVING_TAGS:
                images.setdefault((ref["repository"], ref["tag"]), set()).add(ref["name"])
    groups = sorted(images.items(), key=lambda item: (-len(item[1]), item[0]))
    return Releases(
        release_from=fields.get("from"), release_to=fields.get("to"),
        images=tuple(ImageRelease(repository, tag, tuple(sorted(names)))
                     for (repository, tag), names in groups))


def plan_folder_releases(path: str | os.PathLike[str]) -> Releases:
    """The releases a plan folder's inventory and task files tell of (what
    a prepared plan keeps of the outputs)."""
    from composable_upgrades.formats.serialize import load_yaml, read_regular_file

    folder = os.fspath(path)
    names = ["inventory.yaml"]
    for root, dirs, files in os.walk(os.path.join(folder, "tasks")):
        dirs.sort()
        names += [os.path.join(root, n) for n in sorted(files) if n.endswith(".yaml")]
    documents = []
    for name in names:
        try:
            documents.append(load_yaml(read_regular_file(os.path.join(folder, name))))
        except (OSError, ValueError):  # a plan folder's own files; best effort
            continue
    return find_releases(*documents)


def _leaves(data: Any, key: str = "") -> Iterable[tuple[str, Any]]:
    """(nearest key, value) of every scalar in ``data``."""
    stack = [(key, data)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, Mapping):
            stack.extend((str(k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, (list, tuple)):
            stack.extend((key, v) for v in reversed(value))
        else:
            yield key, value

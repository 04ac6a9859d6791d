"""The YAML files shipped in :mod:`composable_upgrades.data`: built-in
defaults (stage catalog, dependencies, converge tasks) and the demo overcloud."""

from __future__ import annotations

import contextlib
import pathlib
from importlib import resources
from typing import Any

from composable_upgrades.formats.serialize import load_yaml

DATA_PACKAGE = "composable_upgrades.data"

# Keeps data files extracted from a zipped install alive for the process.
_EXTRACTED = contextlib.ExitStack()


def load_package_yaml(name: str) -> Any:
    """The data of the package YAML file ``name`` (``"dependencies.yaml"``)."""
    return load_yaml(resources.files(DATA_PACKAGE).joinpath(name).read_text(
        encoding="utf-8"))


def package_text(name: str) -> str:
    """The text of the package data file ``name``."""
    return resources.files(DATA_PACKAGE).joinpath(name).read_text(encoding="utf-8")


def package_data_path(name: str) -> str:
    """A file system path of the package data file ``name``, for commands
    that take a file (extracted for the process when installed zipped)."""
    resource = resources.files(DATA_PACKAGE).joinpath(name)
    if isinstance(resource, pathlib.Path):
        return str(resource)
    return str(_EXTRACTED.enter_context(resources.as_file(resource)))  # pragma: no cover

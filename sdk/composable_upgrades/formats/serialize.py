"""YAML and JSON: deterministic text for the files the SDK writes, and the
reading of the YAML input files operators give it."""

from __future__ import annotations

import json
from typing import Any

import yaml

from composable_upgrades.errors import InputFileError

try:  # libyaml is ten times faster on the ~1 MB outputs of a real stack
    _Base: type = yaml.CSafeDumper
    #: The SDK's one YAML loader: safe, in C when PyYAML has libyaml.
    YAML_LOADER: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeDumper
    YAML_LOADER = yaml.SafeLoader


class _Dumper(_Base):  # type: ignore[misc, valid-type]
    """Block style; multi-line strings as literal blocks, for review."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", str.__str__(value),
                                   style=style)


_Dumper.add_representer(str, _represent_str)
# str subclasses too (the string enums of model.kinds): written as their text.
_Dumper.add_multi_representer(str, _represent_str)


def to_yaml(data: Any, *, header: str | None = None) -> str:
    """YAML text of ``data`` (key order kept), with an optional comment header."""
    text = yaml.dump(data, Dumper=_Dumper, default_flow_style=False,
                     sort_keys=False, allow_unicode=True, width=4096)
    if header:
        comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
        text = comment + text
    return text


def to_json(data: Any) -> str:
    """Indented JSON text of ``data`` (key order kept), newline-terminated."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def load_yaml(text: str | bytes) -> Any:
    """The data of one YAML document, read with :data:`YAML_LOADER`."""
    return yaml.load(text, Loader=YAML_LOADER)  # noqa: S506 - a safe loader


def load_yaml_file(path: str, what: str) -> Any:
    """The data of the YAML input file ``path`` (``what`` names it in errors)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise InputFileError(f"cannot read {what}: {exc.strerror}",
                             path=path) from exc
    try:
        return load_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{what} is not UTF-8 text (byte {exc.start} is "
                             f"0x{raw[exc.start]:02x})", path=path) from exc
    except yaml.YAMLError as exc:
        raise InputFileError(f"not valid YAML: {exc}".replace("\n", " "),
                             path=path) from exc

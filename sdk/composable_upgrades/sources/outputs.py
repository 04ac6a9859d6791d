"""Stack outputs: the data Heat computes for a deployed overcloud.

:class:`StackOutputs` is a read-only mapping of output key to value, loaded
from an outputs file in any of the shapes users have, from a tripleo-common
config-download directory, or from Heat (:mod:`composable_upgrades.sources.heat`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from composable_upgrades.errors import HeatError, OutputsError
from composable_upgrades.formats.serialize import load_yaml


@dataclass(frozen=True)
class StackOutputs(Mapping[str, Any]):
    """Stack outputs by key, with where they came from.

    ``source`` names the file, directory or stack they were read from; it is
    what error messages cite. ``stack`` and ``status`` are known when the
    source was a stack (Heat or a ``stack show`` file).
    """

    data: Mapping[str, Any]
    source: str
    stack: str | None = None
    status: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "<outputs>",
                     stack: str | None = None) -> StackOutputs:
        """Outputs from already parsed data in any accepted shape.

        Accepted: the Heat API list ``[{"output_key", "output_value"}]``, a
        ``stack show`` object (its ``outputs``), ``stack output show --all``
        (``{key: {"output_key", "output_value"}}``) and a plain mapping.
        """
        status = None
        if isinstance(data, Mapping) and isinstance(data.get("outputs"), list):
            stack = stack or data.get("stack_name")
            status = data.get("stack_status")
            data = data["outputs"]
        if isinstance(data, list):
            values = {}
            for index, item in enumerate(data):
                if not (isinstance(item, Mapping) and "output_key" in item):
                    raise OutputsError(
                        f"item {index} of the outputs list is not an "
                        "{output_key, output_value} object", source=source)
                values[str(item["output_key"])] = item.get("output_value")
        elif isinstance(data, Mapping):
            data = _decode_output_show(data)
            if data and all(isinstance(v, Mapping) and "output_key" in v
                            and "output_value" in v for v in data.values()):
                values = {str(v["output_key"]): v["output_value"]
                          for v in data.values()}
            else:
                values = {str(k): v for k, v in data.items()}
        else:
            raise OutputsError(
                f"expected a mapping or a list of outputs, got "
                f"{type(data).__name__}", source=source)
        return cls(data=values, source=source, stack=stack, status=status)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> StackOutputs:
        """Outputs from a JSON or YAML file (see :meth:`from_mapping`)."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise OutputsError(f"cannot read outputs file: {exc.strerror}",
                               source=path) from exc
        if not raw.strip():
            raise OutputsError("outputs file is empty", source=path)
        return cls.from_mapping(_parse_document(raw, path), source=path)

    @classmethod
    def from_config_download(cls, directory: str | os.PathLike[str]
                             ) -> StackOutputs:
        """Outputs rebuilt from a tripleo-common config-download directory."""
        from composable_upgrades.sources.config_download import read_config_download
        directory = os.fspath(directory)
        return cls(data=read_config_download(directory), source=directory)

    @classmethod
    def from_heat(cls, stack: str, **kwargs: Any) -> StackOutputs:
        """All outputs of ``stack`` read from Heat (see :mod:`.heat` for the
        keyword arguments); a stack without a ``RoleData`` output is refused."""
        from composable_upgrades.sources import heat
        found = heat.fetch_stack(stack, **kwargs)
        try:
            outputs = cls.from_mapping(found.outputs, source=found.source)
        except OutputsError as exc:  # a Heat answer: say it is Heat's fault
            raise HeatError(exc.detail, source=found.source) from exc
        if heat.REQUIRED_OUTPUT not in outputs:
            shown = ", ".join(sorted(outputs)[:10]) or "none"
            raise HeatError(
                f"stack has no {heat.REQUIRED_OUTPUT} output (outputs: {shown}); "
                "is it an overcloud stack?", source=found.source)
        extra = {"output_errors": found.output_errors} if found.output_errors else {}
        return cls(data=outputs.data, source=found.source, stack=found.name,
                   status=found.status, extra=extra)


def _decode_output_show(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Undo ``openstack stack output show --all -f json|yaml``'s encoding.

    python-heatclient prints each output there as a JSON string holding
    ``{output_key, output_value, description}``.
    """
    if not data or not all(isinstance(v, str) and v.startswith("{")
                           for v in data.values()):
        return data
    decoded = {}
    for key, value in data.items():
        try:
            item = json.loads(value)
        except ValueError:
            return data
        if not (isinstance(item, Mapping) and "output_key" in item
                and "output_value" in item):
            return data
        decoded[key] = item
    return decoded


def _parse_document(raw: bytes, path: str) -> Any:
    """Parse JSON, falling back to YAML; errors name the position."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise OutputsError("outputs file is not UTF-8 text",
                           source=path) from exc
    except ValueError as json_error:
        if raw.lstrip()[:1] in (b"{", b"["):
            # JSON that does not parse is truncated or corrupt; YAML would
            # only produce a less helpful message for it.
            raise OutputsError(
                f"not valid JSON (line {json_error.lineno}, column "
                f"{json_error.colno}: {json_error.msg}); the file may be "
                "truncated", source=path) from json_error
    try:
        return load_yaml(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (f" (line {mark.line + 1}, column {mark.column + 1})"
                 if mark is not None else "")
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise OutputsError(f"not valid JSON or YAML{where}: {problem}",
                           source=path) from exc

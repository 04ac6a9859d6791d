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
from composable_upgrades.formats.serialize import (
    UnsafeDocument, check_data, load_yaml, read_regular_file)


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
            raw = read_regular_file(path)
        except OSError as exc:
            raise OutputsError(f"cannot read outputs file: {exc.strerror}",
                               source=path) from exc
        if not raw.strip():
            raise OutputsError("outputs file is empty", source=path)
        if raw.lstrip().startswith(b"+-"):
            raise OutputsError("a table; expected JSON or YAML; use `-f json`",
                               source=path)
        data = _parse_document(raw, path)
        if data is None:
            raise OutputsError("outputs file holds no data (only comments, "
                               "or truncated)", source=path)
        return cls.from_mapping(data, source=path)

    def check_finished(self, *, force: bool = False) -> None:
        """Refuse the outputs of a stack whose last action failed or is still
        going (a ``stack show`` file says so), unless ``force``; Heat's are
        checked as they are fetched (``allow_status``)."""
        status = str(self.status or "")
        if not force and ("FAILED" in status or "IN_PROGRESS" in status):
            which = f"stack {self.stack}" if self.stack else "the stack"
            raise OutputsError(f"{which} is {status}; pass --force to use its "
                               "outputs anyway", source=self.source)

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
        problem = check_data(found.outputs)
        if problem:
            raise HeatError(f"outputs cannot be used: {problem}", source=found.source)
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


class _DuplicateKey(ValueError):
    """A JSON object that gives a key twice (``json`` keeps the last)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _parse_document(raw: bytes, path: str) -> Any:
    """Parse JSON, falling back to YAML; errors name the position.

    Anything the parsers raise besides a syntax error (deep nesting, a
    5,000-digit integer, a lone surrogate) is an :class:`OutputsError` too.
    """
    try:
        data = json.loads(raw, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise OutputsError("outputs file is not UTF-8 text",
                           source=path) from exc
    except _DuplicateKey as exc:
        raise OutputsError(f"a JSON object gives the key {str(exc)[:60]!r} "
                           "twice (one of them would be lost)",
                           source=path) from exc
    except RecursionError as exc:
        raise OutputsError("nested too deeply to be stack outputs",
                           source=path) from exc
    except json.JSONDecodeError as json_error:
        if raw.lstrip()[:1] in (b"{", b"["):
            # JSON that does not parse is truncated or corrupt; YAML would
            # only produce a less helpful message for it.
            raise OutputsError(
                f"not valid JSON (line {json_error.lineno}, column "
                f"{json_error.colno}: {json_error.msg}); the file may be "
                "truncated", source=path) from json_error
    except ValueError as exc:  # e.g. an integer too long to convert
        raise OutputsError(f"cannot be read: {exc}", source=path) from exc
    else:
        problem = check_data(data)
        if problem:
            raise OutputsError(f"cannot be used: {problem}", source=path)
        return data
    try:
        return load_yaml(raw)
    except UnsafeDocument as exc:
        raise OutputsError(f"refused: {exc.problem}{_where(exc)}",
                           source=path) from exc
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise OutputsError(f"not valid JSON or YAML{_where(exc)}: {problem}",
                           source=path) from exc
    except RecursionError as exc:
        raise OutputsError("nested too deeply to be stack outputs",
                           source=path) from exc
    except ValueError as exc:
        raise OutputsError(f"cannot be read: {exc}", source=path) from exc


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return (f" (line {mark.line + 1}, column {mark.column + 1})"
            if mark is not None else "")

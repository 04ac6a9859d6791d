"""YAML and JSON: deterministic text for the files the SDK writes, and the
reading of the YAML input files operators give it."""

from __future__ import annotations

import errno
import json
import os
import stat
from typing import Any

import yaml

from composable_upgrades.errors import InputFileError

try:  # libyaml is ten times faster on the ~1 MB outputs of a real stack
    _Base: type = yaml.CSafeDumper
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeDumper
    _BaseLoader = yaml.SafeLoader


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe; reads back the ``!unsafe`` strings the plan's files hold."""


#: The SDK's one YAML loader: safe, in C when PyYAML has libyaml.
YAML_LOADER: type = _Loader


class _Dumper(_Base):  # type: ignore[misc, valid-type]
    """Block style; multi-line strings as literal blocks, for review."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", str.__str__(value),
                                   style=style)


class Unsafe(str):
    """Text that Ansible must never template: written with the ``!unsafe``
    tag, so braces in it stay braces (names from stack outputs)."""

    __slots__ = ()


def _represent_unsafe(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("!unsafe", str.__str__(value), style=style)


_Loader.add_constructor(
    "!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))
_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(Unsafe, _represent_unsafe)
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


#: Most nodes a document may expand to (aliases counted each time they are
#: used): a real stack's outputs have a few hundred thousand; an alias bomb
#: of a few hundred bytes has billions.
MAX_NODES = 5_000_000
#: Deepest nesting of lists and mappings accepted (real outputs: about 15).
MAX_DEPTH = 100


class UnsafeDocument(yaml.YAMLError):
    """A document refused before it is built: it would expand beyond reason,
    refers to itself, nests too deep or gives a mapping a key twice."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def load_yaml(text: str | bytes) -> Any:
    """The data of one YAML document, read with :data:`YAML_LOADER`.

    The document's node graph is checked before anything is built from it
    (see :class:`UnsafeDocument`); the data built is checked with
    :func:`check_data`.
    """
    loader = YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    problem = check_data(data)
    if problem:
        raise UnsafeDocument(problem)
    return data


def _check_nodes(root: yaml.Node) -> None:
    """Refuse an alias bomb, a recursive alias, deep nesting, duplicate keys.

    Iterative and memoised by node, so an alias bomb costs what its text
    costs, not what it would expand to.
    """
    size: dict[int, tuple[int, int]] = {}  # node -> (expanded nodes, depth)
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[id(node)] = (1, 0)
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = list(node.value)
        if not children_done:
            if isinstance(node, yaml.MappingNode):
                _check_keys(node)
            open_nodes.add(id(node))
            stack.append((node, True))
            for child in children:
                if id(child) in open_nodes:
                    raise UnsafeDocument("an alias refers to a node that "
                                         "holds it (a recursive document)",
                                         child.start_mark)
                if id(child) not in size:
                    stack.append((child, False))
            continue
        open_nodes.discard(id(node))
        total = 1 + sum(size[id(c)][0] for c in children)
        depth = 1 + max((size[id(c)][1] for c in children), default=0)
        if total > MAX_NODES:
            raise UnsafeDocument(f"the document expands to more than "
                                 f"{MAX_NODES:,} nodes (aliases of aliases?)",
                                 node.start_mark)
        if depth > MAX_DEPTH:
            raise UnsafeDocument(f"nested more than {MAX_DEPTH} levels deep",
                                 node.start_mark)
        size[id(node)] = (total, depth)


def _check_keys(node: yaml.MappingNode) -> None:
    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag.endswith(":merge"):
            continue
        if (key.tag, key.value) in seen:
            raise UnsafeDocument(f"duplicate key {key.value[:60]!r}",
                                 key.start_mark)
        seen.add((key.tag, key.value))


def check_data(data: Any) -> str | None:
    """What makes parsed data unusable (too deep, a string that is not
    Unicode text), or None."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return f"a string holds a lone surrogate ({item[:40]!r})"
        elif isinstance(item, dict):
            if depth >= MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth >= MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            stack.extend((v, depth + 1) for v in item)
    return None


def read_regular_file(path: str) -> bytes:
    """The bytes of ``path``; an :class:`OSError` if it is not a regular
    file (a FIFO or a device would block or never end)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            return handle.read()
    finally:
        if fd >= 0:
            os.close(fd)


def load_yaml_file(path: str, what: str) -> Any:
    """The data of the YAML input file ``path`` (``what`` names it in errors)."""
    try:
        raw = read_regular_file(path)
    except OSError as exc:
        raise InputFileError(f"cannot read {what}: {exc.strerror}",
                             path=path) from exc
    try:
        return load_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{what} is not UTF-8 text (byte {exc.start} is "
                             f"0x{raw[exc.start]:02x})", path=path) from exc
    except UnsafeDocument as exc:
        raise InputFileError(f"{what} refused: {exc.problem}{_where(exc)}",
                             path=path) from exc
    except yaml.YAMLError as exc:
        raise InputFileError(f"not valid YAML: {exc}".replace("\n", " "),
                             path=path) from exc
    except (ValueError, RecursionError) as exc:  # a 5,000-digit integer ...
        raise InputFileError(f"{what} cannot be read: {exc}", path=path) from exc


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""

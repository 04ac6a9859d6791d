"""Execution nodes: the machines that drive the hosts of a run, and which
hosts each one drives.

An execution node file (``--execution-nodes FILE``) names the nodes::

    nodes:
      central: {ssh: local}                        # this machine
      edge1:   {ssh: stack@edge1-exec.example, hosts_var: dcn_site, value: edge1}
      edge2:   {ssh: stack@edge2-exec.example, roles: [ComputeEdge2]}

A host goes to the first node, in the file's order, whose ``roles`` hold its
role or whose ``hosts_var`` (a host or group variable of the plan's
inventory) has ``value`` on it; a host no node claims goes to the one node
without ``roles`` or ``hosts_var`` (the default node). The undercloud's own
host (the external stage) is a host of role ``Undercloud`` like any other.

``ssh`` is ``local`` (a worker process on this machine) or ``[user@]host``
(a worker started over ``ssh``); ``port``, ``identity_file`` and
``ssh_options`` (a list of ``-o`` values) refine the ``ssh`` call;
``runner`` is the command that starts ``ansible-runner`` on the node
(default ``ansible-runner``; a venv's path, or ``sudo -n /path/ansible-runner``)
and ``ansible_playbook`` the ansible-playbook the node runs (default: the
one next to this Python for a local node, ``ansible-playbook`` on the node's
``PATH`` otherwise). Nothing here starts a process: :mod:`.streaming` does.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from composable_upgrades.errors import InputFileError, OptionError
from composable_upgrades.formats.serialize import load_yaml_file
from composable_upgrades.model.names import UNDERCLOUD_GROUP
from composable_upgrades.planning.plan import UNDERCLOUD_HOST
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.state.prepare import EXECUTION_NODES_FILE
from composable_upgrades.run.limits import host_values

#: ``ssh`` of a node that is this machine.
LOCAL = "local"
#: The node file a prepare keeps in the plan folder, which runs use unless
#: given other nodes.
PLAN_FILE = EXECUTION_NODES_FILE

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: ``[user@]host``: no spaces, no leading ``-`` (it would be an ssh option).
_TARGET = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*@)?[A-Za-z0-9_.:\[\]-]+")
_KEYS = frozenset({"ssh", "hosts_var", "value", "roles", "port", "identity_file",
                   "ssh_options", "runner", "ansible_playbook"})
#: How long ssh waits for a node to answer, and for a silent link.
_SSH_DEFAULTS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                 "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")


@dataclass(frozen=True)
class ExecutionNode:
    """One execution node of a node file (see the module's docstring)."""

    name: str
    ssh: str = LOCAL
    hosts_var: str | None = None
    value: Any = None
    roles: tuple[str, ...] = ()
    port: int | None = None
    identity_file: str | None = None
    ssh_options: tuple[str, ...] = ()
    runner: tuple[str, ...] = ("ansible-runner",)
    ansible_playbook: str | None = None

    @property
    def local(self) -> bool:
        """Whether the node is this machine."""
        return self.ssh == LOCAL

    @property
    def default(self) -> bool:
        """Whether the node takes the hosts no other node claims."""
        return not self.roles and self.hosts_var is None

    @property
    def where(self) -> str:
        """How the node is reached, for messages: ``local`` or ``ssh user@host``."""
        if self.local:
            return LOCAL
        return f"ssh {self.ssh}" + (f" port {self.port}" if self.port else "")

    def playbook_binary(self) -> str:
        """The ansible-playbook the node runs."""
        if self.ansible_playbook:
            return self.ansible_playbook
        if self.local:
            return os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        return "ansible-playbook"

    def runner_command(self) -> list[str]:
        """``ansible-runner`` on the node (a local node's default: the one next
        to this Python, since a venv need not be activated)."""
        if self.local and self.runner == ("ansible-runner",):
            beside = os.path.join(os.path.dirname(sys.executable), "ansible-runner")
            if os.access(beside, os.X_OK):
                return [beside]
        return list(self.runner)

    def worker_command(self, *, announce_pid: bool = False) -> list[str]:
        """The argv that starts ``ansible-runner worker`` on the node, reading
        the job on stdin and streaming its events on stdout.

        With ``announce_pid``, the node's shell first prints its process id
        on a line of its own (the worker then takes over that process).
        """
        worker = shlex.join([*self.runner_command(), "worker"])
        script = f"echo $$; exec {worker}" if announce_pid else worker
        if self.local:
            return ["sh", "-c", script]
        argv = ["ssh", *_SSH_DEFAULTS]
        for option in self.ssh_options:
            argv += ["-o", option]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity_file:
            argv += ["-i", self.identity_file]
        # ssh runs the remote command through the node user's shell.
        return [*argv, "-T", self.ssh, script]

    def claims(self, role: str | None, value: Any) -> bool:
        """Whether a host of ``role`` (with ``value`` of ``hosts_var``) is this
        node's by its selector."""
        if role is not None and role in self.roles:
            return True
        return self.hosts_var is not None and value is not None and (
            value == self.value or str(value) == str(self.value))

    def to_dict(self) -> dict[str, Any]:
        """The node as its node-file entry."""
        data: dict[str, Any] = {"ssh": self.ssh}
        if self.hosts_var is not None:
            data.update(hosts_var=self.hosts_var, value=self.value)
        if self.roles:
            data["roles"] = list(self.roles)
        if self.port:
            data["port"] = self.port
        if self.identity_file:
            data["identity_file"] = self.identity_file
        if self.ssh_options:
            data["ssh_options"] = list(self.ssh_options)
        if self.runner != ("ansible-runner",):
            data["runner"] = shlex.join(self.runner)
        if self.ansible_playbook:
            data["ansible_playbook"] = self.ansible_playbook
        return data


@dataclass(frozen=True)
class ExecutionNodes:
    """The execution nodes of a run, in the node file's order."""

    nodes: tuple[ExecutionNode, ...]
    source: str = "execution nodes"

    @classmethod
    def build(cls, spec: ExecutionNodes | Mapping[str, Any] | str | os.PathLike[str]
              ) -> ExecutionNodes:
        """The nodes of ``spec``: nodes already, a node file's data, or its path."""
        if isinstance(spec, ExecutionNodes):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_dict(spec)
        return cls.load(spec)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExecutionNodes:
        """The nodes of the node file ``path``."""
        path = os.path.abspath(os.fspath(path))
        return cls.from_dict(load_yaml_file(path, "execution nodes file"), source=path)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "execution nodes") -> ExecutionNodes:
        """The nodes of a node file's ``data``; :class:`InputFileError` naming
        ``source`` and the node when it does not fit the format."""
        if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), Mapping) \
                or not data["nodes"]:
            raise InputFileError("expected a mapping 'nodes: {name: {ssh: ...}}' with "
                                 "one node or more", path=source)
        unknown = sorted(set(data) - {"nodes"})
        if unknown:
            raise InputFileError(f"unknown key {unknown[0]!r} (expected 'nodes')",
                                 path=source)
        nodes = tuple(_node(str(name), entry, source)
                      for name, entry in data["nodes"].items())
        defaults = [n.name for n in nodes if n.default]
        if len(defaults) > 1:
            raise InputFileError(f"nodes {', '.join(defaults)} have neither roles nor "
                                 "hosts_var; one node at most takes the hosts no "
                                 "other node claims", path=source)
        return cls(nodes=nodes, source=source)

    def node(self, name: str) -> ExecutionNode:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def assign(self, plan: PreparedPlan,
               hosts: Iterable[str] | None = None) -> dict[str, str]:
        """Which node drives each of ``hosts`` (default: every host of
        ``plan`` and the undercloud's), host -> node name.

        :class:`InputFileError` for a role the plan does not have, a
        ``hosts_var`` no host has, or a host no node takes.
        """
        hosts = list(hosts) if hosts is not None else [*plan.hosts, UNDERCLOUD_HOST]
        known = set(plan.roles) | {UNDERCLOUD_GROUP}
        for node in self.nodes:
            for role in node.roles:
                if role not in known:
                    raise InputFileError(
                        f"node {node.name}: unknown role {role!r} (roles: "
                        f"{', '.join(sorted(known))})", path=self.source)
        values: dict[str, Mapping[str, Any]] = {}
        for name in {n.hosts_var for n in self.nodes if n.hosts_var is not None}:
            try:
                values[name] = host_values(plan, [h for h in hosts if h in plan.hosts]
                                           or list(plan.hosts), name)
            except OptionError as exc:
                raise InputFileError(
                    f"hosts_var {name!r}: no host of the plan has this variable",
                    path=self.source) from exc
        default = next((n for n in self.nodes if n.default), None)
        found: dict[str, str] = {}
        for host in hosts:
            role = UNDERCLOUD_GROUP if host == UNDERCLOUD_HOST else plan.role_of(host)
            node = next((n for n in self.nodes if n.claims(
                role, values.get(n.hosts_var or "", {}).get(host))), default)
            if node is None:
                raise InputFileError(
                    f"host {host} (role {role}) is claimed by no node, and no node "
                    "without roles or hosts_var takes the others", path=self.source)
            found[host] = node.name
        return found

    def split(self, assignment: Mapping[str, str],
              hosts: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """``hosts`` by the node that drives them (nodes in the file's order,
        hosts in the given order; nodes without hosts left out)."""
        parts: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for host in hosts:
            parts[assignment[host]].append(host)
        return {name: tuple(part) for name, part in parts.items() if part}

    def describe(self, plan: PreparedPlan, hosts: Sequence[str]) -> list[str]:
        """One line per node that drives some of ``hosts``: ``edge1 (ssh
        stack@edge1): host-a, host-b``, for the plan and the dry run."""
        parts = self.split(self.assign(plan, hosts), hosts)
        return [f"{name} ({self.node(name).where}): {', '.join(part)}"
                for name, part in parts.items()]

    def to_dict(self) -> dict[str, Any]:
        """The node file's data (what a plan keeps)."""
        return {"nodes": {n.name: n.to_dict() for n in self.nodes}}


#: How a run may be given its execution nodes.
NodesSpec = Union["ExecutionNodes", Mapping[str, Any], str, "os.PathLike[str]"]


def run_nodes(plan: PreparedPlan, spec: NodesSpec | None = None) -> ExecutionNodes | None:
    """The execution nodes of a run of ``plan``, checked against it: ``spec``
    (nodes, a node file's data or its path), else the node file kept in the
    plan folder (:data:`PLAN_FILE`), else None (this machine drives all)."""
    if spec is None:
        kept = plan.file(PLAN_FILE) if plan.path else ""
        if not kept or not os.path.isfile(kept):
            return None
        spec = kept
    nodes = ExecutionNodes.build(spec)
    nodes.assign(plan)
    return nodes


def _node(name: str, entry: Any, source: str) -> ExecutionNode:
    """One node of a node file."""
    def bad(message: str) -> InputFileError:
        return InputFileError(f"node {name}: {message}", path=source)

    if not _NAME.fullmatch(name):
        raise bad("a node name is letters, digits, '_', '.' and '-'")
    if not isinstance(entry, Mapping):
        raise bad("expected a mapping such as {ssh: local}")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise bad(f"unknown key {unknown[0]!r} (keys: {', '.join(sorted(_KEYS))})")
    ssh = entry.get("ssh")
    if not isinstance(ssh, str) or not (ssh == LOCAL or _TARGET.fullmatch(ssh)):
        raise bad("ssh: expected 'local' or user@host")
    hosts_var = entry.get("hosts_var")
    if hosts_var is not None and (not isinstance(hosts_var, str) or "value" not in entry):
        raise bad("hosts_var: expected a variable name, with a value")
    if hosts_var is None and "value" in entry:
        raise bad("value: given without hosts_var")
    roles = entry.get("roles") or []
    if isinstance(roles, str) or not isinstance(roles, list) \
            or not all(isinstance(r, str) for r in roles):
        raise bad("roles: expected a list of role names")
    port = entry.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 < port < 65536):
        raise bad("port: expected a TCP port")
    options = entry.get("ssh_options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise bad("ssh_options: expected a list of ssh -o values")
    runner = entry.get("runner", "ansible-runner")
    runner = shlex.split(runner) if isinstance(runner, str) else runner
    if not isinstance(runner, list) or not runner or not all(isinstance(r, str)
                                                             for r in runner):
        raise bad("runner: expected a command (string or list)")
    for key in ("identity_file", "ansible_playbook"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise bad(f"{key}: expected a path")
    identity = entry.get("identity_file")
    return ExecutionNode(
        name=name, ssh=ssh, hosts_var=hosts_var, value=entry.get("value"),
        roles=tuple(roles), port=port,
        identity_file=os.path.expanduser(identity) if identity else None,
        ssh_options=tuple(options), runner=tuple(runner),
        ansible_playbook=entry.get("ansible_playbook"))


__all__ = ["ExecutionNode", "ExecutionNodes", "LOCAL", "NodesSpec", "PLAN_FILE",
           "run_nodes"]

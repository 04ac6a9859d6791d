"""The deployment model: roles, hosts, services and their upgrade tasks.

:meth:`Deployment.from_outputs` turns :class:`~.outputs.StackOutputs` into
plain, frozen data; every check of the outputs' shape happens here, so the
rest of the SDK can trust what it gets.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.model import attribution
from composable_upgrades.errors import OutputsError, UnknownRoleError, UnsafeNameError
from composable_upgrades.sources.outputs import StackOutputs
from composable_upgrades.model.steps import StepBinding, bind, is_never, task_tags

#: Task lists of a role that the upgrade runs, in the order they run.
ROLE_TASK_KINDS = ("upgrade_tasks", "post_upgrade_tasks")
EXTERNAL_KIND = "external_upgrade_tasks"
HOST_NETWORK = "ctlplane"
#: This project's own output key for deployment-wide converge work.
CONVERGE_OUTPUT = "UpgradeConverge"

#: Inventory groups the SDK makes beside the role groups (as TripleO's
#: inventory has them), and Ansible's own: no role may take their names.
UNDERCLOUD_GROUP = "Undercloud"
OVERCLOUD_GROUP = "overcloud"
ALLOVERCLOUD_GROUP = "allovercloud"
EXCLUDED_GROUP = "excluded_overcloud"
RESERVED_GROUPS = frozenset({UNDERCLOUD_GROUP, OVERCLOUD_GROUP, ALLOVERCLOUD_GROUP,
                             EXCLUDED_GROUP, "all", "ungrouped"})

#: Host names Ansible or the inventory already gives a meaning: the SDK's own
#: undercloud host and Ansible's implicit localhost and groups.
RESERVED_HOSTS = frozenset({"undercloud", "localhost", "all", "ungrouped",
                            "127.0.0.1"})
#: The longest host name DNS allows.
MAX_HOST_NAME = 255

_UNSAFE_NAME = re.compile(r"(^$|/|\\|^\.\.?$|\.\.|[\x00-\x1f\x7f])")
# A host name is an inventory host and one item of ansible's comma-joined
# --limit: no ',', ':', spaces or glob characters.
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Role and service names become Ansible group names and host patterns: what
# Ansible accepts as a group name (TripleO's names all are), nothing a
# pattern would read as a list, an exclusion or a glob.
_GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is safe as a file or group name, else raise.

    Host names (``kind`` "host") are further restricted to hostname
    characters (the SDK's own ``undercloud`` host passes: see
    :data:`RESERVED_HOSTS` for the check of the outputs' hosts); role and
    service names must be Ansible group names, and a role may not take a
    group the inventory has anyway.
    """
    if not isinstance(name, str) or _UNSAFE_NAME.search(name):
        raise UnsafeNameError(kind, str(name))
    if kind == "host":
        if len(name) > MAX_HOST_NAME:
            raise UnsafeNameError(kind, f"{name[:40]}...", reason=(
                f"is {len(name)} characters long (a host name has at most "
                f"{MAX_HOST_NAME})"))
        if not _HOST_NAME.fullmatch(name):
            raise UnsafeNameError(kind, name, reason=(
                "is not a usable host name (letters, digits, '.', '_' and '-', "
                "starting with a letter or digit)"))
    if kind in ("role", "service") and not _GROUP_NAME.fullmatch(name):
        raise UnsafeNameError(kind, name, reason=(
            "is not a valid Ansible group name (letters, digits and '_', not "
            "starting with a digit)"))
    if kind == "role" and name in RESERVED_GROUPS:
        raise UnsafeNameError(kind, name, reason=(
            "is reserved: the inventory has a group of that name (reserved: "
            f"{', '.join(sorted(RESERVED_GROUPS))})"))
    return name


@dataclass(frozen=True)
class Task:
    """One entry of a role's (or RoleConfig's) task list, as Heat gave it."""

    kind: str
    role: str | None
    index: int
    name: str
    binding: StepBinding
    tags: tuple[str, ...]
    never: bool
    service: str | None
    evidence: str
    body: Mapping[str, Any] = field(repr=False, compare=False)

    def runs_at(self, step: int) -> bool:
        """True if the task belongs to ``step``."""
        return self.binding.runs_at(step)


@dataclass(frozen=True)
class Host:
    """An overcloud node: its inventory name, where it is, and its variables
    (its ``AnsibleHostVarsMap`` entry, as the outputs give it)."""

    name: str
    role: str
    fqdn: str | None = None
    address: str | None = None
    server_id: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Role:
    """A TripleO role: its services, hosts and upgrade task lists."""

    name: str
    services: tuple[str, ...]
    hosts: tuple[str, ...]
    upgrade_tasks: tuple[Task, ...]
    post_upgrade_tasks: tuple[Task, ...]
    group_vars: Mapping[str, Any] = field(repr=False, compare=False)

    def tasks(self, kind: str) -> tuple[Task, ...]:
        """The role's tasks of ``kind`` (``upgrade_tasks`` ...)."""
        return getattr(self, kind)


@dataclass(frozen=True)
class Deployment:
    """Everything about an overcloud that the upgrade needs."""

    stack: str
    source: str
    roles: tuple[Role, ...]
    hosts: Mapping[str, Host]
    external_upgrade_tasks: tuple[Task, ...]
    global_vars: Mapping[str, Any] = field(repr=False, compare=False)
    converge_spec: Mapping[str, Any] | None = field(repr=False, compare=False,
                                                    default=None)

    @property
    def role_names(self) -> list[str]:
        """Role names in the order of the outputs."""
        return [r.name for r in self.roles]

    @property
    def services(self) -> list[str]:
        """Every service of the deployment, sorted."""
        return sorted({s for r in self.roles for s in r.services})

    def role(self, name: str, *, where: str = "deployment") -> Role:
        """The role called ``name``; :class:`UnknownRoleError` if none."""
        for role in self.roles:
            if role.name == name:
                return role
        raise UnknownRoleError(name, where=where, known=self.role_names)

    def binding_warnings(self) -> list[str]:
        """One line per task whose step binding is suspect (see
        :attr:`.steps.StepBinding.problem`), for the plan's warnings."""
        tasks = [*(t for r in self.roles for kind in ROLE_TASK_KINDS
                   for t in r.tasks(kind)), *self.external_upgrade_tasks]
        return [f"{t.role or 'RoleConfig'} {t.kind}[{t.index}] {t.name!r}: "
                f"{t.binding.problem}" for t in tasks if t.binding.problem]

    def roles_running(self, service: str) -> list[str]:
        """Names of the roles that run ``service``."""
        return [r.name for r in self.roles if service in r.services]

    @classmethod
    def from_outputs(cls, outputs: StackOutputs, *,
                     stack: str | None = None) -> Deployment:
        """Build the deployment from stack outputs, checking their shape."""
        return _DeploymentReader(outputs).read(stack or outputs.stack or "overcloud")


class _DeploymentReader:
    """Reads and checks the outputs; errors name the output and the path."""

    def __init__(self, outputs: StackOutputs) -> None:
        self.outputs = outputs
        self.source = outputs.source

    def fail(self, key: str, message: str) -> OutputsError:
        return OutputsError(message, source=self.source, key=key)

    def mapping(self, key: str, value: Any, *, optional: bool = True
                ) -> Mapping[str, Any]:
        if value is None and optional:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}")
        return value

    def str_list(self, key: str, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of strings")
        return value

    def id_list(self, key: str, value: Any) -> list[str | None]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(
                v is None or isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of server ids (strings or "
                            "nulls)")
        return value

    def optional_str(self, key: str, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        return value

    def read(self, stack: str) -> Deployment:
        if "RoleData" not in self.outputs:
            keys = ", ".join(sorted(self.outputs)) or "none"
            raise self.fail("RoleData", "output missing: these are not the "
                            f"outputs of an overcloud stack (outputs: {keys})")
        role_data = self.mapping("RoleData", self.outputs["RoleData"], optional=False)
        if not role_data:
            raise self.fail("RoleData", "no roles")
        role_config = self.mapping("RoleConfig", self.outputs.get("RoleConfig"))
        global_vars = self.mapping("RoleConfig.global_vars",
                                   role_config.get("global_vars"))
        group_vars = self.mapping("RoleGroupVars", self.outputs.get("RoleGroupVars"))
        for name in role_data:
            self.name("role", name)
        hosts_by_role = self.read_hosts(list(role_data))
        roles = []
        for name, data in role_data.items():
            key = f"RoleData.{name}"
            data = self.mapping(key, data, optional=False)
            services = self.str_list(f"{key}.service_names", data.get("service_names"))
            for service in services:
                self.name("service", service)
            tasks = {kind: self.read_tasks(f"{key}.{kind}", data.get(kind),
                                           kind, name, services)
                     for kind in ROLE_TASK_KINDS}
            roles.append(Role(
                name=name, services=tuple(services),
                hosts=tuple(h.name for h in hosts_by_role.get(name, [])),
                upgrade_tasks=tasks["upgrade_tasks"],
                post_upgrade_tasks=tasks["post_upgrade_tasks"],
                group_vars=self.mapping(f"RoleGroupVars.{name}",
                                        group_vars.get(name))))
        # Heat concatenates the roles' external tasks (duplicates dropped), so
        # their services come in role order, each service once.
        all_services = list(dict.fromkeys(s for r in roles for s in r.services))
        external = self.read_tasks(
            "RoleConfig.external_upgrade_steps_tasks",
            role_config.get("external_upgrade_steps_tasks"), EXTERNAL_KIND,
            None, all_services)
        hosts = {h.name: h for role_hosts in hosts_by_role.values()
                 for h in role_hosts}
        self.check_collisions(hosts, roles)
        converge_spec = self.outputs.get(CONVERGE_OUTPUT)
        if converge_spec is not None:
            converge_spec = self.mapping(CONVERGE_OUTPUT, converge_spec)
        return Deployment(stack=stack, source=self.source, roles=tuple(roles),
                          hosts=hosts, external_upgrade_tasks=external,
                          global_vars=global_vars,
                          converge_spec=converge_spec)

    def name(self, kind: str, name: Any) -> str:
        """:func:`check_name`, the error naming the outputs it came from."""
        try:
            check_name(kind, name)
            if kind == "host" and name.lower() in RESERVED_HOSTS:
                raise UnsafeNameError(kind, name, reason=(
                    "is reserved: the inventory or Ansible has a host or group "
                    f"of that name (reserved: {', '.join(sorted(RESERVED_HOSTS))})"))
        except UnsafeNameError as exc:
            exc.args = (f"{self.source}: {exc}",)
            raise
        return name

    def check_collisions(self, hosts: Mapping[str, Host],
                         roles: Sequence[Role]) -> None:
        """Refuse a host named like a group of the inventory: Ansible would
        merge the two, and a play for one would run on the other."""
        groups = {r.name: f"role {r.name}" for r in roles}
        groups.update((g, f"inventory group {g}") for g in RESERVED_GROUPS)
        for role in roles:
            groups.update((s.lower(), f"service group {s.lower()}")
                          for s in role.services)
        for name, host in hosts.items():
            if name in groups:
                exc = UnsafeNameError("host", name, reason=(
                    f"(role {host.role}) is also the name of the "
                    f"{groups[name]}: the inventory would merge them"))
                exc.args = (f"{self.source}: {exc}",)
                raise exc

    def address(self, key: str, value: Any) -> str | None:
        """An IP address or a host name (never a template), or None."""
        value = self.optional_str(key, value)
        if value is None or value == "":
            return None
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        if len(value) > MAX_HOST_NAME or not _HOST_NAME.fullmatch(value) \
                or ".." in value:
            raise self.fail(key, f"{_shown(value)} is neither an IP address "
                            "nor a host name")
        return value

    def read_tasks(self, key: str, value: Any, kind: str, role: str | None,
                   services: Sequence[str]) -> tuple[Task, ...]:
        return make_tasks(value, kind=kind, role=role, services=services,
                          source=self.source, key=key)

    def read_hosts(self, roles: list[str]) -> dict[str, list[Host]]:
        """Hosts per role: names from AnsibleHostVarsMap, else RoleNetHostnameMap."""
        host_vars = self.mapping("AnsibleHostVarsMap",
                                 self.outputs.get("AnsibleHostVarsMap"))
        names_map = self.mapping("RoleNetHostnameMap",
                                 self.outputs.get("RoleNetHostnameMap"))
        ips_map = self.mapping("RoleNetIpMap", self.outputs.get("RoleNetIpMap"))
        server_ids = self.mapping("ServerIdData", self.outputs.get("ServerIdData"))
        server_ids = self.mapping("ServerIdData.server_ids",
                                  server_ids.get("server_ids"))
        result: dict[str, list[Host]] = {}
        seen: dict[str, str] = {}
        for role in roles:
            fqdns = self.str_list(
                f"RoleNetHostnameMap.{role}.{HOST_NETWORK}",
                self.mapping(f"RoleNetHostnameMap.{role}",
                             names_map.get(role)).get(HOST_NETWORK))
            ips = self.str_list(
                f"RoleNetIpMap.{role}.{HOST_NETWORK}",
                self.mapping(f"RoleNetIpMap.{role}",
                             ips_map.get(role)).get(HOST_NETWORK))
            ids = self.id_list(f"ServerIdData.server_ids.{role}",
                               server_ids.get(role))
            role_host_vars = self.mapping(f"AnsibleHostVarsMap.{role}",
                                          host_vars.get(role))
            if role_host_vars:
                names = list(role_host_vars)
            else:
                names = [f.split(f".{HOST_NETWORK}.")[0].lower() for f in fqdns]
            hosts = []
            for index, name in enumerate(names):
                self.name("host", name)
                if name in seen:
                    where = (f"twice in {role}" if seen[name] == role
                             else f"in both {seen[name]} and {role}")
                    raise self.fail("AnsibleHostVarsMap",
                                    f"host {name!r} is {where}")
                seen[name] = role
                key = f"AnsibleHostVarsMap.{role}.{name}"
                hvars = self.mapping(key, role_host_vars.get(name))
                fqdn = (self.address(f"{key}.fqdn_{HOST_NETWORK}",
                                     hvars.get(f"fqdn_{HOST_NETWORK}"))
                        or self.address(f"RoleNetHostnameMap.{role}",
                                        _at(fqdns, index)))
                address = (self.address(f"{key}.{HOST_NETWORK}_ip",
                                        hvars.get(f"{HOST_NETWORK}_ip"))
                           or self.address(f"RoleNetIpMap.{role}",
                                           _at(ips, index)))
                hosts.append(Host(name=name, role=role, fqdn=fqdn,
                                  address=address,
                                  server_id=_at(ids, index), vars=dict(hvars)))
            if hosts:
                result[role] = hosts
        return result


def make_tasks(value: Any, *, kind: str, role: str | None,
               services: Sequence[str], source: str, key: str) -> tuple[Task, ...]:
    """Check a task list from ``source`` (at ``key``) and make Tasks of it."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise OutputsError(f"expected a list of tasks, got {type(value).__name__}",
                           source=source, key=key)
    for index, body in enumerate(value):
        if not isinstance(body, Mapping):
            raise OutputsError(f"a task must be a mapping, got {type(body).__name__}",
                               source=source, key=f"{key}[{index}]")
        when = body.get("when")
        if when is not None and not isinstance(when, (str, list, bool)):
            raise OutputsError("expected a string, a list or a boolean",
                               source=source, key=f"{key}[{index}].when")
    found = attribution.attribute(value, services)
    return tuple(
        Task(kind=kind, role=role, index=index, name=display_name(body),
             binding=bind(body), tags=task_tags(body), never=is_never(body),
             service=found[index].service, evidence=found[index].evidence,
             body=body)
        for index, body in enumerate(value))


def _shown(value: str) -> str:
    """``value`` quoted for a one-line message, cut if long."""
    return repr(value if len(value) <= 60 else value[:60] + "...")


def _at(values: Sequence[Any], index: int) -> Any:
    return values[index] if index < len(values) else None


def display_name(task: Mapping[str, Any]) -> str:
    """The task's name, or a stand-in that says what an unnamed task is."""
    name = task.get("name")
    if isinstance(name, str) and name:
        return name
    if "block" in task:
        first = _first_named(task["block"])
        return f"(unnamed block; first: {first})" if first else "(unnamed block)"
    module = next((k for k in task if k not in _TASK_KEYWORDS), "task")
    return f"(unnamed {module})"


def _first_named(tasks: Any) -> str | None:
    if not isinstance(tasks, list):
        return None
    for task in tasks:
        if isinstance(task, Mapping):
            if isinstance(task.get("name"), str):
                return task["name"]
            inner = _first_named(task.get("block"))
            if inner:
                return inner
    return None


# Task keywords that are not the module (for naming unnamed tasks).
_TASK_KEYWORDS = frozenset({
    "name", "when", "tags", "vars", "become", "become_user", "register",
    "delegate_to", "run_once", "ignore_errors", "failed_when",
    "changed_when", "loop", "with_items", "loop_control", "environment",
    "no_log", "args", "until", "retries", "delay", "notify", "check_mode",
    "any_errors_fatal", "rescue", "always", "block", "throttle",
    "ignore_unreachable", "delegate_facts", "with_dict", "with_sequence",
})

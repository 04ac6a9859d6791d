"""The deployment model: roles, hosts, services and their upgrade tasks.

:meth:`Deployment.from_outputs` turns :class:`~.outputs.StackOutputs` into
plain, frozen data; every check of the outputs' shape happens here (each
value through :class:`~.output_values.OutputValues`), so the rest of the SDK
can trust what it gets. Names are checked by :mod:`.names`, task lists made
into tasks by :mod:`.tasks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.errors import UnknownRoleError, UnsafeNameError
from composable_upgrades.model.names import RESERVED_GROUPS, UNDERCLOUD_GROUP
from composable_upgrades.model.output_values import OutputValues
from composable_upgrades.model.tasks import Task, make_tasks
from composable_upgrades.sources.outputs import StackOutputs

#: Task lists of a role that the upgrade runs, in the order they run.
ROLE_TASK_KINDS = ("upgrade_tasks", "post_upgrade_tasks")
EXTERNAL_KIND = "external_upgrade_tasks"
HOST_NETWORK = "ctlplane"
#: This project's own output key for deployment-wide converge work.
CONVERGE_OUTPUT = "UpgradeConverge"


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


class _DeploymentReader(OutputValues):
    """Reads and checks the outputs; errors name the output and the path."""

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


def _at(values: Sequence[Any], index: int) -> Any:
    return values[index] if index < len(values) else None


# Task, make_tasks and UNDERCLOUD_GROUP stay importable from here, where they
# were first (planning.prepared and planning.converge_work import them so).
__all__ = ["CONVERGE_OUTPUT", "Deployment", "EXTERNAL_KIND", "HOST_NETWORK", "Host",
           "ROLE_TASK_KINDS", "Role", "Task", "UNDERCLOUD_GROUP", "make_tasks"]

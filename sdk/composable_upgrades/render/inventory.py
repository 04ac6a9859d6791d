"""The inventory: hosts grouped by role and by service, as TripleO groups them.

Groups: one per role (its hosts and the variables its tasks use), one per
service (children: the roles that run it), ``overcloud`` and
``allovercloud`` (every role), ``excluded_overcloud`` (empty, THT tasks
subtract it) and ``Undercloud`` (this host, for external tasks). On a
rehearsal fleet every host gets the fleet's local-connection variables.
Role groups set ``ansible_ssh_user`` (``tripleo-admin`` unless prepare is
told otherwise), as TripleO's own inventory does.
"""

from __future__ import annotations

from typing import Any

from composable_upgrades.model.deployment import Host
from composable_upgrades.model.names import (
    ALLOVERCLOUD_GROUP, EXCLUDED_GROUP, OVERCLOUD_GROUP, UNDERCLOUD_GROUP)
from composable_upgrades.model.fleet import Fleet
from composable_upgrades.model.redact import is_secret_key, scrub_text, secret_values
from composable_upgrades.planning.variables import used_names
from composable_upgrades.planning.plan import UNDERCLOUD_HOST, UpgradePlan
from composable_upgrades.formats.serialize import to_yaml


def build_inventory(plan: UpgradePlan) -> dict[str, Any]:
    """The inventory of ``plan`` as data (YAML inventory structure)."""
    deployment = plan.deployment
    fleet = plan.fleet
    children: dict[str, Any] = {}
    undercloud_vars: dict[str, Any] = {"ansible_connection": "local",
                                       "ansible_host": "localhost"}
    if fleet is not None:
        undercloud_vars.update(fleet.host_vars(UNDERCLOUD_HOST))
    children[UNDERCLOUD_GROUP] = {"hosts": {UNDERCLOUD_HOST: undercloud_vars}}
    role_names = [r.name for r in deployment.roles if r.hosts]
    # An SSH fleet gives each host its own loopback address, in outputs order.
    index = {name: i for i, name in enumerate(deployment.hosts)}
    used = used_names(task.body for stage in plan.stages for step in stage.steps
                      for play in step.plays for task in play.tasks)
    for role in deployment.roles:
        if not role.hosts:
            continue
        hosts = {}
        for name in role.hosts:
            host = deployment.hosts[name]
            hosts[name] = _host_vars(host, fleet, index[name], used)
        # As TripleO's inventory: the role's own variables win.
        role_vars = {"ansible_ssh_user": plan.ssh_user,
                     **plan.role_vars.get(role.name, {})}
        children[role.name] = {"hosts": hosts, "vars": role_vars}
    children[OVERCLOUD_GROUP] = {"children": {r: {} for r in role_names}}
    children[ALLOVERCLOUD_GROUP] = {"children": {OVERCLOUD_GROUP: {}}}
    children[EXCLUDED_GROUP] = {"hosts": {}}
    taken = set(children)
    for service in deployment.services:
        roles = [r for r in deployment.roles_running(service) if r in role_names]
        group = service.lower()
        if roles and group not in taken:
            children[group] = {"children": {r: {} for r in roles}}
    return {"all": {"vars": dict(plan.global_vars), "children": children}}


def _carries_credentials(value: Any) -> bool:
    """True if ``value`` holds a secret: a secret-named key at any depth, or
    text with credentials in it (``rabbit://guest:PASSWORD@host``)."""
    if secret_values(value):
        return True
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if scrub_text(item) != item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _host_vars(host: Host, fleet: Fleet | None, index: int,
               used: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """A host's inventory variables.

    As tripleo-common writes them: the host's own ``AnsibleHostVarsMap``
    variables over the ones derived from the outputs; secret-named ones are
    left out (tasks read secrets from elsewhere), and so is a variable whose
    value carries credentials unless a task of the plan uses it (``used``).
    On a fleet, the fleet's connection variables always win and the outputs'
    ``ansible_*`` ones are dropped, so outputs cannot point a rehearsal at
    another machine.
    """
    hvars: dict[str, Any] = {}
    if host.address:
        hvars["ansible_host"] = host.address
        hvars["ctlplane_ip"] = host.address
    if host.fqdn:
        hvars["canonical_hostname"] = host.fqdn
    if host.server_id:
        hvars["deploy_server_id"] = host.server_id
    for key, value in host.vars.items():
        if is_secret_key(key) or (fleet is not None and key.startswith("ansible_")):
            continue
        if key not in used and _carries_credentials(value):
            continue
        hvars[key] = value
    if fleet is not None:
        hvars.pop("ansible_host", None)
        hvars.update(fleet.host_vars(host.name, index))
    return hvars


def render_inventory(plan: UpgradePlan) -> str:
    """The inventory of ``plan`` as YAML text."""
    return to_yaml(build_inventory(plan),
                   header=f"Inventory of stack {plan.stack}: hosts by role and "
                   "by service.\nGenerated by composable_upgrades from the "
                   "stack outputs.")

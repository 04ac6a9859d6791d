"""Stack outputs rebuilt from a tripleo-common config-download directory.

tripleo-common's ``Config.download_config`` writes, per role,
``<Role>/upgrade_tasks.yaml`` and ``<Role>/post_upgrade_tasks.yaml``,
``group_vars/<Role>`` (with ``service_names``), ``host_vars/<host>`` (with
``fqdn_ctlplane``/``ctlplane_ip``), and RoleConfig's entries as
``<name>.yaml`` (``global_vars.yaml``, ``external_upgrade_steps_tasks.yaml``).
python-tripleoclient adds ``tripleo-ansible-inventory.yaml``. This module
reads those back into the outputs' shape.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from composable_upgrades.errors import OutputsError
from composable_upgrades.formats.serialize import (
    UnsafeDocument, load_yaml, read_regular_file)

INVENTORY = "tripleo-ansible-inventory.yaml"
_ROLE_FILES = ("upgrade_tasks.yaml", "post_upgrade_tasks.yaml")
_PRE_NETWORK = re.compile(r"^pre_network_(.+)$")


def _load(path: str, source: str) -> Any:
    name = os.path.relpath(path, source)
    try:
        return load_yaml(read_regular_file(path))
    except OSError as exc:
        raise OutputsError(f"cannot read {name}: {exc.strerror}",
                           source=source) from exc
    except UnsafeDocument as exc:
        raise OutputsError(f"{name} refused: {exc.problem}", source=source) from exc
    except yaml.YAMLError as exc:
        raise OutputsError(f"{name} is not valid YAML", source=source) from exc
    except (ValueError, RecursionError) as exc:  # a 5,000-digit integer ...
        raise OutputsError(f"{name} cannot be read: {exc}", source=source) from exc


def _mapping(value: Any, where: str, source: str) -> dict[str, Any]:
    """``value`` if it is a mapping ({} if empty), else an error naming ``where``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OutputsError(f"{where}: expected a mapping, got "
                           f"{type(value).__name__}", source=source)
    return value


def _groups(inventory: Any, source: str) -> dict[str, Any]:
    """The inventory's groups by name: ``all.children``, else its top level."""
    top = _mapping(inventory, INVENTORY, source)
    everything = _mapping(top.get("all"), f"{INVENTORY}: all", source)
    if "children" in everything:
        return _mapping(everything["children"], f"{INVENTORY}: all.children",
                        source)
    return top


def _natural(name: str) -> list[Any]:
    """Sort key that puts compute-2 before compute-10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _roles_of_playbook(directory: str) -> list[str]:
    """Roles in the order of the per-role plays of update_steps_playbook.yaml.

    tripleo-common writes RoleConfig's playbooks as they are; THT renders
    that one with a play per role, in the order of the roles.
    """
    path = os.path.join(directory, "update_steps_playbook.yaml")
    if not os.path.isfile(path):
        return []
    plays = _load(path, directory)
    if not isinstance(plays, list):
        return []
    return list(dict.fromkeys(p["hosts"] for p in plays
                              if isinstance(p, dict) and isinstance(p.get("hosts"), str)))


def _role_order(directory: str, groups: dict[str, Any]) -> list[str]:
    """Roles in the inventory's order (else the playbooks'), then the rest."""
    found = sorted(
        name for name in os.listdir(directory)
        if os.path.isdir(os.path.join(directory, name))
        and any(os.path.isfile(os.path.join(directory, name, f)) for f in _ROLE_FILES))
    ordered: list[str] = []
    name = "overcloud" if groups.get("overcloud") else "allovercloud"
    overcloud = _mapping(groups.get(name), f"{INVENTORY}: {name}", directory)
    children = overcloud.get("children")
    if isinstance(children, (dict, list)):
        ordered = [r for r in children if r in found]
    if not ordered:
        ordered = [r for r in _roles_of_playbook(directory) if r in found]
    return ordered + [r for r in found if r not in ordered]


def read_config_download(directory: str) -> dict[str, Any]:
    """Outputs (RoleData, RoleGroupVars, AnsibleHostVarsMap, RoleConfig ...)."""
    if not os.path.isdir(directory):
        raise OutputsError("not a config-download directory (no such "
                           "directory)", source=directory)
    inventory_path = os.path.join(directory, INVENTORY)
    groups = (_groups(_load(inventory_path, directory), directory)
              if os.path.isfile(inventory_path) else {})
    roles = _role_order(directory, groups)
    if not roles:
        raise OutputsError("not a config-download directory: no "
                           "<Role>/upgrade_tasks.yaml found", source=directory)
    group_vars: dict[str, Any] = {}
    role_data: dict[str, Any] = {}
    for role in roles:
        gv_path = os.path.join(directory, "group_vars", role)
        gvars = _mapping(_load(gv_path, directory), f"group_vars/{role}",
                         directory) if os.path.isfile(gv_path) else {}
        group_vars[role] = gvars
        data: dict[str, Any] = {"service_names": gvars.get("service_names", [])}
        for name in _ROLE_FILES:
            path = os.path.join(directory, role, name)
            data[name[:-len(".yaml")]] = (_load(path, directory) or []
                                          if os.path.isfile(path) else [])
        role_data[role] = data
    role_config: dict[str, Any] = {}
    for name in ("global_vars", "external_upgrade_steps_tasks"):
        path = os.path.join(directory, f"{name}.yaml")
        if os.path.isfile(path):
            role_config[name] = _load(path, directory)
    return {
        "RoleData": role_data,
        "RoleGroupVars": group_vars,
        "AnsibleHostVarsMap": _host_vars(directory, roles, groups),
        "RoleConfig": role_config,
    }


def _host_vars(directory: str, roles: list[str], groups: dict[str, Any]
               ) -> dict[str, dict[str, Any]]:
    """Hosts per role, from the inventory if there is one, else host_vars/."""
    result: dict[str, dict[str, Any]] = {}
    for role in roles:
        group = _mapping(groups.get(role), f"{INVENTORY}: {role}", directory)
        hosts = _mapping(group.get("hosts"), f"{INVENTORY}: {role}.hosts",
                         directory)
        for name, hvars in hosts.items():
            hvars = _mapping(hvars, f"{INVENTORY}: {role}.hosts.{name}",
                             directory)
            result.setdefault(role, {})[name] = {
                "fqdn_ctlplane": hvars.get("ctlplane_hostname")
                or hvars.get("canonical_hostname"),
                "ctlplane_ip": hvars.get("ctlplane_ip") or hvars.get("ansible_host"),
            }
    if result:
        return result
    host_dir = os.path.join(directory, "host_vars")
    if not os.path.isdir(host_dir):
        return result
    for name in sorted(os.listdir(host_dir), key=_natural):
        hvars = _mapping(_load(os.path.join(host_dir, name), directory),
                         f"host_vars/{name}", directory)
        role = next((m.group(1) for key in hvars
                     if (m := _PRE_NETWORK.match(str(key)))), None)
        if role in roles:
            result.setdefault(role, {})[name] = {
                key: hvars[key] for key in ("fqdn_ctlplane", "ctlplane_ip")
                if key in hvars}
    return {role: result[role] for role in roles if role in result}

"""Names that become files, Ansible groups and host patterns: which are safe.

Role, service and host names of the outputs become folder and file names of
the plan and groups of its inventory; :func:`check_name` refuses the ones
that would not be safe there, and the groups and hosts the inventory or
Ansible already has are reserved.
"""

from __future__ import annotations

import re

from composable_upgrades.errors import UnsafeNameError

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
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
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
        if not HOST_NAME.fullmatch(name):
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

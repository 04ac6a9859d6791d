"""The TripleO reference tools, as the tests and benchmarks drive them.

- :class:`FakeOrchestrationClient`: the few calls of a Heat client that
  tripleo-common's ``Config.download_config`` makes, served from given
  stack outputs (no deployments, no network).
- :func:`download_config`: tripleo-common 18.0.0's config download of those
  outputs into a directory.
- :func:`scaled_outputs`: the fixture's outputs with its roles' hosts
  scaled to any number of hosts (for benchmarks and order checks).
- :func:`syntax_check_env` and :func:`ansible_playbook`: how to run
  ``ansible-playbook --syntax-check`` on plans built from real THT outputs:
  tripleo-ansible's modules, action plugins and roles (installed under the
  venv's ``share/ansible``), and stubs for the modules that cannot be
  installed (:data:`STUBBED_MODULES`, nothing else).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
FIXTURE_OUTPUTS = HERE / "fixtures" / "tht18" / "stack-outputs.json"
STUBS_LIBRARY = HERE / "stubs" / "library"

#: Modules that real THT upgrade tasks call and that no reachable index has
#: (ansible-pacemaker). The only names syntax-checks may resolve to a stub:
#: each has ``tests/stubs/library/<name>.py``, and no other file is there.
STUBBED_MODULES: frozenset[str] = frozenset({"pacemaker_cluster",
                                             "pacemaker_resource"})

# tripleo-common commits its config-download folder with GitPython; a fixed
# identity keeps that independent of the machine's git and user set-up.
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "tripleo-reference", "GIT_AUTHOR_EMAIL": "ref@localhost",
    "GIT_COMMITTER_NAME": "tripleo-reference",
    "GIT_COMMITTER_EMAIL": "ref@localhost",
}


def heat_outputs(outputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``outputs`` (key -> value) as Heat lists them in a stack."""
    return [{"output_key": key, "output_value": value, "description": key}
            for key, value in outputs.items()]


class FakeOrchestrationClient:
    """A Heat client that knows one stack's outputs and no deployments.

    ``stacks.get(name)`` returns an object whose ``outputs`` is the Heat
    list of ``{output_key, output_value}``; ``resources.list(...)`` returns
    ``[]``. Any other call tripleo-common would make raises AttributeError.
    """

    def __init__(self, outputs: Mapping[str, Any], stack: str = "overcloud"
                 ) -> None:
        self.stack_name = stack
        self._stack = SimpleNamespace(stack_name=stack, outputs=heat_outputs(outputs))
        self.stacks = SimpleNamespace(get=self._get_stack)
        self.resources = SimpleNamespace(list=self._list_resources)

    def _get_stack(self, name: str, **_: Any) -> SimpleNamespace:
        if name != self.stack_name:
            raise LookupError(f"no stack {name!r} (have {self.stack_name!r})")
        return self._stack

    @staticmethod
    def _list_resources(*_: Any, **__: Any) -> list[Any]:
        return []


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def download_config(outputs: Mapping[str, Any], directory: str | os.PathLike[str],
                    stack: str = "overcloud") -> Path:
    """Run tripleo-common's ``Config.download_config`` of ``outputs`` into
    ``directory``; return the directory."""
    from tripleo_common.utils.config import Config

    client = FakeOrchestrationClient(outputs, stack)
    with _environ(_GIT_IDENTITY):
        Config(client).download_config(stack, os.fspath(directory))
    return Path(directory)


def load_fixture_outputs() -> dict[str, Any]:
    """The THT 18 fixture's outputs as a plain mapping (key -> value)."""
    items = json.loads(FIXTURE_OUTPUTS.read_text(encoding="utf-8"))
    return {item["output_key"]: item["output_value"] for item in items}


def apportion(weights: Mapping[str, int], total: int) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder
    first), at least 1 each."""
    if total < len(weights):
        raise ValueError(f"need at least {len(weights)} hosts, got {total}")
    whole = sum(weights.values())
    order = list(weights)
    shares = {k: max(1, total * w // whole) for k, w in weights.items()}
    by_remainder = sorted(order, key=lambda k: (-(total * weights[k] % whole),
                                                order.index(k)))
    for key in by_remainder[:max(0, total - sum(shares.values()))]:
        shares[key] += 1
    while sum(shares.values()) > total:  # only when minimums of 1 overshoot
        largest = max(order, key=lambda k: (shares[k], -order.index(k)))
        shares[largest] -= 1
    return shares


def scaled_outputs(outputs: Mapping[str, Any], hosts: int) -> dict[str, Any]:
    """``outputs`` with ``hosts`` hosts, in the roles' proportions.

    Rewrites RoleNetHostnameMap, RoleNetIpMap, ServerIdData and
    AnsibleHostVarsMap; host names follow each role's first host
    (``overcloud-novacompute-<n>``), addresses are made up (172.16.0.0/12,
    one /16 per network) and never contacted. Other outputs are shared, not
    copied.
    """
    names_map = outputs["RoleNetHostnameMap"]
    ips_map = outputs["RoleNetIpMap"]
    server_data = outputs["ServerIdData"]
    host_vars = outputs["AnsibleHostVarsMap"]
    counts = apportion({role: len(nets["ctlplane"])
                        for role, nets in names_map.items()}, hosts)
    networks = sorted({net for nets in ips_map.values() for net in nets})
    new_names: dict[str, Any] = {}
    new_ips: dict[str, Any] = {}
    new_ids: dict[str, list[str]] = {}
    new_vars: dict[str, Any] = {}
    first = 0
    for role, count in counts.items():
        short0 = next(iter(host_vars[role]))
        prefix = re.sub(r"\d+$", "", short0)
        shorts = [f"{prefix}{i}" for i in range(count)]
        new_names[role] = {
            net: [f"{s}{names[0][len(short0):]}" for s in shorts]
            for net, names in names_map[role].items()}
        new_ips[role] = {
            net: [str(ipaddress.ip_address("172.16.0.1")
                      + (networks.index(net) << 16) + first + i)
                  for i in range(count)]
            for net in ips_map[role]}
        id0 = server_data["server_ids"][role][0]
        new_ids[role] = [f"{id0.rsplit('-', 1)[0]}-{i:012x}" for i in range(count)]
        vars0 = host_vars[role][short0]
        new_vars[role] = {
            s: {**vars0, "fqdn_ctlplane": new_names[role]["ctlplane"][i],
                "ctlplane_ip": new_ips[role]["ctlplane"][i]}
            for i, s in enumerate(shorts)}
        first += count
    bootstrap = server_data.get("bootstrap_server_id")
    bootstrap_role = next((r for r, ids in server_data["server_ids"].items()
                           if bootstrap in ids), next(iter(counts)))
    scaled = dict(outputs)
    scaled.update({
        "RoleNetHostnameMap": new_names, "RoleNetIpMap": new_ips,
        "ServerIdData": {"server_ids": new_ids,
                         "bootstrap_server_id": new_ids[bootstrap_role][0]},
        "AnsibleHostVarsMap": new_vars})
    return scaled


def share_ansible() -> Path:
    """Where tripleo-ansible installs its modules and roles in this venv."""
    return Path(sys.prefix) / "share" / "ansible"


def ansible_playbook() -> str:
    """The venv's ``ansible-playbook`` (next to the running interpreter)."""
    return str(Path(sys.executable).parent / "ansible-playbook")


def syntax_check_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for ``ansible-playbook --syntax-check`` of THT tasks.

    The stubs come first in ``ANSIBLE_LIBRARY``, so they win over anything
    of the same name (``community.general.pacemaker_cluster`` is a different
    module); everything else must resolve from ansible-core or tripleo-ansible.
    """
    share = share_ansible()
    env = dict(os.environ if base is None else base)
    env.update({
        "ANSIBLE_LIBRARY": os.pathsep.join(
            [str(STUBS_LIBRARY), str(share / "plugins" / "modules")]),
        "ANSIBLE_ACTION_PLUGINS": str(share / "plugins" / "action"),
        "ANSIBLE_ROLES_PATH": str(share / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    })
    # The variables above override any ansible.cfg; an inherited
    # ANSIBLE_CONFIG could still bring in other search paths.
    env.pop("ANSIBLE_CONFIG", None)
    return env

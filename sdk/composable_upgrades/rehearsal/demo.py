"""The embedded demo overcloud and the seeding of its rehearsal fleet.

:func:`demo_outputs` gives the stack outputs of a small overcloud (Controller
x3, Compute x6, CephStorage x1, 17.1 -> 18.0) whose upgrade tasks act only
inside each host's sandbox (``rehearsal_root``) of a :class:`~.fleet.Fleet`.
:func:`seed_fleet` writes the deployed, old-release state of every host of a
plan into those sandboxes; :mod:`.invariants` checks the state after each
stage. Sandbox layout, per host (``<fleet>/<host>/``)::

    seed.json                     what seed_fleet wrote (for the checks)
    events.log                    '<unix time with ns> <step> <service> <action>'
    services/<service>/version    release string
    services/<service>/running    "true" or "false"
    services/<service>/rpc_pin    release the RPC version is pinned to, if pinned
    services/<service>/db_version schema release, once migrated (step 5)
    services/keystone/token_flush, services/ceph_osd/noout  (service extras)
    packages.txt                  one "name version" per line (kernel,
                                  openvswitch, rhosp-release)
    package-cache/                old release's packages, cleaned post-upgrade
    kernel/running, kernel/installed
    reboot-required               present while a new kernel waits for a reboot
    boot_count
    faults/                       the fleet's fault markers
    instances/<name>              the instances a compute holds (seeded with
                                  ``instances=N``, moved by the demo's drain hook)

The undercloud (``undercloud``) gets ``seed.json``, ``events.log`` and
``images/``; the external tasks write ``images/<service>`` (container image
references) and ``online-migrations/<service>``; the demo's drain hook
(:func:`demo_hooks_path`) logs each instance it moves to its
``instances.log`` (``<unix time with ns> <instance> <from> <to>``).

Events: ``<step>`` is ``N`` for upgrade step N, ``postN`` for post-upgrade
step N, ``externalN`` for external step N and ``converge`` for the
deployment-wide work; ``<service>`` is the service (a package name for
unmanaged package upgrades, ``kernel`` for reboots).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from typing import Any

from composable_upgrades.errors import FleetError
from composable_upgrades.model.fleet import Fleet
from composable_upgrades.sources.outputs import StackOutputs
from composable_upgrades.planning.plan import UNDERCLOUD_HOST
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.formats.package_data import load_package_yaml, package_data_path

OUTPUTS_FILE = "demo-overcloud.yaml"
DEPENDENCIES_FILE = "demo-dependencies.yaml"
STACK = "overcloud"
SEED_FILE = "seed.json"
EVENTS_FILE = "events.log"
HOOKS_FILE = "demo-hooks.yaml"
INSTANCES_DIR = "instances"
INSTANCES_LOG = "instances.log"
#: The service whose hosts hold instances.
NOVA_COMPUTE = "nova_compute"


def demo_outputs() -> StackOutputs:
    """The stack outputs of the demo overcloud (a fresh copy each call)."""
    return StackOutputs.from_mapping(load_package_yaml(OUTPUTS_FILE),
                                     source=f"demo overcloud ({OUTPUTS_FILE})",
                                     stack=STACK)


def demo_outputs_path() -> str:
    """Path of the demo's stack outputs file (for ``prepare --outputs-file``)."""
    return package_data_path(OUTPUTS_FILE)


def demo_dependencies_path() -> str:
    """Path of the demo's service dependencies file (for prepare)."""
    return package_data_path(DEPENDENCIES_FILE)


def demo_hooks_path() -> str:
    """Path of the demo's hooks file: its sandboxed drain before each batch,
    and before each host's reboot in converge (for ``prepare --hooks-file``
    or ``run --hooks-file``)."""
    path = package_data_path(HOOKS_FILE)
    package_data_path("demo-drain-instances.yaml")  # beside it, when extracted
    return path


def demo_settings(outputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The demo's releases, seeded kernel and packages, and kernel targets.

    Keys: ``release_from``, ``release_to``, ``kernel`` (the deployed one),
    ``boot_count``, ``packages`` (name -> deployed version),
    ``kernel_targets`` (role -> kernel the package step installs) and
    ``unmanaged_packages``.
    """
    outputs = demo_outputs() if outputs is None else outputs
    global_vars = outputs["RoleConfig"]["global_vars"]
    seed = global_vars["demo_seed"]
    return {
        "release_from": str(global_vars["demo_release_from"]),
        "release_to": str(global_vars["demo_release_to"]),
        "kernel": str(seed["kernel"]),
        "boot_count": int(seed["boot_count"]),
        "packages": {str(k): str(v) for k, v in seed["packages"].items()},
        "kernel_targets": {role: str(v["demo_kernel_target"])
                           for role, v in outputs["RoleGroupVars"].items()},
        "unmanaged_packages": list(
            outputs["UpgradeConverge"]["unmanaged_packages"]),
    }


def seed_fleet(fleet: Fleet, plan: PreparedPlan, *,
               reset: bool = False, instances: int = 0) -> None:
    """Write the deployed (old release) state of every host of ``plan``.

    ``plan`` is a prepared plan (``PrepareResult.prepared``,
    ``Workdir.load_plan()``, or :meth:`.UpgradePlan.prepared`). A fleet that is already seeded is left alone and an
    :class:`~.errors.FleetError` raised, unless ``reset`` is true: then
    each host's sandbox (faults included) is wiped and seeded again.
    ``instances``: how many instances each compute (a host running
    ``nova_compute``) holds, ``<host>-vm<i>``.
    """
    settings = demo_settings()
    hosts = {name: host.role for name, host in plan.hosts.items()}
    everyone = sorted(hosts) + [UNDERCLOUD_HOST]
    seeded = [h for h in everyone
              if os.path.exists(os.path.join(fleet.host_root(h), SEED_FILE))]
    if seeded and not reset:
        raise FleetError(
            f"the fleet is already seeded ({len(seeded)} hosts, e.g. {seeded[0]}); "
            "pass reset=True to wipe and seed it again", path=fleet.root)
    if reset:
        for host in everyone:
            shutil.rmtree(fleet.host_root(host), ignore_errors=True)
    fleet.create(everyone)
    for host, role in sorted(hosts.items()):
        services = list(plan.roles[role].services)
        _seed_host(fleet.host_root(host), host, role, services, settings,
                   instances if NOVA_COMPUTE in services else 0)
    _seed_undercloud(fleet.host_root(UNDERCLOUD_HOST), settings)


def _seed_host(root: str, host: str, role: str, services: list[str],
               settings: Mapping[str, Any], instances: int = 0) -> None:
    release = settings["release_from"]
    names = [f"{host}-vm{i}" for i in range(instances)]
    for name in names:
        _write(root, f"{INSTANCES_DIR}/{name}", name)
    for service in services:
        _write(root, f"services/{service}/version", release)
        _write(root, f"services/{service}/running", "true")
    packages = dict(settings["packages"])
    _write(root, "packages.txt",
           "".join(f"{name} {version}\n" for name, version in packages.items()),
           raw=True)
    _write(root, f"package-cache/rhosp-release-{release}.noarch.rpm", "placeholder")
    _write(root, "kernel/running", settings["kernel"])
    _write(root, "kernel/installed", settings["kernel"])
    _write(root, "boot_count", str(settings["boot_count"]))
    _write(root, EVENTS_FILE, "", raw=True)
    _write(root, SEED_FILE, json.dumps({
        "host": host, "role": role, "services": services, "release": release,
        "kernel": settings["kernel"], "boot_count": settings["boot_count"],
        "packages": packages, "instances": names}, indent=2, sort_keys=True),
        raw=False)


def _seed_undercloud(root: str, settings: Mapping[str, Any]) -> None:
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    _write(root, EVENTS_FILE, "", raw=True)
    _write(root, SEED_FILE, json.dumps({
        "host": UNDERCLOUD_HOST, "role": None, "services": [],
        "release": settings["release_from"]}, indent=2, sort_keys=True))


def _write(root: str, relative: str, text: str, *, raw: bool = False) -> None:
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text if raw else text + "\n")

"""Fidelity to tripleo-common: our plan and reader against its config download.

tripleo-common 18.0.0's ``Config.download_config`` itself runs on the THT 18
fixture (served by a fake Heat client) and writes, per role and step,
``<Role>/upgrade_tasks_step<N>.yaml``. Our plan must hold the same tasks for
each role and step (order within a step may differ: ours follows service
dependencies). Reading that directory back must give the deployment the
outputs file gives.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

import composable_upgrades
from composable_upgrades import Deployment, StackOutputs, Task
from composable_upgrades.model.deployment import ROLE_TASK_KINDS
from tests.tripleo_reference import (
    FIXTURE_OUTPUTS, download_config, load_fixture_outputs, scaled_outputs)

ROLES = ("Controller", "Compute", "Networker", "ComputeHCI", "Database",
         "Messaging", "CephStorage")
STEPS = range(6)


# -- helpers ------------------------------------------------------------------

def canonical(task: Any) -> str:
    """One task as canonical JSON (sorted keys), for multiset comparison."""
    return json.dumps(task, sort_keys=True, separators=(",", ":"))


def load_tasks(path: Path) -> list[Any]:
    """The task list of a YAML file; a missing file means no tasks."""
    if not path.is_file():
        return []
    return yaml.safe_load(path.read_text(encoding="utf-8")) or []


def multiset_diff(ours: Iterable[Any], theirs: Iterable[Any]) -> str:
    """Names of the tasks only one side has, for assertion messages."""
    a, b = Counter(map(canonical, ours)), Counter(map(canonical, theirs))
    only = [f"only ours: {json.loads(k).get('name')!r}" for k in a - b]
    only += [f"only tripleo-common: {json.loads(k).get('name')!r}" for k in b - a]
    return "; ".join(only)


def task_view(tasks: Sequence[Task]) -> list[tuple[Any, ...]]:
    """What must agree between two readings of a task list (with bodies)."""
    return [(t.kind, t.role, t.index, t.name, t.binding, t.tags, t.never,
             t.service, canonical(dict(t.body))) for t in tasks]


def host_view(deployment: Deployment) -> dict[str, tuple[Any, ...]]:
    """Hosts by name: role, FQDN and address (a config-download directory
    holds no server IDs when Heat lists no deployments)."""
    return {h.name: (h.role, h.fqdn, h.address)
            for h in deployment.hosts.values()}


# -- fixtures -----------------------------------------------------------------

@pytest.fixture(scope="module")
def outputs() -> StackOutputs:
    """The THT 18 fixture's outputs (7 roles, 26 hosts)."""
    return StackOutputs.from_file(FIXTURE_OUTPUTS)


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory: pytest.TempPathFactory,
                  outputs: StackOutputs) -> Path:
    """tripleo-common's config download of the fixture."""
    return download_config(outputs, tmp_path_factory.mktemp("tc") / "config-download")


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory,
             outputs: StackOutputs) -> Path:
    """Our plan folder for the fixture."""
    result = composable_upgrades.prepare(outputs, tmp_path_factory.mktemp("ours"))
    return Path(result.plan_dir)


@pytest.fixture(scope="module")
def from_outputs(outputs: StackOutputs) -> Deployment:
    """The deployment read from the outputs file."""
    return Deployment.from_outputs(outputs)


@pytest.fixture(scope="module")
def from_config_download(reference_dir: Path) -> Deployment:
    """The deployment read back from tripleo-common's directory."""
    return Deployment.from_outputs(StackOutputs.from_config_download(reference_dir))


# -- the plan against tripleo-common's per-step task files ----------------------

def test_reference_holds_the_fixture(outputs: StackOutputs,
                                     reference_dir: Path) -> None:
    """tripleo-common wrote the fixture's roles, each with every step file."""
    assert tuple(outputs["RoleData"]) == ROLES
    for role in ROLES:
        full = load_tasks(reference_dir / role / "upgrade_tasks.yaml")
        assert full, f"{role}: tripleo-common wrote no upgrade tasks"
        assert list(map(canonical, full)) == list(
            map(canonical, outputs["RoleData"][role]["upgrade_tasks"]))
        for step in STEPS:
            assert (reference_dir / role / f"upgrade_tasks_step{step}.yaml").is_file()


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("role", ROLES)
def test_step_tasks_match_tripleo_common(role: str, step: int, reference_dir: Path,
                                         plan_dir: Path) -> None:
    """Role ``role`` runs the same tasks at ``step`` as in tripleo-common."""
    name = f"upgrade_tasks_step{step}.yaml"
    theirs = load_tasks(reference_dir / role / name)
    ours = load_tasks(plan_dir / "tasks" / role / name)
    assert Counter(map(canonical, ours)) == Counter(map(canonical, theirs)), \
        f"{role} step {step}: {multiset_diff(ours, theirs)}"


def test_plan_has_no_other_upgrade_step_files(plan_dir: Path) -> None:
    """Every upgrade step file of the plan was compared above."""
    compared = {f"{role}/upgrade_tasks_step{step}.yaml"
                for role in ROLES for step in STEPS}
    found = {p.relative_to(plan_dir / "tasks").as_posix()
             for p in (plan_dir / "tasks").glob("*/upgrade_tasks_step*.yaml")}
    assert found, "the plan has no upgrade step files"
    assert found <= compared, sorted(found - compared)


# -- reading tripleo-common's directory back ------------------------------------

def test_config_download_gives_the_same_roles_and_services(
        from_outputs: Deployment, from_config_download: Deployment) -> None:
    """Same roles (as a set: see the order test), each with the same services."""
    assert sorted(from_config_download.role_names) == sorted(from_outputs.role_names)
    assert from_config_download.services == from_outputs.services
    for role in from_outputs.roles:
        assert from_config_download.role(role.name).services == role.services, role.name


def test_config_download_gives_the_same_hosts(
        from_outputs: Deployment, from_config_download: Deployment) -> None:
    """Same hosts per role, with the same FQDNs and addresses."""
    assert host_view(from_config_download) == host_view(from_outputs)
    for role in from_outputs.roles:
        assert from_config_download.role(role.name).hosts == role.hosts, role.name


@pytest.mark.parametrize("kind", ROLE_TASK_KINDS)
def test_config_download_gives_the_same_role_tasks(
        kind: str, from_outputs: Deployment,
        from_config_download: Deployment) -> None:
    """Each role's task list: same tasks, bindings, tags and services."""
    for role in from_outputs.roles:
        expected = task_view(role.tasks(kind))
        assert expected, f"{role.name} has no {kind}"
        assert task_view(from_config_download.role(role.name).tasks(kind)) \
            == expected, f"{role.name} {kind}"


def test_config_download_gives_the_same_external_tasks(
        from_outputs: Deployment, from_config_download: Deployment) -> None:
    """RoleConfig's external upgrade tasks: same bodies and step bindings."""
    def view(d: Deployment) -> list[tuple[str, Any]]:
        return [(canonical(dict(t.body)), t.binding) for t in d.external_upgrade_tasks]

    assert view(from_outputs)
    assert view(from_config_download) == view(from_outputs)


# -- order: tripleo-common writes no inventory, and host_vars/ sorts by name ---

def test_config_download_keeps_role_order(
        from_outputs: Deployment, from_config_download: Deployment) -> None:
    """Role order (stage order of roles, play order, external attribution)."""
    assert from_config_download.role_names == from_outputs.role_names
    assert [t.service for t in from_config_download.external_upgrade_tasks] \
        == [t.service for t in from_outputs.external_upgrade_tasks]


def test_config_download_keeps_host_order(tmp_path: Path) -> None:
    """Host order within a role, with more than ten hosts in a role."""
    outputs = scaled_outputs(load_fixture_outputs(), 60)
    expected = Deployment.from_outputs(StackOutputs.from_mapping(outputs))
    assert len(expected.role("Compute").hosts) > 10
    got = Deployment.from_outputs(StackOutputs.from_config_download(
        download_config(outputs, tmp_path / "config-download")))
    assert {r.name: r.hosts for r in got.roles} \
        == {r.name: r.hosts for r in expected.roles}



# -- malformed config-download directories: the SDK's own error ----------------

def small_download(directory: Path) -> Path:
    """A config-download directory of one role, one host, one task."""
    (directory / "Controller").mkdir(parents=True)
    (directory / "Controller" / "upgrade_tasks.yaml").write_text(
        "- name: Stop mysql\n  when: step|int == 1\n  debug: {msg: x}\n")
    (directory / "group_vars").mkdir()
    (directory / "group_vars" / "Controller").write_text(
        "service_names: [mysql]\n")
    (directory / "host_vars").mkdir()
    (directory / "host_vars" / "ctl-0").write_text(
        "pre_network_Controller: []\nfqdn_ctlplane: ctl-0.ctlplane.example\n"
        "ctlplane_ip: 192.0.2.10\n")
    return directory


INVENTORY = "tripleo-ansible-inventory.yaml"
BAD_DOWNLOADS = {
    # case: (file, text, what the message must name)
    "inventory-is-a-list": (INVENTORY, "[1]\n", INVENTORY),
    "all-is-a-list": (INVENTORY, "all: [1]\n", f"{INVENTORY}: all"),
    "children-is-a-list": (INVENTORY, "all: {children: [Controller]}\n",
                           f"{INVENTORY}: all.children"),
    "group-is-a-list": (INVENTORY, "all: {children: {Controller: [ctl-0]}}\n",
                        f"{INVENTORY}: Controller"),
    "top-level-group-is-a-list": (INVENTORY, "Controller: [ctl-0]\n",
                                  f"{INVENTORY}: Controller"),
    "hosts-is-a-list": (INVENTORY,
                        "all: {children: {Controller: {hosts: [ctl-0]}}}\n",
                        f"{INVENTORY}: Controller.hosts"),
    "host-is-a-string": (INVENTORY,
                         "all: {children: {Controller: {hosts: {ctl-0: x}}}}\n",
                         f"{INVENTORY}: Controller.hosts.ctl-0"),
    "overcloud-is-a-list": (INVENTORY,
                            "all: {children: {overcloud: [Controller]}}\n",
                            f"{INVENTORY}: overcloud"),
    "group_vars-is-a-list": ("group_vars/Controller", "[mysql]\n",
                             "group_vars/Controller"),
    "host_vars-is-a-list": ("host_vars/ctl-0", "[pre_network_Controller]\n",
                            "host_vars/ctl-0"),
}


@pytest.mark.parametrize("case", sorted(BAD_DOWNLOADS))
def test_malformed_config_download_names_the_file(tmp_path: Path,
                                                  case: str) -> None:
    directory = small_download(tmp_path / "config-download")
    name, text, where = BAD_DOWNLOADS[case]
    (directory / name).write_text(text)

    with pytest.raises(composable_upgrades.OutputsError) as info:
        Deployment.from_outputs(StackOutputs.from_config_download(directory))

    message = str(info.value)
    assert message.startswith(f"{directory}: {where}: expected a mapping")
    assert "\n" not in message


@pytest.mark.parametrize("inventory", [
    None, "", "all: {children: {Controller: {hosts: {ctl-0: }}}}\n",
    "all: {children: {overcloud: {children: [Controller]}}}\n",
])
def test_small_config_download_reads(tmp_path: Path,
                                     inventory: str | None) -> None:
    directory = small_download(tmp_path / "config-download")
    if inventory is not None:
        (directory / INVENTORY).write_text(inventory)

    deployment = Deployment.from_outputs(
        StackOutputs.from_config_download(directory))

    assert deployment.role_names == ["Controller"]
    assert deployment.role("Controller").hosts == ("ctl-0",)
    assert deployment.role("Controller").services == ("mysql",)


def test_config_download_host_fqdn_not_a_string(tmp_path: Path) -> None:
    directory = small_download(tmp_path / "config-download")
    (directory / INVENTORY).write_text(
        "all: {children: {Controller: {hosts: {ctl-0: "
        "{ctlplane_hostname: [a, b]}}}}}\n")

    with pytest.raises(composable_upgrades.OutputsError) as info:
        Deployment.from_outputs(StackOutputs.from_config_download(directory))

    assert "AnsibleHostVarsMap.Controller.ctl-0.fqdn_ctlplane" in str(info.value)

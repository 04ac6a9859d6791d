"""The demo overcloud rehearsed on a local fleet, and the invariant checker.

The demo is prepared with a rehearsal fleet, seeded, and its stage playbooks
run with plain ``ansible-playbook`` (external, controlplane, compute); the
post-upgrade steps and the ``UpgradeConverge`` task lists run from a small
playbook written here. The invariants must hold after each stage, and the
checker must catch a tampered sandbox or event log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from composable_upgrades import Fleet, StageError, UpgradeError, Workdir, prepare
from composable_upgrades.rehearsal import invariants as inv
from composable_upgrades.rehearsal.demo import (
    demo_dependencies_path, demo_outputs, demo_settings, seed_fleet)
from composable_upgrades.planning.dependencies import Dependencies
from composable_upgrades.rehearsal.invariants import check_invariants
from composable_upgrades.model.deployment import Deployment
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.formats.serialize import to_yaml

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
EVENT = re.compile(r"^\d+\.\d{9} (\d|post\d|external\d|converge) [a-z0-9_-]+ [a-z_]+$")
CONVERGE_KEYS = ("rpc_unpin_tasks", "package_tasks", "kernel_check_tasks",
                 "reboot_tasks")


@dataclass(frozen=True)
class Demo:
    plan: dict[str, Any]
    prepared: PreparedPlan
    plan_dir: Path
    fleet: Fleet
    snapshots: dict[str, Fleet]
    converge_playbook: Path
    base: Path


def ansible_env(base: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(base / "ansible-tmp" / "local"),
        "ANSIBLE_REMOTE_TMP": str(base / "ansible-tmp" / "remote"),
    })
    return env


def run_playbook(base: Path, inventory: Path, *playbooks: Path,
                 check: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory)]
    if check:
        command.append("--syntax-check")
    result = subprocess.run(command + [str(p) for p in playbooks],
                            capture_output=True, text=True, env=ansible_env(base),
                            cwd=str(inventory.parent), timeout=300, check=False)
    assert result.returncode == 0, (
        f"{' '.join(command)} {' '.join(p.name for p in playbooks)} failed "
        f"(rc {result.returncode}):\n{result.stderr[-2000:]}\n{result.stdout[-4000:]}")
    return result


def write_converge_playbook(plan: dict[str, Any], plan_dir: Path,
                            folder: Path) -> Path:
    """Post-upgrade steps from the plan's task files, then UpgradeConverge."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = demo_outputs()["UpgradeConverge"]
    plays: list[dict[str, Any]] = []
    converge = next(s for s in plan["stages"] if s["kind"] == "converge")
    for step in converge["steps"]:
        if not isinstance(step["step"], int):
            continue  # the deployment-wide phases: run from the spec below
        for play in step["plays"]:
            path = plan_dir / "tasks" / play["role"] / \
                f"post_upgrade_tasks_step{step['step']}.yaml"
            assert path.is_file(), path
            plays.append({"name": f"Post-upgrade step {step['step']} | {play['role']}",
                          "hosts": play["role"], "gather_facts": False,
                          "vars": {"step": step["step"]},
                          "tasks": [{"import_tasks": str(path)}]})
    for key in CONVERGE_KEYS:
        (folder / f"{key}.yaml").write_text(to_yaml(spec[key]), encoding="utf-8")
    plays += [
        {"name": "Unpin RPC versions", "hosts": "overcloud", "gather_facts": False,
         "tasks": [{"import_tasks": str(folder / "rpc_unpin_tasks.yaml")}]},
        {"name": "Upgrade unmanaged packages", "hosts": "overcloud",
         "gather_facts": False,
         "vars": {"unmanaged_packages": list(spec["unmanaged_packages"])},
         "tasks": [{"import_tasks": str(folder / "package_tasks.yaml")}]},
        {"name": "Reboot where the kernel changed", "hosts": "overcloud",
         "gather_facts": False, "serial": 1,
         "tasks": [{"import_tasks": str(folder / "kernel_check_tasks.yaml")},
                   {"import_tasks": str(folder / "reboot_tasks.yaml")}]},
    ]
    playbook = folder / "converge-demo.yaml"
    playbook.write_text(to_yaml(plays), encoding="utf-8")
    return playbook


def snapshot(fleet: Fleet, target: Path) -> Fleet:
    shutil.copytree(fleet.root, target, symlinks=True)
    return Fleet.at(target)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo, prepared, seeded and run stage by stage (snapshots between)."""
    base = tmp_path_factory.mktemp("demo")
    fleet = Fleet.at(base / "fleet")
    prepare(demo_outputs(), base / "wd", fleet=fleet,
            dependencies_file=demo_dependencies_path())
    prepared = Workdir.at(base / "wd").load_plan()
    plan_dir = Path(prepared.path)
    plan = json.loads((plan_dir / "plan.json").read_text())
    seed_fleet(fleet, prepared)
    inventory = plan_dir / "inventory.yaml"
    converge_playbook = write_converge_playbook(plan, plan_dir, base / "converge")
    snapshots = {"seeded": snapshot(fleet, base / "snap-seeded")}
    run_playbook(base, inventory, plan_dir / "external.yaml")
    run_playbook(base, inventory, plan_dir / "controlplane.yaml")
    snapshots["controlplane"] = snapshot(fleet, base / "snap-controlplane")
    run_playbook(base, inventory, plan_dir / "compute.yaml")
    snapshots["compute"] = snapshot(fleet, base / "snap-compute")
    run_playbook(base, inventory, converge_playbook)
    snapshots["converge"] = fleet
    return Demo(plan, prepared, plan_dir, fleet, snapshots, converge_playbook, base)


def tampered(demo: Demo, stage: str, name: str) -> Fleet:
    """A private copy of the fleet as it was after ``stage``."""
    return snapshot(demo.snapshots[stage], demo.base / f"tamper-{name}")


def events(fleet: Fleet, host: str) -> list[list[str]]:
    path = Path(fleet.host_root(host)) / "events.log"
    return [line.split() for line in path.read_text().splitlines()]


def write_events(fleet: Fleet, host: str, rows: list[list[str]]) -> None:
    path = Path(fleet.host_root(host)) / "events.log"
    path.write_text("".join(" ".join(r) + "\n" for r in rows))


def find(rows: list[list[str]], step: str, service: str) -> list[str]:
    return next(r for r in rows if r[1] == step and r[2] == service)


# -- the demo data and its plan ------------------------------------------------

def test_demo_outputs_shape() -> None:
    outputs = demo_outputs()
    deployment = Deployment.from_outputs(outputs)
    assert deployment.stack == "overcloud"
    counts = {r.name: len(r.hosts) for r in deployment.roles}
    assert counts == {"Controller": 3, "Compute": 6, "CephStorage": 1}
    assert "overcloud-novacompute-0" in deployment.hosts
    assert len(deployment.services) >= 8
    for key in ("RoleData", "RoleNetHostnameMap", "RoleNetIpMap",
                "AnsibleHostVarsMap", "ServerIdData", "RoleGroupVars",
                "EnabledServices", "RoleConfig", "UpgradeConverge"):
        assert key in outputs, key
    for role in deployment.roles:
        assert outputs["EnabledServices"][role.name] == list(role.services)
        for task in role.upgrade_tasks + role.post_upgrade_tasks:
            assert task.service == task.name.split(":")[0], (role.name, task.name)
            assert task.binding.steps is not None, task.name
    for task in deployment.external_upgrade_tasks:
        assert task.service == task.name.split(":")[0], task.name
        assert task.binding.source == "when" and max(task.binding.steps) <= 2
    sources = {t.binding.source for r in deployment.roles for t in r.upgrade_tasks}
    assert sources == {"when", "tags"}
    text = json.dumps(dict(outputs.data))
    assert "become" not in text
    settings = demo_settings(outputs)
    assert (settings["release_from"], settings["release_to"]) == ("17.1", "18.0")
    assert settings["kernel_targets"]["Controller"] == settings["kernel"]
    assert settings["kernel_targets"]["Compute"] != settings["kernel"]


def test_demo_dependencies_reorder_tasks(demo: Demo) -> None:
    deps = Dependencies.load(demo_dependencies_path())
    assert "nova_libvirt" in deps.requires("nova_compute")
    assert "mysql" in deps.requires("keystone")
    assert demo_dependencies_path() in demo.plan["dependency_sources"]
    assert demo.plan["warnings"] == []
    stages = {s["name"]: s for s in demo.plan["stages"]}
    assert stages["controlplane"]["roles"] == ["Controller"]
    assert stages["compute"]["roles"] == ["Compute", "CephStorage"]
    compute_step2 = next(s for s in stages["compute"]["steps"] if s["step"] == 2)
    play = next(p for p in compute_step2["plays"] if p["role"] == "Compute")
    # RoleData lists nova_compute first; its dependencies move it last.
    assert play["services"] == ["nova_libvirt", "ovn_controller", "nova_compute"]


def test_playbooks_pass_syntax_check(demo: Demo) -> None:
    playbooks = [demo.plan_dir / f"{s['name']}.yaml" for s in demo.plan["stages"]
                 if s["kind"] != "converge"] + [demo.converge_playbook]
    result = run_playbook(demo.base, demo.plan_dir / "inventory.yaml", *playbooks,
                          check=True)
    assert "ERROR" not in result.stderr


# -- seeding -------------------------------------------------------------------

def test_seed_fleet_writes_the_old_release(demo: Demo) -> None:
    fleet = demo.snapshots["seeded"]
    root = Path(fleet.host_root("overcloud-novacompute-3"))
    services = demo.plan["roles"]["Compute"]["services"]
    for service in services:
        assert (root / "services" / service / "version").read_text() == "17.1\n"
        assert (root / "services" / service / "running").read_text() == "true\n"
        assert not (root / "services" / service / "rpc_pin").exists()
    packages = dict(line.split() for line in (root / "packages.txt").read_text().splitlines())
    assert set(packages) >= {"kernel", "openvswitch"}
    assert (root / "kernel" / "running").read_text() == \
        (root / "kernel" / "installed").read_text()
    assert (root / "boot_count").read_text() == "1\n"
    assert (root / "events.log").read_text() == ""
    assert any((root / "package-cache").iterdir())
    assert not (root / "reboot-required").exists()
    assert (Path(fleet.host_root("undercloud")) / "images").is_dir()
    report = check_invariants(fleet, demo.prepared, "controlplane")
    assert not report.check(inv.UPGRADED).ok  # nothing upgraded yet
    assert report.check(inv.UNTOUCHED).ok


def test_seed_fleet_refuses_to_reseed_unless_reset(tmp_path: Path, demo: Demo) -> None:
    fleet = Fleet.at(tmp_path / "fleet")
    seed_fleet(fleet, demo.prepared)
    version = Path(fleet.host_root("overcloud-controller-0")) / "services/mysql/version"
    version.write_text("18.0\n")
    fault = fleet.inject_fault("overcloud-controller-0", "controlplane", 2)
    with pytest.raises(UpgradeError, match="already seeded"):
        seed_fleet(fleet, demo.prepared)
    assert version.read_text() == "18.0\n"
    seed_fleet(fleet, demo.prepared, reset=True)
    assert version.read_text() == "17.1\n"
    assert not os.path.exists(fault)
    assert Path(fleet.host_root("overcloud-controller-0"), "faults").is_dir()


# -- the invariants hold after each stage ---------------------------------------

@pytest.mark.parametrize("stage", ["controlplane", "compute", "converge"])
def test_invariants_hold(demo: Demo, stage: str) -> None:
    report = check_invariants(demo.snapshots[stage], demo.prepared, stage)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.after == stage
    assert len(report.checks) >= 7


def test_invariants_of_a_later_stage_do_not_hold_earlier(demo: Demo) -> None:
    early = check_invariants(demo.snapshots["controlplane"], demo.prepared, "compute")
    assert {c.name for c in early.failed} == {inv.UPGRADED, inv.PINNED, inv.KERNEL}
    late = check_invariants(demo.snapshots["compute"], demo.prepared, "controlplane")
    assert {c.name for c in late.failed} == {inv.UNTOUCHED}
    unconverged = check_invariants(demo.snapshots["compute"], demo.prepared, "converge")
    assert {c.name for c in unconverged.failed} == {
        inv.UNPINNED, inv.PACKAGES, inv.REBOOTS}


def test_events_are_recorded_in_the_format(demo: Demo) -> None:
    hosts = sorted(demo.plan["hosts"]) + ["undercloud"]
    steps: set[str] = set()
    for host in hosts:
        lines = (Path(demo.fleet.host_root(host)) / "events.log").read_text().splitlines()
        assert lines, host
        for line in lines:
            assert EVENT.match(line), (host, line)
        times = [Decimal(line.split()[0]) for line in lines]
        assert times == sorted(times), host  # appended in order
        steps.update(line.split()[1] for line in lines)
    assert steps >= {"1", "2", "3", "4", "5", "post1", "post3",
                     "external0", "external2", "converge"}


def test_converge_work_done(demo: Demo) -> None:
    settings = demo_settings()
    rebooted = set()
    for host, info in demo.plan["hosts"].items():
        rows = events(demo.fleet, host)
        if ["kernel", "reboot"] in [r[2:] for r in rows if r[1] == "converge"]:
            rebooted.add(info["role"])
        root = Path(demo.fleet.host_root(host))
        assert (root / "kernel/running").read_text().strip() == \
            settings["kernel_targets"][info["role"]]
        packages = dict(line.split() for line in
                        (root / "packages.txt").read_text().splitlines())
        assert packages["openvswitch"] != settings["packages"]["openvswitch"]
        assert packages["rhosp-release"] == "18.0"
        assert not (root / "package-cache").exists()  # post-upgrade step 3
    assert rebooted == {"Compute", "CephStorage"}
    ceph = Path(demo.fleet.host_root("overcloud-cephstorage-0"))
    assert not (ceph / "services/ceph_osd/noout").exists()  # post-upgrade step 1


def test_report_frame(demo: Demo) -> None:
    report = check_invariants(demo.snapshots["compute"], demo.prepared, "compute")
    frame = report.to_frame()
    assert list(frame.columns) == ["after", "check", "ok", "detail"]
    assert len(frame) == len(report.checks)
    assert bool(frame["ok"].all())


def test_unknown_stage_is_refused(demo: Demo) -> None:
    with pytest.raises(StageError, match="nosuchstage"):
        check_invariants(demo.fleet, demo.prepared, "nosuchstage")


# -- the checker catches violations ------------------------------------------------

def test_catches_a_service_not_running(demo: Demo) -> None:
    fleet = tampered(demo, "controlplane", "running")
    Path(fleet.host_root("overcloud-controller-1"), "services/keystone/running") \
        .write_text("false\n")
    report = check_invariants(fleet, demo.prepared, "controlplane")
    assert {c.name for c in report.failed} == {inv.UPGRADED}
    assert "overcloud-controller-1 keystone" in report.check(inv.UPGRADED).detail


def test_catches_a_missing_rpc_pin(demo: Demo) -> None:
    fleet = tampered(demo, "controlplane", "pin")
    os.unlink(Path(fleet.host_root("overcloud-controller-2"), "services/nova_api/rpc_pin"))
    report = check_invariants(fleet, demo.prepared, "controlplane")
    assert {c.name for c in report.failed} == {inv.PINNED}


def test_catches_a_later_stage_host_touched(demo: Demo) -> None:
    fleet = tampered(demo, "controlplane", "touched")
    Path(fleet.host_root("overcloud-novacompute-4"), "services/nova_libvirt/version") \
        .write_text("18.0\n")
    report = check_invariants(fleet, demo.prepared, "controlplane")
    assert {c.name for c in report.failed} == {inv.UNTOUCHED}
    assert "overcloud-novacompute-4 nova_libvirt" in report.check(inv.UNTOUCHED).detail


def test_catches_dependency_order_broken_on_a_host(demo: Demo) -> None:
    fleet = tampered(demo, "compute", "order-host")
    host = "overcloud-novacompute-2"
    rows = events(fleet, host)
    compute, libvirt = find(rows, "2", "nova_compute"), find(rows, "2", "nova_libvirt")
    compute[0], libvirt[0] = libvirt[0], compute[0]
    write_events(fleet, host, rows)
    report = check_invariants(fleet, demo.prepared, "compute")
    assert {c.name for c in report.failed} == {inv.ORDER_HOST}
    detail = report.check(inv.ORDER_HOST).detail
    assert host in detail and "nova_compute" in detail and "nova_libvirt" in detail


def test_catches_dependency_order_broken_across_controllers(demo: Demo) -> None:
    fleet = tampered(demo, "controlplane", "order-across")
    first = min(Decimal(find(events(fleet, h), "2", "mysql")[0])
                for h in demo.plan["roles"]["Controller"]["hosts"])
    host = "overcloud-controller-1"
    rows = events(fleet, host)
    # On this host mysql still stops before keystone, but keystone now stops
    # before mysql stopped on the other controllers.
    find(rows, "2", "mysql")[0] = f"{first - Decimal('0.002'):.9f}"
    find(rows, "2", "keystone")[0] = f"{first - Decimal('0.001'):.9f}"
    rows.sort(key=lambda r: Decimal(r[0]))
    write_events(fleet, host, rows)
    report = check_invariants(fleet, demo.prepared, "controlplane")
    assert {c.name for c in report.failed} == {inv.ORDER_CONTROLPLANE}
    assert "keystone" in report.check(inv.ORDER_CONTROLPLANE).detail


def test_catches_a_malformed_event(demo: Demo) -> None:
    fleet = tampered(demo, "compute", "malformed")
    with open(Path(fleet.host_root("undercloud"), "events.log"), "a") as handle:
        handle.write("yesterday nova_api restarted\n")
    report = check_invariants(fleet, demo.prepared, "compute")
    assert {c.name for c in report.failed} == {inv.EVENTS}


def test_catches_an_rpc_pin_left_after_converge(demo: Demo) -> None:
    fleet = tampered(demo, "converge", "unpin")
    Path(fleet.host_root("overcloud-novacompute-0"), "services/nova_compute/rpc_pin") \
        .write_text("17.1\n")
    report = check_invariants(fleet, demo.prepared, "converge")
    assert {c.name for c in report.failed} == {inv.UNPINNED}


def test_catches_an_extra_or_missing_reboot(demo: Demo) -> None:
    fleet = tampered(demo, "converge", "reboot")
    Path(fleet.host_root("overcloud-controller-0"), "boot_count").write_text("2\n")
    Path(fleet.host_root("overcloud-novacompute-5"), "boot_count").write_text("1\n")
    report = check_invariants(fleet, demo.prepared, "converge")
    assert {c.name for c in report.failed} == {inv.REBOOTS}
    detail = report.check(inv.REBOOTS).detail
    assert "overcloud-controller-0" in detail and "overcloud-novacompute-5" in detail


def test_catches_an_unmanaged_package_left_behind(demo: Demo) -> None:
    fleet = tampered(demo, "converge", "packages")
    path = Path(fleet.host_root("overcloud-cephstorage-0"), "packages.txt")
    deployed = demo_settings()["packages"]["openvswitch"]
    path.write_text(re.sub(r"(?m)^openvswitch .*$", f"openvswitch {deployed}",
                           path.read_text()))
    report = check_invariants(fleet, demo.prepared, "converge")
    assert {c.name for c in report.failed} == {inv.PACKAGES}


def walk(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for task in tasks:
        found.append(task)
        for key in ("block", "rescue", "always"):
            found += walk(task.get(key) or [])
    return found


def test_demo_tasks_stay_in_the_sandbox() -> None:
    """Every file a demo task touches is under rehearsal_root; no become."""
    outputs = demo_outputs()
    tasks = [t for role in outputs["RoleData"].values()
             for kind in ("upgrade_tasks", "post_upgrade_tasks") for t in role[kind]]
    tasks += outputs["RoleConfig"]["external_upgrade_steps_tasks"]
    tasks += [t for key in CONVERGE_KEYS for t in outputs["UpgradeConverge"][key]]
    modules = set()
    for task in walk(tasks):
        assert "become" not in task, task["name"]
        for module, args in task.items():
            if not module.startswith("ansible.builtin."):
                continue
            modules.add(module)
            if module == "ansible.builtin.raw":
                assert args.startswith("set -e\ncd {{ rehearsal_root | quote }}\n")
                assert ".." not in args and " /" not in args, task["name"]
                continue
            paths = [args[k] for k in ("path", "dest", "src", "paths") if k in args]
            paths += (args.get("argv") or [])[1:]
            for path in paths:
                assert path.startswith("{{ rehearsal_root }}/"), (task["name"], path)
    assert modules >= {"ansible.builtin.raw", "ansible.builtin.assert",
                       "ansible.builtin.lineinfile", "ansible.builtin.copy",
                       "ansible.builtin.file",
                       "ansible.builtin.set_fact"}

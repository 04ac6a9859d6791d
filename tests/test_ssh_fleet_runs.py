"""Rehearsals over real SSH: ``prepare --fleet DIR --fleet-transport ssh``.

Every host of the plan is reached at its own loopback address over the real
OpenSSH server of tests/sshfleet, as the inventory's SSH user with the run's
key, and becomes root through sudo, as on an overcloud; the sandboxes are the
same as a local fleet's. A wrong key, an unknown user and an address where no
sshd listens each fail the host, naming it and the cause, and count against
``--max-fail-percentage`` like any failure.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.model.fleet import ssh_address
from tests.helpers import journaled_run
from tests.sshfleet.fixture import ssh_fleet  # noqa: F401  (the fixture)
from tests.sshfleet.launcher import SSH_KEYGEN, SshFleetServer

FIXTURES = Path(__file__).parent / "fixtures"
MINI = FIXTURES / "mini-outputs.yaml"
THT18 = FIXTURES / "tht18" / "stack-outputs.json"


def ssh_fleet_for(server: SshFleetServer, root: Path) -> cu.Fleet:
    return cu.Fleet.at(root, transport="ssh", ssh_port=server.port)


def logins(server: SshFleetServer) -> int:
    return server.log_file.read_text().count(f"Accepted publickey for {server.user}")


def inventory_host(prepared: cu.PrepareResult, host: str) -> dict:
    import yaml
    inventory = yaml.safe_load(Path(prepared.prepared.file("inventory.yaml")).read_text())
    for group in inventory["all"]["children"].values():
        if host in (group.get("hosts") or {}):
            return group["hosts"][host]
    raise AssertionError(host)


def test_ssh_fleet_demo_upgrade_passes_its_invariants(tmp_path, ssh_fleet):
    fleet = ssh_fleet_for(ssh_fleet, tmp_path / "fleet")
    wd = tmp_path / "wd"
    prepared = cu.prepare(cu.demo_outputs(), wd, fleet=fleet,
                          dependencies_file=cu.demo_dependencies_path())
    plan = prepared.prepared
    assert plan.fleet_transport == "ssh"
    first = next(iter(plan.hosts))
    assert inventory_host(prepared, first)["ansible_host"] == ssh_address(0)
    assert inventory_host(prepared, first)["ansible_port"] == ssh_fleet.port
    cu.seed_fleet(fleet, plan)
    before = logins(ssh_fleet)
    for stage in ("controlplane", "compute"):
        result = cu.run_stage(wd, stage, ssh_key=ssh_fleet.private_key)
        assert result.status == "successful", result.notes
        assert cu.check_invariants(fleet, plan, stage).ok
    result = cu.converge(wd, ssh_key=ssh_fleet.private_key)
    assert result.status == "successful", result.notes
    report = cu.check_invariants(fleet, plan, "converge")
    assert report.ok, report.failed
    # Every overcloud host was reached over SSH, not through a local connection.
    assert logins(ssh_fleet) - before >= len(plan.hosts)
    owner = Path(fleet.host_root(first)).stat().st_uid
    assert owner == 0  # become through sudo: root wrote the sandbox


def test_ssh_fleet_noop_rehearsal_of_the_tht18_plan(tmp_path, ssh_fleet):
    fleet = ssh_fleet_for(ssh_fleet, tmp_path / "fleet")
    wd = tmp_path / "wd"
    prepared = cu.prepare(cu.StackOutputs.from_file(THT18), wd, fleet=fleet,
                          noop=True)
    plan = prepared.prepared
    fleet.create(list(plan.hosts))
    # The whole controlplane; of the compute stage, one host of each role
    # (its 17 hosts run the same tasks as these four).
    first = {}
    for host in plan.stage("compute").hosts:
        first.setdefault(plan.hosts[host].role, host)
    assert len(first) == 4
    for stage, hosts in (("controlplane", plan.stage("controlplane").hosts),
                         ("compute", tuple(first.values()))):
        options = {"limit": ",".join(hosts)} if stage == "compute" else {}
        result = cu.run_stage(wd, stage, ssh_key=ssh_fleet.private_key, **options)
        assert result.status == "successful", result.notes
        assert {r.host for r in result.records} == set(hosts)
        assert all(r.action == "ansible.builtin.debug" for r in result.records
                   if not r.task.startswith("Rehearsal fault check"))


def _mini(tmp_path: Path, server: SshFleetServer, **prepare) -> tuple[Path, cu.Fleet]:
    fleet = ssh_fleet_for(server, tmp_path / "fleet")
    wd = tmp_path / "wd"
    result = cu.prepare(cu.StackOutputs.from_file(MINI), wd, fleet=fleet, **prepare)
    fleet.create(list(result.prepared.hosts))
    return wd, fleet


def _unreachable(result: cu.RunResult) -> dict[str, str]:
    return {r.host: r.message for r in result.records if r.status == "unreachable"}


def test_ssh_fleet_wrong_key_fails_each_host_naming_it(tmp_path, ssh_fleet,
                                                      monkeypatch):
    # Not through a master connection an earlier test left open with the key.
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(tmp_path / "cp"))
    wd, _ = _mini(tmp_path, ssh_fleet)
    stranger = tmp_path / "stranger"
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    result = cu.run_stage(wd, "controlplane", ssh_key=stranger)
    assert result.status == "failed"
    failed = _unreachable(result)
    assert set(failed) == {"overcloud-controller-0", "overcloud-controller-1"}
    for message in failed.values():
        assert "Permission denied" in message and "\n" not in message


def test_ssh_fleet_unknown_user_fails_each_host_naming_it(tmp_path, ssh_fleet):
    wd, _ = _mini(tmp_path, ssh_fleet, ssh_user="no-such-user")
    result = cu.run_stage(wd, "controlplane", ssh_key=ssh_fleet.private_key)
    assert result.status == "failed"
    failed = _unreachable(result)
    assert set(failed) == {"overcloud-controller-0", "overcloud-controller-1"}
    assert all("no-such-user@" in m and "Permission denied" in m
               for m in failed.values())


def test_ssh_fleet_unreachable_host_counts_against_max_fail(tmp_path, ssh_fleet):
    """One compute's address has no sshd: it fails, the others finish."""
    outputs = cu.StackOutputs.from_file(MINI)
    hosts = list(cu.plan_upgrade(outputs).deployment.hosts)
    dead = hosts[-1]
    with SshFleetServer(tmp_path / "partial",
                        [ssh_address(i) for i in range(len(hosts) - 1)]) as server:
        wd, _ = _mini(tmp_path, server)
        # The controlplane's progress, for the guard (its runs over SSH are
        # the demo test's).
        assert journaled_run(wd, "controlplane").ok
        result = cu.run_stage(wd, "compute", ssh_key=server.private_key,
                              max_fail_percentage=25)
    failed = _unreachable(result)
    assert list(failed) == [dead]
    assert re.search(r"Connection refused", failed[dead])
    assert ssh_address(len(hosts) - 1) in failed[dead]
    status = {s.stage: s for s in cu.status(wd)}["compute"]
    assert dead in status.failed
    assert set(status.done) == set(hosts[2:-1])


def test_ssh_fleet_cli_prepare_takes_the_transport(tmp_path, ssh_fleet):
    from tests.helpers import cli, error_line
    wd = tmp_path / "wd"
    done = cli(["overcloud", "upgrade", "prepare", "--outputs-file", str(MINI),
                "--working-dir", str(wd), "--fleet", str(tmp_path / "fleet"),
                "--fleet-transport", "ssh", "--fleet-ssh-port", str(ssh_fleet.port)])
    assert done.returncode == 0, done.stderr
    plan = json.loads((wd / "composable-upgrade" / "plan" / "plan.json").read_text())
    assert plan["fleet"] == {"root": str(tmp_path / "fleet"), "transport": "ssh",
                             "ssh_port": ssh_fleet.port}
    bad = cli(["overcloud", "upgrade", "prepare", "--outputs-file", str(MINI),
               "--working-dir", str(wd), "--fleet", str(tmp_path / "fleet"),
               "--fleet-transport", "ssh", "--fleet-ssh-port", "0"])
    assert error_line(bad).startswith("--fleet-ssh-port 0")

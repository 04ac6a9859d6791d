"""Lanes and waves with real ansible-runner on a local fleet.

A sandboxed controlplane of Database, Messaging and Controller (Controller's
keystone needs Database's mysql; Messaging needs neither) and a compute
stage of Compute and CephStorage hosts, whose tasks sleep a little (raw
commands, which start no module process on the host): the records' times
show which plays ran at once, that every step stayed a barrier, and that
each role kept one ansible-playbook process per batch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import composable_upgrades as cu
from tests.helpers import cli, journaled_run

SLEEP = 0.6
ROLES = {"Database": ("mysql", 2), "Messaging": ("oslo_messaging_rpc", 2),
         "Controller": ("keystone", 2), "Compute": ("nova_compute", 3),
         "CephStorage": ("ceph_osd", 2)}


def outputs() -> cu.StackOutputs:
    role_data, host_vars = {}, {}
    for role, (service, count) in ROLES.items():
        role_data[role] = {"service_names": [service], "upgrade_tasks": [
            {"name": f"{service} step {step}", "when": f"step|int == {step}",
             "ansible.builtin.raw": f"sleep {SLEEP}"} for step in (1, 2, 3)]}
        host_vars[role] = {f"{role.lower()}-{i}": {} for i in range(count)}
    return cu.StackOutputs.from_mapping(
        {"RehearsalSandbox": True, "RoleData": role_data,
         "AnsibleHostVarsMap": host_vars}, source="lanes test")


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("lanes")
    fleet = cu.Fleet.at(root / "fleet")
    prepared = cu.prepare(outputs(), root / "wd", fleet=fleet)
    fleet.create(list(prepared.prepared.hosts))
    events: list[cu.ProgressEvent] = []
    results = {stage: cu.run_stage(root / "wd", stage, progress=events.append)
               for stage in ("controlplane", "compute")}
    return {"wd": root / "wd", "plan": prepared.prepared, "results": results,
            "events": events, "fleet": fleet}


def spans(result: cu.RunResult, step: int, role: str) -> tuple[float, float]:
    """First start and last end of ``role``'s task records at ``step``."""
    mine = [r for r in result.records if r.step == step and r.role == role]
    assert mine, (step, role)
    return (min(r.start for r in mine), max(r.start + r.duration for r in mine))


def test_the_plan_groups_independent_plays_in_waves(ran: dict) -> None:
    plan = ran["plan"]
    assert {s.number: s.waves for s in plan.stage("controlplane").steps} == {
        n: (("Database", "Messaging"), ("Controller",)) for n in (1, 2, 3)}
    assert all(s.waves == (("Compute", "CephStorage"),)
               for s in plan.stage("compute").steps)
    data = json.loads((ran["wd"] / "composable-upgrade" / "plan" / "plan.json")
                      .read_text())
    stage = next(s for s in data["stages"] if s["name"] == "controlplane")
    assert stage["steps"][0]["waves"] == [["Database", "Messaging"], ["Controller"]]
    done = cli(["overcloud", "upgrade", "plan", "--working-dir", str(ran["wd"]),
                "--stage", "controlplane", "-f", "json"])
    assert done.returncode == 0, done.stderr
    waves = {(r["Step"], r["Role"]): r["Wave"] for r in json.loads(done.stdout)}
    assert waves[(1, "Database")] == waves[(1, "Messaging")] == 1
    assert waves[(1, "Controller")] == 2


def test_plays_of_a_wave_run_at_once_and_waves_in_order(ran: dict) -> None:
    result = ran["results"]["controlplane"]
    assert result.status == "successful", result.notes
    for step in (1, 2, 3):
        database, messaging = spans(result, step, "Database"), spans(result, step, "Messaging")
        controller = spans(result, step, "Controller")
        # At once: each started before the other ended.
        assert database[0] < messaging[1] and messaging[0] < database[1]
        # In order: Controller (keystone needs mysql) after both.
        assert controller[0] >= max(database[1], messaging[1])
    starts = [e for e in ran["events"] if e.kind == "step_start"
              and e.stage == "controlplane"]
    assert "plays Database + Messaging, then Controller" in starts[0].message


def test_every_step_is_a_barrier(ran: dict) -> None:
    for result in ran["results"].values():
        steps = sorted({r.step for r in result.records})
        for before, after in zip(steps, steps[1:]):
            ended = max(r.start + r.duration for r in result.records if r.step == before)
            started = min(r.start for r in result.records if r.step == after)
            assert started >= ended, (result.stage, before, after)


def test_one_process_per_role_and_batch(ran: dict) -> None:
    for stage, roles in (("controlplane", 3), ("compute", 2)):
        result = ran["results"][stage]
        assert result.status == "successful", result.notes
        processes = os.listdir(os.path.join(result.run_dir, "artifacts"))
        assert len(processes) == roles, processes
        # The reproduce script still shows one call per step.
        script = Path(result.reproduce_script).read_text()
        assert script.count("ansible-playbook -i") == 3


def test_a_failure_in_one_lane_leaves_the_other_going_within_max_fail(
        tmp_path: Path) -> None:
    fleet = cu.Fleet.at(tmp_path / "fleet")
    prepared = cu.prepare(outputs(), tmp_path / "wd", fleet=fleet)
    fleet.create(list(prepared.prepared.hosts))
    assert journaled_run(tmp_path / "wd", "controlplane").ok   # for the guard
    fleet.inject_fault("compute-1", "compute", 2)
    result = cu.run_stage(tmp_path / "wd", "compute", max_fail_percentage=30)
    assert result.status == "failed"
    assert result.failed_hosts == ["compute-1"]
    # compute-1 stopped at step 2; everyone else ran step 3.
    assert {r.host for r in result.records if r.step == 3} == \
        set(prepared.prepared.stage("compute").hosts) - {"compute-1"}
    status = {s.stage: s for s in cu.status(tmp_path / "wd")}["compute"]
    assert "compute-1" in status.failed and len(status.done) == 4


def test_lanes_of_a_killed_run_end_instead_of_waiting(tmp_path: Path) -> None:
    """kill -9 of the run while its lanes wait at a barrier: they end."""
    import subprocess
    import sys
    import time

    fleet = cu.Fleet.at(tmp_path / "fleet")
    prepared = cu.prepare(outputs(), tmp_path / "wd", fleet=fleet)
    fleet.create(list(prepared.prepared.hosts))
    script = (
        "import os, signal, composable_upgrades as cu\n"
        "def progress(event):\n"
        "    if event.kind == 'step_start' and event.step == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"cu.run_stage({str(tmp_path / 'wd')!r}, 'controlplane', progress=progress)\n")
    done = subprocess.run([sys.executable, "-c", script], timeout=300)
    assert done.returncode == -9

    def lanes() -> list[str]:
        found = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    line = handle.read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "ansible-playbook" in line and str(tmp_path) in line:
                found.append(line)
        return found

    deadline = time.monotonic() + 30
    while lanes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lanes() == []

"""A rehearsal runs nothing outside its fleet's sandbox.

Outputs declared sandboxed (``RehearsalSandbox: true``) without an
``UpgradeConverge`` output used to get the built-in TripleO converge tasks,
which act on the machine itself (``systemctl``, ``crudini``, ``dnf``,
``needs-restarting``, a reboot). On a fleet they are no-op records. Two
proofs: stand-in executables first on ``PATH`` that log every call are never
called, and the run records show every converge-phase task as a ``debug``
no-op (modules such as ``ansible.builtin.dnf`` and ``reboot`` do not go through
``PATH``, which is why the records matter).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.planning.converge_work import BUILTIN

#: What the built-in converge work, or anything acting on a real host, calls.
STAND_INS = ("systemctl", "crudini", "dnf", "yum", "needs-restarting", "reboot",
             "shutdown", "podman", "pcs")
PHASES = ("rpc_unpin", "packages", "reboot")


def sandboxed_outputs_without_converge() -> cu.StackOutputs:
    demo = cu.demo_outputs()
    data = {k: v for k, v in demo.items() if k != "UpgradeConverge"}
    assert data["RehearsalSandbox"] is True
    return cu.StackOutputs.from_mapping(data, source="demo without UpgradeConverge")


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of logging stand-ins, first on PATH; returns the log file."""
    folder = tmp_path / "stand-ins"
    folder.mkdir()
    log = tmp_path / "stand-in-calls.log"
    for name in STAND_INS:
        script = folder / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 0\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


def test_builtin_converge_work_is_recorded_not_run_on_a_fleet(tmp_path, stand_ins):
    fleet = cu.Fleet.at(tmp_path / "fleet")
    wd = tmp_path / "wd"
    prepared = cu.prepare(sandboxed_outputs_without_converge(), wd, fleet=fleet,
                          dependencies_file=cu.demo_dependencies_path())
    assert any(BUILTIN in w and "no-op records" in w for w in prepared.plan.warnings)
    cu.seed_fleet(fleet, prepared.prepared)
    for stage in ("controlplane", "compute"):
        assert cu.run_stage(wd, stage).status == "successful"
    result = cu.converge(wd)
    assert result.status == "successful", result.notes
    phase_records = [r for r in result.records if r.step in PHASES]
    assert {r.step for r in phase_records} >= {"rpc_unpin", "reboot"}
    assert phase_records and all(r.action in ("ansible.builtin.debug", "debug")
                                 for r in phase_records), \
        sorted({(r.step, r.task, r.action) for r in phase_records})
    assert not stand_ins.exists(), stand_ins.read_text()


def test_stand_ins_would_have_seen_a_real_call(tmp_path, stand_ins):
    """The stand-ins are on the PATH ansible-runner gives ansible-playbook."""
    outputs = cu.StackOutputs.from_mapping({
        "RehearsalSandbox": True,
        "RoleData": {"Compute": {"service_names": ["nova_compute"], "upgrade_tasks": [
            {"name": "call systemctl", "command": "systemctl try-restart x",
             "when": "step|int == 1"}]}},
        "AnsibleHostVarsMap": {"Compute": {"overcloud-novacompute-0": {}}},
    }, source="calls systemctl")
    fleet = cu.Fleet.at(tmp_path / "fleet")
    wd = tmp_path / "wd"
    prepared = cu.prepare(outputs, wd, fleet=fleet)
    fleet.create(list(prepared.prepared.hosts))
    assert cu.run_stage(wd, "compute").status == "successful"
    assert stand_ins.read_text().split() == ["systemctl", "try-restart", "x"]


def test_a_fleet_with_converge_work_in_the_outputs_runs_it_for_real(tmp_path):
    """The demo's own UpgradeConverge is sandboxed: it is not replaced."""
    prepared = cu.prepare(cu.demo_outputs(), tmp_path / "wd",
                          fleet=cu.Fleet.at(tmp_path / "fleet"),
                          dependencies_file=cu.demo_dependencies_path())
    assert not any("no-op records" in w for w in prepared.plan.warnings)
    reboot = prepared.plan.stage("converge").steps[-1]
    assert not any("ansible.builtin.debug" in t.body for p in reboot.plays
                   for t in p.tasks)

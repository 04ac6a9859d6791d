"""Running stages for real: ansible-runner and ansible-playbook on a local fleet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.lock import acquire

MINI = Path(__file__).parent / "fixtures" / "mini-outputs.yaml"
CONTROLLERS = ["overcloud-controller-0", "overcloud-controller-1"]
COMPUTES = [f"overcloud-novacompute-{i}" for i in range(4)]


@pytest.fixture
def mini(tmp_path: Path) -> tuple[Path, cu.Fleet]:
    """The mini overcloud prepared onto a fleet: (working dir, fleet)."""
    fleet = cu.Fleet.at(tmp_path / "fleet")
    wd = tmp_path / "wd"
    result = cu.prepare(cu.StackOutputs.from_file(MINI), wd, fleet=fleet)
    fleet.create(result.prepared.hosts)
    return wd, fleet


def sandbox(fleet: cu.Fleet, host: str) -> Path:
    return Path(fleet.host_root(host))


def units(wd: Path, status: str = "ok") -> list[tuple]:
    entries = Journal(str(wd / "composable-upgrade" / "state")).entries()
    return [(e["stage"], e["batch"], e["step"], e["host"]) for e in entries
            if e.get("kind") == "unit" and e["status"] == status]


def test_full_flow_stages_batches_converge(mini) -> None:
    wd, fleet = mini
    events: list[cu.ProgressEvent] = []
    control = cu.run_stage(wd, "controlplane", progress=events.append)
    assert control.status == "successful"
    assert [s.step for s in control.steps] == [0, 1, 2, 3, 4, 5]
    for host in CONTROLLERS:
        root = sandbox(fleet, host)
        assert (root / "mysql-step1").read_text() == "done\n"
        assert (root / "keystone-step2").exists() and (root / "keystone-step3").exists()
        assert not (root / "keystone-step1").exists()  # tags: step2 binds to 2 only
    assert not (sandbox(fleet, COMPUTES[0]) / "nova_compute-step3").exists()
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("step_start") == 6

    compute = cu.run_stage(wd, "compute", batch_size=2)
    assert compute.status == "successful"
    assert compute.batches == [tuple(COMPUTES[:2]), tuple(COMPUTES[2:])]
    # Each batch runs every step that has tasks: batch 1's steps all end
    # before batch 2's first step starts.
    batch1 = [s for s in compute.steps if s.batch == 1]
    batch2 = [s for s in compute.steps if s.batch == 2]
    assert max(s.ended for s in batch1) <= min(s.started for s in batch2)
    assert {s.step for s in batch1} == {3, 4}   # the steps with compute tasks

    done = cu.converge(wd)
    assert done.status == "successful", done.notes
    assert [s.step for s in done.steps][-3:] == ["rpc_unpin", "packages", "reboot"]
    for host in CONTROLLERS + COMPUTES:
        root = sandbox(fleet, host)
        assert (root / "rpc-unpinned").exists()
        assert (root / "packages").read_text() == "openvswitch\n"
        assert (root / "rebooted").exists() == host.startswith("overcloud-novacompute")
    assert (sandbox(fleet, CONTROLLERS[0]) / "keystone-post").exists()
    # Reboots go one host at a time.
    times = sorted(float((sandbox(fleet, h) / "rebooted").read_text()) for h in COMPUTES)
    assert len(times) == 4
    states = {s.stage: s.state for s in cu.status(wd)}
    assert states == {"controlplane": "finished", "compute": "finished",
                      "converge": "finished"}


def test_stage_guards_and_force(mini) -> None:
    wd, _ = mini
    with pytest.raises(cu.StageNotFinishedError, match="'controlplane' is not "
                       "finished .2 hosts pending: overcloud-controller-0"):
        cu.run_stage(wd, "compute")
    with pytest.raises(cu.StageNotFinishedError, match="before converge"):
        cu.converge(wd)
    forced = cu.run_stage(wd, "compute", force=True, limit="overcloud-novacompute-0")
    assert forced.status == "successful"
    assert any(n.startswith("forced: stage controlplane unfinished") for n in forced.notes)


def test_failure_stops_controlplane_and_resume_skips_finished_units(mini) -> None:
    wd, fleet = mini
    fleet.inject_fault(CONTROLLERS[1], "controlplane", 2)
    failed = cu.run_stage(wd, "controlplane")
    assert failed.status == "failed"
    assert failed.failed_hosts == [CONTROLLERS[1]]
    assert [s.step for s in failed.steps] == [0, 1, 2]   # stopped after step 2
    assert not (sandbox(fleet, CONTROLLERS[0]) / "keystone-step3").exists()
    status = {s.stage: s for s in cu.status(wd)}["controlplane"]
    assert status.state == "failed" and status.failed == (CONTROLLERS[1],)
    # The failure stopped every host of the step (any_errors_fatal): none of
    # them finished step 2, so none is journaled as having done it.
    assert [u for u in units(wd) if u[2] == 2] == []

    fleet.clear_faults()
    resumed = cu.run_stage(wd, "controlplane", resume=True)
    assert resumed.status == "successful"
    ran = [(s.step, s.hosts) for s in resumed.steps]
    # Step 2 reruns on both hosts; steps 0 and 1 not at all.
    assert ran[0] == (2, tuple(CONTROLLERS))
    assert [step for step, _ in ran] == [2, 3, 4, 5]
    assert {r.step for r in resumed.records} == {2, 3, 4, 5}


def test_max_fail_percentage_in_batches(mini) -> None:
    wd, fleet = mini
    assert cu.run_stage(wd, "controlplane").ok
    fleet.inject_fault(COMPUTES[0], "compute", 3)
    tolerant = cu.run_stage(wd, "compute", batch_size=2, max_fail_percentage=50)
    # 1 of 2 hosts of batch 1 failed: 50% is not more than 50%: go on.
    assert tolerant.status == "failed"
    assert tolerant.failed_hosts == [COMPUTES[0]]
    assert {s.batch for s in tolerant.steps} == {1, 2}
    assert (sandbox(fleet, COMPUTES[3]) / "nova_compute-step4").exists()
    assert not (sandbox(fleet, COMPUTES[0]) / "nova_compute-step4").exists()
    assert (sandbox(fleet, COMPUTES[1]) / "nova_compute-step4").exists()

    strict = cu.run_stage(wd, "compute", batch_size=2)
    assert strict.status == "failed"
    assert {s.batch for s in strict.steps} == {1}   # stopped in batch 1
    assert any("more than --max-fail-percentage 0" in n for n in strict.notes)


def test_limit_runs_some_hosts_status_shows_the_rest(mini) -> None:
    wd, _ = mini
    assert cu.run_stage(wd, "controlplane").ok
    part = cu.run_stage(wd, "compute", limit="overcloud-novacompute-1,overcloud-novacompute-3")
    assert part.ok
    compute = {s.stage: s for s in cu.status(wd)}["compute"]
    assert compute.state == "partly done"
    assert compute.done == (COMPUTES[1], COMPUTES[3])
    assert compute.pending == (COMPUTES[0], COMPUTES[2])
    with pytest.raises(cu.UnknownHostError, match="'nosuchhost' matches no host"):
        cu.run_stage(wd, "compute", limit="nosuchhost")
    by_role = cu.run_stage(wd, "compute", limit="Compute", dry_run=True)
    assert by_role.batches == [tuple(COMPUTES)]
    by_glob = cu.run_stage(wd, "compute", limit="*.ctlplane.localdomain,!overcloud-novacompute-0",
                           dry_run=True)
    assert by_glob.batches == [tuple(COMPUTES[1:])]


def test_unusable_options_name_the_option(mini, tmp_path: Path) -> None:
    wd, fleet = mini
    cases = [
        (dict(batch_size="a third"), "--batch-size", "'a third': expected a number"),
        (dict(batch_size="0%"), "--batch-size", "'0%': expected a number"),
        (dict(max_fail_percentage=150), "--max-fail-percentage",
         "150: must be between 0 and 100"),
        (dict(fleet=str(tmp_path / "other")), "--fleet", "does not match the fleet"),
    ]
    for options, option, message in cases:
        with pytest.raises(cu.OptionError, match=message) as raised:
            cu.run_stage(wd, "compute", dry_run=True, force=True, **options)
        assert raised.value.option == option
    # The same options, usable, plan a run.
    fine = cu.run_stage(wd, "compute", dry_run=True, force=True, batch_size="50%",
                        max_fail_percentage=25, fleet=fleet)
    assert [len(batch) for batch in fine.batches] == [2, 2]


def test_ssh_key_is_given_found_or_none(mini, tmp_path: Path, monkeypatch) -> None:
    from composable_upgrades.run.execute import ssh_key_env

    wd, _ = mini
    fleet_plan = cu.Workdir.at(wd).load_plan()
    real_wd = tmp_path / "real"
    cu.prepare(cu.StackOutputs.from_file(MINI), real_wd)
    real_plan = cu.Workdir.at(real_wd).load_plan()
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    key = "ANSIBLE_PRIVATE_KEY_FILE"

    assert ssh_key_env(str(real_wd), real_plan) == {}
    (home / ".ssh" / "id_rsa").write_text("k")
    assert ssh_key_env(str(real_wd), real_plan) == {key: str(home / ".ssh" / "id_rsa")}
    (home / ".ssh" / "id_rsa_tripleo").write_text("k")
    assert ssh_key_env(str(real_wd), real_plan) == {
        key: str(home / ".ssh" / "id_rsa_tripleo")}
    (real_wd / "ssh_private_key").write_text("k")
    assert ssh_key_env(str(real_wd), real_plan) == {key: str(real_wd / "ssh_private_key")}
    # A fleet's hosts are local: no key unless one is given.
    assert ssh_key_env(str(wd), fleet_plan) == {}
    assert ssh_key_env(str(wd), fleet_plan, home / ".ssh" / "id_rsa") == {
        key: str(home / ".ssh" / "id_rsa")}
    with pytest.raises(cu.OptionError, match="no-such-key: no such file") as raised:
        cu.run_stage(real_wd, "controlplane", dry_run=True, ssh_key=tmp_path / "no-such-key")
    assert raised.value.option == "--overcloud-ssh-key"


def test_prepare_refuses_to_drop_progress(mini, tmp_path: Path) -> None:
    wd, fleet = mini
    assert cu.run_stage(wd, "controlplane").ok
    assert cu.run_stage(wd, "compute", limit="overcloud-novacompute-0").ok
    # A new plan that changes only the compute stage keeps controlplane's
    # progress, and refuses while compute's would be lost.
    changed = tmp_path / "changed.yaml"
    changed.write_text(MINI.read_text().replace("nova_compute - start",
                                                "nova_compute - start it"))
    with pytest.raises(cu.StageError, match="stage 'compute' has started .1 of 4 "
                       "hosts finished. and the new plan changes it"):
        cu.prepare(cu.StackOutputs.from_file(changed), wd, fleet=fleet)
    forced = cu.prepare(cu.StackOutputs.from_file(changed), wd, fleet=fleet, force=True)
    assert forced.changed
    assert any(n.startswith("forced: stage 'compute' has started") for n in forced.notes)
    states = {s.stage: s.state for s in cu.status(wd)}
    assert states["controlplane"] == "finished"     # unchanged stage: kept
    assert states["compute"] == "not started"       # changed stage: afresh
    # Changing a finished stage is refused too: its progress would go.
    other = tmp_path / "other.yaml"
    other.write_text(changed.read_text().replace("mysql - upgrade", "mysql - upgrade it"))
    with pytest.raises(cu.StageError, match="stage 'controlplane' has started .2 of 2"):
        cu.prepare(cu.StackOutputs.from_file(other), wd, fleet=fleet)


def test_a_run_with_tags_does_not_finish_the_stage(mini) -> None:
    wd, _ = mini
    tagged = cu.run_stage(wd, "controlplane", tags="no_such_tag")
    assert tagged.ok
    assert {s.stage: s.state for s in cu.status(wd)}["controlplane"] == "not started"
    with pytest.raises(cu.StageNotFinishedError):
        cu.run_stage(wd, "compute")


def test_lock_refuses_a_second_run(mini) -> None:
    wd, _ = mini
    state = str(wd / "composable-upgrade" / "state")
    with acquire(state, purpose="a test"):
        with pytest.raises(cu.LockedError, match=f"pid {os.getpid()}, a test"):
            cu.run_stage(wd, "controlplane")
    assert cu.run_stage(wd, "controlplane").ok   # released


def test_reproduce_script_repeats_the_run(mini, tmp_path: Path) -> None:
    wd, fleet = mini
    key = tmp_path / "overcloud-key"
    key.write_text("not a real key\n")
    result = cu.run_stage(wd, "controlplane", ssh_key=key)
    script = Path(result.reproduce_script)
    text = script.read_text()
    assert text.count("ansible-playbook") >= 6 and "controlplane_step3.yaml" in text
    assert f"export ANSIBLE_PRIVATE_KEY_FILE={key}\n" in text
    assert "export ANSIBLE_HOST_KEY_CHECKING=False\n" in text
    marker = sandbox(fleet, CONTROLLERS[0]) / "mysql-step1"
    marker.unlink()
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert marker.read_text() == "done\n"


_RUNNER = textwrap.dedent("""
    import json, sys
    import composable_upgrades as cu
    result = cu.run_stage(sys.argv[1], "controlplane", resume=len(sys.argv) > 2)
    print(json.dumps({"status": result.status, "notes": result.notes,
                      "steps": [[s.step, list(s.hosts)] for s in result.steps]}))
""")


def _start_run(wd: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _RUNNER, str(wd), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _slow(fleet: cu.Fleet) -> None:
    for host in CONTROLLERS:
        (sandbox(fleet, host) / "slow").touch()


def test_first_ctrl_c_finishes_the_step_then_stops(mini) -> None:
    wd, fleet = mini
    _slow(fleet)
    proc = _start_run(wd)
    _wait_for(sandbox(fleet, CONTROLLERS[0]) / "started-step1")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    result = json.loads(out)
    assert result["status"] == "interrupted", err
    assert [s for s, _ in result["steps"]] == [0, 1]
    assert (sandbox(fleet, CONTROLLERS[0]) / "mysql-step1").exists()
    assert not (sandbox(fleet, CONTROLLERS[0]) / "started-step2").exists()
    finished = units(wd)
    assert ("controlplane", 1, 1, CONTROLLERS[0]) in finished
    assert not [u for u in finished if u[2] == 2]


def test_second_ctrl_c_stops_now(mini) -> None:
    wd, fleet = mini
    _slow(fleet)
    proc = _start_run(wd)
    _wait_for(sandbox(fleet, CONTROLLERS[0]) / "started-step1")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    result = json.loads(out)
    assert result["status"] == "interrupted", err
    finished = units(wd)
    # Step 0 finished; step 1 was cut short, so it is not recorded.
    assert {u[2] for u in finished} == {0}


def test_kill_9_then_resume_does_not_rerun_finished_units(mini) -> None:
    wd, fleet = mini
    _slow(fleet)
    proc = _start_run(wd)
    _wait_for(sandbox(fleet, CONTROLLERS[0]) / "started-step2")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    finished = units(wd)
    assert {u[2] for u in finished} == {0, 1}      # nothing of step 2 recorded
    time.sleep(3.5)  # the orphaned ansible-playbook of step 2 ends by itself
    for host in CONTROLLERS:
        (sandbox(fleet, host) / "slow").unlink()
    resumed = _start_run(wd, "--resume")
    out, err = resumed.communicate(timeout=120)
    result = json.loads(out)
    assert result["status"] == "successful", err
    assert [s for s, _ in result["steps"]] == [2, 3, 4, 5]
    # The killed run's lock was left behind: detected, reported, taken over.
    assert any(n.startswith(f"took over a stale lock of pid {proc.pid}")
               for n in result["notes"]), result["notes"]
    assert {s.stage: s.state for s in cu.status(wd)}["controlplane"] == "finished"


def test_secrets_stay_out_of_run_files(tmp_path: Path, monkeypatch) -> None:
    outputs = tmp_path / "outputs.yaml"
    outputs.write_text(textwrap.dedent("""
        RehearsalSandbox: true
        RoleData:
          Controller:
            service_names: [mysql]
            upgrade_tasks:
              - name: mysql - connect
                when: step|int == 1
                ansible.builtin.fail:
                  msg: "access denied: password=Sup3rSecretDbPw for root"
        AnsibleHostVarsMap:
          Controller: {overcloud-controller-0: {}}
    """))
    monkeypatch.setenv("OS_PASSWORD", "Env1ronmentSecretPw")
    fleet = cu.Fleet.at(tmp_path / "fleet")
    wd = tmp_path / "wd"
    result = cu.prepare(cu.StackOutputs.from_file(outputs), wd, fleet=fleet)
    fleet.create(result.prepared.hosts)
    run = cu.run_stage(wd, "controlplane")
    assert run.status == "failed"
    [failure] = [r for r in run.records if r.status == "failed"]
    assert failure.message == "access denied: password=******** for root"
    plan_dir = wd / "composable-upgrade" / "plan"   # the task itself holds it
    written = [p for p in wd.rglob("*") if p.is_file() and plan_dir not in p.parents]
    assert any(p.name == "history.sqlite" for p in written)
    assert any("runs" in p.parts for p in written)
    for path in written:
        if path.is_file():
            data = path.read_bytes()
            assert b"Sup3rSecretDbPw" not in data, path
            assert b"Env1ronmentSecretPw" not in data, path


def test_a_fleet_refuses_real_tasks(tmp_path: Path) -> None:
    """Real tasks on a fleet would run on this machine: no-ops or sandboxed only."""
    fixture = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"
    fleet = cu.Fleet.at(tmp_path / "fleet")
    with pytest.raises(cu.UpgradeError, match="these tasks are real: rehearse them "
                       "as no-ops"):
        cu.prepare(cu.StackOutputs.from_file(fixture), tmp_path / "wd", fleet=fleet)
    assert not (tmp_path / "wd").exists()
    noop = cu.prepare(cu.StackOutputs.from_file(fixture), tmp_path / "wd", fleet=fleet,
                      noop=True)
    assert noop.prepared.variant == "noop"

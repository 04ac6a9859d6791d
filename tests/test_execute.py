"""Running stages for real: ansible-runner and ansible-playbook on a local fleet.

What only a real run shows: events turned into records and attributed to
services, fault injection through the fleet, the reproduce script, exit
codes, signals, the lock. The runner's policy (batches, max-fail, stops, the
guard, the journal) is tested without Ansible in test_stage_policy.py.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.run.ansible import AnsibleExecutor
from composable_upgrades.run.executor import StepCallbacks, StepJob
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.request import ssh_key_env
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.lock import acquire
from tests.helpers import journaled_run

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


def test_stages_batches_limit_resume_converge(mini) -> None:
    wd, fleet = mini
    with pytest.raises(cu.StageNotFinishedError, match="'controlplane' is not finished"):
        cu.run_stage(wd, "compute")
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
    # Real events: a task start per task, records attributed to their service.
    tasks = [e.task for e in events if e.kind == "task"]
    assert tasks[:2] == ["mysql - mark step start", "mysql - slow when asked"]
    # No fault injected on these hosts: the fault check is skipped by its tag.
    assert not [t for t in tasks if t.startswith("Rehearsal fault check")]
    named = [r for r in control.records if " - " in r.task]
    assert named and all(r.service == r.task.split(" - ")[0] for r in named)
    assert "changed" in {r.status for r in control.records}
    assert {r.role for r in control.records} == {"Controller"}

    part = cu.run_stage(wd, "compute", limit="overcloud-novacompute-1,overcloud-novacompute-3")
    assert part.ok and {s.step for s in part.steps} == {3, 4}  # steps with compute tasks
    compute = {s.stage: s for s in cu.status(wd)}["compute"]
    assert compute.state == "partly done"
    assert compute.pending == (COMPUTES[0], COMPUTES[2])
    rest = cu.run_stage(wd, "compute", batch_size=2, resume=True)
    assert rest.status == "successful"
    assert rest.batches == [tuple(COMPUTES[:2]), tuple(COMPUTES[2:])]
    assert [(s.batch, s.hosts) for s in rest.steps] == [
        (1, (COMPUTES[0],)), (1, (COMPUTES[0],)), (2, (COMPUTES[2],)), (2, (COMPUTES[2],))]

    done = cu.converge(wd)
    assert done.status == "successful", done.notes
    assert [s.step for s in done.steps][-3:] == ["rpc_unpin", "packages", "reboot"]
    for host in CONTROLLERS + COMPUTES:
        root = sandbox(fleet, host)
        assert (root / "rpc-unpinned").exists()
        assert (root / "packages").read_text() == "openvswitch\n"
        assert (root / "rebooted").exists() == host.startswith("overcloud-novacompute")
    assert (sandbox(fleet, CONTROLLERS[0]) / "keystone-post").exists()
    states = {s.stage: s.state for s in cu.status(wd)}
    assert states == {"controlplane": "finished", "compute": "finished",
                      "converge": "finished"}


def test_a_fault_on_the_fleet_fails_the_step_and_resume_reruns_it(mini) -> None:
    wd, fleet = mini
    fleet.inject_fault(CONTROLLERS[1], "controlplane", 2)
    failed = cu.run_stage(wd, "controlplane", steps=[0, 1, 2, 3])
    assert failed.status == "failed"
    assert failed.failed_hosts == [CONTROLLERS[1]]
    assert [s.step for s in failed.steps] == [0, 1, 2]   # stopped after step 2
    [fault] = [r for r in failed.records if r.status == "failed"]
    assert (fault.host, fault.step, fault.role) == (CONTROLLERS[1], 2, "Controller")
    assert fault.message
    assert not (sandbox(fleet, CONTROLLERS[0]) / "keystone-step3").exists()
    status = {s.stage: s for s in cu.status(wd)}["controlplane"]
    assert status.state == "failed" and status.failed == (CONTROLLERS[1],)
    assert [u for u in units(wd) if u[2] == 2] == []   # any_errors_fatal

    fleet.clear_faults()
    resumed = cu.run_stage(wd, "controlplane", resume=True, steps=[0, 1, 2, 3])
    assert resumed.status == "successful"
    assert [(s.step, s.hosts) for s in resumed.steps] == [
        (2, tuple(CONTROLLERS)), (3, tuple(CONTROLLERS))]
    assert {r.step for r in resumed.records} == {2, 3}


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
    with pytest.raises(cu.UnknownHostError, match="'nosuchhost' matches no host"):
        cu.run_stage(wd, "compute", limit="nosuchhost", dry_run=True)
    by_role = cu.run_stage(wd, "compute", limit="Compute", dry_run=True)
    assert by_role.batches == [tuple(COMPUTES)]
    by_glob = cu.run_stage(wd, "compute", limit="*.ctlplane.localdomain,!overcloud-novacompute-0",
                           dry_run=True)
    assert by_glob.batches == [tuple(COMPUTES[1:])]
    preview = cu.run_stage(wd, "compute", cu.RunOptions(tags="t", forks=3),
                           batch_size=2, dry_run=True).preview
    assert (preview.stage, preview.steps, preview.options.batch_size) == ("compute", (3, 4), 2)
    assert [(c.batch, c.step, c.hosts) for c in preview.commands] == [
        (1, 3, tuple(COMPUTES[:2])), (1, 4, tuple(COMPUTES[:2])),
        (2, 3, tuple(COMPUTES[2:])), (2, 4, tuple(COMPUTES[2:]))]
    plan_dir = wd / "composable-upgrade" / "plan"
    assert preview.commands[0].argv[1:] == (
        "-i", str(plan_dir / "inventory.yaml"), "--limit", ",".join(COMPUTES[:2]),
        "--tags", "t", "--skip-tags", "rehearsal_fault_check", "--forks", "3",
        str(plan_dir / "compute_step3.yaml"))


def test_ssh_key_is_given_found_or_none(mini, tmp_path: Path, monkeypatch) -> None:
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
    assert journaled_run(wd, "controlplane").ok
    assert journaled_run(wd, "compute", limit="overcloud-novacompute-0").ok
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


def test_reproduce_script_repeats_the_run_under_the_lock(mini, tmp_path: Path) -> None:
    wd, fleet = mini
    state = str(wd / "composable-upgrade" / "state")
    with acquire(state, purpose="a test"):
        with pytest.raises(cu.LockedError, match=f"pid {os.getpid()}, a test"):
            cu.run_stage(wd, "controlplane")
    key = tmp_path / "overcloud-key"
    key.write_text("not a real key\n")
    # Two steps are enough: the script repeats the steps the run ran.
    preview = cu.run_stage(wd, "controlplane", ssh_key=key, forks=2, steps=[1, 3],
                           dry_run=True).preview
    result = cu.run_stage(wd, "controlplane", ssh_key=key, forks=2, steps=[1, 3])
    assert result.ok   # the lock was released
    script = Path(result.reproduce_script)
    text = script.read_text()
    # The script holds the very calls the run made, and the dry run showed.
    calls = [line for line in text.splitlines() if "ansible-playbook -i" in line]
    assert calls == [shlex.join(c.argv) for c in preview.commands]
    assert len(calls) == 2 and "controlplane_step3.yaml" in calls[1]
    assert "controlplane_step1.yaml" in calls[0]
    assert "--forks 2" in calls[0]
    assert f"export ANSIBLE_PRIVATE_KEY_FILE={key}\n" in text
    assert "export ANSIBLE_HOST_KEY_CHECKING=False\n" in text
    # Run as python-tripleoclient runs its playbooks.
    assert "export ANSIBLE_FORKS=2\n" in text  # --ansible-forks 2
    assert "export ANSIBLE_PIPELINING=True\n" in text
    assert "ControlPersist=30m" in text and "UserKnownHostsFile=/dev/null" in text
    assert "/usr/share/ansible/tripleo-plugins/modules" in text
    assert "/usr/share/ansible/tripleo-roles" in text
    marker = sandbox(fleet, CONTROLLERS[0]) / "mysql-step1"
    marker.unlink()
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert marker.read_text() == "done\n"


def _callbacks(stop_now: bool = False) -> StepCallbacks:
    return StepCallbacks(task=lambda name: None, record=lambda record: None,
                         stop_now=lambda: stop_now)


def test_ansible_exit_codes_and_cancel(mini, tmp_path: Path) -> None:
    """ansible-runner (pexpect mode): a failing ansible-playbook reports its
    exit code and message; one that cannot start is a RunError; the cancel
    callback stops a step."""
    wd, _ = mini
    plan = cu.Workdir.at(wd).load_plan()
    executor = AnsibleExecutor(plan, str(tmp_path / "run"))
    executor.start("run-1", "controlplane")
    job = StepJob(run_id="run-1", stage="controlplane", batch=1, step=1,
                  hosts=tuple(CONTROLLERS), playbook="no-such-playbook.yaml",
                  options=RunOptions())
    broken = executor.run_step(job, _callbacks())
    assert broken.rc == 1 and not broken.failed and not broken.interrupted
    assert any("no-such-playbook.yaml could not be found" in line
               for line in broken.output), broken.output
    cancelled = executor.run_step(
        StepJob(**{**job.__dict__, "playbook": "controlplane_step1.yaml"}),
        _callbacks(stop_now=True))
    assert cancelled.interrupted and cancelled.rc == 254
    missing = AnsibleExecutor(plan, str(tmp_path / "run"),
                              binary=str(tmp_path / "no-ansible-playbook"))
    with pytest.raises(cu.RunError, match="ansible-playbook not found") as raised:
        missing.run_step(job, _callbacks())
    assert (raised.value.stage, raised.value.step, raised.value.rc) == (
        "controlplane", 1, 127)


_RUNNER = textwrap.dedent("""
    import json, sys
    import composable_upgrades as cu
    result = cu.run_stage(sys.argv[1], "controlplane")
    print(json.dumps({"status": result.status, "notes": result.notes,
                      "steps": [[s.step, list(s.hosts)] for s in result.steps]}))
""")


def _start_run(wd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _RUNNER, str(wd)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _slow(fleet: cu.Fleet) -> None:
    for host in CONTROLLERS:
        (sandbox(fleet, host) / "slow").touch()


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

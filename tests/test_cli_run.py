"""The run, converge and status commands, as an operator runs them.

OpenStackClient runs in the test process (tests.helpers.cli); one smoke test
per command runs the real ``openstack`` executable. The run on a terminal is
tests/test_cli_tty.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import composable_upgrades as cu
from tests.helpers import error_line, upgrade

MINI = Path(__file__).parent / "fixtures" / "mini-outputs.yaml"


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[Path, Path]:
    """The mini overcloud prepared through the CLI onto a fleet: (wd, fleet)."""
    wd, fleet = tmp_path / "wd", tmp_path / "fleet"
    done = upgrade("prepare", "--outputs-file", str(MINI), "--working-dir", str(wd),
                   "--fleet", str(fleet), home=tmp_path)
    assert done.returncode == 0, done.stderr
    # After prepare, the command to type next.
    assert done.stderr.splitlines()[-1] == (
        f"next: openstack overcloud upgrade run --stage controlplane --working-dir {wd}")
    cu.Fleet.at(fleet).create(cu.Workdir.at(wd).load_plan().hosts)
    return wd, fleet


# -- the real executable (its runs on a terminal: tests/test_cli_tty.py) -------

def test_run_needs_yes_without_a_terminal(prepared, tmp_path: Path) -> None:
    """The run smoke test: stdin is a real pipe, not a terminal."""
    wd, _ = prepared
    done = upgrade("run", "--stage", "controlplane", "--working-dir", str(wd),
                   home=tmp_path, process=True)
    assert done.returncode == 1
    assert "pass -y" in error_line(done)
    assert not (wd / "composable-upgrade" / "runs").exists()


def test_converge_smoke_through_the_openstack_executable(prepared, tmp_path: Path
                                                         ) -> None:
    wd, _ = prepared
    refused = upgrade("converge", "-y", "--working-dir", str(wd), home=tmp_path,
                      process=True)
    assert refused.returncode == 1
    assert error_line(refused) == (
        "stage 'controlplane' is not finished (2 hosts pending: "
        "overcloud-controller-0, overcloud-controller-1); finish it before "
        "converge, or pass --force")
    assert not (wd / "composable-upgrade" / "runs").exists()


def test_status_smoke_through_the_openstack_executable(prepared, tmp_path: Path
                                                       ) -> None:
    wd, fleet = prepared
    real = upgrade("status", "--working-dir", str(wd), "-f", "json", home=tmp_path,
                   process=True)
    assert real.returncode == 0, real.stderr
    rows = json.loads(real.stdout)
    assert [(r["Stage"], r["State"], r["Hosts"], r["Pending"]) for r in rows] == [
        ("controlplane", "not started", 2, 2), ("compute", "not started", 4, 4),
        ("converge", "not started", 6, 6)]
    # JSON lists every pending host (the table shows five and a count).
    assert len(rows[2]["Pending hosts"]) == 6
    assert rows[1]["Pending hosts"] == [f"overcloud-novacompute-{i}" for i in range(4)]
    table = upgrade("status", "--working-dir", str(wd), home=tmp_path)
    assert "and 1 more" in table.stdout
    assert f"a rehearsal on the fleet at {fleet}" in table.stderr
    # the in-process run prints the same
    assert upgrade("status", "--working-dir", str(wd), "-f", "json",
                   home=tmp_path).stdout == real.stdout


# -- in-process ------------------------------------------------------------------


def test_ssh_user_and_key_options(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    done = upgrade("prepare", "--outputs-file", str(MINI), "--working-dir", str(wd),
                   "--overcloud-ssh-user", "heat-admin", home=tmp_path)
    assert done.returncode == 0, done.stderr
    inventory = (wd / "composable-upgrade" / "plan" / "inventory.yaml").read_text()
    assert "ansible_ssh_user: heat-admin" in inventory
    assert "tripleo-admin" not in inventory
    missing = tmp_path / "no-such-key"
    for verb in (["run", "--stage", "controlplane"], ["converge"]):
        refused = upgrade(*verb, "-y", "--dry-run" if verb[0] == "run" else "--force",
                          "--working-dir", str(wd), "--overcloud-ssh-key", str(missing),
                          home=tmp_path)
        assert error_line(refused) == f"--overcloud-ssh-key {missing}: no such file"
    assert not (wd / "composable-upgrade" / "runs").exists()


def test_run_converge_status_and_rerun_through_the_cli(prepared, tmp_path: Path) -> None:
    wd, fleet = prepared
    dry = upgrade("run", "--stage", "compute", "--batch-size", "50%", "--dry-run",
                  "--working-dir", str(wd), "-f", "json", home=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert [row["Batch"] for row in json.loads(dry.stdout)] == [1, 2]

    refused = upgrade("run", "--stage", "compute", "-y", "--working-dir", str(wd), home=tmp_path)
    assert "'controlplane' is not finished" in error_line(refused)

    control = upgrade("run", "--stage", "controlplane", "-y", "--working-dir", str(wd),
                      "--fleet", str(fleet), "-f", "json", home=tmp_path)
    assert control.returncode == 0, control.stderr
    rows = json.loads(control.stdout)
    hosts = {row["Host"]: row for row in rows}
    assert hosts["overcloud-controller-0"]["Step 3"] == "ok"
    assert float(hosts["elapsed (s)"]["Step 1"]) > 0
    assert "ansible-playbook-command.sh" in control.stderr

    wrong_fleet = upgrade("run", "--stage", "compute", "-y", "--working-dir", str(wd),
                          "--fleet", str(tmp_path / "other"), home=tmp_path)
    assert "does not match the fleet" in error_line(wrong_fleet)

    step3 = upgrade("run", "--stage", "compute", "-y", "--working-dir", str(wd),
                    "--playbook", "compute_step3.yaml", "--limit", "Compute", home=tmp_path)
    assert step3.returncode == 0, step3.stderr
    assert (fleet / "overcloud-novacompute-2" / "nova_compute-step3").exists()
    assert not (fleet / "overcloud-novacompute-2" / "nova_compute-step4").exists()

    cu.Fleet.at(fleet).inject_fault("overcloud-novacompute-1", "compute", 4)
    failed = upgrade("run", "--stage", "compute", "-y", "--resume", "--batch-size", "2",
                     "--working-dir", str(wd), home=tmp_path)
    assert failed.returncode == 1
    assert "overcloud-novacompute-1: failed at step 4" in failed.stderr

    status = upgrade("status", "--working-dir", str(wd), "-f", "json", home=tmp_path)
    by_stage = {row["Stage"]: row for row in json.loads(status.stdout)}
    assert by_stage["controlplane"]["State"] == "finished"
    assert by_stage["compute"]["State"] == "failed"
    assert by_stage["compute"]["Failed"] == 1

    # Batch 1 failed, so batch 2 never ran its step 4: three hosts pending.
    refused = upgrade("converge", "-y", "--working-dir", str(wd), home=tmp_path)
    assert ("'compute' is not finished (3 hosts pending: overcloud-novacompute-1, "
            "overcloud-novacompute-2, overcloud-novacompute-3)") in error_line(refused)

    cu.Fleet.at(fleet).clear_faults()
    resumed = upgrade("run", "--stage", "compute", "-y", "--resume",
                      "--working-dir", str(wd), home=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    converged = upgrade("converge", "-y", "--working-dir", str(wd), home=tmp_path)
    assert converged.returncode == 0, converged.stderr
    assert converged.stderr.splitlines()[-1] == (
        f"next: openstack overcloud upgrade status --working-dir {wd}")
    run_dir = Path(converged.stderr.split("log: ")[1].split("\n")[0]).parent
    assert (run_dir / "run.log").exists()
    states = {row["Stage"]: row["State"] for row in json.loads(
        upgrade("status", "--working-dir", str(wd), "-f", "json", home=tmp_path).stdout)}
    assert states == {"controlplane": "finished", "compute": "finished",
                      "converge": "finished"}

    # After converge, an upgrade stage runs again only with --rerun.
    where = ["--working-dir", str(wd)]
    again = upgrade("run", "--stage", "compute", "--limit", "overcloud-novacompute-0",
                    "-y", *where, home=tmp_path)
    assert "pass --rerun" in error_line(again)
    marker = fleet / "overcloud-novacompute-0" / "nova_compute-step3"
    marker.unlink()
    rerun = upgrade("run", "--stage", "compute", "--limit", "overcloud-novacompute-0",
                    "--rerun", "-y", *where, home=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert marker.exists()
    rows = {r["Stage"]: r for r in json.loads(upgrade(
        "status", "-f", "json", *where, home=tmp_path).stdout)}
    assert rows["compute"]["Re-run after converge"] == ["overcloud-novacompute-0"]
    assert rows["compute"]["State"] == "finished"
    assert None not in [v for r in rows.values() for v in r.values()]


def test_run_errors_are_one_line(prepared, tmp_path: Path) -> None:
    wd, _ = prepared
    for args, expected in [
        (["--stage", "nosuch"], "unknown stage 'nosuch'"),
        (["--stage", "controlplane", "--limit", "nosuchhost"], "'nosuchhost' matches no host"),
        (["--stage", "controlplane", "--batch-size", "2"], "--batch-size applies"),
        (["--stage", "compute", "--batch-size", "many"], "--batch-size 'many'"),
        (["--stage", "compute", "--playbook", "nosuch.yaml"], "not a step playbook"),
    ]:
        done = upgrade("run", *args, "-y", "--working-dir", str(wd), home=tmp_path)
        assert expected in error_line(done), args
    missing = upgrade("status", "--working-dir", str(tmp_path / "nothing"), home=tmp_path)
    assert "no upgrade plan here" in error_line(missing)

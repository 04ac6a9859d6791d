"""``openstack overcloud upgrade history`` and ``plan diff``.

OpenStackClient runs in the test process (tests.helpers.cli); one smoke test
per command runs the real ``openstack`` executable.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import composable_upgrades as cu
from composable_upgrades.state.results import RunResult, TaskRecord
from composable_upgrades.state.store import HistoryStore
from tests.helpers import Result, cli, error_line

CONTROLLERS = ["overcloud-controller-0", "overcloud-controller-1"]

pytestmark = pytest.mark.usefixtures("operator_home")


def command(*args: str, process: bool = False) -> Result:
    """``openstack overcloud upgrade <args>`` in this process's environment."""
    return cli(["overcloud", "upgrade", *args], process=process)


def table(*args: str) -> tuple[list[str], list[tuple]]:
    """The table ``-f json`` prints: its columns (none when it is empty) and rows."""
    done = command(*args, "-f", "json")
    assert done.returncode == 0, done.stderr
    return json_table(done.stdout)


def json_table(text: str) -> tuple[list[str], list[tuple]]:
    rows = json.loads(text)
    return (list(rows[0]) if rows else []), [tuple(row.values()) for row in rows]


# -- history -----------------------------------------------------------------

RUN_ID = "20260101-120000-controlplane-abc123"
STARTED = datetime(2026, 1, 1, 12, 0, 0).timestamp()


def records() -> list[TaskRecord]:
    def rec(step: int, host: str, task: str, status: str, offset: float,
            message: str = "") -> TaskRecord:
        return TaskRecord(run_id=RUN_ID, stage="controlplane", batch=1, step=step,
                          host=host, role="Controller", task=task,
                          service="keystone", action="copy", status=status,
                          start=STARTED + offset, duration=1.23456,
                          message=message)
    return [rec(1, CONTROLLERS[0], "keystone: stop", "changed", 1.5),
            rec(1, CONTROLLERS[1], "keystone: stop", "changed", 1.25),
            rec(3, CONTROLLERS[1], "keystone: install", "failed", 10.0,
                message="no space left on device")]


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A working dir whose history has a prepare and a failed stage run."""
    store = HistoryStore.at(tmp_path)
    store.record_prepare("ab" * 32, {"outputs_file": "outputs.yaml"},
                         STARTED - 60, STARTED - 59.5, "successful")
    result = RunResult(run_id=RUN_ID, stage="controlplane", plan_sha="ab" * 32,
                       status="nothing to do", started=STARTED,
                       batches=[tuple(CONTROLLERS)])
    store.start_run(result)
    for r in records():
        store.add(r)
    result.status, result.ended = "failed", STARTED + 12.34
    result.notes.append("stopped after step 3 of batch 1: 1 of 2 hosts failed")
    store.finish_run(result)
    return tmp_path


def test_history_lists_one_row_per_run_oldest_first(history: Path) -> None:
    columns, rows = table("history", "--working-dir", str(history))
    assert columns == ["Run", "Kind", "Stage", "Status", "Started", "Duration (s)",
                       "Hosts", "Failed hosts", "Tasks", "Plan", "Notes"]
    assert len(rows) == 2
    prepare, run = rows
    assert prepare[1:4] == ("prepare", None, "successful")
    assert prepare[5:10] == (0.5, 0, 0, 0, "abababababab")
    assert run == (RUN_ID, "stage", "controlplane", "failed", "2026-01-01 12:00:00",
                   12.3, 2, 1, 3, "abababababab",
                   "stopped after step 3 of batch 1: 1 of 2 hosts failed")


def test_history_of_one_run_lists_its_tasks(history: Path) -> None:
    columns, rows = table("history", "--working-dir", str(history), "--run", RUN_ID)
    assert columns == ["Batch", "Step", "Host", "Role", "Service", "Task", "Action",
                       "Status", "Start", "Duration (s)", "Message"]
    assert rows == [
        (1, 1, CONTROLLERS[0], "Controller", "keystone", "keystone: stop", "copy",
         "changed", "2026-01-01 12:00:01.500", 1.235, ""),
        (1, 1, CONTROLLERS[1], "Controller", "keystone", "keystone: stop", "copy",
         "changed", "2026-01-01 12:00:01.250", 1.235, ""),
        (1, 3, CONTROLLERS[1], "Controller", "keystone", "keystone: install", "copy",
         "failed", "2026-01-01 12:00:10.000", 1.235, "no space left on device"),
    ]


def test_history_json_parses_back(history: Path) -> None:
    done = command("history", "--working-dir", str(history), "-f", "json")
    assert (done.returncode, done.stderr) == (0, "")
    runs = json.loads(done.stdout)
    assert [r["Run"] for r in runs][1] == RUN_ID
    assert runs[1]["Tasks"] == 3 and runs[1]["Failed hosts"] == 1
    assert runs[0]["Stage"] is None
    done = command("history", "--working-dir", str(history), "--run", RUN_ID,
                   "-f", "json")
    tasks = json.loads(done.stdout)
    assert [(t["Host"], t["Step"], t["Status"]) for t in tasks] == [
        (CONTROLLERS[0], 1, "changed"), (CONTROLLERS[1], 1, "changed"),
        (CONTROLLERS[1], 3, "failed")]
    assert tasks[2]["Message"] == "no space left on device"


def test_history_table_and_value_formats(history: Path) -> None:
    out = command("history", "--working-dir", str(history), "-f", "value",
                  "-c", "Run", "-c", "Status").stdout
    assert out.splitlines()[1] == f"{RUN_ID} failed"
    out = command("history", "--working-dir", str(history)).stdout
    assert "| Run " in out and RUN_ID in out


def test_history_unknown_run_is_a_one_line_command_error(history: Path) -> None:
    done = command("history", "--working-dir", str(history), "--run", "nope")
    message = error_line(done)  # one line, no traceback
    assert done.returncode == 1 and done.stdout == ""
    assert "no run 'nope' in the run history" in message
    assert RUN_ID in message


def test_history_of_a_stack_without_a_plan_says_so(tmp_path: Path) -> None:
    done = cli(["overcloud", "upgrade", "history", "--working-dir", str(tmp_path)])
    assert "no upgrade plan here" in error_line(done)
    assert not (tmp_path / "composable-upgrade").exists()


def test_history_defaults_to_the_stack_working_dir(history: Path, tmp_path: Path,
                                                   monkeypatch) -> None:
    home = tmp_path / "home"
    shutil.copytree(history / "composable-upgrade",
                    home / "overcloud-deploy" / "mystack" / "composable-upgrade")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("OVERCLOUD_STACK_NAME", raising=False)
    assert len(table("history", "--stack", "mystack")[1]) == 2
    assert "no upgrade plan here" in error_line(  # stack 'overcloud'
        cli(["overcloud", "upgrade", "history"]))
    monkeypatch.setenv("OVERCLOUD_STACK_NAME", "mystack")
    assert len(table("history")[1]) == 2


def test_history_smoke_through_the_openstack_executable(history: Path) -> None:
    args = ("history", "--working-dir", str(history), "--run", RUN_ID, "-f", "json")
    real = command(*args, process=True)
    assert (real.returncode, real.stderr) == (0, "")
    columns, rows = json_table(real.stdout)
    assert columns[:3] == ["Batch", "Step", "Host"]
    assert [row[7] for row in rows] == ["changed", "changed", "failed"]
    assert command(*args).stdout == real.stdout  # in-process: the same


# -- plan diff -----------------------------------------------------------------

def outputs(version: int) -> dict[str, Any]:
    def copy(service: str, what: str, step: int) -> dict[str, Any]:
        return {"name": f"{service}: {what}",
                "copy": {"dest": f"{{{{ rehearsal_root }}}}/{service}-{what}",
                         "content": "done\n"},
                "when": f"step|int == {step}"}
    tasks = [copy("keystone", "stop", 1), copy("keystone", "install", 3)]
    if version == 2:
        tasks = [copy("keystone", "stop", 2), copy("keystone", "migrate", 5)]
    return {"RoleData": {"Controller": {
                "service_names": ["keystone"] + (["memcached"] if version == 2 else []),
                "upgrade_tasks": tasks}},
            "AnsibleHostVarsMap": {"Controller": {h: {} for h in CONTROLLERS}}}


@pytest.fixture
def two_plans(tmp_path: Path) -> Path:
    """A working dir prepared twice (the second plan replaced the first)."""
    wd = tmp_path / "wd"
    for version in (1, 2):
        path = tmp_path / f"outputs-{version}.yaml"
        path.write_text(yaml.safe_dump(outputs(version)))
        cu.prepare(cu.StackOutputs.from_file(path), wd)
    return wd


EXPECTED_DIFF = [
    ("service added", "controlplane", "Controller", "memcached", None, None, None, None),
    ("task removed", "controlplane", "Controller", "keystone", "keystone: install",
     3, None, "controlplane"),
    ("task moved", "controlplane", "Controller", "keystone", "keystone: stop",
     1, 2, "controlplane"),
    ("task added", "controlplane", "Controller", "keystone", "keystone: migrate",
     None, 5, None),
]


def test_plan_diff_compares_the_previous_plan_with_the_current(two_plans: Path) -> None:
    columns, rows = table("plan", "diff", "--working-dir", str(two_plans))
    assert columns == ["Change", "Stage", "Role", "Service", "Task", "Old step",
                       "New step", "Old stage"]
    assert rows == EXPECTED_DIFF


def test_plan_diff_json_parses_back_and_notes_the_plans(two_plans: Path) -> None:
    """The plan diff smoke test: the real ``openstack`` executable."""
    done = command("plan", "diff", "--working-dir", str(two_plans), "-f", "json",
                   process=True)
    assert done.returncode == 0, done.stderr
    out, err = done.stdout, done.stderr
    changes = json.loads(out)
    assert [(c["Change"], c["Task"], c["Old step"], c["New step"]) for c in changes] \
        == [(r[0], r[4], r[5], r[6]) for r in EXPECTED_DIFF]
    workdir = cu.Workdir.at(two_plans)
    assert err == (f"4 changes from {workdir.previous_plan_dir} "
                   f"({workdir.load_plan('previous').sha256[:12]}) to "
                   f"{workdir.plan_dir} ({workdir.load_plan().sha256[:12]})\n")


def test_plan_diff_of_named_plan_folders(two_plans: Path, tmp_path: Path) -> None:
    workdir = cu.Workdir.at(two_plans)
    old = shutil.copytree(workdir.previous_plan_dir, tmp_path / "old-plan")
    new = shutil.copytree(workdir.plan_dir, tmp_path / "new-plan")
    base = ["plan", "diff", "--working-dir", str(two_plans)]
    assert table(*base, str(old), str(new))[1] == EXPECTED_DIFF
    assert table(*base, str(old))[1] == EXPECTED_DIFF
    backwards = table(*base, str(new), str(old))[1]
    assert sorted(r[0] for r in backwards) == [
        "service removed", "task added", "task moved", "task removed"]
    assert table(*base, str(new / "plan.json"), str(new))[1] == []


def test_plan_diff_errors_are_one_line(two_plans: Path, tmp_path: Path) -> None:
    empty = command("plan", "diff", "--working-dir", str(tmp_path / "empty"))
    assert "no upgrade plan here" in error_line(empty)
    once = tmp_path / "once"
    path = tmp_path / "outputs.yaml"
    path.write_text(yaml.safe_dump(outputs(1)))
    cu.prepare(cu.StackOutputs.from_file(path), once)
    assert "no previous plan" in error_line(
        command("plan", "diff", "--working-dir", str(once)))
    none = error_line(command("plan", "diff", "--working-dir", str(two_plans),
                              str(tmp_path / "none")))
    assert "no upgrade plan here" in none and str(tmp_path / "none") in none

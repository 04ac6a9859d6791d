"""``openstack overcloud upgrade history`` and ``plan diff``, run through cliff."""

from __future__ import annotations

import io
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from osc_lib import exceptions

import composable_upgrades as cu
from composable_upgrades.state.results import RunResult, TaskRecord
from composable_upgrades.state.store import HistoryStore
from tripleoclient_upgrade.history import PlanDiff, RunHistory

CONTROLLERS = ["overcloud-controller-0", "overcloud-controller-1"]


class FakeApp:
    """What cliff commands use of the application: its output streams."""

    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()


def run_command(command_class: type, argv: list[str]) -> tuple[int, str, str]:
    """Parse ``argv`` and run the command as cliff does: (status, stdout, stderr)."""
    app = FakeApp()
    command = command_class(app, None)
    parsed = command.get_parser("openstack overcloud upgrade").parse_args(argv)
    status = command.run(parsed)
    return status, app.stdout.getvalue(), app.stderr.getvalue()


def take_action(command_class: type, argv: list[str]) -> tuple[list[str], list[tuple]]:
    command = command_class(FakeApp(), None)
    parsed = command.get_parser("openstack overcloud upgrade").parse_args(argv)
    columns, rows = command.take_action(parsed)
    return list(columns), list(rows)


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
    columns, rows = take_action(RunHistory, ["--working-dir", str(history)])
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
    columns, rows = take_action(RunHistory, ["--working-dir", str(history),
                                             "--run", RUN_ID])
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
    status, out, err = run_command(RunHistory, ["--working-dir", str(history),
                                                "-f", "json"])
    assert (status, err) == (0, "")
    runs = json.loads(out)
    assert [r["Run"] for r in runs][1] == RUN_ID
    assert runs[1]["Tasks"] == 3 and runs[1]["Failed hosts"] == 1
    assert runs[0]["Stage"] is None
    status, out, _ = run_command(RunHistory, ["--working-dir", str(history),
                                              "--run", RUN_ID, "-f", "json"])
    tasks = json.loads(out)
    assert [(t["Host"], t["Step"], t["Status"]) for t in tasks] == [
        (CONTROLLERS[0], 1, "changed"), (CONTROLLERS[1], 1, "changed"),
        (CONTROLLERS[1], 3, "failed")]
    assert tasks[2]["Message"] == "no space left on device"


def test_history_table_and_value_formats(history: Path) -> None:
    _, out, _ = run_command(RunHistory, ["--working-dir", str(history), "-f", "value",
                                         "-c", "Run", "-c", "Status"])
    assert out.splitlines()[1] == f"{RUN_ID} failed"
    _, out, _ = run_command(RunHistory, ["--working-dir", str(history)])
    assert "| Run " in out and RUN_ID in out


def test_history_unknown_run_is_a_one_line_command_error(history: Path) -> None:
    with pytest.raises(exceptions.CommandError) as caught:
        take_action(RunHistory, ["--working-dir", str(history), "--run", "nope"])
    message = str(caught.value)
    assert "no run 'nope' in the run history" in message
    assert RUN_ID in message and "\n" not in message


def test_history_of_a_stack_without_history_is_empty(tmp_path: Path) -> None:
    assert take_action(RunHistory, ["--working-dir", str(tmp_path)])[1] == []
    assert not (tmp_path / "composable-upgrade").exists()


def test_history_defaults_to_the_stack_working_dir(history: Path, tmp_path: Path,
                                                   monkeypatch) -> None:
    home = tmp_path / "home"
    shutil.copytree(history / "composable-upgrade",
                    home / "overcloud-deploy" / "mystack" / "composable-upgrade")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("OVERCLOUD_STACK_NAME", raising=False)
    assert len(take_action(RunHistory, ["--stack", "mystack"])[1]) == 2
    assert take_action(RunHistory, [])[1] == []  # stack 'overcloud'


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
    columns, rows = take_action(PlanDiff, ["--working-dir", str(two_plans)])
    assert columns == ["Change", "Stage", "Role", "Service", "Task", "Old step",
                       "New step", "Old stage"]
    assert rows == EXPECTED_DIFF


def test_plan_diff_json_parses_back_and_notes_the_plans(two_plans: Path) -> None:
    status, out, err = run_command(PlanDiff, ["--working-dir", str(two_plans),
                                              "-f", "json"])
    assert status == 0
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
    base = ["--working-dir", str(two_plans)]
    assert take_action(PlanDiff, base + [str(old), str(new)])[1] == EXPECTED_DIFF
    assert take_action(PlanDiff, base + [str(old)])[1] == EXPECTED_DIFF
    backwards = take_action(PlanDiff, base + [str(new), str(old)])[1]
    assert sorted(r[0] for r in backwards) == [
        "service removed", "task added", "task moved", "task removed"]
    assert take_action(PlanDiff, base + [str(new / "plan.json"), str(new)])[1] == []


def test_plan_diff_errors_are_one_line(two_plans: Path, tmp_path: Path) -> None:
    with pytest.raises(exceptions.CommandError, match="no upgrade plan here"):
        take_action(PlanDiff, ["--working-dir", str(tmp_path / "empty")])
    once = tmp_path / "once"
    path = tmp_path / "outputs.yaml"
    path.write_text(yaml.safe_dump(outputs(1)))
    cu.prepare(cu.StackOutputs.from_file(path), once)
    with pytest.raises(exceptions.CommandError, match="no previous plan"):
        take_action(PlanDiff, ["--working-dir", str(once)])
    with pytest.raises(exceptions.CommandError, match="no upgrade plan here") as caught:
        take_action(PlanDiff, ["--working-dir", str(two_plans), str(tmp_path / "none")])
    assert str(tmp_path / "none") in str(caught.value)

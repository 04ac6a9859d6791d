"""The real ``openstack overcloud upgrade prepare|plan`` commands, run as users run them.

OpenStackClient runs in the test process (tests.helpers.cli); one smoke test
per command runs the real ``openstack`` executable.
"""

from __future__ import annotations

import json
import locale
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

import pytest

from tests.helpers import Result, cli, error_line, tree, upgrade

from composable_upgrades import Workdir

FIXTURE = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"
SUBDIR = "composable-upgrade"
STAGES = ["external", "controlplane", "compute", "converge"]


def run(args: list[str], home: Path, env: dict[str, str] | None = None,
        process: bool = False) -> Result:
    """``openstack overcloud upgrade <args>`` with HOME=home and no OS_* vars."""
    return upgrade(*args, home=home, env=env, process=process)


def run_all(commands: list[tuple[list[str], Path, dict[str, str] | None]]
            ) -> list[Result]:
    return [run(*command) for command in commands]


def table_first_column(text: str) -> list[str]:
    """Values of the first column of a cliff table (header excluded)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [row.split("|")[1].strip() for row in rows[1:]]


def sdk_rows(working_dir: Path, **kwargs) -> list[dict]:
    columns, rows = Workdir.at(working_dir).load_plan().rows(**kwargs)
    return json.loads(json.dumps([dict(zip(columns, row)) for row in rows]))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A HOME whose default stack ``overcloud`` has a prepared plan."""
    home = tmp_path_factory.mktemp("home")
    result = run(["prepare", "--outputs-file", str(FIXTURE)], home)
    return home, result


def _wd(home: Path, stack: str = "overcloud") -> Path:
    return home / "overcloud-deploy" / stack


# -- prepare and plan ----------------------------------------------------------

def test_prepare_prints_the_summary_table(prepared):
    home, result = prepared

    assert result.returncode == 0, result.stderr
    assert table_first_column(result.stdout) == STAGES
    header = next(line for line in result.stdout.splitlines() if line.startswith("|"))
    assert [c.strip() for c in header.strip("|").split("|")] == \
        ["Stage", "Roles", "Hosts", "Steps", "Tasks"]
    assert "Traceback" not in result.stderr
    plan_dir = _wd(home) / SUBDIR / "plan"
    assert str(plan_dir) in result.stderr
    assert (plan_dir / "plan.json").is_file()
    # the default working dir, and only its subfolder
    assert sorted(os.listdir(home / "overcloud-deploy")) == ["overcloud"]
    assert sorted(os.listdir(_wd(home))) == [SUBDIR]
    # the table is the SDK's summary
    _, rows = Workdir.at(_wd(home)).load_plan().summary()
    assert [r[0] for r in rows] == STAGES
    for row in rows:
        line = next(l for l in result.stdout.splitlines()
                    if l.startswith(f"| {row[0]} "))
        assert [c.strip() for c in line.strip("|").split("|")] == \
            [str(v) for v in row]


def test_plan_json_matches_the_sdk(prepared):
    home, _ = prepared

    result = run(["plan", "-f", "json"], home)

    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows == sdk_rows(_wd(home))
    assert [r["Stage"] for r in rows][0] == "external"
    assert {r["Stage"] for r in rows} == set(STAGES)
    assert set(rows[0]) == {"Stage", "Step", "Role", "Hosts", "Services",
                            "Tasks", "Never", "Wave"}


def test_plan_views(prepared):
    home, _ = prepared
    views = {
        "by-service": (["--by", "service"], {"by": "service"}),
        "by-task": (["--by", "task"], {"by": "task"}),
        "stage": (["--stage", "controlplane"], {"stage": "controlplane"}),
        "role": (["--role", "Compute"], {"role": "Compute"}),
        "role-by-task": (["--role", "Database", "--by", "task"],
                         {"role": "Database", "by": "task"}),
    }
    results = run_all([(["plan", *args, "-f", "json"], home, None)
                       for args, _ in views.values()])

    got = {}
    for (name, (_, kwargs)), result in zip(views.items(), results):
        assert result.returncode == 0, (name, result.stderr)
        got[name] = json.loads(result.stdout)
        assert got[name] == sdk_rows(_wd(home), **kwargs), name
        assert got[name], name

    assert set(got["by-service"][0]) == {"Stage", "Step", "Role", "Service",
                                         "Tasks", "Never"}
    assert set(got["by-task"][0]) == {"Stage", "Step", "Role", "Service", "Task",
                                      "Never", "Bound by"}
    assert {r["Stage"] for r in got["stage"]} == {"controlplane"}
    assert {r["Role"] for r in got["stage"]} == {"Controller", "Database",
                                                 "Messaging"}
    assert {r["Role"] for r in got["role"]} == {"Compute"}
    assert {r["Stage"] for r in got["role"]} == {"compute", "converge"}
    assert all(r["Hosts"] == 8 for r in got["role"])
    total = sum(r["Tasks"] for r in sdk_rows(_wd(home)))
    assert len(got["by-task"]) == total
    assert sum(r["Tasks"] for r in got["by-service"]) == total
    assert {r["Role"] for r in got["role-by-task"]} == {"Database"}


def test_plan_table_output(prepared):
    home, _ = prepared

    result = run(["plan", "--stage", "controlplane"], home)

    assert result.returncode == 0, result.stderr
    assert set(table_first_column(result.stdout)) == {"controlplane"}


# -- the real executable --------------------------------------------------------

def test_prepare_smoke_through_the_openstack_executable(prepared, tmp_path):
    home, _ = prepared

    result = run(["prepare", "--outputs-file", str(FIXTURE), "-f", "json"],
                 tmp_path, process=True)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert [r["Stage"] for r in json.loads(result.stdout)] == STAGES
    assert str(_wd(tmp_path) / SUBDIR / "plan") in result.stderr
    # the same plan as the in-process run wrote
    assert tree(_wd(tmp_path) / SUBDIR / "plan") == tree(_wd(home) / SUBDIR / "plan")


def test_plan_smoke_through_the_openstack_executable(prepared):
    home, _ = prepared

    result = run(["plan", "--stage", "compute", "-f", "json"], home, process=True)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == sdk_rows(_wd(home), stage="compute")


# -- stack name and working dir ------------------------------------------------

def test_stack_name_from_env_and_option(tmp_path):
    env = {"OVERCLOUD_STACK_NAME": "envstack"}
    by_env, by_option = run_all([
        (["prepare", "--outputs-file", str(FIXTURE), "-f", "json"], tmp_path, env),
        (["prepare", "--outputs-file", str(FIXTURE), "--stack", "clistack",
          "-f", "json"], tmp_path, env),
    ])

    assert by_env.returncode == 0, by_env.stderr
    assert by_option.returncode == 0, by_option.stderr
    assert [r["Stage"] for r in json.loads(by_env.stdout)] == STAGES
    assert sorted(os.listdir(tmp_path / "overcloud-deploy")) == \
        ["clistack", "envstack"]
    for stack in ("envstack", "clistack"):
        plan = Workdir.at(_wd(tmp_path, stack)).load_plan()
        assert plan.stack == stack

    plan_env, plan_option, plan_default = run_all([
        (["plan", "-f", "json"], tmp_path, env),
        (["plan", "--stack", "clistack", "-f", "json"], tmp_path, env),
        (["plan", "-f", "json"], tmp_path, None),
    ])
    assert plan_env.returncode == 0, plan_env.stderr
    assert json.loads(plan_env.stdout) == sdk_rows(_wd(tmp_path, "envstack"))
    assert plan_option.returncode == 0, plan_option.stderr
    assert json.loads(plan_option.stdout) == sdk_rows(_wd(tmp_path, "clistack"))
    # no variable: the default stack 'overcloud', which has no plan here
    assert plan_default.returncode != 0
    assert str(_wd(tmp_path, "overcloud")) in plan_default.stderr
    assert not _wd(tmp_path, "overcloud").exists()


def test_working_dir_option(tmp_path):
    wd = tmp_path / "elsewhere"

    result = run(["prepare", "--outputs-file", str(FIXTURE), "--working-dir",
                  str(wd), "-f", "value"], tmp_path)

    assert result.returncode == 0, result.stderr
    assert (wd / SUBDIR / "plan" / "plan.json").is_file()
    assert not (tmp_path / "overcloud-deploy").exists()


def test_prepare_help():
    result = cli(["overcloud", "upgrade", "prepare", "--help"])

    assert result.returncode == 0, result.stderr
    for option in ("--outputs-file", "--stack", "--working-dir", "--stages-file",
                   "--dependencies-file"):
        assert option in result.stdout


# -- user errors ---------------------------------------------------------------

def _inputs(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    text = FIXTURE.read_text(encoding="utf-8")
    files = {
        "empty.json": "",
        "truncated.json": text[:len(text) // 2],
        "not-json.txt": "RoleData: {Controller: [\n  service_names: : :\n\t- ]]\n",
        "no-roledata.json": json.dumps({"KeystoneURL": "http://192.0.2.1:5000"}),
        "wrong-type.json": json.dumps(
            {"RoleData": {"Controller": {"service_names": ["mysql"],
                                         "upgrade_tasks": "- name: x"}}}),
        "unsafe-role.json": json.dumps(
            {"RoleData": {"../Controller": {"upgrade_tasks": []}}}),
        "stages-unknown-role.yaml": "controlplane: [Controller, Nope]\n",
        "deps-cycle.yaml": "mysql: [keystone]\n",
        "afile": "a regular file\n",
    }
    paths = {}
    for name, content in files.items():
        (directory / name).write_text(content, encoding="utf-8")
        paths[name] = directory / name
    return paths


ERRORS = {
    # case: (arguments, text the one-line message must contain)
    "missing-file": (lambda p: ["prepare", "--outputs-file", str(p["afile"].with_name("nope.json"))],
                     "nope.json"),
    "empty-file": (lambda p: ["prepare", "--outputs-file", str(p["empty.json"])],
                   "empty"),
    "truncated-json": (lambda p: ["prepare", "--outputs-file", str(p["truncated.json"])],
                       "truncated"),
    "not-json": (lambda p: ["prepare", "--outputs-file", str(p["not-json.txt"])],
                 "not-json.txt"),
    "no-roledata": (lambda p: ["prepare", "--outputs-file", str(p["no-roledata.json"])],
                    "RoleData"),
    "wrong-type-in-roledata": (
        lambda p: ["prepare", "--outputs-file", str(p["wrong-type.json"])],
        "RoleData.Controller.upgrade_tasks"),
    "unsafe-role-name": (
        lambda p: ["prepare", "--outputs-file", str(p["unsafe-role.json"])],
        "../Controller"),
    "stages-unknown-role": (
        lambda p: ["prepare", "--outputs-file", str(FIXTURE), "--stages-file",
                   str(p["stages-unknown-role.yaml"])], "Nope"),
    "dependency-cycle": (
        lambda p: ["prepare", "--outputs-file", str(FIXTURE), "--dependencies-file",
                   str(p["deps-cycle.yaml"])], "keystone -> mysql -> keystone"),
    "unwritable-working-dir": (
        lambda p: ["prepare", "--outputs-file", str(FIXTURE), "--working-dir",
                   str(p["afile"] / "wd")], "afile/wd"),
    "plan-before-prepare": (lambda p: ["plan", "--stack", "never-prepared"],
                            "never-prepared"),
    "unknown-stage": (lambda p: ["plan", "--stage", "nope"], "nope"),
    "unknown-role": (lambda p: ["plan", "--role", "Nope"], "Nope"),
}


@pytest.fixture(scope="module")
def error_runs(prepared, tmp_path_factory):
    """Every error case run once against the prepared HOME."""
    home, result = prepared
    assert result.returncode == 0, result.stderr
    inputs = _inputs(tmp_path_factory.mktemp("inputs"))
    root = _wd(home) / SUBDIR
    before = tree(root, with_dirs=True)
    names = sorted(ERRORS)
    results = run_all([(ERRORS[name][0](inputs), home, None) for name in names])
    after = tree(root, with_dirs=True)
    return dict(zip(names, results)), before, after


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_user_error(error_runs, case):
    results, _, _ = error_runs
    result = results[case]

    assert ERRORS[case][1] in error_line(result)
    assert result.stdout.strip() == ""


def test_user_errors_leave_the_plan_untouched(error_runs, prepared):
    _, before, after = error_runs
    home, _ = prepared

    assert "plan/plan.json" in before
    assert after == before
    assert not _wd(home, "never-prepared").exists()


# -- in-process runs leave no trace ----------------------------------------------

def _process_state() -> dict:
    root = logging.getLogger()
    return {
        "root handlers": list(root.handlers), "root level": root.level,
        "logger levels": {name: logging.getLogger(name).level
                          for name in ("cliff", "stevedore", "requests", "iso8601")},
        "warnings filters": list(warnings.filters), "environ": dict(os.environ),
        "cwd": os.getcwd(), "argv": list(sys.argv),
        "streams": (sys.stdin, sys.stdout, sys.stderr),
        "sigint": signal.getsignal(signal.SIGINT),
        "locale": locale.setlocale(locale.LC_ALL),
    }


def test_in_process_runs_leave_the_process_as_they_found_it(prepared, tmp_path):
    home, _ = prepared
    before = _process_state()

    runs = [run(["plan", "--stage", "nope"], home),  # a user error
            run(["plan", "-f", "json", "--debug"], home),
            run(["plan", "--log-file", str(tmp_path / "log"), "-v"], home,
                {"OVERCLOUD_STACK_NAME": "overcloud"}),
            cli(["overcloud", "upgrade", "plan", "--nosuch"], cwd=tmp_path)]

    assert _process_state() == before
    assert [r.returncode for r in runs] == [1, 0, 0, 2]
    # each run's log lines went to its own stderr, once
    assert error_line(runs[0]) == runs[0].stderr.strip()
    assert "command: overcloud upgrade plan" in runs[1].stderr
    assert "command: overcloud upgrade plan" not in runs[2].stderr
    assert "START with options: overcloud upgrade plan --log-file" in \
        (tmp_path / "log").read_text()

"""The run's own environment resolves the THT 18 plan: ``run --syntax-check``.

tripleo-ansible 6.0.0 is installed (``--no-deps``) in the test venv under
``share/ansible``; here it is laid out as its RPM lays it out on an
undercloud (``tripleo-plugins/<kind>`` and ``tripleo-roles`` under one
share folder), with the two pacemaker modules no reachable index has as
stubs where ansible-pacemaker's RPM puts its modules (``plugins/modules``).
The share folder reaches the run only through
``COMPOSABLE_UPGRADES_ANSIBLE_SHARE``; no other ANSIBLE_* setting is given,
so every module, action plugin and role resolves through the environment a
run builds, or the check fails.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.run.environment import SHARE_VARIABLE, run_environment
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.syntax import syntax_check
from tests.helpers import cli, error_line
from tests.test_syntax import plan_tasks, role_names
from tests.tripleo_reference import (
    FIXTURE_OUTPUTS, STUBBED_MODULES, STUBS_LIBRARY, share_ansible)


def rpm_layout(root: Path) -> Path:
    """tripleo-ansible's files as its RPM places them, under ``root``."""
    installed = share_ansible()
    for kind in sorted(p.name for p in (installed / "plugins").iterdir()):
        target = root / "tripleo-plugins" / kind
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(installed / "plugins" / kind)
    (root / "tripleo-roles").symlink_to(installed / "roles")
    modules = root / "plugins" / "modules"
    modules.mkdir(parents=True)
    for name in sorted(STUBBED_MODULES):
        shutil.copy(STUBS_LIBRARY / f"{name}.py", modules / f"{name}.py")
    return root


@pytest.fixture
def only_the_run_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ANSIBLE_* of the test's environment, an empty home, the RPM layout."""
    for name in list(os.environ):
        if name.startswith("ANSIBLE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    share = rpm_layout(tmp_path / "share")
    monkeypatch.setenv(SHARE_VARIABLE, str(share))
    return share


@pytest.fixture(scope="module")
def tht18_wd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = tmp_path_factory.mktemp("tht18") / "wd"
    cu.prepare(cu.StackOutputs.from_file(FIXTURE_OUTPUTS), wd)
    return wd


def test_the_tht18_plan_resolves_through_the_run_environment(
        tht18_wd: Path, only_the_run_environment: Path) -> None:
    checked = syntax_check(tht18_wd)
    plan = json.loads((tht18_wd / "composable-upgrade" / "plan" / "plan.json").read_text())
    assert set(checked.playbooks) == {s["playbook"] for s in plan["stages"] if s["steps"]}
    assert len(checked.playbooks) >= 4
    library = checked.environment["ANSIBLE_LIBRARY"].split(":")
    assert str(only_the_run_environment / "tripleo-plugins" / "modules") in library


def test_included_roles_are_on_the_run_roles_path(
        tht18_wd: Path, only_the_run_environment: Path) -> None:
    """Roles of dynamic includes (which --syntax-check does not open)."""
    paths = run_environment(RunOptions())["ANSIBLE_ROLES_PATH"].split(":")
    plan_dir = tht18_wd / "composable-upgrade" / "plan"
    named = {name for task in plan_tasks(plan_dir) for name in role_names(task)
             if "{{" not in name}
    assert named
    missing = sorted(n for n in named if not any(Path(p, n).is_dir() for p in paths))
    assert not missing, missing


def test_without_tripleo_ansible_the_check_names_what_is_missing(
        tht18_wd: Path, only_the_run_environment: Path,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SHARE_VARIABLE, str(tmp_path / "empty"))
    with pytest.raises(cu.RunError, match=r"syntax check failed: .*"
                       r"(couldn't resolve module|role '\w+' was not found)"):
        syntax_check(tht18_wd, "controlplane")


def test_run_syntax_check_command(tht18_wd: Path, only_the_run_environment: Path,
                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    done = cli(["overcloud", "upgrade", "run", "--working-dir", str(tht18_wd),
                "--stage", "compute", "--syntax-check", "-f", "json"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"Playbook": "compute.yaml", "Result": "ok"}]
    assert "syntax check passed: stage compute, 1 playbook" in done.stderr
    runs = tht18_wd / "composable-upgrade" / "runs"
    assert not runs.exists() or not any(runs.iterdir())
    monkeypatch.setenv(SHARE_VARIABLE, str(tmp_path / "empty"))
    bad = cli(["overcloud", "upgrade", "run", "--working-dir", str(tht18_wd),
               "--stage", "compute", "--syntax-check"])
    assert error_line(bad).startswith("syntax check failed:")

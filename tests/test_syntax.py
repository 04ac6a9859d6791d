"""ansible-playbook --syntax-check of a plan built from real THT 18 outputs.

Modules and roles resolve from ansible-core and tripleo-ansible; only the
declared :data:`~tests.tripleo_reference.STUBBED_MODULES` resolve to stubs.
Syntax-check does not look into dynamic ``include_role``, so the roles those
name are checked here against the roles path too.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import composable_upgrades
from composable_upgrades import StackOutputs
from tests.tripleo_reference import (
    FIXTURE_OUTPUTS, STUBBED_MODULES, STUBS_LIBRARY, ansible_playbook,
    share_ansible, syntax_check_env)

ROLE_KEYS = ("include_role", "import_role", "ansible.builtin.include_role",
             "ansible.builtin.import_role")
TIMEOUT = 120


def prepare_plan(outputs: StackOutputs, working_dir: Path) -> Path:
    """Prepare ``outputs`` into ``working_dir``; return the plan folder."""
    return Path(composable_upgrades.prepare(outputs, working_dir).plan_dir)


def stage_playbooks(plan_dir: Path) -> list[str]:
    """The stage playbooks ``plan.json`` lists, in run order."""
    plan = json.loads((plan_dir / "plan.json").read_text(encoding="utf-8"))
    return [stage["playbook"] for stage in plan["stages"]]


def syntax_check(plan_dir: Path) -> subprocess.CompletedProcess[str]:
    """One ``ansible-playbook --syntax-check`` of every stage playbook."""
    return subprocess.run(
        [ansible_playbook(), "--syntax-check", "-i", "inventory.yaml",
         *stage_playbooks(plan_dir)],
        cwd=plan_dir, env=syntax_check_env(), capture_output=True, text=True,
        timeout=TIMEOUT, check=False)


def walk_tasks(tasks: Any) -> Iterator[dict[str, Any]]:
    """Every task of a task list, blocks included (depth first)."""
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from walk_tasks(task.get(key))


def plan_tasks(plan_dir: Path) -> Iterator[dict[str, Any]]:
    """Every task of every task file of the plan."""
    for path in sorted((plan_dir / "tasks").rglob("*.yaml")):
        yield from walk_tasks(yaml.safe_load(path.read_text(encoding="utf-8")))


def role_names(task: dict[str, Any]) -> list[str]:
    """Roles a task includes or imports."""
    names = []
    for key in ROLE_KEYS:
        spec = task.get(key)
        name = spec.get("name") if isinstance(spec, dict) else spec
        if isinstance(name, str):
            names.append(name)
    return names


@pytest.fixture(scope="module")
def fixture_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plan folder of the THT 18 fixture."""
    return prepare_plan(StackOutputs.from_file(FIXTURE_OUTPUTS),
                        tmp_path_factory.mktemp("syntax"))


def test_stage_playbooks_pass_syntax_check(fixture_plan: Path) -> None:
    """Every stage playbook of the real plan passes --syntax-check."""
    playbooks = stage_playbooks(fixture_plan)
    assert len(playbooks) >= 3, playbooks
    result = syntax_check(fixture_plan)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERROR" not in output, output
    for playbook in playbooks:
        assert f"playbook: {playbook}" in result.stdout, output


def test_included_roles_exist(fixture_plan: Path) -> None:
    """Roles of dynamic includes (unchecked by --syntax-check) are installed."""
    roles_path = share_ansible() / "roles"
    named = {name for task in plan_tasks(fixture_plan)
             for name in role_names(task) if "{{" not in name}
    assert named, "the plan includes no roles: the check proves nothing"
    missing = sorted(n for n in named if not (roles_path / n).is_dir())
    assert not missing, f"roles not in {roles_path}: {missing}"


def test_stubs_are_the_declared_modules() -> None:
    """tests/stubs/library holds a stub for each declared name and nothing else."""
    files = {p.name for p in STUBS_LIBRARY.iterdir() if p.name != "__pycache__"}
    assert files == {f"{name}.py" for name in STUBBED_MODULES}


def test_stubs_shadow_no_installed_module(fixture_plan: Path) -> None:
    """Each stub stands in for a module the plan calls and nothing installs."""
    called = {key for task in plan_tasks(fixture_plan) for key in task}
    for name in sorted(STUBBED_MODULES):
        assert name in called, f"{name} is stubbed but no task calls it"
        assert not (share_ansible() / "plugins" / "modules" / f"{name}.py").exists()
        assert importlib.util.find_spec(f"ansible.modules.{name}") is None, name


@pytest.mark.parametrize("bad_task, unknown", [
    ({"name": "Call a module nobody has",
      "no_such_module_for_syntax_check": {"state": "present"}},
     "no_such_module_for_syntax_check"),
    ({"name": "Import a role nobody has",
      "import_role": {"name": "no_such_role_for_syntax_check"}},
     "no_such_role_for_syntax_check"),
], ids=["module", "role"])
def test_syntax_check_fails_on_unknown_name(tmp_path: Path, bad_task: dict[str, Any],
                                            unknown: str) -> None:
    """A plan whose task calls an unknown module or role fails the check."""
    items = json.loads(FIXTURE_OUTPUTS.read_text(encoding="utf-8"))
    role_data = next(i for i in items if i["output_key"] == "RoleData")
    role_data["output_value"] = copy.deepcopy(role_data["output_value"])
    task = {**bad_task, "when": "step|int == 2"}
    role_data["output_value"]["Controller"]["upgrade_tasks"].append(task)
    plan_dir = prepare_plan(StackOutputs.from_mapping(items, source="edited"),
                            tmp_path)
    step_file = plan_dir / "tasks" / "Controller" / "upgrade_tasks_step2.yaml"
    assert task in yaml.safe_load(step_file.read_text(encoding="utf-8"))
    result = syntax_check(plan_dir)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "ERROR" in output and unknown in output, output

"""The no-op rehearsal: every task becomes a debug that Ansible runs as is."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

from composable_upgrades.planning import plan
from composable_upgrades.planning import noop as rehearsal
from composable_upgrades.planning import noop_tasks
from composable_upgrades.model.deployment import make_tasks
from composable_upgrades.formats.serialize import to_yaml
from tests.tripleo_reference import ansible_playbook

# Task names as THT writes them, some with Jinja that only the real run's
# variables resolve (or none: a rehearsal must not evaluate them).
NAMES = [
    "Stop {{ undefined_var }} before the upgrade",
    "Check {% if undefined_var %}x{% endif %} {{ 'quoted' }}",
    "Odd {% endraw %}{%- endraw -%} {{ still_undefined }}",
]


def _tasks():
    bodies = [{"name": name, "when": ["step|int == 1", "{{ not_defined }}"],
               "debug": {"msg": "real"}} for name in NAMES]
    tasks = make_tasks(bodies, kind="upgrade_tasks", role="Controller",
                       services=[], source="test", key="tasks")
    # a service name is data from the outputs too
    return [*tasks[:-1], dataclasses.replace(tasks[-1], service="svc{{ x }}")]


def test_noop_runs_with_jinja_in_task_names(tmp_path: Path) -> None:
    tasks = [rehearsal.noop_task(task, 1) for task in _tasks()]
    playbook = tmp_path / "rehearsal.yaml"
    playbook.write_text(to_yaml([{"hosts": "localhost", "gather_facts": False,
                                  "tasks": [dict(t.body) for t in tasks]}]))

    run = subprocess.run(
        [ansible_playbook(), "-i", "localhost,", "-c", "local", str(playbook)],
        check=False, capture_output=True, text=True, timeout=300,
        env={"PATH": str(Path(ansible_playbook()).parent) + ":/usr/bin:/bin",
             "ANSIBLE_NOCOLOR": "1", "HOME": str(tmp_path),
             "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")})

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    shown = run.stdout
    for name in NAMES[:2]:
        record = f"rehearsal | step 1 | (unattributed) | {name} | on localhost"
        assert json.dumps(record) in shown
    assert json.dumps("rehearsal | step 1 | svc{{ x }} | Odd  "
                      "{{ still_undefined }} | on localhost") in shown


def test_unattributed_is_the_plans() -> None:
    assert noop_tasks.UNATTRIBUTED is plan.UNATTRIBUTED
    body = rehearsal.noop_task(_tasks()[0], 3).body
    assert plan.UNATTRIBUTED in body["ansible.builtin.debug"]["msg"]


def test_noop_variant_keeps_waves_and_counts_never_tasks(tmp_path: Path) -> None:
    import composable_upgrades as cu
    from composable_upgrades.planning.noop import noop_variant

    def tasks(service: str) -> list[dict]:
        return [{"name": f"{service} upgrade", "debug": {"msg": "x"},
                 "when": "step|int == 2"},
                {"name": f"{service} only on request", "debug": {"msg": "x"},
                 "when": "step|int == 2", "tags": ["never", "special"]}]
    roles = {"Database": "mysql", "Messaging": "oslo_messaging_rpc",
             "Controller": "keystone"}
    outputs = cu.StackOutputs.from_mapping({
        "RoleData": {r: {"service_names": [s], "upgrade_tasks": tasks(s)}
                     for r, s in roles.items()},
        "AnsibleHostVarsMap": {r: {f"{r.lower()}-0": {}} for r in roles}},
        source="never tasks")
    plan = cu.build_plan(cu.Deployment.from_outputs(outputs),
                         fleet=cu.Fleet.at(tmp_path / "fleet"))
    noop = noop_variant(plan)
    before = plan.stage("controlplane").steps[0]
    after = noop.stage("controlplane").steps[0]
    assert after.waves == before.waves == (("Database", "Messaging"), ("Controller",))
    assert all(len(p.tasks) == 1 for p in after.plays)
    assert noop.warnings[-1].endswith("3 tasks tagged 'never' left out, as a run "
                                      "leaves them out")


def test_noop_of_a_block_carries_its_inner_tasks_tags() -> None:
    from composable_upgrades.model.deployment import make_tasks as tasks_of
    block = {"name": "online data migrations", "when": "step|int == 1",
             "block": [{"name": "nova", "command": "x", "tags": ["online_upgrade"]},
                       {"name": "cinder", "command": "y",
                        "tags": ["online_upgrade", "never", "special"]}]}
    task = tasks_of([block], kind="external_upgrade_tasks", role=None, services=[],
                    source="test", key="ExternalUpgradeTasks")[0]
    body = noop_tasks.noop_task(task, 1).body
    assert [str(t) for t in body["tags"]] == ["online_upgrade", "special"]

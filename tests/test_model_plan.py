"""The deployment model and the upgrade plan, on real THT 18.0.0 outputs."""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from composable_upgrades import (
    Dependencies, DependencyCycleError, Deployment, InputFileError, OutputsError,
    StackOutputs, UnknownRoleError, UpgradeError, build_plan)
from composable_upgrades.planning.dependencies import order_tasks
from composable_upgrades.planning.plan import (
    KIND_BATCHED, KIND_CONTROLPLANE, KIND_CONVERGE, KIND_EXTERNAL,
    UNDERCLOUD_GROUP, UNDERCLOUD_HOST)

FIXTURES = Path(__file__).parent / "fixtures" / "tht18"
ROLES = ["Controller", "Compute", "Networker", "ComputeHCI", "Database",
         "Messaging", "CephStorage"]
CONTROLPLANE_ROLES = ("Controller", "Database", "Messaging")
COMPUTE_ROLES = ("Compute", "Networker", "ComputeHCI", "CephStorage")


@lru_cache(maxsize=1)
def outputs() -> StackOutputs:
    return StackOutputs.from_file(FIXTURES / "stack-outputs.json")


@lru_cache(maxsize=1)
def summary() -> dict[str, Any]:
    return json.loads((FIXTURES / "summary.json").read_text())


@lru_cache(maxsize=1)
def deployment() -> Deployment:
    return Deployment.from_outputs(outputs())


@lru_cache(maxsize=1)
def default_plan():
    return build_plan(deployment())


def _expected_per_step(per_step: dict[str, Any], step: int) -> int:
    return per_step["bound_per_step"].get(str(step), 0) + \
        per_step["unbound_every_step"]


def _play(plan, stage: str, step: int, role: str):
    for st in plan.stage(stage).steps:
        if st.number == step:
            for play in st.plays:
                if play.role == role:
                    return play
    return None


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the model ---------------------------------------------------------------

def test_roles_in_outputs_order():
    assert deployment().role_names == ROLES == summary()["roles"]
    assert deployment().stack == "overcloud"


def test_hosts_per_role_come_from_the_outputs():
    data = outputs()
    dep = deployment()
    for role in dep.roles:
        fqdns = data["RoleNetHostnameMap"][role.name]["ctlplane"]
        ips = data["RoleNetIpMap"][role.name]["ctlplane"]
        ids = data["ServerIdData"]["server_ids"][role.name]
        names = list(data["AnsibleHostVarsMap"][role.name])
        assert list(role.hosts) == names
        assert [dep.hosts[h].fqdn for h in role.hosts] == fqdns
        assert [dep.hosts[h].address for h in role.hosts] == ips
        assert [dep.hosts[h].server_id for h in role.hosts] == ids
        assert all(dep.hosts[h].role == role.name for h in role.hosts)
        # short names: the FQDN without its network and domain
        assert [f.split(".")[0] for f in fqdns] == names
    assert len(dep.hosts) == 26
    assert {r.name: len(r.hosts) for r in dep.roles} == {
        "Controller": 3, "Compute": 8, "Networker": 2, "ComputeHCI": 4,
        "Database": 3, "Messaging": 3, "CephStorage": 3}


def test_host_examples():
    host = deployment().hosts["overcloud-controller-0"]
    assert host.fqdn == "overcloud-controller-0.ctlplane.localdomain"
    assert host.address == "192.168.24.3"
    assert host.role == "Controller"
    assert deployment().hosts["overcloud-novacompute-7"].role == "Compute"


def test_services_per_role():
    data = outputs()["RoleData"]
    for role in deployment().roles:
        assert list(role.services) == data[role.name]["service_names"]
        assert len(role.services) == \
            summary()["per_role"][role.name]["services_enabled"]
    assert "mysql" in deployment().role("Database").services
    assert "nova_compute" in deployment().role("Compute").services
    assert deployment().roles_running("nova_compute") == ["Compute", "ComputeHCI"]


def test_task_counts_per_role():
    for role in deployment().roles:
        counts = summary()["per_role"][role.name]["task_counts"]
        assert len(role.upgrade_tasks) == counts["upgrade_tasks"]
        assert len(role.post_upgrade_tasks) == counts["post_upgrade_tasks"]
    assert len(deployment().external_upgrade_tasks) == \
        summary()["role_config_external"]["external_upgrade_steps_tasks"]["count"]


@pytest.mark.parametrize("role", ROLES)
def test_upgrade_tasks_per_step_match_summary(role):
    per_step = summary()["per_role"][role]["upgrade_tasks_per_step"]
    tasks = deployment().role(role).upgrade_tasks
    unbound = [t for t in tasks if t.binding.steps is None]
    assert len(unbound) == per_step["unbound_every_step"]
    for step in range(6):
        assert sum(t.runs_at(step) for t in tasks) == \
            _expected_per_step(per_step, step), f"{role} step {step}"


@pytest.mark.parametrize("role", ROLES)
def test_plan_plays_per_step_match_summary(role):
    plan = default_plan()
    stage = "controlplane" if role in CONTROLPLANE_ROLES else "compute"
    per_step = summary()["per_role"][role]["upgrade_tasks_per_step"]
    for step in range(6):
        expected = _expected_per_step(per_step, step)
        play = _play(plan, stage, step, role)
        if expected == 0:
            assert play is None, f"{role} step {step}"
        else:
            assert play is not None, f"{role} step {step}"
            assert len(play.tasks) == expected, f"{role} step {step}"
            assert play.hosts == deployment().role(role).hosts
    post = summary()["per_role"][role]["post_upgrade_tasks_per_step"]
    for step in range(4):
        expected = _expected_per_step(post, step)
        play = _play(plan, "converge", step, role)
        assert (len(play.tasks) if play else 0) == expected, f"{role} post {step}"


def test_external_tasks_per_step_match_summary():
    per_step = summary()["role_config_external"]["external_upgrade_steps_tasks"][
        "per_step"]
    stage = default_plan().stage("external")
    counts = {s.number: sum(len(p.tasks) for p in s.plays) for s in stage.steps}
    expected = {s: _expected_per_step(per_step, s) for s in range(3)}
    assert counts == {s: n for s, n in expected.items() if n}


# -- stages ------------------------------------------------------------------

def test_default_stages():
    plan = default_plan()
    assert [s.name for s in plan.stages] == \
        ["external", "controlplane", "compute", "converge"]
    assert [s.kind for s in plan.stages] == \
        [KIND_EXTERNAL, KIND_CONTROLPLANE, KIND_BATCHED, KIND_CONVERGE]
    assert plan.stage("controlplane").roles == CONTROLPLANE_ROLES
    assert plan.stage("compute").roles == COMPUTE_ROLES
    assert plan.stage("converge").roles == CONTROLPLANE_ROLES + COMPUTE_ROLES
    assert plan.stage("controlplane").hosts == tuple(
        h for r in CONTROLPLANE_ROLES for h in deployment().role(r).hosts)
    assert len(plan.stage("controlplane").hosts) == 9
    assert len(plan.stage("compute").hosts) == 17
    assert len(plan.stage("converge").hosts) == 26
    assert plan.stage_source == "built-in catalog"
    assert plan.warnings == ()


def test_external_stage_runs_on_the_undercloud():
    stage = default_plan().stage("external")
    assert stage.kind == KIND_EXTERNAL
    assert stage.task_kind == "external_upgrade_tasks"
    assert stage.roles == (UNDERCLOUD_GROUP,)
    assert stage.hosts == (UNDERCLOUD_HOST,)
    assert stage.steps
    for step in stage.steps:
        assert [(p.role, p.hosts) for p in step.plays] == \
            [(UNDERCLOUD_GROUP, (UNDERCLOUD_HOST,))]


def test_stage_task_kinds():
    plan = default_plan()
    assert plan.stage("controlplane").task_kind == "upgrade_tasks"
    assert plan.stage("compute").task_kind == "upgrade_tasks"
    assert plan.stage("converge").task_kind == "post_upgrade_tasks"


def test_unknown_stage_name():
    with pytest.raises(UpgradeError, match="nope"):
        default_plan().stage("nope")


def test_stages_file_by_role(tmp_path):
    path = _write(tmp_path, "stages.yaml",
                  "controlplane: [Controller, Database, Messaging, Networker]\n")

    plan = build_plan(deployment(), stages_file=path)

    assert plan.stage("controlplane").roles == \
        ("Controller", "Networker", "Database", "Messaging")
    assert plan.stage("compute").roles == ("Compute", "ComputeHCI", "CephStorage")
    assert plan.stage_source == str(path)
    assert plan.to_dict()["roles"]["Networker"]["stage"] == "controlplane"


def test_stages_file_by_service(tmp_path):
    path = _write(tmp_path, "stages.yaml", "hypervisors: [nova_compute]\n")

    plan = build_plan(deployment(), stages_file=path)

    assert [s.name for s in plan.stages] == \
        ["external", "controlplane", "hypervisors", "compute", "converge"]
    assert plan.stage("hypervisors").roles == ("Compute", "ComputeHCI")
    assert plan.stage("hypervisors").kind == KIND_BATCHED
    assert plan.stage("compute").roles == ("Networker", "CephStorage")
    assert plan.stage("controlplane").roles == CONTROLPLANE_ROLES
    # converge follows the upgrade stages' order
    assert plan.stage("converge").roles == (
        CONTROLPLANE_ROLES + ("Compute", "ComputeHCI", "Networker", "CephStorage"))


def test_stages_file_mapping_form_and_order(tmp_path):
    path = _write(tmp_path, "stages.yaml",
                  "storage:\n  roles: [CephStorage]\n"
                  "hypervisors:\n  services: [nova_compute]\n"
                  "controlplane:\n  roles: [Controller, Database, Messaging]\n")

    plan = build_plan(deployment(), stages_file=path)

    assert [s.name for s in plan.stages] == \
        ["external", "storage", "hypervisors", "controlplane", "compute",
         "converge"]
    assert plan.stage("storage").roles == ("CephStorage",)
    assert plan.stage("compute").roles == ("Networker",)
    assert plan.stage("controlplane").kind == KIND_CONTROLPLANE
    assert plan.stage("storage").kind == KIND_BATCHED


@pytest.mark.parametrize("text", [
    "controlplane: [Controller, Nope]\n",
    "controlplane:\n  roles: [Nope]\n",
])
def test_stages_file_unknown_role(tmp_path, text):
    path = _write(tmp_path, "stages.yaml", text)

    with pytest.raises(UnknownRoleError) as info:
        build_plan(deployment(), stages_file=path)

    assert info.value.role == "Nope"
    assert str(path) in str(info.value)
    assert "Nope" in str(info.value)
    assert "\n" not in str(info.value)


def test_stages_file_unknown_service(tmp_path):
    path = _write(tmp_path, "stages.yaml", "x:\n  services: [no_such_service]\n")

    with pytest.raises(InputFileError) as info:
        build_plan(deployment(), stages_file=path)

    assert str(path) in str(info.value)
    assert "no_such_service" in str(info.value)


def test_stages_file_role_in_two_stages(tmp_path):
    path = _write(tmp_path, "stages.yaml",
                  "first: [Compute]\nsecond: [ComputeHCI, Compute]\n")

    with pytest.raises(InputFileError) as info:
        build_plan(deployment(), stages_file=path)

    message = str(info.value)
    assert str(path) in message
    assert "'Compute'" in message
    assert "first" in message and "second" in message


@pytest.mark.parametrize("text", [
    "external: [Controller]\n",      # reserved
    "converge: [Controller]\n",      # reserved
    "a/b: [Controller]\n",           # unsafe as a file name
    "- Controller\n",                # not a mapping
    "",                              # empty
    "x: Controller\n",               # not a list
    "x: {roles: [Controller], hosts: [a]}\n",
    "x: [Controller\n",              # not YAML
])
def test_bad_stages_file(tmp_path, text):
    path = _write(tmp_path, "stages.yaml", text)

    with pytest.raises(UpgradeError) as info:
        build_plan(deployment(), stages_file=path)

    assert "\n" not in str(info.value)


# -- dependencies ------------------------------------------------------------

def _check_task_order(play, original, deps):
    """``play.tasks`` is ``original`` reordered as order_tasks promises."""
    tasks = list(play.tasks)
    assert sorted(t.index for t in tasks) == sorted(t.index for t in original)
    # unattributed tasks keep their place
    for position, task in enumerate(original):
        if task.service is None:
            assert tasks[position] is task
    attributed = [t for t in tasks if t.service is not None]
    # each service's tasks stay together (among attributed tasks) and in order
    runs = [t.service for i, t in enumerate(attributed)
            if i == 0 or attributed[i - 1].service != t.service]
    assert len(runs) == len(set(runs)), (play.role, runs)
    for service in set(runs):
        indexes = [t.index for t in attributed if t.service == service]
        assert indexes == sorted(indexes)
    # dependencies first
    position = {}
    for i, t in enumerate(tasks):
        if t.service is not None:
            position.setdefault(t.service, []).append(i)
    for service, places in position.items():
        for dep in deps.requires(service):
            if dep in position:
                assert max(position[dep]) < min(places), (play.role, service, dep)


def test_tasks_within_a_step_follow_dependencies():
    plan = default_plan()
    deps = plan.dependencies
    checked = 0
    for stage in plan.stages:
        for step in stage.steps:
            if not isinstance(step.number, int):
                continue  # converge's deployment-wide phases: not RoleData's
            for play in step.plays:
                if stage.kind == KIND_EXTERNAL:
                    source = deployment().external_upgrade_tasks
                else:
                    source = deployment().role(play.role).tasks(stage.task_kind)
                original = [t for t in source if t.runs_at(step.number)]
                _check_task_order(play, original, deps)
                checked += 1
    assert checked > 30


def test_controller_step0_is_reordered_by_dependencies():
    """cinder_volume comes before mysql in RoleData; it depends on mysql."""
    play = _play(default_plan(), "controlplane", 0, "Controller")
    original = [t for t in deployment().role("Controller").upgrade_tasks
                if t.runs_at(0)]
    services = [t.service for t in play.tasks]
    original_services = [t.service for t in original]

    assert original_services.index("cinder_volume") < \
        original_services.index("mysql")
    assert services.index("mysql") < services.index("cinder_volume")
    assert services.index("oslo_messaging_rpc") < services.index("cinder_volume")
    assert len(services) - services[::-1].index("mysql") - 1 < \
        services.index("cinder_volume")


def test_order_tasks_keeps_unattributed_slots():
    tasks = [("a1", "api"), ("u1", None), ("d1", "db"), ("a2", "api"),
             ("u2", None), ("d2", "db"), ("o1", "other")]
    deps = Dependencies(after={"api": ("db",)}, sources=("test",))

    ordered = order_tasks(tasks, lambda t: t[1], deps)

    assert [t[0] for t in ordered] == ["d1", "u1", "d2", "a1", "u2", "a2", "o1"]


def test_order_tasks_unchanged_when_already_in_order():
    tasks = [("d1", "db"), ("u1", None), ("a1", "api"), ("a2", "api")]
    deps = Dependencies(after={"api": ("db",)}, sources=("test",))

    assert order_tasks(tasks, lambda t: t[1], deps) == tasks


def test_order_tasks_transitive_dependencies():
    tasks = [("c", "c"), ("b", "b"), ("a", "a")]
    deps = Dependencies(after={"c": ("b",), "b": ("a",)}, sources=("test",))

    assert [t[0] for t in order_tasks(tasks, lambda t: t[1], deps)] == \
        ["a", "b", "c"]


def _plays_respect_dependencies(step, deps):
    services = {p.role: {s for s in p.services if s} for p in step.plays}
    roles = [p.role for p in step.plays]
    for i, earlier in enumerate(roles):
        for later in roles[i + 1:]:
            # the earlier role must not need anything the later one runs,
            # except what the later role also needs for the same service
            # (it upgrades that pair in order inside its own play)
            needs = {d for s in services[earlier] - services[later]
                     for d in deps.requires(s)}
            assert not needs & services[later], (step.number, earlier, later)


def test_role_plays_of_a_step_follow_dependencies():
    plan = default_plan()
    for stage in plan.stages:
        for step in stage.steps:
            _plays_respect_dependencies(step, plan.dependencies)


@pytest.mark.parametrize("step", [0, 1, 3])
def test_database_and_messaging_before_controller(step):
    """Controller's cinder_volume needs mysql (Database) and the rpc bus."""
    roles = [p.role for s in default_plan().stage("controlplane").steps
             if s.number == step for p in s.plays]
    assert roles.index("Database") < roles.index("Controller")
    assert roles.index("Messaging") < roles.index("Controller")


def test_steps_without_dependencies_keep_outputs_order():
    """At step 2 no role needs another's services: outputs order stays."""
    roles = [p.role for s in default_plan().stage("controlplane").steps
             if s.number == 2 for p in s.plays]
    assert roles == list(CONTROLPLANE_ROLES)


def test_dependencies_file_replaces_an_entry(tmp_path):
    path = _write(tmp_path, "deps.yaml", "cinder_volume: []\n")

    deps = Dependencies.load(path)
    plan = build_plan(deployment(), dependencies=deps)

    assert deps.after["cinder_volume"] == ()
    assert deps.after["keystone"] == Dependencies.builtin().after["keystone"]
    assert deps.sources[-1] == str(path)
    # without the entry nothing makes Controller wait: outputs order
    roles = [p.role for s in plan.stage("controlplane").steps
             if s.number == 0 for p in s.plays]
    assert roles == list(CONTROLPLANE_ROLES)
    # and Controller's tasks keep RoleData's order
    play = _play(plan, "controlplane", 0, "Controller")
    original = [t for t in deployment().role("Controller").upgrade_tasks
                if t.runs_at(0)]
    assert list(play.tasks) == original
    assert plan.to_dict()["dependencies"]["cinder_volume"] == []


def test_dependencies_file_adds_an_ordering(tmp_path):
    path = _write(tmp_path, "deps.yaml", "mysql: [oslo_messaging_rpc]\n")

    plan = build_plan(deployment(), dependencies=Dependencies.load(path))

    play = _play(plan, "controlplane", 0, "Controller")
    services = [t.service for t in play.tasks]
    last_rpc = len(services) - services[::-1].index("oslo_messaging_rpc") - 1
    assert last_rpc < services.index("mysql")
    roles = [p.role for s in plan.stage("controlplane").steps
             if s.number == 0 for p in s.plays]
    assert roles.index("Messaging") < roles.index("Database")


@pytest.mark.parametrize("text, cycle", [
    ("mysql: [keystone]\n", ["keystone", "mysql", "keystone"]),
    ("a: [b]\nb: [c]\nc: [a]\n", ["a", "b", "c", "a"]),
    ("podman: [podman]\n", ["podman", "podman"]),
])
def test_dependency_cycle(tmp_path, text, cycle):
    path = _write(tmp_path, "deps.yaml", text)

    with pytest.raises(DependencyCycleError) as info:
        Dependencies.load(path)

    assert info.value.cycle == cycle
    message = str(info.value)
    assert " -> ".join(cycle) in message
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize("text", [
    "- mysql\n", "mysql: 3\n", "mysql: [1, 2]\n", "mysql: [keystone\n",
])
def test_bad_dependencies_file(tmp_path, text):
    path = _write(tmp_path, "deps.yaml", text)

    with pytest.raises(InputFileError) as info:
        Dependencies.load(path)

    assert str(path) in str(info.value)


def test_builtin_dependencies_have_no_cycle():
    deps = Dependencies.builtin()
    assert "mysql" in deps.requires("keystone")
    assert "mysql" in deps.requires("glance_api")  # directly and via keystone


# -- tables and serialisation ------------------------------------------------

def _plan_total(plan) -> int:
    return sum(len(p.tasks) for s in plan.stages for st in s.steps for p in st.plays)


def _numbered_steps_total(plan) -> int:
    """Tasks of the numbered steps: those that come from the stack outputs."""
    return sum(len(p.tasks) for s in plan.stages for st in s.steps
               if isinstance(st.number, int) for p in st.plays)


def _expected_total() -> int:
    total = summary()["role_config_external"]["external_upgrade_steps_tasks"]["count"]
    for role in ROLES:
        per_role = summary()["per_role"][role]
        total += sum(_expected_per_step(per_role["upgrade_tasks_per_step"], s)
                     for s in range(6))
        total += sum(_expected_per_step(per_role["post_upgrade_tasks_per_step"], s)
                     for s in range(4))
    return total


def test_plan_total_matches_summary():
    assert _numbered_steps_total(default_plan()) == _expected_total() == 313


def test_to_frame_one_row_per_stage_step_role_service():
    plan = default_plan()
    frame = plan.to_frame()

    assert list(frame.columns) == \
        ["stage", "step", "role", "hosts", "service", "tasks", "never"]
    keys = list(zip(frame["stage"], frame["step"], frame["role"], frame["service"]))
    assert len(keys) == len(set(keys))
    expected_rows = sum(len(p.services) for s in plan.stages for st in s.steps
                        for p in st.plays)
    assert len(frame) == expected_rows
    assert int(frame["tasks"].sum()) == _plan_total(plan)
    assert (frame["tasks"] > 0).all()
    assert set(frame["stage"]) == {"external", "controlplane", "compute", "converge"}
    # hosts column: the role's host count
    compute = frame[(frame["stage"] == "compute") & (frame["role"] == "Compute")]
    assert set(compute["hosts"]) == {8}
    # per role and step the service rows add up to the play
    grouped = frame.groupby(["stage", "step", "role"])["tasks"].sum()
    for stage in plan.stages:
        for step in stage.steps:
            for play in step.plays:
                assert grouped[(stage.name, step.number, play.role)] == len(play.tasks)


def test_to_frame_never_counts():
    plan = default_plan()
    frame = plan.to_frame()
    never = sum(t.never for s in plan.stages for st in s.steps for p in st.plays
                for t in p.tasks)
    assert int(frame["never"].sum()) == never
    assert never > 0


def test_to_dict_is_json_serialisable():
    data = default_plan().to_dict()

    text = json.dumps(data)

    assert json.loads(text) == data
    assert data["stack"] == "overcloud"
    assert [s["name"] for s in data["stages"]] == \
        ["external", "controlplane", "compute", "converge"]
    assert list(data["roles"]) == ROLES
    assert len(data["hosts"]) == 26
    assert data["hosts"]["overcloud-database-0"]["role"] == "Database"


def test_to_dict_is_stable():
    first = json.dumps(build_plan(deployment()).to_dict())
    second = json.dumps(build_plan(Deployment.from_outputs(
        StackOutputs.from_file(FIXTURES / "stack-outputs.json"))).to_dict())
    assert first == second


def test_rows_by_step_service_task_agree():
    plan = default_plan()
    _, by_step = plan.rows("step")
    _, by_service = plan.rows("service")
    _, by_task = plan.rows("task")
    assert sum(r[5] for r in by_step) == len(by_task) == _plan_total(plan)
    assert sum(r[4] for r in by_service) == len(by_task)
    per_key = Counter(r[:3] for r in by_task)
    assert {r[:3]: r[5] for r in by_step} == dict(per_key)


def test_rows_filters():
    plan = default_plan()
    _, rows = plan.rows("step", stage="controlplane")
    assert rows and {r[0] for r in rows} == {"controlplane"}
    _, rows = plan.rows("step", role="Compute")
    assert rows and {r[2] for r in rows} == {"Compute"}
    assert {r[0] for r in rows} == {"compute", "converge"}
    with pytest.raises(UnknownRoleError):
        plan.rows("step", role="Nope")
    with pytest.raises(UpgradeError):
        plan.rows("step", stage="nope")
    with pytest.raises(UpgradeError):
        plan.rows("bogus")


# -- converge files and input files: bad input is the SDK's own error ---------

@pytest.mark.parametrize("text, key", [
    ("kernel_check_tasks: 5\n", "kernel_check_tasks"),
    ("reboot_tasks: 5\n", "reboot_tasks"),
    ("reboot_tasks: {name: x}\n", "reboot_tasks"),
    ("kernel_check_tasks: [5]\n", "kernel_check_tasks[0]"),
    ("reboot_tasks: [{name: x, when: 3}]\n", "reboot_tasks[0].when"),
    ("1: []\nfoo: []\n", "unknown keys 1, foo"),
])
def test_bad_converge_file_names_file_and_key(tmp_path, text, key):
    path = _write(tmp_path, "converge.yaml", text)

    with pytest.raises(InputFileError) as info:
        build_plan(deployment(), converge_file=path)

    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert key in message and "\n" not in message


@pytest.mark.parametrize("key", ["kernel_check_tasks", "reboot_tasks"])
def test_bad_converge_output_names_the_output(key):
    data = dict(outputs().data)
    data["UpgradeConverge"] = {key: 5}
    with_converge = Deployment.from_outputs(
        StackOutputs.from_mapping(data, source="outputs.json"))

    with pytest.raises(OutputsError) as info:
        build_plan(with_converge)

    message = str(info.value)
    assert "outputs.json" in message and "UpgradeConverge" in message
    assert key in message and "\n" not in message


def test_converge_file_tasks_still_make_the_reboot_phase(tmp_path):
    path = _write(tmp_path, "converge.yaml",
                  "kernel_check_tasks: [{name: check, debug: {msg: c}}]\n"
                  "reboot_tasks: [{name: reboot, debug: {msg: r}}]\n")

    play = build_plan(deployment(), converge_file=path).stage("converge") \
        .steps[-1].plays[0]

    assert [t.name for t in play.tasks] == [
        "check", "Reboot where the kernel changed, one host at a time"]
    assert play.tasks[1].body["block"] == [{"name": "reboot",
                                            "debug": {"msg": "r"}}]


def test_stages_file_not_utf8_is_an_input_file_error(tmp_path):
    path = tmp_path / "stages.yaml"
    path.write_bytes(b"controlplane: [Controller]\n# caf\xe9\n")

    with pytest.raises(InputFileError) as info:
        build_plan(deployment(), stages_file=path)

    message = str(info.value)
    assert message.startswith(f"{path}: ") and "UTF-8" in message
    assert "\n" not in message


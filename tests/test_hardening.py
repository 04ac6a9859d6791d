"""Hostile and broken outputs, symlinks, secrets: what the SDK refuses or hides."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import composable_upgrades as cu
from composable_upgrades.formats.serialize import to_yaml

MINI = Path(__file__).parent / "fixtures" / "mini-outputs.yaml"


def mini() -> dict[str, Any]:
    return yaml.safe_load(MINI.read_text())


def write_outputs(tmp_path: Path, data: Any, name: str = "outputs.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def load(tmp_path: Path, data: Any) -> cu.StackOutputs:
    return cu.StackOutputs.from_file(write_outputs(tmp_path, data))


def rename_role(data: dict[str, Any], old: str, new: str) -> None:
    for key in ("RoleData", "AnsibleHostVarsMap"):
        data[key] = {(new if k == old else k): v for k, v in data[key].items()}


def rename_host(data: dict[str, Any], role: str, old: str, new: str) -> None:
    hosts = data["AnsibleHostVarsMap"][role]
    data["AnsibleHostVarsMap"][role] = {(new if k == old else k): v
                                        for k, v in hosts.items()}


# -- 1. role names are Ansible group names -------------------------------------

@pytest.mark.parametrize("role", ["Compute,Controller", "My Role", "*", "!Compute",
                                  "Comp:ute", "Compute&x", "1Compute", "Comp-ute",
                                  "{{ lookup('pipe', 'id') }}"])
def test_a_role_name_that_is_no_group_name_is_refused(tmp_path, role):
    data = mini()
    rename_role(data, "Compute", role)

    with pytest.raises(cu.UnsafeNameError) as info:
        cu.Deployment.from_outputs(load(tmp_path, data))

    message = str(info.value)
    assert info.value.kind == "role" and info.value.name == role
    assert message.startswith(str(tmp_path / "outputs.json") + ": ")
    assert "group name" in message and "\n" not in message


@pytest.mark.parametrize("role", ["Compute", "ComputeHCI", "_Custom", "Compute_1"])
def test_tripleo_role_names_are_accepted(tmp_path, role):
    data = mini()
    rename_role(data, "Compute", role)

    assert role in cu.Deployment.from_outputs(load(tmp_path, data)).role_names


def test_a_service_name_that_is_no_group_name_is_refused(tmp_path):
    data = mini()
    data["RoleData"]["Compute"]["service_names"] = ["nova_compute", "a,b"]

    with pytest.raises(cu.UnsafeNameError, match="service name 'a,b'"):
        cu.Deployment.from_outputs(load(tmp_path, data))


# -- 2. reserved and colliding host names ---------------------------------------

@pytest.mark.parametrize("host", ["undercloud", "localhost", "LocalHost", "all",
                                  "ungrouped", "127.0.0.1"])
def test_a_reserved_host_name_is_refused(tmp_path, host):
    data = mini()
    rename_host(data, "Compute", "overcloud-novacompute-0", host)

    with pytest.raises(cu.UnsafeNameError, match="reserved") as info:
        cu.Deployment.from_outputs(load(tmp_path, data))

    assert str(info.value).startswith(str(tmp_path / "outputs.json"))


@pytest.mark.parametrize("host", ["Controller", "overcloud", "allovercloud",
                                  "Undercloud", "excluded_overcloud", "mysql",
                                  "nova_compute"])
def test_a_host_named_like_a_group_is_refused(tmp_path, host):
    data = mini()
    rename_host(data, "Compute", "overcloud-novacompute-0", host)

    with pytest.raises(cu.UnsafeNameError, match="inventory would merge|reserved") as info:
        cu.Deployment.from_outputs(load(tmp_path, data))

    assert info.value.name == host and "\n" not in str(info.value)


def test_a_host_listed_twice_in_a_role_is_refused(tmp_path):
    data = mini()
    del data["AnsibleHostVarsMap"]
    data["RoleNetHostnameMap"] = {
        "Controller": {"ctlplane": ["ctl-0.ctlplane.example", "ctl-0.ctlplane.example"]}}

    with pytest.raises(cu.OutputsError, match="'ctl-0' is twice in Controller"):
        cu.Deployment.from_outputs(load(tmp_path, data))


def test_a_host_name_over_255_characters_is_refused(tmp_path):
    data = mini()
    rename_host(data, "Compute", "overcloud-novacompute-0", "a" * 256)

    with pytest.raises(cu.UnsafeNameError, match="256 characters") as info:
        cu.Deployment.from_outputs(load(tmp_path, data))

    assert len(str(info.value)) < 400


# -- 3. addresses, and no templating of recorded strings -------------------------

PROBE = "{{ lookup('pipe', 'touch %s') }}"


@pytest.mark.parametrize("field", ["ctlplane_ip", "fqdn_ctlplane"])
def test_an_address_must_be_an_ip_address_or_a_host_name(tmp_path, field):
    data = mini()
    data["AnsibleHostVarsMap"]["Compute"]["overcloud-novacompute-0"][field] = \
        PROBE % (tmp_path / "pwned")

    with pytest.raises(cu.OutputsError, match="neither an IP address nor a host name"):
        cu.Deployment.from_outputs(load(tmp_path, data))


def test_ipv6_addresses_are_accepted(tmp_path):
    data = mini()
    data["AnsibleHostVarsMap"]["Compute"]["overcloud-novacompute-0"]["ctlplane_ip"] = \
        "fd00:fd00::20"

    deployment = cu.Deployment.from_outputs(load(tmp_path, data))

    assert deployment.hosts["overcloud-novacompute-0"].address == "fd00:fd00::20"


def test_no_op_rehearsal_never_templates_what_it_records(tmp_path):
    """Names, tags and conditions with a lookup: the rehearsal runs (real
    ansible, local fleet), shows them as they are and runs no lookup."""
    marker = tmp_path / "pwned"
    probe = PROBE % marker
    data = mini()
    tasks = data["RoleData"]["Controller"]["upgrade_tasks"]
    tasks[0]["name"] = f"mysql - {probe}"
    tasks[2]["tags"] = ["mysql", probe]
    tasks[4]["when"] = ["step|int == 3", probe]
    tasks[1]["name"] = "mysql - {% raw %}x{% endraw %} {{ undefined_var }}"
    fleet = cu.Fleet.at(tmp_path / "fleet")
    prepared = cu.prepare(load(tmp_path, data), tmp_path / "wd", fleet=fleet,
                          noop=True)
    stage = next(s.name for s in prepared.prepared.stages
                 if "Controller" in s.roles)

    result = cu.run_stage(tmp_path / "wd", stage, fleet=fleet)

    assert result.status == "successful", result.notes
    assert not marker.exists()
    # Ansible reports the names as they are, braces and all
    names = {r.task for r in result.records}
    assert f"mysql - {probe}" in names
    assert "mysql - {% raw %}x{% endraw %} {{ undefined_var }}" in names


# -- 4. a failed prepare never replaces the plan ---------------------------------

SUBDIR = "composable-upgrade"


def tree_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_prepare_that_cannot_record_itself_keeps_the_plan(tmp_path):
    wd = tmp_path / "wd"
    cu.prepare(load(tmp_path, mini()), wd)
    root = wd / SUBDIR
    plan_before = tree_of(root / "plan")
    (root / "history.sqlite").write_bytes(b"this is no SQLite file" * 100)
    changed = mini()
    changed["RoleData"]["Compute"]["upgrade_tasks"][0]["name"] = "renamed"

    with pytest.raises(cu.WorkdirError, match="history"):
        cu.prepare(load(tmp_path, changed), wd)

    assert tree_of(root / "plan") == plan_before
    assert not (root / "plan.previous").exists()
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


def test_staging_folders_left_by_a_kill_are_cleaned_up(tmp_path):
    wd = tmp_path / "wd"
    cu.prepare(load(tmp_path, mini()), wd)
    root = wd / SUBDIR
    plan_before = tree_of(root / "plan")
    # a kill between "plan -> plan.previous" and "staging -> plan"
    (root / ".plan.tmp-abc123").mkdir()
    (root / ".plan.tmp-abc123" / "plan.json").write_text("{}")
    (root / ".probe-xyz").write_text("")
    (root / "plan").rename(root / "plan.previous")

    result = cu.prepare(load(tmp_path, mini()), wd)

    assert tree_of(root / "plan") == plan_before
    assert not result.changed
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


def test_a_damaged_plan_json_says_to_prepare_again_with_force(tmp_path):
    wd = tmp_path / "wd"
    cu.prepare(load(tmp_path, mini()), wd)
    plan_json = wd / SUBDIR / "plan" / "plan.json"
    data = json.loads(plan_json.read_text())
    data["stages"] = [{"name": 1}]
    for damage in ('{"format": ', json.dumps(data)):
        plan_json.write_text(damage)
        with pytest.raises(cu.WorkdirError) as info:
            cu.Workdir.at(wd).load_plan()
        assert "prepare --force" in str(info.value)
        assert "\n" not in str(info.value)
        with pytest.raises(cu.WorkdirError, match="prepare --force"):
            cu.prepare(load(tmp_path, mini()), wd)

    result = cu.prepare(load(tmp_path, mini()), wd, force=True)

    assert result.changed
    assert cu.Workdir.at(wd).load_plan().stages


# -- 5. no writes through symbolic links -------------------------------------------

@pytest.mark.parametrize("name", ["state/lock", "state/journal.jsonl", "history.sqlite",
                                  "history.sqlite-wal", "runs", "plan", "state"])
def test_a_symlink_where_the_tool_writes_is_refused(tmp_path, name):
    wd = tmp_path / "wd"
    cu.prepare(load(tmp_path, mini()), wd)
    root = wd / SUBDIR
    victim = tmp_path / "victim"
    victim.mkdir() if name in ("runs", "plan", "state") else victim.write_text("keep\n")
    target = root / name
    if target.is_dir():
        import shutil
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(victim)
    changed = mini()
    changed["RoleData"]["Compute"]["upgrade_tasks"][0]["name"] = "renamed"

    with pytest.raises(cu.WorkdirError) as info:
        cu.prepare(load(tmp_path, changed), wd)

    assert str(info.value).startswith(f"{target}: is a symbolic link")
    if victim.is_file():
        assert victim.read_text() == "keep\n"
    else:
        assert list(victim.iterdir()) == []


def test_the_lock_file_is_not_followed(tmp_path):
    from composable_upgrades.state import lock
    state = tmp_path / "composable-upgrade" / "state"
    state.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (state / "lock").symlink_to(victim)

    with pytest.raises(cu.WorkdirError, match="symbolic link"):
        lock.acquire(str(state), purpose="a test")

    assert victim.read_text() == "keep\n"


def test_the_history_is_not_opened_through_a_link(tmp_path):
    from composable_upgrades.state import store_schema
    victim = tmp_path / "victim.sqlite"
    victim.write_text("keep\n")
    (tmp_path / "history.sqlite").symlink_to(victim)

    with pytest.raises(cu.WorkdirError, match="history.sqlite"):
        store_schema.open_for_writing(str(tmp_path / "history.sqlite"))

    assert victim.read_text() == "keep\n"


# -- 6. secrets -------------------------------------------------------------------

SECRET_FORMS = [
    "key={s}", "password={s}", "password: {s}", 'password: "{s} more"',
    '{{\\"db_password\\": \\"{s}\\"}}', "mysql+pymysql://nova:{s}@db/nova",
    "transport_url=rabbit://guest:{s}@ctl:5672/?ssl=0",
    "openstack --os-password {s} stack list", "--os-password={s}",
    "Authorization: Bearer {s}", "X-Auth-Token: {s}",
    "CREATE USER nova IDENTIFIED BY '{s}'", "export OS_PASSWORD={s}",
    "connect failed with {s}",
]


@pytest.mark.parametrize("form", SECRET_FORMS)
def test_scrub_text_masks_the_common_forms(form):
    from composable_upgrades.model.redact import REDACTED, scrub_text
    from composable_upgrades.model.secret_digests import SecretDigests
    secret = "Sup3rS3cr3t"
    text = "before " + form.format(s=secret) + " after"

    # A bare value is found only as one of the outputs' own (by its digest).
    known = SecretDigests.of([secret] if form.startswith("connect") else [])
    scrubbed = scrub_text(known.mask(text))

    if form.startswith("key="):  # "key" alone names no secret
        assert scrubbed == text
        return
    assert secret not in scrubbed and REDACTED in scrubbed
    assert scrubbed.startswith("before ") and scrubbed.endswith(" after")


def test_history_shows_messages_scrubbed(tmp_path):
    from composable_upgrades.state.results import RunResult, TaskRecord
    store = cu.HistoryStore.at(tmp_path)
    run = RunResult(run_id="r1", stage="compute", plan_sha="x", status="running",
                    started=1.0, ended=0.0, options={}, batches=[], steps=[],
                    records=[], notes=[], run_dir=None)
    store.start_run(run)
    store.add(TaskRecord("r1", "compute", 1, 1, "h", "Compute", "t", None, "shell",
                         "failed", 1.0, 1.0, "mysql://nova:Sup3rS3cr3t@db failed"))
    store.close()

    shown = cu.History(tmp_path).run("r1").records[0].message

    assert "Sup3rS3cr3t" not in shown and "nova:********@db" in shown


# -- 7. a dead owner's run is marked interrupted -----------------------------------

def _dead_pid() -> int:
    import subprocess
    import sys
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_a_dead_owners_run_is_marked_interrupted(tmp_path):
    from composable_upgrades.state import lock
    from composable_upgrades.state.results import RunResult, TaskRecord
    root = tmp_path / SUBDIR
    store = cu.HistoryStore(root / "history.sqlite")
    run = RunResult(run_id="r1", stage="compute", plan_sha="x", status="running",
                    started=100.0, ended=0.0, options={}, batches=[], steps=[],
                    records=[], notes=[], run_dir=None)
    store.start_run(run)
    store.add(TaskRecord("r1", "compute", 1, 1, "h", "Compute", "t", None, "shell",
                         "ok", 110.0, 5.0, ""))
    store.close()
    (root / "state").mkdir()
    pid = _dead_pid()
    (root / "state" / "lock").write_text(json.dumps(
        {"pid": pid, "started": 100.0, "purpose": "run of stage compute"}))

    with lock.acquire(str(root / "state"), purpose="prepare") as held:
        note = lock.stale_lock_note(held.stale_owner)

    row = cu.History(tmp_path).run_rows()[0]
    assert (row.status, row.ended) == ("interrupted", 115.0)
    assert f"pid {pid}" in row.notes[-1]
    assert f"stale lock of pid {pid}" in note and "r1" in note


def test_take_over_stale_reports_and_clears_a_stale_lock(tmp_path):
    from composable_upgrades.state import lock
    state = tmp_path / SUBDIR / "state"
    state.mkdir(parents=True)
    (state / "lock").write_text(json.dumps({"pid": _dead_pid(), "purpose": "x"}))

    owner = lock.take_over_stale(str(state))

    assert owner is not None and owner["purpose"] == "x"
    assert not (state / "lock").exists()
    assert lock.take_over_stale(str(state)) is None


def test_the_lock_message_never_says_pid_none(tmp_path):
    import fcntl
    import os
    from composable_upgrades.state import lock
    state = tmp_path / "state"
    state.mkdir()
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held, no owner written yet
    try:
        with pytest.raises(cu.LockedError) as info:
            lock.acquire(str(state), purpose="a test")
    finally:
        os.close(fd)

    assert "None" not in str(info.value)
    assert "just starting" in str(info.value)


# -- 8, 9. silent data loss, unexpected errors ------------------------------------

def test_a_duplicate_json_key_is_refused(tmp_path):
    text = json.dumps(mini())
    host = '"overcloud-novacompute-0": {"ctlplane_ip": "192.168.24.20"}'
    text = text.replace('"Compute": {"overcloud-novacompute-0"',
                        f'"Compute": {{{host}, "overcloud-novacompute-0"')
    path = tmp_path / "dup.json"
    path.write_text(text)

    with pytest.raises(cu.OutputsError, match="'overcloud-novacompute-0' twice") as info:
        cu.StackOutputs.from_file(path)

    assert str(info.value).startswith(str(path))


def test_a_duplicate_yaml_key_is_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(MINI.read_text() + "RoleData: {}\n")

    with pytest.raises(cu.OutputsError, match="duplicate key 'RoleData'"):
        cu.StackOutputs.from_file(path)


def test_outputs_without_hosts_are_refused(tmp_path):
    data = mini()
    del data["AnsibleHostVarsMap"]

    with pytest.raises(cu.OutputsError, match="no hosts") as info:
        cu.prepare(load(tmp_path, data), tmp_path / "wd")

    assert str(info.value).startswith(str(tmp_path / "outputs.json"))
    assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("text", ["# just a comment\n", "---\n...\n", "~\n"])
def test_yaml_that_parses_to_nothing_is_refused(tmp_path, text):
    path = tmp_path / "outputs.yaml"
    path.write_text(text)

    with pytest.raises(cu.OutputsError, match="no data") as info:
        cu.StackOutputs.from_file(path)

    assert str(info.value).startswith(str(path))


ALIAS_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]"
       for i in range(8)]) + "\n"


@pytest.mark.parametrize("name,text,match", [
    ("bomb.yaml", ALIAS_BOMB, "expands to more than"),
    ("loop.yaml", "a: &a [*a]\n", "recursive|expands"),
    ("deep.json", "[" * 5000 + "]" * 5000, "nested too deeply|nested more"),
    ("deep.yaml", "a: " + "[" * 150 + "]" * 150 + "\n", "nested more"),
    ("surrogate.json", '{"RoleData": "\\ud800"}', "surrogate"),
    ("bigint.json", '{"RoleData": ' + "9" * 5000 + "}", "cannot be read"),
    ("bigint.yaml", "RoleData: " + "9" * 5000 + "\n", "cannot be read"),
])
def test_hostile_documents_are_refused_with_the_sdks_error(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(cu.OutputsError, match=match) as info:
        cu.StackOutputs.from_file(path)

    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_an_alias_bomb_in_a_stages_file_is_refused(tmp_path):
    path = tmp_path / "stages.yaml"
    path.write_text(ALIAS_BOMB)

    with pytest.raises(cu.InputFileError, match="expands to more than"):
        cu.prepare(load(tmp_path, mini()), tmp_path / "wd", stages_file=path)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    with pytest.raises(cu.OutputsError, match="not a regular file"):
        cu.StackOutputs.from_file(fifo)
    with pytest.raises(cu.InputFileError, match="not a regular file"):
        cu.prepare(load(tmp_path, mini()), tmp_path / "wd", stages_file=fifo)


@pytest.mark.parametrize("stack", ["../../x", "a/b", "..", "", "-x", "x" * 300])
def test_a_stack_name_that_is_no_plain_name_is_refused(tmp_path, stack):
    with pytest.raises(cu.UnsafeNameError, match="is not a stack name"):
        cu.default_working_dir(stack)
    with pytest.raises(cu.UnsafeNameError):
        cu.prepare(load(tmp_path, mini()), tmp_path / "wd", stack=stack)
    assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("when,warning", [
    ("step|int == 99", "step 99, outside 0-5"),
    ('step == "a"', "cannot be read as a step number"),
    ("step|int == -1", "cannot be read as a step number"),
])
def test_a_task_bound_to_no_real_step_gets_a_warning(tmp_path, when, warning):
    data = mini()
    data["RoleData"]["Compute"]["upgrade_tasks"][0]["when"] = when

    deployment = cu.Deployment.from_outputs(load(tmp_path, data))

    task = deployment.role("Compute").upgrade_tasks[0]
    assert not any(task.runs_at(step) for step in range(6))
    [line] = deployment.binding_warnings()
    assert "Compute upgrade_tasks[0] 'nova_compute - upgrade'" in line
    assert warning in line


def test_a_host_var_carrying_credentials_reaches_only_a_plan_that_uses_it(tmp_path):
    url = "rabbit://guest:Sup3rS3cr3t@ctl:5672/?ssl=0"
    data = mini()
    data["AnsibleHostVarsMap"]["Compute"]["overcloud-novacompute-0"].update(
        {"transport_url": url, "plain": "kept"})

    unused = cu.prepare(load(tmp_path, data), tmp_path / "wd1")
    inventory = Path(unused.prepared.file("inventory.yaml")).read_text()
    assert "Sup3rS3cr3t" not in inventory and "plain: kept" in inventory

    data["RoleData"]["Compute"]["upgrade_tasks"][0]["ansible.builtin.raw"] = (
        "echo '{{ transport_url }}' > '{{ rehearsal_root }}/url'")
    used = cu.prepare(load(tmp_path, data), tmp_path / "wd2")
    assert url in Path(used.prepared.file("inventory.yaml")).read_text()


def test_the_plan_warns_about_each_task_bound_to_no_real_step(tmp_path):
    data = mini()
    tasks = data["RoleData"]["Compute"]["upgrade_tasks"]
    tasks[0]["when"] = "step|int == 99"
    tasks[1]["when"] = 'step == "a"'

    plan = cu.plan_upgrade(load(tmp_path, data))

    lines = [w for w in plan.warnings if "upgrade_tasks[" in w]
    assert len(lines) == 2
    assert "step 99" in lines[0] and "cannot be read" in lines[1]


def test_cli_refuses_a_stack_name_that_is_a_path(tmp_path):
    from tests.helpers import error_line, upgrade
    result = upgrade("prepare", "--outputs-file", str(MINI), "--stack", "../../x",
                     home=tmp_path)

    assert "stack name '../../x' is not a stack name" in error_line(result)
    assert not (tmp_path / "overcloud-deploy").exists()
    assert not (tmp_path.parent / "x").exists()


def test_a_history_that_is_a_link_is_not_read(tmp_path):
    root = tmp_path / SUBDIR
    root.mkdir()
    (tmp_path / "elsewhere.sqlite").write_text("")
    (root / "history.sqlite").symlink_to(tmp_path / "elsewhere.sqlite")

    with pytest.raises(cu.WorkdirError, match="symbolic link"):
        cu.History(tmp_path).run_rows()


def test_status_reports_a_stale_lock_it_took_over(tmp_path):
    from tests.helpers import upgrade
    wd = tmp_path / "wd"
    cu.prepare(cu.demo_outputs(), wd, dependencies_file=cu.demo_dependencies_path())
    state = wd / SUBDIR / "state"
    state.mkdir(parents=True, exist_ok=True)
    pid = _dead_pid()
    (state / "lock").write_text(json.dumps({"pid": pid, "purpose": "run of stage compute"}))
    done = upgrade("status", "--working-dir", str(wd), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"note: took over a stale lock of pid {pid} (run of stage compute" in done.stderr
    assert not (state / "lock").exists()

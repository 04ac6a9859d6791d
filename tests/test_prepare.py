"""prepare: what it writes, where, how deterministically, and what it never writes."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from composable_upgrades import (
    DependencyCycleError, InputFileError, OutputsError, StackOutputs,
    UnknownRoleError, UnsafeNameError, Workdir, WorkdirError, prepare)
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.model.redact import is_secret_key, secret_values
from tests.helpers import tree

FIXTURE = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"
SUBDIR = "composable-upgrade"
OPENSTACK = Path(sys.executable).with_name("openstack")

# What python-tripleoclient keeps in a stack's working directory.
TRIPLEOCLIENT_FILES = {
    "tripleo-overcloud-passwords.yaml": "parameter_defaults:\n  AdminPassword: x\n",
    "overcloud-baremetal-deployed.yaml": "parameter_defaults: {}\n",
    "tripleo-ansible-inventory.yaml": "Undercloud:\n  hosts:\n    undercloud: {}\n",
    "config-download/overcloud/group_vars/Controller": "role_name: Controller\n",
    "outputs/overcloud-export.yaml": "parameter_defaults: {}\n",
}


@lru_cache(maxsize=1)
def outputs() -> StackOutputs:
    return StackOutputs.from_file(FIXTURE)


def entries(directory: Path) -> set[str]:
    """Every file and folder under ``directory``, relative."""
    found = set()
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            found.add(str((Path(root) / name).relative_to(directory)))
    return found


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _leftovers(root: Path) -> list[str]:
    return sorted(e for e in entries(root)
                  if Path(e).name.startswith((".plan.tmp", ".probe", ".tmp")))


# -- where prepare writes ----------------------------------------------------

def test_prepare_writes_only_its_subfolder(tmp_path):
    wd = tmp_path / "overcloud-deploy" / "overcloud"
    for relative, text in TRIPLEOCLIENT_FILES.items():
        _write(wd / relative, text)
    before = tree(wd)
    before_entries = entries(wd)
    before_stat = {p: os.stat(wd / p).st_mtime_ns for p in before}

    result = prepare(outputs(), wd)

    assert result.changed is True
    assert Path(result.plan_dir) == wd / SUBDIR / "plan"
    after_entries = entries(wd)
    outside = {e for e in after_entries - before_entries
               if e != SUBDIR and not e.startswith(SUBDIR + os.sep)}
    assert outside == set()
    assert before_entries <= after_entries
    after = tree(wd)
    for relative, data in before.items():
        assert after[relative] == data
        assert os.stat(wd / relative).st_mtime_ns == before_stat[relative]
    # nothing else next to the working dir either
    assert sorted(os.listdir(tmp_path)) == ["overcloud-deploy"]
    assert sorted(os.listdir(tmp_path / "overcloud-deploy")) == ["overcloud"]
    assert (wd / SUBDIR / "plan" / "plan.json").is_file()
    assert _leftovers(wd / SUBDIR) == []


def test_plan_folder_contents(tmp_path):
    result = prepare(outputs(), tmp_path)
    files = tree(Path(result.plan_dir))

    assert {"plan.json", "inventory.yaml", "controlplane.yaml", "compute.yaml",
            "external.yaml", "converge.yaml"} <= set(files)
    for step in range(6):
        assert f"controlplane_step{step}.yaml" in files
    plan_json = json.loads(files["plan.json"])
    # plan.json is the plan's data plus each stage's hash, which the journal
    # ties progress to.
    hashes = {s["name"]: s.pop("sha256") for s in plan_json["stages"]}
    assert plan_json == result.plan.to_dict()
    assert all(len(h) == 64 for h in hashes.values()) and len(set(hashes.values())) == 4
    plan_json = json.loads(files["plan.json"])
    assert result.prepared == PreparedPlan.from_dict(
        plan_json, path=result.prepared.path, sha256=result.prepared.sha256)
    assert Workdir.at(tmp_path).load_plan() == result.prepared
    assert Workdir.at(tmp_path).load_plan().sha256 == result.prepared.sha256
    assert len(result.prepared.sha256) == 64


def test_inventory_reaches_overcloud_hosts_as_the_ssh_user(tmp_path):
    import yaml

    def role_vars(working_dir: Path, **options) -> dict[str, dict]:
        plan_dir = Path(prepare(outputs(), working_dir, **options).plan_dir)
        inventory = yaml.safe_load((plan_dir / "inventory.yaml").read_text())
        children = inventory["all"]["children"]
        return {role: children[role].get("vars", {})
                for role in ("Controller", "Compute", "CephStorage")}

    default = role_vars(tmp_path / "default")
    assert {v["ansible_ssh_user"] for v in default.values()} == {"tripleo-admin"}
    other = role_vars(tmp_path / "other", ssh_user="heat-admin")
    assert {v["ansible_ssh_user"] for v in other.values()} == {"heat-admin"}
    # Only the user differs between the two.
    for role, values in other.items():
        assert {**values, "ansible_ssh_user": "tripleo-admin"} == default[role]
    plan = json.loads((tmp_path / "other" / SUBDIR / "plan" / "plan.json").read_text())
    assert plan["ssh_user"] == "heat-admin"


# -- determinism -------------------------------------------------------------

def test_two_working_dirs_get_byte_identical_plans(tmp_path):
    stages = _write(tmp_path / "stages.yaml", "hypervisors: [nova_compute]\n")
    deps = _write(tmp_path / "deps.yaml", "mysql: [oslo_messaging_rpc]\n")
    first = prepare(outputs(), tmp_path / "a", stages_file=stages,
                    dependencies_file=deps)
    # a fresh load of the same file, as a second operator session would do
    second = prepare(StackOutputs.from_file(FIXTURE), tmp_path / "b",
                     stages_file=stages, dependencies_file=deps)

    one, two = tree(Path(first.plan_dir)), tree(Path(second.plan_dir))
    assert sorted(one) == sorted(two)
    for relative in one:
        assert one[relative] == two[relative], relative
    assert len(one) > 20
    assert first.prepared.sha256 == second.prepared.sha256


def test_same_input_same_dir_is_unchanged(tmp_path):
    first = prepare(outputs(), tmp_path)
    plan_dir = Path(first.plan_dir)
    before = tree(plan_dir)
    mtimes = {p: os.stat(plan_dir / p).st_mtime_ns for p in before}

    again = prepare(StackOutputs.from_file(FIXTURE), tmp_path)

    assert first.changed is True
    assert again.changed is False
    assert tree(plan_dir) == before
    assert {p: os.stat(plan_dir / p).st_mtime_ns for p in before} == mtimes
    assert not (tmp_path / SUBDIR / "plan.previous").exists()
    assert again.prepared.sha256 == first.prepared.sha256
    assert _leftovers(tmp_path / SUBDIR) == []


def test_different_prepare_keeps_the_previous_plan(tmp_path):
    first = prepare(outputs(), tmp_path)
    first_files = tree(Path(first.plan_dir))
    stages = _write(tmp_path / "stages.yaml", "hypervisors: [nova_compute]\n")

    second = prepare(outputs(), tmp_path, stages_file=stages)

    assert second.changed is True
    root = tmp_path / SUBDIR
    assert tree(root / "plan.previous") == first_files
    second_files = tree(root / "plan")
    assert second_files != first_files
    assert "hypervisors.yaml" in second_files
    assert Workdir.at(tmp_path).load_plan("previous").sha256 == first.prepared.sha256
    assert Workdir.at(tmp_path).load_plan().sha256 == second.prepared.sha256

    # the same again: nothing moves
    third = prepare(outputs(), tmp_path, stages_file=stages)
    assert third.changed is False
    assert tree(root / "plan.previous") == first_files
    assert tree(root / "plan") == second_files

    # back to the first: the second becomes previous
    fourth = prepare(outputs(), tmp_path)
    assert fourth.changed is True
    assert tree(root / "plan") == first_files
    assert tree(root / "plan.previous") == second_files
    assert _leftovers(root) == []


# -- errors leave the plan alone ---------------------------------------------

def _error_case(tmp_path: Path, case: str) -> tuple[dict[str, Any], type]:
    if case == "stages-unknown-role":
        return {"stages_file": _write(tmp_path / "in" / "s.yaml",
                                      "controlplane: [Controller, Nope]\n")}, \
            UnknownRoleError
    if case == "stages-role-in-two-stages":
        return {"stages_file": _write(tmp_path / "in" / "s.yaml",
                                      "a: [Compute]\nb: [Compute]\n")}, InputFileError
    if case == "dependency-cycle":
        return {"dependencies_file": _write(tmp_path / "in" / "d.yaml",
                                            "mysql: [keystone]\n")}, \
            DependencyCycleError
    if case == "missing-stages-file":
        return {"stages_file": tmp_path / "in" / "absent.yaml"}, InputFileError
    if case == "outputs-without-role-data":
        return {"outputs": StackOutputs.from_mapping({"KeystoneURL": "x"},
                                                     source="x.json")}, OutputsError
    if case == "outputs-with-wrong-type":
        return {"outputs": StackOutputs.from_mapping(
            {"RoleData": {"Controller": {"upgrade_tasks": "oops"}}},
            source="x.json")}, OutputsError
    if case == "unsafe-role-name":
        return {"outputs": StackOutputs.from_mapping(
            {"RoleData": {"../Controller": {"upgrade_tasks": []}}},
            source="x.json")}, UnsafeNameError
    raise AssertionError(case)


ERROR_CASES = ["stages-unknown-role", "stages-role-in-two-stages",
               "dependency-cycle", "missing-stages-file",
               "outputs-without-role-data", "outputs-with-wrong-type",
               "unsafe-role-name"]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_leaves_current_and_previous_plan_untouched(tmp_path, case):
    wd = tmp_path / "wd"
    prepare(outputs(), wd)
    prepare(outputs(), wd, stages_file=_write(tmp_path / "ok.yaml",
                                              "hypervisors: [nova_compute]\n"))
    root = wd / SUBDIR
    before = tree(root)
    before_entries = entries(root)
    kwargs, error = _error_case(tmp_path, case)
    source = kwargs.pop("outputs", outputs())

    with pytest.raises(error) as info:
        prepare(source, wd, **kwargs)

    assert "\n" not in str(info.value)
    assert tree(root) == before
    assert entries(root) == before_entries
    assert _leftovers(root) == []


def test_failed_swap_keeps_the_current_plan(tmp_path, monkeypatch):
    """The last rename (new plan into place) fails: the current plan stays.

    write_plan promises "a failure leaves the current plan as it was".
    """
    wd = tmp_path / "wd"
    prepare(outputs(), wd)
    prepare(outputs(), wd, stages_file=_write(tmp_path / "ok.yaml",
                                              "hypervisors: [nova_compute]\n"))
    root = wd / SUBDIR
    current = tree(root / "plan")
    previous = tree(root / "plan.previous")
    real_rename = os.rename

    def failing_rename(src, dst, *args, **kwargs):
        if os.fspath(dst) == str(root / "plan") and \
                Path(src).name.startswith(".plan.tmp"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(WorkdirError):
        prepare(outputs(), wd)  # a different plan than the current one
    monkeypatch.undo()

    assert tree(root / "plan") == current
    assert tree(root / "plan.previous") == previous
    assert _leftovers(root) == []


def test_failed_write_keeps_the_current_plan(tmp_path):
    wd = tmp_path / "wd"
    prepare(outputs(), wd)
    root = wd / SUBDIR
    before = tree(root)
    workdir = Workdir.at(wd)

    # "x" is written as a file, then "x/y" needs it to be a folder
    with pytest.raises(WorkdirError) as info:
        workdir.write_plan({"plan.json": "{}\n", "x": "a\n", "x/y": "b\n"})

    assert str(root) in str(info.value)
    assert tree(root) == before
    assert _leftovers(root) == []


# -- unwritable working dir --------------------------------------------------

def _unwritable(tmp_path: Path) -> Path:
    """A working dir that cannot be written, for root too when needed."""
    if os.geteuid() == 0:  # root ignores permission bits
        _write(tmp_path / "afile", "a regular file\n")
        return tmp_path / "afile" / "wd"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)  # 0500
    return locked / "wd"


def test_unwritable_working_dir_raises_workdir_error(tmp_path):
    wd = _unwritable(tmp_path)
    try:
        with pytest.raises(WorkdirError) as info:
            prepare(outputs(), wd)
    finally:
        if (tmp_path / "locked").exists():
            (tmp_path / "locked").chmod(0o700)

    assert str(wd) in str(info.value)
    assert info.value.path == str(wd)
    assert "\n" not in str(info.value)
    assert not wd.exists()


def test_working_dir_under_a_file_raises_workdir_error(tmp_path):
    _write(tmp_path / "afile", "x\n")
    wd = tmp_path / "afile" / "wd"

    with pytest.raises(WorkdirError) as info:
        prepare(outputs(), wd)

    assert str(wd) in str(info.value)


def test_read_only_existing_subfolder(tmp_path):
    """The project's folder exists but is a file: prepare says where."""
    _write(tmp_path / SUBDIR, "not a folder\n")

    with pytest.raises(WorkdirError) as info:
        prepare(outputs(), tmp_path)

    assert str(tmp_path) in str(info.value)
    assert (tmp_path / SUBDIR).read_text() == "not a folder\n"


# -- secrets -----------------------------------------------------------------

@lru_cache(maxsize=1)
def fake_passwords() -> frozenset[str]:
    """Every made-up password of the fixture (``fakepw<hex>``), wherever it is."""
    return frozenset(re.findall(r"fakepw[0-9a-f]+", FIXTURE.read_text()))


def _whole_string_values(value: Any):
    if isinstance(value, dict):
        for item in value.values():
            yield from _whole_string_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _whole_string_values(item)
    elif isinstance(value, str):
        yield value


@lru_cache(maxsize=1)
def secrets_to_check() -> frozenset[str]:
    """The secrets no output may show: what the SDK finds, and the fixture's."""
    found = {s for s in secret_values(dict(outputs().data)) if s.startswith("fakepw")}
    return frozenset(found | fake_passwords())


def test_fixture_passwords_look_fake():
    found = secret_values(dict(outputs().data))
    passwords = {s for s in found if s.startswith("fakepw")}

    assert len(fake_passwords()) >= 20
    assert all(re.fullmatch(r"fakepw[0-9a-f]{20}", p) for p in fake_passwords())
    assert len(passwords) >= 15
    assert passwords <= fake_passwords()


def test_secret_values_find_every_fixture_password():
    """Each password stored as a value in the outputs is recognised as one.

    THT's hacluster_pwd, pacemaker remote_authkey and swift_hash_path_suffix
    hold passwords of tripleo-overcloud-passwords.yaml (HAClusterPassword,
    PacemakerRemoteAuthkey, SwiftHashSuffix).
    """
    stored = {v for v in _whole_string_values(dict(outputs().data))
              if v.startswith("fakepw")}
    missed = stored - secret_values(dict(outputs().data))

    assert stored
    assert missed == set()


@pytest.mark.parametrize("key", [
    "hacluster_pwd", "tripleo::profile::base::pacemaker::remote_authkey",
    "swift::swift_hash_path_suffix", "mysql::server::root_password",
    "keystone::admin_token", "nova::api::neutron_metadata_proxy_shared_secret",
    "ssh_private_key",
])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "tripleo_keystone_resources_cloud_name", "tripleo_keystone_image",
    "nova_virtsecretd", "cinder::keystone::authtoken::auth_url",
    "keystone::token_provider", "tripleo_keystone_common_volumes",
])
def test_not_secret_keys(key):
    """``_key`` is not ``_keystone``; a container named virtsecretd is no secret."""
    assert not is_secret_key(key)


def test_secret_values_do_not_flag_plain_words():
    """Scrubbing these from logs would garble every message."""
    found = secret_values(dict(outputs().data))
    plain = {"overcloud", "service", "host", "admin", "internal", "Default",
             "regionOne", "always", "http://192.168.24.5:5000", "/dev:/dev"}

    assert found & plain == set()


def test_no_secret_in_any_plan_file(tmp_path):
    result = prepare(outputs(), tmp_path)
    files = tree(Path(result.plan_dir))
    assert files

    for relative, data in files.items():
        text = data.decode("utf-8")
        leaked = sorted(s for s in secrets_to_check() if s in text)
        assert leaked == [], relative
        assert "fakepw" not in text, relative


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OS_") and k != "OVERCLOUD_STACK_NAME"}
    env["HOME"] = str(home)
    return subprocess.run([str(OPENSTACK), "overcloud", "upgrade", *args],
                          env=env, cwd=home, capture_output=True, text=True,
                          timeout=120)


def test_no_secret_in_cli_output(tmp_path):
    first = _cli(["prepare", "--outputs-file", str(FIXTURE)], tmp_path)
    assert first.returncode == 0, first.stderr
    commands = [
        ["prepare", "--outputs-file", str(FIXTURE), "-f", "json"],
        ["plan", "--by", "task", "-f", "json"],
        ["plan", "--by", "task"],
        ["plan", "--by", "service", "-f", "yaml"],
        ["plan"],
    ]
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = list(pool.map(lambda a: _cli(a, tmp_path), commands))

    for args, result in zip([["prepare"]] + commands, [first] + results):
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.strip(), args
        for stream in (result.stdout, result.stderr):
            leaked = sorted(s for s in secrets_to_check() if s in stream)
            assert leaked == [], args
            assert "fakepw" not in stream, args
    # the task view did show the tasks (so the check looked at something)
    assert len(json.loads(results[1].stdout)) > 300

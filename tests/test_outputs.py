"""Loading stack outputs (every shape users have) and checking their shape."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from composable_upgrades import (
    Deployment, OutputsError, StackOutputs, UnsafeNameError, UpgradeError)

FIXTURE = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"


@lru_cache(maxsize=1)
def _heat_list_text() -> str:
    return FIXTURE.read_text(encoding="utf-8")


def heat_list() -> list[dict[str, Any]]:
    """The fixture in the Heat API shape (a fresh copy)."""
    return json.loads(_heat_list_text())


def expected_data() -> dict[str, Any]:
    return {o["output_key"]: o["output_value"] for o in heat_list()}


def stack_show(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``openstack stack show overcloud -f json`` prints."""
    return {
        "id": "2e6b4f6a-0000-4000-8000-000000000001",
        "stack_name": "overcloud",
        "description": "Deploy an OpenStack environment, consisting of several "
                       "node types (roles), Controller, Compute, BlockStorage, "
                       "SwiftStorage and CephStorage.",
        "creation_time": "2024-06-10T12:00:00Z",
        "updated_time": "2024-06-11T08:30:00Z",
        "stack_status": "UPDATE_COMPLETE",
        "stack_status_reason": "Stack UPDATE completed successfully",
        "parameters": {"OS::stack_name": "overcloud"},
        "outputs": outputs,
        "links": [{"href": "http://192.168.24.2:8004/v1/x/stacks/overcloud/1",
                   "rel": "self"}],
        "disable_rollback": True,
        "timeout_mins": 240,
    }


def output_show_all(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """``openstack stack output show overcloud --all -f json``, as objects."""
    return {o["output_key"]: o for o in outputs}


def plain(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {o["output_key"]: o["output_value"] for o in outputs}


SHAPES = {
    "heat-api-list": lambda outputs: outputs,
    "stack-show": stack_show,
    "output-show-all": output_show_all,
    "plain-mapping": plain,
}


def _write(path: Path, data: Any, fmt: str) -> Path:
    if fmt == "json":
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper",
                                                       yaml.SafeDumper),
                                  sort_keys=False),
                        encoding="utf-8")
    return path


# -- accepted shapes ---------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_in_json_and_yaml_gives_the_same_data(tmp_path, shape, fmt):
    path = _write(tmp_path / f"outputs.{fmt}", SHAPES[shape](heat_list()), fmt)

    outputs = StackOutputs.from_file(path)

    assert dict(outputs.data) == expected_data()
    assert list(outputs) == [o["output_key"] for o in heat_list()]
    assert outputs.source == str(path)
    assert outputs["RoleData"]["Controller"]["service_names"][0] == \
        "boot_params_service"


def test_shapes_give_equal_deployments(tmp_path):
    deployments = []
    for shape, make in sorted(SHAPES.items()):
        path = _write(tmp_path / f"{shape}.json", make(heat_list()), "json")
        deployments.append(Deployment.from_outputs(StackOutputs.from_file(path)))
    first = deployments[0]
    for other in deployments[1:]:
        assert other.roles == first.roles
        assert dict(other.hosts) == dict(first.hosts)
        assert other.external_upgrade_tasks == first.external_upgrade_tasks


def test_stack_show_object_carries_stack_name_and_status(tmp_path):
    path = _write(tmp_path / "show.json", stack_show(heat_list()), "json")

    outputs = StackOutputs.from_file(path)

    assert outputs.stack == "overcloud"
    assert outputs.status == "UPDATE_COMPLETE"
    assert Deployment.from_outputs(outputs).stack == "overcloud"


def test_the_fixture_file_itself_loads(tmp_path):
    outputs = StackOutputs.from_file(FIXTURE)
    assert len(outputs) == 10
    assert set(outputs) >= {"RoleData", "RoleConfig", "RoleNetHostnameMap",
                            "RoleNetIpMap", "AnsibleHostVarsMap", "ServerIdData"}


def test_output_show_all_as_heatclient_really_prints_it(tmp_path):
    """``stack output show --all -f json`` as python-heatclient prints it.

    heatclient's OutputShowStack returns ``heat_utils.json_formatter(output)``
    for every output, so with ``-f json`` (and ``-f yaml``) each value is a
    JSON *string* holding ``{output_key, output_value, description}``, not an
    object. This is the command DESIGN.md and ``--outputs-file --help`` name.
    """
    printed = {o["output_key"]: json.dumps(o, indent=2, ensure_ascii=False,
                                           separators=(", ", ": "))
               for o in heat_list()}
    path = _write(tmp_path / "output-show-all.json", printed, "json")

    outputs = StackOutputs.from_file(path)

    assert dict(outputs.data) == expected_data()


# -- unreadable or malformed files ------------------------------------------

def _truncated(path: Path) -> None:
    text = _heat_list_text()
    path.write_text(text[:len(text) // 2], encoding="utf-8")


BAD_FILES = {
    "missing": None,
    "empty": lambda p: p.write_bytes(b""),
    "whitespace-only": lambda p: p.write_bytes(b"  \n\t\n"),
    "truncated-json": _truncated,
    "truncated-small-json": lambda p: p.write_text(
        '[{"output_key": "RoleData", "output_value": {"Controller": {'),
    "not-json-or-yaml": lambda p: p.write_text(
        "RoleData: {Controller: [\n  service_names: : :\n\t- ]]\n"),
    "binary": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\xfa"),
    "json-number": lambda p: p.write_text("42\n"),
    "json-string": lambda p: p.write_text('"RoleData"\n'),
    "json-null": lambda p: p.write_text("null\n"),
    "json-bool": lambda p: p.write_text("true\n"),
    "yaml-scalar": lambda p: p.write_text("just some words\n"),
    "list-of-non-outputs": lambda p: p.write_text("[1, 2, 3]\n"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_outputs_file_raises_one_line_outputs_error_naming_it(tmp_path, case):
    path = tmp_path / f"{case}.json"
    if BAD_FILES[case] is not None:
        BAD_FILES[case](path)

    with pytest.raises(OutputsError) as info:
        StackOutputs.from_file(path)

    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    assert info.value.source == str(path)
    assert isinstance(info.value, UpgradeError)


def test_truncated_json_says_so(tmp_path):
    path = tmp_path / "cut.json"
    _truncated(path)

    with pytest.raises(OutputsError, match="truncated"):
        StackOutputs.from_file(path)


def test_missing_file_says_it_cannot_be_read(tmp_path):
    with pytest.raises(OutputsError, match="No such file"):
        StackOutputs.from_file(tmp_path / "nope.json")


def test_empty_file_says_it_is_empty(tmp_path):
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    with pytest.raises(OutputsError, match="empty"):
        StackOutputs.from_file(path)


# -- Deployment.from_outputs shape checks -----------------------------------

def minimal() -> dict[str, Any]:
    """The smallest outputs an overcloud could have: one role, one host."""
    return {
        "RoleData": {
            "Controller": {
                "service_names": ["mysql", "keystone"],
                "upgrade_tasks": [
                    {"name": "Stop mysql", "when": "step|int == 1",
                     "debug": {"msg": "mysql"}},
                    {"name": "Keystone db sync", "when": "step|int == 3",
                     "debug": {"msg": "keystone"}},
                ],
                "post_upgrade_tasks": [],
            },
        },
        "AnsibleHostVarsMap": {
            "Controller": {"ctl-0": {"fqdn_ctlplane": "ctl-0.ctlplane.example",
                                     "ctlplane_ip": "192.0.2.10"}},
        },
    }


def _load(tmp_path: Path, data: Any) -> StackOutputs:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return StackOutputs.from_file(path)


def test_minimal_outputs_are_accepted(tmp_path):
    deployment = Deployment.from_outputs(_load(tmp_path, minimal()))

    assert deployment.role_names == ["Controller"]
    assert deployment.roles[0].services == ("mysql", "keystone")
    assert deployment.roles[0].hosts == ("ctl-0",)
    assert deployment.hosts["ctl-0"].fqdn == "ctl-0.ctlplane.example"
    assert deployment.hosts["ctl-0"].address == "192.0.2.10"
    assert len(deployment.roles[0].upgrade_tasks) == 2


def _without_role_data(data):
    del data["RoleData"]


def _set(path: list[Any], value: Any):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


MALFORMED = {
    # case: (change to minimal(), key the message must name)
    "no-RoleData": (_without_role_data, "RoleData"),
    "RoleData-is-a-list": (_set(["RoleData"], [{"Controller": {}}]), "RoleData"),
    "RoleData-is-a-string": (_set(["RoleData"], "Controller"), "RoleData"),
    "RoleData-is-empty": (_set(["RoleData"], {}), "RoleData"),
    "role-is-not-a-mapping": (_set(["RoleData", "Controller"], ["mysql"]),
                              "RoleData.Controller"),
    "upgrade_tasks-is-a-string": (
        _set(["RoleData", "Controller", "upgrade_tasks"], "- name: x"),
        "RoleData.Controller.upgrade_tasks"),
    "post_upgrade_tasks-is-a-mapping": (
        _set(["RoleData", "Controller", "post_upgrade_tasks"], {"name": "x"}),
        "RoleData.Controller.post_upgrade_tasks"),
    "task-is-a-list": (
        _set(["RoleData", "Controller", "upgrade_tasks", 1], [{"name": "x"}]),
        "RoleData.Controller.upgrade_tasks[1]"),
    "task-is-a-string": (
        _set(["RoleData", "Controller", "upgrade_tasks", 0], "name: x"),
        "RoleData.Controller.upgrade_tasks[0]"),
    "task-when-is-a-number": (
        _set(["RoleData", "Controller", "upgrade_tasks", 0, "when"], 3),
        "RoleData.Controller.upgrade_tasks[0].when"),
    "service_names-has-a-non-string": (
        _set(["RoleData", "Controller", "service_names"], ["mysql", 7]),
        "RoleData.Controller.service_names"),
    "service_names-is-a-string": (
        _set(["RoleData", "Controller", "service_names"], "mysql"),
        "RoleData.Controller.service_names"),
    "AnsibleHostVarsMap-is-a-list": (
        _set(["AnsibleHostVarsMap"], ["ctl-0"]), "AnsibleHostVarsMap"),
    "server_ids-role-is-a-mapping": (
        _set(["ServerIdData"], {"server_ids": {"Controller": {"ctl-0": "id"}}}),
        "ServerIdData.server_ids.Controller"),
    "server_ids-role-is-a-number": (
        _set(["ServerIdData"], {"server_ids": {"Controller": 5}}),
        "ServerIdData.server_ids.Controller"),
    "server_ids-role-is-a-string": (
        _set(["ServerIdData"], {"server_ids": {"Controller": "abc"}}),
        "ServerIdData.server_ids.Controller"),
    "server_ids-has-a-number": (
        _set(["ServerIdData"], {"server_ids": {"Controller": [7]}}),
        "ServerIdData.server_ids.Controller"),
    "fqdn_ctlplane-is-a-number": (
        _set(["AnsibleHostVarsMap", "Controller", "ctl-0", "fqdn_ctlplane"], 5),
        "AnsibleHostVarsMap.Controller.ctl-0.fqdn_ctlplane"),
    "fqdn_ctlplane-is-a-list": (
        _set(["AnsibleHostVarsMap", "Controller", "ctl-0", "fqdn_ctlplane"],
             ["ctl-0.example"]),
        "AnsibleHostVarsMap.Controller.ctl-0.fqdn_ctlplane"),
    "ctlplane_ip-is-a-mapping": (
        _set(["AnsibleHostVarsMap", "Controller", "ctl-0", "ctlplane_ip"],
             {"ip": "192.0.2.10"}),
        "AnsibleHostVarsMap.Controller.ctl-0.ctlplane_ip"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_outputs_raise_outputs_error_naming_file_and_key(tmp_path, case):
    change, key = MALFORMED[case]
    data = minimal()
    change(data)
    outputs = _load(tmp_path, data)

    with pytest.raises(OutputsError) as info:
        Deployment.from_outputs(outputs)

    message = str(info.value)
    assert str(tmp_path / "outputs.json") in message
    assert key in message
    assert "\n" not in message


def test_missing_role_data_lists_the_outputs_found(tmp_path):
    outputs = _load(tmp_path, {"KeystoneURL": "http://x", "HostsEntry": "y"})

    with pytest.raises(OutputsError) as info:
        Deployment.from_outputs(outputs)

    assert info.value.key == "RoleData"
    assert "HostsEntry" in str(info.value) and "KeystoneURL" in str(info.value)


def _rename_role(new: str):
    def change(data):
        data["RoleData"][new] = data["RoleData"].pop("Controller")
        data["AnsibleHostVarsMap"][new] = data["AnsibleHostVarsMap"].pop(
            "Controller")
    return change


def _rename_host(new: str):
    def change(data):
        hosts = data["AnsibleHostVarsMap"]["Controller"]
        hosts[new] = hosts.pop("ctl-0")
    return change


UNSAFE = {
    "role-with-slash": (_rename_role("Control/ler"), "role"),
    "role-dotdot": (_rename_role(".."), "role"),
    "role-with-dotdot-inside": (_rename_role("a..b"), "role"),
    "role-dotdot-path": (_rename_role("../etc"), "role"),
    "role-empty": (_rename_role(""), "role"),
    "host-with-slash": (_rename_host("ctl/0"), "host"),
    "host-dotdot": (_rename_host(".."), "host"),
    "host-dotdot-path": (_rename_host("../../tmp/x"), "host"),
    # a host name is one item of the comma-joined --limit given to ansible
    "host-with-comma": (_rename_host("ctl-0,ctl-1"), "host"),
    "host-with-colon": (_rename_host("ctl:0"), "host"),
    "host-with-space": (_rename_host("ctl 0"), "host"),
    "host-with-star": (_rename_host("ctl-*"), "host"),
    "host-with-question-mark": (_rename_host("ctl-?"), "host"),
    "host-with-brackets": (_rename_host("ctl-[0:2]"), "host"),
    "host-with-bang": (_rename_host("!ctl-0"), "host"),
    "host-with-ampersand": (_rename_host("ctl&0"), "host"),
    "host-starting-with-dash": (_rename_host("-ctl-0"), "host"),
    "host-starting-with-dot": (_rename_host(".ctl-0"), "host"),
    "host-with-dotdot-inside": (_rename_host("ctl..0"), "host"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_role_or_host_name_raises_unsafe_name_error(tmp_path, case):
    change, kind = UNSAFE[case]
    data = minimal()
    change(data)

    with pytest.raises(UnsafeNameError) as info:
        Deployment.from_outputs(_load(tmp_path, data))

    assert info.value.kind == kind
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("host", ["ctl-0", "overcloud-controller-0",
                                  "ctl-0.ctlplane.example.com", "Compute_1",
                                  "0node"])
def test_hostname_characters_are_accepted(tmp_path, host):
    data = minimal()
    _rename_host(host)(data)

    assert Deployment.from_outputs(_load(tmp_path, data)).roles[0].hosts == (host,)


@pytest.mark.parametrize("role", ["Undercloud", "overcloud", "allovercloud",
                                  "excluded_overcloud", "all", "ungrouped"])
def test_role_named_like_an_inventory_group_is_refused(tmp_path, role):
    data = minimal()
    _rename_role(role)(data)

    with pytest.raises(UnsafeNameError) as info:
        Deployment.from_outputs(_load(tmp_path, data))

    assert info.value.kind == "role" and info.value.name == role
    assert "reserved" in str(info.value) and "\n" not in str(info.value)


def test_server_ids_may_hold_nulls(tmp_path):
    data = minimal()
    data["ServerIdData"] = {"server_ids": {"Controller": [None]}}

    deployment = Deployment.from_outputs(_load(tmp_path, data))

    assert deployment.hosts["ctl-0"].server_id is None


def test_unsafe_host_name_from_fqdns_is_refused(tmp_path):
    """Without AnsibleHostVarsMap, host names come from RoleNetHostnameMap."""
    data = minimal()
    del data["AnsibleHostVarsMap"]
    data["RoleNetHostnameMap"] = {
        "Controller": {"ctlplane": ["../evil.ctlplane.example"]}}

    with pytest.raises(UnsafeNameError):
        Deployment.from_outputs(_load(tmp_path, data))


def test_from_outputs_does_not_change_its_input(tmp_path):
    outputs = _load(tmp_path, minimal())
    before = copy.deepcopy(dict(outputs.data))
    Deployment.from_outputs(outputs)
    assert dict(outputs.data) == before

"""Host variables in the inventory: every AnsibleHostVarsMap variable of a
host reaches it, as tripleo-common writes them; on a fleet the fleet's
connection variables always win."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import composable_upgrades as cu

MINI = Path(__file__).parent / "fixtures" / "mini-outputs.yaml"
HOST = "overcloud-novacompute-0"


def outputs_with_host_vars(extra: dict[str, Any]) -> cu.StackOutputs:
    data = yaml.safe_load(MINI.read_text())
    data["AnsibleHostVarsMap"]["Compute"][HOST].update(extra)
    return cu.StackOutputs.from_mapping(data, source="mini with host vars")


def host_entry(prepared: cu.PrepareResult, host: str = HOST) -> dict[str, Any]:
    inventory = yaml.safe_load(Path(prepared.prepared.file("inventory.yaml")).read_text())
    for group in inventory["all"]["children"].values():
        if host in (group.get("hosts") or {}):
            return group["hosts"][host]
    raise AssertionError(f"{host} is in no group")


def test_every_host_var_of_the_outputs_reaches_the_inventory(tmp_path):
    prepared = cu.prepare(outputs_with_host_vars({
        "my_var": "foo", "storage_ip": "172.18.0.20",
        "fqdn_internal_api": "compute-0.internalapi.localdomain",
        "nested": {"a": [1, 2]}}), tmp_path / "wd")
    entry = host_entry(prepared)
    assert entry["my_var"] == "foo"
    assert entry["storage_ip"] == "172.18.0.20"
    assert entry["fqdn_internal_api"] == "compute-0.internalapi.localdomain"
    assert entry["nested"] == {"a": [1, 2]}
    assert entry["ansible_host"] == entry["ctlplane_ip"] == "192.168.24.20"
    other = host_entry(prepared, "overcloud-novacompute-1")
    assert "my_var" not in other


def test_the_outputs_own_host_vars_win_as_in_tripleo(tmp_path):
    prepared = cu.prepare(outputs_with_host_vars({"canonical_hostname": "c0.example"}),
                          tmp_path / "wd")
    assert host_entry(prepared)["canonical_hostname"] == "c0.example"


def test_secret_named_host_vars_stay_out(tmp_path):
    prepared = cu.prepare(outputs_with_host_vars({"ipmi_password": "fakepw-host"}),
                          tmp_path / "wd")
    assert "ipmi_password" not in host_entry(prepared)
    assert "fakepw-host" not in Path(prepared.prepared.file("inventory.yaml")).read_text()


def test_on_a_fleet_the_outputs_cannot_point_a_host_elsewhere(tmp_path):
    fleet = cu.Fleet.at(tmp_path / "fleet")
    prepared = cu.prepare(outputs_with_host_vars({
        "ansible_connection": "ssh", "ansible_host": "10.1.2.3",
        "ansible_user": "root", "ansible_become": True,
        "rehearsal_root": "/", "my_var": "kept"}), tmp_path / "wd", fleet=fleet)
    entry = host_entry(prepared)
    assert entry["ansible_connection"] == "local"
    assert entry["ansible_become"] is False
    assert entry["rehearsal_root"] == fleet.host_root(HOST)
    assert "ansible_host" not in entry and "ansible_user" not in entry
    assert entry["my_var"] == "kept"

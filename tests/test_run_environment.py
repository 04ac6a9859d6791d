"""The environment of a run's ansible-playbook calls: python-tripleoclient's
settings, --ansible-forks over them, the operator's ANSIBLE_* over the rest."""

from __future__ import annotations

import os

from composable_upgrades.run.environment import (
    SHARE_VARIABLE, SSH_ARGS, default_forks, run_environment)
from composable_upgrades.run.options import RunOptions


def test_forks_default_to_four_per_cpu_up_to_a_hundred():
    assert default_forks(2) == 8
    assert default_forks(16) == 64
    assert default_forks(64) == 100
    env = run_environment(RunOptions(), environ={})
    assert env["ANSIBLE_FORKS"] == str(min(4 * (os.cpu_count() or 1), 100))


def test_tripleoclient_settings_and_paths():
    env = run_environment(RunOptions(), environ={})
    assert env["ANSIBLE_SSH_ARGS"] == SSH_ARGS
    for option in ("ControlMaster=auto", "ControlPersist=30m",
                   "ServerAliveInterval=64", "ServerAliveCountMax=1024",
                   "Compression=no", "StrictHostKeyChecking=no",
                   "UserKnownHostsFile=/dev/null",
                   "PreferredAuthentications=publickey"):
        assert f"-o {option}" in env["ANSIBLE_SSH_ARGS"]
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert env["ANSIBLE_SSH_RETRIES"] == "3"
    assert env["ANSIBLE_INJECT_FACT_VARS"] == "False"
    assert env["ANSIBLE_GATHER_SUBSET"] == "!all,min"
    assert "/usr/share/ansible/tripleo-plugins/modules" in env["ANSIBLE_LIBRARY"].split(":")
    assert "/usr/share/ansible/plugins/action" in env["ANSIBLE_ACTION_PLUGINS"].split(":")
    assert env["ANSIBLE_ROLES_PATH"].split(":")[1:] == [
        "/usr/share/ansible/tripleo-roles", "/usr/share/ansible/roles", "/etc/ansible/roles"]


def test_the_share_root_can_be_pointed_elsewhere():
    env = run_environment(RunOptions(), environ={SHARE_VARIABLE: "/venv/share/ansible"})
    assert "/venv/share/ansible/tripleo-plugins/modules" in env["ANSIBLE_LIBRARY"]
    assert "/usr/share/ansible" not in env["ANSIBLE_LIBRARY"]
    assert "/venv/share/ansible/tripleo-roles" in env["ANSIBLE_ROLES_PATH"]


def test_operator_ansible_variables_win_but_not_over_the_records_or_forks_option():
    operator = {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no", "ANSIBLE_FORKS": "50",
                "ANSIBLE_NOCOLOR": "False", "ANSIBLE_TIMEOUT": "99"}
    env = run_environment(RunOptions(), environ=operator)
    assert env["ANSIBLE_SSH_ARGS"] == "-o ControlMaster=no"
    assert env["ANSIBLE_FORKS"] == "50"
    assert env["ANSIBLE_TIMEOUT"] == "99"
    assert env["ANSIBLE_NOCOLOR"] == "True"
    assert run_environment(RunOptions(forks=7), environ=operator)["ANSIBLE_FORKS"] == "7"


def test_extra_settings_are_added():
    env = run_environment(RunOptions(), extra={"ANSIBLE_PRIVATE_KEY_FILE": "/k"},
                          environ={})
    assert env["ANSIBLE_PRIVATE_KEY_FILE"] == "/k"

"""The variables upgrade tasks read, as Jinja finds them (planning.variables)."""

from __future__ import annotations

import pytest

from composable_upgrades.planning.variables import select_vars, used_names


def test_templates_give_their_variables_only():
    tasks = [{"name": "Install {{ package }}",
              "shell": "echo {{ release.name | upper }} > /etc/{{ item }}",
              "loop": "{{ packages | default([]) }}"}]

    assert used_names(tasks) == {"package", "release", "item", "packages"}


def test_plain_strings_give_nothing():
    assert used_names([{"name": "Stop the service", "shell": "systemctl stop x"}]) \
        == set()


@pytest.mark.parametrize("key", ["when", "failed_when", "changed_when", "until"])
def test_conditions_are_bare_expressions(key):
    tasks = [{key: "step | int == 2 and (enabled | bool) and result is success"}]

    assert used_names(tasks) == {"step", "enabled", "result"}


def test_a_list_of_conditions_and_a_templated_one():
    tasks = [{"when": ["first is defined", "{{ second }}"]}]

    assert used_names(tasks) == {"first", "second"}


def test_variables_bound_in_the_template_are_not_read():
    tasks = [{"debug": {"msg": "{% for h in hosts %}{% set n = h %}{{ n }}{% endfor %}"}}]

    assert used_names(tasks) == {"hosts"}


def test_a_template_that_does_not_parse_reads_nothing():
    """Ansible fails on it before it reads anything; prepare goes on."""
    tasks = [{"shell": "docker ps --format '{{.Names}}'", "when": "ok ) (",
              "name": "{{ kept }}"}]

    assert used_names(tasks) == {"kept"}


def test_select_vars_keeps_named_and_withholds_secrets():
    available = {"a": 1, "admin_password": "x", "b": 2, "unused": 3}

    selected, withheld = select_vars(available, {"a", "b", "admin_password"})

    assert selected == {"a": 1, "b": 2}
    assert withheld == ["admin_password"]

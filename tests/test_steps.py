"""Step binding: which upgrade steps a TripleO task runs at."""

from __future__ import annotations

import pytest

from composable_upgrades.model.steps import STEP_RANGES, StepBinding, bind, is_never, task_tags

ALL_STEPS = range(0, 6)


@pytest.mark.parametrize("when, step", [
    ("step|int == 1", 1),
    ("step|int == 0", 0),
    ("step|int == 5", 5),
    ("(step|int)==2", 2),
    ("(step|int) == 3", 3),
    ("(step | int) == 1", 1),
    ("( step | int ) == 4", 4),
    ("step == 2", 2),
    ("step==3", 3),
    ("step|int==4", 4),
    ("  step|int   ==   5  ", 5),
    ("step|int == 2\n", 2),
])
def test_when_binds_one_step(when, step):
    binding = bind({"name": "t", "when": when})

    assert binding == StepBinding((step,), "when")
    assert [s for s in ALL_STEPS if binding.runs_at(s)] == [step]


@pytest.mark.parametrize("when, steps", [
    (["step|int == 3", "upgrade_leapp_enabled"], (3,)),
    (["upgrade_leapp_enabled | bool", "step|int == 1"], (1,)),
    (["container_cli == 'podman'", "(step|int) == 2",
      "'mysql' in enabled_services"], (2,)),
    (["step|int == 1", "not ansible_check_mode"], (1,)),
    (["step|int == 4", True], (4,)),
    ("step|int == 1 or step|int == 3", (1, 3)),
    ("step|int == 3 and cinder_volume_short_node_names | length > 1", (3,)),
])
def test_when_with_other_conditions(when, steps):
    binding = bind({"name": "t", "when": when})

    assert binding.steps == steps
    assert binding.source == "when"
    assert [s for s in ALL_STEPS if binding.runs_at(s)] == list(steps)


@pytest.mark.parametrize("when", [True, False, [True], [False, True]])
def test_boolean_when_does_not_bind(when):
    binding = bind({"name": "t", "when": when})

    assert binding == StepBinding(None, "none")
    assert all(binding.runs_at(s) for s in ALL_STEPS)


@pytest.mark.parametrize("when", [
    "upgrade_leapp_enabled",
    ["'mysql' in enabled_services", "container_cli == 'podman'"],
    "step|int >= 3",  # not an equality: tripleo-common runs it every step
    [],
    "",
])
def test_when_without_step_equality_runs_every_step(when):
    binding = bind({"name": "t", "when": when})

    assert binding.steps is None
    assert binding.source == "none"
    assert all(binding.runs_at(s) for s in ALL_STEPS)


@pytest.mark.parametrize("tags, steps", [
    ("step3", (3,)),
    (["step3"], (3,)),
    (["step1", "step3"], (1, 3)),
    (["common", "step2"], (2,)),
    (["step0", "never", "system_upgrade"], (0,)),
    ("step4,validation", (4,)),
])
def test_spec_tags_bind_steps(tags, steps):
    binding = bind({"name": "t", "tags": tags})

    assert binding.steps == steps
    assert binding.source == "tags"
    assert [s for s in ALL_STEPS if binding.runs_at(s)] == list(steps)


@pytest.mark.parametrize("tags", [
    "steps3", "step", "upgrade_step3", "step3a", ["mystep2"], ["validation"],
])
def test_tags_that_are_not_step_tags_do_not_bind(tags):
    binding = bind({"name": "t", "tags": tags})

    assert binding.steps is None


def test_when_wins_over_tags():
    binding = bind({"name": "t", "when": "step|int == 2", "tags": ["step4"]})

    assert binding == StepBinding((2,), "when")


def test_tags_bind_when_the_when_has_no_step():
    binding = bind({"name": "t", "when": "foo | bool", "tags": "step5"})

    assert binding == StepBinding((5,), "tags")


def test_boolean_when_with_step_tag_binds_by_tag():
    binding = bind({"name": "t", "when": True, "tags": "step3"})

    assert binding == StepBinding((3,), "tags")


def test_no_step_runs_at_every_step():
    binding = bind({"name": "Ensure something", "command": "true"})

    assert binding == StepBinding(None, "none")
    assert all(binding.runs_at(s) for s in range(0, 10))


def test_block_binding_comes_from_the_block_itself():
    task = {"name": "b", "when": "step|int == 2",
            "block": [{"name": "inner", "when": "step|int == 4",
                       "debug": {"msg": "x"}}]}

    assert bind(task).steps == (2,)


@pytest.mark.parametrize("tags, never", [
    ("never", True),
    (["never"], True),
    (["never", "system_upgrade"], True),
    (["system_upgrade_cleanup", "never"], True),
    ("never,system_upgrade_transfer_data", True),
    (None, False),
    ([], False),
    ("system_upgrade", False),
    (["nevermind"], False),
    (["not_never", "step2"], False),
])
def test_never_detection(tags, never):
    task = {"name": "t"}
    if tags is not None:
        task["tags"] = tags

    assert is_never(task) is never


def test_never_does_not_change_the_binding():
    task = {"name": "t", "when": "step|int == 1", "tags": ["never", "system_upgrade"]}

    assert bind(task).steps == (1,)
    assert is_never(task)


@pytest.mark.parametrize("tags, expected", [
    (None, ()),
    ("a", ("a",)),
    ("a, b", ("a", "b")),
    (["a", "b"], ("a", "b")),
    ([1, "b"], ("1", "b")),
])
def test_task_tags(tags, expected):
    assert task_tags({"tags": tags} if tags is not None else {}) == expected


def test_step_ranges_are_the_tht_ones():
    assert list(STEP_RANGES["upgrade_tasks"]) == [0, 1, 2, 3, 4, 5]
    assert list(STEP_RANGES["post_upgrade_tasks"]) == [0, 1, 2, 3]
    assert list(STEP_RANGES["external_upgrade_tasks"]) == [0, 1, 2]

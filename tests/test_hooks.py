"""Hooks around batches: the hooks file, the runner's order, failures, resume.

The policy (which hook runs at which boundary, on a resume too) is checked
with Python callables and the in-memory executor; then hook playbooks run
for real with ansible-playbook around real ansible-runner steps on the mini
fleet, their order read from the records of the sandbox tasks and of the
hooks.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.run.hooks import Hooks
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.request import plan_run
from composable_upgrades.run.stage_runner import run_request
from composable_upgrades.state.journal import Journal
from tests.fake_executor import FakeExecutor
from tests.helpers import journaled_run
from tests.test_execute import COMPUTES, mini  # noqa: F401  (fixture)
from tests.test_stage_policy import COMPUTES as NODES, PLAN, Sink


def test_the_hooks_file_is_checked(tmp_path: Path) -> None:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "check.yaml").write_text("- hosts: localhost\n  tasks: []\n")
    good = tmp_path / "hooks.yaml"
    good.write_text("pre_stage: [hooks/check.yaml]\npre_batch: [nova-drain]\n"
                    "post_batch: [nova-undrain, hooks/check.yaml]\npost_stage: []\n")
    hooks = Hooks.load(good)
    assert [h.name for h in hooks.at("post_batch")] == ["nova-undrain", "hooks/check.yaml"]
    assert hooks.at("pre_stage")[0].playbook == str(tmp_path / "hooks" / "check.yaml")
    assert hooks.builtins == {"nova-drain", "nova-undrain"}
    for text, reason in (("pre_flight: []\n", "unknown hook point 'pre_flight'"),
                         ("pre_batch: [missing.yaml]\n", "no such playbook 'missing.yaml'"),
                         ("post_batch: [nova-drain]\n", "runs at pre_batch"),
                         ("pre_batch: {a: 1}\n", "expected a list")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(cu.InputFileError, match=reason) as caught:
            Hooks.load(bad)
        assert str(caught.value).startswith(str(bad))


def _calls(log: list[tuple], name: str):
    def hook(stage: str, batch: int, hosts: tuple[str, ...]) -> None:
        log.append((name, batch, hosts))
    hook.__qualname__ = name
    return hook


def _run(tmp_path: Path, hooks, log: list[tuple], **options) -> cu.RunResult:
    executor = FakeExecutor(during=lambda job: log.append(("step", job.batch, job.step)))
    request = plan_run(PLAN, "compute", RunOptions(batch_size=2, force=True, **options))
    request = replace(request, hooks=Hooks.build(None, hooks))
    return run_request(PLAN, request, executor, journal=Journal(str(tmp_path)),
                       sink=Sink())


def test_hooks_run_in_order_around_each_batch(tmp_path: Path) -> None:
    log: list[tuple] = []
    hooks = {p: [_calls(log, p)] for p in
             ("pre_stage", "pre_batch", "post_batch", "post_stage")}
    result = _run(tmp_path, hooks, log)
    assert result.status == "successful"
    first, second = NODES[:2], NODES[2:]
    assert log == [("pre_stage", 0, NODES),
                   ("pre_batch", 1, first), ("step", 1, 3), ("step", 1, 4),
                   ("post_batch", 1, first),
                   ("pre_batch", 2, second), ("step", 2, 3), ("step", 2, 4),
                   ("post_batch", 2, second), ("post_stage", 0, NODES)]
    hook_records = [(r.step, r.batch, r.task, r.status) for r in result.records
                    if r.action == "hook"]
    assert hook_records[0] == ("pre_stage", 0, "hook pre_stage", "ok")
    assert len(hook_records) == 6


def test_a_failed_hook_stops_at_its_boundary_and_resume_runs_it_again(
        tmp_path: Path) -> None:
    log: list[tuple] = []
    broken = {"yes": True}

    def check(stage: str, batch: int, hosts: tuple[str, ...]) -> None:
        log.append(("check", batch))
        if broken["yes"] and batch == 1:
            raise RuntimeError("the API answers 503")

    hooks = {"pre_batch": [_calls(log, "drain")],
             "post_batch": [_calls(log, "undrain"), check]}
    failed = _run(tmp_path, hooks, log)
    assert failed.status == "failed" and not failed.ok
    assert [e[0] for e in log] == ["drain", "step", "step", "undrain", "check"]
    assert failed.notes[-1] == ("hook test_a_failed_hook_stops_at_its_boundary_and_"
                                "resume_runs_it_again.<locals>.check failed at "
                                "post_batch of batch 1 of stage compute: the API "
                                "answers 503")
    hooks_journaled = [(e["point"], e["batch"], e["status"])
                       for e in Journal(str(tmp_path)).entries() if e["kind"] == "hook"]
    assert hooks_journaled[-1] == ("post_batch", 1, "failed")

    broken["yes"] = False
    log.clear()
    resumed = _run(tmp_path, hooks, log, resume=True)
    assert resumed.status == "successful"
    # Only the failed hook of batch 1 again, then batch 2 as usual.
    assert log == [("check", 1), ("drain", 2, NODES[2:]), ("step", 2, 3),
                   ("step", 2, 4), ("undrain", 2, NODES[2:]), ("check", 2)]


def test_a_failed_pre_batch_hook_runs_no_step(tmp_path: Path) -> None:
    log: list[tuple] = []
    result = _run(tmp_path, {"pre_batch": [lambda stage, batch, hosts: False]}, log)
    assert result.status == "failed" and log == []
    assert "failed at pre_batch of batch 1 of stage compute: it returned False" \
        in result.notes[-1]


HOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Record the hook
      ansible.builtin.raw: >-
        echo "{name} {{{{ upgrade_stage }}}} {{{{ upgrade_batch }}}}/{{{{ upgrade_batches }}}}
        {{{{ upgrade_batch_hosts | join(',') }}}}
        {{{{ groups['Compute'] | length }}}}" >> {log}
    - name: Fail when asked
      ansible.builtin.fail:
        msg: "{name} says the cloud is unwell"
      when: (upgrade_batch | int) == 1 and '{flag}' is file
"""


def test_hook_playbooks_run_for_real_around_real_steps(mini, tmp_path: Path) -> None:
    wd, fleet = mini
    log, flag = tmp_path / "hooks.log", tmp_path / "broken"
    folder = tmp_path / "ops" / "hooks"
    folder.mkdir(parents=True)
    for name in ("pre_stage", "pre_batch", "post_batch", "post_stage"):
        (folder / f"{name}.yaml").write_text(HOOK.format(
            name=name, log=log, flag=flag if name == "post_batch" else "/nonexistent"))
    hooks_file = tmp_path / "ops" / "hooks.yaml"
    hooks_file.write_text("pre_stage: [hooks/pre_stage.yaml]\n"
                          "pre_batch: [hooks/pre_batch.yaml]\n"
                          "post_batch: [hooks/post_batch.yaml]\n"
                          "post_stage: [hooks/post_stage.yaml]\n")
    assert journaled_run(wd, "controlplane").ok   # for the guard
    preview = cu.run_stage(wd, "compute", batch_size=2, hooks_file=str(hooks_file),
                           dry_run=True).preview
    assert preview.hooks[:3] == (("pre_stage", 0, "hooks/pre_stage.yaml"),
                                 ("pre_batch", 1, "hooks/pre_batch.yaml"),
                                 ("post_batch", 1, "hooks/post_batch.yaml"))
    flag.write_text("")
    failed = cu.run_stage(wd, "compute", batch_size=2, hooks_file=str(hooks_file))
    assert failed.status == "failed"
    assert failed.notes[-1].startswith(
        "hook hooks/post_batch.yaml failed at post_batch of batch 1 of stage "
        "compute: ansible-playbook exited 2: ")
    assert "post_batch says the cloud is unwell" in failed.notes[-1]
    first = ",".join(failed.batches[0])
    assert log.read_text().splitlines() == [
        f"pre_stage compute 0/2 {','.join(COMPUTES)} 4",
        f"pre_batch compute 1/2 {first} 4",
        f"post_batch compute 1/2 {first} 4"]
    # In the records: pre hooks, the sandbox tasks of batch 1, the post hook.
    order = [("hook", r.step) if r.action == "hook" else ("task", r.batch)
             for r in failed.records]
    collapsed = [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k]
    assert collapsed == [("hook", "pre_stage"), ("hook", "pre_batch"), ("task", 1),
                         ("hook", "post_batch")]
    assert {r.batch for r in failed.records if r.action != "hook"} == {1}
    script = Path(failed.reproduce_script).read_text()
    assert "# hook hooks/post_batch.yaml at post_batch of batch 1 of stage compute" \
        in script
    history = cu.History(wd).run(failed.run_id)
    assert [r.status for r in history.records if r.action == "hook"] == [
        "ok", "ok", "failed"]

    # Resumed without --hooks-file: the same hooks; the failed one again.
    flag.unlink()
    log.write_text("")
    resumed = cu.run_stage(wd, "compute", resume=True)
    assert resumed.status == "successful", resumed.notes
    second = ",".join(resumed.batches[1])
    assert resumed.batches == failed.batches
    assert log.read_text().splitlines() == [
        f"post_batch compute 1/2 {first} 4",
        f"pre_batch compute 2/2 {second} 4",
        f"post_batch compute 2/2 {second} 4",
        f"post_stage compute 0/2 {','.join(COMPUTES)} 4"]
    entries = Journal(str(wd / "composable-upgrade" / "state")).entries()
    assert [e["hooks_file"] for e in entries if e["kind"] == "start"][-2:] == [
        str(hooks_file)] * 2
    assert json.loads(json.dumps(resumed.options))["hooks_file"] == str(hooks_file)


def test_ctrl_c_during_a_hook_stops_before_the_next_batch(tmp_path: Path) -> None:
    log: list[tuple] = []
    stop = cu.StopRequest()
    executor = FakeExecutor(during=lambda job: log.append(("step", job.batch, job.step)))
    request = plan_run(PLAN, "compute", RunOptions(batch_size=2, force=True))
    request = replace(request, hooks=Hooks.build(None, {
        "post_batch": [lambda stage, batch, hosts: stop()]}))
    result = run_request(PLAN, request, executor, journal=Journal(str(tmp_path)),
                         sink=Sink(), stop=stop)
    assert result.status == "interrupted"
    assert {b for _, b, _ in log} == {1}
    assert result.notes[-1] == "stopped on request before batch 2"

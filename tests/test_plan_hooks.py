"""Hooks kept in the plan (``prepare --hooks-file``), and converge's reboots
one host at a time between the batch hooks.

What the plan keeps (files, bytes, plan.json) and what a plan diff says is
read from the plan folder; which hooks a run takes is read from dry runs;
the hooks then run for real around real steps on the mini fleet, and the
demo's converge reboots its computes only once its drain hook has emptied
them. The policy of converge's reboots is checked with Python callables and
the in-memory executor.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

import composable_upgrades as cu
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.prepared import (
    PlannedHost, PlannedPlay, PlannedRole, PlannedStep, PreparedPlan, PreparedStage)
from composable_upgrades.run.hooks import Hooks
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.request import plan_run
from composable_upgrades.run.stage_runner import run_request
from composable_upgrades.state.journal import Journal
from composable_upgrades.views.diff import HOOK_ADDED, HOOK_CHANGED, diff_rows
from tests.fake_executor import FakeExecutor
from tests.helpers import cli, error_line, operator_env, tree
from tests.test_execute import MINI, mini  # noqa: F401  (fixture)
from tests.test_stage_policy import Sink

HOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Record the hook   # {marker}
      ansible.builtin.raw: >-
        echo "{name} {{{{ upgrade_stage }}}} {{{{ upgrade_batch }}}}
        {{{{ upgrade_batch_hosts | join(',') }}}} {{{{ playbook_dir }}}}" >> {log}
    - name: Fail when asked
      ansible.builtin.fail:
        msg: "{name} says no"
      when: "'{flag}' is file"
"""


def _ops(tmp_path: Path, log: Path, flag: Path) -> Path:
    """A hooks file with a playbook beside it, one outside its folder and a
    built-in; the playbooks log each call to ``log``, and fail while ``flag``
    exists."""
    (tmp_path / "ops" / "hooks").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    # CRLF line ends and non-ASCII text: kept byte for byte.
    check = HOOK.format(name="check", log=log, flag=flag, marker="vérifié")
    (tmp_path / "ops" / "hooks" / "check.yaml").write_bytes(
        check.replace("\n", "\r\n").encode("utf-8"))
    (tmp_path / "shared" / "notify.yaml").write_text(
        HOOK.format(name="notify", log=log, flag="/nonexistent", marker="n"))
    hooks = tmp_path / "ops" / "hooks.yaml"
    hooks.write_text("pre_stage: [hooks/check.yaml]\npre_batch: [nova-drain]\n"
                     "post_batch: [hooks/check.yaml, ../shared/notify.yaml]\n")
    return hooks


def test_prepare_keeps_the_hooks_file_and_its_playbooks(mini, tmp_path: Path) -> None:
    wd, fleet = mini
    hooks = _ops(tmp_path, tmp_path / "log", tmp_path / "flag")
    plan_dir = wd / "composable-upgrade" / "plan"
    before = json.loads((plan_dir / "plan.json").read_text())
    result = cu.prepare(cu.StackOutputs.from_file(MINI), wd, fleet=fleet,
                        hooks_file=hooks)
    assert result.changed
    kept = plan_dir / "hooks"
    assert sorted(p.name for p in kept.iterdir()) == [
        "01-check.yaml", "02-notify.yaml", "hooks.yaml"]
    assert (kept / "01-check.yaml").read_bytes() == \
        (tmp_path / "ops" / "hooks" / "check.yaml").read_bytes()
    assert (kept / "02-notify.yaml").read_bytes() == \
        (tmp_path / "shared" / "notify.yaml").read_bytes()
    # The kept hooks file names the copies beside it, and loads as a hooks file.
    assert yaml.safe_load((kept / "hooks.yaml").read_text()) == {
        "pre_stage": ["01-check.yaml"], "pre_batch": ["nova-drain"],
        "post_batch": ["01-check.yaml", "02-notify.yaml"], "post_stage": []}
    assert Hooks.load(kept / "hooks.yaml").at("post_batch")[1].playbook == \
        str(kept / "02-notify.yaml")
    # plan.json gains a key and changes nothing else.
    data = json.loads((plan_dir / "plan.json").read_text())
    assert {k: v for k, v in data.items() if k != "hooks"} == before
    assert data["hooks"]["source"] == str(hooks)
    assert data["hooks"]["file"] == "hooks/hooks.yaml"
    assert [h["name"] for h in data["hooks"]["points"]["post_batch"]] == [
        "hooks/check.yaml", "../shared/notify.yaml"]
    # Typed, read once.
    plan = cu.Workdir.at(wd).load_plan()
    assert plan.hooks is not None and plan.hooks.source == str(hooks)
    assert [(h.point, h.name, h.playbook, h.builtin) for h in plan.hooks.hooks()] == [
        ("pre_stage", "hooks/check.yaml", "hooks/01-check.yaml", None),
        ("pre_batch", "nova-drain", None, "nova-drain"),
        ("post_batch", "hooks/check.yaml", "hooks/01-check.yaml", None),
        ("post_batch", "../shared/notify.yaml", "hooks/02-notify.yaml", None)]
    # The same hooks file gives the same plan; the stages keep their hashes.
    again = cu.prepare(cu.StackOutputs.from_file(MINI), wd, fleet=fleet,
                       hooks_file=hooks)
    assert not again.changed and again.prepared.sha256 == result.prepared.sha256
    assert [s["sha256"] for s in data["stages"]] == [s["sha256"] for s in before["stages"]]
    assert [r.arguments.get("hooks_file") for r in cu.History(wd).run_rows()
            if r.kind == "prepare"][-2:] == [str(hooks)] * 2


def test_a_bad_hooks_file_at_prepare_is_one_line_and_keeps_the_plan(
        mini, tmp_path: Path) -> None:
    wd, fleet = mini
    plan_dir = wd / "composable-upgrade" / "plan"
    kept = tree(plan_dir)
    bad = tmp_path / "bad-hooks.yaml"
    for text, reason in (("pre_batch: [missing.yaml]\n", "no such playbook"),
                         ("post_batch: [nova-drain]\n", "runs at pre_batch"),
                         ("pre_flight: []\n", "unknown hook point")):
        bad.write_text(text)
        with pytest.raises(cu.InputFileError, match=reason) as caught:
            cu.prepare(cu.StackOutputs.from_file(MINI), wd, fleet=fleet,
                       hooks_file=bad)
        assert str(caught.value).startswith(f"{bad}: ")
        assert tree(plan_dir) == kept
    shown = cli(["overcloud", "upgrade", "prepare", "--outputs-file", str(MINI),
                 "--working-dir", str(wd), "--fleet", str(fleet.root),
                 "--hooks-file", str(bad)], env=operator_env(tmp_path))
    assert error_line(shown) == (f"{bad}: unknown hook point 'pre_flight' (points: "
                                 "pre_stage, pre_batch, post_batch, post_stage)")
    assert tree(plan_dir) == kept


def test_plan_diff_shows_a_changed_hook_playbook_and_a_new_hook(
        mini, tmp_path: Path) -> None:
    wd, fleet = mini
    hooks = _ops(tmp_path, tmp_path / "log", tmp_path / "flag")
    cu.prepare(cu.StackOutputs.from_file(MINI), wd, fleet=fleet, hooks_file=hooks)
    notify = tmp_path / "shared" / "notify.yaml"
    notify.write_text(notify.read_text() + "# now it pages someone\n")
    hooks.write_text(hooks.read_text() + "post_stage: [hooks/check.yaml]\n")
    cu.prepare(cu.StackOutputs.from_file(MINI), wd, fleet=fleet, hooks_file=hooks)
    workdir = cu.Workdir.at(wd)
    _, rows = diff_rows(workdir.load_plan("previous"), workdir.load_plan())
    assert rows == [
        (HOOK_CHANGED, None, None, None, "../shared/notify.yaml", "post_batch",
         "post_batch", None),
        (HOOK_ADDED, None, None, None, "hooks/check.yaml", None, "post_stage", None)]
    shown = cli(["overcloud", "upgrade", "plan", "diff", "--working-dir", str(wd),
                 "-f", "value", "-c", "Change", "-c", "Task"], env=operator_env(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["hook playbook changed ../shared/notify.yaml",
                                         "hook added hooks/check.yaml"]


def test_runs_take_the_plans_hooks_unless_given_their_own(mini, tmp_path: Path) -> None:
    wd, fleet = mini
    log, flag = tmp_path / "hooks.log", tmp_path / "flag"
    hooks = _ops(tmp_path, log, flag)
    cli_prepared = cli(["overcloud", "upgrade", "prepare", "--outputs-file", str(MINI),
                        "--working-dir", str(wd), "--fleet", str(fleet.root),
                        "--hooks-file", str(hooks)], env=operator_env(tmp_path))
    assert cli_prepared.returncode == 0, cli_prepared.stderr
    assert cu.run_stage(wd, "controlplane").ok  # its hooks: the plan's
    log.write_text("")
    preview = cu.run_stage(wd, "compute", batch_size=2, dry_run=True).preview
    assert preview.hooks[:4] == (("pre_stage", 0, "hooks/check.yaml"),
                                 ("pre_batch", 1, "nova-drain"),
                                 ("post_batch", 1, "hooks/check.yaml"),
                                 ("post_batch", 1, "../shared/notify.yaml"))
    own = tmp_path / "own.yaml"
    own.write_text("post_stage: [shared/notify.yaml]\n")
    assert cu.run_stage(wd, "compute", batch_size=2, hooks_file=str(own),
                        dry_run=True).preview.hooks == (
        ("post_stage", 0, "shared/notify.yaml"),)
    # The originals change after prepare: the run uses the plan's copies.
    (tmp_path / "ops" / "hooks" / "check.yaml").write_text("not a playbook: [")
    flag.write_text("")
    failed = cu.run_stage(wd, "compute", batch_size=2)
    assert failed.status == "failed"
    assert failed.notes[-1].startswith("hook hooks/check.yaml failed at pre_stage "
                                       "of stage compute: ansible-playbook exited 2")
    kept = wd / "composable-upgrade" / "plan" / "hooks"
    assert log.read_text().split()[-1] == str(kept)
    flag.unlink()
    log.write_text("")
    resumed = cu.run_stage(wd, "compute", resume=True)  # the plan's hooks again
    assert resumed.status == "successful", resumed.notes
    calls = [line.split()[:3] for line in log.read_text().splitlines()]
    assert calls == [["check", "compute", "0"],
                     ["check", "compute", "1"], ["notify", "compute", "1"],
                     ["check", "compute", "2"], ["notify", "compute", "2"]]
    assert [r.task for r in resumed.records if r.action == "hook"][1] == "hook nova-drain"


# -- converge: reboots one host at a time, between the batch hooks --------------

HOSTS = ("c0", "c1", "n0", "n1")


def _converge_plan() -> PreparedPlan:
    def step(number: int | str, serial: int | None) -> PlannedStep:
        return PlannedStep(number=number, playbook=f"converge_{number}.yaml",
                           plays=(PlannedPlay("Overcloud", HOSTS, serial, (), ()),))

    stage = PreparedStage(name="converge", kind=StageKind.CONVERGE,
                          task_kind="post_upgrade_tasks", roles=("Overcloud",),
                          hosts=HOSTS, playbook="converge.yaml", sha256="sha-converge",
                          steps=(step("rpc_unpin", None), step("reboot", 1)))
    return PreparedPlan(
        stack="overcloud", variant=None, sha256="plan-sha", stages=(stage,),
        roles={"Overcloud": PlannedRole("Overcloud", None, (), HOSTS)},
        hosts={h: PlannedHost(h, "Overcloud", None, None) for h in HOSTS})


def _converge(tmp_path: Path, log: list, hooks, executor: FakeExecutor | None = None,
              **options) -> cu.RunResult:
    plan = _converge_plan()
    executor = executor or FakeExecutor()
    executor.during = lambda job: log.append(("step", job.step, job.hosts))
    request = plan_run(plan, "converge", RunOptions(force=True, **options))
    request = replace(request, hooks=Hooks.build(None, hooks))
    return run_request(plan, request, executor, journal=Journal(str(tmp_path)),
                       sink=Sink())


def _logging(log: list, name: str, fail: set | None = None):
    def hook(stage: str, batch: int, hosts: tuple[str, ...]) -> None:
        log.append((name, batch, hosts))
        if fail and (name, hosts) in fail:
            raise RuntimeError(f"{hosts[0]} still holds instances")
    hook.__qualname__ = name
    return hook


def test_converge_reboots_one_host_at_a_time_between_the_batch_hooks(
        tmp_path: Path) -> None:
    log: list[tuple] = []
    hooks = {p: [_logging(log, p)] for p in
             ("pre_stage", "pre_batch", "post_batch", "post_stage")}
    result = _converge(tmp_path, log, hooks)
    assert result.status == "successful", result.notes
    expected = [("pre_stage", 0, HOSTS), ("step", "rpc_unpin", HOSTS)]
    for number, host in enumerate(HOSTS, start=1):
        expected += [("pre_batch", number, (host,)), ("step", "reboot", (host,)),
                     ("post_batch", number, (host,))]
    assert log == expected + [("post_stage", 0, HOSTS)]
    # Without batch hooks: one call, the play's serial: 1 takes them in turn.
    log.clear()
    plain = _converge(tmp_path / "plain", log, {"pre_stage": [_logging(log, "pre_stage")]})
    assert plain.status == "successful"
    assert log[-1] == ("step", "reboot", HOSTS)


def test_a_failed_hook_stops_converge_at_that_host_and_resume_goes_on(
        tmp_path: Path) -> None:
    log: list[tuple] = []
    fail = {("pre_batch", ("n0",))}
    hooks = {"pre_batch": [_logging(log, "pre_batch", fail)],
             "post_batch": [_logging(log, "post_batch")]}
    failed = _converge(tmp_path, log, hooks)
    assert failed.status == "failed" and not failed.ok
    assert failed.notes[-1] == ("hook pre_batch failed at pre_batch of the reboot of "
                                "n0 (host 3 of 4) of stage converge: n0 still "
                                "holds instances")
    assert [e for e in log if e[0] == "step"][-1] == ("step", "reboot", ("c1",))
    assert ("step", "reboot", ("n0",)) not in log
    fail.clear()
    log.clear()
    resumed = _converge(tmp_path, log, hooks, resume=True)
    assert resumed.status == "successful", resumed.notes
    # The failed hook again, n0's reboot, then n1 as usual; c0 and c1 done.
    assert log == [("pre_batch", 3, ("n0",)), ("step", "reboot", ("n0",)),
                   ("post_batch", 3, ("n0",)), ("pre_batch", 4, ("n1",)),
                   ("step", "reboot", ("n1",)), ("post_batch", 4, ("n1",))]


def test_a_failed_reboot_stops_converge_at_that_host(tmp_path: Path) -> None:
    log: list[tuple] = []
    hooks = {"pre_batch": [_logging(log, "pre_batch")]}
    result = _converge(tmp_path, log, hooks,
                       FakeExecutor({("reboot", "c1"): "failed"}))
    assert result.status == "failed" and result.failed_hosts == ["c1"]
    assert result.notes[-1] == "stopped at step reboot of c1 (host 2 of 4): it failed"
    assert log[-1] == ("step", "reboot", ("c1",))


def test_the_dry_run_of_converge_shows_a_call_and_hooks_per_host(
        mini, tmp_path: Path) -> None:
    wd, _ = mini
    own = tmp_path / "hooks.yaml"
    own.write_text("pre_batch: [nova-drain]\npost_batch: [nova-undrain]\n")
    preview = cu.converge(wd, hooks_file=str(own), force=True, dry_run=True).preview
    reboots = [c for c in preview.commands if c.step == "reboot"]
    hosts = cu.Workdir.at(wd).load_plan().stage("converge").step("reboot").hosts
    assert sorted(len(c.hosts) for c in reboots) == [1] * len(hosts)
    assert preview.hooks[:2] == (("pre_batch", 1, "nova-drain"),
                                 ("post_batch", 1, "nova-undrain"))
    assert len(preview.hooks) == 2 * len(hosts)


def _moves(fleet: cu.Fleet) -> int:
    """How many instance moves the demo's drain hook has logged."""
    return len((Path(fleet.host_root("undercloud")) / "instances.log")
               .read_text().splitlines())


@pytest.fixture(scope="module")
def upgraded_demo(tmp_path_factory):
    """The demo, its drain hook kept in the plan, two instances per compute,
    upgraded (computes in batches of 3, each drained first): a function that
    puts that cloud back in place and returns (working dir, fleet, moves
    logged so far). Each test converges its own copy at the same paths."""
    from composable_upgrades.rehearsal.demo import demo_hooks_path

    root = tmp_path_factory.mktemp("upgraded-demo")
    live, kept = root / "live", root / "kept"
    fleet = cu.Fleet.at(live / "fleet")
    wd = live / "wd"
    prepared = cu.prepare(cu.demo_outputs(), wd, fleet=fleet, hooks_file=demo_hooks_path(),
                          dependencies_file=cu.demo_dependencies_path())
    cu.seed_fleet(fleet, prepared.prepared, instances=2)
    assert cu.run_stage(wd, "controlplane").ok
    assert cu.run_stage(wd, "compute", batch_size=3).ok  # drained by the plan's hook
    assert cu.check_invariants(fleet, cu.Workdir.at(wd).load_plan(), "compute").ok
    moved = _moves(fleet)
    assert moved
    shutil.copytree(live, kept, symlinks=True)

    def restore() -> tuple[Path, cu.Fleet, int]:
        shutil.rmtree(live)
        shutil.copytree(kept, live, symlinks=True)
        return wd, fleet, moved
    return restore


def test_the_demo_drains_each_compute_before_converge_reboots_it(upgraded_demo) -> None:
    from composable_upgrades.rehearsal.invariants import INSTANCES

    wd, fleet, moved = upgraded_demo()
    plan = cu.Workdir.at(wd).load_plan()
    result = cu.converge(wd)
    assert result.status == "successful", result.notes
    converge = plan.stage("converge")
    hosts = [h for h in converge.hosts if h in converge.step("reboot").hosts]
    assert len(hosts) == 10
    # Each host drained, then rebooted, one host after the other.
    order = [("hook", r.batch) if r.action == "hook" else ("reboot", r.host)
             for r in result.records if r.step in ("reboot", "pre_batch")]
    collapsed = [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k]
    assert collapsed == [step for number, host in enumerate(hosts, start=1)
                         for step in (("hook", number), ("reboot", host))]
    assert {r.step for r in result.records if r.action == "hook"} == {"pre_batch"}
    report = cu.check_invariants(fleet, plan, "converge")
    check = next(c for c in report.checks if c.name == INSTANCES)
    assert report.ok and check.ok, report
    assert _moves(fleet) > moved  # computes drained again


def test_the_instance_invariant_catches_a_reboot_with_instances(
        upgraded_demo, tmp_path: Path) -> None:
    from composable_upgrades.rehearsal.invariants import INSTANCES

    wd, fleet, moved = upgraded_demo()
    # Drained for the upgrade, not for the reboots: a hooks file of its own,
    # with no hook, replaces the plan's.
    none = tmp_path / "no-hooks.yaml"
    none.write_text("{}\n")
    assert cu.converge(wd, hooks_file=str(none)).status == "successful"
    assert _moves(fleet) == moved
    report = cu.check_invariants(fleet, cu.Workdir.at(wd).load_plan(), "converge")
    check = next(c for c in report.checks if c.name == INSTANCES)
    # Each compute rebooted with the instances the drains had left on it.
    assert not check.ok and "nova_compute upgrade" not in check.detail
    assert "on overcloud-novacompute-0 during its reboot" in check.detail

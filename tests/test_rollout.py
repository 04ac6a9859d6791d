"""Batch schedules, ``--batch-by``, pauses and confirmations.

The schedule arithmetic and the runner's pauses run without Ansible; the
demo's compute stage then runs for real on a local fleet with
``--batch-size 1,2,50%`` and ``--pause-after 1``, and ``--resume`` finishes
it with the same batches.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.run.limits import batch_sizes, batches_of, stage_batches
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.request import plan_run
from composable_upgrades.run.stage_runner import run_request
from composable_upgrades.state.journal import Journal
from tests.fake_executor import FakeExecutor
from tests.helpers import cli, error_line, journaled_run, operator_env
from tests.test_stage_policy import COMPUTES, PLAN, Sink, ran

DEMO_COMPUTE = ["overcloud-novacompute-0", "overcloud-novacompute-1",
                "overcloud-novacompute-2", "overcloud-novacompute-3",
                "overcloud-novacompute-4", "overcloud-novacompute-5",
                "overcloud-cephstorage-0"]


@pytest.mark.parametrize("size, total, sizes", [
    ("1,5,20%", 30, [1, 5, 6, 6, 6, 6]),        # 20% of 30, the last repeating
    ([1, 5, "20%"], 30, [1, 5, 6, 6, 6, 6]),    # as Ansible's serial list
    ("1,2,50%", 7, [1, 2, 4]),                  # 50% of 7 rounds up
    ("1,2,50%", 2, [1, 1]),                     # the last batch is what is left
    ("10%", 3, [1, 1, 1]),                      # at least one host
    ("2", 5, [2, 2, 1]),
    (None, 5, [5]),
])
def test_a_schedule_gives_batch_sizes(size, total, sizes) -> None:
    assert batch_sizes(total, size) == sizes


@pytest.mark.parametrize("size, reason", [
    ("1,0,20%", "above 0"), ("1,,2", "comma-separated"), ("1,150%", "at most 100%"),
    ("one,2", "comma-separated list")])
def test_bad_schedules_are_refused_naming_the_option(size, reason) -> None:
    with pytest.raises(cu.OptionError, match=reason) as caught:
        batch_sizes(10, size)
    assert str(caught.value).startswith("--batch-size ")


def test_a_schedule_still_spreads_roles() -> None:
    hosts = [f"c{i}" for i in range(6)] + ["s0", "s1"]
    roles = {h: "Compute" if h.startswith("c") else "Ceph" for h in hosts}
    batches = batches_of(hosts, "1,2,50%", roles)
    assert [len(b) for b in batches] == [1, 2, 4, 1]
    # Each Ceph host in a different batch, none in the canary.
    assert [sum(h.startswith("s") for h in b) for b in batches] in (
        [0, 1, 1, 0], [0, 1, 0, 1], [0, 0, 1, 1])


def test_pause_after_stops_cleanly_after_the_canary(tmp_path: Path) -> None:
    executor, events = FakeExecutor(), []
    request = plan_run(PLAN, "compute", RunOptions(batch_size="1,2,50%",
                                                   pause_after=1, force=True))
    assert [len(b) for b in request.batches] == [1, 2, 1]
    result = run_request(PLAN, request, executor, journal=Journal(str(tmp_path)),
                         sink=Sink(), progress=events.append)
    # Paused, not successful: the stage is not done; ok: nothing failed.
    assert result.ok and result.status == "paused"
    assert {j.batch for j in executor.jobs} == {1}
    assert any("paused after 1 batch (--pause-after 1); 3 of 4" in n
               or "paused after 1 batch (--pause-after 1); 2 of 3" in n
               for n in result.notes), result.notes
    assert any(e.kind == "note" and "--resume" in (e.message or "") for e in events)
    # Resumed with the same batches: batch 1 is done, the others run.
    resumed = run_request(PLAN, plan_run(PLAN, "compute", RunOptions(
        batch_size="1,2,50%", resume=True, force=True)), executor,
        journal=Journal(str(tmp_path)), sink=Sink())
    assert resumed.status == "successful"
    assert [b for b, _, _ in ran(executor)][2:] == [2, 2, 3, 3]


def test_confirm_each_asks_before_every_batch_after_the_first(tmp_path: Path) -> None:
    asked: list[tuple[int, tuple[str, ...]]] = []

    def confirm(batch: int, hosts: tuple[str, ...]) -> bool:
        asked.append((batch, hosts))
        time.sleep(0.1)  # the operator reads the hosts
        return batch < 3

    executor = FakeExecutor()
    request = plan_run(PLAN, "compute", RunOptions(batch_size=1, force=True))
    result = run_request(PLAN, request, executor, journal=Journal(str(tmp_path)),
                         sink=Sink(), confirm=confirm)
    assert [b for b, _ in asked] == [2, 3]
    assert {j.batch for j in executor.jobs} == {1, 2}
    assert result.status == "paused" and result.ok
    assert any("stopped before batch 3: not confirmed" in n for n in result.notes)
    # The run keeps how long it waited for the answers (not its own time).
    assert 0.2 <= result.waited < result.duration


def test_options_of_batched_stages_are_refused_elsewhere() -> None:
    for option, flag in (({"pause_after": 1}, "--pause-after"),
                         ({"batch_by": "role"}, "--batch-by")):
        with pytest.raises(cu.StageError, match=flag):
            plan_run(PLAN, "controlplane", RunOptions(**option))
    with pytest.raises(cu.OptionError, match="--pause-after 0"):
        plan_run(PLAN, "compute", RunOptions(pause_after=0))


def _demo(tmp_path: Path, *, instances: int = 0) -> tuple[Path, cu.Fleet]:
    """The demo prepared onto a seeded fleet (``instances`` per compute)."""
    fleet = cu.Fleet.at(tmp_path / "fleet")
    wd = tmp_path / "wd"
    prepared = cu.prepare(cu.demo_outputs(), wd, fleet=fleet,
                          dependencies_file=cu.demo_dependencies_path())
    cu.seed_fleet(fleet, prepared.prepared, instances=instances)
    return wd, fleet


def test_batch_by_keeps_values_apart(tmp_path: Path) -> None:
    wd, _ = _demo(tmp_path)
    plan = cu.Workdir.at(wd).load_plan()
    hosts = plan.stage("compute").hosts
    by_role = stage_batches(plan, hosts, "50%", batch_by="role")
    # No batch mixes Compute and CephStorage; 50% of 7 is 4, cut where a role ends.
    assert by_role == [tuple(DEMO_COMPUTE[:4]), tuple(DEMO_COMPUTE[4:6]),
                       (DEMO_COMPUTE[6],)]
    assert stage_batches(plan, hosts, "50%", batch_by="tripleo_role_name") == by_role
    # Without --batch-by, the 50% batches mix the roles.
    assert any("overcloud-cephstorage-0" in b and len(b) > 1
               for b in stage_batches(plan, hosts, "50%"))
    with pytest.raises(cu.OptionError, match="--batch-by rack: no host"):
        stage_batches(plan, hosts, 2, batch_by="rack")


def test_cli_schedule_dry_run_and_pause(tmp_path: Path) -> None:
    wd, fleet = _demo(tmp_path)
    assert journaled_run(wd, "controlplane").ok   # the guard lets compute run
    where = ["--working-dir", str(wd), "--fleet", str(fleet.root)]
    shown = cli(["overcloud", "upgrade", "run", "--stage", "compute", "--batch-size",
                 "1,2,50%", "--dry-run", "-f", "value", *where], env=operator_env(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert [len(line.split(" ", 1)[1].split(", ")) for line in
            shown.stdout.splitlines()] == [1, 2, 4]
    paused = cli(["overcloud", "upgrade", "run", "--stage", "compute", "--batch-size",
                  "1,2,50%", "--pause-after", "1", "-y", *where], env=operator_env(tmp_path))
    assert paused.returncode == 0, paused.stderr
    assert "paused after 1 batch (--pause-after 1); 2 of 3 batches left" in paused.stderr
    assert "stage compute: paused in " in paused.stderr
    assert "next: openstack overcloud upgrade run --stage compute --resume" \
        in paused.stderr
    shown = cli(["overcloud", "upgrade", "status", "-f", "value", "-c", "Stage",
                 "-c", "Last run", *where[:2]], env=operator_env(tmp_path))
    assert "(paused, " in dict(line.split(" ", 1) for line in
                               shown.stdout.splitlines())["compute"], shown.stdout
    history = cli(["overcloud", "upgrade", "history", "-f", "value", "-c", "Stage",
                   "-c", "Status", *where[:2]], env=operator_env(tmp_path))
    assert history.stdout.splitlines()[-1] == "compute paused", history.stdout
    refused = cli(["overcloud", "upgrade", "run", "--stage", "compute",
                   "--batch-size", "1,0", "-y", *where], env=operator_env(tmp_path))
    assert refused.returncode != 0
    assert error_line(refused).startswith("--batch-size '0': expected a number")


def test_canary_then_batches_with_the_demo_drain_keeps_instances_safe(
        tmp_path: Path) -> None:
    """The demo's compute stage for real, its controlplane upgraded first:
    a canary of one host with the drain hooks, a pause, then a resume that
    keeps the schedule; the invariants hold and no instance was lost."""
    from composable_upgrades.rehearsal.demo import demo_hooks_path
    from composable_upgrades.rehearsal.invariants import INSTANCES

    wd, fleet = _demo(tmp_path, instances=2)
    assert cu.run_stage(wd, "controlplane").status == "successful"
    preview = cu.run_stage(wd, "compute", batch_size="1,2,50%", dry_run=True).preview
    assert [len(b) for b in preview.batches] == [1, 2, 4]

    canary = cu.run_stage(wd, "compute", batch_size="1,2,50%", pause_after=1,
                          hooks_file=demo_hooks_path())
    assert canary.ok and canary.status == "paused", canary.notes
    assert {r.batch for r in canary.records} == {1}
    canary_host = {r.host for r in canary.records if r.action != "hook"}
    assert canary_host == set(preview.batches[0])
    status = {s.stage: s for s in cu.status(wd)}["compute"]
    assert status.state == "partly done" and len(status.done) == 1
    assert status.last_status == "paused"
    # The history has the pause, as it has any status.
    rows = {r.run_id: r for r in cu.History(wd).run_rows()}
    assert rows[canary.run_id].status == "paused"
    assert cu.History(wd).run(canary.run_id).status == "paused"

    # A dry run of the resume shows the same schedule; the resume keeps it.
    again = cu.run_stage(wd, "compute", resume=True, dry_run=True).preview
    assert again.batches == preview.batches
    rest = cu.run_stage(wd, "compute", resume=True)
    assert rest.status == "successful", rest.notes
    assert {s.stage: s for s in cu.status(wd)}["compute"].last_status == "successful"
    assert rest.batches == list(preview.batches)
    # The hooks file given to the canary run is the resume's too.
    assert [r.step for r in rest.records if r.action == "hook"] == ["pre_batch"] * 2
    by_batch: dict[int, set[str]] = {}
    for record in rest.records:
        if record.action != "hook":
            by_batch.setdefault(record.batch, set()).add(record.host)
    assert {b: len(h) for b, h in by_batch.items()} == {2: 2, 3: 4}
    assert not canary_host & set().union(*by_batch.values())
    assert {s.stage: s for s in cu.status(wd)}["compute"].state == "finished"
    report = cu.check_invariants(fleet, cu.Workdir.at(wd).load_plan(), "compute")
    check = next(c for c in report.checks if c.name == INSTANCES)
    assert report.ok and check.ok, report
    assert check.detail.startswith("12 instances, ")
    moves = (Path(fleet.host_root("undercloud")) / "instances.log").read_text()
    assert len(moves.splitlines()) >= 12  # every instance moved at least once


def test_the_instance_invariant_catches_an_undrained_compute(tmp_path: Path) -> None:
    from composable_upgrades.rehearsal.invariants import INSTANCES

    wd, fleet = _demo(tmp_path, instances=2)
    # The check reads the compute hosts' own events: the controlplane's
    # progress is enough for the guard.
    assert journaled_run(wd, "controlplane").ok
    assert cu.run_stage(wd, "compute", batch_size=3).status == "successful"
    report = cu.check_invariants(fleet, cu.Workdir.at(wd).load_plan(), "compute")
    check = next(c for c in report.checks if c.name == INSTANCES)
    assert not report.ok and not check.ok
    assert "overcloud-novacompute-0-vm0 on overcloud-novacompute-0 during its " \
           "nova_compute upgrade" in check.detail
    # An instance lost is named too.
    (Path(fleet.host_root("overcloud-novacompute-1")) / "instances"
     / "overcloud-novacompute-1-vm1").unlink()
    again = cu.check_invariants(fleet, cu.Workdir.at(wd).load_plan(), "compute")
    assert "overcloud-novacompute-1-vm1 is gone" in next(
        c for c in again.checks if c.name == INSTANCES).detail

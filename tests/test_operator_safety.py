"""What keeps an operator from repeating or skipping upgrade work by accident:
finished stages need --rerun, the external stage runs by tags, a resume never
trusts a step that was cut short, batches spread each role.

The policy is checked with the in-memory executor (tests/fake_executor.py)
behind the same journaling the real runs use; --rerun after a real converge,
through the CLI, is part of test_cli_run.py's walk through the mini fleet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.run.executor import StepJob
from composable_upgrades.run.limits import batches_of
from composable_upgrades.run.options import RunOptions
from composable_upgrades.errors import UnfinishedWorkError
from composable_upgrades.run.request import check_progress, plan_run
from composable_upgrades.run.stage_runner import run_request
from composable_upgrades.state.journal import Journal
from tests.fake_executor import FakeExecutor
from tests.helpers import error_line, upgrade
from tests.test_cli_run import prepared  # noqa: F401  (the fixture)
from tests.test_stage_policy import CONTROLLERS, COMPUTES, PLAN, Sink

MINI = Path(__file__).parent / "fixtures" / "mini-outputs.yaml"


def checked(tmp_path: Path, stage: str, **options):
    """The request of a run, checked against the journal as run_stage does."""
    return check_progress(PLAN, Journal(str(tmp_path)),
                          plan_run(PLAN, stage, RunOptions(**options)))


def run(tmp_path: Path, stage: str, executor: FakeExecutor | None = None, *,
        stop: cu.StopRequest | None = None, **options) -> cu.RunResult:
    """A checked run, journaled as run_stage journals it."""
    journal = Journal(str(tmp_path))
    request = checked(tmp_path, stage, **options)
    if request.reset:
        journal.record_reset(request.stage.sha256, "r", stage, request.reset,
                             request.steps, rerun=request.options.rerun)
    executor = executor or FakeExecutor()
    return run_request(PLAN, request, executor,
                       journal=journal, sink=Sink(), stop=stop)


def ran(executor: FakeExecutor) -> list[tuple]:
    return [(j.step, j.hosts) for j in executor.jobs]


def cut_short_at(step: int | str, stop: cu.StopRequest):
    """A ``during`` hook: two stop requests when ``step`` starts."""
    def during(job: StepJob) -> None:
        if job.step == step:
            stop()
            stop()
    return during


# -- 1. finished work needs --rerun ----------------------------------------------

def test_a_finished_stage_is_refused_unless_rerun(tmp_path: Path) -> None:
    run(tmp_path, "controlplane")
    with pytest.raises(cu.StageError, match="stage 'controlplane' is finished on the "
                       "2 hosts selected; pass --rerun to run it again"):
        checked(tmp_path, "controlplane")
    with pytest.raises(cu.StageError, match="finished on c1; pass --rerun"):
        checked(tmp_path, "controlplane", limit="c1")
    again = FakeExecutor()
    assert run(tmp_path, "controlplane", again, rerun=True, limit="c1").ok
    assert ran(again) == [(s, ("c1",)) for s in (0, 1, 2, 3)]
    with pytest.raises(cu.OptionError, match="--rerun: cannot be used with --resume"):
        checked(tmp_path, "controlplane", resume=True, rerun=True)


def test_after_converge_an_upgrade_stage_needs_rerun(tmp_path: Path) -> None:
    run(tmp_path, "controlplane")
    run(tmp_path, "compute", limit="n0,n1")
    run(tmp_path, "converge", force=True)
    # n2 and n3 never ran compute: still refused once converge has run
    with pytest.raises(cu.StageError, match="converge has run: stage 'compute' .*"
                       "pass --rerun"):
        checked(tmp_path, "compute", limit="n2")
    with pytest.raises(cu.StageError, match="converge has run"):
        checked(tmp_path, "controlplane", steps=[3])
    with pytest.raises(cu.StageError, match="stage 'converge' is finished"):
        checked(tmp_path, "converge", force=True)
    assert run(tmp_path, "compute", rerun=True, limit="n0", force=True).ok
    progress = Journal(str(tmp_path)).progress(PLAN.stages)["compute"]
    assert [e["hosts"] for e in progress.reruns] == [["n0"]]


# -- 3. resume: only finished units count; a step cut short is unfinished --------

def test_a_step_cut_short_is_unfinished_on_every_host_it_touched(tmp_path: Path
                                                                   ) -> None:
    run(tmp_path, "controlplane")
    stop = cu.StopRequest()
    cut = run(tmp_path, "controlplane", FakeExecutor(during=cut_short_at(2, stop)),
              stop=stop, rerun=True)
    assert cut.status == "interrupted"
    progress = Journal(str(tmp_path)).progress(PLAN.stages)["controlplane"]
    assert progress.finished == {(s, h) for s in (0, 1) for h in CONTROLLERS}
    assert progress.pending == list(CONTROLLERS)
    # An older run finished steps 2 and 3; the resume trusts none of it.
    resumed = FakeExecutor()
    again = run(tmp_path, "controlplane", resumed, resume=True)
    assert again.ok
    assert ran(resumed) == [(2, CONTROLLERS), (3, CONTROLLERS)]
    # The resume says that the step cut short is replayed.
    assert "resuming: step 2 began and never ended on 2 hosts; they run again " \
        "from their first task" in again.notes


def test_unfinished_work_needs_resume_or_restart(tmp_path: Path) -> None:
    run(tmp_path, "controlplane")
    stop = cu.StopRequest()
    run(tmp_path, "compute", FakeExecutor(during=cut_short_at(4, stop)), stop=stop,
        limit="n0,n1")
    with pytest.raises(UnfinishedWorkError, match="stage 'compute' has unfinished "
                       "progress on 2 of the 4 hosts selected .2 partly done.; pass "
                       "--resume to continue it, or --restart to start it again"):
        checked(tmp_path, "compute")
    # hosts the cut-short run never touched are free to start
    assert checked(tmp_path, "compute", limit="n2,n3").hosts == ("n2", "n3")
    restarted = FakeExecutor()
    assert run(tmp_path, "compute", restarted, restart=True, limit="n0").ok
    assert ran(restarted) == [(3, ("n0",)), (4, ("n0",))]
    # n0 finished: a restart of the stage leaves it out, starts n1 again
    request = checked(tmp_path, "compute", restart=True)
    assert (request.hosts, request.reset) == (("n1", "n2", "n3"), ("n1",))


# -- 2. the external stage runs by tags -------------------------------------------

def test_the_external_stage_needs_tags(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    cu.prepare(_demo(), wd)
    plan = cu.Workdir.at(wd).load_plan()
    with pytest.raises(cu.StageError) as refused:
        plan_run(plan, "external")
    assert str(refused.value) == ("stage 'external' runs by tags: pass --tags with "
                                  "some of container_image_prepare, online_upgrade")
    assert plan_run(plan, "external", RunOptions(tags="online_upgrade")).steps
    done = upgrade("run", "--stage", "external", "-y", "--working-dir", str(wd),
                   home=tmp_path)
    assert "pass --tags with some of container_image_prepare" in error_line(done)


def _demo() -> cu.StackOutputs:
    from composable_upgrades.rehearsal.demo import demo_outputs
    return demo_outputs()


# -- 4. batches spread each role; sizes are exactly --batch-size's ----------------

def test_batches_spread_each_role_in_proportion() -> None:
    hosts = ([f"net-{i}" for i in range(2)] + [f"ceph-{i}" for i in range(7)]
             + [f"cmp-{i}" for i in range(7)])
    roles = {h: h.split("-")[0] for h in hosts}
    batches = batches_of(hosts, "25%", roles)
    assert [len(b) for b in batches] == [4, 4, 4, 4]
    assert sorted(h for b in batches for h in b) == sorted(hosts)
    for role, most in (("net", 1), ("ceph", 2), ("cmp", 2)):
        counts = [sum(roles[h] == role for h in b) for b in batches]
        assert max(counts) == most, (role, counts)
    assert [len(b) for b in batches_of(hosts, 5, roles)] == [5, 5, 5, 1]
    assert batches_of(hosts[:3], None, roles) == [tuple(hosts[:3])]


@pytest.mark.parametrize("size, reason", [
    (0, "--batch-size 0: expected a number of hosts .N. or a percentage .N%. above 0; leave "
        "--batch-size out"),
    ("0", "above 0"), ("0%", "above 0"),
    ("150%", "'150%': a percentage of the hosts is at most 100%"),
])
def test_unusable_batch_sizes_are_refused(size, reason) -> None:
    with pytest.raises(cu.OptionError, match=reason):
        plan_run(PLAN, "compute", RunOptions(batch_size=size))


# -- the CLI: checks before the prompt, batches in it, nothing written -----------

def test_checks_come_before_the_prompt_and_refusals_write_nothing(prepared,
                                                                  tmp_path: Path
                                                                  ) -> None:
    wd, _ = prepared
    before = sorted(p.name for p in (wd / "composable-upgrade").iterdir())
    # no -y and no terminal: the stage guard answers, not the prompt
    refused = upgrade("run", "--stage", "compute", "--working-dir", str(wd),
                      home=tmp_path)
    assert "'controlplane' is not finished" in error_line(refused)
    for verb in (["run", "--stage", "compute"], ["converge"]):
        done = upgrade(*verb, "-y", "--working-dir", str(wd), home=tmp_path)
        assert done.returncode == 1
    assert sorted(p.name for p in (wd / "composable-upgrade").iterdir()) == before
    asked = upgrade("run", "--stage", "compute", "--force", "--batch-size", "50%",
                    "--working-dir", str(wd), home=tmp_path)
    lines = asked.stderr.splitlines()
    assert lines[:2] == ["batch 1: overcloud-novacompute-0, overcloud-novacompute-1",
                         "batch 2: overcloud-novacompute-2, overcloud-novacompute-3"]
    assert lines[2] == ("Upgrade stage compute of stack overcloud (4 hosts in 2 "
                        "batches; steps 3, 4; a rehearsal on the fleet)? Not asking "
                        "without a terminal: pass -y")
    one = upgrade("run", "--stage", "controlplane", "--dry-run", "--working-dir",
                  str(wd), home=tmp_path)
    assert "dry run: 1 batch of 2 hosts would run; nothing was run" in one.stderr


# -- outputs files ------------------------------------------------------------------

def test_outputs_files_a_table_or_an_unfinished_stack_are_refused(tmp_path: Path
                                                                   ) -> None:
    import yaml

    outputs = yaml.safe_load(MINI.read_text())
    items = [{"output_key": k, "output_value": v} for k, v in outputs.items()]
    shown = tmp_path / "show.json"
    wd = tmp_path / "wd"
    for status in ("UPDATE_FAILED", "UPDATE_IN_PROGRESS"):
        shown.write_text(json.dumps({"stack_name": "cloud1", "stack_status": status,
                                     "outputs": items}))
        refused = upgrade("prepare", "--outputs-file", str(shown), "--working-dir",
                          str(wd), home=tmp_path)
        assert error_line(refused) == (f"{shown}: stack cloud1 is {status}; pass "
                                       "--force to use its outputs anyway")
        assert not wd.exists()
    forced = upgrade("prepare", "--outputs-file", str(shown), "--force", home=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "Upgrade plan for stack cloud1 written to" in forced.stderr
    assert (tmp_path / "overcloud-deploy" / "cloud1" / "composable-upgrade").is_dir()
    assert forced.stderr.splitlines()[-1] == (
        "next: openstack overcloud upgrade run --stage controlplane --stack cloud1")
    table = tmp_path / "table.txt"
    table.write_text("+------+-------+\n| Field | Value |\n+------+-------+\n")
    done = upgrade("prepare", "--outputs-file", str(table), "--working-dir", str(wd),
                   home=tmp_path)
    assert error_line(done) == f"{table}: a table; expected JSON or YAML; use `-f json`"


def test_history_without_a_plan_says_so(tmp_path: Path) -> None:
    done = upgrade("history", "--working-dir", str(tmp_path / "nothing"), home=tmp_path)
    assert "no upgrade plan here" in error_line(done)


def test_a_rehearsal_in_the_way_of_the_real_prepare_is_named(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    outputs = cu.demo_outputs()
    cu.prepare(outputs, wd, fleet=cu.Fleet.at(tmp_path / "fleet"),
               dependencies_file=cu.demo_dependencies_path())
    journal = Journal(str(wd / "composable-upgrade" / "state"))
    plan = cu.Workdir.at(wd).load_plan()
    stage = plan.stage("controlplane")
    journal.record_units(stage.sha256, "r1", stage.name, 1, stage.numbers[0],
                         list(stage.hosts), "ok")
    with pytest.raises(cu.StageError, match=r"the current plan here is a rehearsal "
                       r"on the fleet at .*fleet and stage 'controlplane' has started"
                       r".*pass --force to discard the rehearsal's plan"):
        cu.prepare(outputs, wd, dependencies_file=cu.demo_dependencies_path())

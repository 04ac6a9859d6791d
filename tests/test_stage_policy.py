"""The stage runner's policy, with an in-memory executor: batches and
barriers, max-fail, stops, the stage guard, the journal. No Ansible runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.prepared import (
    PlannedHost, PlannedPlay, PlannedRole, PlannedStep, PreparedPlan, PreparedStage)
from composable_upgrades.run.executor import StepJob
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.request import plan_run
from composable_upgrades.run.stage_runner import run_request
from composable_upgrades.state.journal import Journal
from tests.fake_executor import FakeExecutor

CONTROLLERS = ("c0", "c1")
COMPUTES = ("n0", "n1", "n2", "n3")


def _stage(name: str, kind: StageKind, role: str, hosts: tuple[str, ...],
           steps: tuple[int | str, ...]) -> PreparedStage:
    return PreparedStage(
        name=name, kind=kind, task_kind="upgrade_tasks", roles=(role,), hosts=hosts,
        playbook=f"{name}.yaml", sha256=f"sha-{name}",
        steps=tuple(PlannedStep(number=s, playbook=f"{name}_step{s}.yaml",
                                plays=(PlannedPlay(role, hosts, None, (), ()),))
                    for s in steps))


PLAN = PreparedPlan(
    stack="overcloud", variant=None, sha256="plan-sha",
    stages=(_stage("controlplane", StageKind.CONTROLPLANE, "Controller", CONTROLLERS,
                   (0, 1, 2, 3)),
            _stage("compute", StageKind.BATCHED, "Compute", COMPUTES, (3, 4)),
            _stage("converge", StageKind.CONVERGE, "Controller", CONTROLLERS,
                   ("rpc_unpin",))),
    roles={"Controller": PlannedRole("Controller", "controlplane", (), CONTROLLERS),
           "Compute": PlannedRole("Compute", "compute", (), COMPUTES)},
    hosts={h: PlannedHost(h, "Controller" if h in CONTROLLERS else "Compute", None, None)
           for h in CONTROLLERS + COMPUTES})


class Sink:
    """A record sink that keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.flushes: list[int] = []

    def start_run(self, result: cu.RunResult) -> None:
        self.calls.append(("start", result.status))

    def add(self, record: cu.TaskRecord) -> None:
        self.calls.append(("add", (record.step, record.host, record.status)))

    def flush(self) -> None:
        self.flushes.append(sum(1 for kind, _ in self.calls if kind == "add"))

    def finish_run(self, result: cu.RunResult) -> None:
        self.calls.append(("finish", result.status))


def run(tmp_path: Path, stage: str, executor: FakeExecutor | None = None, *,
        stop: cu.StopRequest | None = None, sink: Sink | None = None,
        progress: list | None = None, **options) -> cu.RunResult:
    return run_request(PLAN, plan_run(PLAN, stage, RunOptions(**options)),
                       executor or FakeExecutor(), journal=Journal(str(tmp_path)),
                       sink=sink or Sink(), stop=stop,
                       progress=None if progress is None else progress.append)


def ran(executor: FakeExecutor) -> list[tuple]:
    return [(j.batch, j.step, j.hosts) for j in executor.jobs]


def units(tmp_path: Path, status: str = "ok") -> list[tuple]:
    return [(e["stage"], e["batch"], e["step"], e["host"])
            for e in Journal(str(tmp_path)).entries()
            if e["kind"] == "unit" and e["status"] == status]


def test_batches_run_every_step_one_batch_after_the_other(tmp_path: Path) -> None:
    executor, events, sink = FakeExecutor(), [], Sink()
    result = run(tmp_path, "compute", executor, batch_size=2, force=True,
                 progress=events, sink=sink)
    assert result.status == "successful"
    assert ran(executor) == [(1, 3, COMPUTES[:2]), (1, 4, COMPUTES[:2]),
                             (2, 3, COMPUTES[2:]), (2, 4, COMPUTES[2:])]
    assert executor.jobs[0].playbook == "compute_step3.yaml"
    assert [(s.batch, s.step, s.failed) for s in result.steps] == [
        (1, 3, ()), (1, 4, ()), (2, 3, ()), (2, 4, ())]
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("step_start") == kinds.count("step_end") == 4
    assert kinds.count("task") == 8
    assert events[-1].units_done == events[-1].units_total == 8
    assert events[0].message == "4 hosts, 2 batches, steps 3, 4"
    # Records go to the result and, as they come, to the sink.
    assert len(result.records) == 8
    assert [c[0] for c in sink.calls] == ["start"] + ["add"] * 8 + ["finish"]


def test_max_fail_percentage_counts_per_batch(tmp_path: Path) -> None:
    fault = {(3, "n0"): "failed"}
    tolerant = FakeExecutor(fault)
    result = run(tmp_path, "compute", tolerant, batch_size=2,
                 max_fail_percentage=50, force=True)
    # 1 of 2 hosts of batch 1 failed: 50% is not more than 50%: go on,
    # without the failed host.
    assert result.status == "failed" and result.failed_hosts == ["n0"]
    assert ran(tolerant) == [(1, 3, ("n0", "n1")), (1, 4, ("n1",)),
                             (2, 3, ("n2", "n3")), (2, 4, ("n2", "n3"))]
    assert ("compute", 1, 3, "n0") in units(tmp_path, "failed")
    assert ("compute", 1, 3, "n1") in units(tmp_path)   # batched: others finish

    strict = FakeExecutor(fault)
    result = run(tmp_path / "strict", "compute", strict, batch_size=2, force=True)
    assert result.status == "failed"
    assert ran(strict) == [(1, 3, ("n0", "n1"))]
    assert result.notes[-1] == ("stopped after step 3 of batch 1: 1 of 2 hosts "
                                "failed (more than --max-fail-percentage 0)")


def test_any_failure_stops_the_controlplane(tmp_path: Path) -> None:
    events = []
    result = run(tmp_path, "controlplane", FakeExecutor({(2, "c1"): "unreachable"}),
                 progress=events)
    assert result.status == "failed" and result.failed_hosts == ["c1"]
    assert [s.step for s in result.steps] == [0, 1, 2]
    assert result.notes == ["stopped after step 2 of batch 1: 1 of 2 hosts failed"]
    # any_errors_fatal: the failure stopped every host, none finished step 2.
    assert [u for u in units(tmp_path) if u[2] == 2] == []
    assert units(tmp_path, "failed") == [("controlplane", 1, 2, "c1")]
    [done] = [e for e in events if e.kind == "host_done"]
    assert (done.host, done.step, done.status, done.message) == (
        "c1", 2, "unreachable", "it broke")


def test_resume_skips_finished_units(tmp_path: Path) -> None:
    run(tmp_path, "controlplane", FakeExecutor({(2, "c1"): "failed"}))
    again = FakeExecutor()
    resumed = run(tmp_path, "controlplane", again, resume=True)
    assert resumed.status == "successful"
    assert ran(again) == [(1, 2, CONTROLLERS), (1, 3, CONTROLLERS)]
    assert resumed.options["resume"] is True
    finished = FakeExecutor()
    nothing = run(tmp_path, "controlplane", finished, resume=True)
    assert finished.jobs == [] and nothing.steps == []
    assert nothing.status == "successful"


def test_first_stop_request_finishes_the_step(tmp_path: Path) -> None:
    stop = cu.StopRequest()
    executor = FakeExecutor(during=lambda job: job.step == 1 and stop())
    events: list = []
    result = run(tmp_path, "controlplane", executor, stop=stop, progress=events)
    assert result.status == "interrupted"
    assert [j.step for j in executor.jobs] == [0, 1]
    assert result.notes == ["stopped on request after step 1 of batch 1"]
    # Acknowledged while the step ran, once.
    said = [e.message for e in events if e.kind == "stop_requested"]
    assert said == ["stopping after step 1 of batch 1; Ctrl-C again to stop now"]
    kinds = [e.kind for e in events]
    second = [i for i, kind in enumerate(kinds) if kind == "step_start"][1]
    assert second < kinds.index("stop_requested") < kinds.index("step_end", second)
    assert {u[2] for u in units(tmp_path)} == {0, 1}


def test_second_stop_request_cuts_the_step_short(tmp_path: Path) -> None:
    stop = cu.StopRequest()

    def twice(job: StepJob) -> None:
        if job.step == 1:
            stop()
            stop()

    events: list = []
    result = run(tmp_path, "controlplane", FakeExecutor(during=twice), stop=stop,
                 progress=events)
    assert result.status == "interrupted"
    assert [e.message for e in events if e.kind == "stop_requested"] == [
        "stopping now, during step 1 of batch 1"]
    assert result.steps[-1].interrupted and result.steps[-1].failed == ()
    assert {u[2] for u in units(tmp_path)} == {0}   # step 1 not recorded


def test_guard_refuses_unfinished_stages_unless_forced(tmp_path: Path) -> None:
    with pytest.raises(cu.StageNotFinishedError, match="'controlplane' is not "
                       "finished .2 hosts pending: c0, c1.; finish it before "
                       "stage 'compute'"):
        run(tmp_path, "compute")
    with pytest.raises(cu.StageNotFinishedError, match="before converge"):
        run(tmp_path, "converge")
    forced = run(tmp_path, "converge", force=True)
    assert forced.notes == ["forced: stage controlplane unfinished (2 hosts pending); "
                            "stage compute unfinished (4 hosts pending)"]
    run(tmp_path, "controlplane")
    assert run(tmp_path, "compute").notes == []


def test_the_journal_has_each_unit_and_each_run(tmp_path: Path) -> None:
    result = run(tmp_path, "controlplane", FakeExecutor(), tags="mytag")
    entries = Journal(str(tmp_path)).entries()
    unit_entries = [e for e in entries if e["kind"] == "unit"]
    assert {(e["step"], e["host"]) for e in unit_entries} == {
        (s, h) for s in (0, 1, 2, 3) for h in CONTROLLERS}
    assert {(e["sha"], e["run"], e["tags"]) for e in unit_entries} == {
        ("sha-controlplane", result.run_id, "mytag")}
    [line] = [e for e in entries if e["kind"] == "run"]
    assert (line["run"], line["status"], line["hosts"], line["failed"]) == (
        result.run_id, "successful", 2, [])
    # A run by tags ran only some tasks: the stage is not finished.
    progress = Journal(str(tmp_path)).progress(PLAN.stages)["controlplane"]
    assert progress.pending == list(CONTROLLERS)


def test_a_step_that_fails_before_any_host_fails_them_all(tmp_path: Path) -> None:
    result = run(tmp_path, "controlplane", FakeExecutor(exits={1: 4}))
    assert result.status == "failed" and result.failed_hosts == list(CONTROLLERS)
    assert result.steps[-1].rc == 4
    assert result.notes[0] == ("ansible-playbook exited 4 at step 1 of batch 1: "
                               "ERROR! step 1 is broken")


def test_an_executor_error_ends_the_run_as_failed(tmp_path: Path) -> None:
    def broken(job: StepJob) -> None:
        raise cu.RunError("cannot run", stage=job.stage, step=job.step)

    sink = Sink()
    with pytest.raises(cu.RunError) as raised:
        run(tmp_path, "controlplane", FakeExecutor(during=broken), sink=sink)
    assert (raised.value.stage, raised.value.step, raised.value.rc) == (
        "controlplane", 0, None)
    assert sink.calls == [("start", "nothing to do"), ("finish", "failed")]
    [line] = [e for e in Journal(str(tmp_path)).entries() if e["kind"] == "run"]
    assert line["status"] == "failed"


def test_plan_run_checks_options_and_chooses_steps() -> None:
    by_book = plan_run(PLAN, "controlplane", RunOptions(
        playbooks=["controlplane_step3.yaml", "x/controlplane_step1.yaml"]))
    assert by_book.steps == (1, 3) and by_book.options.as_dict()["steps"] == [3, 1]
    assert plan_run(PLAN, "controlplane", RunOptions(playbooks=["all"])).steps == (
        0, 1, 2, 3)
    assert plan_run(PLAN, "controlplane").options.as_dict()["steps"] is None
    cases = [
        (RunOptions(steps=[9]), cu.StageError, "has no step 9 .steps: 0, 1, 2, 3."),
        (RunOptions(playbooks=["nope.yaml"]), cu.StageError,
         "--playbook nope.yaml: not a step playbook"),
        (RunOptions(batch_size=2), cu.StageError, "--batch-size applies to the batched"),
        (RunOptions(limit="n0"), cu.StageError, "--limit n0 matches no host"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            plan_run(PLAN, "controlplane", options)
    with pytest.raises(cu.OptionError, match="must be between 0 and 100"):
        plan_run(PLAN, "compute", RunOptions(max_fail_percentage=-1))


def test_run_options_by_name_or_object() -> None:
    base = RunOptions(tags="a", forks=3)
    assert RunOptions.build(base, forks=5) == RunOptions(tags="a", forks=5)
    assert RunOptions.build(batch_size=2) == RunOptions(batch_size=2)
    with pytest.raises(TypeError, match="unexpected run option 'batchsize'"):
        RunOptions.build(batchsize=2)
    with pytest.raises(TypeError):
        cu.converge("nowhere", batchsize=2)


def test_converge_takes_run_stage_keywords() -> None:
    import inspect

    ours = inspect.signature(cu.converge).parameters
    theirs = inspect.signature(cu.run_stage).parameters
    assert list(ours) == [name for name in theirs if name != "stage"]
    assert all((ours[n].kind, ours[n].default, ours[n].annotation)
               == (theirs[n].kind, theirs[n].default, theirs[n].annotation)
               for n in ours)


def test_a_steps_records_reach_the_history_before_its_units_the_journal(
        tmp_path: Path) -> None:
    sink = Sink()
    journal_sizes: list[int] = []

    def during(job) -> None:
        journal_sizes.append(len(units(tmp_path)))
    result = run(tmp_path, "compute", FakeExecutor(during=during), sink=sink,
                 batch_size=2, force=True)
    assert result.status == "successful"
    # One flush per step, after that step's records (two hosts each)...
    assert sink.flushes == [2, 4, 6, 8]
    # ...and the journal counts a step's units only after it: before each
    # step ran, it had the units of the steps before.
    assert journal_sizes == [0, 2, 4, 6]

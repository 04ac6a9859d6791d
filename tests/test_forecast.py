"""Forecasts of the maintenance window (views/forecast.py, ``upgrade estimate``).

The model's arithmetic is checked on synthetic histories written to a real
run history; one small real rehearsal (five compute-stage hosts whose tasks
sleep known per-host lengths, the makespan benchmark's overcloud) checks
what it learns from real records, the CLI and the comparison with a run.
"""

from __future__ import annotations

import json
import re
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy
import pytest

import composable_upgrades as cu
from composable_upgrades.state.results import RunResult, TaskRecord
from composable_upgrades.state.store import HistoryStore
from composable_upgrades.views.forecast_learning import (
    START_WINDOW, Learned, learn, starting_together)
from composable_upgrades.views.forecast_model import predict
from tests.helpers import cli, error_line

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import makespan  # noqa: E402  (the sleeping overcloud, shared with the benchmarks)


def _plan(tmp_path: Path, compute_hosts: int, name: str = "wd") -> tuple[str, cu.PreparedPlan]:
    wd = str(tmp_path / name)
    return wd, cu.prepare(makespan.outputs(compute_hosts), wd).prepared


def _uniform(role_hosts: int = 8) -> dict:
    """Per-host durations 2.0-2.9 s for both compute-stage roles at every step."""
    values = tuple(2.0 + i / 10 for i in range(role_hosts))
    return {(role, step): {f"{role} task": values}
            for role in ("Compute", "CephStorage") for step in makespan.STEPS}


def _record(host: str, role: str, step: int, start: float, duration: float,
            batch: int = 1) -> TaskRecord:
    return TaskRecord(run_id="run-1", stage="compute", batch=batch, step=step,
                      host=host, role=role, task=f"{role} step {step}", service=None,
                      action="command", status="ok", start=start, duration=duration)


# -- the model, on synthetic data --------------------------------------------

def test_a_big_batch_waits_for_the_slowest_of_its_hosts(tmp_path):
    learned = Learned(durations=_uniform(), contention=0.0)
    small = predict(_plan(tmp_path, 5, "small")[1], learned, stage="compute", forks=100)
    big = predict(_plan(tmp_path, 50, "big")[1], learned, stage="compute", forks=100)
    mean = sum(2.0 + i / 10 for i in range(8)) / 8
    # Every host at once (100 forks): each step is the slowest of its hosts,
    # so 50 hosts take longer than 5, and both more than the mean host.
    for s_small, s_big in zip(small.steps, big.steps):
        assert mean < s_small.p50 < s_big.p50 <= s_big.p90
    # The slowest of 50 draws passes the slowest value seen (2.7 s): the
    # recorded values are smoothed, not only resampled.
    assert max(s.p90 for s in big.steps) > 2.7
    assert big.stages[0].hosts == 50 and big.stages[0].observations == 6 * 2 * 8


def test_few_forks_queue_the_hosts(tmp_path):
    wd, plan = _plan(tmp_path, 50)
    learned = Learned(durations=_uniform(), contention=0.0)
    wide = predict(plan, learned, stage="compute", forks=100)
    narrow = predict(plan, learned, stage="compute", forks=5)
    # Five forks for 50 hosts: about ten hosts after one another per step.
    assert narrow.stages[0].p50 > 6 * wide.stages[0].p50


def test_batches_run_one_after_the_other(tmp_path):
    wd, plan = _plan(tmp_path, 50)
    learned = Learned(durations=_uniform(), contention=0.0, startup=(1.0,),
                      barrier=(0.5,), ending=(0.25,))
    one = predict(plan, learned, stage="compute", forks=100)
    tenth = predict(plan, learned, stage="compute", batch_size="10%", forks=100)
    assert [len(b) for b in tenth.batch_hosts["compute"]] == [5] * 10
    assert len(tenth.batches) == 10 and len(tenth.steps) == 60
    assert len(one.batches) == 1 and len(one.steps) == 6
    # Each step of each batch pays its overhead: 1 s at the first, 0.5 s after.
    for batch in tenth.batches:
        steps = [s for s in tenth.steps if s.batch == batch.batch]
        assert steps[0].p50 > 1.0 + 2.0 and all(s.p50 > 2.5 for s in steps[1:])
    assert tenth.stages[0].p50 > 5 * one.stages[0].p50
    # A command's start-up is paid once per run, however many batches.
    started = predict(plan, replace(learned, command=(2.0,)), stage="compute",
                      batch_size="10%", forks=100)
    assert started.stages[0].p50 == pytest.approx(tenth.stages[0].p50 + 2.0)
    assert started.batches == tenth.batches
    # Steps start where the one before ends (the Gantt chart's bars).
    frame = tenth.to_frame()
    assert frame["start"].tolist() == pytest.approx(
        [0.0, *frame["p50"].cumsum().tolist()[:-1]])


def test_what_few_observations_leave_uncertain_weighs_on_every_batch(tmp_path):
    """Three observations a task say little about its distribution: the
    forecast's spread over ten batches is not the spread of ten independent
    batches (about the square root of 10 times one batch's), since each draw
    takes one distribution, resampled from the observations, for all ten."""
    _, plan = _plan(tmp_path, 50)
    few = {key: {task: (2.0, 2.33, 2.67) for task in tasks}
           for key, tasks in _uniform().items()}
    tenth = predict(plan, Learned(durations=few, contention=0.0), stage="compute",
                    batch_size="10%", forks=100)
    batch, stage = tenth.batches[0], tenth.stages[0]
    assert stage.p90 - stage.p50 > 4 * (batch.p90 - batch.p50)


def test_starting_together_counts_the_tasks_that_start_within_the_window():
    starts = numpy.array([0.0, 0.1, 0.2, 3.0, 3.6, 9.0])
    assert starting_together(starts).tolist() == [3, 3, 3, 1, 1, 1]
    rows = numpy.vstack([starts, starts + numpy.arange(6) * START_WINDOW * 3])
    assert starting_together(rows).tolist() == [[3, 3, 3, 1, 1, 1], [1] * 6]


def test_contention_weighs_on_a_burst_more_than_on_a_queue(tmp_path):
    """8 compute-stage hosts on 8 forks all start at once; 40 go through the
    forks in rounds, and after the first round they start apart. So
    contention makes the burst dearer by a larger share than the queue."""
    plans = {n: _plan(tmp_path, n, f"h{n}")[1] for n in (8, 40)}

    def ratio(contention: float) -> float:
        learned = Learned(durations=_uniform(), contention=contention)
        p50 = {n: predict(plan, learned, stage="compute", forks=8).stages[0].p50
               for n, plan in plans.items()}
        return p50[40] / p50[8]

    assert ratio(0.2) < ratio(0.0)


@pytest.mark.parametrize("late", [110.0, 101.0], ids=["after", "while-they-run"])
def test_contention_is_learned_from_tasks_starting_together(tmp_path, late):
    """Four hosts start together and take 3.0 s; one starts alone and takes
    2.4 s: 0.2 s per task starting with it, 2.2 s of its own. Alone also when
    it starts while the four run (the CPUs are contended while tasks start;
    counted by tasks running at once, it would seem the most contended)."""
    wd, _ = _plan(tmp_path, 5)
    records = [_record(f"compute-{i}", "Compute", 0, 100.0, 3.0) for i in range(4)]
    records.append(_record("compute-9", "Compute", 0, late, 2.4))
    result = RunResult(run_id="run-1", stage="compute", plan_sha="x",
                       status="successful", started=99.0, ended=late + 3.0,
                       batches=[tuple(r.host for r in records)], requested=97.5)
    with HistoryStore.at(wd) as store:
        store.start_run(result)
        for r in records:
            store.add(r)
        store.finish_run(result)
    learned = learn([cu.History(wd)])
    assert learned.contention == pytest.approx(0.2)
    assert learned.durations[("Compute", 0)]["Compute step 0"] == pytest.approx(
        (2.2,) * 5)
    assert learned.observations("Compute", 0) == 5
    assert learned.startup and learned.ending == (pytest.approx(0.6),)
    # The command started 1.5 s before the run did.
    assert learned.command == (pytest.approx(1.5),)


def test_a_wait_for_the_operator_is_not_a_batch_start_up(tmp_path):
    """Two batches, the second confirmed after 30 s (``--confirm-each``):
    the first batch's start-up is learned, the second's holds the wait."""
    wd, _ = _plan(tmp_path, 5)
    records = [_record("compute-0", "Compute", 0, 100.0, 2.0),
               _record("compute-1", "Compute", 0, 133.0, 2.0, batch=2)]

    def learned(waited: float) -> Learned:
        result = RunResult(run_id=f"run-{waited:g}", stage="compute", plan_sha="x",
                           status="successful", started=99.0, ended=135.0,
                           batches=[("compute-0",), ("compute-1",)], waited=waited)
        with HistoryStore.at(tmp_path / f"w{waited:g}") as store:
            store.start_run(result)
            for r in records:
                store.add(replace(r, run_id=result.run_id))
            store.finish_run(result)
        return learn([cu.History(tmp_path / f"w{waited:g}")])

    assert learned(30.0).startup == (pytest.approx(1.0),)
    assert learned(0.0).startup == (pytest.approx(1.0), pytest.approx(31.0))


def test_no_history_says_what_is_missing_in_one_line(tmp_path):
    wd, _ = _plan(tmp_path, 5)
    result = cu.forecast(wd, stage="compute")
    stage = result.stages[0]
    assert stage.p50 is None and stage.p90 is None and stage.observations == 0
    assert all(s.p50 is None for s in result.steps)
    assert "\n" not in result.note
    assert result.note.startswith("no recorded duration (no recorded runs) for ")
    assert "Compute steps 0-5" in result.note and "CephStorage steps 0-5" in result.note
    assert result.total()["p50"].isna().all()


def test_batch_size_applies_to_batched_stages_only(tmp_path):
    wd, _ = _plan(tmp_path, 5)
    with pytest.raises(cu.StageError, match="batched stages"):
        cu.forecast(wd, stage="controlplane", batch_size=2)
    with pytest.raises(cu.OptionError):
        cu.forecast(wd, stage="compute", batch_size="lots")
    # Every stage: the batch size splits the batched ones.
    result = cu.forecast(wd, batch_size=2)
    assert {s.stage: len(b) for s, b in ((s, result.batch_hosts[s.stage])
                                         for s in result.stages)}["compute"] == 3


# -- a real rehearsal --------------------------------------------------------

@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory):
    """Five compute-stage hosts (4 Compute, 1 CephStorage) run once."""
    root = tmp_path_factory.mktemp("forecast")
    fleet = cu.Fleet.at(root / "fleet")
    wd = str(root / "wd")
    plan = cu.prepare(makespan.outputs(5), wd, fleet=fleet).prepared
    fleet.create(list(plan.hosts))
    run = cu.run_stage(wd, "compute", force=True)
    assert run.ok, run.notes
    return wd, run


def test_forecast_learns_from_a_rehearsal(rehearsed):
    wd, run = rehearsed
    result = cu.forecast(wd, stage="compute")
    assert result.note == ""
    assert result.learned.runs and result.learned.contention >= 0.0
    steps = result.to_frame()
    assert steps["step"].tolist() == list(makespan.STEPS)
    assert (steps["observations"] == 5).all()
    assert (steps["p50"] <= steps["p90"]).all()
    # Each step waits at least for its slowest sleeping host.
    for row in steps.itertuples():
        slowest = max(makespan.sleep_of(h, row.step) for h in run.batches[0])
        assert row.p50 > slowest
    compared = result.compare(run)
    assert compared["step"].tolist() == [*makespan.STEPS, "total"]
    assert compared["measured"].iloc[-1] == pytest.approx(run.duration)
    assert compared["measured"].iloc[:-1].sum() <= run.duration
    assert set(compared.columns) >= {"p50", "p90", "measured", "error", "within_p90"}
    # The same history and options give the same figures.
    assert cu.forecast(wd, stage="compute").stages == result.stages


def test_what_if_spans_batch_sizes_and_forks(rehearsed):
    wd, _ = rehearsed
    frame = cu.what_if(wd, batch_sizes=[None, "40%", 1], forks=[2, 20])
    assert len(frame) == 6 and set(frame["stage"]) == {"compute"}
    by = {(r.batch_size, r.forks): r for r in frame.itertuples()}
    assert by[("all", 20)].batches == 1 and by[("all", 20)].down_pct == 100.0
    assert by[("40%", 20)].batches == 3 and by[("40%", 20)].down == 2
    assert by[("1", 20)].batches == 5 and by[("1", 20)].down_pct == 20.0
    # One host at a time is the longest window; two forks queue five hosts.
    assert by[("1", 20)].p50 > by[("all", 20)].p50
    assert by[("all", 2)].p50 > by[("all", 20)].p50


def test_forecast_learns_from_another_working_dir(rehearsed, tmp_path):
    wd, _ = rehearsed
    bigger, _ = _plan(tmp_path, 20)
    alone = cu.forecast(bigger, stage="compute")
    learned = cu.forecast(bigger, stage="compute", history=[wd])
    assert alone.stages[0].p50 is None
    assert learned.stages[0].p50 is not None and learned.stages[0].hosts == 20
    assert learned.stages[0].observations == 30


def test_estimate_command(rehearsed):
    wd, _ = rehearsed
    done = cli(["overcloud", "upgrade", "estimate", "--working-dir", wd,
                "--stage", "compute", "-f", "json"])
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["Stage"] for r in rows] == ["compute"]
    assert rows[0]["Hosts"] == 5 and rows[0]["Batches"] == 1
    assert rows[0]["Observations"] == 30
    assert 0 < rows[0]["P50 (s)"] <= rows[0]["P90 (s)"]
    assert done.stderr == ""

    steps = json.loads(cli(["overcloud", "upgrade", "estimate", "--working-dir", wd,
                            "--stage", "compute", "--batch-size", "2", "--by", "step",
                            "-f", "json"]).stdout)
    assert list(steps[0]) == ["Stage", "Batch", "Step", "Hosts", "P50 (s)",
                              "P90 (s)", "Observations"]
    assert [(r["Batch"], r["Step"]) for r in steps] == [
        (b, s) for b in (1, 2, 3) for s in makespan.STEPS]

    # Every stage: those never run are named on stderr, their figures blank.
    everything = cli(["overcloud", "upgrade", "estimate", "--working-dir", wd,
                      "-f", "json"])
    assert everything.returncode == 0
    assert everything.stderr.count("\n") == 1
    assert "Controller steps 0-5" in everything.stderr
    control = next(r for r in json.loads(everything.stdout)
                   if r["Stage"] == "controlplane")
    assert control["P50 (s)"] == "" and control["Observations"] == 0


def test_estimate_command_errors_in_one_line(rehearsed, tmp_path):
    wd, _ = rehearsed
    assert "stage" in error_line(cli(["overcloud", "upgrade", "estimate",
                                      "--working-dir", wd, "--stage", "nope"]))
    assert "batch-size" in error_line(cli(["overcloud", "upgrade", "estimate",
                                           "--working-dir", wd, "--batch-size", "0"]))
    assert "no upgrade plan" in error_line(cli(["overcloud", "upgrade", "estimate",
                                                "--working-dir", str(tmp_path)]))


# -- the notebook ------------------------------------------------------------

NOTEBOOK = "maintenance-window"


def test_notebook_committed_without_outputs_and_public_sdk_only():
    from tests import test_notebooks

    test_notebooks.test_committed_without_outputs(NOTEBOOK)
    test_notebooks.test_uses_only_the_public_sdk(NOTEBOOK)


def test_notebook_runs_headless(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    from tests import test_notebooks

    folder = test_notebooks.NOTEBOOKS
    nb = nbformat.read(folder / f"{NOTEBOOK}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(test_notebooks._check_cell("""{
    "base": base,
    "rehearsal": rehearsal.status, "later": later.status,
    "note": everything.note,
    "total_stages": everything.total()["stage"].tolist(),
    "batches": [list(b) for b in later.batches],
    "forecast_batches": sorted(set(forecast.to_frame()["batch"])),
    "window_rows": len(window), "best_down_pct": float(best["down_pct"]),
    "compare_steps": comparison["step"].astype(str).tolist(),
    "measured_total": float(comparison["measured"].iloc[-1]),
    "later_duration": later.duration,
}""")))
    before = {p.name for p in folder.iterdir()}
    client = NotebookClient(nb, kernel_name="python3",
                            timeout=test_notebooks.CELL_TIMEOUT,
                            resources={"metadata": {"path": str(folder)}})
    client.execute(env=dict(os.environ, TMPDIR=str(tmp_path),
                            MPLBACKEND="Agg"))
    assert {p.name for p in folder.iterdir()} == before
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs
                   if o.output_type == "stream")
    line = next(x for x in text.splitlines() if x.startswith(test_notebooks.MARKER))
    summary = json.loads(line[len(test_notebooks.MARKER):])
    assert summary["base"].startswith(str(tmp_path))
    assert (summary["rehearsal"], summary["later"]) == ("successful", "successful")
    # Converge never ran and external ran by tag: both named, in one line.
    assert "overcloud step" in summary["note"] or "converge" in summary["note"] \
        or "Undercloud" in summary["note"]
    assert "\n" not in summary["note"]
    assert summary["total_stages"] == ["external", "controlplane", "compute", "converge"]
    # Seven compute-stage hosts in batches of three: 3, 3, 1.
    assert [len(b) for b in summary["batches"]] == [3, 3, 1]
    assert summary["forecast_batches"] == [1, 2, 3]
    assert summary["window_rows"] == 20 and summary["best_down_pct"] <= 100 / 3
    assert summary["compare_steps"][-1] == "total"
    assert summary["measured_total"] == pytest.approx(summary["later_duration"])
    images = sum("image/png" in o.get("data", {}) for c in nb.cells
                 if c.cell_type == "code" for o in c.outputs)
    assert images == 3


def test_run_dry_run_shows_the_estimate(rehearsed, tmp_path):
    wd, _ = rehearsed
    done = cli(["overcloud", "upgrade", "run", "--working-dir", wd, "--stage", "compute",
                "--dry-run", "--batch-size", "2"])
    assert done.returncode == 0, done.stderr
    assert re.search(r"estimate: p50 \d+ s, p90 \d+ s \(from 30 recorded durations\)",
                     done.stderr), done.stderr
    fresh, _ = _plan(tmp_path, 5)
    none = cli(["overcloud", "upgrade", "run", "--working-dir", fresh, "--stage",
                "controlplane", "--dry-run"])
    assert none.returncode == 0, none.stderr
    assert "estimate: no recorded duration (no recorded runs) for " in none.stderr

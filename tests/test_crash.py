"""``kill -9`` of a run at three moments, then a resume: the history is whole.

The run is the real ``openstack`` executable on the mini overcloud's local
fleet, killed with its ansible processes; the resume runs in this process.
After it, no run of the history is ``running``, the killed one is
``interrupted`` with an end time, every unit the journal has as finished has
its task records in the history, and ``status`` agrees with the journal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import OPENSTACK, operator_env, upgrade

import composable_upgrades as cu
from composable_upgrades.state.journal import Journal

MINI = Path(__file__).parent / "fixtures" / "mini-outputs.yaml"
SLOW_HOST = "overcloud-controller-0"
DEADLINE = 120.0


def _journal(wd: Path) -> list[dict]:
    return Journal(str(wd / "composable-upgrade" / "state")).entries()


def _step_started(step: int) -> Callable[[Path, Path], bool]:
    """True once the slow host has begun ``step`` (its first task ran)."""
    def moment(wd: Path, sandbox: Path) -> bool:
        return (sandbox / f"started-step{step}").exists()
    moment.__name__ = f"during_step{step}"
    return moment


def _step_journaled(step: int) -> Callable[[Path, Path], bool]:
    """True once the journal has ``step`` finished on some host."""
    def moment(wd: Path, sandbox: Path) -> bool:
        return any(e.get("kind") == "unit" and e.get("step") == step
                   and e.get("status") == "ok" for e in _journal(wd))
    moment.__name__ = f"after_step{step}_journaled"
    return moment


MOMENTS = [_step_started(0), _step_started(2), _step_journaled(3)]


@pytest.mark.parametrize("moment", MOMENTS, ids=lambda m: m.__name__)
def test_kill_9_then_resume_leaves_a_whole_history(tmp_path: Path, moment) -> None:
    wd, fleet_dir = tmp_path / "wd", tmp_path / "fleet"
    prepared = cu.prepare(cu.StackOutputs.from_file(MINI), wd,
                          fleet=cu.Fleet.at(fleet_dir))
    fleet = cu.Fleet.at(fleet_dir)
    fleet.create(prepared.prepared.hosts)
    sandbox = Path(fleet.host_root(SLOW_HOST))
    (sandbox / "slow").write_text("")  # 3 s at every step: time to kill it
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OS_") and k != "OVERCLOUD_STACK_NAME"}
    env["HOME"] = str(tmp_path)
    run = subprocess.Popen(
        [str(OPENSTACK), "overcloud", "upgrade", "run", "--stage", "controlplane",
         "-y", "--working-dir", str(wd), "--fleet", str(fleet_dir)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        deadline = time.monotonic() + DEADLINE
        while not moment(wd, sandbox):
            assert run.poll() is None, run.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the moment never came"
            time.sleep(0.05)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the run and its ansible processes
        run.wait()
    (sandbox / "slow").unlink()
    # What the killed run finished on both hosts: the resume runs every
    # other step and nothing of these.
    finished: dict[str, set[str]] = {}
    for e in _journal(wd):
        if e.get("kind") == "unit" and e.get("status") == "ok":
            finished.setdefault(str(e["step"]), set()).add(e["host"])
    whole = {step for step, hosts in finished.items() if len(hosts) == 2}
    if moment.__name__.startswith("during_step"):
        # Nothing of the step it was killed in is recorded.
        assert whole == {str(s) for s in range(int(moment.__name__[-1]))}

    resumed = upgrade("run", "--stage", "controlplane", "--resume", "-y",
                      "--working-dir", str(wd), "--fleet", str(fleet_dir),
                      home=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    history = cu.History(wd)
    rows = history.run_rows()
    assert [r.status for r in rows if r.status == "running"] == []
    killed = [r for r in rows if r.kind == "stage"][0]
    assert killed.status == "interrupted" and killed.ended is not None
    assert killed.ended >= killed.started
    # every unit the journal has as finished has its records in the history
    records = {(r.run_id, str(r.step), r.host)
               for row in rows for r in history.run(row.run_id).records}
    units = [(e["run"], str(e["step"]), e["host"]) for e in _journal(wd)
             if e.get("kind") == "unit" and e.get("status") == "ok"]
    assert units
    missing = [u for u in units if u not in records]
    assert not missing, missing
    [stage] = [s for s in cu.status(wd) if s.stage == "controlplane"]
    assert stage.state not in ("running", "failed")
    assert set(stage.done) == {"overcloud-controller-0", "overcloud-controller-1"}
    # The killed run's lock was left behind: detected, reported, taken over.
    assert f"took over a stale lock of pid {run.pid}" in resumed.stderr
    [again] = [r for r in rows if r.kind == "stage" and r.run_id != killed.run_id]
    assert sorted({str(s.step) for s in history.run(again.run_id).steps}, key=int) == [
        str(s) for s in range(6) if str(s) not in whole]


def test_history_rows_keep_json(tmp_path: Path) -> None:
    """The note a takeover adds is stored as the other notes are (JSON list)."""
    from composable_upgrades.state.results import RunResult
    store = cu.HistoryStore.at(tmp_path)
    store.start_run(RunResult(run_id="r", stage="compute", plan_sha="x",
                              status="running", started=5.0, ended=0.0, options={},
                              batches=[], steps=[], records=[], notes=["first"],
                              run_dir=None))
    store.close()

    assert store.mark_interrupted("gone") == ["r"]

    [row] = cu.History(tmp_path).run_rows()
    assert row.notes == ("first", "gone") and row.ended == 5.0
    assert json.loads(json.dumps(list(row.notes))) == ["first", "gone"]

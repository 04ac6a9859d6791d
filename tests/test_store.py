"""The run history: the SQLite store, History, RunResult frames and plots, plan diffs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

import matplotlib
import pandas

matplotlib.use("Agg")

import pytest  # noqa: E402
import yaml  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

import composable_upgrades as cu  # noqa: E402
from composable_upgrades.views.diff import (  # noqa: E402
    SERVICE_ADDED, SERVICE_REMOVED, TASK_ADDED, TASK_MOVED, TASK_REMOVED,
    TASK_REORDERED, diff_rows, plan_diff, plans_to_compare)
from composable_upgrades.run.execute import run_stage  # noqa: E402
from composable_upgrades.views.history import History, step_outcomes  # noqa: E402
from composable_upgrades.state.results import (  # noqa: E402
    RECORD_COLUMNS, RunResult, StepOutcome, TaskRecord)
from composable_upgrades.state.run_timeline import TIMELINE_COLOURS
from composable_upgrades.state.store import (  # noqa: E402
    RUNNING, SCHEMA_VERSION, HistoryStore)

CONTROLLERS = ["overcloud-controller-0", "overcloud-controller-1"]
MESSAGING = "overcloud-messaging-0"


# -- synthetic runs ----------------------------------------------------------

def record(run_id: str = "r1", *, step: int | str = 1, host: str = "compute-0",
           task: str = "nova_compute: install", status: str = "changed",
           batch: int = 1, start: float | None = 1000.0,
           duration: float | None = 2.0, message: str = "",
           role: str | None = "Compute", service: str | None = "nova_compute"
           ) -> TaskRecord:
    return TaskRecord(run_id=run_id, stage="compute", batch=batch, step=step,
                      host=host, role=role, task=task, service=service,
                      action="ansible.builtin.copy", status=status, start=start,
                      duration=duration, message=message)


def result(run_id: str = "r1", **kwargs: Any) -> RunResult:
    fields: dict[str, Any] = {
        "stage": "compute", "plan_sha": "ab" * 32, "status": "nothing to do",
        "started": 990.0, "options": {"limit": "Compute", "batch_size": "50%",
                                      "tags": None},
        "batches": [("compute-0", "compute-1"), ("compute-2",)],
        "run_dir": "/tmp/runs/" + run_id}
    fields.update(kwargs)
    return RunResult(run_id=run_id, **fields)


def varied_records(run_id: str = "r1") -> list[TaskRecord]:
    """Records with every shape a real run produces."""
    return [
        record(run_id, step=0, host="compute-0", status="ok"),
        record(run_id, step=0, host="compute-1", status="skipped", start=None,
               duration=None, role=None, service=None),
        record(run_id, step=3, host="compute-1", status="failed",
               message="fault injected — exit 1 ✗", start=1010.5, duration=0.25),
        record(run_id, step=3, host="compute-0", status="ignored",
               message="not fatal"),
        record(run_id, step=3, batch=2, host="compute-2", status="unreachable",
               message="ssh: connect to host compute-2 port 22"),
        record(run_id, step="rpc_unpin", host="compute-0", status="changed",
               task="Converge | unpin", start=1100.0, duration=1.5),
    ]


def store_run(working_dir: Path, res: RunResult, records: list[TaskRecord],
              **store_kwargs: Any) -> HistoryStore:
    """Stream ``records`` of ``res`` through a store as the executor does."""
    store = HistoryStore.at(working_dir, **store_kwargs)
    store.start_run(res)
    for r in records:
        res.records.append(r)
        store.add(r)
    res.status = "failed"
    res.ended = 1200.0
    res.notes.append("stopped after step 3 of batch 2: 1 of 1 hosts failed")
    store.finish_run(res)
    return store


def task_count(path: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]


def test_round_trip_records_in_equal_records_out(tmp_path: Path) -> None:
    res = result()
    records = varied_records()
    store_run(tmp_path, res, records)
    back = History(tmp_path).run("r1")
    assert back.records == records
    assert [type(r.step) for r in back.records] == [int] * 5 + [str]
    assert (back.run_id, back.stage, back.plan_sha, back.status) == \
        ("r1", "compute", "ab" * 32, "failed")
    assert (back.started, back.ended) == (990.0, 1200.0)
    assert back.options == dict(res.options)
    assert back.batches == res.batches
    assert back.notes == res.notes
    assert back.run_dir == "/tmp/runs/r1"


def test_steps_are_rebuilt_from_the_task_records(tmp_path: Path) -> None:
    store_run(tmp_path, result(), varied_records())
    steps = History(tmp_path).run("r1").steps
    assert [(s.batch, s.step) for s in steps] == [(1, 0), (1, 3), (2, 3),
                                                  (1, "rpc_unpin")]
    assert steps[0] == StepOutcome(batch=1, step=0, hosts=("compute-0", "compute-1"),
                                   failed=(), started=1000.0, ended=1002.0, rc=0)
    # ignored is not a failure; failed and unreachable are.
    assert steps[1].hosts == ("compute-1", "compute-0")
    assert steps[1].failed == ("compute-1",)
    assert (steps[1].started, steps[1].ended) == (1000.0, 1010.75)
    assert steps[2].failed == ("compute-2",) and steps[2].rc == 2
    assert steps[3].duration == pytest.approx(1.5)
    # A step without any timed task takes the default time.
    untimed = step_outcomes([record(start=None, duration=None)], default_time=5.0)
    assert (untimed[0].started, untimed[0].ended) == (5.0, 5.0)


def test_schema_version_wal_and_private_file(tmp_path: Path) -> None:
    store = store_run(tmp_path, result(), varied_records())
    path = cu.Workdir.at(tmp_path).history_path
    assert store.path == path
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        runs = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
        tasks = {row[1]: row[2] for row in db.execute("PRAGMA table_info(tasks)")}
        steps = [row[0] for row in db.execute("SELECT step FROM tasks ORDER BY id")]
    assert runs[:9] == ["run_id", "kind", "stage", "plan_sha", "arguments",
                        "started", "ended", "status", "notes"]
    assert tasks["step"] == "TEXT"
    assert steps == ["0", "0", "3", "3", "3", "rpc_unpin"]
    assert {"run_id", "stage", "batch", "host", "role", "task", "service",
            "action", "status", "start", "duration", "message"} <= set(tasks)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store.schema_version() == SCHEMA_VERSION


def test_an_empty_version_0_file_is_migrated(tmp_path: Path) -> None:
    path = Path(cu.Workdir.at(tmp_path).history_path)
    path.parent.mkdir(parents=True)
    sqlite3.connect(path).close()  # an empty database: user_version 0
    assert History(tmp_path).runs().empty
    store_run(tmp_path, result(), varied_records()[:2])
    assert HistoryStore(path).schema_version() == SCHEMA_VERSION
    assert len(History(tmp_path).run("r1").records) == 2


def test_a_version_1_file_gains_when_runs_were_requested(tmp_path: Path) -> None:
    """Version 2 adds ``runs.requested`` and ``runs.waited``: a file version 1
    wrote is migrated as it is read, its runs keep everything, with no such
    time and no wait."""
    from composable_upgrades.state.store_schema import _SCHEMA_V1

    path = Path(cu.Workdir.at(tmp_path).history_path)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_V1)
        db.execute("INSERT INTO runs (run_id, kind, stage, started, ended, status) "
                   "VALUES ('old', 'stage', 'compute', 10.0, 20.0, 'successful')")
        db.execute("PRAGMA user_version = 1")
    old = History(tmp_path).run("old")
    assert (old.stage, old.duration, old.requested, old.waited) == (
        "compute", 10.0, None, 0.0)
    assert HistoryStore(path).schema_version() == 2
    asked = result()
    asked.requested, asked.waited = asked.started - 1.5, 42.0
    store_run(tmp_path, asked, varied_records()[:1])
    stored = History(tmp_path).run("r1")
    assert (stored.requested, stored.waited) == (asked.started - 1.5, 42.0)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = Path(cu.Workdir.at(tmp_path).history_path)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(cu.WorkdirError, match="newer version"):
        History(tmp_path).runs()
    with pytest.raises(cu.WorkdirError, match="newer version"):
        HistoryStore(path).start_run(result())


def test_not_a_database_is_a_workdir_error(tmp_path: Path) -> None:
    path = Path(cu.Workdir.at(tmp_path).history_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(cu.WorkdirError, match="history.sqlite"):
        History(tmp_path).runs()
    with pytest.raises(cu.WorkdirError, match="history.sqlite"):
        HistoryStore(path).start_run(result())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_buffering_flushes_every_n_records_and_at_finish(tmp_path: Path) -> None:
    clock = Clock()
    store = HistoryStore.at(tmp_path, flush_every=3, flush_seconds=60.0, clock=clock)
    res = result()
    store.start_run(res)
    records = [record(host=f"compute-{i}") for i in range(8)]
    counts = []
    for r in records:
        store.add(r)
        counts.append(task_count(store.path))
    assert counts == [0, 0, 3, 3, 3, 6, 6, 6]
    res.ended = 1100.0
    store.finish_run(res)
    assert task_count(store.path) == 8
    assert store.written == 8 and store.error is None
    assert History(tmp_path).run("r1").records == records


def test_buffered_records_older_than_flush_seconds_are_written(tmp_path: Path) -> None:
    clock = Clock()
    store = HistoryStore.at(tmp_path, flush_every=1000, flush_seconds=2.0, clock=clock)
    store.start_run(result())
    store.add(record(host="compute-0"))
    clock.now = 1.0
    store.add(record(host="compute-1"))
    assert task_count(store.path) == 0
    clock.now = 2.5
    store.add(record(host="compute-2"))
    assert task_count(store.path) == 3
    store.add(record(host="compute-3"))
    assert task_count(store.path) == 3
    store.close()
    assert task_count(store.path) == 4


def test_a_run_is_running_until_it_finishes(tmp_path: Path) -> None:
    store = HistoryStore.at(tmp_path, flush_every=1)
    res = result()
    store.start_run(res)
    store.add(record())
    row = History(tmp_path).runs().iloc[0]
    assert (row["status"], row["tasks"]) == (RUNNING, 1)
    assert row["ended"] is None or row["ended"] != row["ended"]  # None or NaN
    res.status, res.ended = "successful", 1001.0
    store.finish_run(res)
    assert History(tmp_path).runs().iloc[0]["status"] == "successful"


def test_a_failed_write_does_not_stop_the_run_and_becomes_a_note(tmp_path: Path) -> None:
    store = HistoryStore.at(tmp_path, flush_every=2)
    res = result()
    store.start_run(res)
    store.add(record(host="compute-0"))
    store.add(record(host="compute-1"))          # written
    store.add(record(host="compute-2", status="exploded"))  # refused by the schema
    store.add(record(host="compute-3"))          # the chunk fails here
    store.add(record(host="compute-4"))
    res.status, res.ended = "successful", 1001.0
    store.finish_run(res)
    assert store.error is not None and "2 task records were written" in store.error
    assert any(n.startswith("the run history is incomplete: ") for n in res.notes)
    back = History(tmp_path).run("r1")
    assert [r.host for r in back.records] == ["compute-0", "compute-1"]
    assert back.status == "successful"
    assert back.notes == res.notes


def test_history_without_a_file_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    history = History(tmp_path)
    frame = history.runs()
    assert frame.empty
    assert list(frame.columns) == ["run_id", "kind", "stage", "status", "started",
                                   "ended", "duration", "hosts", "failed_hosts",
                                   "tasks", "plan_sha", "arguments", "notes"]
    with pytest.raises(cu.WorkdirError, match="no run 'nope'.*no run recorded yet"):
        history.run("nope")
    assert not os.path.exists(history.path)
    assert not (tmp_path / "composable-upgrade").exists()


def test_unknown_run_id_names_it_and_the_latest_runs(tmp_path: Path) -> None:
    store_run(tmp_path, result("r1"), varied_records("r1"))
    with pytest.raises(cu.UpgradeError) as caught:
        History(tmp_path).run("20990101-000000-compute-abcdef")
    assert isinstance(caught.value, cu.WorkdirError)
    message = str(caught.value)
    assert "'20990101-000000-compute-abcdef'" in message
    assert "1 runs; latest: r1" in message
    assert message.startswith(History(tmp_path).path)


def test_runs_frame_one_row_per_run_newest_last(tmp_path: Path) -> None:
    store = HistoryStore.at(tmp_path)
    prepare_id = store.record_prepare(
        "cd" * 32, {"stages_file": None, "fleet": "/tmp/fleet",
                    "heat": {"admin_password": "s3cr3t-value"}},
        started=900.0, ended=901.5, status="successful", notes=["changed"])
    store_run(tmp_path, result("r1", started=990.0), varied_records("r1"))
    converge = result("r2", stage="converge", started=2000.0, batches=[("compute-0",)])
    store_run(tmp_path, converge, [record("r2", step="reboot", host="compute-0")])
    frame = History(tmp_path).runs()
    assert list(frame["run_id"]) == [prepare_id, "r1", "r2"]
    assert list(frame["kind"]) == ["prepare", "stage", "converge"]
    assert re.fullmatch(r"\d{8}-\d{6}-prepare-[0-9a-f]{6}", prepare_id)
    first = frame.iloc[0]
    assert pandas.isna(first["stage"]) and first["duration"] == pytest.approx(1.5)
    assert first["arguments"] == {"stages_file": None, "fleet": "/tmp/fleet",
                                  "heat": {"admin_password": "********"}}
    assert first["notes"] == ["changed"]
    assert first["tasks"] == 0
    second = frame.iloc[1]
    assert (second["hosts"], second["failed_hosts"], second["tasks"]) == (3, 2, 6)
    assert second["duration"] == pytest.approx(210.0)
    with open(History(tmp_path).path, "rb") as handle:
        assert b"s3cr3t-value" not in handle.read()


# -- frames and plots of a RunResult -----------------------------------------

def test_to_frame_failures_and_summary_of_a_synthetic_run() -> None:
    res = result(records=varied_records(), steps=step_outcomes(varied_records()))
    frame = res.to_frame()
    assert list(frame.columns) == list(RECORD_COLUMNS)
    assert len(frame) == 6
    assert list(frame["step"]) == [0, 0, 3, 3, 3, "rpc_unpin"]
    assert frame["start"].isna().sum() == 1
    failures = res.failures()
    assert list(failures["host"]) == ["compute-1", "compute-2"]
    assert list(failures["status"]) == ["failed", "unreachable"]
    assert failures.iloc[0]["message"] == "fault injected — exit 1 ✗"
    summary = res.summary()
    assert list(summary.columns) == ["step", "hosts_ok", "hosts_failed", "wall_time"]
    assert summary.values.tolist() == [
        [0, 2, 0, 2.0], [3, 1, 2, pytest.approx(10.75 + 2.0)],
        ["rpc_unpin", 1, 0, 1.5]]
    empty = result()
    assert empty.to_frame().empty and list(empty.failures().columns) == list(RECORD_COLUMNS)
    assert empty.summary().empty


# -- a real run on a tiny local fleet ----------------------------------------

def _copy(service: str, what: str, step: int) -> dict[str, Any]:
    return {"name": f"{service}: {what}",
            "copy": {"dest": f"{{{{ rehearsal_root }}}}/{service}-{what}",
                     "content": f"{service} {what} at step {{{{ step }}}}\n"},
            "when": f"step|int == {step}"}


def _touch(service: str, what: str, step: int) -> dict[str, Any]:
    return {"name": f"{service}: {what}",
            "file": {"path": f"{{{{ rehearsal_root }}}}/{service}-{what}",
                     "state": "touch"},
            "when": f"step|int == {step}"}


def tiny_outputs() -> dict[str, Any]:
    """Controller x2, Messaging x1, both in the controlplane stage."""
    return {
        "RehearsalSandbox": True,
        "RoleData": {
            "Controller": {
                "service_names": ["keystone", "haproxy"],
                "upgrade_tasks": [_copy("keystone", "stop", 1),
                                  _touch("keystone", "install", 3),
                                  _copy("haproxy", "install", 3)]},
            "Messaging": {
                "service_names": ["oslo_messaging_rpc"],
                "upgrade_tasks": [_copy("oslo_messaging_rpc", "stop", 1),
                                  _copy("oslo_messaging_rpc", "install", 3),
                                  _touch("oslo_messaging_rpc", "start", 4)]},
        },
        "AnsibleHostVarsMap": {
            "Controller": {h: {} for h in CONTROLLERS},
            "Messaging": {MESSAGING: {}},
        },
    }


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> tuple[Path, cu.Fleet, RunResult]:
    """The controlplane stage run for real, with a fault at step 4 of Messaging."""
    tmp = tmp_path_factory.mktemp("rehearsal")
    outputs = tmp / "outputs.yaml"
    outputs.write_text(yaml.safe_dump(tiny_outputs(), sort_keys=False))
    wd = tmp / "wd"
    fleet = cu.Fleet.at(tmp / "fleet")
    plan = cu.prepare(cu.StackOutputs.from_file(outputs), wd, fleet=fleet).prepared
    fleet.create(plan.hosts)
    fleet.inject_fault(MESSAGING, "controlplane", 4)
    res = run_stage(wd, "controlplane", sink=HistoryStore.at(wd))
    return wd, fleet, res


def test_real_run_is_in_the_history_as_it_returned(real_run) -> None:
    wd, fleet, res = real_run
    assert res.status == "failed"
    assert (Path(fleet.host_root(CONTROLLERS[0])) / "haproxy-install").exists()
    back = History(wd).run(res.run_id)
    assert back.records == res.records
    # Tasks: 2 + 4 on the Controllers, 1 + 1 on Messaging (its step 4 task
    # never runs); the fault check that failed. Skipped fault checks are the
    # fleet's machinery, not plan tasks: not recorded.
    assert len(res.records) == 9
    assert (back.status, back.started, back.ended) == (res.status, res.started, res.ended)
    assert back.options == dict(res.options) and back.notes == res.notes
    assert back.batches == res.batches and back.run_dir == res.run_dir
    assert back.plan_sha == res.plan_sha == cu.Workdir.at(wd).load_plan().sha256
    # Step outcomes: the same steps and failures; a step's hosts are those
    # that ran a task there (the Controllers have no play at step 4).
    assert [(s.batch, s.step, s.failed) for s in back.steps] == \
        [(s.batch, s.step, s.failed) for s in res.steps] == \
        [(1, 1, ()), (1, 3, ()), (1, 4, (MESSAGING,))]
    for rebuilt, original in zip(back.steps, res.steps):
        ran = {r.host for r in res.records if r.step == original.step}
        assert set(rebuilt.hosts) == ran <= set(original.hosts)
        assert original.started <= rebuilt.started <= rebuilt.ended <= original.ended
    row = History(wd).runs().iloc[-1]
    assert (row["run_id"], row["kind"], row["stage"], row["status"]) == \
        (res.run_id, "stage", "controlplane", "failed")
    assert (row["hosts"], row["failed_hosts"], row["tasks"]) == (3, 1, len(res.records))


def test_real_run_failures_show_the_fault_and_its_message(real_run) -> None:
    _, _, res = real_run
    failures = res.failures()
    assert len(failures) == 1
    failed = failures.iloc[0]
    assert (failed["host"], failed["step"], failed["status"], failed["role"]) == \
        (MESSAGING, 4, "failed", "Messaging")
    assert failed["task"] == "Rehearsal fault check (controlplane_step4)"
    assert failed["message"] == f"fault injected at controlplane_step4 on {MESSAGING}"


def test_real_run_to_frame_and_summary(real_run) -> None:
    wd, _, res = real_run
    frame = res.to_frame()
    assert len(frame) == len(res.records)
    assert set(frame["run_id"]) == {res.run_id}
    assert set(frame["stage"]) == {"controlplane"}
    row = frame[(frame["host"] == CONTROLLERS[1]) & (frame["task"] == "haproxy: install")]
    assert len(row) == 1
    assert row.iloc[0][["batch", "step", "role", "service", "action", "status"]].tolist() \
        == [1, 3, "Controller", "haproxy", "copy", "changed"]
    assert row.iloc[0]["duration"] > 0
    assert row.iloc[0]["start"] >= res.started
    checks = frame[frame["task"].str.startswith("Rehearsal fault check")]
    assert set(checks["service"].isna()) == {True}
    assert checks["status"].value_counts().to_dict() == {"failed": 1}
    summary = res.summary()
    assert summary[["step", "hosts_ok", "hosts_failed"]].values.tolist() == \
        [[1, 3, 0], [3, 3, 0], [4, 2, 1]]
    assert summary["wall_time"].tolist() == pytest.approx([s.duration for s in res.steps])
    assert History(wd).run(res.run_id).to_frame().equals(frame)


def test_real_run_timeline_has_one_bar_per_host_and_step(real_run) -> None:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    wd, _, res = real_run
    ax = Figure().add_subplot()
    assert res.timeline(ax) is ax
    bars = ax.patches
    assert len(bars) == sum(len(s.hosts) for s in res.steps) == 9
    colours = [bar.get_facecolor() for bar in bars]
    assert colours.count(to_rgba(TIMELINE_COLOURS["failed"])) == 1
    assert colours.count(to_rgba(TIMELINE_COLOURS["no tasks"])) == 2  # Controllers at 4
    assert colours.count(to_rgba(TIMELINE_COLOURS["ok"])) == 6
    assert [t.get_text() for t in ax.get_yticklabels()] == CONTROLLERS + [MESSAGING]
    # From the history: one bar per host that ran a task at a step.
    import matplotlib.pyplot as plt

    drawn = History(wd).run(res.run_id).timeline()
    try:
        assert isinstance(drawn, Axes)
        assert len(drawn.patches) == 3 + 3 + 1
        assert drawn.figure.canvas.get_default_filetype() == "png"
        drawn.figure.canvas.draw()
    finally:
        plt.close(drawn.figure)


# -- plan diffs ------------------------------------------------------------

def diff_outputs(version: int) -> dict[str, Any]:
    """Two versions of a small overcloud's outputs, for plan diffs."""
    # RoleData lists a role's tasks in service_names order.
    controller = [
        {"name": "haproxy: check the configuration",
         "stat": {"path": "{{ rehearsal_root }}/haproxy.cfg"},
         **({"when": "step|int == 0"} if version == 2 else {})},
        _copy("haproxy", "install", 3 if version == 1 else 2),
        _copy("keystone", "restart", 4),
        _copy("keystone", "restart", 5 if version == 1 else 3),  # same name, 2nd
    ]
    if version == 1:
        controller.insert(2, _copy("keystone", "stop", 1))
    else:
        controller.append(_touch("memcached", "restart", 4))
    services = ["haproxy", "keystone"] + (["memcached"] if version == 2 else [])
    messaging = ["oslo_messaging_rpc"] + (["oslo_messaging_notify"] if version == 1 else [])
    return {
        "RoleData": {
            "Controller": {"service_names": services, "upgrade_tasks": controller},
            "Messaging": {"service_names": messaging,
                          "upgrade_tasks": [_copy("oslo_messaging_rpc", "install", 3)]},
        },
        "AnsibleHostVarsMap": {"Controller": {h: {} for h in CONTROLLERS},
                               "Messaging": {MESSAGING: {}}},
    }


@pytest.fixture(scope="module")
def two_plans(tmp_path_factory) -> Path:
    """A working dir prepared twice: version 1, then version 2."""
    tmp = tmp_path_factory.mktemp("diff")
    wd = tmp / "wd"
    for version in (1, 2):
        path = tmp / f"outputs-{version}.yaml"
        path.write_text(yaml.safe_dump(diff_outputs(version), sort_keys=False))
        cu.prepare(cu.StackOutputs.from_file(path), wd)
    return wd


def test_plan_diff_finds_added_removed_and_moved_tasks_and_services(two_plans) -> None:
    workdir = cu.Workdir.at(two_plans)
    frame = plan_diff(workdir.load_plan("previous"), workdir.load_plan())
    assert list(frame.columns) == ["change", "stage", "role", "service", "task",
                                   "old_step", "new_step", "old_stage"]
    rows = [tuple(None if v != v else v for v in row)  # NaN -> None
            for row in frame.itertuples(index=False)]
    all_steps = "0, 1, 2, 3, 4, 5"
    assert rows == [
        (SERVICE_ADDED, "controlplane", "Controller", "memcached", None, None, None, None),
        (TASK_REMOVED, "controlplane", "Controller", "keystone", "keystone: stop",
         1, None, "controlplane"),
        (TASK_MOVED, "controlplane", "Controller", "haproxy",
         "haproxy: check the configuration", all_steps, 0, "controlplane"),
        (TASK_MOVED, "controlplane", "Controller", "haproxy", "haproxy: install",
         3, 2, "controlplane"),
        (TASK_MOVED, "controlplane", "Controller", "keystone", "keystone: restart",
         5, 3, "controlplane"),
        (TASK_ADDED, "controlplane", "Controller", "memcached", "memcached: restart",
         None, 4, None),
        (SERVICE_REMOVED, "controlplane", "Messaging", "oslo_messaging_notify",
         None, None, None, None),
    ]


def test_plan_diff_takes_plan_data_and_is_empty_for_the_same_plan(two_plans) -> None:
    workdir = cu.Workdir.at(two_plans)
    current, previous = workdir.load_plan(), workdir.load_plan("previous")
    assert plan_diff(current, current).empty
    current_data = json.loads(Path(current.file("plan.json")).read_text())
    previous_data = json.loads(Path(previous.file("plan.json")).read_text())
    assert plan_diff(current_data, current_data).empty
    assert diff_rows(previous_data, current)[1] == diff_rows(previous, current)[1]
    backwards = plan_diff(current, previous)
    assert sorted(backwards["change"]) == sorted(
        [SERVICE_REMOVED, TASK_ADDED, TASK_MOVED, TASK_MOVED, TASK_MOVED,
         TASK_REMOVED, SERVICE_ADDED])
    with pytest.raises(cu.UpgradeError, match="not a plan"):
        plan_diff({"format": 1}, current)


def test_plan_diff_reports_a_changed_task_order_within_a_step() -> None:
    def plan(order: list[str]) -> cu.UpgradePlan:
        tasks = {"a": _copy("haproxy", "a", 2), "b": _copy("keystone", "b", 2),
                 "c": _copy("haproxy", "c", 2), "d": _copy("haproxy", "d", 3)}
        return cu.plan_upgrade(cu.StackOutputs.from_mapping({
            "RoleData": {"Controller": {"service_names": ["haproxy", "keystone"],
                                        "upgrade_tasks": [tasks[k] for k in order]}},
            "AnsibleHostVarsMap": {"Controller": {h: {} for h in CONTROLLERS}}},
            source=f"order {order}"))

    # c now runs before a and b; d (another step) and the rest stay put.
    _, rows = diff_rows(plan(["a", "b", "c", "d"]), plan(["c", "a", "b", "d"]))
    assert [(r[0], r[4], r[5], r[6]) for r in rows] == [
        (TASK_REORDERED, "haproxy: c", 2, 2), (TASK_REORDERED, "haproxy: a", 2, 2),
        (TASK_REORDERED, "keystone: b", 2, 2)]
    assert diff_rows(plan(["a", "b", "c", "d"]), plan(["a", "b", "c", "d"]))[1] == []
    # Tasks added or removed do not make the others "reordered".
    _, rows = diff_rows(plan(["a", "b", "d"]), plan(["a", "c", "b", "d"]))
    assert [r[0] for r in rows] == [TASK_ADDED]


def test_plans_to_compare_defaults_and_folders(two_plans, tmp_path: Path) -> None:
    workdir = cu.Workdir.at(two_plans)
    old, new = plans_to_compare(two_plans)
    assert (old.path, new.path) == (workdir.previous_plan_dir, workdir.plan_dir)
    old, new = plans_to_compare(two_plans, Path(workdir.plan_dir) / "plan.json",
                                workdir.previous_plan_dir)
    assert (old.sha256, new.sha256) == (workdir.load_plan().sha256,
                                       workdir.load_plan("previous").sha256)
    fresh = tmp_path / "fresh"
    path = tmp_path / "outputs.yaml"
    path.write_text(yaml.safe_dump(diff_outputs(1)))
    cu.prepare(cu.StackOutputs.from_file(path), fresh)
    with pytest.raises(cu.PlanNotFoundError, match="no previous plan"):
        plans_to_compare(fresh)
    with pytest.raises(cu.PlanNotFoundError):
        plans_to_compare(fresh, tmp_path / "nowhere")

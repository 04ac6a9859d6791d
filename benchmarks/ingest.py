"""Benchmark: the run history's ingest and read-back of 50,000 task records.

Generates synthetic :class:`~composable_upgrades.state.results.TaskRecord` s shaped
like a large compute stage (hosts x batches x steps x tasks, about 1% failed
with a message), streams them through :class:`~composable_upgrades.state.store.HistoryStore`
with the sink API the executor uses (``start_run``, ``add`` per record,
``finish_run``), then reads them back into a DataFrame
(``History(wd).run(id).to_frame()``). Each repeat uses a fresh working
directory; the best of ``--repeat`` is reported, wall and CPU time. pandas is
imported once, before the timings, and its import time is shown apart.

Run from the repository root::

    .venv/bin/python benchmarks/ingest.py [--records 50000] [--repeat 5] [--rst]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_IMPORT_START = time.perf_counter()
import pandas  # noqa: E402,F401 - timed: imported once, before the runs

PANDAS_IMPORT_S = time.perf_counter() - _IMPORT_START

from composable_upgrades.views.history import History  # noqa: E402
from composable_upgrades.state.results import RunResult, TaskRecord  # noqa: E402
from composable_upgrades.state.store import HistoryStore  # noqa: E402
from report import machine, print_machine, print_text  # noqa: E402

RECORDS = 50_000
REPEAT = 5
TARGET_S = 2.0
RUN_ID = "20260101-000000-compute-bench0"
TASKS_PER_STEP = 17
STEPS = 6


@dataclass(frozen=True)
class Timing:
    """Wall and CPU seconds of one phase."""

    wall: float
    cpu: float


def synthetic_records(count: int) -> list[TaskRecord]:
    """``count`` records: batches of 100 hosts, steps 0-5, 17 tasks a step."""
    hosts_per_batch = 100
    per_batch = hosts_per_batch * STEPS * TASKS_PER_STEP
    records = []
    clock = 1_767_225_600.0
    for i in range(count):
        batch, rest = divmod(i, per_batch)
        step, rest = divmod(rest, hosts_per_batch * TASKS_PER_STEP)
        task, host = divmod(rest, hosts_per_batch)
        number = batch * hosts_per_batch + host
        failed = i % 97 == 0
        service = ("nova_compute", "nova_libvirt", "ovn_controller",
                   "tripleo_packages")[task % 4]
        records.append(TaskRecord(
            run_id=RUN_ID, stage="compute", batch=batch + 1, step=step,
            host=f"overcloud-novacompute-{number}", role="Compute",
            task=f"{service}: upgrade task {task}", service=service,
            action="ansible.builtin.copy" if task % 3 else "ansible.builtin.command",
            status="failed" if failed else ("changed", "ok", "skipped")[i % 3],
            start=clock + i * 0.01, duration=0.05 + (i % 7) * 0.1,
            message=(f"non-zero return code: upgrade of {service} failed on "
                     f"overcloud-novacompute-{number}" if failed else "")))
    return records


def run_once(records: list[TaskRecord], directory: str) -> tuple[Timing, Timing, int]:
    """Ingest ``records`` through the sink API, then read them into a frame."""
    result = RunResult(run_id=RUN_ID, stage="compute", plan_sha="0" * 64,
                       status="nothing to do", started=records[0].start or 0.0,
                       options={"batch_size": 100, "limit": None})
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    sink = HistoryStore.at(directory)
    sink.start_run(result)
    for record in records:
        sink.add(record)
    result.status, result.ended = "failed", time.time()
    sink.finish_run(result)
    ingest = Timing(time.perf_counter() - wall, time.process_time() - cpu)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    frame = History(directory).run(RUN_ID).to_frame()
    read = Timing(time.perf_counter() - wall, time.process_time() - cpu)
    if len(frame) != len(records) or sink.error:
        raise SystemExit(f"read back {len(frame)} of {len(records)} records "
                         f"({sink.error})")
    return ingest, read, len(frame)


def measure(count: int, repeat: int) -> tuple[Timing, Timing, Timing]:
    """Best ingest, read and total (best single run) over ``repeat`` runs."""
    records = synthetic_records(count)
    runs = []
    for _ in range(repeat):
        directory = tempfile.mkdtemp(prefix="bench-ingest-")
        try:
            runs.append(run_once(records, directory)[:2])
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    best = min(runs, key=lambda r: r[0].wall + r[1].wall)
    ingest = Timing(min(r[0].wall for r in runs), min(r[0].cpu for r in runs))
    read = Timing(min(r[1].wall for r in runs), min(r[1].cpu for r in runs))
    total = Timing(best[0].wall + best[1].wall, best[0].cpu + best[1].cpu)
    return ingest, read, total


def table(count: int, ingest: Timing, read: Timing, total: Timing) -> list[list[str]]:
    """Header and rows of the result table."""
    return [
        ["phase", "wall (s)", "CPU (s)"],
        [f"ingest {count:,} records (start_run, add, finish_run)",
         f"{ingest.wall:.3f}", f"{ingest.cpu:.3f}"],
        ["read back: History.run(id).to_frame()", f"{read.wall:.3f}",
         f"{read.cpu:.3f}"],
        ["total (best run)", f"{total.wall:.3f}", f"{total.cpu:.3f}"],
        ["pandas import (once per process)", f"{PANDAS_IMPORT_S:.3f}", "-"],
    ]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, print; exit 1 if the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=RECORDS,
                        help="task records per run (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=REPEAT,
                        help="runs; the best counts (default: %(default)s)")
    parser.add_argument("--rst", action="store_true",
                        help="also print the result as reST")
    args = parser.parse_args(argv)
    ingest, read, total = measure(args.records, args.repeat)
    rows = table(args.records, ingest, read, total)
    facts = machine("pandas", "tripleoclient-upgrade") + [
        ("SQLite", f"{sqlite3.sqlite_version} (Python sqlite3 module)")]
    print(f"run history: best of {args.repeat} (target: total under "
          f"{TARGET_S:.0f} s)\n")
    print_text(rows)
    print_machine(facts, rst_rows=rows if args.rst else None)
    return 0 if total.wall < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())

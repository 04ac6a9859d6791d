"""The forecast against the measured window: learn from 10 hosts, predict 50 and 100.

The makespan benchmark's sandboxed overcloud (every task sleeps a known,
per-host length, 2.0-2.99 s; Compute and CephStorage hosts 4:1) is
rehearsed with 10 compute-stage hosts: the compute stage runs once, with
default settings. From that run history alone, :func:`composable_upgrades.forecast`
predicts the compute stage of a fresh plan of 50 and of 100 hosts, in one
batch and in batches of 10%; then each is run (``openstack overcloud upgrade
run --stage compute -y --force``, ``--rerun --batch-size 10%`` for the
second) and its wall time, the whole command's, is the measure. The table
gives P50, P90, the measure, ``|P50 - measured| / measured`` and whether the
measure is within the P90.

    .venv/bin/python benchmarks/forecast.py [--hosts 50 100] [--rehearsal 10] [--rst]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import composable_upgrades as cu

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from makespan import outputs  # noqa: E402
from report import print_ansible_run_report  # noqa: E402


def timed_run(wd: str, *extra: str) -> float:
    """Seconds of the whole ``run --stage compute`` command."""
    argv = [os.path.join(os.path.dirname(sys.executable), "openstack"),
            "overcloud", "upgrade", "run", "--working-dir", wd, "--stage", "compute",
            "-y", "--force", *extra]
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"run {' '.join(extra)} failed: {done.stderr.strip()}")
    return elapsed


def fresh(hosts: int, base: str) -> str:
    """A working dir with the plan of ``hosts`` compute-stage hosts, on a fleet."""
    root = tempfile.mkdtemp(dir=base)
    wd = os.path.join(root, "wd")
    fleet = cu.Fleet.at(os.path.join(root, "fleet"))
    plan = cu.prepare(outputs(hosts), wd, fleet=fleet).prepared
    fleet.create(list(plan.hosts))
    return wd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--rehearsal", type=int, default=10,
                        help="compute-stage hosts of the rehearsal")
    parser.add_argument("--rst", action="store_true")
    args = parser.parse_args()
    header = ["Hosts", "Batches", "P50 (s)", "P90 (s)", "run (s)", "|P50-run|/run",
              "run <= P90"]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as base:
        rehearsal = fresh(args.rehearsal, base)
        seconds = timed_run(rehearsal)
        print(f"rehearsal: {args.rehearsal} hosts, {seconds:.1f} s", file=sys.stderr,
              flush=True)
        for hosts in args.hosts:
            wd = fresh(hosts, base)
            for size, extra in ((None, ()), ("10%", ("--rerun", "--batch-size", "10%"))):
                predicted = cu.forecast(wd, stage="compute", batch_size=size,
                                        history=[rehearsal]).stages[0]
                measured = timed_run(wd, *extra)
                error = abs(predicted.p50 - measured) / measured
                rows.append([str(hosts), "1" if size is None else "10%",
                             f"{predicted.p50:.1f}", f"{predicted.p90:.1f}",
                             f"{measured:.1f}", f"{100 * error:.1f}%",
                             "yes" if measured <= predicted.p90 else "no"])
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    print_ansible_run_report(header, rows, rst=args.rst)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
        [--keep DIR | --replay DIR]

``--keep DIR`` keeps the working dirs (their plans and run histories) and the
measures; ``--replay DIR`` forecasts those cases again with the code as it is
now, running nothing: a change to the model is checked against the same
measured runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import composable_upgrades as cu
from composable_upgrades.views.forecast_report import Estimate

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from makespan import outputs  # noqa: E402
from report import print_ansible_run_report  # noqa: E402


#: The file of ``--keep``'s folder that says what ran and how long it took.
MEASURES = "measures.json"


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


def measure(args: argparse.Namespace, base: str) -> dict:
    """Rehearse, then run each case; what was run and how long it took."""
    rehearsal = fresh(args.rehearsal, base)
    seconds = timed_run(rehearsal)
    print(f"rehearsal: {args.rehearsal} hosts, {seconds:.1f} s", file=sys.stderr,
          flush=True)
    cases = []
    for hosts in args.hosts:
        wd = fresh(hosts, base)
        for size, extra in ((None, ()), ("10%", ("--rerun", "--batch-size", "10%"))):
            # The forecast is made before the run, from the rehearsal alone.
            predicted = cu.forecast(wd, stage="compute", batch_size=size,
                                    history=[rehearsal]).stages[0]
            measured = timed_run(wd, *extra)
            cases.append({"hosts": hosts, "batch_size": size, "wd": wd,
                          "measured": measured})
            print(" | ".join(row(cases[-1], predicted)), file=sys.stderr, flush=True)
    return {"rehearsal": rehearsal, "cases": cases}


def row(case: dict, predicted: Estimate) -> list[str]:
    """One line of the table: the forecast of ``case`` against its measure."""
    measured = case["measured"]
    error = abs(predicted.p50 - measured) / measured
    return [str(case["hosts"]), "1" if case["batch_size"] is None else case["batch_size"],
            f"{predicted.p50:.1f}", f"{predicted.p90:.1f}", f"{measured:.1f}",
            f"{100 * error:.1f}%", "yes" if measured <= predicted.p90 else "no"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--rehearsal", type=int, default=10,
                        help="compute-stage hosts of the rehearsal")
    parser.add_argument("--keep", metavar="DIR",
                        help="keep the working dirs and measures in DIR (new)")
    parser.add_argument("--replay", metavar="DIR",
                        help="forecast again the cases kept in DIR, running nothing")
    parser.add_argument("--rst", action="store_true")
    args = parser.parse_args()
    header = ["Hosts", "Batches", "P50 (s)", "P90 (s)", "run (s)", "|P50-run|/run",
              "run <= P90"]
    if args.replay:
        with open(os.path.join(args.replay, MEASURES), encoding="utf-8") as handle:
            kept = json.load(handle)
    elif args.keep:
        os.makedirs(args.keep)
        kept = measure(args, args.keep)
        with open(os.path.join(args.keep, MEASURES), "w", encoding="utf-8") as handle:
            json.dump(kept, handle, indent=1)
    else:
        with tempfile.TemporaryDirectory() as base:
            kept = measure(args, base)
            rows = [row(c, _predicted(kept, c)) for c in kept["cases"]]
        print_ansible_run_report(header, rows, rst=args.rst)
        return 0
    rows = [row(c, _predicted(kept, c)) for c in kept["cases"]]
    print_ansible_run_report(header, rows, rst=args.rst)
    return 0


def _predicted(kept: dict, case: dict) -> Estimate:
    """The forecast of ``case`` from the rehearsal's history alone (the runs
    of the case's own working dir are not in it)."""
    return cu.forecast(case["wd"], stage="compute", batch_size=case["batch_size"],
                       history=[kept["rehearsal"]]).stages[0]


if __name__ == "__main__":
    sys.exit(main())

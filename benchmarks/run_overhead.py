"""Run overhead: run_stage against the same ansible-playbook calls by hand.

Prepares a plan onto a fresh rehearsal fleet and runs one stage with
``run_stage`` (ansible-runner, event handling, journal, history). Then, on
another fresh fleet, it runs the same sequence of ``ansible-playbook`` calls
that the run's reproduce script holds, with plain subprocess calls. Both are
repeated, interleaved; the table gives the best and the median time of each
and their ratios. Plans: the demo overcloud (``demo``: short steps, a few
tasks on 3 to 7 hosts) and the no-op rehearsal of the real THT 18 plan
(``tht18-noop``: 9 to 17 hosts, about 20 tasks per role and step).

    .venv/bin/python benchmarks/run_overhead.py [--plan demo|tht18-noop]
        [--stage controlplane|compute] [--batch-size N] [--repeat 7]
        [--all] [--rst]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import composable_upgrades as cu

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import machine, print_machine, print_text  # noqa: E402


THT18 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "tests", "fixtures", "tht18", "stack-outputs.json")
PLAN = "demo"


def _prepared(root: str) -> tuple[str, cu.Fleet]:
    """The plan prepared onto a fresh fleet, ready to run."""
    fleet = cu.Fleet.at(os.path.join(root, "fleet"))
    wd = os.path.join(root, "wd")
    if PLAN == "demo":
        cu.prepare(cu.demo_outputs(), wd, fleet=fleet,
                   dependencies_file=cu.demo_dependencies_path())
        cu.seed_fleet(fleet, cu.Workdir.at(wd).load_plan(), reset=True)
    else:
        cu.prepare(cu.StackOutputs.from_file(THT18), wd, fleet=fleet, noop=True)
        fleet.create(list(cu.Workdir.at(wd).load_plan().hosts) + ["undercloud"])
    return wd, fleet


def _stage_run(stage: str, batch_size: str | None) -> tuple[float, str]:
    """Time run_stage on a fresh fleet; returns (seconds, reproduce script)."""
    with tempfile.TemporaryDirectory() as root:
        wd, fleet = _prepared(root)
        if stage != "controlplane":
            cu.run_stage(wd, "controlplane")
        started = time.perf_counter()
        result = cu.run_stage(wd, stage, batch_size=batch_size)
        elapsed = time.perf_counter() - started
        if not result.ok:
            raise SystemExit(f"run_stage {stage}: {result.status} {result.notes}")
        with open(result.reproduce_script, encoding="utf-8") as handle:
            return elapsed, handle.read()


def _by_hand(stage: str, script: str) -> float:
    """Time the reproduce script's ansible-playbook calls on a fresh fleet."""
    with tempfile.TemporaryDirectory() as root:
        wd, fleet = _prepared(root)
        if stage != "controlplane":
            cu.run_stage(wd, "controlplane")
        # The script names the plan folder of the run it came from; point it
        # at this one (same plan, same bytes, another temp dir).
        plan_dir = cu.Workdir.at(wd).plan_dir
        lines = script.splitlines()
        old_plan = next(line for line in lines if line.startswith("cd ")).split(" ", 1)[1]
        text = script.replace(old_plan, plan_dir)
        path = os.path.join(root, "by-hand.sh")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        started = time.perf_counter()
        subprocess.run(["bash", path], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


#: The configurations of the table in doc/performance.rst (``--all``).
TABLE = (
    ("demo", "controlplane", None),
    ("demo", "compute", None),
    ("demo", "compute", "2"),
    ("tht18-noop", "compute", None),
)


def measure(plan: str, stage: str, batch_size: str | None,
            repeat: int) -> tuple[list[float], list[float], int]:
    """``repeat`` pairs of (run_stage, by hand) times, interleaved; and the calls."""
    global PLAN
    PLAN = plan
    ours, hand = [], []
    script = ""
    for _ in range(repeat):
        elapsed, script = _stage_run(stage, batch_size)
        ours.append(elapsed)
        hand.append(_by_hand(stage, script))
    return ours, hand, script.count("ansible-playbook -i")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=("demo", "tht18-noop"), default="demo")
    parser.add_argument("--stage", default="controlplane")
    parser.add_argument("--batch-size", default=None)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--all", action="store_true",
                        help="every configuration of the table in doc/performance.rst")
    parser.add_argument("--rst", action="store_true", help="also print reST")
    args = parser.parse_args()
    configs = TABLE if args.all else ((args.plan, args.stage, args.batch_size),)
    rows = [["plan, stage", "calls", "run_stage best / median (s)",
             "by hand best / median (s)", "ratio of best / of medians"]]
    for plan, stage, batch_size in configs:
        ours, hand, calls = measure(plan, stage, batch_size, args.repeat)
        name = f"{plan}, {stage}" + (f" in batches of {batch_size}" if batch_size else "")
        rows.append([
            name, str(calls),
            f"{min(ours):.2f} / {statistics.median(ours):.2f}",
            f"{min(hand):.2f} / {statistics.median(hand):.2f}",
            f"{min(ours) / min(hand):.2f} / "
            f"{statistics.median(ours) / statistics.median(hand):.2f}"])
    print(f"run_stage against the same ansible-playbook calls by hand, "
          f"{args.repeat} interleaved runs each")
    print_text(rows)
    print_machine(machine("ansible-core", "ansible-runner", "pexpect"),
                  rst_rows=rows if args.rst else None)


if __name__ == "__main__":
    sys.exit(main())

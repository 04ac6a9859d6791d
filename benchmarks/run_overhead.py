"""Run overhead: run_stage against the same ansible-playbook calls by hand.

Prepares a plan onto a fresh rehearsal fleet and runs one stage with
``run_stage`` (ansible-runner, event handling, journal, history). Then, on
another fresh fleet, it runs the same sequence of ``ansible-playbook`` calls
that the run's reproduce script holds, with plain subprocess calls. Both are
repeated; the table gives the best time of each and their ratio. Plans: the
demo overcloud (``demo``: short steps, a few tasks on 3 to 7 hosts) and the
no-op rehearsal of the real THT 18 plan (``tht18-noop``: 9 to 17 hosts,
about 20 tasks per role and step).

    .venv/bin/python benchmarks/run_overhead.py [--plan demo|tht18-noop]
        [--stage controlplane|compute] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import composable_upgrades as cu


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
        cu.seed_fleet(fleet, cu.Workdir.at(wd).load_plan().data, reset=True)
    else:
        cu.prepare(cu.StackOutputs.from_file(THT18), wd, fleet=fleet, noop=True)
        fleet.create(list(cu.Workdir.at(wd).load_plan().data["hosts"]) + ["undercloud"])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=("demo", "tht18-noop"), default="demo")
    parser.add_argument("--stage", default="controlplane")
    parser.add_argument("--batch-size", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    global PLAN
    PLAN = args.plan
    ours, hand = [], []
    script = ""
    for _ in range(args.repeat):
        elapsed, script = _stage_run(args.stage, args.batch_size)
        ours.append(elapsed)
        hand.append(_by_hand(args.stage, script))
    calls = script.count("ansible-playbook -i")
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"stage {args.stage} of the {args.plan} plan, {calls} ansible-playbook "
          f"calls, best of {args.repeat}")
    print(f"{'':<28}{'seconds':>10}")
    print(f"{'run_stage':<28}{min(ours):>10.2f}")
    print(f"{'ansible-playbook by hand':<28}{min(hand):>10.2f}")
    print(f"{'ratio':<28}{min(ours) / min(hand):>10.2f}")


if __name__ == "__main__":
    sys.exit(main())

"""Run overhead: run_stage against the same ansible-playbook calls by hand.

Prepares the demo overcloud onto a fresh rehearsal fleet and runs one stage
with ``run_stage`` (ansible-runner, event handling, journal, history). Then it
re-seeds the fleet and runs the same sequence of ``ansible-playbook`` calls
that the run's reproduce script holds, with plain subprocess calls. Both are
repeated; the table gives the best time of each and their ratio.

    .venv/bin/python benchmarks/run_overhead.py [--stage compute] [--repeat 3]
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


def _prepared(root: str) -> tuple[str, cu.Fleet]:
    fleet = cu.Fleet.at(os.path.join(root, "fleet"))
    wd = os.path.join(root, "wd")
    cu.prepare(cu.demo_outputs(), wd, fleet=fleet,
               dependencies_file=cu.demo_dependencies_path())
    return wd, fleet


def _seed(wd: str, fleet: cu.Fleet) -> None:
    cu.seed_fleet(fleet, cu.Workdir.at(wd).load_plan().data, reset=True)


def _stage_run(stage: str, batch_size: str | None) -> tuple[float, str]:
    """Time run_stage on a fresh demo fleet; returns (seconds, reproduce script)."""
    with tempfile.TemporaryDirectory() as root:
        wd, fleet = _prepared(root)
        _seed(wd, fleet)
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
        _seed(wd, fleet)
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
    parser.add_argument("--stage", default="controlplane")
    parser.add_argument("--batch-size", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ours, hand = [], []
    script = ""
    for _ in range(args.repeat):
        elapsed, script = _stage_run(args.stage, args.batch_size)
        ours.append(elapsed)
        hand.append(_by_hand(args.stage, script))
    calls = script.count("ansible-playbook -i")
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"stage {args.stage} of the demo overcloud, {calls} ansible-playbook "
          f"calls, best of {args.repeat}")
    print(f"{'':<28}{'seconds':>10}")
    print(f"{'run_stage':<28}{min(ours):>10.2f}")
    print(f"{'ansible-playbook by hand':<28}{min(hand):>10.2f}")
    print(f"{'ratio':<28}{min(ours) / min(hand):>10.2f}")


if __name__ == "__main__":
    sys.exit(main())

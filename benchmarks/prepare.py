"""Benchmark: ``composable_upgrades.state.prepare`` against tripleo-common's config download.

Both run in this process, on the same stack outputs: the THT 18 fixture's 7
roles with their hosts scaled to 18, 180, 720 and 1,440 (the fixture's role
proportions; addresses are made up and never contacted). Each measurement
writes into a fresh temporary directory; the best of ``--repeat`` runs is
reported. tripleo-common is ``Config.download_config`` as python-tripleoclient
calls it (served by a fake Heat client, which lists no deployments), git
commit of the directory included.

Run from the repository root::

    .venv/bin/python benchmarks/prepare.py [--sizes 18,180] [--repeat 3]
        [--profile 720] [--rst]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

import composable_upgrades  # noqa: E402
from tests.tripleo_reference import (  # noqa: E402
    download_config, load_fixture_outputs, scaled_outputs)
from report import machine, print_machine, print_text  # noqa: E402

SIZES = (18, 180, 720, 1440)
REPEAT = 3
#: Stop repeating tripleo-common at a size once its runs took this long.
TC_BUDGET_S = 120.0


@dataclass(frozen=True)
class Row:
    """Best times at one size, and how many runs each took."""

    hosts: int
    ours: float
    theirs: float
    ours_runs: int
    theirs_runs: int

    @property
    def ratio(self) -> float:
        """How many times faster ours is."""
        return self.theirs / self.ours


def run_ours(outputs: Mapping[str, Any], directory: str) -> None:
    """``composable_upgrades.state.prepare`` of ``outputs`` into ``directory``."""
    composable_upgrades.prepare(
        composable_upgrades.StackOutputs.from_mapping(dict(outputs)), directory)


def run_theirs(outputs: Mapping[str, Any], directory: str) -> None:
    """tripleo-common's ``Config.download_config`` into ``directory``."""
    download_config(outputs, os.path.join(directory, "config-download"))


def best_of(run: Callable[[Mapping[str, Any], str], None],
            outputs: Mapping[str, Any], repeat: int,
            budget: float = float("inf")) -> tuple[float, int]:
    """Best wall time of up to ``repeat`` runs (fewer once ``budget`` is spent)."""
    times: list[float] = []
    while len(times) < repeat and sum(times) < budget:
        directory = tempfile.mkdtemp(prefix="bench-prepare-")
        try:
            gc.collect()
            start = time.perf_counter()
            run(outputs, directory)
            times.append(time.perf_counter() - start)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return min(times), len(times)


def measure(sizes: list[int], repeat: int) -> list[Row]:
    """Time both at each size (after one untimed warm-up run of each)."""
    fixture = load_fixture_outputs()
    best_of(run_ours, fixture, 1)
    best_of(run_theirs, fixture, 1)
    rows = []
    for hosts in sizes:
        outputs = scaled_outputs(fixture, hosts)
        ours, ours_runs = best_of(run_ours, outputs, repeat)
        theirs, theirs_runs = best_of(run_theirs, outputs, repeat, TC_BUDGET_S)
        rows.append(Row(hosts, ours, theirs, ours_runs, theirs_runs))
        print(f"  {hosts} hosts done", file=sys.stderr, flush=True)
    return rows


def profile(hosts: int, top: int = 25) -> None:
    """cProfile one ``prepare`` at ``hosts`` hosts; print the top functions."""
    outputs = scaled_outputs(load_fixture_outputs(), hosts)
    best_of(run_ours, outputs, 1)
    directory = tempfile.mkdtemp(prefix="bench-prepare-")
    profiler = cProfile.Profile()
    try:
        profiler.runcall(run_ours, outputs, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def table(rows: list[Row]) -> list[list[str]]:
    """Header and rows of the result table."""
    out = [["hosts", "ours (s)", "tripleo-common (s)", "ratio", "runs"]]
    for r in rows:
        out.append([f"{r.hosts:,}", f"{r.ours:.3f}", f"{r.theirs:.3f}",
                    f"{r.ratio:.1f}x", f"{r.ours_runs} / {r.theirs_runs}"])
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="host counts, comma-separated (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=REPEAT,
                        help="runs per measurement; the best counts")
    parser.add_argument("--profile", type=int, metavar="HOSTS",
                        help="only profile prepare at HOSTS hosts (cProfile)")
    parser.add_argument("--rst", action="store_true",
                        help="also print the result as reST")
    args = parser.parse_args(argv)
    if args.profile:
        profile(args.profile)
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = table(measure(sizes, args.repeat))
    git = subprocess.run(["git", "--version"], capture_output=True, text=True,
                         check=False).stdout.strip() or "not found"
    facts = machine("tripleoclient-upgrade", "tripleo-common", "Jinja2",
                    "GitPython") + [
        ("PyYAML", f"{yaml.__version__} (libyaml: "
                   f"{'yes' if yaml.__with_libyaml__ else 'no'})"),
        ("git", git)]
    print(f"prepare: best of {args.repeat} (tripleo-common: fewer once its "
          f"runs at a size pass {TC_BUDGET_S:.0f} s; 'runs' says how many)\n")
    print_text(rows, left=0)
    print_machine(facts, rst_rows=rows if args.rst else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

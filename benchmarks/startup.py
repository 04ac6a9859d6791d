"""Benchmark: CLI start-up of ``openstack overcloud upgrade run --help``.

Each row runs one command line in a fresh process, ``--runs`` times, after
one untimed warm-up; the rows take turns (run 1 of every row, then run 2...)
so that a change in the machine's load hits them all alike. Reported per
row: the median wall time, the median CPU time (user + system, from
``os.wait4``, which is less sensitive to other work on the machine than wall
time) and the largest peak RSS of the runs.

Rows, in this project's venv (``.venv``): ``openstack --version`` (the
floor: OpenStackClient imports every plugin module, then argparse exits) and
``openstack overcloud upgrade run --help`` (this plugin alone: every command
group loaded, the command's parser built); then ``--version`` and a core
command, ``openstack server list --help``, each with this plugin's entry
points hidden and not: what the plugin costs every ``openstack`` command.
In the coexistence venv (python-tripleoclient 20 and this project,
``tests/coexistence/install.sh``): ``openstack --version``, ``openstack
overcloud upgrade run --help`` (ours, python-tripleoclient installed), and
the latter with this plugin hidden (python-tripleoclient's own command, as
with python-tripleoclient alone) and not.

The ``openstack`` script runs the floor and the headline rows. The
with/without pairs run through ``tests/coexistence/osc_probe.py exec
[--hide-plugin]``, which optionally drops this project's entry points before
OpenStackClient reads them and then calls OpenStackClient's ``main`` as the
script does (the launcher costs about 0.03 s more than the script, the same
on both sides of a pair). The plugin's cost is the median of the run-by-run
differences within a pair.

Run from the repository root::

    .venv/bin/python benchmarks/startup.py [--runs 7] [--rst]
        [--tripleoclient-venv .venv-tripleoclient]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from report import machine, print_machine, print_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tests" / "coexistence" / "osc_probe.py"
RUNS = 7
#: The plugin may add at most this to the start-up of an ``openstack`` command.
TARGET_S = 0.1
#: Imported by ``--help`` these would mean a heavy start-up.
#: (openstacksdk is left out: OpenStackClient imports it at every start-up;
#: tests/test_startup_imports.py checks the plugin adds none of it.)
HEAVY = ("ansible", "ansible_runner", "pandas", "numpy", "matplotlib",
         "composable_upgrades", "tripleoclient")


@dataclass
class Row:
    """One command line and its measurements."""

    key: str
    setup: str
    command: str
    argv: list[str]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_s(self) -> float:
        return statistics.median(self.cpu)

    @property
    def rss_mb(self) -> float:
        return max(self.rss_kb) / 1024


def rows_for(main_venv: Path, tc_venv: Path | None) -> list[Row]:
    """The command lines to time.

    Keys: ``<venv>:<launcher>:<command>``; venv ``main`` or ``tc``, launcher
    ``script`` (the ``openstack`` script), ``probe`` (``osc_probe.py exec``)
    or ``hidden`` (``osc_probe.py exec --hide-plugin``). Each ``hidden`` row
    has a ``probe`` twin, so that a with/without comparison uses the same
    launcher.
    """
    def argv(venv: Path, launcher: str, args: tuple[str, ...]) -> list[str]:
        if launcher == "script":
            return [str(venv / "bin" / "openstack"), *args]
        extra = ["--hide-plugin"] if launcher == "hidden" else []
        return [str(venv / "bin" / "python"), str(PROBE), "exec", *extra,
                "--", *args]

    setups = {("main", "script"): "this plugin",
              ("main", "probe"): "this plugin (launcher)",
              ("main", "hidden"): "plugin hidden",
              ("tc", "script"): "plugin + tripleoclient",
              ("tc", "probe"): "plugin + tripleoclient (launcher)",
              ("tc", "hidden"): "tripleoclient alone (plugin hidden)"}
    version = ("--version",)
    core = ("server", "list", "--help")
    ours = ("overcloud", "upgrade", "run", "--help")
    plan = [("main", "script", version), ("main", "script", ours),
            ("main", "hidden", version), ("main", "probe", version),
            ("main", "hidden", core), ("main", "probe", core)]
    if tc_venv is not None:
        plan += [("tc", "script", version), ("tc", "script", ours),
                 ("tc", "hidden", ours), ("tc", "probe", ours)]
    rows = []
    for venv, launcher, args in plan:
        command = "openstack " + " ".join(args)
        rows.append(Row(f"{venv}:{launcher}:{command}", setups[venv, launcher],
                        command,
                        argv(main_venv if venv == "main" else tc_venv,
                             launcher, args)))
    return rows


def environment(home: str) -> dict[str, str]:
    """No OS_* credentials, a HOME of our own (stevedore caches there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = home
    return env


def run_once(argv: list[str], env: dict[str, str], cwd: str
             ) -> tuple[float, float, int]:
    """Wall time, CPU time and peak RSS (KiB) of one run of ``argv``."""
    import time

    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}; run it "
                         "by hand to see why")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def check_ours(rows: list[Row], env: dict[str, str], cwd: str) -> None:
    """The rows of ``overcloud upgrade run --help`` with the plugin must show
    ours (``--stage``), the hidden ones python-tripleoclient's."""
    for row in rows:
        if "overcloud upgrade run" not in row.command:
            continue
        out = subprocess.run(row.argv, env=env, cwd=cwd, capture_output=True,
                             text=True, check=True).stdout
        ours = "--stage" in out
        if ours != (":hidden:" not in row.key):
            raise SystemExit(f"{row.key}: the help shown is "
                             f"{'ours' if ours else 'python-tripleoclient'}'s; "
                             "is coexistence.take_over_tripleoclient_upgrade() "
                             "called from tripleoclient_upgrade/plugin.py?")


def measure(rows: list[Row], runs: int, env: dict[str, str], cwd: str) -> None:
    """Warm up every row (checking the commands are the right ones), then
    time them in turns."""
    check_ours(rows, env, cwd)
    for row in rows:
        run_once(row.argv, env, cwd)
    for _ in range(runs):
        for row in rows:
            wall, cpu, rss = run_once(row.argv, env, cwd)
            row.wall.append(wall)
            row.cpu.append(cpu)
            row.rss_kb.append(rss)


def import_profile(venv: Path, env: dict[str, str], cwd: str, runs: int = 3
                   ) -> tuple[float, list[str]]:
    """``-X importtime`` of ``overcloud upgrade run --help``: the median of the
    summed self time of this plugin's modules (s), and the heavy packages
    imported."""
    totals = []
    heavy: set[str] = set()
    line = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)")
    for _ in range(runs):
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-X", "importtime",
             str(venv / "bin" / "openstack"), "overcloud", "upgrade", "run",
             "--help"], env=env, cwd=cwd, capture_output=True, text=True,
            check=True)
        total = 0
        for match in line.finditer(done.stderr):
            self_us, name = int(match.group(1)), match.group(3)
            top = name.split(".")[0]
            if top == "tripleoclient_upgrade":
                total += self_us
            if top in HEAVY:
                heavy.add(top)
        totals.append(total / 1e6)
    return statistics.median(totals), sorted(heavy)


def _tc_versions(venv: Path) -> str:
    script = ("import importlib.metadata as m; print(', '.join(d + ' ' + "
              "m.version(d) for d in ('python-tripleoclient', "
              "'tripleo-common', 'python-openstackclient', 'cliff')))")
    return subprocess.run([str(venv / "bin" / "python"), "-c", script],
                          capture_output=True, text=True,
                          check=True).stdout.strip()


def table(rows: list[Row]) -> list[list[str]]:
    """Header and rows of the result table; "- floor" is against
    ``openstack --version`` run by the ``openstack`` script of the same venv."""
    floors = {r.key.split(":")[0]: r for r in rows
              if r.key.endswith(":script:openstack --version")}
    out = [["venv", "setup", "command", "wall (s)", "CPU (s)", "peak RSS (MB)",
            "wall - floor (s)"]]
    for r in rows:
        venv = r.key.split(":")[0]
        out.append(["project" if venv == "main" else "coexistence", r.setup,
                    r.command, f"{r.wall_s:.3f}", f"{r.cpu_s:.3f}",
                    f"{r.rss_mb:.0f}", f"{r.wall_s - floors[venv].wall_s:+.3f}"])
    return out


def paired(with_: Row, without: Row) -> tuple[float, float]:
    """Median of the run-by-run differences (wall, CPU): the two rows ran
    back to back in each turn, so a change of load cancels out."""
    return (statistics.median(a - b for a, b in zip(with_.wall, without.wall)),
            statistics.median(a - b for a, b in zip(with_.cpu, without.cpu)))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS,
                        help="timed runs per row; the median counts "
                             "(default: %(default)s)")
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix),
                        help="this project's venv (default: the running one)")
    parser.add_argument(
        "--tripleoclient-venv", type=Path,
        default=Path(os.environ.get("TRIPLEOCLIENT_VENV")
                     or ROOT / ".venv-tripleoclient"),
        help="the coexistence venv (tests/coexistence/install.sh; default: "
             "$TRIPLEOCLIENT_VENV or .venv-tripleoclient)")
    parser.add_argument("--rst", action="store_true",
                        help="also print the result as reST")
    args = parser.parse_args(argv)

    tc_venv = args.tripleoclient_venv
    if not (tc_venv / "bin" / "openstack").exists():
        print(f"no coexistence venv at {tc_venv} (create it with 'bash "
              "tests/coexistence/install.sh'): its rows are left out\n")
        tc_venv = None
    rows = rows_for(args.venv, tc_venv)
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as home:
        env = environment(home)
        measure(rows, args.runs, env, home)
        plugin_imports, heavy = import_profile(args.venv, env, home)
    by_key = {r.key: r for r in rows}
    result = table(rows)
    facts = machine("python-openstackclient", "cliff", "osc-lib",
                    "tripleoclient-upgrade") + (
        [("coexistence venv", _tc_versions(tc_venv))] if tc_venv else [])

    print(f"openstack start-up: median of {args.runs} runs after a warm-up, "
          "rows in turns; peak RSS: the largest of the runs\n")
    print_text(result, left=3)
    print()
    core = "openstack server list --help"
    version = "openstack --version"
    ours = "openstack overcloud upgrade run --help"
    core_wall, core_cpu = paired(by_key[f"main:probe:{core}"],
                                 by_key[f"main:hidden:{core}"])
    floor_wall, floor_cpu = paired(by_key[f"main:probe:{version}"],
                                   by_key[f"main:hidden:{version}"])
    met = max(core_wall, core_cpu) < TARGET_S
    print(f"The plugin's cost (same command, with - without the plugin, "
          f"paired median): {core}: {core_wall:+.3f} s wall, {core_cpu:+.3f} s "
          f"CPU; {version}: {floor_wall:+.3f} s wall, {floor_cpu:+.3f} s CPU. "
          f"Target < {TARGET_S} s: {'met' if met else 'NOT met'}.")
    if tc_venv is not None:
        tc_wall, tc_cpu = paired(by_key[f"tc:probe:{ours}"],
                                 by_key[f"tc:hidden:{ours}"])
        print(f"With python-tripleoclient, {ours}: ours - python-tripleoclient's "
              f"{tc_wall:+.3f} s wall, {tc_cpu:+.3f} s CPU.")
    print(f"The plugin's own modules (-X importtime, self time summed, median "
          f"of 3): {plugin_imports * 1000:.1f} ms. Heavy packages imported by "
          f"'overcloud upgrade run --help': {', '.join(heavy) or 'none'}.")
    print_machine(facts, rst_rows=result if args.rst else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Execution nodes: the per-step cost of running a step through a node.

Runs one stage of the demo plan on a fresh rehearsal fleet with each
executor, interleaved, ``--repeat`` times:

- ``local, lanes``: the default executor (one ansible-playbook per role,
  alive across the batch);
- ``local, per step``: the same executor, one ansible-playbook call per step;
- ``node local``: the streaming executor with one ``{ssh: local}`` node
  (transmit, a local ``ansible-runner worker``, process);
- ``node ssh``: the same with one SSH node, a loopback address of the test
  OpenSSH server (``--ssh-fleet``; needs root and ``make sshfleet``); its
  worker runs the venv's ansible-runner through ``sudo -n``.

The table gives each one's best and median time and, per step, the
difference of its best and median from those of ``local, per step`` (the
same ansible-playbook calls without the stream): the cost of a node.

    .venv/bin/python benchmarks/nodes.py [--stage controlplane|compute]
        [--repeat 5] [--ssh-fleet] [--rst]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import composable_upgrades as cu
from composable_upgrades.run.ansible import AnsibleExecutor
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.request import checked_request
from composable_upgrades.run.stage_runner import run_request
from composable_upgrades.run.streaming import StreamingExecutor
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.store import HistoryStore, new_run_id

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from report import machine, print_machine, print_text  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)

#: name -> executor for (plan, run_dir, env)
Factory = Callable[..., object]


def _prepared(root: str) -> str:
    """The demo plan prepared onto a fresh fleet, ready to run."""
    fleet = cu.Fleet.at(os.path.join(root, "fleet"))
    wd = os.path.join(root, "wd")
    cu.prepare(cu.demo_outputs(), wd, fleet=fleet,
               dependencies_file=cu.demo_dependencies_path())
    cu.seed_fleet(fleet, cu.Workdir.at(wd).load_plan(), reset=True)
    return wd


def _timed(stage: str, factory: Factory) -> tuple[float, int]:
    """Seconds of one run of ``stage`` with ``factory``'s executor; its steps."""
    with tempfile.TemporaryDirectory() as root:
        wd = _prepared(root)
        if stage != "controlplane":
            cu.run_stage(wd, "controlplane")
        workdir = cu.Workdir.at(wd)
        plan, env, request = checked_request(workdir, stage, RunOptions())
        run_id = new_run_id(stage)
        executor = factory(plan, os.path.join(workdir.runs_dir, run_id), env)
        started = time.perf_counter()
        result = run_request(plan, request, executor, run_id=run_id,
                             journal=Journal(workdir.state_dir),
                             sink=HistoryStore(workdir.history_path))
        elapsed = time.perf_counter() - started
        if result.status != "successful":
            raise SystemExit(f"{stage}: {result.status} {result.notes}")
        return elapsed, len(result.steps)


def _factories(ssh: dict | None) -> dict[str, Factory]:
    found: dict[str, Factory] = {
        "local, lanes": lambda plan, run_dir, env: AnsibleExecutor(plan, run_dir, env=env),
        "local, per step": lambda plan, run_dir, env: AnsibleExecutor(
            plan, run_dir, env=env, lanes=False),
        "node local": lambda plan, run_dir, env: StreamingExecutor(
            plan, run_dir, {"nodes": {"central": {"ssh": "local"}}}, env=env),
    }
    if ssh is not None:
        found["node ssh"] = lambda plan, run_dir, env: StreamingExecutor(
            plan, run_dir, {"nodes": {"edge": ssh}}, env=env)
    return found


def _ssh_node(server) -> dict:
    return {"ssh": f"{server.user}@{server.addresses[0]}", "port": server.port,
            "identity_file": str(server.private_key),
            "ssh_options": ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null",
                            "IdentitiesOnly=yes", "LogLevel=ERROR"],
            "runner": f"sudo -n {VENV_BIN}/ansible-runner",
            "ansible_playbook": f"{VENV_BIN}/ansible-playbook"}


def measure(stage: str, repeat: int, ssh: dict | None) -> tuple[dict[str, list[float]], int]:
    """``repeat`` interleaved times per executor, and the stage's steps."""
    times: dict[str, list[float]] = {}
    steps = 0
    factories = _factories(ssh)
    for _ in range(repeat):
        for name, factory in factories.items():
            elapsed, steps = _timed(stage, factory)
            times.setdefault(name, []).append(elapsed)
    return times, steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="controlplane")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ssh-fleet", action="store_true",
                        help="also through an SSH node of the test OpenSSH server")
    parser.add_argument("--rst", action="store_true", help="also print reST")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nodes-bench-") as scratch:
        server = None
        if args.ssh_fleet:
            sys.path.insert(0, os.path.dirname(HERE))
            from tests.sshfleet.launcher import SshFleetServer, loopback_addresses
            server = SshFleetServer(scratch, loopback_addresses(1))
            server.start()
        try:
            times, steps = measure(args.stage, args.repeat,
                                   _ssh_node(server) if server else None)
        finally:
            if server is not None:
                server.stop()
    base = times["local, per step"]
    rows = [["executor", "best / median (s)", "steps",
             "per step vs local per step, best / median (s)"]]
    for name, values in times.items():
        median = statistics.median(values)
        rows.append([name, f"{min(values):.2f} / {median:.2f}", str(steps),
                     f"{(min(values) - min(base)) / steps:+.2f} / "
                     f"{(median - statistics.median(base)) / steps:+.2f}"])
    print(f"demo, stage {args.stage}: {args.repeat} interleaved runs per executor")
    print_text(rows)
    print_machine(machine("ansible-core", "ansible-runner", "pexpect"),
                  rst_rows=rows if args.rst else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

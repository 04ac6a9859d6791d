"""The maintenance window against its critical path: ``run`` on sleeping hosts.

A sandboxed overcloud whose every task sleeps a known, per-host length
(2.0-3.0 s, a different one per host and step) is prepared onto a local
fleet: a controlplane of Database, Messaging and Controller (three hosts
each; Controller's keystone needs Database's mysql, Messaging needs
neither) and a compute stage of Compute and CephStorage hosts in the ratio
4:1, in one batch. For each stage the table gives the wall time of the whole
``openstack overcloud upgrade run --stage S -y`` command (start-up included),
the ideal (the sum, over steps, of the slowest host of each wave of role
plays, as if every host ran at once), and their ratio, with ``--ansible-forks
100`` (the engine's own cost) and with the default forks (min(4 x CPUs,
100), what this machine gives).

    .venv/bin/python benchmarks/makespan.py [--hosts 50 100 200] [--task command|lookup] [--rst]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import composable_upgrades as cu

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from report import print_ansible_run_report  # noqa: E402

STEPS = range(6)
CONTROLPLANE = {"Database": ("mysql", 3), "Messaging": ("oslo_messaging_rpc", 3),
                "Controller": ("keystone", 3)}


def sleep_of(host: str, step: int) -> float:
    """The seconds ``host`` sleeps at ``step``: 2.00-2.99, fixed per pair."""
    digest = hashlib.sha256(f"{host}/{step}".encode()).digest()
    return 2.0 + digest[0] % 100 / 100


def layout(compute_hosts: int) -> dict[str, tuple[str, list[str]]]:
    """Role -> (service, hosts) of the benchmark overcloud."""
    roles = {role: (service, [f"{role.lower()}-{i}" for i in range(count)])
             for role, (service, count) in CONTROLPLANE.items()}
    ceph = compute_hosts // 5
    roles["Compute"] = ("nova_compute", [f"compute-{i}" for i in range(compute_hosts - ceph)])
    roles["CephStorage"] = ("ceph_osd", [f"ceph-{i}" for i in range(ceph)])
    return roles


#: How a task sleeps: a ``command`` module on the host (a Python module
#: process per host and task, as real tasks have), or a ``pipe`` lookup in
#: Ansible's worker (no module process: what is left is the engine's cost).
TASKS = {
    "command": lambda step: {
        "ansible.builtin.command": f"sleep {{{{ bench_sleep[{step}] }}}}"},
    "lookup": lambda step: {
        "ansible.builtin.debug": {
            "msg": f"{{{{ lookup('ansible.builtin.pipe', 'sleep ' ~ bench_sleep[{step}]) }}}}"}},
}


def outputs(compute_hosts: int, task: str = "command") -> cu.StackOutputs:
    """Sandboxed outputs: one sleeping task per role and step."""
    roles = layout(compute_hosts)
    role_data: dict[str, Any] = {}
    host_vars: dict[str, Any] = {}
    for role, (service, hosts) in roles.items():
        role_data[role] = {"service_names": [service], "upgrade_tasks": [
            {"name": f"{service} step {step}", "when": f"step|int == {step}",
             **TASKS[task](step)}
            for step in STEPS]}
        host_vars[role] = {h: {"bench_sleep": [sleep_of(h, s) for s in STEPS]}
                           for h in hosts}
    return cu.StackOutputs.from_mapping(
        {"RehearsalSandbox": True, "RoleData": role_data,
         "AnsibleHostVarsMap": host_vars},
        source=f"makespan benchmark, {compute_hosts} compute-stage hosts")


def ideal(plan: cu.PreparedPlan, stage: str) -> float:
    """Sum over steps of the slowest host of each wave."""
    total = 0.0
    for step in plan.stage(stage).steps:
        for wave in step.waves:
            total += max(sleep_of(h, step.number) for play in step.plays
                         if play.role in wave for h in play.hosts)
    return total


def timed_run(wd: str, stage: str, forks: int | None) -> float:
    """Seconds of the whole ``run`` command."""
    argv = [os.path.join(os.path.dirname(sys.executable), "openstack"),
            "overcloud", "upgrade", "run", "--working-dir", wd, "--stage", stage, "-y"]
    if forks:
        argv += ["--ansible-forks", str(forks)]
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"run --stage {stage} failed: {done.stderr.strip()}")
    return elapsed


def measure(compute_hosts: int, forks: int | None, base: str,
            task: str = "command") -> list[list[str]]:
    """Rows (stage, hosts, forks, measured, ideal, ratio) of one fresh plan."""
    root = tempfile.mkdtemp(dir=base)
    wd = os.path.join(root, "wd")
    fleet = cu.Fleet.at(os.path.join(root, "fleet"))
    prepared = cu.prepare(outputs(compute_hosts, task), wd, fleet=fleet)
    plan = prepared.prepared
    fleet.create(list(plan.hosts))
    rows = []
    for stage in ("controlplane", "compute"):
        seconds = timed_run(wd, stage, forks)
        best = ideal(plan, stage)
        rows.append([stage, str(len(plan.stage(stage).hosts)), str(forks or "default"),
                     f"{seconds:.1f}", f"{best:.1f}", f"{seconds / best:.2f}"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[50, 100, 200],
                        help="compute-stage hosts (Compute and CephStorage, 4:1)")
    parser.add_argument("--forks", nargs="+", default=["100", "default"],
                        help="--ansible-forks values ('default': none given)")
    parser.add_argument("--task", choices=sorted(TASKS), default="command",
                        help="how a task sleeps (default: a command module)")
    parser.add_argument("--rst", action="store_true")
    args = parser.parse_args()
    header = ["Stage", "Hosts", "Forks", "run (s)", "Ideal (s)", "Ratio"]
    print(f"tasks: {args.task}", file=sys.stderr)
    rows: list[list[str]] = []
    seen_controlplane: set[str] = set()
    with tempfile.TemporaryDirectory() as base:
        for hosts in args.hosts:
            for forks in args.forks:
                for row in measure(hosts, None if forks == "default" else int(forks),
                                   base, args.task):
                    # The controlplane is the same at every size: once per forks.
                    if row[0] == "controlplane":
                        if forks in seen_controlplane:
                            continue
                        seen_controlplane.add(forks)
                    rows.append(row)
                    print(" | ".join(row), file=sys.stderr, flush=True)
    print_ansible_run_report(header, rows, rst=args.rst)
    return 0


if __name__ == "__main__":
    sys.exit(main())

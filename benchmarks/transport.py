"""The same stage over a local and an SSH fleet: what real SSH costs a run.

A sandboxed overcloud of one Controller and N Compute hosts (default 50),
each compute running a few file tasks in its sandbox at steps 0-5, is
prepared onto a local fleet and onto an SSH fleet (an sshd of tests/sshfleet
on 127.0.0.2 onwards, as tripleo-admin with sudo; needs root). The compute
stage runs in one batch with the run's default settings (forks min(4 x CPUs,
100), python-tripleoclient's SSH arguments). The table gives the wall time of
``run_stage`` for each transport, best of ``--repeat`` fresh runs.

    .venv/bin/python benchmarks/transport.py [--hosts 50] [--repeat 2] [--rst]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

import composable_upgrades as cu
from composable_upgrades.model.fleet import ssh_address

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from report import machine, print_machine, print_text  # noqa: E402
from tests.sshfleet.launcher import SshFleetServer  # noqa: E402


def outputs(computes: int) -> cu.StackOutputs:
    """A sandboxed overcloud: a controller and ``computes`` computes."""
    def tasks(service: str) -> list[dict[str, Any]]:
        return [{"name": f"{service} - step {{{{ step }}}} marker",
                 "ansible.builtin.copy": {
                     "dest": f"{{{{ rehearsal_root }}}}/{service}-step{{{{ step }}}}",
                     "content": "done\n"}}]
    hosts = {"Controller": ["overcloud-controller-0"],
             "Compute": [f"overcloud-novacompute-{i}" for i in range(computes)]}
    return cu.StackOutputs.from_mapping({
        "RehearsalSandbox": True,
        "RoleData": {
            "Controller": {"service_names": ["keystone"], "upgrade_tasks": tasks("keystone")},
            "Compute": {"service_names": ["nova_compute"],
                        "upgrade_tasks": tasks("nova_compute")}},
        "AnsibleHostVarsMap": {role: {h: {} for h in names} for role, names in hosts.items()},
    }, source=f"transport benchmark, {computes} computes")


def timed_compute_stage(root: str, data: cu.StackOutputs, fleet: cu.Fleet,
                        key: str | None) -> tuple[float, int]:
    """Seconds of the compute stage's run_stage, and its number of steps."""
    wd = os.path.join(root, "wd")
    prepared = cu.prepare(data, wd, fleet=fleet)
    fleet.create(list(prepared.prepared.hosts))
    assert cu.run_stage(wd, "controlplane", ssh_key=key).ok
    started = time.perf_counter()
    result = cu.run_stage(wd, "compute", ssh_key=key)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"compute stage {result.status}: {result.notes}")
    return elapsed, len(prepared.prepared.stage("compute").steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50, help="compute hosts")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rst", action="store_true")
    args = parser.parse_args()
    data = outputs(args.hosts)
    best: dict[str, float] = {}
    steps = 0
    with tempfile.TemporaryDirectory() as base, \
            SshFleetServer(os.path.join(base, "sshd"),
                           [ssh_address(i) for i in range(args.hosts + 1)]) as server:
        for _ in range(args.repeat):
            for transport in ("local", "ssh"):
                with tempfile.TemporaryDirectory(dir=base) as root:
                    fleet = cu.Fleet.at(os.path.join(root, "fleet"), transport=transport,
                                        ssh_port=server.port or 22)
                    key = str(server.private_key) if transport == "ssh" else None
                    seconds, steps = timed_compute_stage(root, data, fleet, key)
                best[transport] = min(seconds, best.get(transport, seconds))
    rows = [["Transport", "Compute hosts", "Steps", "run_stage (s)", "vs local"],
            *[[t, str(args.hosts), str(steps), f"{best[t]:.1f}",
               f"{best[t] / best['local']:.2f}"] for t in ("local", "ssh")]]
    print_text(rows)
    print_machine(machine("ansible-core", "ansible-runner"),
                  rst_rows=rows if args.rst else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

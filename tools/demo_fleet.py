"""Demo helpers for tools/demo.sh: seed the rehearsal fleet, check invariants.

    python tools/demo_fleet.py outputs            path of the demo outputs file
    python tools/demo_fleet.py dependencies       path of its dependencies file
    python tools/demo_fleet.py hooks              path of its hooks file (its drain)
    python tools/demo_fleet.py seed WORKING_DIR   seed the plan's fleet, two
                                                  instances on each compute
    python tools/demo_fleet.py check WORKING_DIR STAGE
                                                  invariant table; exit 1 if any fails
"""

from __future__ import annotations

import sys

import composable_upgrades as cu
from composable_upgrades.rehearsal.demo import demo_hooks_path, demo_outputs_path

#: Instances seeded on each compute, moved off by the demo's drain hook.
INSTANCES = 2


def main(argv: list[str]) -> int:
    command, *args = argv
    if command == "outputs":
        print(demo_outputs_path())
        return 0
    if command == "dependencies":
        print(cu.demo_dependencies_path())
        return 0
    if command == "hooks":
        print(demo_hooks_path())
        return 0
    plan = cu.Workdir.at(args[0]).load_plan()
    fleet = cu.Fleet.at(plan.fleet_root)
    if command == "seed":
        cu.seed_fleet(fleet, plan, reset=True, instances=INSTANCES)
        print(f"seeded {len(plan.hosts)} hosts and the undercloud "
              f"under {fleet.root} with release 17.1, {INSTANCES} instances "
              "on each compute")
        return 0
    report = cu.check_invariants(fleet, plan, args[1])
    width = max(len(c.name) for c in report.checks)
    print(f"invariants after {args[1]}:")
    for check in report.checks:
        print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name:<{width}}  {check.detail}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

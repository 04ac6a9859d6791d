"""Invariants of a rehearsed demo upgrade, checked on the fleet's sandboxes.

After each stage of the demo overcloud (:mod:`.demo`) has run on a rehearsal
fleet, :func:`check_invariants` reads every host's sandbox and says whether
the upgrade did what the stages promise:

after an upgrade stage (``controlplane``, ``compute``, ...)
    every service of the hosts of that stage and the stages before runs the
    new release; RPC versions stay pinned where the service pins them; the
    new kernel is installed and a reboot flagged where it differs from the
    running one; the hosts of later stages are untouched;
after ``converge``
    every service runs the new release; no RPC pin is left; the packages
    TripleO does not manage are upgraded; exactly the hosts whose kernel
    changed were rebooted, once, and none waits for a reboot;
with instances seeded (``seed_fleet(..., instances=N)``)
    no instance sat on a compute between its ``nova_compute`` stop and start
    in an upgrade step, nor when it rebooted in converge (the moves are read
    from the undercloud's ``instances.log``, written by the demo's drain
    hook); every instance still exists, once, where the moves put it;
always
    the recorded events respect the service dependencies: on each host,
    within a step, a service's events come after those of the services it
    depends on; across the control-plane hosts, all events of a service at
    a step come after all events of its dependencies at that step.

Deployment-wide converge events (step ``converge``) have no service order and
are not part of the dependency checks. The checks assume each step ran once
on a freshly seeded fleet (``seed_fleet(..., reset=True)``): a step run again
records a second pass whose events follow the first pass's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from composable_upgrades.errors import StageError
from composable_upgrades.model.fleet import Fleet
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.dependencies import Dependencies
from composable_upgrades.planning.plan import UNDERCLOUD_HOST
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.planning.stages import CONVERGE
from composable_upgrades.rehearsal.demo import (
    INSTANCES_DIR, INSTANCES_LOG, NOVA_COMPUTE, SEED_FILE, demo_dependencies_path,
    demo_outputs, demo_settings)
from composable_upgrades.rehearsal.report import Check, InvariantReport
from composable_upgrades.rehearsal.sandbox import Event, Sandbox

CONVERGE_STEP = "converge"
_SHOWN = 5  # problems spelled out in a check's detail
_PIN = re.compile(r"services/([A-Za-z0-9_]+)/rpc_pin")


# Check names, stable so callers and tests can pick a check.
SEEDED = "fleet seeded"
UPGRADED = "upgraded hosts run the new release"
PINNED = "RPC versions pinned"
KERNEL = "new kernel installed, reboot flagged"
UNTOUCHED = "later-stage hosts untouched"
UNPINNED = "RPC versions unpinned"
PACKAGES = "unmanaged packages upgraded"
REBOOTS = "reboots exactly where the kernel changed"
EVENTS = "events well-formed"
ORDER_HOST = "dependency order on each host"
ORDER_CONTROLPLANE = "dependency order across control-plane hosts"
INSTANCES = "instances drained and kept"


@lru_cache(maxsize=1)
def _demo() -> tuple[dict[str, Any], frozenset[str], Dependencies]:
    """Demo settings, the services that pin RPC, and the dependencies."""
    outputs = demo_outputs()
    pinning = set()
    for role in outputs["RoleData"].values():
        pinning.update(_PIN.findall(json.dumps(role.get("upgrade_tasks") or [])))
    return (demo_settings(outputs), frozenset(pinning),
            Dependencies.load(demo_dependencies_path()))


def check_invariants(fleet: Fleet, plan: PreparedPlan,
                     after: str) -> InvariantReport:
    """Check the demo's invariants on ``fleet`` after stage ``after``.

    ``plan`` is a prepared plan (see :func:`.demo.seed_fleet`); ``after`` names an upgrade stage of it (``controlplane``,
    ``compute``, ...) or ``converge``.
    """
    settings, pinning, dependencies = _demo()
    stages = plan.stages
    upgrade = [s for s in stages if s.kind in (StageKind.CONTROLPLANE, StageKind.BATCHED)]
    names = [s.name for s in upgrade]
    converge = after == CONVERGE or any(
        s.name == after and s.kind == StageKind.CONVERGE for s in stages)
    if converge:
        done, pending = upgrade, []
    elif after in names:
        index = names.index(after)
        done, pending = upgrade[:index + 1], upgrade[index + 1:]
    else:
        raise StageError(f"cannot check invariants after {after!r}: not an "
                         f"upgrade stage of the plan (stages: "
                         f"{', '.join(names + [CONVERGE])})", stage=after)
    hosts = {name: h.role for name, h in plan.hosts.items()}
    services = {role: list(r.services) for role, r in plan.roles.items()}
    boxes = {h: Sandbox(fleet, h) for h in sorted(hosts)}
    done_hosts = [h for s in done for h in s.hosts]
    pending_hosts = [h for s in pending for h in s.hosts]
    controlplane = [h for s in stages if s.kind == StageKind.CONTROLPLANE
                    for h in s.hosts]
    undercloud = Sandbox(fleet, UNDERCLOUD_HOST)
    every_box = list(boxes.values()) + ([undercloud] if os.path.isdir(undercloud.root)
                                        else [])
    ctx = _Context(settings, pinning, dependencies, hosts, services, boxes)

    checks = [_check_seeded(ctx)]
    checks.append(ctx.upgraded(done_hosts, ", ".join(s.name for s in done)))
    if converge:
        checks += [ctx.unpinned(), ctx.packages(), ctx.reboots()]
    else:
        checks += [ctx.pinned(done_hosts), ctx.kernel(done_hosts),
                   ctx.untouched(pending_hosts)]
    events = {box.host: box.events() for box in every_box}
    bad = [line for _, malformed in events.values() for line in malformed]
    checks.append(_check(EVENTS, bad, f"{sum(len(e) for e, _ in events.values())} "
                         f"events on {len(events)} hosts"))
    checks.append(_check(ORDER_HOST, [
        f"{host} {problem}" for host, (found, _) in sorted(events.items())
        for problem in _order_problems(found, dependencies)],
        f"{len(events)} hosts"))
    merged = [e for h in controlplane for e in events.get(h, ([], []))[0]]
    checks.append(_check(ORDER_CONTROLPLANE, _order_problems(merged, dependencies),
                         f"{len(controlplane)} control-plane hosts"))
    seeded = {h: list(ctx.seed(h).get("instances") or []) for h in boxes}
    if any(seeded.values()):
        checks.append(_check_instances(seeded, boxes, undercloud,
                                       {h: e for h, (e, _) in events.items()}))
    return InvariantReport(after=after, checks=tuple(checks))


def _check_instances(seeded: Mapping[str, list[str]], boxes: Mapping[str, Sandbox],
                     undercloud: Sandbox, events: Mapping[str, list[Event]]) -> Check:
    """Instances away from a compute while it was upgraded or rebooted, and
    every one of them still there, once, where the logged moves put it."""
    problems: list[str] = []
    where = {name: host for host, names in seeded.items() for name in names}
    moves: list[tuple[Decimal, str, str, str]] = []
    for number, line in enumerate((undercloud.read(INSTANCES_LOG) or "").splitlines(), 1):
        fields = line.split()
        try:
            moves.append((Decimal(fields[0]), fields[1], fields[2], fields[3]))
        except (IndexError, InvalidOperation):
            problems.append(f"{INSTANCES_LOG}:{number}: {line!r}")
    moves.sort()
    busy: list[str] = []
    reboots = 0
    for host, found in events.items():
        for start, end, what in _busy(found):
            reboots += what == "reboot"
            # Instances there as it began, and any moved in before it ended.
            there = {n for n, h in _placement(where, moves, start).items() if h == host}
            there |= {m[1] for m in moves if m[3] == host and start < m[0] <= end}
            busy += [f"{name} on {host} during its {what}" for name in sorted(there)]
    final = _placement(where, moves, None)
    on_disk: dict[str, list[str]] = {}
    for host, box in boxes.items():
        folder = os.path.join(box.root, INSTANCES_DIR)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            on_disk.setdefault(name, []).append(host)
    for name in sorted(where):
        hosts = on_disk.get(name, [])
        if not hosts:
            problems.append(f"{name} is gone")
        elif len(hosts) > 1:
            problems.append(f"{name} is on {len(hosts)} hosts: {', '.join(hosts)}")
        elif hosts[0] != final[name]:
            problems.append(f"{name} is on {hosts[0]}, its moves say {final[name]}")
    problems += [f"{name}: not a seeded instance" for name in sorted(on_disk)
                 if name not in where]
    return _check(INSTANCES, problems + busy, f"{len(where)} instances, "
                  f"{len(moves)} moves, {reboots} reboots")


def _busy(found: Iterable[Event]) -> list[tuple[Decimal, Decimal, str]]:
    """When a host could hold no instance: from each ``nova_compute`` stop
    to the next start, and each reboot."""
    spans, stopped = [], None
    for event in sorted(found, key=_time):
        if event.service == NOVA_COMPUTE and event.action == "stop":
            stopped = _time(event)
        elif event.service == NOVA_COMPUTE and event.action == "start" \
                and stopped is not None:
            spans.append((stopped, _time(event), "nova_compute upgrade"))
            stopped = None
        elif event.step == CONVERGE_STEP and event.action == "reboot":
            spans.append((_time(event), _time(event), "reboot"))
    if stopped is not None:
        spans.append((stopped, Decimal("Infinity"), "nova_compute upgrade"))
    return spans


def _placement(where: Mapping[str, str], moves: Iterable[tuple[Decimal, str, str, str]],
               at: Decimal | None) -> dict[str, str]:
    """Where each instance was at time ``at`` (None: in the end)."""
    placed = dict(where)
    for when, name, _, to in moves:
        if at is not None and when > at:
            break
        placed[name] = to
    return placed


def _check(name: str, problems: list[str], good: str) -> Check:
    if not problems:
        return Check(name, True, good)
    shown = "; ".join(problems[:_SHOWN])
    more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return Check(name, False, f"{count}: {shown}{more}")


def _check_seeded(ctx: _Context) -> Check:
    missing = [h for h, box in ctx.boxes.items() if box.seed() is None]
    return _check(SEEDED, [f"{h}: no {SEED_FILE}" for h in missing],
                  f"{len(ctx.boxes)} hosts")


@dataclass(frozen=True)
class _Context:
    settings: Mapping[str, Any]
    pinning: frozenset[str]
    dependencies: Dependencies
    hosts: Mapping[str, str]
    services: Mapping[str, list[str]]
    boxes: Mapping[str, Sandbox]

    def host_services(self, host: str) -> list[str]:
        return self.services.get(self.hosts[host], [])

    def seed(self, host: str) -> dict[str, Any]:
        return self.boxes[host].seed() or {}

    def upgraded(self, hosts: Iterable[str], stages: str) -> Check:
        release = self.settings["release_to"]
        problems, count = [], 0
        for host in hosts:
            box = self.boxes[host]
            for service in self.host_services(host):
                count += 1
                version = box.read(f"services/{service}/version")
                running = box.read(f"services/{service}/running")
                if version != release or running != "true":
                    problems.append(f"{host} {service}: version {version}, "
                                    f"running {running}")
        return _check(UPGRADED, problems,
                      f"{count} services at {release} and running "
                      f"(stages: {stages})")

    def pinned(self, hosts: Iterable[str]) -> Check:
        release = self.settings["release_from"]
        problems, count = [], 0
        for host in hosts:
            box = self.boxes[host]
            for service in self.host_services(host):
                if service in self.pinning:
                    count += 1
                    pin = box.read(f"services/{service}/rpc_pin")
                    if pin != release:
                        problems.append(f"{host} {service}: pin {pin}")
                elif box.exists(f"services/{service}/rpc_pin"):
                    problems.append(f"{host} {service}: pinned but does not pin RPC")
        return _check(PINNED, problems, f"{count} services pinned to {release}")

    def kernel(self, hosts: Iterable[str]) -> Check:
        problems, count = [], 0
        for host in hosts:
            box = self.boxes[host]
            count += 1
            target = self.settings["kernel_targets"].get(self.hosts[host])
            deployed = self.seed(host).get("kernel")
            installed = box.read("kernel/installed")
            package = box.packages().get("kernel")
            flagged = box.exists("reboot-required")
            if installed != target or package != target:
                problems.append(f"{host}: installed kernel {installed} "
                                f"(package {package}), expected {target}")
            if flagged != (target != deployed):
                problems.append(f"{host}: reboot-required "
                                f"{'present' if flagged else 'missing'} with "
                                f"running kernel {box.read('kernel/running')} "
                                f"and installed {installed}")
        return _check(KERNEL, problems, f"{count} hosts")

    def untouched(self, hosts: list[str]) -> Check:
        release = self.settings["release_from"]
        problems = []
        for host in hosts:
            box = self.boxes[host]
            seed = self.seed(host)
            for service in self.host_services(host):
                version = box.read(f"services/{service}/version")
                running = box.read(f"services/{service}/running")
                if version != release or running != "true":
                    problems.append(f"{host} {service}: version {version}, "
                                    f"running {running}")
            if box.pins():
                problems.append(f"{host}: pinned {', '.join(box.pins())}")
            if box.packages() != seed.get("packages"):
                problems.append(f"{host}: packages changed")
            if box.read("kernel/installed") != seed.get("kernel") or \
                    box.exists("reboot-required"):
                problems.append(f"{host}: kernel changed")
            events, malformed = box.events()
            if events or malformed:
                problems.append(f"{host}: {len(events) + len(malformed)} events "
                                "recorded")
        return _check(UNTOUCHED, problems,
                      f"{len(hosts)} hosts at {release}" if hosts
                      else "no hosts in later stages")

    def unpinned(self) -> Check:
        problems = [f"{host}: still pinned {', '.join(box.pins())}"
                    for host, box in self.boxes.items() if box.pins()]
        return _check(UNPINNED, problems, f"{len(self.boxes)} hosts")

    def packages(self) -> Check:
        names = self.settings["unmanaged_packages"]
        problems = []
        for host, box in self.boxes.items():
            seeded = self.seed(host).get("packages", {})
            have = box.packages()
            for name in names:
                if not have.get(name) or have.get(name) == seeded.get(name):
                    problems.append(f"{host} {name}: {have.get(name)} "
                                    f"(deployed {seeded.get(name)})")
        return _check(PACKAGES, problems,
                      f"{', '.join(names)} on {len(self.boxes)} hosts")

    def reboots(self) -> Check:
        problems, rebooted = [], 0
        for host, box in self.boxes.items():
            seed = self.seed(host)
            installed = box.read("kernel/installed")
            running = box.read("kernel/running")
            changed = installed != seed.get("kernel")
            try:
                boots = int(box.read("boot_count") or "")
            except ValueError:
                problems.append(f"{host}: boot_count unreadable")
                continue
            expected = int(seed.get("boot_count", 0)) + (1 if changed else 0)
            rebooted += changed
            if boots != expected:
                problems.append(f"{host}: booted {boots - int(seed.get('boot_count', 0))} "
                                f"times, expected {expected - int(seed.get('boot_count', 0))} "
                                f"(kernel {'changed' if changed else 'unchanged'})")
            if running != installed:
                problems.append(f"{host}: running kernel {running}, installed {installed}")
            if box.exists("reboot-required"):
                problems.append(f"{host}: reboot-required left")
        return _check(REBOOTS, problems, f"{rebooted} of {len(self.boxes)} hosts "
                      "rebooted")


def _order_problems(events: Iterable[Event], dependencies: Dependencies) -> list[str]:
    """Where, within a step, a service has events before those of a dependency."""
    spans: dict[str, dict[str, tuple[Event, Event]]] = {}
    for event in events:
        if event.step == CONVERGE_STEP:
            continue
        by_service = spans.setdefault(event.step, {})
        first, last = by_service.get(event.service, (event, event))
        by_service[event.service] = (min(first, event, key=_time),
                                     max(last, event, key=_time))
    problems = []
    for step, by_service in sorted(spans.items()):
        for service, (first, _) in sorted(by_service.items()):
            for dependency in sorted(dependencies.requires(service)):
                if dependency in by_service:
                    _, last = by_service[dependency]
                    if last.time >= first.time:
                        problems.append(
                            f"step {step}: {service} {first.action} at "
                            f"{first.time} before {dependency} {last.action} "
                            f"at {last.time}")
    return problems


def _time(event: Event) -> Decimal:
    return event.time

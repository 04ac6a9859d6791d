"""Lanes: one long-lived ansible-playbook process per role of a batch.

Starting ansible-playbook costs about a second of CPU (imports, inventory,
playbook parsing), once per call; a batch that runs six steps for three roles
one call each pays it eighteen times. A lane pays it once: its playbook holds
the role's play of every step of the batch, each preceded by a barrier play
whose task waits (in the ``composable_upgrades_barrier`` lookup, shipped with
the lane) until the run writes the step's barrier file. Between two steps a
lane waits there, so the run still decides, as with one call per step, when
every host of the batch has finished step N and whether step N+1 starts.

The barrier play first reports which of the lane's hosts are still playing
(``ansible_play_hosts``: Ansible drops failed and unreachable hosts from the
plays that follow), which is how the run learns, step by step, who failed.
Nothing here starts a process; :mod:`.lane_processes` does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from composable_upgrades.formats.package_data import package_text
from composable_upgrades.formats.serialize import load_yaml, read_regular_file, to_yaml
from composable_upgrades.planning.prepared import PreparedPlan, PreparedStage

#: What the names of the barrier's plays and tasks start with.
BARRIER = "composable-upgrades barrier"
#: How the barrier task that reports the hosts still playing ends its name.
PLAYING = "| playing"
#: The lookup plugin that waits for a barrier file.
BARRIER_LOOKUP = "composable_upgrades_barrier"
_PLUGIN_SOURCE = "barrier_lookup.py"


@dataclass(frozen=True)
class LanePlan:
    """What one lane runs: ``role``'s plays of ``steps`` on ``hosts``."""

    name: str
    role: str
    hosts: tuple[str, ...]
    steps: tuple[int | str, ...]
    forks: int

    def gate_file(self, gate_dir: str, step: int | str) -> str:
        """The file that releases this lane into ``step``."""
        return os.path.join(gate_dir, f"{self.name}-step{step}")


def lane_steps(stage: PreparedStage, role: str, steps: Sequence[int | str],
               start: int | str) -> tuple[int | str, ...]:
    """The steps of ``steps``, from ``start`` on, at which ``role`` has a play."""
    numbers = list(steps)
    later = numbers[numbers.index(start):] if start in numbers else numbers
    return tuple(s for s in later if any(p.role == role for p in stage.step(s).plays))


def lane_forks(total: int, stage: PreparedStage, role: str, hosts: int,
               by_role: Mapping[str, int], steps: Sequence[int | str]) -> int:
    """The lane's share of ``total`` forks: in proportion to its hosts among
    the hosts of the plays it runs with (its wave), at the busiest step."""
    busiest = hosts
    for number in steps:
        step = stage.step(number)
        wave = step.waves[step.wave_of(role) - 1] if step.wave_of(role) else (role,)
        busiest = max(busiest, sum(by_role.get(r, 0) for r in wave))
    return max(1, round(total * hosts / busiest)) if busiest else max(1, total)


def lane_playbook(plan: PreparedPlan, stage: PreparedStage, lane: LanePlan,
                  gate_dir: str, owner: int) -> str:
    """The playbook of ``lane``: a barrier, then the step's playbook, per step.

    The plays are the plan's own, the lane's role's play of each step
    playbook (its task files by absolute path): a lane does not load the
    other roles' task files. ``owner`` is the pid of the run: a barrier whose
    run is gone fails instead of waiting.
    """
    plays: list[dict] = []
    for number in lane.steps:
        name = f"{BARRIER} | {lane.role} | before step {number}"
        plays.append({
            "name": name, "hosts": "all", "gather_facts": False, "become": False,
            "tasks": [
                {"name": f"{name} {PLAYING}", "run_once": True, "tags": ["always"],
                 "ansible.builtin.debug": {"var": "ansible_play_hosts"}},
                {"name": f"{name} | wait", "run_once": True, "tags": ["always"],
                 "ansible.builtin.debug": {"msg": "{{ lookup('%s', %r, owner=%d) }}" % (
                     BARRIER_LOOKUP, lane.gate_file(gate_dir, number), owner)}},
            ]})
        plays.extend(role_plays(plan, stage.step(number).playbook, lane.role))
    return to_yaml(plays, header=(
        f"Lane {lane.name}: role {lane.role}, steps "
        f"{', '.join(map(str, lane.steps))}, {len(lane.hosts)} hosts.\n"
        "Each step waits at its barrier until the run releases it."))


def role_plays(plan: PreparedPlan, playbook: str, role: str) -> list[dict]:
    """The plays of ``role`` in the plan's step ``playbook``, with the task
    files they import named by absolute path."""
    plays = load_yaml(read_regular_file(plan.file(playbook)).decode("utf-8")) or []
    found = []
    for play in plays:
        if not isinstance(play, dict) or play.get("hosts") != role:
            continue
        play = dict(play)
        play["tasks"] = [{**t, "import_tasks": plan.file(t["import_tasks"])}
                         if isinstance(t, dict) and "import_tasks" in t else t
                         for t in play.get("tasks") or []]
        found.append(play)
    return found


def install_barrier_plugin(lane_dir: str) -> None:
    """Put the barrier lookup beside the lanes' playbooks, where Ansible
    finds playbook-adjacent plugins whatever its configured paths."""
    plugins = os.path.join(lane_dir, "lookup_plugins")
    os.makedirs(plugins, exist_ok=True)
    with open(os.path.join(plugins, f"{BARRIER_LOOKUP}.py"), "w",
              encoding="utf-8") as handle:
        handle.write(package_text(_PLUGIN_SOURCE))

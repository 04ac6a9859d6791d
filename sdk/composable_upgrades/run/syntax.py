"""``ansible-playbook --syntax-check`` of a stage, with the run's own settings.

The check resolves every module, action plugin and role of the stage's
playbooks through exactly the environment a run would give ansible-playbook
(:func:`.environment.run_environment`: tripleo-ansible's paths under
``/usr/share/ansible``, or where ``COMPOSABLE_UPGRADES_ANSIBLE_SHARE``
points), so it fails here, before a maintenance window, where a run would
fail on its first task. Nothing runs on any host.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from composable_upgrades.errors import RunError
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.run.ansible import ansible_playbook_binary
from composable_upgrades.run.environment import path_for, run_environment
from composable_upgrades.run.options import RunOptions
from composable_upgrades.state.workdir import Workdir

#: Seconds one check may take (THT 18's whole plan takes a few).
TIMEOUT = 600


@dataclass(frozen=True)
class SyntaxCheck:
    """A passed check: the stages and playbooks checked, the settings used."""

    stages: tuple[str, ...]
    playbooks: tuple[str, ...]
    environment: dict[str, str]


def syntax_check(working_dir: str | os.PathLike[str], stage: str | None = None, *,
                 options: RunOptions | None = None) -> SyntaxCheck:
    """Check the playbooks of ``stage`` (default: every stage) of the plan in
    ``working_dir``; :class:`RunError` with Ansible's first error line when
    the check fails."""
    plan = Workdir.at(working_dir).load_plan()
    stages = [plan.stage(stage)] if stage else list(plan.stages)
    playbooks = tuple(s.playbook for s in stages if s.steps)
    env = run_environment(options or RunOptions())
    if playbooks:
        _check(plan, playbooks, env)
    return SyntaxCheck(stages=tuple(s.name for s in stages), playbooks=playbooks,
                       environment=env)


def _check(plan: PreparedPlan, playbooks: tuple[str, ...], env: dict[str, str]) -> None:
    binary = ansible_playbook_binary()
    # As a run starts ansible-playbook: this environment, the run's settings
    # on top (the operator's own ANSIBLE_* already won in them).
    environ = {**os.environ, **env, "PATH": path_for(binary)}
    try:
        done = subprocess.run(
            [binary, "--syntax-check", "-i", plan.file("inventory.yaml"), *playbooks],
            cwd=plan.path, env=environ, capture_output=True, text=True,
            timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RunError(f"syntax check of {', '.join(playbooks)} took over "
                       f"{TIMEOUT} s") from exc
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines()
                 if line.strip()]
        first = next((line for line in lines if "ERROR" in line), None) \
            or (lines[0] if lines else "no output")
        raise RunError(f"syntax check failed: {plan.scrub(first)}", rc=done.returncode)

"""``openstack overcloud upgrade <command> --help`` imports nothing heavy.

OpenStackClient imports every plugin module, and every command module of
every command group, at each start-up, whatever command runs: a heavy import
at module level in this plugin would slow every ``openstack`` command of the
operator. The SDK, ansible-runner, pandas and matplotlib are imported where a
command runs, never to build a parser.

The check runs each command's ``--help`` through OpenStackClient's shell in
a subprocess of this venv (``tests/coexistence/osc_probe.py``) and compares
the modules then loaded with those of ``openstack server list --help`` with
this plugin's entry points hidden: the same start-up (every command group
loaded, one parser built) without the plugin. OpenStackClient itself imports
openstacksdk, so that is allowed only as far as the baseline has it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "coexistence" / "osc_probe.py"
COMMANDS = ["overcloud upgrade prepare", "overcloud upgrade plan",
            "overcloud upgrade run", "overcloud upgrade converge",
            "overcloud upgrade status", "overcloud upgrade history",
            "overcloud upgrade plan diff"]
# Top-level packages that --help must not import at all.
NEVER = ("ansible", "ansible_runner", "pandas", "numpy", "matplotlib", "tqdm",
         "composable_upgrades", "tripleoclient")
# What the plugin may add to the baseline: its own modules and the stdlib.
ALLOWED = {"tripleoclient_upgrade", *sys.stdlib_module_names}


def _top(module: str) -> str:
    return module.split(".")[0]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(home)
    jobs = {"baseline": ["modules", "--hide-plugin", "--", "server", "list",
                         "--help"],
            "help": ["resolve", *COMMANDS]}

    def run(args):
        return subprocess.run([sys.executable, str(PROBE), *args], env=env,
                              cwd=home, capture_output=True, text=True,
                              timeout=180)

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(jobs, pool.map(run, jobs.values())))
    for name, result in done.items():
        assert result.returncode == 0, (name, result.stderr[-3000:])
    baseline = json.loads(done["baseline"].stdout)
    report = json.loads(done["help"].stdout)
    return {"baseline": set(baseline), "help": set(report["modules"]),
            "commands": report["commands"]}


def test_help_works(loaded):
    for name in COMMANDS:
        command = loaded["commands"][name]
        assert command["status"] == 0, (name, command)
        assert command["resolved"].startswith("tripleoclient_upgrade."), command
        assert f"usage: openstack {name}" in command["help"]


def test_help_imports_nothing_heavy(loaded):
    heavy = sorted(m for m in loaded["help"] if _top(m) in NEVER)
    assert not heavy, f"--help imported {heavy[:20]}"
    added = sorted(m for m in loaded["help"] - loaded["baseline"]
                   if _top(m) not in ALLOWED)
    assert not added, f"the plugin's --help imported {added[:20]}"


def test_plugin_modules_loaded(loaded):
    """The check means something: the plugin's command modules were loaded."""
    assert "tripleoclient_upgrade.overcloud_upgrade" in loaded["help"]
    assert not any(_top(m) == "tripleoclient_upgrade" for m in loaded["baseline"])
    assert "openstackclient.compute.v2.server" in loaded["baseline"]

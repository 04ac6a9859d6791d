"""Installed beside python-tripleoclient 20, this plugin owns ``overcloud upgrade``.

The checks run in a venv of their own that holds python-tripleoclient 20 and
this project (``tests/coexistence/install.sh``; ``$TRIPLEOCLIENT_VENV``,
default ``<repo>/.venv-tripleoclient``). CI creates it; without it these
tests fail and say how to create it.

A clean stderr proves nothing (osc-lib sets the ``cliff`` logger to ERROR,
so cliff's duplicate warning never shows): ``tests/coexistence/osc_probe.py``
runs ``openstack <command> --help`` through OpenStackClient's shell in that
venv and reports what the command manager resolved, every entry point that
registers the name, and the duplicate warnings cliff logged. It runs under
several PYTHONHASHSEED values, with the entry points in installed and in
reverse order, and also loads the plugin groups into fresh command managers
in both orders.

The handoff of ``prepare --templates -e ...`` to python-tripleoclient's own
prepare runs there too (``tests/coexistence/handoff_probe.py``), as far as it
can without an undercloud: python-tripleoclient's command is found, built and
parses the forwarded arguments itself; its ``take_action`` (the stack update
in Heat, then SSH to the hosts) is the one thing isolated, replaced by
tripleo-common's config download of the THT 18 fixture's outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cliff.commandmanager import CommandManager as CliffCommandManager

from tripleoclient_upgrade import coexistence

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("TRIPLEOCLIENT_VENV") or REPO / ".venv-tripleoclient")
INSTALL = REPO / "tests" / "coexistence" / "install.sh"
PROBE = REPO / "tests" / "coexistence" / "osc_probe.py"
HANDOFF_PROBE = REPO / "tests" / "coexistence" / "handoff_probe.py"
STAMP = ".tripleoclient-installed"

OURS = {
    "overcloud upgrade prepare": "tripleoclient_upgrade.overcloud_upgrade:Prepare",
    "overcloud upgrade run": "tripleoclient_upgrade.overcloud_upgrade:Run",
    "overcloud upgrade converge": "tripleoclient_upgrade.overcloud_upgrade:Converge",
}
# What python-tripleoclient 20 registers under the same names.
THEIRS = {
    "overcloud upgrade prepare": "tripleoclient.v1.overcloud_upgrade:UpgradePrepare",
    "overcloud upgrade run": "tripleoclient.v1.overcloud_upgrade:UpgradeRun",
}
# python-tripleoclient commands that must keep working.
KEPT = {
    "overcloud deploy": "tripleoclient.v1.overcloud_deploy:DeployOvercloud",
    "overcloud external-upgrade run":
        "tripleoclient.v1.overcloud_external_upgrade:ExternalUpgradeRun",
}
# An option only our command has, and a mark only python-tripleoclient's
# help has (our prepare takes its options too: see the handoff tests below).
HELP_MARKS = {
    "overcloud upgrade prepare": ("--outputs-file", "Run heat stack update"),
    "overcloud upgrade run": ("--stage", "--static-inventory"),
    "overcloud upgrade converge": ("--resume", "--templates"),
}
OUR_GROUP = "openstack.overcloud_upgrade.v1"
THEIR_GROUP = "openstack.tripleoclient.v2"
# (PYTHONHASHSEED, reverse the entry points): both orders, several seeds.
VARIANTS = [("0", False), ("1", True), ("4242", False), ("31337", True)]


# -- the mechanism itself, in this process ---------------------------------

def _manager_class():
    class Manager(CliffCommandManager):
        pass
    coexistence.take_over_tripleoclient_upgrade(Manager)
    return Manager


def test_replaced_modules_are_added_to_the_ignored_modules():
    manager = _manager_class()(None, ignored_modules=("a.b",))
    assert manager.ignored_modules == ("a.b", *coexistence.REPLACED_MODULES)
    assert _manager_class()().ignored_modules == coexistence.REPLACED_MODULES
    ignored = manager._is_module_ignored
    assert ignored("tripleoclient.v1.overcloud_upgrade", manager.ignored_modules)
    for kept in ("tripleoclient.v1.overcloud_deploy",
                 "tripleoclient.v1.overcloud_external_upgrade",
                 "tripleoclient.v1.overcloud_upgrade_extra",
                 "tripleoclient_upgrade.overcloud_upgrade"):
        assert not ignored(kept, manager.ignored_modules), kept


def test_take_over_is_idempotent_and_keeps_earlier_managers():
    class Manager(CliffCommandManager):
        pass
    earlier = Manager(None, ignored_modules=("x.y",))
    coexistence.take_over_tripleoclient_upgrade(Manager)
    descriptor = Manager.__dict__["ignored_modules"]
    coexistence.take_over_tripleoclient_upgrade(Manager)
    assert Manager.__dict__["ignored_modules"] is descriptor
    assert earlier.ignored_modules == ("x.y", *coexistence.REPLACED_MODULES)
    later = Manager(None, ignored_modules=coexistence.REPLACED_MODULES)
    assert later.ignored_modules == coexistence.REPLACED_MODULES
    assert "ignored_modules" not in CliffCommandManager.__dict__


def test_plugin_import_installs_it_and_stays_light():
    """Importing the plugin module (what OpenStackClient does) installs the
    mechanism, imports nothing but the plugin's own small modules, and never
    python-tripleoclient."""
    script = (
        "import json, sys\n"
        "import osc_lib.command.commandmanager as cm\n"
        "before = set(sys.modules)\n"
        "import tripleoclient_upgrade.plugin\n"
        "print(json.dumps({'new': sorted(set(sys.modules) - before),\n"
        "  'installed': type(cm.CommandManager.__dict__.get('ignored_modules'))"
        ".__name__}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["installed"] == "_IgnoredModules", (
        "tripleoclient_upgrade/plugin.py does not call "
        "coexistence.take_over_tripleoclient_upgrade() at import")
    assert set(report["new"]) <= {
        "tripleoclient_upgrade", "tripleoclient_upgrade.plugin",
        "tripleoclient_upgrade.coexistence"}, report["new"]


# -- in the venv with python-tripleoclient 20 ------------------------------

def _setup_hash() -> str:
    data = (REPO / "setup.cfg").read_bytes() + (REPO / "setup.py").read_bytes()
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def venv() -> Path:
    how = (f"create it with 'bash {INSTALL.relative_to(REPO)} {VENV}' "
           "(about a minute; CI does it) or point TRIPLEOCLIENT_VENV at one")
    stamp = VENV / STAMP
    if not (VENV / "bin" / "openstack").exists() or not stamp.exists():
        pytest.fail(f"no python-tripleoclient venv at {VENV}: {how}",
                    pytrace=False)
    if f"setup={_setup_hash()}" not in stamp.read_text():
        pytest.fail(f"the venv at {VENV} was installed from another setup.cfg "
                    f"(its entry points are stale): re-run 'bash "
                    f"{INSTALL.relative_to(REPO)} {VENV}'", pytrace=False)
    return VENV


@pytest.fixture(scope="module")
def runs(venv: Path, tmp_path_factory) -> dict:
    """Every subprocess of the module, run concurrently (each takes seconds)."""
    home = tmp_path_factory.mktemp("home")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("OS_") and k != "PYTHONHASHSEED"}
    base["HOME"] = str(home)
    python, openstack = str(venv / "bin" / "python"), str(venv / "bin" / "openstack")
    names = [*OURS, *KEPT]
    jobs = {}
    for seed, reverse in VARIANTS:
        argv = [python, str(PROBE), "resolve", *names]
        if reverse:
            argv.insert(3, "--reverse-entry-points")
        jobs[("probe", seed, reverse)] = (argv, {**base, "PYTHONHASHSEED": seed})
    for name in [*KEPT, "overcloud upgrade prepare"]:
        jobs[("cli", name)] = ([openstack, *name.split(), "--help"], base)
    jobs[("command list",)] = ([openstack, "command", "list", "-f", "json"], base)
    entry_points = (
        "import importlib.metadata as md, json\n"
        "print(json.dumps([[e.group, e.name, e.value] for e in "
        "md.distribution('python-tripleoclient').entry_points]))\n")
    jobs[("entry_points",)] = ([python, "-c", entry_points], base)

    def run(job):
        argv, env = job
        return subprocess.run(argv, env=env, cwd=home, capture_output=True,
                              text=True, timeout=180)

    # Warm stevedore's entry point cache in this HOME once, not 8 times.
    warm = run(([python, str(PROBE), "modules", "--", "--version"], base))
    assert warm.returncode == 0, warm.stderr[-3000:]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(jobs, pool.map(run, jobs.values())))
    return done


def _probe(runs: dict, seed: str, reverse: bool) -> dict:
    done = runs[("probe", seed, reverse)]
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("seed,reverse", VARIANTS,
                         ids=[f"seed{s}-{'reversed' if r else 'installed'}"
                              for s, r in VARIANTS])
def test_ours_win_registered_once(runs, seed, reverse):
    report = _probe(runs, seed, reverse)
    assert report["versions"]["python-tripleoclient"] == "20.0.0", report["versions"]
    assert report["plugin_file"], "the plugin was not imported"
    assert Path(report["plugin_file"]).resolve().is_relative_to(REPO), (
        f"the venv runs another copy of the plugin: {report['plugin_file']}")
    assert set(coexistence.REPLACED_MODULES) <= set(report["ignored_modules"])
    for name, ours in OURS.items():
        command = report["commands"][name]
        assert command["status"] == 0, (name, command)
        assert command["resolved"] == ours, (name, command["resolved"])
        live = [r["target"] for r in command["registrations"] if not r["ignored"]]
        assert live == [ours], (name, command["registrations"])
        assert command["duplicate_warnings"] == [], command["duplicate_warnings"]
        if name in THEIRS:
            # The collision is real: python-tripleoclient registers the
            # name too, and cliff skipped it.
            skipped = [r["target"] for r in command["registrations"] if r["ignored"]]
            assert skipped == [THEIRS[name]], command["registrations"]
        mine, theirs = HELP_MARKS[name]
        assert f"usage: openstack {name}" in command["help"], command["help"][:300]
        assert mine in command["help"] and theirs not in command["help"], name
    for name, theirs in KEPT.items():
        command = report["commands"][name]
        assert command["status"] == 0, (name, command)
        assert command["resolved"] == theirs, (name, command["resolved"])
        assert command["duplicate_warnings"] == []


@pytest.mark.parametrize("seed,reverse", VARIANTS,
                         ids=[f"seed{s}-{'reversed' if r else 'installed'}"
                              for s, r in VARIANTS])
def test_group_order_does_not_matter(runs, seed, reverse):
    """Fresh command managers load the plugin groups in the shell's order
    and reversed: ours win both ways, each name registered once."""
    orders = _probe(runs, seed, reverse)["orders"]
    positions = set()
    for order in orders.values():
        groups = order["groups"]
        assert OUR_GROUP in groups and THEIR_GROUP in groups, groups
        positions.add(groups.index(OUR_GROUP) < groups.index(THEIR_GROUP))
        for name, ours in OURS.items():
            assert order["resolved"][name] == ours, (name, order["groups"])
            assert order["registered"][name] == 1, name
        for name, theirs in KEPT.items():
            assert order["resolved"][name] == theirs
        assert order["duplicate_warnings"] == []
    assert positions == {True, False}, "both group orders were not tried"


def test_entry_point_order_was_really_flipped(runs):
    """The shell loaded our group before python-tripleoclient's in one
    variant and after it in another: the winner did not come from order."""
    positions = set()
    for seed, reverse in VARIANTS:
        groups = _probe(runs, seed, reverse)["groups"]
        positions.add(groups.index(OUR_GROUP) < groups.index(THEIR_GROUP))
    assert positions == {True, False}


@pytest.mark.parametrize("name", [*KEPT, "overcloud upgrade prepare"])
def test_real_cli_help(runs, name):
    """The ``openstack`` script itself: python-tripleoclient's other commands
    still work, and ``overcloud upgrade prepare`` is ours."""
    done = runs[("cli", name)]
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"usage: openstack {name}" in done.stdout, done.stdout[:300]
    if name in HELP_MARKS:
        mine, theirs = HELP_MARKS[name]
        assert mine in done.stdout and theirs not in done.stdout


def test_replaced_module_holds_only_commands_we_provide(runs):
    """Ignoring a whole module hides every command in it: each one must be a
    command this plugin registers."""
    done = runs[("entry_points",)]
    assert done.returncode == 0, done.stderr
    hidden = {name.replace("_", " ")
              for group, name, value in json.loads(done.stdout)
              if group.startswith("openstack.")
              and value.split(":")[0] in coexistence.REPLACED_MODULES}
    assert hidden == set(THEIRS), hidden
    import importlib.metadata as md
    provided = {ep.name.replace("_", " ")
                for ep in md.entry_points(group=OUR_GROUP)}
    assert hidden <= provided, hidden - provided


def test_command_list_shows_each_command_where_it_runs(runs):
    """``openstack command list`` lists the replaced commands in our group
    only, and python-tripleoclient's other commands in its group."""
    done = runs[("command list",)]
    assert done.returncode == 0, done.stderr[-3000:]
    groups = {row["Command Group"]: row["Commands"] for row in json.loads(done.stdout)}
    ours, theirs = set(groups[OUR_GROUP]), set(groups[THEIR_GROUP])
    assert set(OURS) <= ours, set(OURS) - ours
    assert not set(THEIRS) & theirs, set(THEIRS) & theirs
    assert set(KEPT) <= theirs, set(KEPT) - theirs
    listed = [name for names in groups.values() for name in names]
    for name in THEIRS:
        assert listed.count(name) == 1, (name, listed.count(name))


# -- the handoff of ``prepare --templates -e ...`` ---------------------------

_PARSER_DUMP = """
import json, warnings
warnings.simplefilter("ignore")
from tripleoclient.v1.overcloud_upgrade import UpgradePrepare
parser = UpgradePrepare(None, None).get_parser("prepare")
print(json.dumps([[a.option_strings, type(a).__name__, a.nargs]
                  for a in parser._actions if a.option_strings]))
"""


@pytest.fixture(scope="module")
def handoffs(venv: Path, tmp_path_factory) -> dict:
    """python-tripleoclient's prepare parser, and two handoffs through the
    ``openstack`` shell of the venv (tests/coexistence/handoff_probe.py: the
    stack update, which needs the undercloud's Heat, is the one thing
    isolated; python-tripleoclient's command is found, built, and parses the
    forwarded arguments itself)."""
    home = tmp_path_factory.mktemp("handoff-home")
    base = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    base["HOME"] = str(home)
    python = str(venv / "bin" / "python")
    given = home / "given"
    output_dir = home / "downloaded"
    jobs = {
        "parser": [python, "-c", _PARSER_DUMP],
        "given": [python, str(HANDOFF_PROBE), str(home / "given.json"),
                  "--templates", "/usr/share/tht-18", "-e", "/env/upgrade-prepare.yaml",
                  "--environment-file", "/env/containers.yaml", "-r", "/roles.yaml",
                  "-n", "/network_data.yaml", "--ntp-server", "pool.ntp.org",
                  "--timeout", "460", "--working-dir", str(given), "-y"],
        "defaults": [python, str(HANDOFF_PROBE), str(home / "defaults.json"),
                     "--templates", "-e", "/env/upgrade-prepare.yaml",
                     "--stack", "cloud2", "--output-dir", str(output_dir),
                     "--stack-only", "-y", "-f", "json"],
        "failing": [python, str(HANDOFF_PROBE), str(home / "failing.json"),
                    "--templates", "-e", "/env/upgrade-prepare.yaml",
                    "--working-dir", str(home / "failing"), "-y"],
    }
    failing = {**base, "HANDOFF_PROBE_FAIL": "ERROR: stack update failed: Heat is down"}

    def run(job):
        name, argv = job
        return subprocess.run(argv, env=failing if name == "failing" else base,
                              cwd=home, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip(jobs, pool.map(run, jobs.items())))
    return {"home": home, "given_dir": given, "output_dir": output_dir, **done}


def _recorded(handoffs: dict, name: str) -> dict:
    done = handoffs[name]
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((handoffs["home"] / f"{name}.json").read_text())


def test_prepare_accepts_every_option_of_tripleoclient_prepare(handoffs):
    """The options the handoff forwards are python-tripleoclient 20's, each
    with the same kind of value; the shared ones are the rest."""
    from tripleoclient_upgrade import handoff

    done = handoffs["parser"]
    assert done.returncode == 0, done.stderr[-3000:]
    kinds = {"_StoreAction": handoff.VALUE, "_StoreTrueAction": handoff.FLAG,
             "_StoreFalseAction": handoff.FLAG, "_AppendAction": handoff.APPEND}
    theirs = {}
    for flags, action, nargs in json.loads(done.stdout):
        if "--help" in flags:
            continue
        kind = handoff.OPTIONAL if nargs == "?" else kinds[action]
        theirs[tuple(sorted(flags))] = kind
    ours = {tuple(sorted(o.flags)): o.kind for o in handoff.PREPARE_OPTIONS}
    shared = {flags: kind for flags, kind in theirs.items()
              if any(f in handoff.SHARED for f in flags)}
    assert sorted(shared) == sorted([("--stack",), ("--working-dir",),
                                     ("--overcloud-ssh-user",), ("--yes", "-y")])
    assert ours == {f: k for f, k in theirs.items() if f not in shared}


def test_handoff_runs_tripleoclient_prepare_with_the_arguments_given(handoffs):
    recorded = _recorded(handoffs, "given")
    assert recorded["class"] == "tripleoclient.v1.overcloud_upgrade:UpgradePrepare"
    args = recorded["args"]
    assert args["templates"] == "/usr/share/tht-18"
    assert args["environment_files"] == ["/env/upgrade-prepare.yaml",
                                         "/env/containers.yaml"]
    assert (args["roles_file"], args["networks_file"]) == (
        "/roles.yaml", "/network_data.yaml")
    assert (args["ntp_server"], args["timeout"]) == ("pool.ntp.org", 460)
    assert args["working_dir"] == str(handoffs["given_dir"])
    assert (args["stack"], args["yes"]) == ("overcloud", True)


def test_handoff_plans_from_the_config_tripleoclient_wrote(handoffs):
    """The plan is built from ``<working dir>/config-download/<stack>``, into
    the same working dir's subfolder."""
    from composable_upgrades import Workdir

    done = handoffs["given"]
    assert done.returncode == 0, done.stderr[-3000:]
    written = handoffs["given_dir"] / "config-download" / "overcloud"
    assert f"planning from its config at {written}" in done.stderr
    plan = Workdir.at(handoffs["given_dir"]).load_plan()
    assert [s.name for s in plan.stages] == ["external", "controlplane",
                                             "compute", "converge"]
    assert len(plan.hosts) == 26
    assert "next: openstack overcloud upgrade run --stage controlplane" in done.stderr


def test_handoff_defaults_follow_tripleoclient(handoffs):
    """No --working-dir: both use ~/overcloud-deploy/<stack>; --output-dir
    moves the config, and the plan is read from there; a bare --templates
    keeps python-tripleoclient's default templates."""
    from composable_upgrades import Workdir

    args = _recorded(handoffs, "defaults")["args"]
    assert args["templates"] == "/usr/share/openstack-tripleo-heat-templates/"
    assert (args["stack"], args["working_dir"], args["stack_only"]) == (
        "cloud2", None, True)
    assert args["output_dir"] == str(handoffs["output_dir"])
    assert (handoffs["output_dir"] / "cloud2" / "Controller").is_dir()
    rows = json.loads(handoffs["defaults"].stdout)
    assert [r["Stage"] for r in rows] == ["external", "controlplane", "compute",
                                          "converge"]
    plan = Workdir.at(handoffs["home"] / "overcloud-deploy" / "cloud2").load_plan()
    assert plan.stack == "cloud2"


def test_a_failed_stack_update_is_one_line_and_no_plan(handoffs):
    done = handoffs["failing"]
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "python-tripleoclient's prepare failed: ERROR: stack update failed: "
        "Heat is down")
    assert not (handoffs["home"] / "failing" / "composable-upgrade").exists()

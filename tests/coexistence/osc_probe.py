"""Ask OpenStackClient, in the venv that runs this file, which class owns a command.

Run with the python of the venv under test (the tests and
``benchmarks/startup.py`` start it in a subprocess)::

    python osc_probe.py resolve [--reverse-entry-points] [--hide-plugin] NAME...
    python osc_probe.py exec [--hide-plugin] -- ARG...
    python osc_probe.py modules [--hide-plugin] -- ARG...

``resolve`` runs ``openstack NAME --help`` for each NAME exactly as the
``openstack`` script does (``OpenStackShell().run(argv)``), in this process,
with the help text captured, then asks the shell's command manager what NAME
resolved to and lists every entry point that registers NAME in the groups
the shell loaded, with whether cliff skipped it as an ignored module. It
also records cliff's "found duplicate implementations" warnings, which
osc-lib hides (it sets the ``cliff`` logger to ERROR), and loads the plugin
command groups again into fresh command managers in the shell's order and
in reverse order, to show that the winner does not depend on it. It prints
one JSON document.

``exec`` runs ``openstack ARG...`` and exits with its status. ``modules``
runs it with its output discarded and prints the JSON list of the modules
imported by then (``resolve`` adds the same list, after its last command,
as ``modules``).

``--reverse-entry-points`` reverses the order stevedore returns every entry
point group in, before OpenStackClient is imported: the plugin modules are
imported in reverse, and the plugins' command groups load in reverse, as
they would if the ``*.dist-info`` directories were listed the other way.
``--hide-plugin`` drops this project's entry points, as if it were not
installed (python-tripleoclient alone).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys

PLUGIN_PACKAGE = "tripleoclient_upgrade"
# The command groups OpenStackClient loads after every plugin's group.
LAST_GROUPS = ("openstack.common", "openstack.extension")


def _patch_entry_points(reverse: bool, hide_plugin: bool) -> None:
    """Reorder or filter stevedore's entry points; before OSC is imported."""
    if not (reverse or hide_plugin):
        return
    from stevedore import _cache

    original = _cache.get_group_all

    def get_group_all(group, path=None):
        eps = list(original(group, path=path))
        if hide_plugin:
            eps = [ep for ep in eps
                   if ep.value.split(":")[0].split(".")[0] != PLUGIN_PACKAGE]
        if reverse:
            eps.reverse()
        return eps

    _cache.get_group_all = get_group_all


def _record_duplicates() -> list[dict]:
    """Collect cliff's duplicate-command warnings whatever the log level.

    Each is ``{"name": command name, "modules": "first, second"}``.
    """
    import cliff.commandmanager

    warnings: list[dict] = []
    log = cliff.commandmanager.LOG
    original = log.warning

    def warning(msg, *args, **kwargs):
        if "duplicate" in str(msg) and args and isinstance(args[0], dict):
            warnings.append({"name": args[0].get("name"),
                             "modules": args[0].get("modules")})
        return original(msg, *args, **kwargs)

    log.warning = warning
    return warnings


def _registrations(manager, name: str) -> list[dict]:
    """Every entry point of the manager's groups that registers ``name``."""
    from stevedore import _cache

    found = []
    for group in manager.get_command_groups():
        for ep in _cache.get_group_all(group):
            if ep.name.replace("_", " ") != name:
                continue
            found.append({
                "group": group, "target": ep.value,
                "ignored": manager._is_module_ignored(ep.module,
                                                      manager.ignored_modules)})
    return found


def _distribution_versions() -> dict:
    import importlib.metadata as md

    versions = {}
    for dist in ("python-openstackclient", "cliff", "osc-lib", "stevedore",
                 "python-tripleoclient", "tripleoclient-upgrade"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    return versions


def resolve(names: list[str]) -> dict:
    duplicates = _record_duplicates()
    from openstackclient import shell
    from osc_lib.command import commandmanager

    result = {"versions": _distribution_versions(), "commands": {},
              "orders": {}}
    plugin_groups: list[str] = []
    for name in names:
        out, err = io.StringIO(), io.StringIO()
        before = len(duplicates)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            app = shell.OpenStackShell()
            status = app.run(name.split() + ["--help"])
        manager = app.command_manager
        cls, _, _ = manager.find_command(name.split())
        result["commands"][name] = {
            "status": status,
            "resolved": f"{cls.__module__}:{cls.__qualname__}",
            "help": out.getvalue(),
            "registrations": _registrations(manager, name),
            "duplicate_warnings": [w for w in duplicates[before:]
                                   if w["name"] == name],
        }
        result["groups"] = manager.get_command_groups()
        result["ignored_modules"] = list(manager.ignored_modules)
        plugin_groups = [g for g in manager.get_command_groups()
                         if g.startswith("openstack.") and g != "openstack.cli"
                         and g not in LAST_GROUPS]

    # The same groups loaded into fresh managers in both orders.
    for order, groups in (("shell", plugin_groups),
                          ("reversed", plugin_groups[::-1])):
        before = len(duplicates)
        manager = commandmanager.CommandManager(
            "openstack.cli", ignored_modules=shell.IGNORED_MODULES)
        for group in [*groups, *LAST_GROUPS]:
            manager.add_command_group(group)
        resolved = {}
        for name in names:
            cls, _, _ = manager.find_command(name.split())
            resolved[name] = f"{cls.__module__}:{cls.__qualname__}"
        result["orders"][order] = {
            "groups": manager.get_command_groups(), "resolved": resolved,
            "registered": {name: sum(not r["ignored"]
                                     for r in _registrations(manager, name))
                           for name in names},
            "duplicate_warnings": [w for w in duplicates[before:]
                                   if w["name"] in names]}
    plugin = sys.modules.get(PLUGIN_PACKAGE)
    result["plugin_file"] = getattr(plugin, "__file__", None)
    result["modules"] = sorted(sys.modules)
    return result


def modules(args: list[str]) -> list[str]:
    from openstackclient import shell

    with contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        try:
            shell.main(args)
        except SystemExit:  # --version exits from argparse
            pass
    return sorted(sys.modules)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("resolve", "exec", "modules"))
    parser.add_argument("--reverse-entry-points", action="store_true")
    parser.add_argument("--hide-plugin", action="store_true")
    parser.add_argument("args", nargs="*")
    options = parser.parse_intermixed_args(argv)
    sys.argv[0] = "openstack"  # cliff names the program after argv[0]
    _patch_entry_points(options.reverse_entry_points, options.hide_plugin)
    if options.mode == "exec":
        from openstackclient.shell import main as openstack
        return openstack(options.args)
    if options.mode == "modules":
        result = modules(options.args)
    else:
        result = resolve(options.args)
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

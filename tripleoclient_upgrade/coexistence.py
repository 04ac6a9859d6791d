"""Install beside python-tripleoclient and own ``overcloud upgrade ...``.

python-tripleoclient registers ``overcloud upgrade prepare`` and
``overcloud upgrade run`` too, from the module
``tripleoclient.v1.overcloud_upgrade``. OpenStackClient loads each plugin's
command group in entry-point order, and for a name registered twice cliff
keeps the last one loaded (and logs a warning that osc-lib silences). Entry
points come in the order of the ``*.dist-info`` directories, which on ext4
is the hash order of their names: which of the two plugins won changed with
the package names and versions. That is not a choice an operator can rely on.

cliff's answer to "a command moved to another package" is
``CommandManager.ignored_modules`` (cliff >= 4.13): entry points from a
listed module (or a sub-module of it) are skipped before cliff looks for a
duplicate, so the name is registered once, by the package that replaces it.
OpenStackClient passes its own list when it creates its command manager, and
it creates it after it has imported every ``openstack.cli.extension``
module, this plugin's included, and before it loads any command group. So
:func:`take_over_tripleoclient_upgrade`, called when the plugin module is
imported, makes osc-lib's ``CommandManager`` add :data:`REPLACED_MODULES` to
the ignored modules it is given. The result is the same whatever order the
groups load in, and whether python-tripleoclient is installed or not (a
module that is not installed matches no entry point). ``openstack command
list`` reads a group's entry points again, so the manager's
``get_command_names`` leaves out those of ignored modules too (every
ignored module, OpenStackClient's own included).

Costs nothing at start-up: ``osc_lib.command.commandmanager`` is already
imported when OpenStackClient imports the plugin, and python-tripleoclient
is never imported here.
"""

from __future__ import annotations

import functools
from typing import Iterable

#: Modules whose commands this plugin replaces. In python-tripleoclient 20,
#: ``tripleoclient.v1.overcloud_upgrade`` holds exactly ``UpgradePrepare``
#: (``overcloud upgrade prepare``) and ``UpgradeRun`` (``overcloud upgrade
#: run``); its other commands (``overcloud deploy``, ``overcloud
#: external-upgrade run``, ...) live in other modules and keep working.
REPLACED_MODULES: tuple[str, ...] = ("tripleoclient.v1.overcloud_upgrade",)


class _IgnoredModules:
    """``CommandManager.ignored_modules`` that always includes :data:`REPLACED_MODULES`.

    A data descriptor on the class: cliff's ``__init__`` assigns
    ``self.ignored_modules = ignored_modules or ()`` before it loads the first
    namespace, and the assignment goes through :meth:`__set__`.
    """

    _slot = "_tripleoclient_upgrade_ignored_modules"

    def __init__(self, extra: Iterable[str]) -> None:
        self.extra = tuple(extra)

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        if self._slot not in instance.__dict__:
            # A manager created before the descriptor was installed keeps
            # its plain attribute, which the descriptor now shadows.
            self.__set__(instance, instance.__dict__.get("ignored_modules"))
        return instance.__dict__[self._slot]

    def __set__(self, instance, value) -> None:
        given = tuple(value or ())
        instance.__dict__[self._slot] = given + tuple(
            m for m in self.extra if m not in given)


def take_over_tripleoclient_upgrade(manager_class=None) -> None:
    """Make OpenStackClient skip python-tripleoclient's ``overcloud upgrade`` commands.

    Call it when the plugin module is imported (OpenStackClient imports
    every plugin module before it creates its command manager). Idempotent.
    ``manager_class`` defaults to osc-lib's ``CommandManager``, the class
    OpenStackClient instantiates (the unit tests pass a subclass of their
    own).
    """
    if manager_class is None:
        from osc_lib.command.commandmanager import CommandManager as manager_class
    if isinstance(manager_class.__dict__.get("ignored_modules"), _IgnoredModules):
        return
    manager_class.ignored_modules = _IgnoredModules(REPLACED_MODULES)
    manager_class.get_command_names = _listing_without_ignored(
        manager_class.get_command_names)


def _listing_without_ignored(original):
    """``get_command_names`` that leaves out commands of ignored modules.

    cliff skips those when it registers commands, but lists a group's
    commands from its entry points again for ``openstack command list``:
    without this, python-tripleoclient's group would still show the two
    commands it no longer runs.
    """
    def get_command_names(self, group: str | None = None) -> list[str]:
        names = original(self, group)
        if group is None:
            return names
        for name, module in _entry_points(group):
            if self._is_module_ignored(module, self.ignored_modules):
                shown = name.replace("_", " ") if self.convert_underscores else name
                if shown in names:
                    names.remove(shown)
        return names

    get_command_names.__doc__ = original.__doc__
    return get_command_names


def replaced_command(name: str) -> type | None:
    """The class python-tripleoclient registers for ``name`` (e.g.
    ``overcloud upgrade prepare``) in a module this plugin replaces, or None
    when it is not installed.

    The command manager never registers it (its module is ignored), so a
    command that hands work to it loads it from its entry point. Imports
    python-tripleoclient: call it only when a command runs.
    """
    entry = name.replace(" ", "_")
    for ep in _all_entry_points().select(name=entry):
        if ep.group.startswith("openstack.") and ep.module in REPLACED_MODULES:
            return ep.load()
    return None


def _entry_points(group: str) -> list[tuple[str, str]]:
    """(name, module) of the entry points of ``group``."""
    return [(ep.name, ep.module) for ep in _all_entry_points().select(group=group)]


@functools.cache
def _all_entry_points():
    # One scan of the installed distributions for the whole listing, which
    # asks for every group in turn.
    from importlib import metadata

    return metadata.entry_points()

"""The tripleoclient habit: ``prepare --templates -e ...`` and ``run --playbook all``.

An operator starts a TripleO upgrade with python-tripleoclient's
``openstack overcloud upgrade prepare --templates -e upgrade-prepare.yaml ...``:
it updates the stack with the new release's templates, then downloads the
config (``<working dir>/config-download/<stack>``). This plugin replaces that
command (see :mod:`.coexistence`), so ``prepare`` accepts the same options
(:data:`PREPARE_OPTIONS`, checked against python-tripleoclient 20's parser by
the coexistence tests) and hands the stack update to python-tripleoclient's
own command, reached through its entry point; the plan is then built from the
config-download directory it wrote. Without python-tripleoclient, those
options are refused in one line.

``run --limit ROLE --playbook all`` (python-tripleoclient's ``upgrade run``)
has no stage: :func:`stage_of_limit` maps it to the one stage of those hosts,
or names the ``--stage`` options to use.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tripleoclient_upgrade import coexistence

if TYPE_CHECKING:
    from cliff.command import Command

#: The command whose stack update ``prepare`` hands off.
PREPARE = "overcloud upgrade prepare"

#: What each kind of option takes on the command line.
VALUE, FLAG, OPTIONAL, APPEND = "value", "flag", "optional", "append"


@dataclass(frozen=True)
class ForwardedOption:
    """An option of python-tripleoclient's prepare that is passed on as given.

    ``flags`` as python-tripleoclient spells them (the first long one is the
    one forwarded); ``shown`` puts it in this command's ``--help`` (the others
    are accepted without being listed).
    """

    flags: tuple[str, ...]
    kind: str = VALUE
    shown: bool = False
    help: str = ""

    @property
    def long(self) -> str:
        return next(f for f in self.flags if f.startswith("--"))

    @property
    def dest(self) -> str:
        return "tripleoclient_" + self.long[2:].replace("-", "_")


def _o(*flags: str, kind: str = VALUE, help: str = "") -> ForwardedOption:
    return ForwardedOption(tuple(flags), kind, shown=bool(help), help=help)


#: python-tripleoclient 20's ``overcloud upgrade prepare`` options (those of
#: ``overcloud deploy``) but the four this command has too (:data:`SHARED`).
PREPARE_OPTIONS: tuple[ForwardedOption, ...] = (
    _o("--templates", kind=OPTIONAL,
       help="The new release's heat templates (default: "
            "/usr/share/openstack-tripleo-heat-templates): python-tripleoclient "
            "updates the stack with them, then this plan is built from the "
            "config it downloads."),
    _o("--environment-file", "-e", kind=APPEND,
       help="Environment files, in order, as python-tripleoclient takes them "
            "(e.g. .../lifecycle/upgrade-prepare.yaml)."),
    _o("--environment-directory", kind=APPEND,
       help="Directories of environment files (python-tripleoclient)."),
    _o("--roles-file", "-r", help="Roles file (python-tripleoclient)."),
    _o("--networks-file", "-n", help="Networks file (python-tripleoclient)."),
    _o("--vip-file", help="Network VIPs file (python-tripleoclient)."),
    _o("--baremetal-deployment", "-b", kind=OPTIONAL,
       help="Baremetal deployment file (python-tripleoclient)."),
    _o("--network-config", kind=FLAG,
       help="Apply the network config of the baremetal deployment "
            "(python-tripleoclient)."),
    _o("--ntp-server", help="NTP servers (python-tripleoclient)."),
    _o("--timeout", "-t", help="Stack update timeout in minutes "
                               "(python-tripleoclient)."),
    _o("--libvirt-type"), _o("--no-proxy"),
    _o("--overcloud-ssh-key"), _o("--overcloud-ssh-network"),
    _o("--overcloud-ssh-enable-timeout"), _o("--overcloud-ssh-port-timeout"),
    _o("--no-cleanup", kind=FLAG), _o("--update-plan-only", kind=FLAG),
    _o("--validation-errors-nonfatal", kind=FLAG),
    _o("--validation-warnings-fatal", kind=FLAG),
    _o("--disable-validations", kind=FLAG),
    _o("--inflight-validations", kind=FLAG), _o("--dry-run", kind=FLAG),
    _o("--run-validations", kind=FLAG), _o("--skip-postconfig", kind=FLAG),
    _o("--force-postconfig", kind=FLAG),
    _o("--skip-deploy-identifier", kind=FLAG), _o("--answers-file"),
    _o("--disable-password-generation", kind=FLAG),
    _o("--deployed-server", kind=FLAG), _o("--provision-nodes", kind=FLAG),
    _o("--config-download", kind=FLAG),
    _o("--no-config-download", "--stack-only", kind=FLAG),
    _o("--config-download-only", kind=FLAG), _o("--setup-only", kind=FLAG),
    _o("--config-dir"), _o("--config-type"),
    _o("--no-preserve-config", kind=FLAG), _o("--output-dir"),
    _o("--override-ansible-cfg"), _o("--config-download-timeout"),
    _o("--deployment-python-interpreter"),
    _o("--limit"), _o("--tags"), _o("--skip-tags"), _o("--ansible-forks"),
    _o("--disable-container-prepare", kind=FLAG), _o("--heat-type"),
    _o("--heat-container-api-image"), _o("--heat-container-engine-image"),
    _o("--rm-heat", kind=FLAG), _o("--skip-heat-pull", kind=FLAG),
    _o("--disable-protected-resource-types", kind=FLAG),
    _o("--allow-deprecated-network-data", kind=FLAG),
)

#: Options both commands have, with the same meaning: forwarded from this
#: command's values (python-tripleoclient's defaults are the same).
SHARED: tuple[str, ...] = ("--stack", "--working-dir", "--yes",
                           "--overcloud-ssh-user")

#: This command's own sources of outputs, which a stack update replaces.
_SOURCES = ("outputs_file", "config_download_dir", "demo", "heat_url")


def add_prepare_options(parser: argparse.ArgumentParser) -> None:
    """python-tripleoclient's prepare options, in a group of their own."""
    group = parser.add_argument_group(
        "python-tripleoclient's prepare",
        "With python-tripleoclient installed, these options (and the other "
        "options of its 'overcloud upgrade prepare') hand the stack update to "
        "python-tripleoclient's own prepare; the plan is then built from the "
        "config it downloads.")
    for option in PREPARE_OPTIONS:
        kwargs: dict[str, Any] = {
            "dest": option.dest, "default": argparse.SUPPRESS,
            "help": option.help if option.shown else argparse.SUPPRESS}
        if option.kind == FLAG:
            kwargs["action"] = "store_true"
        elif option.kind == OPTIONAL:
            kwargs.update(nargs="?", const=None)
        elif option.kind == APPEND:
            kwargs["action"] = "append"
        if option.kind != FLAG:
            kwargs["metavar"] = option.long[2:].upper().replace("-", "_")
        group.add_argument(*option.flags, **kwargs)


def forwarded(parsed_args: argparse.Namespace) -> list[str]:
    """The python-tripleoclient options given, as arguments to pass on
    (empty: nothing to hand off)."""
    argv: list[str] = []
    for option in PREPARE_OPTIONS:
        if not hasattr(parsed_args, option.dest):
            continue
        value = getattr(parsed_args, option.dest)
        if option.kind == FLAG:
            argv.append(option.long)
        elif option.kind == APPEND:
            argv.extend(f"{option.long}={v}" for v in value)
        elif value is None:  # an optional value left out
            argv.append(option.long)
        else:
            argv.append(f"{option.long}={value}")
    return argv


def prepare_argv(parsed_args: argparse.Namespace, stack: str) -> list[str]:
    """The arguments of python-tripleoclient's prepare: the forwarded options
    and the shared ones."""
    argv = [*forwarded(parsed_args), f"--stack={stack}"]
    if parsed_args.working_dir:
        argv.append(f"--working-dir={parsed_args.working_dir}")
    if parsed_args.overcloud_ssh_user != "tripleo-admin":
        argv.append(f"--overcloud-ssh-user={parsed_args.overcloud_ssh_user}")
    if parsed_args.yes:
        argv.append("--yes")
    return argv


def config_download_dir(parsed_args: argparse.Namespace, stack: str,
                        working_dir: str) -> str:
    """Where python-tripleoclient's prepare downloads the config:
    ``<--output-dir or <working dir>/config-download>/<stack>``."""
    output_dir = getattr(parsed_args, "tripleoclient_output_dir", None)
    return os.path.join(output_dir or os.path.join(working_dir, "config-download"),
                        stack)


def update_stack(command: Command, parsed_args: argparse.Namespace, stack: str,
                 working_dir: str) -> str:
    """Run python-tripleoclient's own prepare with the forwarded options;
    return the config-download directory it wrote.

    :class:`OptionError` when python-tripleoclient is not installed or
    another source of outputs is given too; :class:`UpgradeError` when its
    command fails or writes no config.
    """
    from composable_upgrades import OptionError, UpgradeError

    given = forwarded(parsed_args)
    option = given[0].split("=")[0]
    for source in _SOURCES:
        if getattr(parsed_args, source, None):
            raise OptionError(
                f"updates the stack with python-tripleoclient; it cannot be "
                f"used with --{source.replace('_', '-')}", option=option)
    try:
        prepare_class = coexistence.replaced_command(PREPARE)
    except Exception as exc:  # installed but broken: say what broke
        raise UpgradeError(f"{option} needs python-tripleoclient, which cannot "
                           f"be loaded: {exc}") from exc
    if prepare_class is None:
        raise OptionError(
            "needs python-tripleoclient (its 'overcloud upgrade prepare' "
            "updates the stack); install it, or prepare from --outputs-file, "
            "--config-download-dir or --heat-url", option=option)
    argv = prepare_argv(parsed_args, stack)
    tripleoclient = prepare_class(command.app, command.app_args, cmd_name=PREPARE)
    parser = tripleoclient.get_parser(f"openstack {PREPARE}")
    try:
        their_args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed why
        raise UpgradeError("python-tripleoclient's prepare refused the "
                           "arguments: " + " ".join(argv)) from exc
    try:
        status = tripleoclient.run(their_args)
    except Exception as exc:
        raise UpgradeError(f"python-tripleoclient's prepare failed: "
                           f"{str(exc).strip() or type(exc).__name__}") from exc
    if status:
        raise UpgradeError(f"python-tripleoclient's prepare exited with {status}")
    written = config_download_dir(parsed_args, stack, working_dir)
    if not os.path.isdir(written):
        raise UpgradeError(f"python-tripleoclient's prepare wrote no config "
                           f"at {written}: nothing to plan from")
    return written


#: python-tripleoclient's ``upgrade run`` playbooks, all of which ``--playbook
#: all`` (or no ``--playbook``) means.
TRIPLEOCLIENT_PLAYBOOKS = ("all", "upgrade_steps_playbook.yaml",
                           "deploy_steps_playbook.yaml",
                           "post_upgrade_steps_playbook.yaml")


def stage_of_limit(working_dir: str, limit: str | None,
                   playbooks: list[str] | None) -> str:
    """The stage that ``run --limit LIMIT --playbook all`` without ``--stage``
    means: the one upgrade stage of the hosts selected.

    :class:`OptionError` naming ``--stage`` when there is no limit, the
    playbooks are this plan's own, or the hosts span several stages (in run
    order, the way to run them).
    """
    from composable_upgrades import OptionError, Workdir
    from composable_upgrades.model.kinds import StageKind
    from composable_upgrades.run.limits import select_hosts

    plan = Workdir.at(working_dir).load_plan()
    stages = [s for s in plan.stages
              if s.kind in (StageKind.CONTROLPLANE, StageKind.BATCHED)]
    names = ", ".join(s.name for s in plan.stages)
    if not limit:
        raise OptionError(f"is needed: one of {names}", option="--stage")
    if playbooks and not set(playbooks) <= set(TRIPLEOCLIENT_PLAYBOOKS):
        raise OptionError(f"is needed with --playbook {' '.join(playbooks)}: "
                          f"one of {names}", option="--stage")
    hosts = set(select_hosts(plan, list(plan.hosts), limit))
    touched = [s.name for s in stages if hosts & set(s.hosts)]
    if len(touched) == 1:
        return touched[0]
    if not touched:
        raise OptionError(f"is needed: --limit {limit} selects no host of "
                          f"{', '.join(s.name for s in stages)}", option="--stage")
    order = ", then ".join(f"--stage {name}" for name in touched)
    raise OptionError(f"--limit {limit} spans stages {', '.join(touched)}; "
                      f"run them one at a time, in order: {order}",
                      option="--playbook all")

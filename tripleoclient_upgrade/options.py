"""Options shared by the commands, named as python-tripleoclient names them."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is imported only when a command runs
    from composable_upgrades import Fleet, RunOptions


def default_stack() -> str:
    """$OVERCLOUD_STACK_NAME, or ``overcloud``."""
    return os.environ.get("OVERCLOUD_STACK_NAME", "overcloud")


def add_stack(parser: argparse.ArgumentParser) -> None:
    """``--stack`` (default: $OVERCLOUD_STACK_NAME or ``overcloud``)."""
    parser.add_argument(
        "--stack", default=default_stack(),
        help="Name or ID of the overcloud stack (default: "
             "$OVERCLOUD_STACK_NAME or 'overcloud').")


def add_working_dir(parser: argparse.ArgumentParser) -> None:
    """``--working-dir`` (default: ~/overcloud-deploy/<stack>)."""
    parser.add_argument(
        "--working-dir", metavar="DIR",
        help="The stack's working directory (default: "
             "~/overcloud-deploy/<stack>). This command writes only to its "
             "composable-upgrade/ subfolder.")


def add_yes(parser: argparse.ArgumentParser, what: str) -> None:
    """``-y/--yes``."""
    parser.add_argument("-y", "--yes", action="store_true", default=False,
                        help=f"Skip the confirmation before {what}.")


def working_dir(parsed_args: argparse.Namespace, stack: str | None = None) -> str:
    """The working directory the arguments ask for (of ``stack`` if given)."""
    from composable_upgrades import default_working_dir
    return parsed_args.working_dir or default_working_dir(stack or parsed_args.stack)


def add_fleet(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--fleet DIR``: a local rehearsal fleet."""
    parser.add_argument("--fleet", metavar="DIR", help=help_text)


def add_fleet_transport(parser: argparse.ArgumentParser) -> None:
    """``--fleet-transport`` and ``--fleet-ssh-port``: how a fleet is reached."""
    parser.add_argument(
        "--fleet-transport", choices=("local", "ssh"), default="local",
        help="With --fleet: reach every host through a local connection "
             "(default), or over real SSH at a loopback address of its own "
             "(127.0.0.2, 127.0.0.3, ...) as --overcloud-ssh-user, with sudo.")
    parser.add_argument(
        "--fleet-ssh-port", type=int, default=22, metavar="PORT",
        help="With --fleet-transport ssh: the port sshd listens on (default 22).")


def fleet(parsed_args: argparse.Namespace) -> Fleet | None:
    """The rehearsal fleet the arguments ask for, or None."""
    if not parsed_args.fleet:
        return None
    from composable_upgrades import Fleet
    return Fleet.at(parsed_args.fleet,
                    transport=getattr(parsed_args, "fleet_transport", "local"),
                    ssh_port=getattr(parsed_args, "fleet_ssh_port", 22))


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The ansible options of python-tripleoclient's ``upgrade run``."""
    parser.add_argument(
        "--limit", metavar="HOSTS",
        help="Comma-separated hosts, FQDNs, roles or globs to run on "
             "(an item starting with '!' excludes); default: every host of "
             "the stage. Unlike python-tripleoclient, roles are accepted and "
             "it is optional.")
    parser.add_argument("--tags", help="Passed to ansible-playbook as --tags.")
    parser.add_argument("--skip-tags",
                        help="Passed to ansible-playbook as --skip-tags.")
    parser.add_argument(
        "--playbook", nargs="*", metavar="PLAYBOOK",
        help="Run only these step playbooks of the stage (file names in the "
             "plan folder, e.g. controlplane_step3.yaml; 'all' for every "
             "step, the default). Unlike python-tripleoclient, these are the "
             "plan's step playbooks, not config-download's.")
    parser.add_argument("--ansible-forks", type=int, metavar="N",
                        help="Number of Ansible forks.")
    earlier = parser.add_mutually_exclusive_group()
    earlier.add_argument(
        "--resume", action="store_true", default=False,
        help="Continue the stage's unfinished progress: skip the hosts and "
             "steps already finished.")
    earlier.add_argument(
        "--restart", action="store_true", default=False,
        help="Discard the unfinished progress of the hosts selected and start "
             "them again from the first step (finished hosts are left out).")
    earlier.add_argument(
        "--rerun", action="store_true", default=False,
        help="Run finished work again on purpose: needed for a finished "
             "stage, and for an upgrade stage once converge has run.")
    add_fleet(parser, "The rehearsal fleet the plan was prepared for (must match).")
    parser.add_argument(
        "--overcloud-ssh-key", metavar="FILE",
        help="Private key for the overcloud hosts (ANSIBLE_PRIVATE_KEY_FILE); "
             "default: the first of <working dir>/ssh_private_key, "
             "~/.ssh/id_rsa_tripleo and ~/.ssh/id_rsa that exists (none on a "
             "rehearsal fleet).")


def add_rollout_options(parser: argparse.ArgumentParser) -> None:
    """How a batched stage rolls out: grouping, pauses, hooks, draining."""
    parser.add_argument(
        "--batch-by", metavar="VAR|role",
        help="Never mix in one batch hosts of different values of this host "
             "or group variable of the inventory (an availability zone, a "
             "rack, a Ceph failure domain); 'role' keeps roles apart. A batch "
             "ends early where the hosts of one value run out.")
    parser.add_argument(
        "--pause-after", type=int, metavar="N",
        help="Stop cleanly after N batches (1: after the canary), exit 0; "
             "'run --resume' continues with the same batches.")
    parser.add_argument(
        "--confirm-each", action="store_true", default=False,
        help="In a terminal, ask before every batch after the first.")
    add_hooks_options(parser, "around the batches")


def add_hooks_options(parser: argparse.ArgumentParser, where: str) -> None:
    """``--hooks-file`` (run ``where``) and ``--overcloud-cloud``."""
    parser.add_argument(
        "--hooks-file", metavar="FILE",
        help="YAML: pre_stage, pre_batch, post_batch, post_stage lists of "
             f"playbooks run on the undercloud {where} (or the built-in "
             "nova-drain and nova-undrain); a failed hook stops the stage "
             "there and --resume runs it again. Default: the hooks file "
             "kept by 'prepare --hooks-file', if any.")
    parser.add_argument(
        "--overcloud-cloud", metavar="NAME",
        help="The clouds.yaml entry of the overcloud, for the built-in "
             "nova-drain/nova-undrain hooks (default: the OS_* variables of "
             "an overcloudrc).")


def hooks_options(parsed_args: argparse.Namespace) -> dict[str, Any]:
    """The SDK's run options of :func:`add_hooks_options`."""
    return {"hooks_file": parsed_args.hooks_file,
            "overcloud_cloud": parsed_args.overcloud_cloud}


def rollout_options(parsed_args: argparse.Namespace) -> dict[str, Any]:
    """The SDK's run options of :func:`add_rollout_options`."""
    return {"batch_by": parsed_args.batch_by, "pause_after": parsed_args.pause_after,
            **hooks_options(parsed_args)}


def confirm_each(parsed_args: argparse.Namespace) -> Any:
    """With ``--confirm-each``, the question asked before each batch after the
    first (a terminal is needed); else None."""
    import sys

    if not parsed_args.confirm_each or parsed_args.dry_run:
        return None
    from composable_upgrades import OptionError

    if not sys.stdin.isatty():
        raise OptionError("asks before each batch: it needs a terminal",
                          option="--confirm-each")

    def confirm(batch: int, hosts: tuple[str, ...]) -> bool:
        answer = input(f"\nUpgrade batch {batch} ({len(hosts)} host"
                       f"{'s' if len(hosts) != 1 else ''}: {', '.join(hosts)})? "
                       "[y/N]: ").strip().lower()
        return answer in ("y", "yes")
    return confirm


def add_dry_run(parser: argparse.ArgumentParser) -> None:
    """``--dry-run``: show what a run would do and run nothing."""
    parser.add_argument("--dry-run", action="store_true", default=False,
                        help="Show the batches and the ansible-playbook calls "
                             "that would run; run nothing.")


def run_options(parsed_args: argparse.Namespace, **more: Any) -> RunOptions:
    """The SDK's ``RunOptions`` of the options :func:`add_run_options` adds,
    and ``more`` of them from the command's own (``force``, ``batch_size``)."""
    from composable_upgrades import RunOptions

    return RunOptions(limit=parsed_args.limit, tags=parsed_args.tags,
                      skip_tags=parsed_args.skip_tags, forks=parsed_args.ansible_forks,
                      resume=parsed_args.resume, restart=parsed_args.restart,
                      rerun=parsed_args.rerun, playbooks=parsed_args.playbook,
                      **more)


def command_line(parsed_args: argparse.Namespace, args: list[str],
                 stack: str | None = None) -> str:
    """``openstack overcloud upgrade <args>`` for the same stack and working
    dir as ``parsed_args``, to show as the next command to type."""
    import shlex

    where: list[str] = []
    if getattr(parsed_args, "working_dir", None):
        where = ["--working-dir", parsed_args.working_dir]
    elif (stack or parsed_args.stack) != default_stack():
        where = ["--stack", stack or parsed_args.stack]
    return shlex.join(["openstack", "overcloud", "upgrade", *args, *where])


def run_place(parsed_args: argparse.Namespace) -> dict[str, Any]:
    """The SDK keywords that say where a run goes: fleet, SSH key, and the
    execution nodes that drive its hosts."""
    return {"fleet": parsed_args.fleet, "ssh_key": parsed_args.overcloud_ssh_key,
            "execution_nodes": getattr(parsed_args, "execution_nodes", None)}


def add_execution_nodes(parser: argparse.ArgumentParser, what: str) -> None:
    """``--execution-nodes FILE``."""
    parser.add_argument(
        "--execution-nodes", metavar="FILE",
        help=f"YAML: the machines that drive the hosts ({what}); each step runs "
             "on all of them at once, through ansible-runner's streaming "
             "(see doc/scale-out.rst).")

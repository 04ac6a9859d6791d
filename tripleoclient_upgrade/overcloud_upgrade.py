"""``openstack overcloud upgrade prepare|plan|run|converge|status``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tripleoclient_upgrade import options
from tripleoclient_upgrade.command import Table, UpgradeLister

if TYPE_CHECKING:  # the SDK is imported only when a command runs
    from composable_upgrades.run.preview import RunPreview


class Prepare(UpgradeLister):
    """Turn the overcloud's stack outputs into a staged upgrade plan.

    Writes per-role, step-tagged playbooks and an inventory to the stack's
    working directory and shows a summary of the plan. Nothing on the
    overcloud changes.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        options.add_stack(parser)
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--outputs-file", metavar="FILE",
            help="Stack outputs as JSON or YAML: 'openstack stack output show "
                 "--all -f json', 'openstack stack show -f json' or a plain "
                 "{key: value} mapping.")
        source.add_argument(
            "--config-download-dir", metavar="DIR",
            help="A config-download directory written by tripleo-common.")
        source.add_argument(
            "--heat-url", metavar="URL",
            help="Read the outputs from an ephemeral Heat without keystone, "
                 "as TripleO runs it on the undercloud (e.g. "
                 "http://127.0.0.1:8006/v1/admin). Without any source option "
                 "the outputs come from the Heat of the OpenStackClient "
                 "credentials (--os-cloud or OS_* variables).")
        parser.add_argument(
            "--heat-timeout", metavar="SECONDS", type=float, default=30.0,
            help="Timeout of each request to Heat (default: 30).")
        options.add_working_dir(parser)
        parser.add_argument(
            "--stages-file", metavar="FILE",
            help="YAML: stage -> roles or services, stages in run order "
                 "(default: controlplane and compute, from the services "
                 "each role runs).")
        parser.add_argument(
            "--dependencies-file", metavar="FILE",
            help="YAML: service -> [services it must be upgraded after]; "
                 "entries replace the built-in defaults for those services.")
        parser.add_argument(
            "--converge-file", metavar="FILE",
            help="YAML: the deployment-wide converge work (rpc_unpin_tasks, "
                 "unmanaged_packages, package_tasks, kernel_check_tasks, "
                 "reboot_tasks); default: the stack's UpgradeConverge output, "
                 "else the built-in TripleO tasks.")
        options.add_fleet(parser, "Prepare for a rehearsal on a local fleet: "
                          "every host becomes a local sandbox under DIR.")
        options.add_fleet_transport(parser)
        parser.add_argument(
            "--overcloud-ssh-user", default="tripleo-admin", metavar="USER",
            help="User the inventory reaches the overcloud hosts as "
                 "(ansible_ssh_user of each role; default: tripleo-admin).")
        parser.add_argument(
            "--noop", action="store_true", default=False,
            help="With --fleet: a no-op rehearsal of the real plan; every task "
                 "is replaced by a debug that records its name, service, step "
                 "and host.")
        parser.add_argument(
            "--force", action="store_true", default=False,
            help="Replace the plan even while a stage is partly done, and use "
                 "a stack whose status is FAILED or IN_PROGRESS.")
        options.add_yes(parser, "preparing (prepare changes nothing on the "
                        "overcloud; accepted for python-tripleoclient habits)")
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        import composable_upgrades as cu

        result = cu.prepare(
            self._outputs(parsed_args), options.working_dir(parsed_args),
            stack=parsed_args.stack, stages_file=parsed_args.stages_file,
            dependencies_file=parsed_args.dependencies_file,
            converge_file=parsed_args.converge_file,
            fleet=options.fleet(parsed_args), noop=parsed_args.noop,
            force=parsed_args.force, ssh_user=parsed_args.overcloud_ssh_user)
        for note in result.notes:
            self.note(f"note: {note}")
        for warning in result.plan.warnings:
            self.note(f"warning: {warning}")
        state = "written to" if result.changed else "unchanged in"
        self.note(f"Upgrade plan for stack {parsed_args.stack} {state} "
                  f"{result.plan_dir}")
        return result.prepared.summary()


    def _outputs(self, parsed_args: argparse.Namespace):
        import composable_upgrades as cu

        if parsed_args.outputs_file:
            return cu.StackOutputs.from_file(parsed_args.outputs_file)
        if parsed_args.config_download_dir:
            return cu.StackOutputs.from_config_download(
                parsed_args.config_download_dir)
        heat = {"timeout": parsed_args.heat_timeout,
                "allow_status": parsed_args.force}
        if parsed_args.heat_url:
            return cu.StackOutputs.from_heat(parsed_args.stack,
                                             heat_url=parsed_args.heat_url, **heat)
        return cu.StackOutputs.from_heat(parsed_args.stack,
                                         session=self._osc_session(), **heat)

    def _osc_session(self):
        """OpenStackClient's keystoneauth session, set up now; no login yet.

        The commands have ``auth_required = False`` (a file source needs no
        cloud), so OSC loaded its cloud config without validating it: the
        auth options of the command line and of OS_* variables stay at the
        top level (only clouds.yaml's are under ``auth``), and no auth plugin
        is loaded. Load it validated, as osc-lib's shell does for commands
        that need auth; openstacksdk's first request then logs in, once.
        """
        import composable_upgrades as cu
        from keystoneauth1 import exceptions as ks_exc
        from openstack import exceptions as sdk_exc

        app = self.app
        config = app.cloud.config if app.cloud else {}
        if not (config.get("auth_url")
                or (config.get("auth") or {}).get("auth_url")):
            raise cu.UpgradeError(
                "no stack outputs source: pass --outputs-file, "
                "--config-download-dir or --heat-url, or credentials for Heat "
                "(--os-cloud or OS_* variables)")
        try:
            cloud = app.cloud_config.get_one(
                cloud=app.options.cloud, argparse=app.options, validate=True)
        except (sdk_exc.ConfigException, ks_exc.ClientException) as exc:
            raise cu.HeatError(f"OpenStackClient credentials: {exc}",
                               source="heat") from exc
        manager = app.client_manager
        manager._cli_options = cloud  # what osc-lib's shell does before auth
        manager.setup_auth()
        return manager.session


class Plan(UpgradeLister):
    """Show the prepared upgrade plan: stages, steps, roles, services, tasks."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        options.add_stack(parser)
        options.add_working_dir(parser)
        parser.add_argument("--stage", help="Only this stage.")
        parser.add_argument("--role", help="Only this role.")
        parser.add_argument(
            "--by", choices=("step", "service", "task"), default="step",
            help="One row per step and role (default), per service, or per task.")
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        import composable_upgrades as cu

        plan = cu.Workdir.at(options.working_dir(parsed_args)).load_plan()
        return plan.rows(parsed_args.by, stage=parsed_args.stage,
                         role=parsed_args.role)


def _confirm(command, parsed_args: argparse.Namespace, question: str) -> None:
    """Ask before changing the overcloud, unless -y; refuse without a tty."""
    import sys

    from composable_upgrades import UpgradeError

    if parsed_args.yes or getattr(parsed_args, "dry_run", False):
        return
    if not sys.stdin.isatty():
        raise UpgradeError(f"{question} Not asking without a terminal: pass -y")
    answer = input(f"{question} [y/N]: ").strip().lower()
    if answer not in ("y", "yes"):
        raise UpgradeError("not confirmed: nothing was run")


class _RunCommand(UpgradeLister):
    """Shared display of a run: hosts x steps, elapsed time per step."""

    def run(self, parsed_args: argparse.Namespace) -> int:
        self.exit_status = 0
        status = super().run(parsed_args)
        return status or self.exit_status

    def execute(self, parsed_args: argparse.Namespace,
                run: Callable[[Callable[[Any], None]], Any]) -> Table:
        from tripleoclient_upgrade.progress import progress_display

        show, close = progress_display(self.app.stderr)
        try:
            result = run(show)
        finally:
            close()
        for note in result.notes:
            self.note(f"note: {note}")
        if result.status == "dry-run":
            return self.preview(result.preview)
        self.note(f"stage {result.stage}: {result.status} in "
                  f"{result.duration:.1f}s; reproduce with "
                  f"{result.reproduce_script}")
        if not result.ok:
            self.exit_status = 1
        return result.outcome_table()

    def preview(self, preview: RunPreview) -> Table:
        """A dry run: the ansible-playbook calls on stderr, the batches as rows."""
        import shlex

        for name, value in sorted(preview.environment.items()):
            self.note(f"setting: {name}={value}")
        for command in preview.commands:
            self.note(f"batch {command.batch}, step {command.step}: "
                      f"{shlex.join(command.argv)}")
        self.note(f"dry run: {len(preview.batches)} batches would run; "
                  "nothing was run")
        return (["Batch", "Hosts"],
                [(i, ", ".join(b)) for i, b in enumerate(preview.batches, 1)])


class Run(_RunCommand):
    """Run one stage of the prepared upgrade: controlplane, then the others.

    Each step is a barrier over the hosts upgraded together (the whole
    controlplane stage, or one batch of another stage).
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        options.add_stack(parser)
        options.add_working_dir(parser)
        parser.add_argument(
            "--stage", required=True,
            help="Stage to run: controlplane, compute (or a stage of your "
                 "stages file), or external (the undercloud's external "
                 "upgrade tasks; filter them with --tags, e.g. "
                 "container_image_prepare or online_upgrade).")
        options.add_run_options(parser)
        parser.add_argument(
            "--batch-size", metavar="N|N%",
            help="Upgrade the hosts of a non-controlplane stage in batches of "
                 "N hosts or N%% of them; each batch runs every step.")
        parser.add_argument(
            "--max-fail-percentage", type=float, metavar="P",
            help="Keep going while at most P%% of a batch's hosts failed "
                 "(default 0: any failure stops the stage).")
        options.add_dry_run(parser)
        parser.add_argument("--force", action="store_true", default=False,
                            help="Run even though the controlplane stage is "
                                 "unfinished.")
        options.add_yes(parser, "running the upgrade")
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        from composable_upgrades.run.execute import run_stage

        _confirm(self, parsed_args,
                 f"Upgrade stage {parsed_args.stage} of stack {parsed_args.stack}?")
        run_options = options.run_options(
            parsed_args, force=parsed_args.force, batch_size=parsed_args.batch_size,
            max_fail_percentage=parsed_args.max_fail_percentage)
        return self.execute(parsed_args, lambda show: run_stage(
            options.working_dir(parsed_args), parsed_args.stage, run_options,
            dry_run=parsed_args.dry_run, progress=show,
            **options.run_place(parsed_args)))


class Converge(_RunCommand):
    """Finish the upgrade: post-upgrade tasks, RPC unpin, unmanaged packages,
    and a reboot, one host at a time, where the kernel changed.

    Refuses while an upgrade stage is unfinished, unless --force.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        options.add_stack(parser)
        options.add_working_dir(parser)
        options.add_run_options(parser)
        parser.add_argument("--force", action="store_true", default=False,
                            help="Converge even though an upgrade stage is "
                                 "unfinished (says which).")
        options.add_dry_run(parser)
        options.add_yes(parser, "converging")
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        from composable_upgrades.run.converge import converge

        _confirm(self, parsed_args, f"Converge the upgrade of stack {parsed_args.stack}?")
        return self.execute(parsed_args, lambda show: converge(
            options.working_dir(parsed_args),
            options.run_options(parsed_args, force=parsed_args.force),
            dry_run=parsed_args.dry_run, progress=show,
            **options.run_place(parsed_args)))


class Status(UpgradeLister):
    """Show where each stage of the upgrade stands."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        options.add_stack(parser)
        options.add_working_dir(parser)
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        import time

        from composable_upgrades.views.status import status

        rows = []
        for s in status(options.working_dir(parsed_args)):
            started = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.last_started))
                       if s.last_started else "")
            last = f"{s.last_run} ({s.last_status}, {started})" if s.last_run else ""
            pending = ", ".join(s.pending[:5]) + (
                f" and {len(s.pending) - 5} more" if len(s.pending) > 5 else "")
            rows.append((s.stage, s.state, len(s.hosts), len(s.done),
                         len(s.failed), len(s.pending), pending, last,
                         round(s.last_duration, 1) if s.last_duration else None))
        return (["Stage", "State", "Hosts", "Done", "Failed", "Pending",
                 "Pending hosts", "Last run", "Duration (s)"], rows)

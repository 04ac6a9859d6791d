"""``openstack overcloud upgrade prepare|plan|run|converge|status``."""

from __future__ import annotations

import argparse
import os
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

        stack = parsed_args.stack
        if parsed_args.outputs_file:
            shown = _stack_show(parsed_args.outputs_file, force=parsed_args.force)
            if shown and stack == options.default_stack():
                stack = shown
        result = cu.prepare(
            self._outputs(parsed_args), options.working_dir(parsed_args, stack),
            stack=stack, stages_file=parsed_args.stages_file,
            dependencies_file=parsed_args.dependencies_file,
            converge_file=parsed_args.converge_file,
            fleet=options.fleet(parsed_args), noop=parsed_args.noop,
            force=parsed_args.force, ssh_user=parsed_args.overcloud_ssh_user)
        for note in result.notes:
            self.note(f"note: {note}")
        for warning in result.plan.warnings:
            self.note(f"warning: {warning}")
        state = "written to" if result.changed else "unchanged in"
        self.note(f"Upgrade plan for stack {stack} {state} {result.plan_dir}")
        from composable_upgrades.views.status import next_command

        args = next_command(options.working_dir(parsed_args, stack))
        self.note(f"next: {options.command_line(parsed_args, args, stack)}")
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


def _stack_show(path: str, *, force: bool) -> str | None:
    """Check an outputs file before it is read: a table is not data, and a
    ``stack show`` of a stack whose last action failed or is still going is
    refused (as it is from Heat) unless ``force``. Returns the stack's name
    that a ``stack show`` file gives, if any."""
    import yaml

    from composable_upgrades import OutputsError

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return None  # the SDK says what is wrong with the file
    if text.lstrip().startswith("+-"):
        raise OutputsError("a table; expected JSON or YAML; use `-f json`",
                           source=path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    status = str(data.get("stack_status") or "")
    if not force and ("FAILED" in status or "IN_PROGRESS" in status):
        raise OutputsError(f"stack {data.get('stack_name') or ''} is {status}; "
                           "pass --force to use its outputs anyway".replace(
                               "stack  is", "the stack is"), source=path)
    name = data.get("stack_name")
    return name if isinstance(name, str) and name else None


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


def _count(number: int, word: str) -> str:
    """``1 batch``, ``2 batches``, ``1 host``, ``3 hosts``."""
    if number == 1:
        return f"1 {word}"
    return f"{number} {word}{'es' if word.endswith(('ch', 'sh', 's')) else 's'}"


def _checked(command, parsed_args: argparse.Namespace, stage: str,
             run_options: Any, what: str) -> Any:
    """Every check of the run first, then the confirmation that says what will
    run; the run options to run with.

    Unfinished progress of the stage is the one question -y does not answer:
    with -y (or without a terminal) the run is refused and the refusal names
    --resume and --restart; on a terminal the question offers to resume.
    """
    import dataclasses
    import sys

    from composable_upgrades.run.execute import check_run
    from composable_upgrades import UnfinishedWorkError

    if parsed_args.dry_run:
        return run_options
    where = (options.working_dir(parsed_args), stage)
    place = options.run_place(parsed_args)
    unfinished = None
    try:
        plan, request = check_run(*where, run_options, **place)
    except UnfinishedWorkError as exc:
        if parsed_args.yes or not sys.stdin.isatty():
            raise
        unfinished = exc
        run_options = dataclasses.replace(run_options, resume=True)
        plan, request = check_run(*where, run_options, **place)
    if parsed_args.yes:
        return run_options
    if len(request.batches) > 1:
        for number, batch in enumerate(request.batches, start=1):
            command.note(f"batch {number}: {', '.join(batch)}")
    facts = [f"{_count(len(request.hosts), 'host')} in "
             f"{_count(len(request.batches), 'batch')}",
             "steps " + ", ".join(map(str, request.steps))]
    if run_options.limit:
        facts.append(f"--limit {run_options.limit}")
    if plan.variant == "noop":
        facts.append("a no-op rehearsal")
    elif plan.is_rehearsal:
        facts.append("a rehearsal on the fleet")
    if request.reset:
        facts.append(f"discarding the progress of {_count(len(request.reset), 'host')}")
    question = f"{what} ({'; '.join(facts)})?"
    if unfinished is not None:
        command.note(f"note: {unfinished}")
        question = f"{what}, resuming its unfinished progress ({'; '.join(facts)})?"
    _confirm(command, parsed_args, question)
    return run_options


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
        if result.run_dir:
            self.note(f"log: {os.path.join(result.run_dir, 'run.log')}")
        if not result.ok:
            self.exit_status = 1
        self.next_hint(parsed_args)
        return result.outcome_table()

    def next_hint(self, parsed_args: argparse.Namespace) -> None:
        """``next: openstack overcloud upgrade ...``, the command to type next."""
        from composable_upgrades.views.status import next_command

        args = next_command(options.working_dir(parsed_args))
        self.note(f"next: {options.command_line(parsed_args, args)}")

    def preview(self, preview: RunPreview) -> Table:
        """A dry run: the ansible-playbook calls on stderr, the batches as rows."""
        import shlex

        for name, value in sorted(preview.environment.items()):
            self.note(f"setting: {name}={value}")
        for command in preview.commands:
            self.note(f"batch {command.batch}, step {command.step}: "
                      f"{shlex.join(command.argv)}")
        self.note(f"dry run: {_count(len(preview.batches), 'batch')} of "
                  f"{_count(len(preview.hosts), 'host')} would run; nothing was run")
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
        parser.add_argument(
            "--syntax-check", action="store_true", default=False,
            help="Run nothing: check the stage's playbooks with "
                 "ansible-playbook --syntax-check, with the settings a run "
                 "uses (every module, plugin and role must resolve).")
        parser.add_argument("--force", action="store_true", default=False,
                            help="Run even though the controlplane stage is "
                                 "unfinished.")
        options.add_yes(parser, "running the upgrade")
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        from composable_upgrades.run.execute import run_stage

        if parsed_args.syntax_check:
            return self.syntax_check(parsed_args)
        run_options = _checked(self, parsed_args, parsed_args.stage, options.run_options(
            parsed_args, force=parsed_args.force, batch_size=parsed_args.batch_size,
            max_fail_percentage=parsed_args.max_fail_percentage),
            f"Upgrade stage {parsed_args.stage} of stack {parsed_args.stack}")
        return self.execute(parsed_args, lambda show: run_stage(
            options.working_dir(parsed_args), parsed_args.stage, run_options,
            dry_run=parsed_args.dry_run, progress=show,
            **options.run_place(parsed_args)))


    def syntax_check(self, parsed_args: argparse.Namespace) -> Table:
        """``run --syntax-check``: one row per playbook checked."""
        from composable_upgrades.run.options import RunOptions
        from composable_upgrades.run.syntax import syntax_check

        checked = syntax_check(options.working_dir(parsed_args), parsed_args.stage,
                               options=RunOptions(forks=parsed_args.ansible_forks))
        self.note(f"syntax check passed: stage {parsed_args.stage}, "
                  f"{len(checked.playbooks)} playbook"
                  f"{'s' if len(checked.playbooks) != 1 else ''}")
        return ["Playbook", "Result"], [(p, "ok") for p in checked.playbooks]


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
        from composable_upgrades.planning.stages import CONVERGE
        from composable_upgrades.run.converge import converge

        run_options = _checked(self, parsed_args, CONVERGE, options.run_options(
            parsed_args, force=parsed_args.force),
            f"Converge the upgrade of stack {parsed_args.stack}")
        return self.execute(parsed_args, lambda show: converge(
            options.working_dir(parsed_args), run_options,
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

        def when(moment: float | None) -> str:
            return (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))
                    if moment else "")

        rows = []
        for s in status(options.working_dir(parsed_args)):
            last = (f"{s.last_run} ({s.last_status}, {when(s.last_started)})"
                    if s.last_run else "")
            pending = ", ".join(s.pending[:5]) + (
                f" and {len(s.pending) - 5} more" if len(s.pending) > 5 else "")
            now = ""
            if s.running:
                r = s.running
                now = (f"{r.run_id}: batch {r.batch}/{r.batches}, step {r.step} since "
                       f"{when(r.step_started)}" if r.step is not None
                       else f"{r.run_id}: since {when(r.started)}")
            rows.append((s.stage, s.state, len(s.hosts), len(s.done),
                         len(s.failed), len(s.pending), pending, last,
                         round(s.last_duration, 1) if s.last_duration else "",
                         now, ", ".join(s.rerun_after_converge)))
        return (["Stage", "State", "Hosts", "Done", "Failed", "Pending",
                 "Pending hosts", "Last run", "Duration (s)", "Running",
                 "Re-run after converge"], rows)

"""``openstack overcloud upgrade prepare|plan|run|converge|status``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tripleoclient_upgrade import options
from tripleoclient_upgrade.command import Table, UpgradeLister

if TYPE_CHECKING:  # the SDK is imported only when a command runs
    from composable_upgrades.run.options import RunOptions
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
            "--demo", action="store_true", default=False,
            help="The embedded demo overcloud (its outputs and service "
                 "dependencies), to try the tool out; with --fleet, the fleet "
                 "is seeded with the demo's old release, ready to rehearse.")
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
        parser.add_argument(
            "--hooks-file", metavar="FILE",
            help="YAML: hooks to run around the batches of the plan's runs "
                 "(see 'run --hooks-file'); kept in the plan with the "
                 "playbooks it names, used by run and converge unless they "
                 "are given a hooks file of their own.")
        options.add_fleet(parser, "Prepare for a rehearsal on a local fleet: "
                          "every host becomes a local sandbox under DIR.")
        options.add_execution_nodes(parser, "kept in the plan for its runs")
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
        from tripleoclient_upgrade import handoff

        handoff.add_prepare_options(parser)
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        import composable_upgrades as cu

        outputs = self._outputs(parsed_args)
        outputs.check_finished(force=parsed_args.force)
        stack = parsed_args.stack
        # A `stack show` file names its stack: used unless --stack says.
        if parsed_args.outputs_file and outputs.stack and stack == options.default_stack():
            stack = outputs.stack
        dependencies = parsed_args.dependencies_file
        if parsed_args.demo and not dependencies:
            dependencies = cu.demo_dependencies_path()
        result = cu.prepare(
            outputs, options.working_dir(parsed_args, stack),
            stack=stack, stages_file=parsed_args.stages_file,
            dependencies_file=dependencies,
            converge_file=parsed_args.converge_file,
            fleet=options.fleet(parsed_args), noop=parsed_args.noop,
            force=parsed_args.force, ssh_user=parsed_args.overcloud_ssh_user,
            execution_nodes=_execution_nodes(parsed_args.execution_nodes),
            hooks_file=parsed_args.hooks_file)
        for note in result.notes:
            self.note(f"note: {note}")
        fleet = options.fleet(parsed_args)
        if parsed_args.demo and fleet is not None:
            fleet.create(list(result.prepared.hosts))
            cu.seed_fleet(fleet, result.prepared, reset=True)
            self.note(f"seeded the demo fleet at {fleet.root}: "
                      f"{len(result.prepared.hosts)} hosts and the undercloud")
        for warning in result.plan.warnings:
            self.note(f"warning: {warning}")
        state = "written to" if result.changed else "unchanged in"
        self.note(f"Upgrade plan for stack {stack} {state} {result.plan_dir}")
        from composable_upgrades.model.releases import find_releases

        for line in find_releases(outputs).lines():
            self.note(f"upgrade: {line}")
        from composable_upgrades.views.status import next_command

        args = next_command(options.working_dir(parsed_args, stack))
        self.note(f"next: {options.command_line(parsed_args, args, stack)}")
        return result.prepared.summary()


    def _outputs(self, parsed_args: argparse.Namespace):
        import composable_upgrades as cu
        from tripleoclient_upgrade import handoff

        if handoff.forwarded(parsed_args):  # --templates -e ...: update the stack first
            stack = parsed_args.stack
            written = handoff.update_stack(self, parsed_args, stack,
                                           options.working_dir(parsed_args, stack))
            self.note(f"note: python-tripleoclient updated stack {stack}; "
                      f"planning from its config at {written}")
            return cu.StackOutputs.from_config_download(written)
        if parsed_args.outputs_file:
            return cu.StackOutputs.from_file(parsed_args.outputs_file)
        if parsed_args.demo:
            return cu.demo_outputs()
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


def _execution_nodes(path: str | None) -> dict | None:
    """A node file's data, checked (:class:`InputFileError` naming it)."""
    if path is None:
        return None
    from composable_upgrades.run.nodes import ExecutionNodes
    return ExecutionNodes.load(path).to_dict()


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

        from composable_upgrades.run.nodes import run_nodes

        plan = cu.Workdir.at(options.working_dir(parsed_args)).load_plan()
        rows = plan.rows(parsed_args.by, stage=parsed_args.stage, role=parsed_args.role)
        nodes = run_nodes(plan)
        if nodes is not None:  # who drives which hosts, stage by stage
            for stage in plan.stages:
                if parsed_args.stage in (None, stage.name) and stage.hosts:
                    for line in nodes.describe(plan, stage.hosts):
                        self.note(f"stage {stage.name}: execution node {line}")
        from composable_upgrades.model.releases import plan_folder_releases

        for line in plan_folder_releases(plan.path).lines():
            self.note(f"upgrade: {line}")
        return rows


def _confirm(command, parsed_args: argparse.Namespace, question: str) -> None:
    """Ask before changing the overcloud, unless -y; refuse without a tty."""
    import sys

    from composable_upgrades import UpgradeError

    if parsed_args.yes or getattr(parsed_args, "dry_run", False):
        return
    if not sys.stdin.isatty():
        raise UpgradeError(f"{question} Not asking without a terminal: pass -y")
    answer = command.ask(f"{question} [y/N]: ").strip().lower()
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
        for line in preview.execution_nodes:
            self.note(f"execution node {line}")
        for command in preview.commands:
            on = f" on {command.node}" if command.node else ""
            self.note(f"batch {command.batch}, step {command.step}{on}: "
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
            "--stage",
            help="Stage to run: controlplane, compute (or a stage of your "
                 "stages file), or external (the undercloud's external "
                 "upgrade tasks; filter them with --tags, e.g. "
                 "container_image_prepare or online_upgrade). Needed, but "
                 "for python-tripleoclient's '--limit HOSTS --playbook all': "
                 "the stage of those hosts.")
        options.add_run_options(parser)
        options.add_execution_nodes(parser, "default: those kept in the plan")
        parser.add_argument(
            "--batch-size", metavar="N|N%|LIST",
            help="Upgrade the hosts of a non-controlplane stage in batches of "
                 "N hosts or N%% of them, or as a comma-separated schedule "
                 "such as 1,5,20%% (one host, then 5, then 20%% of the "
                 "stage's hosts at a time: the last value repeats); each "
                 "batch runs every step.")
        parser.add_argument(
            "--max-fail-percentage", type=float, metavar="P",
            help="Keep going while at most P%% of a batch's hosts failed "
                 "(default 0: any failure stops the stage).")
        options.add_rollout_options(parser)
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
        from tripleoclient_upgrade import handoff

        stage = parsed_args.stage
        if stage is None:  # python-tripleoclient's --limit ... --playbook all
            stage = handoff.stage_of_limit(options.working_dir(parsed_args),
                                           parsed_args.limit, parsed_args.playbook)
            self.note(f"note: --limit {parsed_args.limit} is in stage {stage}: "
                      f"running --stage {stage}")
        if parsed_args.syntax_check:
            return self.syntax_check(parsed_args, stage)
        run_options = _checked(self, parsed_args, stage, options.run_options(
            parsed_args, force=parsed_args.force, batch_size=parsed_args.batch_size,
            max_fail_percentage=parsed_args.max_fail_percentage,
            **options.rollout_options(parsed_args)),
            f"Upgrade stage {stage} of stack {parsed_args.stack}")
        confirm = options.confirm_each(parsed_args)
        table = self.execute(parsed_args, lambda show: run_stage(
            options.working_dir(parsed_args), stage, run_options,
            dry_run=parsed_args.dry_run, progress=show, confirm=confirm,
            requested=self.requested(), **options.run_place(parsed_args)))
        if parsed_args.dry_run:
            self.estimate(parsed_args, stage, run_options)
        return table

    def estimate(self, parsed_args: argparse.Namespace, stage: str,
                 run_options: RunOptions) -> None:
        """The dry run's forecast of the stage, from the recorded runs."""
        from composable_upgrades import UpgradeError, forecast

        try:
            found = forecast(options.working_dir(parsed_args), stage=stage,
                             batch_size=run_options.batch_size, forks=run_options.forks)
        except UpgradeError as exc:
            self.note(f"estimate: none ({exc})")
            return
        figures = found.stages[0] if found.stages else None
        if figures is not None and figures.p50 is not None:
            self.note(f"estimate: p50 {figures.p50:.0f} s, p90 {figures.p90:.0f} s "
                      f"(from {figures.observations} recorded durations)")
        if found.note:
            self.note(f"estimate: {found.note}")


    def syntax_check(self, parsed_args: argparse.Namespace, stage: str) -> Table:
        """``run --syntax-check``: one row per playbook checked."""
        from composable_upgrades.run.options import RunOptions
        from composable_upgrades.run.syntax import syntax_check

        checked = syntax_check(options.working_dir(parsed_args), stage,
                               options=RunOptions(forks=parsed_args.ansible_forks))
        self.note(f"syntax check passed: stage {stage}, "
                  f"{len(checked.playbooks)} playbook"
                  f"{'s' if len(checked.playbooks) != 1 else ''}")
        return ["Playbook", "Result"], [(p, "ok") for p in checked.playbooks]


class Converge(_RunCommand):
    """Finish the upgrade: post-upgrade tasks, RPC unpin, unmanaged packages,
    and a reboot, one host at a time, where the kernel changed (with the
    pre_batch and post_batch hooks, a compute drain, around each host's).

    Refuses while an upgrade stage is unfinished, unless --force.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        options.add_stack(parser)
        options.add_working_dir(parser)
        options.add_run_options(parser)
        options.add_execution_nodes(parser, "default: those kept in the plan")
        options.add_hooks_options(parser, "around each host's reboot")
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
            parsed_args, force=parsed_args.force, **options.hooks_options(parsed_args)),
            f"Converge the upgrade of stack {parsed_args.stack}")
        return self.execute(parsed_args, lambda show: converge(
            options.working_dir(parsed_args), run_options,
            dry_run=parsed_args.dry_run, progress=show, requested=self.requested(),
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

        from composable_upgrades.state.workdir import Workdir

        from composable_upgrades.state.lock import stale_lock_note, take_over_stale

        structured = getattr(parsed_args, "formatter", "table") in ("json", "yaml")
        workdir = Workdir.at(options.working_dir(parsed_args))
        plan = workdir.load_plan()
        if os.path.isdir(workdir.state_dir):
            stale = take_over_stale(workdir.state_dir)
            if stale is not None:
                self.note(f"note: {stale_lock_note(stale)}")
        if plan.is_rehearsal:
            self.note(("a no-op rehearsal" if plan.variant == "noop" else "a rehearsal")
                      + f" on the fleet at {plan.fleet_root}")
        rows = []
        for s in status(options.working_dir(parsed_args)):
            last = (f"{s.last_run} ({s.last_status}, {when(s.last_started)})"
                    if s.last_run else "")
            pending: Any = ", ".join(s.pending[:5]) + (
                f" and {len(s.pending) - 5} more" if len(s.pending) > 5 else "")
            reruns: Any = ", ".join(s.rerun_after_converge)
            if structured:  # machine-readable output: every host, as a list
                pending, reruns = list(s.pending), list(s.rerun_after_converge)
            now = ""
            if s.running:
                r = s.running
                now = (f"{r.run_id}: batch {r.batch}/{r.batches}, step {r.step} since "
                       f"{when(r.step_started)}" if r.step is not None
                       else f"{r.run_id}: since {when(r.started)}")
            rows.append((s.stage, s.state, len(s.hosts), len(s.done),
                         len(s.failed), len(s.pending), pending, last,
                         round(s.last_duration, 1) if s.last_duration else "",
                         now, reruns))
        return (["Stage", "State", "Hosts", "Done", "Failed", "Pending",
                 "Pending hosts", "Last run", "Duration (s)", "Running",
                 "Re-run after converge"], rows)

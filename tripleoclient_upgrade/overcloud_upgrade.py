"""``openstack overcloud upgrade prepare|plan``."""

from __future__ import annotations

import argparse

from tripleoclient_upgrade import options
from tripleoclient_upgrade.command import UpgradeLister


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
        options.add_yes(parser, "preparing (prepare changes nothing on the "
                        "overcloud; accepted for python-tripleoclient habits)")
        return parser

    def action(self, parsed_args: argparse.Namespace):
        import composable_upgrades as cu

        if parsed_args.outputs_file:
            outputs = cu.StackOutputs.from_file(parsed_args.outputs_file)
        elif parsed_args.config_download_dir:
            outputs = cu.StackOutputs.from_config_download(
                parsed_args.config_download_dir)
        else:
            raise cu.UpgradeError(
                "no stack outputs: pass --outputs-file or --config-download-dir")
        result = cu.prepare(
            outputs, options.working_dir(parsed_args), stack=parsed_args.stack,
            stages_file=parsed_args.stages_file,
            dependencies_file=parsed_args.dependencies_file)
        for warning in result.plan.warnings:
            self.note(f"warning: {warning}")
        state = "written to" if result.changed else "unchanged in"
        self.note(f"Upgrade plan for stack {parsed_args.stack} {state} "
                  f"{result.plan_dir}")
        return result.prepared.summary()


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

    def action(self, parsed_args: argparse.Namespace):
        import composable_upgrades as cu

        plan = cu.Workdir.at(options.working_dir(parsed_args)).load_plan()
        return plan.rows(parsed_args.by, stage=parsed_args.stage,
                         role=parsed_args.role)

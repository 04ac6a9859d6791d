"""``openstack overcloud upgrade history`` and ``... upgrade plan diff``."""

from __future__ import annotations

import argparse
import os
from datetime import datetime

from tripleoclient_upgrade import options
from tripleoclient_upgrade.command import Table, UpgradeLister

RUN_COLUMNS = ["Run", "Kind", "Stage", "Status", "Started", "Duration (s)",
               "Hosts", "Failed hosts", "Tasks", "Plan", "Notes"]
TASK_COLUMNS = ["Batch", "Step", "Host", "Role", "Service", "Task", "Action",
                "Status", "Start", "Duration (s)", "Message"]


def _time(moment: float | None, timespec: str = "seconds") -> str:
    """Local time, as the status command shows it (an empty cell if none)."""
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment).isoformat(sep=" ", timespec=timespec)


def _round(value: float | None, digits: int) -> float | str:
    return "" if value is None else round(value, digits)


class RunHistory(UpgradeLister):
    """Show the runs of the upgrade (prepare, stages, converge), or one run's tasks.

    Without --run, one row per run, oldest first; with --run, one row per
    host, step and task of that run, in the order they ran.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        options.add_stack(parser)
        options.add_working_dir(parser)
        parser.add_argument("--run", metavar="ID",
                            help="Show the task records of this run.")
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        from composable_upgrades import Workdir
        from composable_upgrades.views.history import History

        workdir = Workdir.at(options.working_dir(parsed_args))
        if not workdir.has_plan() and not os.path.exists(workdir.history_path):
            workdir.load_plan()  # says there is no plan here, and where
        history = History(options.working_dir(parsed_args))
        if parsed_args.run:
            return TASK_COLUMNS, [
                (r.batch, r.step, r.host, r.role or "", r.service or "", r.task,
                 r.action or "",
                 r.status, _time(r.start, "milliseconds"), _round(r.duration, 3),
                 r.message)
                for r in history.run(parsed_args.run).records]
        return RUN_COLUMNS, [
            (r.run_id, r.kind, r.stage, r.status, _time(r.started),
             _round(r.duration, 1), r.hosts, r.failed_hosts, r.tasks,
             (r.plan_sha or "")[:12], "; ".join(r.notes))
            for r in history.run_rows()]


class PlanDiff(UpgradeLister):
    """Compare two upgrade plans: tasks added, removed or moved, services.

    Default: the plan that the last prepare replaced against the current one.
    OLD_PLAN and NEW_PLAN are plan folders (e.g. a copy of
    composable-upgrade/plan/); with only OLD_PLAN, it is compared with the
    current plan.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        options.add_stack(parser)
        options.add_working_dir(parser)
        parser.add_argument("old_plan", nargs="?", metavar="OLD_PLAN",
                            help="The plan folder to compare from (default: "
                                 "the previous plan).")
        parser.add_argument("new_plan", nargs="?", metavar="NEW_PLAN",
                            help="The plan folder to compare to (default: "
                                 "the current plan).")
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        from composable_upgrades.views.diff import diff_rows, plans_to_compare

        old, new = plans_to_compare(options.working_dir(parsed_args),
                                    parsed_args.old_plan, parsed_args.new_plan)
        columns, rows = diff_rows(old, new)
        self.note(f"{len(rows)} changes from {old.path} ({old.sha256[:12]}) "
                  f"to {new.path} ({new.sha256[:12]})")
        return columns, rows

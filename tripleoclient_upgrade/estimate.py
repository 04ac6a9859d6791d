"""``openstack overcloud upgrade estimate``: the maintenance window, forecast."""

from __future__ import annotations

import argparse

from tripleoclient_upgrade import options
from tripleoclient_upgrade.command import Table, UpgradeLister

COLUMNS = {
    "stage": ["Stage", "Hosts", "Batches", "P50 (s)", "P90 (s)", "Observations"],
    "batch": ["Stage", "Batch", "Hosts", "P50 (s)", "P90 (s)", "Observations"],
    "step": ["Stage", "Batch", "Step", "Hosts", "P50 (s)", "P90 (s)", "Observations"],
}


def _seconds(value: float | None) -> float | str:
    """A figure, or an empty cell where nothing was recorded."""
    return "" if value is None else round(value, 1)


class Estimate(UpgradeLister):
    """Forecast how long each stage will take, learned from recorded runs.

    The figures follow what 'run' would do with the same --batch-size and
    --ansible-forks: batches one after the other, every step a barrier, the
    slowest host of each group of role plays that run together. They are
    learned from the stack's run history (a rehearsal, an earlier upgrade),
    or from the working directories given with --history-dir. Role plays
    with no recorded duration are named on stderr and left out.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        options.add_stack(parser)
        options.add_working_dir(parser)
        parser.add_argument("--stage", help="Forecast this stage only.")
        parser.add_argument(
            "--batch-size", metavar="N|N%",
            help="The batch size 'run' would be given (batched stages only); "
                 "default: every host in one batch.")
        parser.add_argument("--ansible-forks", type=int, metavar="N",
                            help="The forks 'run' would be given (default: "
                                 "min(4 x CPUs, 100)).")
        parser.add_argument(
            "--history-dir", metavar="DIR", action="append",
            help="Learn from the run history of this working directory "
                 "instead of the stack's own (repeat for several).")
        parser.add_argument("--by", choices=sorted(COLUMNS), default="stage",
                            help="One row per stage (default), per batch or "
                                 "per step of each batch.")
        return parser

    def action(self, parsed_args: argparse.Namespace) -> Table:
        from composable_upgrades import forecast

        result = forecast(options.working_dir(parsed_args), stage=parsed_args.stage,
                          batch_size=parsed_args.batch_size,
                          forks=parsed_args.ansible_forks,
                          history=parsed_args.history_dir)
        if result.note:
            self.note(result.note)
        batches = {s.stage: sum(1 for b in result.batches if b.stage == s.stage)
                   for s in result.stages}
        if parsed_args.by == "stage":
            rows = [(e.stage, e.hosts, batches[e.stage]) for e in result.stages]
            figures = result.stages
        elif parsed_args.by == "batch":
            rows = [(e.stage, e.batch, e.hosts) for e in result.batches]
            figures = result.batches
        else:
            rows = [(e.stage, e.batch, e.step, e.hosts) for e in result.steps]
            figures = result.steps
        return COLUMNS[parsed_args.by], [
            row + (_seconds(e.p50), _seconds(e.p90), e.observations)
            for row, e in zip(rows, figures)]

"""Converge: the deployment-wide stage, run once every upgrade stage is done."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from composable_upgrades.model.fleet import Fleet
from composable_upgrades.planning.stages import CONVERGE
from composable_upgrades.run.events import Progress, StopRequest
from composable_upgrades.run.execute import run_stage
from composable_upgrades.run.hooks import HookFunction
from composable_upgrades.run.nodes import NodesSpec
from composable_upgrades.run.stage_runner import Confirm
from composable_upgrades.run.options import RunOptions
from composable_upgrades.state.results import RecordSink, RunResult


def converge(working_dir: str | os.PathLike[str],
             options: RunOptions | None = None, *,
             fleet: Fleet | str | None = None,
             ssh_key: str | os.PathLike[str] | None = None,
             dry_run: bool = False, progress: Progress | None = None,
             sink: RecordSink | None = None, stop: StopRequest | None = None,
             hooks: Mapping[str, Sequence[HookFunction | str]] | None = None,
             confirm: Confirm | None = None,
             execution_nodes: NodesSpec | None = None,
             requested: float | None = None,
             **overrides: Any) -> RunResult:
    """Run the converge stage: post-upgrade steps, then the deployment-wide
    phases. Refuses while an upgrade stage is unfinished, unless ``force``.
    Options and keywords are :func:`~composable_upgrades.run.execute.run_stage`'s
    (``batch_size`` and ``max_fail_percentage`` do not apply; the hooks of
    ``hooks_file`` and ``hooks`` run at its ``pre_stage`` and ``post_stage``;
    ``execution_nodes`` as there)."""
    return run_stage(working_dir, CONVERGE, options, fleet=fleet, ssh_key=ssh_key,
                     dry_run=dry_run, progress=progress, sink=sink, stop=stop,
                     hooks=hooks, confirm=confirm, execution_nodes=execution_nodes,
                     requested=requested, **overrides)

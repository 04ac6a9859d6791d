"""Converge: the deployment-wide stage, run once every upgrade stage is done."""

from __future__ import annotations

import os
from collections.abc import Sequence

from composable_upgrades.model.fleet import Fleet
from composable_upgrades.planning.stages import CONVERGE
from composable_upgrades.run.execute import Progress, StopRequest, run_stage
from composable_upgrades.state.results import RecordSink, RunResult


def converge(working_dir: str | os.PathLike[str], *,
             limit: str | Sequence[str] | None = None,
             tags: str | None = None, skip_tags: str | None = None,
             forks: int | None = None, resume: bool = False,
             steps: Sequence[int | str] | None = None,
             playbooks: Sequence[str] | None = None,
             fleet: Fleet | str | None = None,
             ssh_key: str | os.PathLike[str] | None = None, force: bool = False,
             progress: Progress | None = None, sink: RecordSink | None = None,
             stop: StopRequest | None = None) -> RunResult:
    """Run the converge stage: post-upgrade steps, then the deployment-wide
    phases. Refuses while an upgrade stage is unfinished, unless ``force``.
    The options are :func:`~composable_upgrades.run.execute.run_stage`'s."""
    return run_stage(working_dir, CONVERGE, limit=limit, tags=tags,
                     skip_tags=skip_tags, forks=forks, resume=resume,
                     steps=steps, playbooks=playbooks, fleet=fleet,
                     ssh_key=ssh_key, force=force, progress=progress, sink=sink,
                     stop=stop)

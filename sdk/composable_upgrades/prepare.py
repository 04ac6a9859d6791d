"""prepare: stack outputs in, a reviewable plan folder out."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from composable_upgrades.dependencies import Dependencies
from composable_upgrades.errors import StageError
from composable_upgrades.fleet import Fleet
from composable_upgrades.inventory import render_inventory
from composable_upgrades.journal import Journal
from composable_upgrades.lock import acquire
from composable_upgrades.model import Deployment
from composable_upgrades.outputs import StackOutputs
from composable_upgrades.plan import KIND_EXTERNAL, UpgradePlan, build_plan
from composable_upgrades.rehearsal import noop_variant
from composable_upgrades.playbooks import render_playbooks
from composable_upgrades.serialize import to_json
from composable_upgrades.store import HistoryStore
from composable_upgrades.workdir import PLAN_FILE, PreparedPlan, Workdir, content_hash

INVENTORY_FILE = "inventory.yaml"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PrepareResult:
    """What prepare wrote: the plan, where, and whether it changed."""

    plan: UpgradePlan
    prepared: PreparedPlan
    changed: bool

    @property
    def plan_dir(self) -> str:
        """The plan folder."""
        return self.prepared.path


def render(plan: UpgradePlan) -> dict[str, str]:
    """Every file of the plan folder: relative path -> text."""
    files = render_playbooks(plan)
    files[INVENTORY_FILE] = render_inventory(plan)
    files[PLAN_FILE] = to_json(plan.to_dict())
    return files


def plan_upgrade(outputs: StackOutputs, *, stack: str | None = None,
                 stages_file: str | os.PathLike[str] | None = None,
                 dependencies_file: str | os.PathLike[str] | None = None,
                 converge_file: str | os.PathLike[str] | None = None,
                 fleet: Fleet | None = None, noop: bool = False) -> UpgradePlan:
    """The upgrade plan for ``outputs``, without writing anything.

    ``noop``: the rehearsal variant, every task a no-op that records itself
    (see :mod:`.rehearsal`); it needs a ``fleet``.
    """
    deployment = Deployment.from_outputs(outputs, stack=stack)
    plan = build_plan(deployment, stages_file=stages_file,
                      dependencies=Dependencies.load(dependencies_file),
                      converge_file=converge_file, fleet=fleet)
    return noop_variant(plan) if noop else plan


def prepare(outputs: StackOutputs, working_dir: str | os.PathLike[str], *,
            stack: str | None = None,
            stages_file: str | os.PathLike[str] | None = None,
            dependencies_file: str | os.PathLike[str] | None = None,
            converge_file: str | os.PathLike[str] | None = None,
            fleet: Fleet | None = None, noop: bool = False, force: bool = False,
            progress: Progress | None = None) -> PrepareResult:
    """Plan the upgrade and write the plan folder into ``working_dir``.

    The same outputs and options give byte-identical files. The previous plan
    is kept as ``plan.previous``; on any error the current plan is untouched.
    A plan whose stages are partly done is not replaced unless ``force``.
    ``noop`` writes the no-op rehearsal variant (needs a ``fleet``).
    """
    report = progress or (lambda message: None)
    started = time.time()
    workdir = Workdir.at(working_dir)
    report("planning")
    plan = plan_upgrade(outputs, stack=stack, stages_file=stages_file,
                        dependencies_file=dependencies_file,
                        converge_file=converge_file, fleet=fleet, noop=noop)
    report("rendering playbooks and inventory")
    files = render(plan)
    digest = content_hash(files)
    workdir.ensure()
    with acquire(workdir.state_dir, purpose="prepare"):
        if not force:
            _refuse_if_partly_done(workdir, digest)
        report(f"writing {len(files)} files")
        changed = workdir.write_plan(files)
        HistoryStore(workdir.history_path).record_prepare(
            digest,
            {"stack": plan.stack, "source": outputs.source,
             "stages_file": _path(stages_file),
             "dependencies_file": _path(dependencies_file),
             "converge_file": _path(converge_file),
             "fleet": fleet.root if fleet else None, "noop": noop, "force": force},
            started=started, ended=time.time(), status="successful",
            notes=list(plan.warnings) + ([] if changed else ["plan unchanged"]))
    prepared = PreparedPlan(path=workdir.plan_dir, sha256=digest,
                            data=plan.to_dict())
    return PrepareResult(plan=plan, prepared=prepared, changed=changed)


def _path(path: str | os.PathLike[str] | None) -> str | None:
    return os.fspath(path) if path is not None else None


def _refuse_if_partly_done(workdir: Workdir, new_digest: str) -> None:
    """Refuse to replace a plan whose upgrade is under way."""
    if not workdir.has_plan():
        return
    current = workdir.load_plan()
    if current.sha256 == new_digest:
        return
    progress = Journal(workdir.state_dir).progress(current.sha256, current.stages)
    for stage in current.stages:
        state = progress[stage.name]
        if stage.kind != KIND_EXTERNAL and state.started and not state.finished_stage:
            raise StageError(
                f"stage {stage.name!r} of the current plan is partly done "
                f"({len(state.done)} of {len(stage.hosts)} hosts finished); "
                "finish it before preparing a new plan, or pass --force",
                stage=stage.name)

"""prepare: stack outputs in, a reviewable plan folder out."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from composable_upgrades.planning.dependencies import Dependencies
from composable_upgrades.planning.hook_spec import HooksSpec, keep_hooks
from composable_upgrades.errors import OutputsError, StageError
from composable_upgrades.model.fleet import Fleet
from composable_upgrades.render.inventory import render_inventory
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.lock import acquire, stale_lock_note
from composable_upgrades.model.deployment import Deployment
from composable_upgrades.sources.outputs import StackOutputs
from composable_upgrades.model.kinds import RunStatus, StageKind
from composable_upgrades.model.secret_digests import SECRET_DIGESTS_FILE, SecretDigests
from composable_upgrades.planning.plan import DEFAULT_SSH_USER, UpgradePlan, build_plan
from composable_upgrades.planning.noop import noop_variant
from composable_upgrades.render.playbooks import add_file, render_playbooks, stage_files
from composable_upgrades.formats.serialize import to_json, to_yaml
from composable_upgrades.state.store import HistoryStore
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.errors import PlanNotFoundError, WorkdirError
from composable_upgrades.state.workdir import (
    PLAN_FILE, Workdir, check_stack_name, content_hash)

INVENTORY_FILE = "inventory.yaml"
#: The execution nodes kept with a plan (``prepare --execution-nodes``).
EXECUTION_NODES_FILE = "execution-nodes.yaml"
#: Output key by which outputs say their tasks act only inside the fleet's
#: sandbox (``rehearsal_root``): the demo overcloud's do.
SANDBOX_OUTPUT = "RehearsalSandbox"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PrepareResult:
    """What prepare wrote: the plan, where, and whether it changed."""

    plan: UpgradePlan
    prepared: PreparedPlan
    changed: bool
    notes: tuple[str, ...] = ()

    @property
    def plan_dir(self) -> str:
        """The plan folder."""
        return self.prepared.path


def render(plan: UpgradePlan, hooks: HooksSpec | None = None
           ) -> tuple[dict[str, str], dict[str, Any]]:
    """Every file of the plan folder (relative path -> text), and plan.json's data.

    Each stage in plan.json carries the hash of its own files and hosts: the
    journal ties progress to it, so a new plan keeps the progress of the
    stages it does not change. ``hooks`` are kept in the folder (``hooks/``)
    and named by plan.json's ``hooks``; they change no stage's hash.
    """
    files = render_playbooks(plan)
    add_file(files, INVENTORY_FILE, render_inventory(plan))
    data = plan.to_dict()
    for stage, entry in zip(plan.stages, data["stages"]):
        own = {path: files[path] for path in stage_files(stage)}
        own["stage.json"] = to_json(entry)
        entry["sha256"] = content_hash(own)
    if hooks is not None:
        kept, data["hooks"] = keep_hooks(hooks)
        for path, text in kept.items():
            add_file(files, path, text)
    add_file(files, PLAN_FILE, to_json(data))
    return files, data


def plan_upgrade(outputs: StackOutputs, *, stack: str | None = None,
                 stages_file: str | os.PathLike[str] | None = None,
                 dependencies_file: str | os.PathLike[str] | None = None,
                 converge_file: str | os.PathLike[str] | None = None,
                 fleet: Fleet | None = None, noop: bool = False,
                 ssh_user: str = DEFAULT_SSH_USER) -> UpgradePlan:
    """The upgrade plan for ``outputs``, without writing anything.

    ``noop``: the rehearsal variant, every task a no-op that records itself
    (see :mod:`.rehearsal`); it needs a ``fleet``. A ``fleet`` without
    ``noop`` needs outputs that declare ``RehearsalSandbox: true``.
    """
    deployment = Deployment.from_outputs(outputs, stack=stack)
    if not deployment.hosts:
        # Nothing to upgrade: outputs cut short, or not the ones meant.
        raise OutputsError("no hosts: neither AnsibleHostVarsMap nor "
                           "RoleNetHostnameMap names a host of any role",
                           source=outputs.source, key="AnsibleHostVarsMap")
    if fleet is not None and not noop and not outputs.get(SANDBOX_OUTPUT):
        # A fleet plays every host on this machine: real tasks would run here.
        raise OutputsError(
            "a rehearsal fleet runs every task on this machine; these tasks "
            "are real: rehearse them as no-ops (--noop, noop=True), or use "
            "outputs whose tasks stay in the fleet's sandbox (they declare "
            f"{SANDBOX_OUTPUT}: true)", source=outputs.source)
    plan = build_plan(deployment, stages_file=stages_file,
                      dependencies=Dependencies.load(dependencies_file),
                      converge_file=converge_file, fleet=fleet, ssh_user=ssh_user)
    # A task bound to no real step is planned at none: say so, task by task.
    suspect = tuple(w for w in deployment.binding_warnings()
                    if w not in plan.warnings)
    if suspect:
        plan = replace(plan, warnings=plan.warnings + suspect)
    return noop_variant(plan) if noop else plan


def prepare(outputs: StackOutputs, working_dir: str | os.PathLike[str], *,
            stack: str | None = None,
            stages_file: str | os.PathLike[str] | None = None,
            dependencies_file: str | os.PathLike[str] | None = None,
            converge_file: str | os.PathLike[str] | None = None,
            fleet: Fleet | None = None, noop: bool = False, force: bool = False,
            ssh_user: str = DEFAULT_SSH_USER,
            execution_nodes: Mapping[str, Any] | None = None,
            hooks_file: str | os.PathLike[str] | None = None,
            progress: Progress | None = None) -> PrepareResult:
    """Plan the upgrade and write the plan folder into ``working_dir``.

    The same outputs and options give byte-identical files. The previous plan
    is kept as ``plan.previous``; on any error the current plan is untouched.
    A plan whose stages are partly done is not replaced unless ``force``.
    ``noop`` writes the no-op rehearsal variant (needs a ``fleet``).
    The inventory reaches the overcloud hosts as ``ssh_user``.
    ``execution_nodes`` (a node file's data, checked by
    :class:`~composable_upgrades.run.nodes.ExecutionNodes`) is kept in the
    plan folder as ``execution-nodes.yaml``: the plan's runs use them.
    ``hooks_file`` (see :mod:`~composable_upgrades.planning.hook_spec`) is
    kept in the plan folder with every playbook it names (``hooks/``): the
    plan's runs and converge run them unless given a hooks file of their own.
    """
    report = progress or (lambda message: None)
    started = time.time()
    if stack is not None:
        check_stack_name(stack)
    hooks = HooksSpec.load(hooks_file) if hooks_file is not None else None
    workdir = Workdir.at(working_dir)
    report("planning")
    plan = plan_upgrade(outputs, stack=stack, stages_file=stages_file,
                        dependencies_file=dependencies_file,
                        converge_file=converge_file, fleet=fleet, noop=noop,
                        ssh_user=ssh_user)
    report("rendering playbooks and inventory")
    files, data = render(plan, hooks)
    secrets = SecretDigests.of_outputs(outputs.data)
    if secrets:
        # Runs mask these values verbatim in what they keep and show.
        files[SECRET_DIGESTS_FILE] = secrets.to_json()
    if execution_nodes is not None:
        files[EXECUTION_NODES_FILE] = to_yaml(dict(execution_nodes), header=(
            "Execution nodes of this plan's runs (see doc/scale-out.rst)."))
    digest = content_hash(files)
    workdir.ensure()
    notes: list[str] = []
    with acquire(workdir.state_dir, purpose="prepare") as lock:
        if lock.stale_owner:
            notes.append(stale_lock_note(lock.stale_owner))
        notes.extend(workdir.recover())
        notes.extend(_check_progress(workdir, data, force))
        report(f"writing {len(files)} files")

        def record(changed: bool) -> None:
            # After the swap: if the history cannot take it, the swap is undone.
            HistoryStore(workdir.history_path).record_prepare(
                digest,
                {"stack": plan.stack, "source": outputs.source,
                 "stages_file": _path(stages_file),
                 "dependencies_file": _path(dependencies_file),
                 "converge_file": _path(converge_file),
                 "fleet": fleet.root if fleet else None, "noop": noop,
                 "force": force, "ssh_user": ssh_user,
                 "execution_nodes": bool(execution_nodes),
                 "hooks_file": hooks.source if hooks else None},
                started=started, ended=time.time(), status=RunStatus.SUCCESSFUL,
                notes=notes + list(plan.warnings)
                + ([] if changed else ["plan unchanged"]))

        changed = workdir.write_plan(files, digest, then=record)
    prepared = PreparedPlan.from_dict(data, path=workdir.plan_dir, sha256=digest)
    return PrepareResult(plan=plan, prepared=prepared, changed=changed,
                         notes=tuple(notes))


def _path(path: str | os.PathLike[str] | None) -> str | None:
    return os.fspath(path) if path is not None else None


def _check_progress(workdir: Workdir, data: Mapping[str, Any], force: bool
                    ) -> list[str]:
    """Refuse a plan that would drop progress, unless ``force`` (then say so).

    Progress is tied to each stage's hash: a stage whose playbooks, tasks and
    hosts are unchanged keeps it; a changed stage that has started would
    start again from nothing.
    """
    if not workdir.has_plan():
        return []
    try:
        current = workdir.load_plan()
    except PlanNotFoundError:
        return []
    except WorkdirError as exc:
        if not force:
            raise
        return [f"forced: replaced a plan that could not be read ({exc})"]
    new = {s["name"]: s.get("sha256") for s in data["stages"]}
    progress = Journal(workdir.state_dir).progress(current.stages)
    notes = []
    for stage in current.stages:
        state = progress[stage.name]
        if stage.kind == StageKind.EXTERNAL or not state.started \
                or new.get(stage.name) == stage.sha256:
            continue
        what = (f"stage {stage.name!r} has started ({len(state.done)} of "
                f"{len(stage.hosts)} hosts finished) and the new plan changes it")
        if not force and current.is_rehearsal:
            kind = "a no-op rehearsal" if current.variant == "noop" else "a rehearsal"
            raise StageError(
                f"the current plan here is {kind} on the fleet at "
                f"{current.fleet_root} and {what}: pass --force to discard the "
                "rehearsal's plan and progress, or prepare into another "
                "--working-dir", stage=stage.name)
        if not force:
            raise StageError(f"{what}: its progress would start again from "
                             "nothing; finish the upgrade with the current plan, "
                             "or pass --force", stage=stage.name)
        notes.append(f"forced: {what}; its progress starts again from nothing")
    return notes

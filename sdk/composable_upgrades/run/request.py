"""Before a run: its options checked against the plan, its hosts, steps and
batches decided, its SSH key found, the stages it needs, and what the journal
says of the work it would repeat.

Every check here runs before a command asks for confirmation, and again under
the stack's lock before the run starts, so a refused run asks nothing and
writes nothing.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from composable_upgrades.errors import (
    LockedError, OptionError, StageError, StageNotFinishedError, UnfinishedWorkError)
from composable_upgrades.model.fleet import Fleet
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.prepared import PreparedPlan, PreparedStage
from composable_upgrades.run.executor import StepJob
from composable_upgrades.run.hooks import Hooks
from composable_upgrades.run.limits import batch_schedule, select_hosts, stage_batches
from composable_upgrades.run.environment import run_environment
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.stage_tags import stage_tags
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.workdir import Workdir


@dataclass(frozen=True)
class RunRequest:
    """What a run will do: its stage, hosts, steps, batches and options.

    ``options.steps`` holds the steps chosen by ``steps`` or ``playbooks``;
    ``reset`` the hosts whose progress of these steps the run discards before
    it starts (``rerun``, ``restart``); ``hooks`` what runs around the
    batches and the stage (:mod:`.hooks`).
    """

    stage: PreparedStage
    hosts: tuple[str, ...]
    steps: tuple[int | str, ...]
    batches: tuple[tuple[str, ...], ...]
    options: RunOptions
    reset: tuple[str, ...] = field(default=())
    hooks: Hooks = field(default_factory=Hooks)

    def units(self) -> set[tuple[int | str, str]]:
        """The (step, host) units the run would run."""
        return {(s, h) for s in self.steps for h in self.in_play(s, self.hosts)}

    def in_play(self, step: int | str, hosts: Iterable[str]) -> tuple[str, ...]:
        """The ``hosts`` that a play of ``step`` runs on."""
        playing = self.stage.step(step).hosts
        return tuple(h for h in hosts if h in playing)

    def one_by_one(self, step: int | str) -> bool:
        """True for a converge step whose plays go one host at a time (the
        reboot) when the run has batch hooks: each host runs it alone,
        between its ``pre_batch`` and ``post_batch`` hooks."""
        plays = self.stage.step(step).plays
        return (self.stage.kind == StageKind.CONVERGE and bool(plays)
                and all(p.serial == 1 for p in plays)
                and bool(self.hooks.at("pre_batch") or self.hooks.at("post_batch")))

    def one_by_one_order(self, step: int | str) -> tuple[str, ...]:
        """The hosts of a :meth:`one_by_one` step in the order they go, all
        the stage's (host N of a step is the same on a resume)."""
        return self.in_play(step, self.stage.hosts)

    def job(self, run_id: str, batch: int, step: int | str,
            hosts: Iterable[str]) -> StepJob:
        """The job of running ``step`` of batch ``batch`` on ``hosts``."""
        return StepJob(run_id=run_id, stage=self.stage.name, batch=batch, step=step,
                       hosts=tuple(hosts), playbook=self.stage.step(step).playbook,
                       options=self.options)


def plan_run(plan: PreparedPlan, stage: str,
             options: RunOptions | None = None) -> RunRequest:
    """Check a run's options against ``plan`` and decide hosts, steps, batches."""
    options = options or RunOptions()
    target = plan.stage(stage)
    _check_modes(options)
    _check_batching(target, options)
    named = _named_steps(target, options)
    if not target.hosts:
        raise StageError(f"stage {stage!r} has no hosts", stage=stage)
    if target.kind == StageKind.EXTERNAL and not options.tags:
        tags = stage_tags(plan, target)
        raise StageError(f"stage {stage!r} runs by tags: pass --tags with some of "
                         f"{', '.join(tags) if tags else '(its tasks have no tags)'}",
                         stage=stage)
    hosts = select_hosts(plan, target.hosts, options.limit)
    if not hosts:
        raise StageError(f"--limit {options.limit} matches no host of stage "
                         f"{stage!r}", stage=stage)
    return RunRequest(stage=target, hosts=tuple(hosts),
                      steps=tuple(s for s in target.numbers
                                  if not named or s in named),
                      batches=tuple(_batches(plan, target, hosts, options)),
                      options=replace(options, steps=named or None),
                      hooks=run_hooks(plan, options))


def run_hooks(plan: PreparedPlan, options: RunOptions) -> Hooks:
    """The hooks of a run: its own hooks file's, else those the plan keeps."""
    if options.hooks_file:
        return Hooks.build(options.hooks_file)
    return Hooks.from_plan(plan)


def _batches(plan: PreparedPlan, stage: PreparedStage, hosts: Iterable[str],
             options: RunOptions) -> list[tuple[str, ...]]:
    hosts = list(hosts)
    if stage.kind != StageKind.BATCHED:
        return [tuple(hosts)] if hosts else []
    return stage_batches(plan, hosts, options.batch_size, batch_by=options.batch_by)


def resumed(plan: PreparedPlan, journal: Journal, request: RunRequest) -> RunRequest:
    """``request`` with the schedule and the hooks file of the run it resumes.

    A ``--resume`` without ``--hooks-file`` runs the hooks of the run it
    continues (the journal keeps the file's path; a run of the plan's own
    hooks keeps none, and the plan's run again), so a failed hook runs
    again. For the schedule, see :func:`resumed_schedule`.
    """
    options = request.options
    if not options.resume:
        return request
    kept = journal.progress([request.stage])[request.stage.name].last_start
    if options.hooks_file is None and kept and kept.get("hooks_file"):
        options = replace(options, hooks_file=kept["hooks_file"])
        request = replace(request, options=options,
                          hooks=Hooks.build(options.hooks_file))
    return resumed_schedule(plan, journal, request)


def resumed_schedule(plan: PreparedPlan, journal: Journal,
                     request: RunRequest) -> RunRequest:
    """``request`` with the schedule of the run it resumes, if it resumes one.

    A ``--resume`` continues the batches the journal kept for the stage when
    that run had a ``--batch-size`` and this one gives none or the same (and
    the same ``--batch-by``): the same batches, of the hosts selected now;
    hosts the schedule does not hold come after it, batched by the options.
    """
    options = request.options
    if not options.resume or request.stage.kind != StageKind.BATCHED:
        return request
    kept = journal.progress([request.stage])[request.stage.name].schedule
    if not kept or kept.get("batch_size") in (None, ""):
        return request
    size, by = kept.get("batch_size"), kept.get("batch_by")
    same_size = options.batch_size in (None, "") or \
        list(batch_schedule(options.batch_size)) == list(batch_schedule(size))
    if not same_size or (options.batch_by is not None and options.batch_by != by):
        return request
    chosen = set(request.hosts)
    batches = [tuple(h for h in batch if h in chosen)
               for batch in kept.get("schedule") or ()]
    batches = [b for b in batches if b]
    placed = {h for b in batches for h in b}
    rest = [h for h in request.hosts if h not in placed]
    if rest:
        batches += stage_batches(plan, rest, size, batch_by=by)
    return replace(request, batches=tuple(batches),
                   options=replace(options, batch_size=size, batch_by=by))


def _check_modes(options: RunOptions) -> None:
    """``resume``, ``restart`` and ``rerun`` each say what to do with earlier
    work; one at a time."""
    given = [name for name, on in (("--resume", options.resume),
                                   ("--restart", options.restart),
                                   ("--rerun", options.rerun)) if on]
    if len(given) > 1:
        raise OptionError(f"cannot be used with {given[0]}: pass one of "
                          "--resume, --restart and --rerun", option=given[1])


def _check_batching(stage: PreparedStage, options: RunOptions) -> None:
    if stage.kind != StageKind.BATCHED:
        for value, option in ((options.batch_size, "--batch-size"),
                              (options.batch_by, "--batch-by"),
                              (options.pause_after, "--pause-after"),
                              (options.max_fail_percentage, "--max-fail-percentage")):
            if value is not None:
                raise StageError(f"stage {stage.name!r} runs all its hosts "
                                 f"together and stops at the first failure; "
                                 f"{option} applies to the batched stages",
                                 stage=stage.name)
    batch_schedule(options.batch_size)
    if options.pause_after is not None and options.pause_after < 1:
        raise OptionError("expected a number of batches, 1 or more (1 pauses "
                          "after the first)", option="--pause-after",
                          value=options.pause_after)
    share = options.max_fail_percentage
    if share is not None and not 0 <= share <= 100:
        raise OptionError("must be between 0 and 100", option="--max-fail-percentage",
                          value=share)


def _named_steps(stage: PreparedStage, options: RunOptions) -> list[int | str]:
    """The steps ``options`` name, by number or by playbook (none: all)."""
    steps = list(options.steps or ())
    playbooks = list(options.playbooks or ())
    if playbooks and playbooks != ["all"]:
        by_name = {name: step for step, name in stage.step_playbooks.items()}
        unknown = [p for p in playbooks if os.path.basename(p) not in by_name]
        if unknown:
            raise StageError(f"--playbook {unknown[0]}: not a step playbook of "
                             f"stage {stage.name!r} ({', '.join(by_name)})",
                             stage=stage.name)
        steps = [by_name[os.path.basename(p)] for p in playbooks]
    unknown = [s for s in steps if s not in stage.numbers]
    if unknown:
        raise StageError(f"stage {stage.name!r} has no step {unknown[0]!r} (steps: "
                         f"{', '.join(map(str, stage.numbers))})", stage=stage.name)
    return steps


def check_fleet(plan: PreparedPlan, fleet: Fleet | str | None) -> None:
    """Refuse a ``fleet`` other than the one the plan was prepared for."""
    if fleet is None:
        return
    root = fleet.root if isinstance(fleet, Fleet) else Fleet.at(fleet).root
    planned = plan.fleet_root
    if planned is None:
        raise OptionError(f"the plan in {plan.path} was prepared without a "
                          "fleet; prepare it again with --fleet to rehearse",
                          option="--fleet", value=root)
    if os.path.realpath(planned) != os.path.realpath(root):
        raise OptionError(f"does not match the fleet the plan was prepared "
                          f"for ({planned})", option="--fleet", value=root)


#: Where TripleO keeps the key for its overcloud hosts, in the order
#: python-tripleoclient looks ({working_dir} is the stack's working dir).
SSH_KEY_FILES = ("{working_dir}/ssh_private_key", "~/.ssh/id_rsa_tripleo",
                 "~/.ssh/id_rsa")


def ssh_key_env(working_dir: str, plan: PreparedPlan,
                ssh_key: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``ANSIBLE_PRIVATE_KEY_FILE`` for a run, as an environment to add.

    ``ssh_key`` if given (it must exist); else the first of
    :data:`SSH_KEY_FILES` that exists; nothing on a local-connection
    rehearsal fleet (an SSH fleet's hosts take a key like real ones).
    """
    if ssh_key is not None:
        path = os.path.abspath(os.path.expanduser(os.fspath(ssh_key)))
        if not os.path.isfile(path):
            raise OptionError("no such file", option="--overcloud-ssh-key", value=path)
        return {"ANSIBLE_PRIVATE_KEY_FILE": path}
    if plan.is_rehearsal and plan.fleet_transport == "local":
        return {}
    for pattern in SSH_KEY_FILES:
        path = os.path.expanduser(pattern.format(working_dir=working_dir))
        if os.path.isfile(path):
            return {"ANSIBLE_PRIVATE_KEY_FILE": os.path.abspath(path)}
    return {}


def checked_request(workdir: Workdir, stage: str, options: RunOptions, *,
                    fleet: Fleet | str | None = None,
                    ssh_key: str | os.PathLike[str] | None = None,
                    journal: bool = True
                    ) -> tuple[PreparedPlan, dict[str, str], RunRequest]:
    """The plan, the run's environment and its request, all checked.

    With ``journal`` (not for a dry run), also the lock, the stages the run
    needs and the work it would repeat (see :func:`check_progress`).
    """
    plan = workdir.load_plan()
    check_fleet(plan, fleet)
    env = run_environment(options, extra=ssh_key_env(workdir.path, plan, ssh_key))
    request = plan_run(plan, stage, options)
    request = resumed(plan, Journal(workdir.state_dir), request)
    if journal:
        check_unlocked(workdir.state_dir)
        request = check_progress(plan, Journal(workdir.state_dir), request)
    return plan, env, request


def check_unlocked(state_dir: str) -> None:
    """:class:`LockedError` if a live run of this host holds the stack's lock
    (read only: the lock itself is taken when the run starts)."""
    path = os.path.join(state_dir, "lock")
    try:
        with open(path, encoding="utf-8") as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return
    pid = owner.get("pid") if isinstance(owner, dict) else None
    if not isinstance(pid, int) or owner.get("host") != socket.gethostname():
        return
    if pid == os.getpid():
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return  # stale: the run takes it over
    except PermissionError:
        pass
    raise LockedError(f"{path}: another run holds the lock (pid {pid}, "
                      f"{owner.get('purpose', 'a run')}); one run per stack at a "
                      "time", path=path, pid=pid)


def check_progress(plan: PreparedPlan, journal: Journal,
                   request: RunRequest) -> RunRequest:
    """``request`` checked against the journal, and what it discards first.

    Refuses (unless ``force``) while a stage it needs is unfinished; refuses
    to repeat finished work, or anything of an upgrade stage once converge
    has run, unless ``rerun``; and, when the hosts it would upgrade have
    unfinished progress, refuses unless told to continue it (``resume``) or
    start it again (``restart``: hosts that finished are left out). A run
    with ``tags`` (except on the external stage) finishes nothing, so it is
    never asked to resume.
    """
    stage, options = request.stage, request.options
    pending = stage_guard(plan, journal, stage)
    if pending and not options.force:
        name, left = pending[0]
        raise StageNotFinishedError(name, left, needed_by=(
            "converge" if stage.kind == StageKind.CONVERGE
            else f"stage {stage.name!r}"))
    tags = options.tags if stage.kind == StageKind.EXTERNAL else None
    everything = journal.progress(plan.stages, tags=tags)
    progress = everything[stage.name]
    partial = bool(options.tags) and stage.kind != StageKind.EXTERNAL
    units = request.units()
    if options.rerun:
        reset = () if partial else request.hosts
        return replace(request, reset=reset)
    converged = [s for s in plan.stages if s.kind == StageKind.CONVERGE
                 and everything[s.name].started]
    if converged and stage.kind in (StageKind.CONTROLPLANE, StageKind.BATCHED) \
            and not (options.resume and units <= progress.finished):
        raise StageError(f"converge has run: stage {stage.name!r} would run on "
                         "upgraded and converged hosts again; pass --rerun to run "
                         "it anyway", stage=stage.name)
    if units <= progress.finished:
        if options.resume:
            return request
        raise StageError(f"stage {stage.name!r} is finished on "
                         + _hosts_phrase(request.hosts)
                         + "; pass --rerun to run it again", stage=stage.name)
    touched = [h for h in request.hosts if progress.touched(h)]
    if not touched or options.resume or partial:
        return request
    done = [h for h in touched if all(u in progress.finished
                                      for u in units if u[1] == h)]
    if options.restart:
        left = [h for h in request.hosts if h not in done]
        return replace(request, hosts=tuple(left),
                       batches=tuple(_batches(plan, stage, left, options)),
                       reset=tuple(h for h in left if h in touched))
    parts = [f"{len(done)} finished"] if done else []
    if len(touched) > len(done):
        parts.append(f"{len(touched) - len(done)} partly done")
    raise UnfinishedWorkError(
        f"stage {stage.name!r} has unfinished progress on {len(touched)} of the "
        f"{len(request.hosts)} hosts selected ({', '.join(parts)}); pass --resume "
        "to continue it, or --restart to start it again", stage=stage.name)


def _hosts_phrase(hosts: tuple[str, ...]) -> str:
    if len(hosts) == 1:
        return hosts[0]
    return f"the {len(hosts)} hosts selected"


def stage_guard(plan: PreparedPlan, journal: Journal, stage: PreparedStage
                ) -> list[tuple[str, list[str]]]:
    """Earlier stages that must be finished before ``stage``: (name, pending)."""
    if stage.kind in (StageKind.EXTERNAL, StageKind.CONTROLPLANE):
        return []
    progress = journal.progress(plan.stages)
    if stage.kind == StageKind.BATCHED:
        required = [s for s in plan.stages if s.kind == StageKind.CONTROLPLANE]
    else:  # converge: every upgrade stage
        required = [s for s in plan.stages
                    if s.kind in (StageKind.CONTROLPLANE, StageKind.BATCHED)]
    return [(s.name, progress[s.name].pending) for s in required
            if progress[s.name].pending]

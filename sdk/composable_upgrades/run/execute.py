"""Running a stage of a prepared plan: batches of hosts, step by step.

Every step is a barrier over the hosts upgraded together (the whole
controlplane stage, or one batch of another stage): each step is one
ansible-playbook run of that step's playbook, limited to those hosts, so all
of them finish step N before any starts step N+1. Finished (batch, step,
host) units go to the journal as each step ends; ``resume`` skips them. This
is the one module that imports ansible-runner.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from composable_upgrades.errors import (
    OptionError, RunError, StageError, StageNotFinishedError, WorkdirError)
from composable_upgrades.model.fleet import FAULT_CHECK, Fleet
from composable_upgrades.state.journal import FAILED as UNIT_FAILED
from composable_upgrades.state.journal import OK as UNIT_OK
from composable_upgrades.state.journal import Journal
from composable_upgrades.run.limits import batches_of, select_hosts
from composable_upgrades.state.lock import acquire, stale_lock_note
from composable_upgrades.planning.plan import (
    KIND_BATCHED, KIND_CONTROLPLANE, KIND_CONVERGE, KIND_EXTERNAL, UNDERCLOUD_GROUP,
    UNDERCLOUD_HOST)
from composable_upgrades.model.redact import redact, scrub_text
from composable_upgrades.render.playbooks import task_file_name
from composable_upgrades.state.results import (
    DRY_RUN, FAILED, INTERRUPTED, NOTHING_TO_DO, SUCCESSFUL, RecordSink, RunResult,
    StepOutcome, TaskRecord)
from composable_upgrades.run.runner_pty import quick_pty
from composable_upgrades.formats.serialize import YAML_LOADER
from composable_upgrades.state.store import HistoryStore, new_run_id
from composable_upgrades.planning.prepared import PreparedPlan, PreparedStage
from composable_upgrades.state.workdir import Workdir

REPRODUCE_SCRIPT = "ansible-playbook-command.sh"
_MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class ProgressEvent:
    """What a run reports as it goes (to a progress bar or a log)."""

    kind: str  # run_start, step_start, task, host_done, step_end, note, run_end
    stage: str
    batch: int = 0
    batches: int = 0
    step: int | str | None = None
    steps: int = 0
    units_done: int = 0
    units_total: int = 0
    host: str | None = None
    task: str | None = None
    status: str | None = None
    message: str | None = None


Progress = Callable[[ProgressEvent], None]


class StopRequest:
    """Ctrl-C handling: the first request finishes the current step and stops;
    the second stops now. Callable as a SIGINT handler."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int | None = None, frame: Any = None) -> None:
        self.count += 1

    @property
    def after_step(self) -> bool:
        """Stop once the current step is done."""
        return self.count >= 1

    @property
    def now(self) -> bool:
        """Stop the current step now."""
        return self.count >= 2


@dataclass
class _StepEvents:
    """What the event handler learns during one ansible-playbook run."""

    failed: set[str] = field(default_factory=set)
    stats_failed: set[str] | None = None
    last_task: str | None = None
    # The last lines of Ansible's own messages (errors, warnings), redacted:
    # what to say when ansible-playbook fails before any host does.
    output: deque[str] = field(default_factory=lambda: deque(maxlen=3))


def ansible_playbook_binary() -> str:
    """ansible-playbook next to this Python (a venv need not be activated)."""
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("ansible-playbook")
    if not found:
        raise RunError("ansible-playbook not found next to "
                       f"{sys.executable} nor on PATH")
    return found


#: Where TripleO keeps the key for its overcloud hosts, in the order
#: python-tripleoclient looks ({working_dir} is the stack's working dir).
SSH_KEY_FILES = ("{working_dir}/ssh_private_key", "~/.ssh/id_rsa_tripleo",
                 "~/.ssh/id_rsa")


def ssh_key_env(working_dir: str, plan: PreparedPlan,
                ssh_key: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``ANSIBLE_PRIVATE_KEY_FILE`` for a run, as an environment to add.

    ``ssh_key`` if given (it must exist); else the first of
    :data:`SSH_KEY_FILES` that exists; nothing on a rehearsal fleet, whose
    hosts are local.
    """
    if ssh_key is not None:
        path = os.path.abspath(os.path.expanduser(os.fspath(ssh_key)))
        if not os.path.isfile(path):
            raise OptionError("no such file", option="--overcloud-ssh-key", value=path)
        return {"ANSIBLE_PRIVATE_KEY_FILE": path}
    if plan.is_rehearsal:
        return {}
    for pattern in SSH_KEY_FILES:
        path = os.path.expanduser(pattern.format(working_dir=working_dir))
        if os.path.isfile(path):
            return {"ANSIBLE_PRIVATE_KEY_FILE": os.path.abspath(path)}
    return {}


def _check_fleet(plan: PreparedPlan, fleet: Fleet | str | None) -> None:
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


def stage_guard(plan: PreparedPlan, journal: Journal, stage: PreparedStage
                ) -> list[tuple[str, list[str]]]:
    """Earlier stages that must be finished before ``stage``: (name, pending)."""
    if stage.kind in (KIND_EXTERNAL, KIND_CONTROLPLANE):
        return []
    progress = journal.progress(plan.stages)
    if stage.kind == KIND_BATCHED:
        required = [s for s in plan.stages if s.kind == KIND_CONTROLPLANE]
    else:  # converge: every upgrade stage
        required = [s for s in plan.stages
                    if s.kind in (KIND_CONTROLPLANE, KIND_BATCHED)]
    return [(s.name, progress[s.name].pending) for s in required
            if progress[s.name].pending]


class _TaskIndex:
    """Maps an event's task path (file:line) to the plan task it belongs to."""

    def __init__(self, plan: PreparedPlan) -> None:
        self.plan = plan
        self.starts: dict[str, list[int]] = {}
        self.services: dict[str, list[str | None]] = {}
        for stage in plan.stages:
            for step in stage.steps:
                for play in step.plays:
                    path = os.path.realpath(plan.file(task_file_name(
                        stage.name, stage.kind, stage.task_kind, play.role,
                        step.number)))
                    self.services[path] = [t.service for t in play.tasks]

    def service(self, task_path: str | None) -> str | None:
        if not task_path or ":" not in task_path:
            return None
        path, _, line = task_path.rpartition(":")
        path = os.path.realpath(path)
        services = self.services.get(path)
        if services is None:
            return None
        starts = self.starts.get(path)
        if starts is None:
            starts = self.starts[path] = _item_lines(path)
        try:
            number = int(line)
        except ValueError:
            return None
        index = sum(1 for s in starts if s <= number) - 1
        return services[index] if 0 <= index < len(services) else None


def _item_lines(path: str) -> list[int]:
    """1-based first line of each top-level item of a task file."""
    try:
        with open(path, encoding="utf-8") as handle:
            node = yaml.compose(handle, Loader=YAML_LOADER)
    except (OSError, yaml.YAMLError):
        return []
    if node is None or not hasattr(node, "value"):
        return []
    return [item.start_mark.line + 1 for item in node.value]


class _Runner:
    """One run of one stage; see :func:`run_stage`."""

    def __init__(self, workdir: Workdir, plan: PreparedPlan, stage: PreparedStage,
                 options: Mapping[str, Any], progress: Progress | None,
                 sink: RecordSink, stop: StopRequest,
                 env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = {**_ANSIBLE_ENV, **env}
        self.plan = plan
        self.stage = stage
        self.options = options
        self.progress = progress or (lambda event: None)
        self.sink = sink
        self.stop = stop
        self.journal = Journal(workdir.state_dir)
        self.binary = ansible_playbook_binary()
        self.inventory = plan.file("inventory.yaml")
        self.task_index = _TaskIndex(plan)
        self.roles = {name: host.role for name, host in plan.hosts.items()}
        self.roles[UNDERCLOUD_HOST] = UNDERCLOUD_GROUP
        self.step_hosts = {step.number: step.hosts for step in stage.steps}
        self.units_done = 0
        self.units_total = 0

    # -- the run ----------------------------------------------------------

    def run(self, result: RunResult, hosts: list[str], steps: list[int | str],
            batches: list[tuple[str, ...]], finished: set[tuple[int | str, str]]
            ) -> None:
        self.units_total = sum(1 for b in batches for s in steps for h in b
                               if (s, h) not in finished)
        self.emit("run_start", message=f"{len(hosts)} hosts, {len(batches)} "
                  f"batches, steps {', '.join(map(str, steps))}")
        max_fail = self.options.get("max_fail_percentage") or 0
        for number, batch in enumerate(batches, start=1):
            failed_in_batch: set[str] = set()
            for step in steps:
                todo = [h for h in batch if (step, h) not in finished
                        and h not in failed_in_batch]
                if not todo:
                    continue
                outcome = self.run_step(result, number, len(batches), step, todo)
                failed_in_batch.update(outcome.failed)
                if outcome.interrupted or self.stop.now:
                    result.status = INTERRUPTED
                    return
                if outcome.failed:
                    share = 100.0 * len(failed_in_batch) / len(batch)
                    if self.stage.kind != KIND_BATCHED or share > max_fail:
                        result.status = FAILED
                        result.notes.append(
                            f"stopped after step {step} of batch {number}: "
                            f"{len(failed_in_batch)} of {len(batch)} hosts failed"
                            + (f" (more than --max-fail-percentage {max_fail})"
                               if self.stage.kind == KIND_BATCHED else ""))
                        return
                if self.stop.after_step:
                    result.status = INTERRUPTED
                    result.notes.append(f"stopped on request after step {step} "
                                        f"of batch {number}")
                    return
            if failed_in_batch:
                result.status = FAILED
        if result.status not in (FAILED, INTERRUPTED):
            result.status = SUCCESSFUL

    def run_step(self, result: RunResult, batch: int, batches: int,
                 step: int | str, hosts: list[str]) -> StepOutcome:
        started = time.time()
        in_play = [h for h in hosts if h in self.step_hosts.get(step, ())]
        self.emit("step_start", batch=batch, batches=batches, step=step,
                  message=f"{len(hosts)} hosts")
        events = _StepEvents()
        rc = 0
        interrupted = False
        if in_play:
            rc, interrupted = self.ansible(result, batch, step, in_play, events)
        failed = events.stats_failed if events.stats_failed is not None \
            else events.failed
        if interrupted:
            failed = set()
        elif rc != 0 and not failed:
            # ansible-playbook failed without a host failure (a syntax error,
            # a missing module, a crash): the step did not run anywhere.
            failed = set(in_play)
            said = " / ".join(line for line in events.output if line)
            result.notes.append(f"ansible-playbook exited {rc} at step {step} of "
                                f"batch {batch}: {said or 'no output'}")
        ok_hosts = [h for h in hosts if h not in failed]
        if failed and self.stage.kind != KIND_BATCHED:
            # Plays of these stages are any_errors_fatal: one host's failure
            # stopped every host, so none of them finished the step.
            ok_hosts = []
        if not interrupted:
            tags = self.options.get("tags")
            self.journal.record_units(self.stage.sha256, result.run_id,
                                      self.stage.name, batch, step, ok_hosts,
                                      UNIT_OK, tags=tags)
            self.journal.record_units(self.stage.sha256, result.run_id,
                                      self.stage.name, batch, step,
                                      [h for h in hosts if h in failed],
                                      UNIT_FAILED, tags=tags)
            self.units_done += len(hosts)
        outcome = StepOutcome(batch=batch, step=step, hosts=tuple(hosts),
                              failed=tuple(h for h in hosts if h in failed),
                              started=started, ended=time.time(), rc=rc,
                              interrupted=interrupted)
        result.steps.append(outcome)
        self.emit("step_end", batch=batch, batches=batches, step=step,
                  status="interrupted" if interrupted else
                  ("failed" if outcome.failed else "ok"),
                  message=f"{len(outcome.failed)} failed" if outcome.failed else None)
        return outcome

    # -- ansible ----------------------------------------------------------

    def command(self, step: int | str, hosts: Sequence[str]) -> list[str]:
        """The ansible-playbook command line of one step."""
        cmd = [self.binary, "-i", self.inventory, "--limit", ",".join(hosts)]
        if self.options.get("tags"):
            cmd += ["--tags", self.options["tags"]]
        if self.options.get("skip_tags"):
            cmd += ["--skip-tags", self.options["skip_tags"]]
        if self.options.get("forks"):
            cmd += ["--forks", str(self.options["forks"])]
        cmd.append(self.plan.file(self.stage.step_playbooks[step]))
        return cmd

    def ansible(self, result: RunResult, batch: int, step: int | str,
                hosts: list[str], events: _StepEvents) -> tuple[int, bool]:
        import ansible_runner

        self.append_reproduce(result, batch, step, hosts)
        ident = f"batch{batch}-step{step}"
        handler = self.event_handler(result, batch, step, events)
        kwargs: dict[str, Any] = {
            "private_data_dir": result.run_dir, "ident": ident,
            "project_dir": self.plan.path,
            "playbook": self.plan.file(self.stage.step_playbooks[step]),
            "inventory": self.inventory, "limit": ",".join(hosts),
            "quiet": True, "suppress_env_files": True,
            # ansible-runner finds ansible-playbook on PATH: put the one next
            # to this Python first, so an unactivated venv works.
            "envvars": {**self.env, "PATH": os.path.dirname(self.binary)
                        + os.pathsep + os.environ.get("PATH", "")},
            "event_handler": handler,
            "cancel_callback": lambda: self.stop.now,
        }
        if self.options.get("tags"):
            kwargs["tags"] = self.options["tags"]
        if self.options.get("skip_tags"):
            kwargs["skip_tags"] = self.options["skip_tags"]
        if self.options.get("forks"):
            kwargs["forks"] = int(self.options["forks"])
        try:
            with quick_pty():
                runner = ansible_runner.run(**kwargs)
        except Exception as exc:  # ansible-runner raises plain exceptions
            raise RunError(f"cannot run ansible-playbook for step {step}: {exc}") from exc
        finally:
            # ansible-runner records the command with the whole environment,
            # OS_PASSWORD and the like included; the reproduce script says
            # what ran.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(result.run_dir, "artifacts", ident, "command"))
        interrupted = runner.status == "canceled"
        rc = runner.rc if isinstance(runner.rc, int) else 1
        if rc == 127:
            raise RunError(f"ansible-playbook not found ({self.binary})")
        return rc, interrupted

    def event_handler(self, result: RunResult, batch: int, step: int | str,
                      events: _StepEvents) -> Callable[[dict], bool]:
        def handle(event: dict) -> bool:
            kind = event.get("event", "")
            data = event.get("event_data") or {}
            if kind == "playbook_on_task_start":
                events.last_task = data.get("task")
                self.emit("task", batch=batch, step=step, task=events.last_task)
            elif kind in _RESULT_EVENTS:
                self.task_result(result, batch, step, kind, data, events)
            elif kind == "playbook_on_stats":
                bad = set(data.get("failures") or {}) | set(data.get("dark") or {})
                events.stats_failed = bad
            elif kind in _MESSAGE_EVENTS and event.get("stdout"):
                text = " ".join(event["stdout"].split())
                events.output.append(scrub_text(text)[:_MESSAGE_LIMIT])
            return False  # keep ansible-runner from writing per-event files
        return handle

    def task_result(self, result: RunResult, batch: int, step: int | str,
                    kind: str, data: Mapping[str, Any], events: _StepEvents) -> None:
        host = data.get("host") or "?"
        res = data.get("res") if isinstance(data.get("res"), Mapping) else {}
        status = _RESULT_EVENTS[kind]
        if status == "ok" and res.get("changed"):
            status = "changed"
        if status == "failed":
            if data.get("ignore_errors"):
                status = "ignored"
            else:
                events.failed.add(host)
        if status == "unreachable":
            events.failed.add(host)
        message = ""
        if status in ("failed", "unreachable", "ignored"):
            message = scrub_text(_message(redact(res)))
        task = data.get("task") or ""
        if status == "skipped" and task.startswith(FAULT_CHECK):
            return  # the fleet's fault check, with no fault: not a plan task
        record = TaskRecord(
            run_id=result.run_id, stage=self.stage.name, batch=batch, step=step,
            host=host, role=self.roles.get(host), task=task,
            service=self.task_index.service(data.get("task_path")),
            action=data.get("task_action"), status=status,
            start=_timestamp(data.get("start")), duration=_float(data.get("duration")),
            message=message[:_MESSAGE_LIMIT])
        result.records.append(record)
        self.sink.add(record)
        if status in ("failed", "unreachable"):
            self.emit("host_done", batch=batch, step=step, host=host,
                      status=status, task=record.task, message=record.message)

    # -- reporting --------------------------------------------------------

    def emit(self, kind: str, **fields: Any) -> None:
        self.progress(ProgressEvent(kind=kind, stage=self.stage.name,
                                    units_done=self.units_done,
                                    units_total=self.units_total, **fields))

    def append_reproduce(self, result: RunResult, batch: int, step: int | str,
                         hosts: Sequence[str]) -> None:
        path = os.path.join(result.run_dir, REPRODUCE_SCRIPT)
        line = " ".join(shlex.quote(part) for part in self.command(step, hosts))
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"\n# batch {batch}, step {step}\n{line}\n")


_MESSAGE_EVENTS = frozenset({"error", "verbose", "warning", "system_warning"})

_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}

#: Environment of every ansible-playbook run (also in the reproduce script).
#: ansible-runner turns host key checking off itself; saying so here makes
#: the reproduce script connect the same way.
_ANSIBLE_ENV = {
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    "ANSIBLE_FORCE_COLOR": "False",
    "ANSIBLE_NOCOLOR": "True",
    "ANSIBLE_HOST_KEY_CHECKING": "False",
}

def _message(res: Mapping[str, Any]) -> str:
    for key in ("msg", "stderr", "reason", "stdout"):
        value = res.get(key)
        if value:
            return str(value).strip()
    return ""


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    from datetime import datetime, timezone
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _write_runner_settings(run_dir: str) -> None:
    """ansible-runner settings of every step of a run.

    No stdout file: it would hold task output unredacted, and the records
    stream to the run history instead. (ansible-runner reads its settings
    from ``env/settings`` and drops any passed in when that file is missing.)
    """
    os.makedirs(os.path.join(run_dir, "env"))
    with open(os.path.join(run_dir, "env", "settings"), "w", encoding="utf-8") as handle:
        handle.write('{"suppress_output_file": true}\n')


def _write_reproduce_header(run_dir: str, plan: PreparedPlan, stage: str,
                            run_id: str, env: Mapping[str, str]) -> None:
    exports = "".join(f"export {k}={shlex.quote(v)}\n"
                      for k, v in sorted(env.items()))
    path = os.path.join(run_dir, REPRODUCE_SCRIPT)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            "#!/usr/bin/env bash\n"
            f"# Run {run_id}: stage {stage} of the plan in {plan.path}.\n"
            "# The ansible-playbook calls of the run, in order: one per step "
            "and batch.\n"
            "set -euo pipefail\n"
            f"cd {shlex.quote(plan.path)}\n{exports}")
    os.chmod(path, 0o755)


@dataclass(frozen=True)
class RunRequest:
    """What a run will do: its stage, hosts, steps, batches and options."""

    stage: PreparedStage
    hosts: tuple[str, ...]
    steps: tuple[int | str, ...]
    batches: tuple[tuple[str, ...], ...]
    options: Mapping[str, Any]


def plan_run(plan: PreparedPlan, stage: str, *,
             limit: str | Sequence[str] | None = None,
             tags: str | None = None, skip_tags: str | None = None,
             batch_size: int | str | None = None,
             max_fail_percentage: float | None = None,
             forks: int | None = None, resume: bool = False,
             steps: Sequence[int | str] | None = None,
             playbooks: Sequence[str] | None = None,
             force: bool = False) -> RunRequest:
    """Check a run's options against ``plan`` and decide hosts, steps, batches."""
    target = plan.stage(stage)
    if target.kind != KIND_BATCHED:
        for value, option in ((batch_size, "--batch-size"),
                              (max_fail_percentage, "--max-fail-percentage")):
            if value is not None:
                raise StageError(f"stage {stage!r} runs all its hosts together "
                                 f"and stops at the first failure; {option} "
                                 "applies to the batched stages", stage=stage)
    if max_fail_percentage is not None and not 0 <= max_fail_percentage <= 100:
        raise OptionError("must be between 0 and 100", option="--max-fail-percentage",
                          value=max_fail_percentage)
    if playbooks and list(playbooks) != ["all"]:
        by_name = {name: step for step, name in target.step_playbooks.items()}
        unknown = [p for p in playbooks if os.path.basename(p) not in by_name]
        if unknown:
            raise StageError(f"--playbook {unknown[0]}: not a step playbook of "
                             f"stage {stage!r} ({', '.join(by_name)})", stage=stage)
        steps = [by_name[os.path.basename(p)] for p in playbooks]
    chosen = list(target.numbers)
    if steps:
        unknown = [s for s in steps if s not in target.numbers]
        if unknown:
            raise StageError(f"stage {stage!r} has no step {unknown[0]!r} (steps: "
                             f"{', '.join(map(str, target.numbers))})", stage=stage)
        chosen = [s for s in target.numbers if s in steps]
    if not target.hosts:
        raise StageError(f"stage {stage!r} has no hosts", stage=stage)
    hosts = select_hosts(plan, target.hosts, limit)
    if not hosts:
        raise StageError(f"--limit {limit} matches no host of stage {stage!r}",
                         stage=stage)
    batches = batches_of(hosts, batch_size) if target.kind == KIND_BATCHED \
        else [tuple(hosts)]
    options = {"limit": limit, "tags": tags, "skip_tags": skip_tags,
               "batch_size": batch_size,
               "max_fail_percentage": max_fail_percentage, "forks": forks,
               "resume": resume, "steps": list(steps) if steps else None,
               "force": force}
    return RunRequest(stage=target, hosts=tuple(hosts), steps=tuple(chosen),
                      batches=tuple(batches), options=options)


def run_stage(working_dir: str | os.PathLike[str], stage: str, *,
              limit: str | Sequence[str] | None = None,
              tags: str | None = None, skip_tags: str | None = None,
              batch_size: int | str | None = None,
              max_fail_percentage: float | None = None,
              forks: int | None = None, resume: bool = False,
              steps: Sequence[int | str] | None = None,
              playbooks: Sequence[str] | None = None,
              fleet: Fleet | str | None = None,
              ssh_key: str | os.PathLike[str] | None = None, force: bool = False,
              dry_run: bool = False, progress: Progress | None = None,
              sink: RecordSink | None = None,
              stop: StopRequest | None = None) -> RunResult:
    """Run one stage of the plan prepared in ``working_dir``.

    ``limit`` narrows the hosts (names, FQDNs, roles, globs); ``batch_size``
    (``N`` or ``N%``) splits a non-controlplane stage into batches, each of
    which runs every step; failed hosts count against ``max_fail_percentage``
    (default 0) of their batch. ``resume`` skips units the journal has as
    finished. ``steps`` (or ``playbooks``, the step playbooks' file names)
    restricts the run to some steps; a run with ``tags`` does not count
    towards finishing the stage. A stage refuses to start while the stages it
    needs are unfinished, unless ``force``. Ctrl-C once stops after the
    current step; twice stops now. Records go to the working dir's run
    history unless another ``sink`` is given. ``ssh_key`` is the overcloud
    hosts' private key (see :func:`ssh_key_env`).
    """
    workdir = Workdir.at(working_dir)
    options = {"limit": limit, "tags": tags, "skip_tags": skip_tags,
               "batch_size": batch_size,
               "max_fail_percentage": max_fail_percentage, "forks": forks,
               "resume": resume, "steps": steps, "playbooks": playbooks,
               "force": force}
    if dry_run:
        plan, _, request = _checked_request(workdir, stage, fleet, ssh_key, options)
        now = time.time()
        return RunResult(run_id=new_run_id(stage), stage=stage, plan_sha=plan.sha256,
                         status=DRY_RUN, started=now, ended=now,
                         options=request.options, batches=list(request.batches))
    stop = stop or StopRequest()
    # The lock comes first: a prepare cannot swap the plan under this run.
    with acquire(workdir.state_dir, purpose=f"run of stage {stage}") as lock:
        plan, env, request = _checked_request(workdir, stage, fleet, ssh_key, options)
        result = RunResult(run_id=new_run_id(stage), stage=stage,
                           plan_sha=plan.sha256, status=NOTHING_TO_DO,
                           started=time.time(), options=request.options,
                           batches=list(request.batches))
        if lock.stale_owner:
            result.notes.append(stale_lock_note(lock.stale_owner))
        journal = Journal(workdir.state_dir)
        _guard(plan, journal, request, result)
        finished: set[tuple[int | str, str]] = set()
        if resume:
            finished = journal.progress([request.stage])[stage].finished
        runner = _Runner(workdir, plan, request.stage, request.options, progress,
                         HistoryStore(workdir.history_path) if sink is None else sink,
                         stop, env)
        result.run_dir = os.path.join(workdir.runs_dir, result.run_id)
        try:
            os.makedirs(result.run_dir)
        except OSError as exc:
            raise WorkdirError(f"cannot create the run folder: {exc.strerror}",
                               path=workdir.runs_dir) from exc
        _write_runner_settings(result.run_dir)
        _write_reproduce_header(result.run_dir, plan, stage, result.run_id,
                                runner.env)
        runner.sink.start_run(result)
        previous = _install_sigint(stop)
        try:
            runner.run(result, list(request.hosts), list(request.steps),
                       list(request.batches), finished)
        except BaseException:
            result.status = FAILED if result.status == NOTHING_TO_DO else result.status
            raise
        finally:
            _restore_sigint(previous)
            result.ended = time.time()
            journal.record_run(request.stage.sha256, {
                "run": result.run_id, "stage": stage, "status": result.status,
                "started": result.started, "ended": result.ended,
                "hosts": len(request.hosts), "failed": result.failed_hosts})
            runner.sink.finish_run(result)
            runner.emit("run_end", status=result.status)
    return result


def _checked_request(workdir: Workdir, stage: str, fleet: Fleet | str | None,
                     ssh_key: str | os.PathLike[str] | None,
                     options: Mapping[str, Any]
                     ) -> tuple[PreparedPlan, dict[str, str], RunRequest]:
    """The plan, the run's extra environment and its request, all checked."""
    plan = workdir.load_plan()
    _check_fleet(plan, fleet)
    env = ssh_key_env(workdir.path, plan, ssh_key)
    return plan, env, plan_run(plan, stage, **options)


def _guard(plan: PreparedPlan, journal: Journal, request: RunRequest,
           result: RunResult) -> None:
    """Refuse while a needed stage is unfinished, unless forced (then say so)."""
    pending = stage_guard(plan, journal, request.stage)
    if not pending:
        return
    name, left = pending[0]
    if not request.options["force"]:
        raise StageNotFinishedError(name, left, needed_by=(
            "converge" if request.stage.kind == KIND_CONVERGE
            else f"stage {request.stage.name!r}"))
    result.notes.append("forced: " + "; ".join(
        f"stage {n} unfinished ({len(p)} hosts pending)" for n, p in pending))


def _install_sigint(stop: StopRequest) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, stop)


def _restore_sigint(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)

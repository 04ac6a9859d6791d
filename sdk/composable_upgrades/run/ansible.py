"""The executor that runs steps with ansible-runner on this machine.

The one module that imports ``ansible_runner``. Each step is one
ansible-playbook call, in ansible-runner's default (pexpect) mode: it reads
events as they come, asks the cancel callback between reads, and starts
ansible-playbook in a session of its own, so a Ctrl-C at the terminal reaches
this process only (see doc/performance.rst for why not the subprocess mode).
Events become :class:`TaskRecord` objects; each call is also appended to the
run's reproduce script, from the same argv.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import yaml

from composable_upgrades.errors import RunError, WorkdirError
from composable_upgrades.formats.serialize import YAML_LOADER
from composable_upgrades.model.deployment import UNDERCLOUD_GROUP
from composable_upgrades.model.fleet import FAULT_CHECK
from composable_upgrades.model.kinds import TaskStatus
from composable_upgrades.model.redact import redact, scrub_text
from composable_upgrades.planning.plan import UNDERCLOUD_HOST
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.render.playbooks import task_file_name
from composable_upgrades.run.executor import StepCallbacks, StepJob, StepReport
from composable_upgrades.run.options import ansible_command
from composable_upgrades.state.results import REPRODUCE_SCRIPT, TaskRecord

#: The shell script in a run's folder that repeats its ansible-playbook calls.
_MESSAGE_LIMIT = 2000
#: ansible-playbook's exit code when ansible-runner could not start it.
_NOT_FOUND = 127
#: ansible-runner's status of a run its cancel callback stopped.
_CANCELED = "canceled"


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


class AnsibleExecutor:
    """Runs the steps of one run of ``plan`` with ansible-runner.

    ``run_dir`` is the run's folder (ansible-runner's private data dir, and
    the reproduce script's home); ``env`` is the run's environment
    (:func:`.environment.run_environment`).
    """

    def __init__(self, plan: PreparedPlan, run_dir: str, *,
                 env: Mapping[str, str] | None = None,
                 binary: str | None = None) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.env = dict(env or {})
        self.binary = binary or ansible_playbook_binary()
        self.inventory = plan.file("inventory.yaml")
        self.task_index = TaskIndex(plan)
        self.roles = {name: host.role for name, host in plan.hosts.items()}
        self.roles[UNDERCLOUD_HOST] = UNDERCLOUD_GROUP

    def command(self, job: StepJob) -> list[str]:
        """The ansible-playbook command line of ``job``."""
        return ansible_command(job.options, binary=self.binary,
                               inventory=self.inventory, hosts=job.hosts,
                               playbook=self.plan.file(job.playbook))

    def start(self, run_id: str, stage: str) -> str:
        """Create the run folder: ansible-runner settings, script header."""
        try:
            os.makedirs(self.run_dir)
        except OSError as exc:
            raise WorkdirError(f"cannot create the run folder: {exc.strerror}",
                               path=os.path.dirname(self.run_dir)) from exc
        write_runner_settings(self.run_dir)
        exports = "".join(f"export {k}={shlex.quote(v)}\n"
                          for k, v in sorted(self.env.items()))
        path = os.path.join(self.run_dir, REPRODUCE_SCRIPT)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(
                "#!/usr/bin/env bash\n"
                f"# Run {run_id}: stage {stage} of the plan in {self.plan.path}.\n"
                "# The ansible-playbook calls of the run, in order: one per step "
                "and batch.\n"
                "set -euo pipefail\n"
                f"cd {shlex.quote(self.plan.path)}\n{exports}")
        os.chmod(path, 0o755)
        return self.run_dir

    def run_step(self, job: StepJob, callbacks: StepCallbacks) -> StepReport:
        """Run ``job`` with ansible-runner; see :class:`~.executor.Executor`."""
        import ansible_runner

        argv = self.command(job)
        with open(os.path.join(self.run_dir, REPRODUCE_SCRIPT), "a",
                  encoding="utf-8") as handle:
            handle.write(f"\n# batch {job.batch}, step {job.step}\n"
                         f"{shlex.join(argv)}\n")
        ident = f"batch{job.batch}-step{job.step}"
        events = StepEvents(job, callbacks, self)
        try:
            runner = ansible_runner.run(
                private_data_dir=self.run_dir, ident=ident,
                project_dir=self.plan.path, binary=argv[0],
                cmdline=shlex.join(argv[1:]), quiet=True, suppress_env_files=True,
                # ansible-playbook's own children (ansible-galaxy, ...) are
                # found on PATH: the directory of this Python's comes first.
                envvars={**self.env, "PATH": os.path.dirname(self.binary)
                         + os.pathsep + os.environ.get("PATH", "")},
                event_handler=events.handle,
                cancel_callback=callbacks.stop_now)
        except Exception as exc:  # ansible-runner raises plain exceptions
            raise RunError(f"cannot run ansible-playbook for step {job.step}: {exc}",
                           stage=job.stage, step=job.step) from exc
        finally:
            # ansible-runner records the command with the whole environment,
            # OS_PASSWORD and the like included; the reproduce script says
            # what ran.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.run_dir, "artifacts", ident, "command"))
        rc = runner.rc if isinstance(runner.rc, int) else 1
        if rc == _NOT_FOUND:
            raise RunError(f"ansible-playbook not found ({self.binary})",
                           stage=job.stage, step=job.step, rc=rc)
        return StepReport(rc=rc, failed=frozenset(events.failed_hosts()),
                          interrupted=runner.status == _CANCELED,
                          records=tuple(events.records), output=tuple(events.output))


class StepEvents:
    """Turns the ansible-runner events of one step into task records."""

    def __init__(self, job: StepJob, callbacks: StepCallbacks,
                 executor: AnsibleExecutor) -> None:
        self.job = job
        self.callbacks = callbacks
        self.roles = executor.roles
        self.task_index = executor.task_index
        self.records: list[TaskRecord] = []
        self.failed: set[str] = set()
        self.stats_failed: set[str] | None = None
        # The last lines of Ansible's own messages (errors, warnings), redacted.
        self.output: deque[str] = deque(maxlen=3)

    def failed_hosts(self) -> set[str]:
        """The hosts the final stats count as failed (else the failed events')."""
        return self.stats_failed if self.stats_failed is not None else self.failed

    def handle(self, event: dict) -> bool:
        """ansible-runner's event handler."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self.callbacks.task(data.get("task"))
        elif kind in _RESULT_EVENTS:
            record = self.record(_RESULT_EVENTS[kind], data)
            if record is not None:
                self.records.append(record)
                self.callbacks.record(record)
        elif kind == "playbook_on_stats":
            self.stats_failed = (set(data.get("failures") or {})
                                 | set(data.get("dark") or {}))
        elif kind in _MESSAGE_EVENTS and event.get("stdout"):
            text = " ".join(event["stdout"].split())
            self.output.append(scrub_text(text)[:_MESSAGE_LIMIT])
        return False  # keep ansible-runner from writing per-event files

    def record(self, status: TaskStatus, data: Mapping[str, Any]) -> TaskRecord | None:
        """The record of one task result (None for the fleet's fault check)."""
        host = data.get("host") or "?"
        res = data.get("res") if isinstance(data.get("res"), Mapping) else {}
        if status == TaskStatus.OK and res.get("changed"):
            status = TaskStatus.CHANGED
        if status == TaskStatus.FAILED and data.get("ignore_errors"):
            status = TaskStatus.IGNORED
        if status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE):
            self.failed.add(host)
        task = data.get("task") or ""
        if status == TaskStatus.SKIPPED and task.startswith(FAULT_CHECK):
            return None  # the fleet's fault check, with no fault: not a plan task
        message = ""
        if status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE, TaskStatus.IGNORED):
            message = scrub_text(_message(redact(res)))
        if status == TaskStatus.UNREACHABLE:
            message = _one_line(message)
        job = self.job
        return TaskRecord(
            run_id=job.run_id, stage=job.stage, batch=job.batch, step=job.step,
            host=host, role=self.roles.get(host), task=task,
            service=self.task_index.service(data.get("task_path")),
            action=data.get("task_action"), status=status,
            start=_timestamp(data.get("start")), duration=_float(data.get("duration")),
            message=message[:_MESSAGE_LIMIT])


class TaskIndex:
    """Maps an event's task path (file:line) to the service of its plan task."""

    def __init__(self, plan: PreparedPlan) -> None:
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
        """The service of the task at ``task_path`` (None if not a plan task)."""
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


def write_runner_settings(run_dir: str) -> None:
    """ansible-runner settings of every step of a run.

    No stdout file: it would hold task output unredacted, and the records
    stream to the run history instead. (ansible-runner reads its settings
    from ``env/settings`` and drops any passed in when that file is missing.)
    """
    os.makedirs(os.path.join(run_dir, "env"))
    with open(os.path.join(run_dir, "env", "settings"), "w", encoding="utf-8") as handle:
        handle.write('{"suppress_output_file": true}\n')


_MESSAGE_EVENTS = frozenset({"error", "verbose", "warning", "system_warning"})

_RESULT_EVENTS = {
    "runner_on_ok": TaskStatus.OK,
    "runner_on_failed": TaskStatus.FAILED,
    "runner_on_skipped": TaskStatus.SKIPPED,
    "runner_on_unreachable": TaskStatus.UNREACHABLE,
}


def _message(res: Mapping[str, Any]) -> str:
    for key in ("msg", "stderr", "reason", "stdout"):
        value = res.get(key)
        if value:
            return str(value).strip()
    return ""


def _one_line(message: str) -> str:
    """An SSH failure in one line: what ssh said, without its host-key notices."""
    lines = [line.strip() for line in message.splitlines()
             if line.strip() and not line.strip().startswith(_SSH_NOTICES)]
    return " ".join(lines)


#: What ssh prints on stderr that says nothing about why a connection failed.
_SSH_NOTICES = ("Warning: Permanently added", "** WARNING: connection is not using a post-quantum")


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()

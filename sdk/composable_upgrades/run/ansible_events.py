"""Ansible's events of a step, as task records.

ansible-runner hands each event of ansible-playbook's to an event handler;
:class:`StepEvents` turns the results into :class:`TaskRecord` objects (with
the service of each plan task, found by :class:`TaskIndex` from the task's
file and line), keeps the failed hosts and the last lines of Ansible's own
messages. Nothing here starts a process.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import yaml

from composable_upgrades.formats.serialize import YAML_LOADER
from composable_upgrades.model.fleet import FAULT_CHECK
from composable_upgrades.model.kinds import TaskStatus
from composable_upgrades.model.redact import redact, scrub_text
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.render.playbooks import task_file_name
from composable_upgrades.run.executor import StepCallbacks
from composable_upgrades.state.results import TaskRecord

#: The longest message a record keeps.
MESSAGE_LIMIT = 2000


class StepEvents:
    """Turns the ansible-runner events of one process into task records.

    ``step`` and ``callbacks`` say which step the events belong to and whom
    to tell; a process that runs several steps (a lane) moves them on. Tasks
    whose name starts with ``barrier`` are the run's own: they give no
    record; each result of one goes to ``on_barrier`` instead. ``scrub``
    masks secrets in messages (the plan's :meth:`~.PreparedPlan.scrub`, which
    knows the outputs' own secret values).
    """

    def __init__(self, *, run_id: str, stage: str, batch: int, step: int | str,
                 callbacks: StepCallbacks, roles: Mapping[str, str],
                 task_index: TaskIndex, barrier: str | None = None,
                 on_barrier: Callable[[str, Mapping[str, Any]], None] | None = None,
                 scrub: Callable[[str], str] = scrub_text) -> None:
        self.run_id = run_id
        self.stage = stage
        self.batch = batch
        self.step = step
        self.callbacks = callbacks
        self.roles = roles
        self.task_index = task_index
        self.barrier = barrier
        self.on_barrier = on_barrier
        self.scrub = scrub
        self.records: list[TaskRecord] = []
        self.failed: set[str] = set()
        self.stats_failed: set[str] | None = None
        # The last lines of Ansible's own messages (errors, warnings), redacted.
        self.output: deque[str] = deque(maxlen=3)

    def failed_hosts(self) -> set[str]:
        """The hosts the final stats count as failed (else the failed events')."""
        return self.stats_failed if self.stats_failed is not None else self.failed

    def handle(self, event: Mapping[str, Any]) -> bool:
        """ansible-runner's event handler."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        task = data.get("task") or ""
        if self.barrier and task.startswith(self.barrier):
            if kind in _RESULT_EVENTS and self.on_barrier:
                self.on_barrier(task, data)
        elif kind == "playbook_on_task_start":
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
            self.output.append(self.scrub(text)[:MESSAGE_LIMIT])
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
            message = self.scrub(_message(redact(res)))
        if status == TaskStatus.UNREACHABLE:
            message = _one_line(message)
        return TaskRecord(
            run_id=self.run_id, stage=self.stage, batch=self.batch, step=self.step,
            host=host, role=self.roles.get(host), task=task,
            service=self.task_index.service(data.get("task_path")),
            action=data.get("task_action"), status=status,
            start=_timestamp(data.get("start")), duration=_float(data.get("duration")),
            message=message[:MESSAGE_LIMIT])


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

"""The words the SDK uses for kinds and statuses, as string enums.

Each member is a ``str``: it compares equal to its value, serialises to it in
JSON and SQLite, and formats as it, so files and tables keep the words they
always had.
"""

from __future__ import annotations

import enum


class _Word(str, enum.Enum):
    """A string enum that prints as its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class StageKind(_Word):
    """How a stage runs."""

    CONTROLPLANE = "controlplane"  # all hosts together; any failure stops it
    BATCHED = "batched"            # hosts in batches; max-fail percentage
    EXTERNAL = "external"          # on the undercloud, by step
    CONVERGE = "converge"          # deployment-wide, after every stage


class RunKind(_Word):
    """What a row of the run history records."""

    PREPARE = "prepare"
    STAGE = "stage"
    CONVERGE = "converge"


class RunStatus(_Word):
    """How a run ended (or that it has not)."""

    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    #: Stopped cleanly between batches (``--pause-after``, a batch not
    #: confirmed); ``--resume`` continues.
    PAUSED = "paused"
    DRY_RUN = "dry-run"
    NOTHING_TO_DO = "nothing to do"


class TaskStatus(_Word):
    """What one task did on one host."""

    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNREACHABLE = "unreachable"
    IGNORED = "ignored"


#: Task outcomes that mean a host failed.
FAILURES = (TaskStatus.FAILED, TaskStatus.UNREACHABLE)


class UnitStatus(_Word):
    """How a (batch, step, host) unit ended, as the journal records it."""

    OK = "ok"
    FAILED = "failed"

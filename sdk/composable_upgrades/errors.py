"""The SDK's exceptions: one root, subclasses that carry what went wrong and where.

Every error a user can cause is an :class:`UpgradeError`; its message is one
line that names the thing at fault (file, role, host, stage) so a command can
print it as is. The tree (what each carries)::

    UpgradeError
    ├── OutputsError            source, key
    │   └── HeatError
    ├── InputFileError          path
    ├── UnknownRoleError        role, known
    ├── UnknownHostError        host
    ├── UnsafeNameError         kind, name
    ├── DependencyCycleError    cycle
    ├── PlanError               file
    ├── FleetError              path
    ├── WorkdirError            path
    │   └── PlanNotFoundError
    ├── StageError              stage
    │   ├── StageNotFinishedError   pending
    │   └── UnfinishedWorkError
    ├── LockedError             path, pid
    ├── RunError                stage, step, rc
    └── OptionError             option, value
"""

from __future__ import annotations


class UpgradeError(Exception):
    """Root of every error the SDK raises for a problem the user can fix."""


class OutputsError(UpgradeError):
    """Stack outputs are missing, unreadable, truncated or malformed.

    ``source`` names the file, directory or stack; ``key`` the output at fault.
    """

    def __init__(self, message: str, *, source: str | None = None,
                 key: str | None = None) -> None:
        self.detail = message  # the message without source and key
        self.source = source
        self.key = key
        where = []
        if source:
            where.append(source)
        if key:
            where.append(key)
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class InputFileError(UpgradeError):
    """A stages, dependencies or similar input file is invalid."""

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class UnknownRoleError(UpgradeError):
    """A role name that the deployment does not have."""

    def __init__(self, role: str, *, where: str, known: list[str]) -> None:
        self.role = role
        self.known = known
        super().__init__(
            f"{where}: unknown role {role!r} (roles: {', '.join(known)})")


class UnknownHostError(UpgradeError):
    """A host, group or pattern that matches nothing in the inventory."""

    def __init__(self, host: str, *, where: str) -> None:
        self.host = host
        super().__init__(f"{where}: {host!r} matches no host or role")


class UnsafeNameError(UpgradeError):
    """A role, host or stage name that cannot be used as a file, group or
    host name; ``reason`` says why (default: not usable as a file name)."""

    def __init__(self, kind: str, name: str, *, reason: str | None = None) -> None:
        self.kind = kind
        self.name = name
        super().__init__(
            f"{kind} name {name!r} "
            + (reason or "is not usable as a file name (it is empty or "
               "contains '/', '..' or a control character)"))


class DependencyCycleError(UpgradeError):
    """Service dependencies that form a cycle; ``cycle`` lists it in order."""

    def __init__(self, cycle: list[str], *, source: str) -> None:
        self.cycle = cycle
        super().__init__(
            f"{source}: service dependency cycle: {' -> '.join(cycle)}")


class PlanError(UpgradeError):
    """A plan that cannot be written or read as given (two of its files at one
    path, data that is not a plan); ``file`` names the plan file, if one."""

    def __init__(self, message: str, *, file: str | None = None) -> None:
        self.file = file
        super().__init__(message)


class FleetError(UpgradeError):
    """A rehearsal fleet that cannot be used as asked (already seeded, or
    needed and not given); ``path`` is the fleet's folder, if there is one."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class WorkdirError(UpgradeError):
    """The working directory cannot be used (not writable, no plan, ...)."""

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class PlanNotFoundError(WorkdirError):
    """No prepared plan in the working directory."""


class StageError(UpgradeError):
    """A stage that does not exist or cannot run now."""

    def __init__(self, message: str, *, stage: str) -> None:
        self.stage = stage
        super().__init__(message)


class StageNotFinishedError(StageError):
    """A stage that must be finished first still has pending hosts."""

    def __init__(self, stage: str, pending: list[str], *, needed_by: str) -> None:
        self.pending = pending
        shown = ", ".join(pending[:10])
        more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
        super().__init__(
            f"stage {stage!r} is not finished ({len(pending)} hosts pending: "
            f"{shown}{more}); finish it before {needed_by}, or pass --force",
            stage=stage)


class UnfinishedWorkError(StageError):
    """The hosts a run would upgrade have unfinished progress of the stage; the
    run must say whether to continue it (``resume``) or start it again
    (``restart``)."""


class LockedError(UpgradeError):
    """Another run holds the stack's lock."""

    def __init__(self, message: str, *, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        super().__init__(message)


class RunError(UpgradeError):
    """A run could not start or ansible could not be executed.

    ``stage`` and ``step`` say where, when known; ``rc`` is ansible-playbook's
    exit code, when it ran at all.
    """

    def __init__(self, message: str, *, stage: str | None = None,
                 step: int | str | None = None, rc: int | None = None) -> None:
        self.stage = stage
        self.step = step
        self.rc = rc
        super().__init__(message)


class HeatError(OutputsError):
    """Heat could not be reached or refused the request."""


class OptionError(UpgradeError):
    """An option's value cannot be used; ``option`` names it (``--batch-size``)."""

    def __init__(self, message: str, *, option: str, value: object = None) -> None:
        self.option = option
        self.value = value
        super().__init__(f"{option} {value}: {message}" if value is not None
                         else f"{option}: {message}")


__all__ = [
    "UpgradeError", "OutputsError", "InputFileError", "UnknownRoleError",
    "UnknownHostError", "UnsafeNameError", "DependencyCycleError",
    "WorkdirError", "PlanNotFoundError", "StageError",
    "StageNotFinishedError", "LockedError", "RunError", "HeatError",
    "OptionError", "PlanError", "FleetError",
]

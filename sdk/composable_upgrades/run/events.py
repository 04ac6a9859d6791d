"""What a run tells its caller as it goes, and how the caller asks it to stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """What a run reports as it goes (to a progress bar or a log)."""

    # run_start, step_start, task, host_done, step_end, note, stop_requested,
    # run_end
    kind: str
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

"""The processes of a batch's lanes: one ansible-playbook each, run by
ansible-runner in a thread of its own, alive across the batch's steps.

:class:`LaneProcesses` starts them, cancels them, notices one that died
without saying so, and handles their events: they come through one queue and
are handled in the calling thread, so records reach the run's sink in order
per lane. When a lane is let into a step, and what its events say of the
step, is :mod:`.lane_session`'s.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.run.ansible_events import StepEvents
from composable_upgrades.run.executor import StepCallbacks
from composable_upgrades.run.lanes import LanePlan

#: Seconds between two checks of the stop request while events are awaited.
_POLL = 0.05


@dataclass
class Lane:
    """One running lane: its plan, process, events and where it stands.

    Barrier ``i`` comes before ``plan.steps[i]``: a lane that has reached
    barrier ``released`` has finished every step it was let into.
    """

    plan: LanePlan
    #: The hosts still playing, as the last barrier reported them.
    playing: frozenset[str]
    events: StepEvents | None = None
    released: int = 0
    reached: int = 0
    ended: bool = False
    rc: int | None = None
    status: str | None = None
    cancel: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def next_step(self) -> int | str | None:
        """The step the lane may be let into next (None: no step left)."""
        steps = self.plan.steps
        return steps[self.released] if self.released < len(steps) else None

    @property
    def settled(self) -> bool:
        """Whether the lane has finished the steps it was let into."""
        return self.ended or self.reached > self.released


class LaneProcesses:
    """The lanes of one batch that have a process, by role.

    ``forget_command(ident)`` runs when a lane's process has ended (the
    executor deletes the command file ansible-runner wrote for it).
    """

    def __init__(self, forget_command: Callable[[str], None]) -> None:
        self.forget_command = forget_command
        self.events: queue.Queue[tuple[Lane, str, Any]] = queue.Queue()
        self.lanes: dict[str, Lane] = {}

    def start(self, lane: Lane, arguments: dict[str, Any]) -> None:
        """Start ``lane``'s process with ansible-runner's ``arguments``;
        ansible-runner's exception if it cannot."""
        import ansible_runner

        thread, _ = ansible_runner.run_async(
            **arguments,
            event_handler=lambda event: self.events.put((lane, "event", event)) or False,
            cancel_callback=lambda: lane.cancel,
            finished_callback=lambda runner: self.events.put(
                (lane, "end", (runner.rc, runner.status))))
        lane.thread = thread
        self.lanes[lane.plan.role] = lane

    def stop(self, lane: Lane) -> None:
        """Cancel ``lane`` and wait until its process has ended."""
        lane.cancel = True
        self.wait(lambda: lane.ended, None)

    def wait(self, until: Callable[[], bool],
             callbacks: StepCallbacks | None) -> bool:
        """Handle the lanes' events until ``until()``; False if a stop cut it
        short (every lane is then cancelled and ended)."""
        stopping = False
        while not until():
            if callbacks is not None and not stopping and callbacks.stop_now():
                stopping = True
                for lane in self.lanes.values():
                    lane.cancel = True
                until = lambda: all(lane.ended for lane in self.lanes.values())  # noqa: E731
            try:
                lane, kind, payload = self.events.get(timeout=_POLL)
            except queue.Empty:
                self.bury_dead_lanes()
                continue
            self.handle(lane, kind, payload)
        return not stopping

    def bury_dead_lanes(self) -> None:
        """End the lanes whose thread died without saying so (ansible-runner
        failed before its finished callback): an exit without stats."""
        for lane in self.lanes.values():
            if not lane.ended and lane.thread is not None and not lane.thread.is_alive() \
                    and self.events.empty():
                lane.rc, lane.status, lane.ended = 1, "error", True

    def handle(self, lane: Lane, kind: str, payload: Any) -> None:
        """One event of ``lane``'s process."""
        if kind == "event":
            lane.events.handle(payload)
        else:
            lane.rc, lane.status = payload
            lane.ended = True
            self.forget_command(lane.plan.name)

    def close(self) -> None:
        """Stop the lanes still waiting for a step; wait for every process."""
        for lane in self.lanes.values():
            if not lane.ended:
                lane.cancel = True
        self.wait(lambda: all(lane.ended for lane in self.lanes.values()), None)
        for lane in self.lanes.values():
            if lane.thread is not None:
                lane.thread.join()

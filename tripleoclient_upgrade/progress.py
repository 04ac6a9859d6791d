"""Showing a run's progress: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from composable_upgrades import ProgressEvent


def progress_display(stream: IO[str]) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """A progress callback for the SDK's runs, and a function to close it."""
    if stream.isatty():
        return _bar(stream)
    return _lines(stream), lambda: None


def _bar(stream: IO[str]):
    from tqdm import tqdm

    bar = tqdm(total=0, unit="unit", file=stream, dynamic_ncols=True,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                          "host-steps [{elapsed}] {postfix}")

    def show(event: ProgressEvent) -> None:
        if event.units_total and bar.total != event.units_total:
            bar.total = event.units_total
        if event.kind == "step_start":
            bar.set_description(f"{event.stage} batch {event.batch}/{event.batches} "
                                f"step {event.step}")
        elif event.kind == "task":
            bar.set_postfix_str((event.task or "")[:50], refresh=True)
        elif event.kind == "host_done":
            bar.write(f"{event.host}: {event.status} at step {event.step}: "
                      f"{event.task}: {event.message}")
        elif event.kind == "stop_requested":
            bar.write(event.message or "stopping")
        elif event.kind == "step_end":
            bar.n = event.units_done
            bar.refresh()
    return show, bar.close


def _lines(stream: IO[str]):
    def show(event: ProgressEvent) -> None:
        text = None
        if event.kind == "run_start":
            text = f"stage {event.stage}: {event.message}"
        elif event.kind == "step_start":
            text = (f"stage {event.stage} batch {event.batch}/{event.batches} "
                    f"step {event.step}: {event.message}")
        elif event.kind == "host_done":
            text = (f"{event.host}: {event.status} at step {event.step}: "
                    f"{event.task}: {event.message}")
        elif event.kind == "stop_requested":
            text = event.message
        elif event.kind == "step_end":
            text = (f"stage {event.stage} batch {event.batch} step {event.step}: "
                    f"{event.status}" + (f" ({event.message})" if event.message else "")
                    + f" [{event.units_done}/{event.units_total} host-steps]")
        if text:
            import time
            stream.write(time.strftime("%Y-%m-%d %H:%M:%S ") + text + "\n")
            stream.flush()
    return show

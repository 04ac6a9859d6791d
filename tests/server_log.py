"""The end of a test server's log, for the messages of a server that failed."""

from __future__ import annotations

from pathlib import Path


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the log at ``path`` ("(no log)" if none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])

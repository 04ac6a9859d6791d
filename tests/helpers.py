"""Small helpers the test modules share."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def tree(directory: Path, *, with_dirs: bool = False) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes), and with
    ``with_dirs`` every folder too (``"name/"`` -> ``b""``)."""
    files: dict[str, bytes] = {}
    for root, dirs, names in os.walk(directory):
        for name in names:
            path = Path(root) / name
            files[str(path.relative_to(directory))] = path.read_bytes()
        if with_dirs:
            for name in dirs:
                files[str((Path(root) / name).relative_to(directory)) + "/"] = b""
    return files


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a failed command printed on stderr (and no traceback)."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]

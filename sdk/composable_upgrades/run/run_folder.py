"""A run's folder: ansible-runner's settings and the reproduce script's start.

Both executors (:mod:`.ansible`, :mod:`.streaming`) begin a run here, so a
run folder looks the same whichever ran it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping

from composable_upgrades.errors import WorkdirError
from composable_upgrades.state.results import REPRODUCE_SCRIPT


def start_run_folder(run_dir: str, plan_path: str, env: Mapping[str, str],
                     header: str) -> None:
    """Create a run's folder: ansible-runner's settings, and the reproduce
    script's start (``header`` as comments, the run's environment exported)."""
    try:
        os.makedirs(run_dir)
    except OSError as exc:
        raise WorkdirError(f"cannot create the run folder: {exc.strerror}",
                           path=os.path.dirname(run_dir)) from exc
    write_runner_settings(run_dir)
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    path = os.path.join(run_dir, REPRODUCE_SCRIPT)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"#!/usr/bin/env bash\n{comments}set -euo pipefail\n"
                     f"cd {shlex.quote(plan_path)}\n{exports}")
    os.chmod(path, 0o755)


def write_runner_settings(run_dir: str) -> None:
    """ansible-runner settings of every step of a run.

    No stdout file: it would hold task output unredacted, and the records
    stream to the run history instead. (ansible-runner reads its settings
    from ``env/settings`` and drops any passed in when that file is missing.)
    """
    os.makedirs(os.path.join(run_dir, "env"))
    with open(os.path.join(run_dir, "env", "settings"), "w", encoding="utf-8") as handle:
        # A short pexpect timeout: the cancel callback is asked that often.
        handle.write('{"suppress_output_file": true, "pexpect_timeout": 0.2}\n')

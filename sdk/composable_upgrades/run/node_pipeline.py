"""One execution node's part of a step: ``transmit | worker | process``.

``transmit`` writes the job (the command line, and the node's bundle: a copy
of the plan folder and the run's ansible-runner settings) to ``ansible-runner
worker`` on the node (over ``ssh``, or a local process); ``process`` reads the
stream the worker sends back. :func:`stream` runs that pipeline in a thread
of its own and puts what comes back on a queue, for
:class:`~.streaming.StreamingExecutor` to handle in the calling thread;
:func:`pipeline_script` writes the same pipeline as the reproduce script's
lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.run.ansible_events import StepEvents
from composable_upgrades.run.nodes import ExecutionNode
from composable_upgrades.run.run_folder import write_runner_settings

#: Where a run folder keeps each node's bundle (what ``transmit`` sends).
NODES_DIR = "nodes"
#: The plan folder's files a node does not need (and the run does not send).
_NOT_SENT = ("plan.json",)
#: The PATH of a node's worker when the node's ansible-playbook is a full path.
_NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: What a node's thread puts on the queue: the run, ``event``, ``status`` or
#: ``end``, and what came with it.
NodeEvents = queue.Queue[tuple["NodeRun", str, Any]]


@dataclass
class NodeRun:
    """One node's part of one step: its process, events and how it ended."""

    node: ExecutionNode
    hosts: tuple[str, ...]
    ident: str
    events: StepEvents
    process: subprocess.Popen[bytes] | None = None
    #: The node's worker process id, as its shell announced it.
    pid: int | None = None
    #: The worker's project folder (its copy of the plan folder).
    remote_project: str | None = None
    status: str | None = None
    explanation: str = ""
    sent: bool = False
    error: str = ""
    exit: int | None = None
    ended: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)


def stderr_path(run_dir: str, ident: str) -> str:
    """Where the transport of the node run ``ident`` writes its stderr."""
    return os.path.join(run_dir, NODES_DIR, f"{ident}.stderr")


def write_bundle(bundle: str, plan_path: str, env: Mapping[str, str],
                 node: ExecutionNode) -> None:
    """The node's bundle: the plan folder as ``project``, the run's
    ansible-runner settings and environment (with the node's PATH)."""
    shutil.copytree(plan_path, os.path.join(bundle, "project"),
                    ignore=shutil.ignore_patterns(*_NOT_SENT))
    write_runner_settings(bundle)
    env = dict(env)
    binary = node.playbook_binary()
    if os.path.isabs(binary):
        # ansible-playbook's own children are found on PATH.
        env["PATH"] = os.path.dirname(binary) + os.pathsep + (
            os.environ.get("PATH", _NODE_PATH) if node.local else _NODE_PATH)
    envvars = os.path.join(bundle, "env", "envvars")
    with open(envvars, "w", encoding="utf-8") as handle:
        json.dump(env, handle, sort_keys=True)
    os.chmod(envvars, 0o600)


def stream(run: NodeRun, argv: list[str], bundle: str, run_dir: str,
           events: NodeEvents) -> None:
    """In a thread of its own: transmit ``run``'s job to its node's worker,
    process what comes back (onto ``events``), wait for the worker; the
    last thing put is always ``end``."""
    exit_code = None
    try:
        exit_code = _transmit_and_process(run, argv, bundle, run_dir, events)
    except Exception as exc:  # ansible-runner raises plain exceptions
        run.error = run.error or f"{type(exc).__name__}: {exc}"
        if run.process is not None:
            close(run)
            exit_code = run.process.wait()
    finally:
        events.put((run, "end", exit_code))


def _transmit_and_process(run: NodeRun, argv: list[str], bundle: str, run_dir: str,
                          events: NodeEvents) -> int | None:
    """``transmit | worker | process`` for ``run``; the transport's exit code."""
    import ansible_runner

    node = run.node
    try:
        with open(stderr_path(run_dir, run.ident), "wb") as stderr:
            run.process = subprocess.Popen(
                node.worker_command(announce_pid=True), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    except OSError as exc:
        run.error = f"cannot start {node.worker_command()[0]}: {exc.strerror}"
        return None
    process = run.process
    assert process.stdin is not None and process.stdout is not None
    try:
        ansible_runner.run(
            streamer="transmit", _output=process.stdin,
            private_data_dir=bundle, ident=run.ident,
            binary=argv[0], cmdline=shlex.join(argv[1:]), quiet=True,
            suppress_env_files=True, cancel_callback=lambda: False)
        process.stdin.close()
        run.sent = True
    except (OSError, ValueError) as exc:  # the worker's end is gone
        run.error = f"the job could not be sent ({exc})"
        with contextlib.suppress(OSError):
            process.stdin.close()
    announced = process.stdout.readline()
    if announced.strip().isdigit():
        run.pid = int(announced)
        ansible_runner.run(
            streamer="process", _input=process.stdout,
            private_data_dir=run_dir, ident=run.ident, quiet=True,
            event_handler=lambda event: events.put((run, "event", event)) or False,
            status_handler=lambda data, runner_config: events.put(
                (run, "status", data)),
            cancel_callback=lambda: False)
    with contextlib.suppress(OSError):
        process.stdout.close()
    return process.wait()


def close(run: NodeRun) -> None:
    """Stop ``run``: end its transport (a local worker cancels its run; a
    remote one loses its output and stops at its next event)."""
    process = run.process
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()


def forget_command(artifact_dir: str) -> None:
    """Delete the command file the worker's artifacts bring back: it holds
    the node's whole environment; the reproduce script says what ran."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(artifact_dir, "command"))


def pipeline_script(node: ExecutionNode, ident: str, bundle: str, run_dir: str,
                    playbook: str, argv: list[str]) -> str:
    """The shell pipeline that does what :func:`stream` does, run in the
    background (the reproduce script waits for every node of a step)."""
    runner = _runner_binary()
    transmit = [runner, "transmit", bundle, "--ident", ident,
                "-p", playbook, "--binary", argv[0],
                # One word: argparse takes a value that starts with
                # '-' for an option of its own.
                f"--cmdline={shlex.join(argv[1:])}"]
    process = [runner, "process", run_dir, "--ident", ident]
    return (f"{shlex.join(transmit)} \\\n  | {shlex.join(node.worker_command())}"
            f" \\\n  | {shlex.join(process)} &")


def _runner_binary() -> str:
    """ansible-runner next to this Python (for the reproduce script)."""
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-runner")
    return beside if os.access(beside, os.X_OK) else "ansible-runner"

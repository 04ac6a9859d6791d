"""The executor that runs each step on execution nodes, through
ansible-runner's streaming mode.

Per step, the step's hosts are split by the node that drives them
(:mod:`.nodes`); every node's part runs at once: ``transmit`` here writes the
job (the command line, and the node's bundle: a copy of the plan folder and
the run's ansible-runner settings) to ``ansible-runner worker`` on the node
(over ``ssh``, or a local process), and the stream the worker sends back is
read here by ``process``, whose events go through the same
:class:`~.ansible_events.StepEvents` as a local run's, in the calling thread,
so records, failures and progress are those of a local run. The step ends
when every node's run has ended: that is the barrier.

A node that cannot be reached, dies mid-step or sends a broken stream fails
its hosts for the step, with one note naming the node and the cause; the
stage runner counts them against max-fail like any failure. A stop request
closes every node's stream (a local worker is asked to cancel; a remote one
stops at its next event, when its output is gone).
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

from composable_upgrades.model.deployment import UNDERCLOUD_GROUP
from composable_upgrades.planning.plan import UNDERCLOUD_HOST
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.run.ansible import start_run_folder, write_runner_settings
from composable_upgrades.run.ansible_events import StepEvents, TaskIndex
from composable_upgrades.run.executor import (
    BatchJob, BatchSession, StepCallbacks, StepJob, StepReport, StepwiseSession)
from composable_upgrades.run.nodes import ExecutionNode, ExecutionNodes
from composable_upgrades.run.options import ansible_command
from composable_upgrades.state.results import REPRODUCE_SCRIPT

#: Where a run folder keeps each node's bundle (what ``transmit`` sends).
NODES_DIR = "nodes"
#: The plan folder's files a node does not need (and the run does not send).
_NOT_SENT = ("plan.json",)
#: ansible-playbook's exit code when it could not be started.
_NOT_FOUND = 127
#: What ansible-runner's status says of a run that ended as it should.
_ENDED = frozenset({"successful", "failed", "canceled", "timeout"})
#: Seconds between two checks of the stop request while events are awaited.
_POLL = 0.05
#: What ssh says on stderr that is not why a node failed.
_SSH_NOTICES = ("Warning: Permanently added", "** WARNING: connection is not using",
                "** This session may be vulnerable", "** The server may need")
#: The PATH of a node's worker when the node's ansible-playbook is a full path.
_NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _runner_binary() -> str:
    """ansible-runner next to this Python (for the reproduce script)."""
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-runner")
    return beside if os.access(beside, os.X_OK) else "ansible-runner"


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


class StreamingExecutor:
    """Runs the steps of one run of ``plan`` on execution ``nodes``.

    ``run_dir`` is the run's folder (the nodes' bundles, the artifacts each
    node's stream brings back, the reproduce script); ``env`` the run's
    environment, which every node's ansible-playbook gets.
    """

    def __init__(self, plan: PreparedPlan, run_dir: str,
                 nodes: ExecutionNodes | Mapping[str, Any] | str | os.PathLike[str], *,
                 env: Mapping[str, str] | None = None) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.nodes = ExecutionNodes.build(nodes)
        self.env = dict(env or {})
        self.assignment = self.nodes.assign(plan)
        self.task_index = TaskIndex(plan)
        self.roles = {name: host.role for name, host in plan.hosts.items()}
        self.roles[UNDERCLOUD_HOST] = UNDERCLOUD_GROUP
        self.current: dict[str, NodeRun] = {}

    # -- the Executor protocol ----------------------------------------------

    def start(self, run_id: str, stage: str) -> str:
        """Create the run folder, each node's bundle and the script header."""
        nodes_from = (self.nodes.source if os.path.isabs(self.nodes.source)
                      else "the run's options")
        start_run_folder(self.run_dir, self.plan.path, self.env, (
            f"Run {run_id}: stage {stage} of the plan in {self.plan.path},\n"
            f"on the execution nodes of {nodes_from}.\n"
            "Each step runs on every node that drives some of its hosts at once\n"
            "(ansible-runner transmit | the node's worker | process); the step\n"
            "ends when they all have."))
        for node in self.nodes.nodes:
            self.write_bundle(node)
        return self.run_dir

    def open_batch(self, job: BatchJob) -> BatchSession:
        """Each step of the batch as one call (one streamed run per node)."""
        return StepwiseSession(self)

    # -- one step ------------------------------------------------------------

    def bundle(self, node: ExecutionNode) -> str:
        """The private data dir ``transmit`` sends to ``node``."""
        return os.path.join(self.run_dir, NODES_DIR, node.name)

    def write_bundle(self, node: ExecutionNode) -> None:
        """The node's bundle: the plan folder as ``project``, the run's
        ansible-runner settings and environment (with the node's PATH)."""
        bundle = self.bundle(node)
        shutil.copytree(self.plan.path, os.path.join(bundle, "project"),
                        ignore=shutil.ignore_patterns(*_NOT_SENT))
        write_runner_settings(bundle)
        env = dict(self.env)
        binary = node.playbook_binary()
        if os.path.isabs(binary):
            # ansible-playbook's own children are found on PATH.
            env["PATH"] = os.path.dirname(binary) + os.pathsep + (
                os.environ.get("PATH", _NODE_PATH) if node.local else _NODE_PATH)
        envvars = os.path.join(bundle, "env", "envvars")
        with open(envvars, "w", encoding="utf-8") as handle:
            json.dump(env, handle, sort_keys=True)
        os.chmod(envvars, 0o600)

    def command(self, node: ExecutionNode, job: StepJob,
                hosts: tuple[str, ...]) -> list[str]:
        """See :func:`node_command`."""
        return node_command(node, job, hosts)

    def run_step(self, job: StepJob, callbacks: StepCallbacks) -> StepReport:
        """Run ``job`` on every node that drives some of its hosts, at once;
        return when all of them have ended."""
        import ansible_runner  # noqa: F401  (fails here, not in a thread)

        parts = self.nodes.split(self.assignment, job.hosts)
        self.note_step(job, parts)
        events: queue.Queue[tuple[NodeRun, str, Any]] = queue.Queue()
        runs = []
        for name, hosts in parts.items():
            node = self.nodes.node(name)
            run = NodeRun(node=node, hosts=hosts,
                          ident=f"{name}-batch{job.batch}-step{job.step}",
                          events=StepEvents(
                              run_id=job.run_id, stage=job.stage, batch=job.batch,
                              step=job.step, roles=self.roles,
                              task_index=self.task_index, scrub=self.plan.scrub,
                              callbacks=_naming_node(callbacks, name)
                              if len(parts) > 1 else callbacks))
            runs.append(run)
        self.current = {run.node.name: run for run in runs}
        for run in runs:
            run.thread = threading.Thread(
                target=self.stream, args=(run, job, events),
                name=f"node-{run.ident}", daemon=True)
            run.thread.start()
        interrupted = False
        try:
            while not all(run.ended for run in runs):
                if not interrupted and callbacks.stop_now():
                    interrupted = True
                    for run in runs:
                        _close(run)
                try:
                    run, kind, payload = events.get(timeout=_POLL)
                except queue.Empty:
                    continue
                self.handle(run, kind, payload)
        finally:
            for run in runs:
                if not run.ended:
                    _close(run)
                if run.thread is not None:
                    run.thread.join()
            self.current = {}
        return self.report(job, runs, interrupted)

    def stream(self, run: NodeRun, job: StepJob,
               events: queue.Queue[tuple[NodeRun, str, Any]]) -> None:
        """In a thread of its own: transmit ``run``'s job to its node's worker,
        process what comes back (onto ``events``), wait for the worker; the
        last thing put is always ``end``."""
        exit_code = None
        try:
            exit_code = self.transmit_and_process(run, job, events)
        except Exception as exc:  # ansible-runner raises plain exceptions
            run.error = run.error or f"{type(exc).__name__}: {exc}"
            if run.process is not None:
                _close(run)
                exit_code = run.process.wait()
        finally:
            events.put((run, "end", exit_code))

    def transmit_and_process(self, run: NodeRun, job: StepJob,
                             events: queue.Queue[tuple[NodeRun, str, Any]]
                             ) -> int | None:
        """``transmit | worker | process`` for ``run``; the transport's exit code."""
        import ansible_runner

        node = run.node
        stderr_path = os.path.join(self.run_dir, NODES_DIR, f"{run.ident}.stderr")
        argv = self.command(node, job, run.hosts)
        try:
            with open(stderr_path, "wb") as stderr:
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
                private_data_dir=self.bundle(node), ident=run.ident,
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
                private_data_dir=self.run_dir, ident=run.ident, quiet=True,
                event_handler=lambda event: events.put((run, "event", event)) or False,
                status_handler=lambda data, runner_config: events.put(
                    (run, "status", data)),
                cancel_callback=lambda: False)
        with contextlib.suppress(OSError):
            process.stdout.close()
        return process.wait()

    def handle(self, run: NodeRun, kind: str, payload: Any) -> None:
        """One event, status or end of ``run``'s stream, in the calling thread."""
        if kind == "event":
            run.events.handle(self.local_paths(run, payload))
        elif kind == "status":
            run.status = payload.get("status")
            if run.status == "starting":
                run.remote_project = payload.get("cwd")
            run.explanation = payload.get("job_explanation") or run.explanation
        else:
            run.exit = payload
            run.ended = True
            _forget_command(os.path.join(self.run_dir, "artifacts", run.ident))

    def local_paths(self, run: NodeRun, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` with its task path in the plan folder here, not in the
        node's copy of it: the records name the plan's task files."""
        data = event.get("event_data")
        remote = run.remote_project
        path = data.get("task_path") if isinstance(data, dict) else None
        if remote and isinstance(path, str) and path.startswith(remote.rstrip("/") + "/"):
            data["task_path"] = os.path.join(self.plan.path,
                                             path[len(remote.rstrip("/")) + 1:])
        return event

    def report(self, job: StepJob, runs: list[NodeRun],
               interrupted: bool) -> StepReport:
        """The step's report, put together from every node's run."""
        rc = 0
        failed: set[str] = set()
        records: list = []
        output: list[str] = []
        notes: list[str] = []
        for run in runs:
            records.extend(run.events.records)
            output.extend(run.events.output)
            if interrupted:
                continue
            hosts = set(run.hosts)
            cause = self.node_failure(run)
            node_rc = self.node_rc(run)
            if cause is None and node_rc == _NOT_FOUND:
                cause = f"ansible-playbook not found ({run.node.playbook_binary()})"
            if cause is not None:
                failed |= hosts
                rc = rc or node_rc or 1
                notes.append(f"execution node {run.node.name} ({run.node.where}) "
                             f"{cause}, at step {job.step} of batch {job.batch}: "
                             f"its {len(hosts)} host{'s' if len(hosts) != 1 else ''} "
                             "failed the step")
                continue
            lost = hosts & run.events.failed_hosts()
            if node_rc and not lost:
                # The node's ansible-playbook ended without a host failing (a
                # syntax error, a missing module): the step did not run there.
                lost = hosts
                said = " / ".join(line for line in run.events.output if line)
                notes.append(f"ansible-playbook exited {node_rc} at step {job.step} "
                             f"on execution node {run.node.name}: {said or 'no output'}")
            failed |= lost
            if lost and node_rc:
                rc = rc or node_rc
        return StepReport(rc=254 if interrupted else rc,
                          failed=frozenset(() if interrupted else failed),
                          interrupted=interrupted, records=tuple(records),
                          output=tuple(output[-3:]), notes=tuple(notes))

    def node_failure(self, run: NodeRun) -> str | None:
        """Why ``run``'s node failed as a node (None: its run ended as runs do)."""
        if run.status in _ENDED and run.sent and not run.error:
            return None
        said = self.stderr_tail(run)
        if run.pid is None:
            if not run.node.local and run.exit == 255:
                return f"is unreachable: {said or 'ssh exited 255'}"
            if run.process is None:
                return f"could not be started: {run.error}"
            return (f"could not start its worker ({_exit_text(run.exit)})"
                    + (f": {said}" if said else ""))
        if run.explanation.startswith("Unexpected empty line") or (
                not run.error and not run.explanation):
            return (f"was lost mid-step (its stream ended early, "
                    f"{_exit_text(run.exit)})" + (f": {said}" if said else ""))
        cause = run.explanation or run.error
        return f"sent a broken stream: {cause}" + (f"; {said}" if said else "")

    def node_rc(self, run: NodeRun) -> int:
        """The exit code of ``run``'s ansible-playbook (from the artifacts its
        stream brought back; 1 if none came)."""
        path = os.path.join(self.run_dir, "artifacts", run.ident, "rc")
        try:
            with open(path, encoding="utf-8") as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return 0 if run.status == "successful" else 1

    def stderr_tail(self, run: NodeRun) -> str:
        """The last line of what the node's transport said on stderr."""
        path = os.path.join(self.run_dir, NODES_DIR, f"{run.ident}.stderr")
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = [line.strip() for line in handle.read().splitlines()
                         if line.strip() and not line.strip().startswith(_SSH_NOTICES)]
        except OSError:
            return ""
        return lines[-1][:300] if lines else ""

    def note_step(self, job: StepJob, parts: Mapping[str, tuple[str, ...]]) -> None:
        """Append the step's per-node commands to the reproduce script."""
        lines = [f"\n# batch {job.batch}, step {job.step}: "
                 f"{len(parts)} execution node{'s' if len(parts) != 1 else ''} at once"]
        runner = _runner_binary()
        for name, hosts in parts.items():
            node = self.nodes.node(name)
            argv = self.command(node, job, hosts)
            ident = f"{name}-batch{job.batch}-step{job.step}"
            transmit = [runner, "transmit", self.bundle(node), "--ident", ident,
                        "-p", job.playbook, "--binary", argv[0],
                        # One word: argparse takes a value that starts with
                        # '-' for an option of its own.
                        f"--cmdline={shlex.join(argv[1:])}"]
            process = [runner, "process", self.run_dir, "--ident", ident]
            lines.append(f"# node {name} ({node.where}): {', '.join(hosts)}")
            lines.append(f"{shlex.join(transmit)} \\\n  | {shlex.join(node.worker_command())}"
                         f" \\\n  | {shlex.join(process)} &")
        lines.append("wait  # the step barrier: every node has ended the step\n")
        with open(os.path.join(self.run_dir, REPRODUCE_SCRIPT), "a",
                  encoding="utf-8") as handle:
            handle.write("\n".join(lines))

    def worker_pids(self) -> dict[str, int]:
        """The worker process id of each node of the step running now, as
        each node's shell announced it (on the node's own machine)."""
        return {name: run.pid for name, run in self.current.items()
                if run.pid is not None}


def node_command(node: ExecutionNode, job: StepJob,
                 hosts: tuple[str, ...]) -> list[str]:
    """The ansible-playbook command line ``node`` runs for its ``hosts`` of
    ``job``, in its copy of the plan folder (what a dry run shows)."""
    return ansible_command(job.options, binary=node.playbook_binary(),
                           inventory="inventory.yaml", hosts=hosts,
                           playbook=job.playbook)


def _naming_node(callbacks: StepCallbacks, node: str) -> StepCallbacks:
    """``callbacks`` whose task names say the node: nodes run at once."""
    return StepCallbacks(task=lambda name: callbacks.task(f"{node}: {name}"),
                         record=callbacks.record, stop_now=callbacks.stop_now)


def _close(run: NodeRun) -> None:
    """Stop ``run``: end its transport (a local worker cancels its run; a
    remote one loses its output and stops at its next event)."""
    process = run.process
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit status {code}"


def _forget_command(artifact_dir: str) -> None:
    """Delete the command file the worker's artifacts bring back: it holds
    the node's whole environment; the reproduce script says what ran."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(artifact_dir, "command"))


__all__ = ["NODES_DIR", "NodeRun", "StreamingExecutor", "node_command"]

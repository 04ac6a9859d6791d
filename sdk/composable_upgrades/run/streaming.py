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

Each node's pipeline is :mod:`.node_pipeline`; how a node's part ended,
and the step's report from all of them, :mod:`.node_outcome`. A stop request
closes every node's stream (a local worker is asked to cancel; a remote one
stops at its next event, when its output is gone).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Mapping
from typing import Any

from composable_upgrades.model.names import UNDERCLOUD_GROUP
from composable_upgrades.planning.plan import UNDERCLOUD_HOST
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.run.ansible_events import StepEvents, TaskIndex
from composable_upgrades.run.executor import (
    BatchJob, BatchSession, StepCallbacks, StepJob, StepReport, StepwiseSession)
from composable_upgrades.run.node_outcome import step_report
from composable_upgrades.run.node_pipeline import (
    NODES_DIR, NodeEvents, NodeRun, close, forget_command, pipeline_script, stream,
    write_bundle)
from composable_upgrades.run.nodes import ExecutionNode, ExecutionNodes
from composable_upgrades.run.options import ansible_command
from composable_upgrades.run.run_folder import start_run_folder
from composable_upgrades.state.results import REPRODUCE_SCRIPT

#: Seconds between two checks of the stop request while events are awaited.
_POLL = 0.05


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
        """The node's bundle (see :func:`.node_pipeline.write_bundle`)."""
        write_bundle(self.bundle(node), self.plan.path, self.env, node)

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
        events: NodeEvents = queue.Queue()
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
                target=stream, args=(run, self.command(run.node, job, run.hosts),
                                     self.bundle(run.node), self.run_dir, events),
                name=f"node-{run.ident}", daemon=True)
            run.thread.start()
        interrupted = False
        try:
            while not all(run.ended for run in runs):
                if not interrupted and callbacks.stop_now():
                    interrupted = True
                    for run in runs:
                        close(run)
                try:
                    run, kind, payload = events.get(timeout=_POLL)
                except queue.Empty:
                    continue
                self.handle(run, kind, payload)
        finally:
            for run in runs:
                if not run.ended:
                    close(run)
                if run.thread is not None:
                    run.thread.join()
            self.current = {}
        return step_report(job, runs, interrupted, self.run_dir)

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
            forget_command(os.path.join(self.run_dir, "artifacts", run.ident))

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

    def note_step(self, job: StepJob, parts: Mapping[str, tuple[str, ...]]) -> None:
        """Append the step's per-node commands to the reproduce script."""
        lines = [f"\n# batch {job.batch}, step {job.step}: "
                 f"{len(parts)} execution node{'s' if len(parts) != 1 else ''} at once"]
        for name, hosts in parts.items():
            node = self.nodes.node(name)
            lines.append(f"# node {name} ({node.where}): {', '.join(hosts)}")
            lines.append(pipeline_script(
                node, f"{name}-batch{job.batch}-step{job.step}", self.bundle(node),
                self.run_dir, job.playbook, self.command(node, job, hosts)))
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


__all__ = ["NODES_DIR", "StreamingExecutor", "node_command"]

"""How a step on execution nodes ended: one report from every node's part.

A node that cannot be reached, dies mid-step or sends a broken stream fails
its hosts for the step, with one note naming the node and the cause
(:func:`node_failure`); the stage runner counts them against max-fail like
any failure. A node whose ansible-playbook ended without a host failing (a
syntax error, a missing module) did not run the step: its hosts fail too.
"""

from __future__ import annotations

import os

from composable_upgrades.run.executor import StepJob, StepReport
from composable_upgrades.run.node_pipeline import NodeRun, stderr_path

#: ansible-playbook's exit code when it could not be started.
_NOT_FOUND = 127
#: What ansible-runner's status says of a run that ended as it should.
_ENDED = frozenset({"successful", "failed", "canceled", "timeout"})
#: What ssh says on stderr that is not why a node failed.
_SSH_NOTICES = ("Warning: Permanently added", "** WARNING: connection is not using",
                "** This session may be vulnerable", "** The server may need")


def step_report(job: StepJob, runs: list[NodeRun], interrupted: bool,
                run_dir: str) -> StepReport:
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
        cause = node_failure(run, run_dir)
        node_rc = _node_rc(run, run_dir)
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


def node_failure(run: NodeRun, run_dir: str) -> str | None:
    """Why ``run``'s node failed as a node (None: its run ended as runs do)."""
    if run.status in _ENDED and run.sent and not run.error:
        return None
    said = _stderr_tail(run, run_dir)
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


def _node_rc(run: NodeRun, run_dir: str) -> int:
    """The exit code of ``run``'s ansible-playbook (from the artifacts its
    stream brought back; 1 if none came)."""
    path = os.path.join(run_dir, "artifacts", run.ident, "rc")
    try:
        with open(path, encoding="utf-8") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return 0 if run.status == "successful" else 1


def _stderr_tail(run: NodeRun, run_dir: str) -> str:
    """The last line of what the node's transport said on stderr."""
    try:
        with open(stderr_path(run_dir, run.ident), encoding="utf-8",
                  errors="replace") as handle:
            lines = [line.strip() for line in handle.read().splitlines()
                     if line.strip() and not line.strip().startswith(_SSH_NOTICES)]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit status {code}"

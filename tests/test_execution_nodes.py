"""Execution nodes: one stage driven from several machines, one step barrier.

The nodes are this machine (``ssh: local``) and loopback SSH hosts of the
real OpenSSH server of tests/sshfleet, on which ``ansible-runner worker``
runs from the project's venv by absolute path. The fleet's hosts stay
local-connection sandboxes under the test's tmp dir. The SSH user
(``tripleo-admin``) can reach neither the venv's Python (under root's home)
nor the tmp dir (0700, root's), so an SSH node starts its worker through
``sudo -n``, which the fixture grants that user: the worker then runs as the
test does, which is what a node whose user owns the fleet's files looks
like.

Most runs go through the stage runner (``run_request``) with the streaming
executor, built as ``run_stage`` builds its pieces, so a test can reach the
executor; one goes through the CLI (``--execution-nodes``, kept in the plan).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.errors import InputFileError
from composable_upgrades.run.events import ProgressEvent, StopRequest
from composable_upgrades.run.nodes import PLAN_FILE, ExecutionNodes, run_nodes
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.request import checked_request
from composable_upgrades.run.stage_runner import run_request
from composable_upgrades.run.streaming import NODES_DIR, StreamingExecutor
from composable_upgrades.state.journal import Journal
from composable_upgrades.state.results import REPRODUCE_SCRIPT, RunResult
from composable_upgrades.state.store import HistoryStore, new_run_id
from composable_upgrades.state.workdir import Workdir
from tests.sshfleet.fixture import ssh_fleet  # noqa: F401  (the fixture)
from tests.sshfleet.launcher import SSH_COMMON_OPTIONS, SshFleetServer, child_pids

MINI = Path(__file__).parent / "fixtures" / "mini-outputs.yaml"
VENV_BIN = Path(sys.executable).parent
COMPUTES = [f"overcloud-novacompute-{i}" for i in range(6)]


def ssh_node(server: SshFleetServer, address: str | None = None, **selector) -> dict:
    """A node file entry for a loopback SSH node of ``server``."""
    return {"ssh": f"{server.user}@{address or server.addresses[0]}",
            "port": server.port, "identity_file": str(server.private_key),
            "ssh_options": [o for o in SSH_COMMON_OPTIONS if o != "-o"],
            "runner": f"sudo -n {VENV_BIN / 'ansible-runner'}",
            "ansible_playbook": str(VENV_BIN / "ansible-playbook"), **selector}


def run_on_nodes(wd: Path, stage: str, nodes: dict, *,
                 progress: Callable[[StreamingExecutor, ProgressEvent], None] | None = None,
                 stop: StopRequest | None = None, **options) -> tuple[RunResult, StreamingExecutor]:
    """One run of ``stage`` on execution ``nodes``, as ``run_stage`` runs it."""
    workdir = Workdir.at(wd)
    plan, env, request = checked_request(workdir, stage, RunOptions.build(**options))
    run_id = new_run_id(stage)
    executor = StreamingExecutor(plan, os.path.join(workdir.runs_dir, run_id), nodes,
                                 env=env)
    journal = Journal(workdir.state_dir)
    journal.record_start(request.stage.sha256, {
        "run": run_id, "stage": stage, "pid": os.getpid(),
        "hosts": len(request.hosts), "batches": len(request.batches)})
    result = run_request(plan, request, executor, run_id=run_id, journal=journal,
                         sink=HistoryStore(workdir.history_path),
                         progress=(lambda event: progress(executor, event))
                         if progress else None, stop=stop)
    return result, executor


def logins(server: SshFleetServer) -> int:
    return server.log_file.read_text().count(f"Accepted publickey for {server.user}")


def assert_barrier(result: RunResult) -> None:
    """Every record of a step ended before any record of the next step began."""
    by_step: dict = {}
    for record in result.records:
        by_step.setdefault((record.batch, record.step), []).append(record)
    order = [(s.batch, s.step) for s in result.steps if (s.batch, s.step) in by_step]
    for before, after in zip(order, order[1:]):
        ended = max(r.start + (r.duration or 0) for r in by_step[before] if r.start)
        began = min(r.start for r in by_step[after] if r.start)
        assert ended <= began, (before, after)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process under it: the node dies."""
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in child_pids(parent)]
        tree += frontier
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


def prepared_demo(tmp_path: Path) -> tuple[Path, cu.Fleet, cu.PreparedPlan]:
    fleet = cu.Fleet.at(tmp_path / "fleet")
    wd = tmp_path / "wd"
    plan = cu.prepare(cu.demo_outputs(), wd, fleet=fleet,
                      dependencies_file=cu.demo_dependencies_path()).prepared
    cu.seed_fleet(fleet, plan)
    return wd, fleet, plan


def prepared_mini(tmp_path: Path, name: str = "wd") -> tuple[Path, cu.PreparedPlan]:
    fleet = cu.Fleet.at(tmp_path / f"{name}-fleet")
    wd = tmp_path / name
    plan = cu.prepare(cu.StackOutputs.from_file(MINI), wd, fleet=fleet).prepared
    fleet.create(list(plan.hosts))
    return wd, plan


def test_execution_nodes_demo_upgrade_holds_the_barrier_across_nodes(tmp_path, ssh_fleet):
    wd, fleet, plan = prepared_demo(tmp_path)
    nodes = {"nodes": {"central": {"ssh": "local"},
                       "edge1": ssh_node(ssh_fleet, roles=["Compute"])}}
    assignment = ExecutionNodes.build(nodes).assign(plan)
    assert {h for h, n in assignment.items() if n == "edge1"} == set(COMPUTES)
    # The controlplane's hosts are all central's: a run of its own upgrades
    # them (the history-shape test below runs controlplane steps on nodes).
    assert cu.run_stage(wd, "controlplane").ok
    assert cu.check_invariants(fleet, plan, "controlplane").ok
    before = logins(ssh_fleet)
    for stage in ("compute", "converge"):
        result, executor = run_on_nodes(wd, stage, nodes)
        assert result.status == "successful", result.notes
        report = cu.check_invariants(fleet, plan, stage)
        assert report.ok, report.failed
        assert_barrier(result)
        # Every step ran each node's hosts on that node, and only there.
        artifacts = os.listdir(os.path.join(result.run_dir, "artifacts"))
        played = {}
        for record in result.records:
            played.setdefault((record.batch, record.step), set()).add(record.host)
        for (batch, step), hosts in played.items():
            assert sorted(a for a in artifacts if a.endswith(f"-batch{batch}-step{step}")) \
                == sorted(f"{n}-batch{batch}-step{step}" for n in {assignment[h] for h in hosts})
        if stage == "compute":
            # Steps that both nodes played: the barrier held across them.
            both = [k for k, hosts in played.items()
                    if hosts & set(COMPUTES) and "overcloud-cephstorage-0" in hosts]
            assert len(both) >= 2
            script = Path(result.run_dir, REPRODUCE_SCRIPT).read_text()
            assert f"# node edge1 (ssh {ssh_fleet.user}@{ssh_fleet.addresses[0]}" in script
            assert "ansible-runner worker" in script and "wait  # the step barrier" in script
        if stage != "converge":  # (converge's own work belongs to no service)
            # The records name the plan's services, as a local run's do.
            assert all(r.service for r in result.records
                       if not r.task.startswith("Rehearsal fault check"))
        # The command files (the node's environment) are not kept.
        assert not list(Path(result.run_dir, "artifacts").glob("*/command"))
    # edge1's steps went over SSH: compute's 5 steps and converge's.
    assert logins(ssh_fleet) - before >= 5 + 1


def test_execution_node_killed_mid_step_fails_its_hosts_and_resume_completes(
        tmp_path, ssh_fleet):
    wd, fleet, plan = prepared_demo(tmp_path)
    nodes = {"nodes": {"central": {"ssh": "local"},
                       "edge1": ssh_node(ssh_fleet, roles=["Compute"])}}
    stuck = COMPUTES[0]
    log = Path(fleet.host_root(stuck)) / "events.log"
    saved = tmp_path / "events.log.saved"
    killed: list[int] = []
    left: list[str | None] = []  # the killed worker's folder, which it cannot delete

    def unblock() -> None:
        """Read the FIFO, should the kill never come: the test fails, not hangs."""
        if not killed and log.is_fifo():
            with open(log, "rb") as fifo:
                fifo.read()

    safety = threading.Timer(300, unblock)

    def progress(executor: StreamingExecutor, event: ProgressEvent) -> None:
        if event.kind == "step_start" and event.step == 2:
            # The first task of step 2 on a compute appends to events.log: on
            # a FIFO with no reader it waits, so edge1 stays mid-step until
            # killed, while central runs the CephStorage play of the step.
            log.rename(saved)
            os.mkfifo(log)
            safety.start()
        if (event.kind == "task" and event.step == 2 and not killed
                and (event.task or "").startswith("edge1: ")):
            pid = executor.worker_pids()["edge1"]
            left.append(executor.current["edge1"].remote_project)
            kill_tree(pid)
            killed.append(pid)

    try:
        result, _ = run_on_nodes(wd, "compute", nodes, progress=progress, force=True)
    finally:
        safety.cancel()
    assert killed and left[0]
    shutil.rmtree(os.path.dirname(left[0]))
    assert result.status == "failed"
    lost = [n for n in result.notes if n.startswith("execution node edge1")]
    assert len(lost) == 1, result.notes
    assert "was lost mid-step" in lost[0] and "at step 2 of batch 1" in lost[0]
    assert "its 6 hosts failed the step" in lost[0]
    step2 = next(s for s in result.steps if s.step == 2)
    assert set(step2.failed) == set(COMPUTES)
    assert [s.step for s in result.steps] == [0, 1, 2]
    # The rest of the batch finished the step: its records, its journal.
    ceph = [r for r in result.records
            if r.step == 2 and r.host == "overcloud-cephstorage-0"]
    assert ceph and {r.status for r in ceph} <= {"ok", "changed", "skipped"}
    progress_now = Journal(Workdir.at(wd).state_dir).progress(
        [plan.stage("compute")])["compute"]
    assert (2, "overcloud-cephstorage-0") in progress_now.finished
    assert not any((2, h) in progress_now.finished for h in COMPUTES)
    log.unlink()
    saved.rename(log)
    result, _ = run_on_nodes(wd, "compute", nodes, resume=True, force=True)
    assert result.status == "successful", result.notes
    assert {(s.step, h) for s in result.steps for h in s.hosts} >= {
        (2, h) for h in COMPUTES}
    assert not any(s.step == 2 and "overcloud-cephstorage-0" in s.hosts
                   for s in result.steps)
    assert " 2 nova_libvirt stop" in log.read_text()
    status = {s.stage: s for s in cu.status(wd)}["compute"]
    assert not status.failed and set(status.done) == set(plan.stage("compute").hosts)


def test_execution_node_unreachable_fails_its_hosts_and_a_replacement_finishes(
        tmp_path, ssh_fleet):
    wd, plan = prepared_mini(tmp_path)
    central = {"ssh": "local"}
    down = {"nodes": {"central": central, "edge1": ssh_node(
        ssh_fleet, ssh_fleet.unused_address(), hosts_var="ctlplane_ip",
        value="192.168.24.20")}}
    # A node that is down but drives none of a run's hosts is not in its way
    # (one step is enough to show it); the compute stage then goes on forced.
    first, _ = run_on_nodes(wd, "controlplane", down, steps=[0])
    assert first.status == "successful", first.notes
    result, _ = run_on_nodes(wd, "compute", down, max_fail_percentage=25, force=True)
    assert result.status == "failed"
    lost = [n for n in result.notes if n.startswith("execution node edge1")]
    assert len(lost) == 1 and "\n" not in lost[0], result.notes
    assert "is unreachable" in lost[0] and "Connection refused" in lost[0]
    # Its host failed the first step it had; the others finished every step.
    assert {h for s in result.steps for h in s.failed} == {"overcloud-novacompute-0"}
    assert not any(r.host == "overcloud-novacompute-0" for r in result.records)
    status = {s.stage: s for s in cu.status(wd)}["compute"]
    assert set(status.failed) == {"overcloud-novacompute-0"}
    assert set(status.done) == {f"overcloud-novacompute-{i}" for i in (1, 2, 3)}
    # A replacement node takes over the unfinished units only.
    up = {"nodes": {"central": central, "edge1": ssh_node(
        ssh_fleet, hosts_var="ctlplane_ip", value="192.168.24.20")}}
    again, _ = run_on_nodes(wd, "compute", up, resume=True, force=True)
    assert again.status == "successful", again.notes
    assert {h for s in again.steps for h in s.hosts} == {"overcloud-novacompute-0"}


def test_execution_node_broken_stream_fails_its_hosts(tmp_path):
    wd, plan = prepared_mini(tmp_path)
    # A "worker" that reads the job and answers with something not JSON.
    broken = {"ssh": "local", "hosts_var": "ctlplane_ip", "value": "192.168.24.20",
              "runner": ["sh", "-c", "cat >/dev/null; echo not-json", "fake"]}
    nodes = {"nodes": {"central": {"ssh": "local"}, "edge1": broken}}
    result, _ = run_on_nodes(wd, "compute", nodes, force=True, max_fail_percentage=25)
    assert result.status == "failed"
    lost = [n for n in result.notes if n.startswith("execution node edge1 (local)")]
    assert len(lost) == 1, result.notes
    assert "sent a broken stream: Failed to JSON parse a line from worker stream" \
        in lost[0] and "\n" not in lost[0]
    assert {h for s in result.steps for h in s.failed} == {"overcloud-novacompute-0"}
    status = {s.stage: s for s in cu.status(wd)}["compute"]
    assert set(status.done) == {f"overcloud-novacompute-{i}" for i in (1, 2, 3)}


def test_execution_nodes_stop_now_cancels_every_node(tmp_path):
    wd, plan = prepared_mini(tmp_path)
    slow = Path(cu.Fleet.at(tmp_path / "wd-fleet").host_root("overcloud-controller-1"))
    (slow / "slow").touch()  # sleeps 3 s at every step: the stop comes first
    nodes = {"nodes": {"central": {"ssh": "local"},
                       "edge1": {"ssh": "local", "hosts_var": "ctlplane_ip",
                                 "value": "192.168.24.11"}}}
    stop = StopRequest()
    workers: dict[str, int] = {}

    def progress(executor: StreamingExecutor, event: ProgressEvent) -> None:
        if event.kind == "task" and not workers and len(executor.worker_pids()) == 2:
            workers.update(executor.worker_pids())
            stop()
            stop()  # twice: now

    result, _ = run_on_nodes(wd, "controlplane", nodes, progress=progress, stop=stop)
    assert result.status == "interrupted"
    assert len(result.steps) == 1 and result.steps[0].interrupted
    for pid in workers.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    progress_now = Journal(Workdir.at(wd).state_dir).progress(
        [plan.stage("controlplane")])["controlplane"]
    assert not progress_now.finished


def _shape(result: RunResult) -> tuple[list[str], list[tuple]]:
    frame = result.to_frame()
    kept = [c for c in frame.columns if c not in ("run_id", "start", "duration")]
    rows = sorted(tuple(str(v) for v in row) for row in frame[kept].itertuples(index=False))
    return list(frame.columns), rows


def test_execution_nodes_history_has_the_shape_of_a_local_run(tmp_path, ssh_fleet):
    local_wd, _ = prepared_mini(tmp_path, "local")
    nodes_wd, plan = prepared_mini(tmp_path, "nodes")
    nodes = {"nodes": {"central": {"ssh": "local"},
                       "edge1": ssh_node(ssh_fleet, roles=["Compute"]),
                       "edge2": ssh_node(ssh_fleet, ssh_fleet.addresses[1],
                                         hosts_var="ctlplane_ip",
                                         value="192.168.24.11")}}
    assert ExecutionNodes.build(nodes).describe(plan, plan.stage("controlplane").hosts) \
        == ["central (local): overcloud-controller-0",
            f"edge2 (ssh {ssh_fleet.user}@{ssh_fleet.addresses[1]} port "
            f"{ssh_fleet.port}): overcloud-controller-1"]
    # Two steps of the controlplane (central and edge2) and the compute stage
    # (central and edge1), forced: the same runs on both sides.
    for stage, options in (("controlplane", {"steps": [0, 1]}),
                           ("compute", {"force": True})):
        local = cu.run_stage(local_wd, stage, **options)
        remote, _ = run_on_nodes(nodes_wd, stage, nodes, **options)
        assert local.status == remote.status == "successful", remote.notes
        assert _shape(local) == _shape(remote)
        stored = cu.History(nodes_wd).run(remote.run_id)
        assert _shape(stored) == _shape(local)
        assert [(s.batch, s.step, s.hosts, s.failed) for s in local.steps] \
            == [(s.batch, s.step, s.hosts, s.failed) for s in remote.steps]
        assert os.path.isdir(os.path.join(remote.run_dir, NODES_DIR, "edge1", "project"))


def test_execution_nodes_file_errors_name_the_file_and_node(tmp_path):
    _, plan = prepared_mini(tmp_path)
    path = tmp_path / "nodes.yaml"
    cases = {
        "nodes: {a: {ssh: '-oProxyCommand=x'}}": "node a: ssh: expected 'local' or user@host",
        "nodes: {a: {ssh: local}, b: {ssh: local}}": "nodes a, b have neither roles",
        "nodes: {a: {ssh: local, roles: Compute}}": "node a: roles: expected a list",
        "nodes: {a: {ssh: local, hosts_var: x}}": "node a: hosts_var: expected a variable",
        "nodes: {a: {ssh: local, colour: red}}": "node a: unknown key 'colour'",
        "hosts: []": "expected a mapping 'nodes:",
    }
    for text, said in cases.items():
        path.write_text(text + "\n")
        with pytest.raises(InputFileError) as caught:
            ExecutionNodes.load(path)
        assert str(caught.value).startswith(f"{path}: ") and said in str(caught.value)
    path.write_text("nodes: {a: {ssh: local, roles: [Nope]}}\n")
    with pytest.raises(InputFileError, match="node a: unknown role 'Nope'"):
        ExecutionNodes.load(path).assign(plan)
    path.write_text("nodes: {a: {ssh: local, roles: [Compute]}}\n")
    with pytest.raises(InputFileError, match="host overcloud-controller-0 .* claimed by no"):
        ExecutionNodes.load(path).assign(plan)
    path.write_text("nodes: {a: {ssh: local}, b: {ssh: x@y, hosts_var: nope, value: 1}}\n")
    with pytest.raises(InputFileError, match="hosts_var 'nope': no host"):
        ExecutionNodes.load(path).assign(plan)
    # A node file kept in the plan folder is the runs' default.
    assert run_nodes(plan) is None
    kept = Path(plan.file(PLAN_FILE))
    kept.write_text("nodes: {central: {ssh: local}, edge1: {ssh: stack@edge1, "
                    "roles: [Compute]}}\n")
    nodes = run_nodes(plan)
    assert nodes is not None and nodes.source == str(kept)
    assert nodes.split(nodes.assign(plan), plan.stage("compute").hosts) == {
        "edge1": plan.stage("compute").hosts}
    assert run_nodes(plan, {"nodes": {"only": {"ssh": "local"}}}).nodes[0].name == "only"
    assert ExecutionNodes.from_dict(nodes.to_dict()).nodes == nodes.nodes


def test_execution_nodes_through_the_cli_kept_in_the_plan(tmp_path):
    """prepare --execution-nodes keeps the file; plan and run --dry-run say who
    drives whom; run uses the kept nodes (streams in the run folder)."""
    import yaml

    from tests.helpers import cli
    node_file = tmp_path / "nodes.yaml"
    node_file.write_text(yaml.safe_dump({"nodes": {
        "central": {"ssh": "local"},
        "edge": {"ssh": "local", "roles": ["Compute"]}}}))
    wd, fleet = tmp_path / "wd", tmp_path / "fleet"
    done = cli(["overcloud", "upgrade", "prepare", "--outputs-file", str(MINI),
                "--working-dir", str(wd), "--fleet", str(fleet),
                "--execution-nodes", str(node_file)])
    assert done.returncode == 0, done.stderr
    assert (wd / "composable-upgrade" / "plan" / PLAN_FILE).is_file()
    cu.Fleet.at(fleet).create(list(cu.Workdir.at(wd).load_plan().hosts))

    shown = cli(["overcloud", "upgrade", "plan", "--working-dir", str(wd),
                 "--stage", "compute"])
    assert shown.returncode == 0, shown.stderr
    assert "stage compute: execution node edge (local): overcloud-novacompute-0" \
        in shown.stderr

    dry = cli(["overcloud", "upgrade", "run", "--working-dir", str(wd), "--stage",
               "controlplane", "--dry-run"])
    assert dry.returncode == 0, dry.stderr
    assert "execution node central (local): overcloud-controller-0" in dry.stderr
    assert "batch 1, step 0 on central: " in dry.stderr

    ran = cli(["overcloud", "upgrade", "run", "--working-dir", str(wd), "--stage",
               "controlplane", "-y"])
    assert ran.returncode == 0, ran.stderr
    run_dir = next((wd / "composable-upgrade" / "runs").iterdir())
    assert (run_dir / NODES_DIR).is_dir()

    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: {x: {ssh: local, roles: [NoSuchRole]}}\n")
    refused = cli(["overcloud", "upgrade", "run", "--working-dir", str(wd), "--stage",
                   "compute", "-y", "--execution-nodes", str(bad)])
    assert refused.returncode == 1
    assert "unknown role 'NoSuchRole'" in refused.stderr.strip().splitlines()[-1]

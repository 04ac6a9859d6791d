"""The run command on a terminal: the confirmation prompt and the progress bar.

The real ``openstack`` on a real pty (pexpect), not in-process: what a
terminal shows is the point, and these are also the real executable's runs
that execute a stage end to end.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pexpect

import composable_upgrades as cu
from tests.helpers import OPENSTACK

MINI = Path(__file__).parent / "fixtures" / "mini-outputs.yaml"
#: Seconds the operator takes to answer the prompt.
PONDER = 2.0


def _prepared(tmp_path: Path) -> Path:
    fleet = cu.Fleet.at(tmp_path / "fleet")
    wd = tmp_path / "wd"
    result = cu.prepare(cu.StackOutputs.from_file(MINI), wd, fleet=fleet)
    fleet.create(result.prepared.hosts)
    return wd


def _spawn(*args: str, home: Path) -> pexpect.spawn:
    env = dict(os.environ, HOME=str(home), COLUMNS="120")
    return pexpect.spawn(str(OPENSTACK), ["overcloud", "upgrade", *args], env=env,
                         encoding="utf-8", timeout=120, dimensions=(40, 120))


def test_no_at_the_prompt_runs_nothing(tmp_path: Path) -> None:
    wd = _prepared(tmp_path)
    child = _spawn("run", "--stage", "controlplane", "--working-dir", str(wd), home=tmp_path)
    child.expect(r"Upgrade stage controlplane of stack overcloud \(2 hosts in 1 batch; "
                 r"steps 0, 1, 2, 3, 4, 5[^)]*\)\? \[y/N\]: ")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "not confirmed: nothing was run" in child.before
    assert not (wd / "composable-upgrade" / "runs").exists()


def test_yes_at_the_prompt_runs_with_a_progress_bar(tmp_path: Path) -> None:
    wd = _prepared(tmp_path)
    spawned = time.time()
    child = _spawn("run", "--stage", "controlplane", "--working-dir", str(wd), home=tmp_path)
    child.expect(r"\[y/N\]: ")
    time.sleep(PONDER)
    child.sendline("y")
    # tqdm's bar: stage, batch and step, percentage, host-steps done.
    child.expect(r"controlplane batch 1/1 step \d+: +\d+%\|")
    child.expect(r"host-steps")
    child.expect(pexpect.EOF)
    child.close()
    output = child.before
    assert child.exitstatus == 0, output
    assert "12/12 host-steps" in output          # 2 hosts x 6 steps
    assert "stage controlplane: successful" in output
    assert "| overcloud-controller-0 | ok" in output
    # The run records when the command was asked for: the process's start,
    # its wait at the prompt not counted (a forecast learns the start-up).
    run = cu.History(wd).run(cu.History(wd).runs()["run_id"].iloc[-1])
    # (/proc counts in hundredths of a second.)
    assert spawned + PONDER - 0.05 <= run.requested < run.started
    assert run.started - run.requested < 30.0

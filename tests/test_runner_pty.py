"""ansible-runner's pty read without pexpect's fixed sleeps (runner_pty)."""

from __future__ import annotations

import ansible_runner
import ansible_runner.runner
import pexpect

from composable_upgrades.run import runner_pty
from composable_upgrades.run.runner_pty import quick_pty


def test_swap_is_scoped_to_ansible_runner_and_to_the_block():
    real = ansible_runner.runner.pexpect
    with quick_pty() as swapped:
        assert swapped
        used = ansible_runner.runner.pexpect
        assert used is not real
        assert used.spawn is not pexpect.spawn
        assert issubclass(used.spawn, pexpect.spawn)
        # Everything else is pexpect's own, and pexpect itself is untouched.
        assert used.EOF is pexpect.EOF and used.TIMEOUT is pexpect.TIMEOUT
        with quick_pty():
            assert ansible_runner.runner.pexpect is used
        assert ansible_runner.runner.pexpect is used, "an inner block undid the outer one"
    assert ansible_runner.runner.pexpect is real


def test_quick_spawn_has_no_sleeps():
    with quick_pty():
        child = ansible_runner.runner.pexpect.spawn("true")
    try:
        assert child.delayafterread is None
        assert child.delayafterclose == 0
        assert child.ptyproc.delayafterclose == 0
    finally:
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0


def test_child_exiting_after_its_pty_closed_keeps_its_exit_status(tmp_path):
    # The close delay exists for a child still alive when its pty is closed.
    # ansible-runner closes only once the child is reaped, so a child that
    # closes its output and exits later still reports its own exit status
    # (a quick close that killed it would report a signal instead).
    script = "echo before-close; exec </dev/null >/dev/null 2>&1; sleep 0.5; exit 3"
    with quick_pty():
        out, err, rc = ansible_runner.run_command(
            executable_cmd="sh", cmdline_args=["-c", script],
            private_data_dir=str(tmp_path), quiet=True)
    # Under pexpect (ansible-runner's mode for a command other than its own
    # non-interactive ones) stderr comes back in stdout, and the error is "".
    assert err == ""
    assert rc == 3
    assert "before-close" in out


def test_unknown_ansible_runner_major_is_left_alone(monkeypatch):
    monkeypatch.setattr(runner_pty.metadata, "version", lambda name: "3.0.0")
    real = ansible_runner.runner.pexpect
    with quick_pty() as swapped:
        assert not swapped
        assert ansible_runner.runner.pexpect is real
    assert ansible_runner.runner.pexpect is real

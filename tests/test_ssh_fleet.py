"""The SSH test fleet (tests/sshfleet): real ansible over real SSH.

One sshd for the session (the ``ssh_fleet`` fixture) serves 60 loopback
addresses for ``tripleo-admin``. These tests check what the fleet transport
will rely on: ansible reaches each host on its own address as the SSH user
with the generated key, becomes root through sudo, 60 hosts at once are not
dropped, and a wrong key, an unknown user or an address with no sshd make
that host UNREACHABLE with a message that says why.

They fail (never skip) when sshd cannot run: ``make sshfleet`` installs it.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.sshfleet.fixture import ssh_fleet  # noqa: F401  (the fixture)
from tests.sshfleet.launcher import SSH_KEYGEN, SshFleetServer

ANSIBLE = Path(sys.executable).with_name("ansible")
#: The "hosts" run modules with the system Python, as an overcloud node does.
HOST_PYTHON = "/usr/bin/python3"


def _ansible_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    config = tmp_path / "ansible.cfg"  # none of the machine's or the user's
    config.write_text("[defaults]\n")
    env.update({
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        # Control sockets of this test only (not ~/.ansible/cp).
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
        "ANSIBLE_TIMEOUT": "20",
        **extra})
    return env


def run_ansible(tmp_path: Path, inventory: Mapping[str, Any],
                module: str, args: str, *options: str,
                env: Mapping[str, str] | None = None, tag: str = "run"
                ) -> tuple[subprocess.CompletedProcess[str],
                           dict[str, dict[str, Any]]]:
    """``ansible all -m module -a args``; the process and each host's result.

    The results are the ``--tree`` files, one JSON document a host. Runs in
    the same ``tmp_path`` share their SSH control sockets (as the plays of
    one upgrade would); ``tag`` keeps their inventories and results apart.
    """
    inv = tmp_path / f"{tag}-inventory.yml"
    inv.write_text(json.dumps(inventory, indent=1))  # JSON is YAML
    tree = tmp_path / f"{tag}-tree"
    done = subprocess.run(
        [str(ANSIBLE), "all", "-i", str(inv), "-m", module, "-a", args,
         "--tree", str(tree), "-o", *options],
        env=_ansible_env(tmp_path, **(env or {})), cwd=tmp_path,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    results = {path.name: json.loads(path.read_text())
               for path in tree.iterdir()} if tree.is_dir() else {}
    return done, results


def hosts_of(fleet: SshFleetServer, count: int,
             prefix: str = "overcloud-node") -> dict[str, str]:
    """``count`` inventory names, each on its own fleet address."""
    assert count <= len(fleet.addresses)
    return {f"{prefix}-{i}": fleet.addresses[i] for i in range(count)}


def accepted_logins(fleet: SshFleetServer) -> int:
    """How many key logins sshd has accepted so far."""
    return fleet.log_file.read_text(errors="replace").count(
        "Accepted publickey for ")


def output(done: subprocess.CompletedProcess[str]) -> str:
    return f"rc={done.returncode}\n{done.stdout}\n{done.stderr}"


def test_ssh_fleet_ansible_logs_in_as_ssh_user_and_becomes_root(
        ssh_fleet: SshFleetServer, tmp_path: Path) -> None:
    hosts = {"controller-0": ssh_fleet.addresses[0],
             "controller-1": ssh_fleet.addresses[1],
             "compute-0": ssh_fleet.addresses[2]}
    inventory = ssh_fleet.inventory(hosts,
                                    ansible_python_interpreter=HOST_PYTHON)

    done, results = run_ansible(tmp_path, inventory, "shell",
                                "whoami; echo $SSH_CONNECTION")
    assert done.returncode == 0, output(done)
    assert sorted(results) == sorted(hosts)
    for name, address in hosts.items():
        whoami, connection = results[name]["stdout"].splitlines()
        assert whoami == "tripleo-admin", (name, results[name])
        # client-ip client-port server-ip server-port: each host on its own
        # loopback address, on the fleet's port.
        assert connection.split()[2:] == [address, str(ssh_fleet.port)]

    done, results = run_ansible(tmp_path, inventory, "command", "id -u",
                                "--become", tag="become")
    assert done.returncode == 0, output(done)
    assert {name: r["stdout"] for name, r in results.items()} == {
        name: "0" for name in hosts}


def test_ssh_fleet_sixty_hosts_at_once(ssh_fleet: SshFleetServer,
                                       tmp_path: Path) -> None:
    """60 hosts, 60 forks, 60 simultaneous SSH connections, none dropped."""
    hosts = hosts_of(ssh_fleet, 60)
    inventory = ssh_fleet.inventory(hosts,
                                    ansible_python_interpreter=HOST_PYTHON)
    # raw: no module transfer, so the connections overlap as much as they
    # can; sleep keeps every session open until all 60 are up.
    done, results = run_ansible(tmp_path, inventory, "raw",
                                "sleep 1; echo $SSH_CONNECTION",
                                "--forks", "60")
    assert done.returncode == 0, output(done)
    assert sorted(results) == sorted(hosts)
    for name, address in hosts.items():
        assert results[name].get("rc") == 0, (name, results[name])
        assert results[name]["stdout"].split()[2] == address


def test_ssh_fleet_sixty_connections_to_one_address(
        ssh_fleet: SshFleetServer, tmp_path: Path) -> None:
    """MaxStartups: 60 ssh clients connecting to one address together."""
    address = ssh_fleet.addresses[0]
    before = accepted_logins(ssh_fleet)

    def one(index: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ssh_fleet.ssh_command(address, f"sleep 1; echo {index}"),
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60)

    with concurrent.futures.ThreadPoolExecutor(60) as pool:
        done = list(pool.map(one, range(60)))
    failed = [(i, d.returncode, d.stderr) for i, d in enumerate(done)
              if d.returncode != 0 or d.stdout.strip() != str(i)]
    assert not failed
    assert accepted_logins(ssh_fleet) - before == 60


def test_ssh_fleet_sixty_sessions_on_one_connection(
        ssh_fleet: SshFleetServer, tmp_path: Path) -> None:
    """MaxSessions: 60 sessions multiplexed on one (master) connection."""
    address = ssh_fleet.addresses[1]
    socket_path = tmp_path / "master.sock"
    base = ssh_fleet.ssh_command(address)
    before = accepted_logins(ssh_fleet)
    master = [*base[:-1], "-o", "ControlMaster=yes",
              "-o", f"ControlPath={socket_path}", "-N", base[-1]]
    process = subprocess.Popen(master, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not socket_path.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no control master"
            time.sleep(0.05)

        def one(index: int) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*base[:-1], "-o", "ControlMaster=no",
                 "-o", f"ControlPath={socket_path}", base[-1],
                 f"sleep 1; echo {index}"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=60)

        with concurrent.futures.ThreadPoolExecutor(60) as pool:
            done = list(pool.map(one, range(60)))
    finally:
        process.terminate()
        process.wait(10)
    failed = [(i, d.returncode, d.stderr) for i, d in enumerate(done)
              if d.returncode != 0 or d.stdout.strip() != str(i)]
    assert not failed
    # All through the master's one connection, none on a fallback login.
    assert accepted_logins(ssh_fleet) - before == 1


def _unreachable(results: dict[str, dict[str, Any]],
                 done: subprocess.CompletedProcess[str], name: str) -> str:
    """The message of ``name``'s UNREACHABLE result, checked as such."""
    assert done.returncode != 0, output(done)
    result = results[name]
    assert result.get("unreachable") is True, result
    assert re.search(rf"^{re.escape(name)} \| UNREACHABLE!", done.stdout,
                     re.MULTILINE), output(done)
    return str(result["msg"])


def test_ssh_fleet_wrong_key_is_unreachable(ssh_fleet: SshFleetServer,
                                            tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_key"
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f",
                    str(wrong)], check=True)
    address = ssh_fleet.addresses[0]
    inventory = ssh_fleet.inventory({"controller-0": address},
                                    private_key=wrong,
                                    ansible_python_interpreter=HOST_PYTHON)
    done, results = run_ansible(tmp_path, inventory, "command", "whoami")
    message = _unreachable(results, done, "controller-0")
    assert f"tripleo-admin@{address}: Permission denied (publickey)" \
        in message


def test_ssh_fleet_unknown_user_is_unreachable(ssh_fleet: SshFleetServer,
                                               tmp_path: Path) -> None:
    address = ssh_fleet.addresses[2]
    inventory = ssh_fleet.inventory({"compute-0": address},
                                    user="no-such-user",
                                    ansible_python_interpreter=HOST_PYTHON)
    done, results = run_ansible(tmp_path, inventory, "command", "whoami")
    message = _unreachable(results, done, "compute-0")
    assert f"no-such-user@{address}: Permission denied (publickey)" \
        in message
    assert "Invalid user no-such-user" in ssh_fleet.log_file.read_text()


def test_ssh_fleet_address_without_sshd_is_refused(ssh_fleet: SshFleetServer,
                                                   tmp_path: Path) -> None:
    down = ssh_fleet.unused_address()
    assert down not in ssh_fleet.addresses
    hosts = {"controller-0": ssh_fleet.addresses[0], "controller-9": down}
    inventory = ssh_fleet.inventory(hosts,
                                    ansible_python_interpreter=HOST_PYTHON)
    done, results = run_ansible(tmp_path, inventory, "command", "whoami")
    message = _unreachable(results, done, "controller-9")
    assert "Connection refused" in message
    assert down in message
    # The other host is not affected.
    assert results["controller-0"]["stdout"] == "tripleo-admin"


def test_ssh_fleet_second_server_for_another_user(
        ssh_fleet: SshFleetServer, tmp_path: Path) -> None:
    """A second server, same addresses, another port, user and key."""
    addresses = ssh_fleet.addresses[:2]
    with SshFleetServer(tmp_path / "other", addresses,
                        user="sshfleet-other") as other:
        assert other.port != ssh_fleet.port
        for address in addresses:
            done = subprocess.run(
                other.ssh_command(address, "whoami; sudo -n id -u"),
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=30)
            assert done.returncode == 0, done.stderr
            assert done.stdout.split() == ["sshfleet-other", "0"]
        # Each server accepts its own key only.
        done = subprocess.run(
            other.ssh_command(addresses[0], "true", user="tripleo-admin",
                              private_key=ssh_fleet.private_key),
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=30)
        assert done.returncode == 255
        assert "Permission denied" in done.stderr
        authorized = other.authorized_keys
        assert authorized is not None and authorized.exists()
    # Stopped: its port refuses, its key is gone; the session's still serves.
    assert not authorized.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((addresses[0], other.port), timeout=5)
    done = subprocess.run(ssh_fleet.ssh_command(addresses[0], "whoami"),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.strip() == "tripleo-admin", done.stderr

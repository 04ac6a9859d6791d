"""A real OpenSSH server on loopback addresses, for a fleet of SSH "hosts".

:class:`SshFleetServer` makes every address of a fleet (``127.0.0.2``,
``127.0.0.3``, ...: on Linux the whole of 127.0.0.0/8 reaches the loopback
interface with no configuration) a host that answers SSH, as an overcloud
node does for TripleO:

* an ed25519 host key and an ed25519 client key pair, made with
  ``ssh-keygen`` in ``base_dir``;
* the user (``tripleo-admin`` by default) created if missing (``useradd -m``,
  ``/bin/bash``), with the client's public key in a file of its own in
  ``~user/.ssh`` (removed on stop) and password-less sudo from a drop-in in
  ``/etc/sudoers.d`` (checked with ``visudo -cf``; kept, like the user, since
  other servers may share them);
* ``/usr/sbin/sshd -D`` with a config written in ``base_dir``: key
  authentication only, no root login, ``MaxStartups``/``MaxSessions`` raised
  so that 50+ concurrent connections are not dropped, listening on one port
  (free on 127.0.0.1 when picked) on every address and on nothing else.

sshd listens on at most 16 sockets, so a fleet of more addresses is served
by one sshd per 16 addresses, all with the same config and port. On stop the
listeners and the connections they accepted are terminated. The server needs
root (to create the user, write the sudoers drop-in and run sshd), and the
programs ``install.sh`` installs; without them :meth:`SshFleetServer.start`
raises :class:`SshFleetError` with a message that says what to do.

Use it as a context manager::

    with SshFleetServer(tmp_path, ["127.0.0.2", "127.0.0.3"]) as fleet:
        fleet.ansible_vars("127.0.0.2")   # ansible_host, _port, _user, ...
        subprocess.run(fleet.ssh_command("127.0.0.2", "whoami"))
"""

from __future__ import annotations

import ctypes
import fcntl
import ipaddress
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tests.server_log import log_tail

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
INSTALL = HERE / "install.sh"

SSHD = "/usr/sbin/sshd"
SSH = "/usr/bin/ssh"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
SUDO = "/usr/bin/sudo"
VISUDO = "/usr/sbin/visudo"
USERADD = "/usr/sbin/useradd"
USERMOD = "/usr/sbin/usermod"
#: sshd's privilege separation directory (Debian's build).
PRIVSEP_DIR = Path("/run/sshd")
SUDOERS_DIR = Path("/etc/sudoers.d")
#: Serialises user/sudoers set-up between servers started at the same time.
LOCK_FILE = Path("/run/lock/sshfleet.lock")
#: sshd's compiled-in limit on listening sockets (MAX_LISTEN_SOCKS).
MAX_LISTEN_PER_SSHD = 16

#: ssh options that keep a client away from known_hosts and from keys
#: other than the one given, and its errors free of "Permanently added"
#: warnings.
SSH_COMMON_OPTIONS = ("-o", "StrictHostKeyChecking=no",
                      "-o", "UserKnownHostsFile=/dev/null",
                      "-o", "IdentitiesOnly=yes",
                      "-o", "LogLevel=ERROR")

_CONFIG = """\
# sshd for a test SSH fleet ({base_dir}); written by tests/sshfleet.
{listen}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile .ssh/{authorized_keys}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitRootLogin no
PermitEmptyPasswords no
UsePAM no
StrictModes yes
MaxStartups 200:30:400
MaxSessions 200
MaxAuthTries 6
LoginGraceTime 30
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PermitTunnel no
PermitUserEnvironment no
Subsystem sftp internal-sftp
LogLevel VERBOSE
# Not the post-quantum default: its key generation costs every client
# ~80 ms of CPU, which 60 clients at once on a small CI machine feel.
KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org
"""


class SshFleetError(RuntimeError):
    """The SSH fleet server could not be set up or did not start."""


def loopback_addresses(count: int, first: str = "127.0.0.2") -> list[str]:
    """``count`` consecutive loopback addresses from ``first``."""
    start = ipaddress.IPv4Address(first)
    addresses = [str(start + index) for index in range(count)]
    for address in addresses:
        _check_loopback(address)
    return addresses


def missing_programs() -> list[str]:
    """The programs the server needs that are not installed."""
    return [program for program in (SSHD, SSH, SSH_KEYGEN, SUDO, VISUDO,
                                    USERADD, USERMOD)
            if not os.access(program, os.X_OK)]


def _check_loopback(address: str) -> None:
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError as exc:
        raise SshFleetError(f"not an IPv4 address: {address!r}") from exc
    if not ip.is_loopback:
        raise SshFleetError(f"{address} is outside 127.0.0.0/8; the SSH "
                            "fleet only listens on loopback addresses")


def _run(argv: Sequence[str], what: str) -> str:
    result = subprocess.run(list(argv), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise SshFleetError(f"{what} failed ({shlex.join(argv)}): {detail}")
    return result.stdout


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (sshd's per-connection ones)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class SshFleetServer:
    """sshd on ``addresses`` (loopback), one port, for ``user``.

    ``port`` defaults to one that is free on 127.0.0.1, tried on every
    address (another is picked if some address has it taken). Several
    servers may run at once, for the same or different users; each has its
    own keys, port and authorized-keys file.
    """

    def __init__(self, base_dir: str | os.PathLike[str],
                 addresses: Iterable[str], user: str = "tripleo-admin", *,
                 port: int | None = None) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.addresses: tuple[str, ...] = tuple(addresses)
        if not self.addresses:
            raise SshFleetError("an SSH fleet needs at least one address")
        if len(set(self.addresses)) != len(self.addresses):
            raise SshFleetError(f"addresses repeat: {self.addresses}")
        for address in self.addresses:
            _check_loopback(address)
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]*", user):
            raise SshFleetError(f"not a user name useradd accepts: {user!r}")
        self.user = user
        self._requested_port = port
        self.port: int | None = None
        self.host_key = self.base_dir / "ssh_host_ed25519_key"
        self.private_key = self.base_dir / "id_ed25519"
        self.public_key = self.base_dir / "id_ed25519.pub"
        self.log_file = self.base_dir / "sshd.log"
        self.token = secrets.token_hex(4)
        self.authorized_keys_name = f"authorized_keys.sshfleet-{self.token}"
        self.authorized_keys: Path | None = None
        self.sudoers_file = SUDOERS_DIR / (
            "sshfleet-" + re.sub(r"[^A-Za-z0-9_-]", "_", user))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.start_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Set up keys, user and sudo; start sshd; wait until it answers."""
        missing = missing_programs()
        if missing:
            raise SshFleetError(
                f"missing {', '.join(missing)}; install them as root: "
                f"bash {INSTALL.relative_to(REPO)}")
        if os.geteuid() != 0:
            raise SshFleetError("the SSH fleet server must run as root (it "
                                "creates a user, a sudoers drop-in and runs "
                                "sshd)")
        started = time.monotonic()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._make_keys()
        with self._lock():
            home = self._ensure_user()
            self._install_authorized_key(home)
            self._install_sudoers()
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(PRIVSEP_DIR, 0o755)
        try:
            self._start_sshd(started + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every sshd and the connections it accepted; drop the key."""
        self._stop_sshd(timeout)
        if self.authorized_keys is not None:
            self.authorized_keys.unlink(missing_ok=True)
            self.authorized_keys = None

    def _stop_sshd(self, timeout: float = 10.0) -> None:
        processes, self.processes = self.processes, []
        for process in processes:
            if process.poll() is not None:
                continue
            sessions = child_pids(process.pid)
            process.terminate()
            for pid in sessions:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def __enter__(self) -> SshFleetServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- set-up ------------------------------------------------------------

    def _lock(self) -> _FileLock:
        return _FileLock(LOCK_FILE)

    def _make_keys(self) -> None:
        for key, comment in ((self.host_key, "sshfleet host key"),
                             (self.private_key, f"sshfleet {self.user}")):
            if not key.exists():
                _run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C",
                      comment, "-f", str(key)], "ssh-keygen")
            os.chmod(key, 0o600)

    def _ensure_user(self) -> Path:
        """Create the user if missing; its home directory."""
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            # '*' rather than useradd's '!': with UsePAM no, sshd refuses
            # any login to an account whose password starts with '!'.
            _run([USERADD, "-m", "-s", "/bin/bash", "-p", "*", self.user],
                 f"creating user {self.user}")
            entry = pwd.getpwnam(self.user)
        else:
            self._unlock_without_password()
        home = Path(entry.pw_dir)
        if not home.is_dir():
            raise SshFleetError(f"user {self.user} has no home directory "
                                f"({home})")
        return home

    def _unlock_without_password(self) -> None:
        """Turn a bare '!' (locked, no password) into '*' (no password)."""
        try:
            for line in Path("/etc/shadow").read_text().splitlines():
                name, _, rest = line.partition(":")
                if name == self.user:
                    if rest.split(":", 1)[0] in ("!", "!*", "!!"):
                        _run([USERMOD, "-p", "*", self.user],
                             f"unlocking user {self.user} for key login")
                    return
        except OSError:
            return

    def _install_authorized_key(self, home: Path) -> None:
        entry = pwd.getpwnam(self.user)
        ssh_dir = home / ".ssh"
        if not ssh_dir.is_dir():
            ssh_dir.mkdir(mode=0o700)
            os.chown(ssh_dir, entry.pw_uid, entry.pw_gid)
        os.chmod(ssh_dir, 0o700)
        target = ssh_dir / self.authorized_keys_name
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(self.public_key.read_text())
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
        self.authorized_keys = target

    def _install_sudoers(self) -> None:
        SUDOERS_DIR.mkdir(mode=0o755, exist_ok=True)
        # No '.' in the name: sudo skips such files in an @includedir.
        content = f"{self.user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
        if (self.sudoers_file.exists()
                and self.sudoers_file.read_text() == content):
            return
        tmp = self.base_dir / "sudoers"
        tmp.write_text(content)
        os.chmod(tmp, 0o440)
        _run([VISUDO, "-cf", str(tmp)], "checking the sudoers drop-in")
        staged = SUDOERS_DIR / f".{self.sudoers_file.name}.tmp"
        shutil.copyfile(tmp, staged)
        os.chmod(staged, 0o440)
        os.replace(staged, self.sudoers_file)

    def _shards(self) -> list[tuple[str, ...]]:
        n = MAX_LISTEN_PER_SSHD
        return [self.addresses[i:i + n]
                for i in range(0, len(self.addresses), n)]

    def _write_config(self, index: int, shard: Sequence[str],
                      port: int) -> Path:
        config = self.base_dir / f"sshd_config.{index}"
        config.write_text(_CONFIG.format(
            base_dir=self.base_dir,
            listen="\n".join(f"ListenAddress {a}:{port}" for a in shard),
            host_key=self.host_key,
            pid_file=self.base_dir / f"sshd.{index}.pid",
            authorized_keys=self.authorized_keys_name))
        # OpenSSH 9.8+ penalises addresses with failed or probing
        # connections, all of which come from 127.0.0.1 here.
        dump = _run([SSHD, "-T", "-f", str(config)], "sshd -T")
        if "persourcepenalties" in dump.lower():
            with open(config, "a", encoding="ascii") as handle:
                handle.write("PerSourcePenalties no\n")
        _run([SSHD, "-t", "-f", str(config)], "checking sshd_config")
        return config

    def _start_sshd(self, deadline: float, attempts: int = 5) -> None:
        for attempt in range(attempts):
            port = self._requested_port or _free_port()
            try:
                self._start_shards(port, deadline)
            except _PortTaken as exc:
                self._stop_sshd()
                if self._requested_port or attempt == attempts - 1:
                    raise SshFleetError(str(exc)) from None
                continue
            self.port = port
            return

    def _start_shards(self, port: int, deadline: float) -> None:
        with open(self.log_file, "ab") as log:
            for index, shard in enumerate(self._shards()):
                config = self._write_config(index, shard, port)
                self.processes.append(subprocess.Popen(
                    [SSHD, "-D", "-f", str(config), "-E", str(self.log_file)],
                    stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, cwd=self.base_dir,
                    start_new_session=True, preexec_fn=_die_with_parent))
        pending = list(self.addresses)
        while pending:
            for process in self.processes:
                if process.poll() is not None:
                    tail = self.log_tail()
                    if "Address already in use" in tail:
                        raise _PortTaken(f"port {port} is taken on some "
                                         f"address: {tail}")
                    raise SshFleetError(self._failure(
                        f"exited with status {process.returncode}"))
            pending = [a for a in pending if not _answers_ssh(a, port)]
            if pending and time.monotonic() > deadline:
                raise SshFleetError(self._failure(
                    f"not answering on {', '.join(pending)} port {port}"))
            if pending:
                time.sleep(0.05)

    def _failure(self, what: str) -> str:
        return (f"test sshd {what}; log {self.log_file}, last lines:\n"
                f"{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of sshd's log."""
        return log_tail(Path(self.log_file), lines)

    # -- for clients -------------------------------------------------------

    def _port(self) -> int:
        if self.port is None or not self.processes:
            raise SshFleetError("the SSH fleet server is not running")
        return self.port

    def unused_address(self) -> str:
        """A loopback address nothing listens on at :attr:`port`.

        For an "unreachable host": a connection to it is refused.
        """
        port = self._port()
        candidate = ipaddress.IPv4Address(max(
            ipaddress.IPv4Address(a) for a in self.addresses)) + 1
        while candidate in ipaddress.IPv4Network("127.0.0.0/8"):
            address = str(candidate)
            if address not in self.addresses and _refused(address, port):
                return address
            candidate += 1
        raise SshFleetError("no free loopback address")

    @property
    def ssh_common_args(self) -> str:
        """``ansible_ssh_common_args``: see :data:`SSH_COMMON_OPTIONS`."""
        return " ".join(SSH_COMMON_OPTIONS)

    def ansible_vars(self, address: str | None = None, *,
                     user: str | None = None,
                     private_key: str | os.PathLike[str] | None = None
                     ) -> dict[str, str | int]:
        """The inventory vars that reach ``address`` (default: the first)."""
        return {
            "ansible_host": address or self.addresses[0],
            "ansible_port": self._port(),
            "ansible_user": user or self.user,
            "ansible_ssh_private_key_file": str(private_key
                                                or self.private_key),
            "ansible_ssh_common_args": self.ssh_common_args,
        }

    def inventory(self, hosts: Mapping[str, str], group: str = "fleet", *,
                  user: str | None = None,
                  private_key: str | os.PathLike[str] | None = None,
                  **group_vars: object) -> dict[str, object]:
        """A YAML/JSON inventory: ``hosts`` (name -> address) in ``group``.

        Each host gets :meth:`ansible_vars` for its address (as ``user``
        with ``private_key`` when given); ``group_vars`` are the group's.
        """
        return {"all": {"children": {group: {
            "hosts": {name: self.ansible_vars(address, user=user,
                                              private_key=private_key)
                      for name, address in hosts.items()},
            "vars": dict(group_vars)}}}}

    def ssh_command(self, address: str | None = None, *command: str,
                    user: str | None = None,
                    private_key: str | os.PathLike[str] | None = None
                    ) -> list[str]:
        """An ``ssh`` argv to ``user@address`` running ``command``.

        Reads no ssh config, no known_hosts and offers only the key.
        """
        return [SSH, "-F", "/dev/null", *SSH_COMMON_OPTIONS,
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-i", str(private_key or self.private_key),
                "-p", str(self._port()),
                f"{user or self.user}@{address or self.addresses[0]}",
                *command]


class _PortTaken(Exception):
    pass


class _FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> _FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _answers_ssh(address: str, port: int) -> bool:
    """Whether an SSH server greets us on ``address:port``."""
    try:
        with socket.create_connection((address, port), timeout=1) as sock:
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _refused(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


__all__ = ["SshFleetError", "SshFleetServer", "loopback_addresses",
           "missing_programs"]

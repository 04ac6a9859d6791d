"""A real OpenStack Heat for tests, on 127.0.0.1, with no keystone.

Heat runs from its own virtualenv (``install.sh``; its pins clash with the
project's), started by ``launcher.py`` with an SQLite database and its log in
a temporary directory, and the ``noauth`` API pipeline: any token is
accepted and the project is always ``admin``.

Use the session-scoped :func:`heat_server` fixture (import it into
``tests/conftest.py``) or :class:`HeatServer` directly.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.server_log import log_tail

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_VENV = REPO / ".venv-heat"
INSTALL = HERE / "install.sh"
LAUNCHER = HERE / "launcher.py"

# Real THT outputs are ~1 MB; Heat's defaults (1 MiB body, 512 KiB
# template) reject them.
_MAX_BODY = 64 * 1024 * 1024

_CONF = """\
[DEFAULT]
transport_url = fake://
host = heat-test
auth_encryption_key = {auth_key}
deferred_auth_method = password
keystone_backend = heat.engine.clients.os.keystone.fake_keystoneclient.FakeKeystoneClient
max_json_body_size = {max_body}
max_template_size = {max_body}
num_engine_workers = 1
periodic_interval = 3600
debug = false
log_file = {log_file}
use_stderr = false

[database]
connection = sqlite:///{db}
sqlite_synchronous = false

[paste_deploy]
flavor = noauth
api_paste_config = {paste}

[oslo_policy]
enforce_new_defaults = false
"""


class HeatServerError(RuntimeError):
    """The test Heat did not start or did not do what was asked."""


def heat_venv_path() -> Path:
    """The Heat virtualenv: ``$HEAT_VENV`` or ``<repo>/.venv-heat``."""
    return Path(os.environ.get("HEAT_VENV") or DEFAULT_VENV)


def missing_venv_message(venv: Path) -> str | None:
    """Why ``venv`` cannot run Heat, or None when it can."""
    python = venv / "bin" / "python"
    paste = venv / "etc" / "heat" / "api-paste.ini"
    if python.exists() and paste.exists():
        return None
    return (f"no Heat virtualenv at {venv} (set HEAT_VENV or install it: "
            f"{INSTALL.relative_to(REPO)} {venv})")


class HeatServer:
    """One Heat engine+API process on 127.0.0.1, on a free port."""

    def __init__(self, venv: str | os.PathLike[str],
                 workdir: str | os.PathLike[str] | None = None) -> None:
        self.venv = Path(venv)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="heat-test-"))
        self.log_file = self.workdir / "heat.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.start_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start Heat and wait until its API answers; raise with the log."""
        problem = missing_venv_message(self.venv)
        if problem:
            raise HeatServerError(problem)
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "heat.conf"
        port_file = self.workdir / "port"
        port_file.unlink(missing_ok=True)
        conf.write_text(_CONF.format(
            auth_key=secrets.token_hex(16), max_body=_MAX_BODY,
            log_file=self.log_file, db=self.workdir / "heat.sqlite",
            paste=self.venv / "etc" / "heat" / "api-paste.ini"))
        started = time.monotonic()
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.venv / "bin" / "python"), "-W", "ignore",
                 str(LAUNCHER), "--config-file", str(conf),
                 "--port-file", str(port_file), "--host", "127.0.0.1",
                 "--parent-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True)
        try:
            self.port = self._wait_for_port(port_file, started + timeout)
            self._wait_for_api(started + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def _wait_for_port(self, port_file: Path, deadline: float) -> int:
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                return int(port_file.read_text())
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
        raise HeatServerError(self._failure("did not start in time"))

    def _wait_for_api(self, deadline: float) -> None:
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.request("GET", "/stacks")
                return
            except (OSError, HeatServerError) as exc:
                last = str(exc)
                time.sleep(0.1)
        raise HeatServerError(self._failure(f"API not ready in time: {last}"))

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise HeatServerError(self._failure(
                f"exited with status {self.process.returncode}"))

    def _failure(self, what: str) -> str:
        return (f"test Heat server {what}; log {self.log_file}, last lines:\n"
                f"{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log."""
        return log_tail(Path(self.log_file), lines)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server by its pid; remove its temp dir if it made it."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout)
        if self._own_workdir and not os.environ.get("HEAT_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> HeatServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- API ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """The orchestration endpoint, ``http://127.0.0.1:PORT/v1/admin``."""
        if self.port is None:
            raise HeatServerError("test Heat server is not running")
        return f"http://127.0.0.1:{self.port}/v1/admin"

    def request(self, method: str, path: str, body: Any = None,
                timeout: float = 30.0) -> Any:
        """One API call; returns the decoded JSON body (None if empty)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Content-Type": "application/json",
                     "Accept": "application/json",
                     "X-Auth-Token": "test"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise HeatServerError(
                f"{method} {path}: HTTP {exc.code}: {detail}") from exc
        return json.loads(raw) if raw.strip() else None

    def create_stack(self, name: str, outputs: Mapping[str, Any], *,
                     fail: bool = False, create_seconds: int = 0,
                     wait: bool = True, timeout: float = 60.0) -> str:
        """Create a stack whose outputs are ``outputs``, unchanged; its id.

        ``fail`` makes the create fail (a failing test resource);
        ``create_seconds`` makes it take that long. With ``wait`` (the
        default) it returns once the create has finished, either way.
        """
        template, parameters = stack_template(
            outputs, fail=fail, create_seconds=create_seconds)
        body = self.request("POST", "/stacks", {
            "stack_name": name, "template": template,
            "parameters": parameters, "timeout_mins": 10,
            "disable_rollback": True})
        stack_id = str(body["stack"]["id"])
        if wait:
            self.wait_stack(name, stack_id, timeout=timeout)
        return stack_id

    def stack_status(self, name: str, stack_id: str) -> str:
        """The stack's current ``stack_status``."""
        path = f"/stacks/{urllib.parse.quote(name)}/{stack_id}"
        return str(self.request("GET", path)["stack"]["stack_status"])

    def wait_stack(self, name: str, stack_id: str,
                   timeout: float = 60.0) -> str:
        """Wait until the stack's action is no longer in progress."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.stack_status(name, stack_id)
            if not status.endswith("_IN_PROGRESS"):
                return status
            if time.monotonic() > deadline:
                raise HeatServerError(f"stack {name} still {status}")
            time.sleep(0.05)


def stack_template(outputs: Mapping[str, Any], *, fail: bool = False,
                   create_seconds: int = 0
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A HOT template and parameters whose outputs are ``outputs``.

    Literal data in ``outputs`` would be parsed as HOT functions (a one-key
    dict like ``{"get_attr": ...}`` breaks it), so each value travels in a
    ``json`` parameter, wrapped so that scalars are valid too, and the
    output reads it back with ``get_param``, which returns it unchanged.
    """
    parameters: dict[str, Any] = {}
    template: dict[str, Any] = {
        "heat_template_version": "2021-04-16",
        "parameters": {}, "resources": {}, "outputs": {}}
    for index, (key, value) in enumerate(outputs.items()):
        param = f"output{index}"
        template["parameters"][param] = {"type": "json"}
        parameters[param] = {"value": value}
        template["outputs"][key] = {"value": {"get_param": [param, "value"]}}
    if fail or create_seconds:
        properties: dict[str, Any] = {"fail": fail}
        if create_seconds:
            properties["action_wait_secs"] = {"create": create_seconds}
        template["resources"]["probe"] = {
            "type": "OS::Heat::TestResource", "properties": properties}
    return template, parameters


def heat_venv_or_fail() -> Path:
    """The Heat virtualenv; fails the test (not skips) when it is missing."""
    venv = heat_venv_path()
    problem = missing_venv_message(venv)
    if problem:
        pytest.fail(problem, pytrace=False)
    return venv


@pytest.fixture(scope="session")
def heat_server(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[HeatServer]:
    """One running test Heat for the whole session."""
    server = HeatServer(heat_venv_or_fail(), tmp_path_factory.mktemp("heat"))
    try:
        server.start()
    except HeatServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


__all__ = ["HeatServer", "HeatServerError", "heat_server", "heat_venv_path",
           "stack_template"]

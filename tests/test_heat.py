"""composable_upgrades.sources.heat against a real Heat (tests.heatserver).

Everything Heat itself can show runs against the session's real server. Only
what a healthy Heat never does (401/403, 5xx, a hang, an unresolvable
output) is played by a tiny HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from composable_upgrades.sources import heat
from composable_upgrades.errors import HeatError, OutputsError
from composable_upgrades.sources.outputs import StackOutputs
from tests.heatserver import HeatServer

FIXTURE = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"


# -- fixtures -----------------------------------------------------------------

@pytest.fixture(scope="module")
def file_outputs() -> StackOutputs:
    """The THT 18 outputs, as loaded from the file."""
    return StackOutputs.from_file(FIXTURE)


@pytest.fixture(scope="module")
def tht_stack(heat_server: HeatServer, file_outputs: StackOutputs
              ) -> tuple[str, str]:
    """A stack in the real Heat whose outputs are the file's: (name, id)."""
    name = "overcloud-tht18"
    return name, heat_server.create_stack(name, dict(file_outputs))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff delays fetch_outputs waits, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(heat, "_sleep", recorded.append)
    return recorded


Reply = tuple[int, Any]  # status and JSON body, or "hang"


class _FakeHeat:
    """Answers GETs from a script of replies; the last one repeats."""

    def __init__(self, replies: list[Reply | str]) -> None:
        self.replies = replies
        self.paths: list[str] = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                fake.paths.append(self.path)
                reply = fake.replies[min(len(fake.paths),
                                         len(fake.replies)) - 1]
                if reply == "hang":
                    fake.release.wait(10)
                    return
                status, body = reply
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/admin"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_heat() -> Iterator[Callable[..., _FakeHeat]]:
    """Start a scripted HTTP server on 127.0.0.1; closed after the test."""
    started: list[_FakeHeat] = []

    def start(*replies: Reply | str) -> _FakeHeat:
        fake = _FakeHeat(list(replies))
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.close()


def _stack_body(outputs: dict[str, Any], status: str = "CREATE_COMPLETE",
                errors: dict[str, str] | None = None) -> dict[str, Any]:
    items = []
    for key, value in outputs.items():
        item = {"output_key": key, "output_value": value}
        if errors and key in errors:
            item["output_error"] = errors[key]
        items.append(item)
    return {"stack": {"stack_name": "overcloud", "id": "0" * 8,
                      "stack_status": status, "outputs": items}}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- real Heat: outputs -------------------------------------------------------

def test_outputs_from_heat_equal_the_file(
        heat_server: HeatServer, tht_stack: tuple[str, str],
        file_outputs: StackOutputs) -> None:
    name, _ = tht_stack
    fetched = StackOutputs.from_heat(name, heat_url=heat_server.url)
    assert sorted(fetched) == sorted(file_outputs)
    for key in file_outputs:
        assert fetched[key] == file_outputs[key], key
    assert fetched.stack == name
    assert fetched.status == "CREATE_COMPLETE"
    assert name in fetched.source and heat_server.url in fetched.source


def test_from_heat_delegates(heat_server: HeatServer,
                             tht_stack: tuple[str, str]) -> None:
    name, _ = tht_stack
    fetched = StackOutputs.from_heat(name, heat_url=heat_server.url)
    assert "RoleData" in fetched and fetched.stack == name


def test_stack_found_by_id(heat_server: HeatServer,
                           tht_stack: tuple[str, str]) -> None:
    name, stack_id = tht_stack
    fetched = StackOutputs.from_heat(stack_id, heat_url=heat_server.url)
    assert fetched.stack == name and "RoleData" in fetched


def test_session_handed_in(heat_server: HeatServer,
                           tht_stack: tuple[str, str]) -> None:
    from keystoneauth1 import session, token_endpoint

    sess = session.Session(auth=token_endpoint.Token(heat_server.url, "x"))
    fetched = StackOutputs.from_heat(tht_stack[0], session=sess)
    assert "RoleData" in fetched


def test_cloud_from_clouds_yaml(heat_server: HeatServer,
                                tht_stack: tuple[str, str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"heat-test": {
        "auth_type": "admin_token",
        "auth": {"endpoint": heat_server.url, "token": "x"}}}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    fetched = StackOutputs.from_heat(tht_stack[0], cloud="heat-test")
    assert "RoleData" in fetched
    with pytest.raises(HeatError, match="no-such-cloud"):
        StackOutputs.from_heat(tht_stack[0], cloud="no-such-cloud")


# -- real Heat: errors --------------------------------------------------------

def test_heat_unreachable_names_the_url(sleeps: list[float]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1/admin"
    with pytest.raises(HeatError) as info:
        StackOutputs.from_heat("overcloud", heat_url=url, retries=2)
    message = str(info.value)
    assert url in message and "connection refused" in message
    assert "after 3 attempts" in message and "\n" not in message
    assert sleeps == [0.5, 1.0]


def test_missing_stack_names_it(heat_server: HeatServer) -> None:
    with pytest.raises(HeatError, match="stack 'no-such-stack' not found"):
        StackOutputs.from_heat("no-such-stack", heat_url=heat_server.url)


def test_failed_stack_refused_unless_allowed(heat_server: HeatServer) -> None:
    heat_server.create_stack("create-failed", {"RoleData": {"a": 1}},
                             fail=True)
    with pytest.raises(HeatError, match="stack is CREATE_FAILED"):
        StackOutputs.from_heat("create-failed", heat_url=heat_server.url)
    fetched = StackOutputs.from_heat("create-failed", heat_url=heat_server.url,
                                 allow_status=True)
    assert fetched.status == "CREATE_FAILED"
    assert fetched["RoleData"] == {"a": 1}


def test_stack_in_progress_refused(heat_server: HeatServer) -> None:
    heat_server.create_stack("still-creating", {"RoleData": {}},
                             create_seconds=120, wait=False)
    with pytest.raises(HeatError, match="stack is CREATE_IN_PROGRESS"):
        StackOutputs.from_heat("still-creating", heat_url=heat_server.url)


def test_outputs_without_role_data(heat_server: HeatServer) -> None:
    heat_server.create_stack("no-role-data", {"RoleConfig": {}, "Other": 1})
    with pytest.raises(HeatError) as info:
        StackOutputs.from_heat("no-role-data", heat_url=heat_server.url)
    assert "no RoleData output" in str(info.value)
    assert "Other, RoleConfig" in str(info.value)
    assert isinstance(info.value, OutputsError)


def test_keystone_unreachable_hides_the_password(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    auth_url = f"http://127.0.0.1:{_closed_port()}/v3"
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "none.yaml"))
    for name, value in {"OS_AUTH_URL": auth_url, "OS_USERNAME": "admin",
                        "OS_PASSWORD": "fakepw-secret-123",
                        "OS_PROJECT_NAME": "admin",
                        "OS_USER_DOMAIN_NAME": "Default",
                        "OS_PROJECT_DOMAIN_NAME": "Default"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OS_CLOUD", raising=False)
    with pytest.raises(HeatError) as info:
        StackOutputs.from_heat("overcloud", retries=0)
    message = str(info.value)
    assert "keystone" in message and auth_url in message
    assert "fakepw-secret-123" not in message


# -- a scripted server: what a healthy Heat does not do ----------------------

@pytest.mark.parametrize("status", [401, 403])
def test_auth_refused(fake_heat: Callable[..., _FakeHeat],
                      status: int) -> None:
    fake = fake_heat((status, {"error": {"message": "Authentication "
                                                    "required"}}))
    with pytest.raises(HeatError) as info:
        StackOutputs.from_heat("overcloud", heat_url=fake.url)
    message = str(info.value)
    assert f"refused the request (HTTP {status})" in message
    assert fake.url in message
    assert len(fake.paths) == 1  # not retried


def test_retries_5xx_with_backoff(fake_heat: Callable[..., _FakeHeat],
                                  sleeps: list[float]) -> None:
    body = _stack_body({"RoleData": {"Controller": {}}})
    fake = fake_heat((503, {}), (503, {}), (200, body))
    fetched = StackOutputs.from_heat("overcloud", heat_url=fake.url, retries=3)
    assert fetched["RoleData"] == {"Controller": {}}
    assert fake.paths == ["/v1/admin/stacks/overcloud"] * 3
    assert sleeps == [0.5, 1.0]


def test_5xx_gives_up_after_retries(fake_heat: Callable[..., _FakeHeat],
                                    sleeps: list[float],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heat, "RETRY_BACKOFF", (1.0, 4.0))
    fake = fake_heat((500, {"error": {"message": "boom\ntrace"}}))
    with pytest.raises(HeatError) as info:
        StackOutputs.from_heat("overcloud", heat_url=fake.url, retries=4)
    assert "HTTP 500: boom trace (after 5 attempts)" in str(info.value)
    assert len(fake.paths) == 5
    assert sleeps == [1.0, 2.0, 4.0, 4.0]  # doubling, bounded


def test_timeout(fake_heat: Callable[..., _FakeHeat]) -> None:
    fake = fake_heat("hang")
    with pytest.raises(HeatError, match=r"timed out after 0\.3s"):
        StackOutputs.from_heat("overcloud", heat_url=fake.url, timeout=0.3,
                           retries=0)


def test_unresolvable_role_data(fake_heat: Callable[..., _FakeHeat]) -> None:
    body = _stack_body({"RoleData": None, "Other": 1},
                       errors={"RoleData": "The Referenced Attribute is "
                                           "incorrect."})
    fake = fake_heat((200, body))
    with pytest.raises(HeatError, match="RoleData: Heat could not resolve"):
        StackOutputs.from_heat("overcloud", heat_url=fake.url)


def test_openstacksdk_imported_lazily() -> None:
    code = ("import sys, composable_upgrades.sources.heat, composable_upgrades.sources.outputs;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('openstack', 'keystoneauth1', 'requests')))")
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True,
                         env={"PYTHONPATH": str(Path(heat.__file__).parents[2]),
                              "PATH": "/usr/bin:/bin"}).stdout
    assert out.strip() == "[]"


# -- what messages show ---------------------------------------------------------

def _with_password(url: str) -> str:
    return url.replace("http://", "http://admin:s3cret-pw@", 1)


def test_password_in_heat_url_is_never_shown(
        fake_heat: Callable[..., _FakeHeat]) -> None:
    body = _stack_body({"RoleData": {"Controller": {}}})
    fake = fake_heat((200, body), (200, _stack_body({"Other": 1})))
    url = _with_password(fake.url)

    fetched = StackOutputs.from_heat("overcloud", heat_url=url)
    with pytest.raises(HeatError) as info:
        StackOutputs.from_heat("overcloud", heat_url=url)

    assert fetched.source == f"heat:overcloud at {fake.url}"
    assert info.value.source == fetched.source
    assert "s3cret-pw" not in str(info.value)
    assert "no RoleData output" in str(info.value)


def test_refused_status_says_how_to_force(
        fake_heat: Callable[..., _FakeHeat]) -> None:
    body = _stack_body({"RoleData": {}}, status="UPDATE_FAILED")
    fake = fake_heat((200, body))
    with pytest.raises(HeatError) as info:
        StackOutputs.from_heat("overcloud", heat_url=_with_password(fake.url))
    message = str(info.value)
    assert "stack is UPDATE_FAILED" in message
    assert "--force" in message and "allow_status=True" in message
    assert "s3cret-pw" not in message and "\n" not in message


def test_output_errors_kept_and_malformed_outputs_are_heat_errors(
        fake_heat: Callable[..., _FakeHeat]) -> None:
    body = _stack_body({"RoleData": {"Controller": {}}, "Broken": None},
                       errors={"Broken": "The Referenced\nAttribute"})
    bad = {"stack": {"stack_name": "overcloud", "stack_status":
                     "CREATE_COMPLETE", "outputs": [{"output_value": 1}]}}
    fake = fake_heat((200, body), (200, bad))

    fetched = StackOutputs.from_heat("overcloud", heat_url=fake.url)
    with pytest.raises(HeatError) as info:
        StackOutputs.from_heat("overcloud", heat_url=fake.url)

    assert fetched.extra == {"output_errors": {"Broken": "The Referenced "
                                                         "Attribute"}}
    assert (fetched.stack, fetched.status) == ("overcloud", "CREATE_COMPLETE")
    assert dict(fetched) == {"RoleData": {"Controller": {}}, "Broken": None}
    assert str(info.value).startswith(f"heat:overcloud at {fake.url}: item 0 ")

"""The built-in Nova drain hooks against a local stand-in of Nova and Keystone.

Nova cannot run on this machine. The stand-in below is a small HTTP server on
127.0.0.1, written from the Nova (compute API v2.1) and Keystone (identity
API v3) API references, that answers only the calls the drain hooks and
openstacksdk make: Keystone's version document and ``POST /v3/auth/tokens``
(a token with a service catalog), Nova's version documents (microversions up
to 2.79), ``GET /os-services``, ``PUT /os-services/{id}`` (microversion
2.53 and later), ``GET /servers/detail?host=...``, ``GET /servers/{id}`` and
the ``os-migrateLive`` server action. A live migration moves the instance to
another enabled compute at once, except for instances told to stay.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from composable_upgrades.run.drain import NovaDrain
from composable_upgrades.run.hooks import HookCall

COMPUTES = ("compute-0", "compute-1", "compute-2")


@dataclass
class Nova:
    """The stand-in's state: services, instances, calls seen."""

    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    stuck: set[str] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)  # paths answered with 500
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    base: str = ""

    def add_compute(self, host: str) -> None:
        sid = str(uuid.uuid5(uuid.NAMESPACE_DNS, host))
        self.services[sid] = {
            "id": sid, "binary": "nova-compute", "host": f"{host}.localdomain",
            "zone": "nova", "status": "enabled", "state": "up",
            "disabled_reason": None, "forced_down": False,
            "updated_at": "2026-01-01T00:00:00.000000"}

    def add_server(self, name: str, host: str) -> str:
        sid = str(uuid.uuid5(uuid.NAMESPACE_DNS, name))
        self.servers[sid] = {"id": sid, "name": name, "status": "ACTIVE",
                             "OS-EXT-SRV-ATTR:host": f"{host}.localdomain",
                             "tenant_id": "p1", "user_id": "u1", "links": []}
        return sid

    def host_of(self, name: str) -> str:
        return next(s["OS-EXT-SRV-ATTR:host"] for s in self.servers.values()
                    if s["name"] == name)


def _token(base: str) -> dict[str, Any]:
    def endpoint(url: str) -> list[dict[str, str]]:
        return [{"id": uuid.uuid4().hex, "interface": i, "region": "regionOne",
                 "region_id": "regionOne", "url": url}
                for i in ("public", "internal", "admin")]
    return {"token": {
        "methods": ["password"], "expires_at": "2099-01-01T00:00:00.000000Z",
        "issued_at": "2026-01-01T00:00:00.000000Z",
        "user": {"id": "u1", "name": "admin",
                 "domain": {"id": "default", "name": "Default"}},
        "project": {"id": "p1", "name": "admin",
                    "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r1", "name": "admin"}],
        "catalog": [
            {"type": "identity", "name": "keystone", "id": "i1",
             "endpoints": endpoint(f"{base}/identity/v3")},
            {"type": "compute", "name": "nova", "id": "c1",
             "endpoints": endpoint(f"{base}/compute/v2.1")}]}}


def _nova_version(base: str) -> dict[str, Any]:
    return {"id": "v2.1", "status": "CURRENT", "version": "2.79",
            "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}]}


def _handler(nova: Nova) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, body: Any = None,
                   headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"null")

        def route(self, method: str) -> None:
            url = urlsplit(self.path)
            path, query = url.path.rstrip("/"), parse_qs(url.query)
            body = self.body() if method in ("POST", "PUT") else None
            nova.calls.append((method, path, body))
            if path in nova.broken:
                return self.answer(500, {"computeFault": {
                    "code": 500, "message": "Unexpected API Error."}})
            if path == "/identity/v3" and method == "GET":
                return self.answer(200, {"version": {
                    "id": "v3.14", "status": "stable",
                    "updated": "2020-04-07T00:00:00Z",
                    "links": [{"rel": "self", "href": f"{nova.base}/identity/v3/"}],
                    "media-types": [{"base": "application/json", "type":
                                     "application/vnd.openstack.identity-v3+json"}]}})
            if path == "/identity/v3/auth/tokens" and method == "POST":
                return self.answer(201, _token(nova.base),
                                   {"X-Subject-Token": uuid.uuid4().hex})
            if path == "/compute" and method == "GET":
                return self.answer(200, {"versions": [_nova_version(nova.base)]})
            if path == "/compute/v2.1" and method == "GET":
                return self.answer(200, {"version": _nova_version(nova.base)})
            if path == "/compute/v2.1/os-services" and method == "GET":
                found = [s for s in nova.services.values()
                         if s["binary"] in query.get("binary", [s["binary"]])
                         and s["host"] in query.get("host", [s["host"]])]
                return self.answer(200, {"services": found})
            match = re.fullmatch(r"/compute/v2.1/os-services/([\w-]+)", path)
            if match and method == "PUT":
                service = nova.services.get(match[1])
                if service is None:
                    return self.answer(404, {"itemNotFound": {"code": 404,
                                                              "message": "no service"}})
                service.update({k: v for k, v in body.items()
                                if k in ("status", "disabled_reason")})
                if service["status"] == "enabled":
                    service["disabled_reason"] = None
                return self.answer(200, {"service": service})
            if path == "/compute/v2.1/servers/detail" and method == "GET":
                hosts = query.get("host")
                found = [s for s in nova.servers.values()
                         if not hosts or s["OS-EXT-SRV-ATTR:host"] in hosts]
                return self.answer(200, {"servers": found})
            match = re.fullmatch(r"/compute/v2.1/servers/([\w-]+)(/action)?", path)
            if match and match[1] in nova.servers:
                server = nova.servers[match[1]]
                if method == "GET" and not match[2]:
                    return self.answer(200, {"server": server})
                if method == "POST" and match[2] and "os-migrateLive" in body:
                    if server["name"] not in nova.stuck:
                        here = server["OS-EXT-SRV-ATTR:host"]
                        targets = [s["host"] for s in nova.services.values()
                                   if s["status"] == "enabled" and s["host"] != here]
                        if not targets:
                            return self.answer(400, {"badRequest": {
                                "code": 400, "message": "No valid host was found."}})
                        server["OS-EXT-SRV-ATTR:host"] = targets[0]
                    return self.answer(202)
            return self.answer(404, {"itemNotFound": {"code": 404,
                                                      "message": f"{method} {path}"}})

        def do_GET(self) -> None:
            self.route("GET")

        def do_POST(self) -> None:
            self.route("POST")

        def do_PUT(self) -> None:
            self.route("PUT")

    return Handler


@pytest.fixture
def nova(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Nova]:
    """The stand-in, three computes with two instances each, and a clouds.yaml
    entry ``overcloud`` for it (no OS_* variables)."""
    state = Nova()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{server.server_port}"
    for host in COMPUTES:
        state.add_compute(host)
        for i in range(2):
            state.add_server(f"vm-{host}-{i}", host)
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"overcloud": {
        "auth": {"auth_url": f"{state.base}/identity/v3", "username": "admin",
                 "password": "secret", "project_name": "admin",
                 "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": "regionOne", "identity_api_version": "3"}}}))
    for name in [n for n in __import__("os").environ if n.startswith("OS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    monkeypatch.setenv("HOME", str(tmp_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _call(point: str, hosts: tuple[str, ...]) -> HookCall:
    return HookCall(stage="compute", point=point, batch=2, batches=3, hosts=hosts)


def _drain(**settings: Any) -> NovaDrain:
    return NovaDrain.from_cloud("overcloud", computes=frozenset(COMPUTES),
                                poll=0.05, **settings)


def test_drain_moves_every_instance_and_undrain_enables(nova: Nova) -> None:
    drain = _drain(timeout=5)
    # A controller in the batch is not a compute: left alone.
    error = drain.run_hook("nova-drain", _call("pre_batch", ("compute-0", "ctl-0")))
    assert error is None
    service = next(s for s in nova.services.values() if s["host"].startswith("compute-0"))
    assert service["status"] == "disabled"
    assert service["disabled_reason"] == "composable upgrade: compute batch 2"
    assert all(not nova.host_of(f"vm-compute-0-{i}").startswith("compute-0")
               for i in range(2))
    migrations = [b["os-migrateLive"] for m, _, b in nova.calls
                  if m == "POST" and b and "os-migrateLive" in b]
    assert migrations == [{"host": None, "block_migration": "auto"}] * 2
    # Moved instances stay where they went; the compute is enabled again.
    assert drain.run_hook("nova-undrain", _call("post_batch", ("compute-0",))) is None
    assert service["status"] == "enabled" and service["disabled_reason"] is None
    assert not nova.host_of("vm-compute-0-0").startswith("compute-0")


def test_an_instance_that_does_not_move_fails_the_hook_by_name(nova: Nova) -> None:
    nova.stuck.add("vm-compute-1-1")
    error = _drain(timeout=0.3).run_hook("nova-drain", _call("pre_batch", ("compute-1",)))
    sid = str(uuid.uuid5(uuid.NAMESPACE_DNS, "vm-compute-1-1"))
    assert error == ("1 instance did not move within 0.3s: vm-compute-1-1 "
                     f"({sid}) on compute-1.localdomain")
    assert nova.host_of("vm-compute-1-0") != "compute-1.localdomain"


def test_an_api_error_fails_the_hook_with_novas_message(nova: Nova) -> None:
    nova.broken.add("/compute/v2.1/os-services")
    error = _drain(timeout=1).run_hook("nova-drain", _call("pre_batch", ("compute-2",)))
    assert error is not None and error.startswith("Nova: ")
    assert "500" in error or "Unexpected API Error" in error
    nova.broken.clear()
    error = _drain(timeout=1).run_hook("nova-drain", _call("pre_batch", ("compute-9",)))
    assert error is None  # not a compute of the plan: nothing to drain
    unknown = NovaDrain.from_cloud("overcloud", poll=0.05, timeout=1)
    with pytest.raises(Exception, match="no nova-compute service on host compute-9"):
        unknown.run_hook("nova-drain", _call("pre_batch", ("compute-9",)))

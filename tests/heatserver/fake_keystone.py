"""A tiny keystone v3 stand-in on 127.0.0.1, for tests of password auth.

It does just what a client needs to log in with a password and find Heat:

* ``GET /v3`` (and ``/v3/``) answers a version document;
* ``POST /v3/auth/tokens`` answers 201 with an ``X-Subject-Token`` and a
  token scoped to the project ``admin``, whose catalog lists the
  ``orchestration`` endpoints given, their URL templates (``%(tenant_id)s``,
  ``$(project_id)s``...) filled in as keystone fills them in; or, with
  ``refuse=True``, 401 as keystone answers wrong credentials.

Every request is recorded (method, path, and the password auth's user and
project names), so a test can count the logins. The password itself is
never recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The id of the project every token is scoped to: Heat's noauth pipeline
#: puts every request in the project ``admin``.
PROJECT_ID = "admin"
TOKEN = "fake-keystone-token"  # noqa: S105 - not a secret


@dataclass(frozen=True)
class Request:
    """One request the stand-in answered."""

    method: str
    path: str
    user: str | None = None
    project: str | None = None


class FakeKeystone:
    """Keystone v3 on a free port of 127.0.0.1; a context manager."""

    def __init__(self, endpoints: Mapping[str, str] | None = None, *,
                 refuse: bool = False) -> None:
        """``endpoints``: service type -> public URL (template)."""
        self.endpoints = dict(endpoints or {})
        self.refuse = refuse
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0),
                                          self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       args=(0.05,), daemon=True)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FakeKeystone:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> FakeKeystone:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The auth URL, ``http://127.0.0.1:PORT/v3``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v3"

    def token_requests(self) -> list[Request]:
        """The ``POST /v3/auth/tokens`` requests so far (the logins)."""
        with self._lock:
            return [r for r in self.requests
                    if r.method == "POST" and r.path.rstrip("/")
                    == "/v3/auth/tokens"]

    # -- answers -------------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def version(self) -> dict[str, Any]:
        return {"version": {
            "id": "v3.14", "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": self.url + "/"}],
            "media-types": [{
                "base": "application/json",
                "type": "application/vnd.openstack.identity-v3+json"}]}}

    def catalog(self) -> list[dict[str, Any]]:
        entries = {"identity": self.url, **self.endpoints}
        catalog = []
        for index, (service_type, template) in enumerate(
                sorted(entries.items())):
            url = (template.replace("%(tenant_id)s", PROJECT_ID)
                   .replace("%(project_id)s", PROJECT_ID)
                   .replace("$(tenant_id)s", PROJECT_ID)
                   .replace("$(project_id)s", PROJECT_ID))
            catalog.append({
                "id": f"service{index}", "type": service_type,
                "name": service_type, "endpoints": [
                    {"id": f"endpoint{index}{interface[0]}",
                     "interface": interface, "region": "RegionOne",
                     "region_id": "RegionOne", "url": url}
                    for interface in ("public", "internal", "admin")]})
        return catalog

    def token(self, user: str, project: str) -> dict[str, Any]:
        domain = {"id": "default", "name": "Default"}
        return {"token": {
            "methods": ["password"],
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2024-01-01T00:00:00.000000Z",
            "audit_ids": ["fake-audit-id"],
            "user": {"id": "user-id", "name": user, "domain": domain,
                     "password_expires_at": None},
            "project": {"id": PROJECT_ID, "name": project, "domain": domain},
            "is_domain": False,
            "roles": [{"id": "role-admin", "name": "admin"},
                      {"id": "role-member", "name": "member"}],
            "catalog": self.catalog()}}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: Any,
                       headers: Mapping[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                fake._record(Request("GET", self.path))
                if self.path.rstrip("/") == "/v3":
                    self._reply(200, fake.version())
                elif self.path.rstrip("/") == "":
                    self._reply(300, {"versions": {
                        "values": [fake.version()["version"]]}})
                else:
                    self._reply(404, {"error": {
                        "code": 404, "title": "Not Found",
                        "message": f"no {self.path} here"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                user = project = None
                try:
                    identity = json.loads(raw)["auth"]
                    user = identity["identity"]["password"]["user"]["name"]
                    project = identity["scope"]["project"]["name"]
                except (ValueError, KeyError, TypeError):
                    pass
                fake._record(Request("POST", self.path, user, project))
                if self.path.rstrip("/") != "/v3/auth/tokens":
                    self._reply(404, {"error": {"code": 404,
                                                "title": "Not Found",
                                                "message": "no such path"}})
                elif fake.refuse or user is None:
                    self._reply(401, {"error": {
                        "code": 401, "title": "Unauthorized",
                        "message": "The request you have made requires "
                                   "authentication."}},
                        {"WWW-Authenticate": f'Keystone uri="{fake.url}"'})
                else:
                    self._reply(201, fake.token(user, project or ""),
                                {"X-Subject-Token": TOKEN})

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


__all__ = ["FakeKeystone", "PROJECT_ID", "Request", "TOKEN"]

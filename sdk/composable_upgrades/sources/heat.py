"""Read a stack's outputs from Heat with openstacksdk.

Three ways to reach Heat, first match wins:

* ``heat_url``: an ephemeral Heat without keystone (TripleO's
  ``http://127.0.0.1:8006/v1/admin``), reached with openstacksdk's
  ``admin_token`` auth type: that endpoint and a token it does not check;
* ``session``: a keystoneauth session already authenticated, e.g. the
  OpenStackClient plugin's ``client_manager.session``;
* keystone credentials from the usual places: ``cloud`` in clouds.yaml, or
  ``OS_CLOUD`` / ``OS_*`` variables.

The stack is read with one request (``GET stacks/{name_or_id}``, which
carries every resolved output), retried with bounded exponential backoff on
connection errors and 5xx answers. Every failure is a one-line
:class:`~composable_upgrades.errors.HeatError`; nothing is printed and no
request or response is logged (outputs carry passwords). openstacksdk is
imported only when Heat is used: it is slow to import.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from composable_upgrades.errors import HeatError

if TYPE_CHECKING:  # pragma: no cover
    import requests

#: First delay between attempts and its cap, in seconds; each retry doubles
#: the delay up to the cap.
RETRY_BACKOFF: tuple[float, float] = (0.5, 8.0)

#: The output every upgrade needs.
REQUIRED_OUTPUT = "RoleData"

#: Token sent to a keystone-less Heat, which accepts any.
_ANY_TOKEN = "composable-upgrades"  # noqa: S105 - not a secret

_sleep = time.sleep  # tests replace it to record the backoff


@dataclass(frozen=True)
class _Target:
    """A connection to Heat and how to name it in messages."""

    conn: Any
    endpoint: str | None  # known up front only for ``heat_url``
    auth_url: str | None  # keystone, when credentials go through it


@dataclass(frozen=True)
class HeatStack:
    """A stack as Heat returned it: its outputs listing and what Heat said."""

    name: str | None
    status: str | None
    outputs: list[Any]
    output_errors: dict[str, str]
    source: str


def fetch_stack(stack: str, *, cloud: str | None = None,
                  heat_url: str | None = None, session: Any = None,
                  timeout: float = 30.0, retries: int = 3,
                  allow_status: bool = False) -> HeatStack:
    """``stack`` (a name or an id) as Heat shows it, outputs included.

    ``timeout`` bounds each request, in seconds; ``retries`` is how many
    more attempts follow a connection error or a 5xx answer. A stack whose
    last action failed or is still running is refused unless
    ``allow_status``. :meth:`.StackOutputs.from_heat` reads the outputs.
    """
    if not stack or not stack.strip():
        raise HeatError("no stack name or id given", source="heat")
    if retries < 0:
        raise ValueError("retries must be >= 0")
    source = f"heat:{stack}"
    target = _connect(source, cloud=cloud, heat_url=heat_url,
                      session=session, timeout=timeout)
    response, endpoint = _get_stack(target, stack, source=source,
                                    timeout=timeout, retries=retries)
    source = f"heat:{stack} at {_display(endpoint)}"
    return _stack(_body(response, source), source=source,
                  allow_status=allow_status)


def _connect(source: str, *, cloud: str | None, heat_url: str | None,
             session: Any, timeout: float) -> _Target:
    """An openstacksdk connection for the first way to Heat given."""
    import openstack
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc

    if heat_url is not None:
        endpoint = _check_url(heat_url, source)
        conn = openstack.connect(
            auth_type="admin_token",
            auth={"endpoint": endpoint, "token": _ANY_TOKEN},
            api_timeout=timeout, load_yaml_config=False,
            load_envvars=False)
        return _Target(conn, endpoint, None)
    if session is not None:
        from openstack import connection
        conn = connection.Connection(session=session)
        return _Target(conn, None, _auth_url(session))
    try:
        conn = openstack.connect(cloud=cloud, api_timeout=timeout)
    except sdk_exc.ConfigException as exc:
        raise HeatError(f"cloud configuration: {_one_line(str(exc))}",
                        source=source) from exc
    except ks_exc.ClientException as exc:
        raise HeatError(_auth_config_message(exc), source=source) from exc
    auth = conn.config.config.get("auth") or {}
    return _Target(conn, None, auth.get("auth_url"))


def _get_stack(target: _Target, stack: str, *, source: str, timeout: float,
               retries: int) -> tuple[requests.Response, str]:
    """GET the stack, retrying what may pass; the answer and the endpoint."""
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc

    path = "/stacks/" + urllib.parse.quote(stack, safe="")
    endpoint = target.endpoint
    attempts = retries + 1
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            if endpoint is None:
                endpoint = _endpoint(target, source)
            response = target.conn.orchestration.get(
                path, raise_exc=False, connect_retries=0, log=False,
                timeout=timeout)
        except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout,
                ks_exc.UnknownConnectionError) as exc:
            if not last:
                _sleep(_backoff(attempt))
                continue
            raise HeatError(
                f"cannot reach {_unreachable(exc, target, endpoint)}: "
                f"{_reason(exc, timeout)}"
                f"{_tries(attempts)}", source=source) from exc
        except ks_exc.HttpError as exc:  # from keystone, authenticating
            if (exc.http_status or 0) >= 500 and not last:
                _sleep(_backoff(attempt))
                continue
            raise HeatError(_keystone_message(exc, target),
                            source=source) from exc
        except ks_exc.EndpointNotFound as exc:
            raise HeatError("no orchestration (Heat) endpoint in the service "
                            "catalog", source=source) from exc
        except ks_exc.ClientException as exc:
            raise HeatError(_auth_config_message(exc), source=source) from exc
        except sdk_exc.SDKException as exc:
            raise HeatError(f"openstacksdk: {_one_line(str(exc))}",
                            source=source) from exc
        if response.status_code >= 500 and not last:
            _sleep(_backoff(attempt))
            continue
        _check_status(response, stack, endpoint, source, attempts)
        return response, endpoint
    raise AssertionError("unreachable")  # pragma: no cover


def _endpoint(target: _Target, source: str) -> str:
    """The orchestration endpoint from the catalog (authenticates)."""
    endpoint = target.conn.orchestration.get_endpoint()
    if not endpoint:
        raise HeatError("no orchestration (Heat) endpoint in the service "
                        "catalog", source=source)
    return str(endpoint).rstrip("/")


def _check_status(response: requests.Response, stack: str, endpoint: str,
                  source: str, attempts: int) -> None:
    """Raise the error an unsuccessful answer stands for."""
    code = response.status_code
    if code < 300:
        return
    url = _display(endpoint)
    if code == 404:
        raise HeatError(f"stack {stack!r} not found in Heat at {url}",
                        source=source)
    if code in (401, 403):
        raise HeatError(
            f"Heat at {url} refused the request (HTTP {code}): the token or "
            "credentials are not accepted for this stack", source=source)
    detail = _heat_message(response)
    detail = f": {detail}" if detail else ""
    tries = _tries(attempts) if code >= 500 else ""
    raise HeatError(f"Heat at {url} answered HTTP {code}{detail}{tries}",
                    source=source)


def _body(response: requests.Response, source: str) -> dict[str, Any]:
    """The ``stack`` object of a stack show answer."""
    try:
        data = response.json()
    except ValueError as exc:
        raise HeatError(
            f"Heat answered HTTP {response.status_code} with a body that is "
            "not JSON", source=source) from exc
    body = data.get("stack") if isinstance(data, dict) else None
    if not isinstance(body, dict):
        raise HeatError("Heat's answer has no 'stack' object",
                        source=source)
    return body


def _stack(body: dict[str, Any], *, source: str,
           allow_status: bool) -> HeatStack:
    """Check the stack's status and its outputs listing."""
    name = str(body.get("stack_name") or "")
    status = str(body.get("stack_status") or "")
    if not allow_status and (status.endswith("_FAILED")
                             or status.endswith("_IN_PROGRESS")):
        raise HeatError(
            f"stack is {status}; its outputs may be stale or incomplete "
            "(fix or finish the stack first, or pass --force to use it "
            "anyway; allow_status=True in the SDK)", source=source)
    items = body.get("outputs")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise HeatError("the stack's 'outputs' is not a list", source=source)
    # Heat lists an output it cannot resolve with a null value and the reason.
    errors = {str(item["output_key"]): _one_line(str(item["output_error"]))
              for item in items if isinstance(item, dict)
              and item.get("output_error") and "output_key" in item}
    if REQUIRED_OUTPUT in errors:
        raise HeatError(f"Heat could not resolve the output: "
                        f"{errors[REQUIRED_OUTPUT]}", source=source,
                        key=REQUIRED_OUTPUT)
    return HeatStack(name=name or None, status=status or None, outputs=items,
                     output_errors=errors, source=source)


# -- messages ---------------------------------------------------------------

def _check_url(url: str, source: str) -> str:
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise HeatError(f"not an http(s) URL for Heat: {_display(url)!r}",
                        source=source)
    return url.strip().rstrip("/")


def _display(url: str) -> str:
    """``url`` without user info (never show a password)."""
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parsed.username is None and parsed.password is None:
        return url
    host = parsed.hostname or ""
    if parsed.port:
        host = f"{host}:{parsed.port}"
    return urllib.parse.urlunsplit(parsed._replace(netloc=host))


def _unreachable(exc: BaseException, target: _Target,
                 endpoint: str | None) -> str:
    """Which service a connection error was for: Heat, keystone or a URL."""
    match = re.search(r"https?://[^\s'\"]+", str(exc))
    failed = urllib.parse.urlsplit(match.group(0).rstrip(":.,")) \
        if match else None
    for name, url in (("Heat", endpoint), ("keystone", target.auth_url)):
        if url and (failed is None or failed.netloc
                    == urllib.parse.urlsplit(url).netloc):
            return f"{name} at {_display(url)}"
    if failed is None:
        return "the cloud"
    return _display(urllib.parse.urlunsplit(failed._replace(query="",
                                                             fragment="")))


def _auth_url(session: Any) -> str | None:
    auth = getattr(session, "auth", None)
    url = getattr(auth, "auth_url", None)
    return str(url) if url else None


def _backoff(attempt: int) -> float:
    first, cap = RETRY_BACKOFF
    return float(min(first * 2 ** attempt, cap))


def _tries(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""


def _reason(exc: BaseException, timeout: float) -> str:
    """Why a connection failed, in a few words."""
    from keystoneauth1 import exceptions as ks_exc

    if isinstance(exc, ks_exc.ConnectTimeout):
        return f"timed out after {timeout:g}s"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        current = current.__cause__ or current.__context__
    text = str(exc)
    for needle, reason in (("Connection refused", "connection refused"),
                           ("Name or service not known", "unknown host"),
                           ("No route to host", "no route to host"),
                           ("timed out", f"timed out after {timeout:g}s")):
        if needle in text:
            return reason
    return f"connection failed ({type(exc).__name__})"


def _keystone_message(exc: Any, target: _Target) -> str:
    code = getattr(exc, "http_status", None)
    where = f"keystone at {_display(target.auth_url)}" if target.auth_url \
        else "keystone"
    if code in (401, 403):
        return (f"{where} refused the credentials (HTTP {code}): authentication failed; check the "
                "cloud configuration")
    return f"{where} answered HTTP {code} while authenticating"


def _auth_config_message(exc: BaseException) -> str:
    from keystoneauth1 import exceptions as ks_exc

    if isinstance(exc, ks_exc.MissingRequiredOptions):
        names = ", ".join(opt.dest for opt in exc.options) or "options"
        return (f"no usable cloud credentials (missing {names}): pass a "
                "cloud, set OS_CLOUD or OS_* variables, or give a Heat URL")
    if isinstance(exc, ks_exc.MissingAuthPlugin):
        return ("no cloud credentials: pass a cloud, set OS_CLOUD or OS_* "
                "variables, or give a Heat URL")
    return f"cannot authenticate: {type(exc).__name__}"


def _heat_message(response: requests.Response) -> str:
    """Heat's own error message from an error answer, short."""
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not message and isinstance(data, dict):
        message = data.get("explanation") or data.get("title")
    return _one_line(str(message)) if message else ""


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


__all__ = ["fetch_stack", "HeatStack", "RETRY_BACKOFF", "REQUIRED_OUTPUT"]

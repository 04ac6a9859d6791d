"""Prepare from a real Heat: through the SDK and through ``openstack``.

The stack lives in the session's real Heat (tests.heatserver). The plan it
gives must be the plan the same outputs give from a file, byte for byte,
whether the SDK reads Heat or the real ``openstack overcloud upgrade
prepare`` does, with ``--heat-url`` or with OpenStackClient credentials.
Only keystone is played, by a stand-in (tests.heatserver.fake_keystone)
whose catalog points at the real Heat: Heat's noauth pipeline takes any
token. OpenStackClient runs in the test process (tests.helpers.cli); the
real executable's smoke test is tests/test_cli.py's.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import composable_upgrades
from composable_upgrades import StackOutputs
from tests.heatserver import HeatServer
from tests.heatserver.fake_keystone import PROJECT_ID, FakeKeystone
from tests.helpers import Result, cli, error_line, operator_env, tree

FIXTURE = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"
PLAN = Path("composable-upgrade") / "plan"

#: The module's stacks; unique names keep them apart from other modules'
#: stacks in the shared Heat, and let the Heat log show whose request it is.
STACK = "overcloud-cli"
FAILED_STACK = "overcloud-cli-failed"


# -- helpers ------------------------------------------------------------------

def assert_same_tree(got: Path, expected: dict[str, bytes]) -> None:
    """``got`` holds exactly the files of ``expected``, byte-identical."""
    files = tree(got, with_dirs=True)
    assert sorted(files) == sorted(expected)
    differ = [name for name in expected if files[name] != expected[name]]
    assert differ == []


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openstack(args: list[str], tmp: Path,
              env: dict[str, str] | None = None) -> Result:
    """``openstack <args>``: HOME=<tmp>/home (OSC writes a cache there), no
    OS_* variables but ``env``'s, no clouds.yaml unless ``env`` names one."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return cli(args, cwd=home, env=operator_env(home, {
        "OS_CLIENT_CONFIG_FILE": str(home / "no-clouds.yaml"), **(env or {})}))


def prepare_args(stack: str, working_dir: Path, *extra: str) -> list[str]:
    return ["overcloud", "upgrade", "prepare", "--stack", stack,
            "--working-dir", str(working_dir), *extra]


def heat_requests(heat: HeatServer, offset: int, stack: str) -> list[str]:
    """Heat API requests for ``stack`` logged after byte ``offset``."""
    text = heat.log_file.read_bytes()[offset:].decode(errors="replace")
    pattern = re.compile(r"Processing request: (GET \S*/stacks/"
                         + re.escape(stack) + r"(?:/\S*)?)$")
    return [m.group(1) for line in text.splitlines()
            if (m := pattern.search(line))]


CREDENTIALS = {"auth_url": None, "username": "u", "password": None,
               "project_name": "demo", "user_domain_name": "Default",
               "project_domain_name": "Default"}


def credentials(way: str, auth_url: str, password: str, tmp: Path
                ) -> tuple[list[str], dict[str, str]]:
    """OSC arguments and environment that pass the credentials ``way``:
    on the command line, as OS_* variables, or as a cloud of clouds.yaml."""
    values = {**CREDENTIALS, "auth_url": auth_url, "password": password}
    if way == "argv":
        return [arg for key, value in values.items()
                for arg in (f"--os-{key.replace('_', '-')}", value)], {}
    if way == "env":
        return [], {f"OS_{key.upper()}": value
                    for key, value in values.items()}
    clouds = tmp / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"undercloud": {
        "auth": values, "region_name": "RegionOne"}}}))
    return ["--os-cloud", "undercloud"], {"OS_CLIENT_CONFIG_FILE": str(clouds)}


# -- fixtures -----------------------------------------------------------------

@pytest.fixture(scope="module")
def file_outputs() -> StackOutputs:
    return StackOutputs.from_file(FIXTURE)


@pytest.fixture(scope="module")
def stack(heat_server: HeatServer, file_outputs: StackOutputs) -> str:
    """A stack in the real Heat whose outputs are the THT 18 file's."""
    heat_server.create_stack(STACK, dict(file_outputs))
    return STACK


@pytest.fixture(scope="module")
def file_plan(tmp_path_factory: pytest.TempPathFactory,
              file_outputs: StackOutputs) -> dict[str, bytes]:
    """The plan the outputs file gives for stack ``STACK``: the reference."""
    working_dir = tmp_path_factory.mktemp("from-file")
    result = composable_upgrades.prepare(file_outputs, working_dir,
                                         stack=STACK)
    assert Path(result.plan_dir) == working_dir / PLAN
    files = tree(working_dir / PLAN, with_dirs=True)
    assert "plan.json" in files and len(files) > 10
    return files


@pytest.fixture
def keystone(heat_server: HeatServer) -> Iterator[FakeKeystone]:
    """Keystone whose catalog has Heat as real catalogs do: by template."""
    template = f"http://127.0.0.1:{heat_server.port}/v1/%(tenant_id)s"
    with FakeKeystone({"orchestration": template}) as fake:
        yield fake


# -- 1. the SDK: Heat and file give the same plan ---------------------------

def test_prepare_from_heat_equals_prepare_from_file(
        heat_server: HeatServer, stack: str, file_plan: dict[str, bytes],
        tmp_path: Path) -> None:
    outputs = StackOutputs.from_heat(stack, heat_url=heat_server.url)
    assert outputs.stack == stack and outputs.status == "CREATE_COMPLETE"

    result = composable_upgrades.prepare(outputs, tmp_path, stack=stack)

    assert result.changed
    assert Path(result.plan_dir) == tmp_path / PLAN
    assert_same_tree(tmp_path / PLAN, file_plan)


# -- 2. the plugin with --heat-url --------------------------------------------

def test_cli_prepare_from_heat_url(heat_server: HeatServer, stack: str,
                                   file_plan: dict[str, bytes],
                                   tmp_path: Path) -> None:
    working_dir = tmp_path / "wd"
    result = openstack(prepare_args(stack, working_dir, "--heat-url",
                                    heat_server.url), tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{working_dir / PLAN}" in result.stderr
    assert "| controlplane " in result.stdout
    assert_same_tree(working_dir / PLAN, file_plan)
    # only this project's subfolder of the working dir given was written
    assert os.listdir(working_dir) == [str(PLAN.parent)]


def test_cli_heat_unreachable_names_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1/admin"
    result = openstack(prepare_args(STACK, tmp_path / "wd", "--heat-url",
                                    url), tmp_path)

    line = error_line(result)
    assert url in line and "connection refused" in line
    assert not (tmp_path / "wd" / PLAN).exists()


def test_cli_missing_stack_names_it(heat_server: HeatServer,
                                    tmp_path: Path) -> None:
    result = openstack(prepare_args("no-such-stack", tmp_path / "wd",
                                    "--heat-url", heat_server.url), tmp_path)

    line = error_line(result)
    assert "stack 'no-such-stack' not found" in line
    assert heat_server.url in line
    assert not (tmp_path / "wd" / PLAN).exists()


def test_cli_failed_stack_refused_unless_forced(
        heat_server: HeatServer, file_outputs: StackOutputs,
        tmp_path: Path) -> None:
    heat_server.create_stack(FAILED_STACK, dict(file_outputs), fail=True)
    refused = openstack(prepare_args(FAILED_STACK, tmp_path / "refused",
                                     "--heat-url", heat_server.url), tmp_path)
    forced = openstack(prepare_args(FAILED_STACK, tmp_path / "forced",
                                    "--heat-url", heat_server.url, "--force"),
                       tmp_path)

    line = error_line(refused)
    assert "CREATE_FAILED" in line and FAILED_STACK in line
    assert not (tmp_path / "refused" / PLAN).exists()
    assert forced.returncode == 0, forced.stderr
    assert "Traceback" not in forced.stderr
    plan = composable_upgrades.Workdir.at(tmp_path / "forced").load_plan()
    assert plan.stack == FAILED_STACK


# -- 3. the plugin with OpenStackClient credentials ---------------------------

@pytest.mark.parametrize("way", ["argv", "env", "clouds.yaml"])
def test_cli_prepare_with_osc_credentials_logs_in_once(
        heat_server: HeatServer, stack: str, file_plan: dict[str, bytes],
        keystone: FakeKeystone, tmp_path: Path, way: str) -> None:
    password = "pw-" + secrets.token_hex(8)
    working_dir = tmp_path / "wd"
    args, env = credentials(way, keystone.url, password, tmp_path)
    log_offset = heat_server.log_file.stat().st_size

    result = openstack([*args, *prepare_args(stack, working_dir)], tmp_path,
                       env)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert_same_tree(working_dir / PLAN, file_plan)
    # one login, with the given user and project: OSC's session
    # went to openstacksdk, which did not log in again
    logins = keystone.token_requests()
    assert [(r.user, r.project) for r in logins] == [("u", "demo")]
    assert [r for r in keystone.requests
            if r.method == "POST" and r not in logins] == []
    # the stack came from the catalog's Heat, in the token's project
    deadline = time.monotonic() + 5
    while not (served := heat_requests(heat_server, log_offset, stack)) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served and all(r.startswith(f"GET /v1/{PROJECT_ID}/stacks/")
                          for r in served)
    written = tree(working_dir, with_dirs=True).values()
    for text in (result.stdout, result.stderr,
                 *(v.decode(errors="replace") for v in written)):
        assert password not in text


# -- 4. keystone refuses ------------------------------------------------------

def test_cli_credentials_refused(heat_server: HeatServer, stack: str,
                                 tmp_path: Path) -> None:
    template = f"http://127.0.0.1:{heat_server.port}/v1/%(tenant_id)s"
    log_offset = heat_server.log_file.stat().st_size
    with FakeKeystone({"orchestration": template}, refuse=True) as keystone:
        args, env = credentials("argv", keystone.url, "wrong-password",
                                tmp_path)
        result = openstack([*args, *prepare_args(stack, tmp_path / "wd")],
                           tmp_path, env)

    line = error_line(result)
    assert re.search(r"authenticat|credentials", line, re.IGNORECASE)
    assert "401" in line and keystone.url in line
    assert "wrong-password" not in result.stderr + result.stdout
    assert len(keystone.token_requests()) == 1  # a 401 is not retried
    assert heat_requests(heat_server, log_offset, stack) == []
    assert not (tmp_path / "wd" / PLAN).exists()

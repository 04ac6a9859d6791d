"""A generated corpus of bad stack outputs, run through ``prepare`` as users run it.

A seeded generator mutates a cut-down copy of the THT 18 outputs (roles,
services, upgrade tasks, hosts and their variables as Heat gave them): keys
deleted, values of the wrong type, the text truncated or made invalid UTF-8,
hostile names, huge values, duplicate keys, deep nesting, alias bombs. For
every case ``prepare`` either succeeds with a plan that loads, or fails with
exactly one line that names the outputs file and leaves the previous plan as
it was; and nothing is ever written outside the working dir.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import tree, upgrade

from composable_upgrades import Workdir

THT18 = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"
SEED = 14
CASES = 250
SUBDIR = "composable-upgrade"

HOSTILE_NAMES = [
    "Compute,Controller", "My Role", "*", "!Compute", "all", "undercloud",
    "localhost", "Controller", "overcloud", "../../escape", "a/b", "..",
    "{{ lookup('pipe', 'touch PWNED') }}", "x" * 300, "", "ctl:0", "ctl-[0:2]",
    "\u00e9t\u00e9", "nul\x00byte", "-dash", "1digit", "tab\there",
]


def base_outputs() -> dict[str, Any]:
    """THT 18's outputs, cut to two roles, a few tasks and two hosts each."""
    items = json.loads(THT18.read_text())
    outputs = {item["output_key"]: item["output_value"] for item in items}
    roles = ["Controller", "Compute"]
    role_data = {}
    for role in roles:
        data = outputs["RoleData"][role]
        role_data[role] = {
            "service_names": data["service_names"],
            "upgrade_tasks": data["upgrade_tasks"][:12],
            "post_upgrade_tasks": data["post_upgrade_tasks"][:2],
        }
    host_vars = {role: dict(list(outputs["AnsibleHostVarsMap"][role].items())[:2])
                 for role in roles}
    return {
        "RoleData": role_data,
        "RoleConfig": {"global_vars": {
            k: v for k, v in outputs["RoleConfig"]["global_vars"].items()
            if not isinstance(v, (dict, list))}},
        "AnsibleHostVarsMap": host_vars,
        "RoleNetHostnameMap": {r: outputs["RoleNetHostnameMap"][r] for r in roles},
        "RoleNetIpMap": {r: outputs["RoleNetIpMap"][r] for r in roles},
        "KeystoneURL": outputs["KeystoneURL"],
    }


# -- mutations: each returns the bytes of an outputs file ------------------------

def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (of keys and indexes) into ``data``."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            found.append(prefix + (key,))
            found.extend(_paths(value, prefix + (key,)))
    elif isinstance(data, list):
        for index, value in enumerate(data[:5]):
            found.append(prefix + (index,))
            found.extend(_paths(value, prefix + (index,)))
    return found


def _parent(data: Any, path: tuple) -> Any:
    for step in path[:-1]:
        data = data[step]
    return data


def delete_key(rng: random.Random, data: dict) -> bytes:
    path = rng.choice(_paths(data))
    del _parent(data, path)[path[-1]]
    return json.dumps(data).encode()


def wrong_type(rng: random.Random, data: dict) -> bytes:
    path = rng.choice(_paths(data))
    _parent(data, path)[path[-1]] = rng.choice(
        [None, 0, 3.5, True, "text", [], {}, [1, "a"], {"x": {"y": None}}])
    return json.dumps(data).encode()


def truncate(rng: random.Random, data: dict) -> bytes:
    text = json.dumps(data).encode() if rng.random() < 0.5 else _yaml(data)
    return text[:rng.randrange(1, len(text))]


def invalid_utf8(rng: random.Random, data: dict) -> bytes:
    text = bytearray(json.dumps(data).encode())
    at = rng.randrange(len(text))
    text[at:at] = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])
    return bytes(text)


def odd_role_name(rng: random.Random, data: dict) -> bytes:
    name = rng.choice(HOSTILE_NAMES)
    old = rng.choice(list(data["RoleData"]))
    for key in ("RoleData", "AnsibleHostVarsMap", "RoleNetHostnameMap", "RoleNetIpMap"):
        data[key] = {(name if k == old else k): v for k, v in data[key].items()}
    return json.dumps(data).encode()


def odd_host_name(rng: random.Random, data: dict) -> bytes:
    name = rng.choice(HOSTILE_NAMES)
    role = rng.choice(list(data["AnsibleHostVarsMap"]))
    hosts = data["AnsibleHostVarsMap"][role]
    old = rng.choice(list(hosts))
    data["AnsibleHostVarsMap"][role] = {(name if k == old else k): v
                                        for k, v in hosts.items()}
    return json.dumps(data).encode()


def odd_service_or_address(rng: random.Random, data: dict) -> bytes:
    role = rng.choice(list(data["RoleData"]))
    if rng.random() < 0.5:
        services = data["RoleData"][role]["service_names"]
        services[rng.randrange(len(services))] = rng.choice(HOSTILE_NAMES)
    else:
        host = rng.choice(list(data["AnsibleHostVarsMap"][role]))
        field = rng.choice(["ctlplane_ip", "fqdn_ctlplane"])
        data["AnsibleHostVarsMap"][role][host][field] = rng.choice(HOSTILE_NAMES)
    return json.dumps(data).encode()


def huge_value(rng: random.Random, data: dict) -> bytes:
    path = rng.choice(_paths(data))
    _parent(data, path)[path[-1]] = rng.choice(
        ["x" * 200_000, list(range(20_000)), {f"k{i}": i for i in range(5_000)}])
    return json.dumps(data).encode()


def duplicate_key(rng: random.Random, data: dict) -> bytes:
    role = rng.choice(list(data["AnsibleHostVarsMap"]))
    host = next(iter(data["AnsibleHostVarsMap"][role]))
    text = json.dumps(data)
    entry = json.dumps({host: {"ctlplane_ip": "192.0.2.1"}})[1:-1]
    marker = f'"{host}": '
    return text.replace(marker, f"{entry}, {marker}", 1).encode()


def deep_or_big(rng: random.Random, data: dict) -> bytes:
    return rng.choice([
        b"[" * 100_000 + b"]" * 100_000,
        b'{"RoleData": ' + b"9" * 5000 + b"}",
        b'{"RoleData": {"Controller": {"service_names": ["\\ud800"]}}}',
        b"a: &a [x, x, x, x, x, x, x, x]\n" + b"".join(
            b"%c: &%c [%s]\n" % (98 + i, 98 + i, b", ".join([b"*%c" % (97 + i)] * 8))
            for i in range(9)),
        b"a: &a [*a]\n",
        b"# nothing but a comment\n",
        b"\xef\xbb\xbf" + json.dumps(data).encode(),
    ])


def _yaml(data: dict) -> bytes:
    import yaml
    return yaml.safe_dump(data).encode()


MUTATIONS: list[Callable[[random.Random, dict], bytes]] = [
    delete_key, wrong_type, truncate, invalid_utf8, odd_role_name, odd_host_name,
    odd_service_or_address, huge_value, duplicate_key, deep_or_big,
]


def corpus() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    base = base_outputs()
    cases = []
    for number in range(CASES):
        mutation = MUTATIONS[number % len(MUTATIONS)]
        cases.append((f"{number:03d}-{mutation.__name__}",
                      mutation(rng, copy.deepcopy(base))))
    return cases


def test_every_bad_input_fails_cleanly_or_plans(tmp_path: Path) -> None:
    home = tmp_path / "home"
    inputs = tmp_path / "a" / "b" / "inputs"
    wd = tmp_path / "a" / "b" / "wd"
    home.mkdir()
    inputs.mkdir(parents=True)
    good = inputs / "good.json"
    good.write_text(json.dumps(base_outputs()))
    first = upgrade("prepare", "--outputs-file", str(good), "--working-dir", str(wd),
                    home=home)
    assert first.returncode == 0, first.stderr
    plan_dir = wd / SUBDIR / "plan"
    failures: list[str] = []
    outcomes = {"refused": 0, "planned": 0}

    for name, text in corpus():
        path = inputs / f"{name}.json"
        path.write_bytes(text)
        before = tree(plan_dir)
        result = upgrade("prepare", "--outputs-file", str(path), "--working-dir",
                         str(wd), home=home)
        if result.returncode == 0:
            outcomes["planned"] += 1
            Workdir.at(wd).load_plan()  # a plan that loads
            continue
        outcomes["refused"] += 1
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if "Traceback" in result.stderr or len(lines) != 1:
            failures.append(f"{name}: not one line: {result.stderr[-500:]!r}")
        elif str(path) not in lines[0]:
            failures.append(f"{name}: does not name the file: {lines[0][:300]!r}")
        if tree(plan_dir) != before:
            failures.append(f"{name}: the previous plan changed")

    assert not failures, "\n".join(failures[:20])
    assert outcomes["refused"] > CASES / 2, outcomes
    # nothing outside the working dir: only the inputs and the home's own files
    outside = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")
               if wd not in p.parents and p != wd}
    expected_top = {Path("home"), Path("a"), Path("a/b"), Path("a/b/inputs")}
    stray = {str(p) for p in outside
             if p not in expected_top and Path("a/b/inputs") not in p.parents
             and Path("home") not in p.parents}
    assert not stray, sorted(stray)
    assert not any("PWNED" in str(p) for p in tmp_path.rglob("*"))
    assert not list(Path.cwd().glob("PWNED*"))


def test_the_corpus_is_reproducible() -> None:
    """Seeded: a failure found once is found again."""
    assert corpus() == corpus()

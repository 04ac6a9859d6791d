"""The outputs' own secret values, masked verbatim where a run keeps or shows text.

Pattern scrubbing finds ``password=X``; a task that prints a bare password
(``login refused for X``) gets past it. prepare keeps keyed digests of the
outputs' secret values (``secret-digests.json``, never the values), and the
run masks each word of a message whose digest is one of them: in the task
records, ``run.log``, the history file, ``history --run`` and the error line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import composable_upgrades as cu
from composable_upgrades.model.redact import REDACTED, scrub_text
from composable_upgrades.model.secret_digests import (
    SECRET_DIGESTS_FILE, SecretDigests, secret_words)
from tests.helpers import cli

#: A generated-looking password, and a base64 key with padding and ``/``.
PASSWORD = "Xq7fakepw2e9b44c1d0aa6Tz"
CEPH_KEY = "AQBfakeKeyZ3cm9uZy8r/+kd0aQ=="
#: What the failing task prints: no pattern names either as a secret.
MESSAGE = f"login refused for {PASSWORD}; keyring {CEPH_KEY} rejected"


def outputs() -> cu.StackOutputs:
    settings = {"nova::db::mysql::password": PASSWORD,
                "ceph::profile::params::client_keys": {"client.openstack":
                                                       {"key": CEPH_KEY}},
                "tripleo_upgrade_key": "mysql_node_names_override"}
    role_data = {
        "Controller": {"service_names": ["keystone"], "upgrade_tasks": [
            {"name": "keystone step 1", "when": "step|int == 1",
             "ansible.builtin.debug": {"msg": "ok"}}]},
        "Compute": {"service_names": ["nova_compute"], "config_settings": settings,
                    "upgrade_tasks": [
                        {"name": "nova_compute step 1", "when": "step|int == 1",
                         "ansible.builtin.fail": {"msg": MESSAGE}}]}}
    return cu.StackOutputs.from_mapping(
        {"RehearsalSandbox": True, "RoleData": role_data,
         "AnsibleHostVarsMap": {"Controller": {"controller-0": {}},
                                "Compute": {"compute-0": {}}}},
        source="secret digests test")


def test_the_patterns_alone_miss_these_secrets() -> None:
    # The control: without the digests the message would leak both.
    assert PASSWORD in scrub_text(MESSAGE) and CEPH_KEY in scrub_text(MESSAGE)


def test_mask_hides_every_secret_word_and_nothing_else() -> None:
    digests = SecretDigests.of_outputs(outputs().data)

    for text in (MESSAGE, f"'{PASSWORD}'", f"mysql://nova:{PASSWORD}@db",
                 f"key={CEPH_KEY}", f"({PASSWORD}).", f"{{\"k\": \"{CEPH_KEY}\"}}"):
        masked = digests.mask(text)
        assert PASSWORD not in masked and CEPH_KEY not in masked, text
        assert REDACTED in masked
    assert digests.mask("login refused for nova") == "login refused for nova"
    # A name stored under a secret-named key is not a secret's value.
    assert digests.mask("mysql_node_names_override") == "mysql_node_names_override"


def test_what_counts_as_a_secret_word() -> None:
    assert secret_words(PASSWORD) == [PASSWORD]
    assert secret_words("mysql_node_names_override") == []  # a name
    assert secret_words("{{ nova_password }}") == []  # a template
    assert secret_words("Default") == []  # too short to mask everywhere
    pem = "-----BEGIN KEY-----\nMIIEpAIBAAKCAQEAx8d7T0r0Yp3q9KQ1\n-----END KEY-----"
    assert secret_words(pem) == ["MIIEpAIBAAKCAQEAx8d7T0r0Yp3q9KQ1"]


def test_prepare_keeps_digests_never_values(tmp_path: Path) -> None:
    fleet = cu.Fleet.at(tmp_path / "fleet")
    first = cu.prepare(outputs(), tmp_path / "a", fleet=fleet).prepared
    second = cu.prepare(outputs(), tmp_path / "b", fleet=fleet).prepared

    text = Path(first.file(SECRET_DIGESTS_FILE)).read_text()
    assert text == Path(second.file(SECRET_DIGESTS_FILE)).read_text()  # deterministic
    assert PASSWORD not in text and CEPH_KEY not in text
    # Only the task that prints the password has it (its body is the outputs').
    holding = {str(p.relative_to(first.path)) for p in Path(first.path).rglob("*")
               if p.is_file() and PASSWORD in p.read_text(errors="replace")}
    assert holding and holding == {"tasks/Compute/upgrade_tasks_step1.yaml"}, holding
    assert first.secrets.mask(MESSAGE).count(REDACTED) == 2


def test_a_damaged_digest_file_is_refused_not_ignored(tmp_path: Path) -> None:
    fleet = cu.Fleet.at(tmp_path / "fleet")
    plan = cu.prepare(outputs(), tmp_path / "wd", fleet=fleet).prepared
    Path(plan.file(SECRET_DIGESTS_FILE)).write_text(json.dumps({"algorithm": "md5"}))

    with pytest.raises(cu.WorkdirError, match="damaged secret digests"):
        cu.Workdir.at(tmp_path / "wd").load_plan().secrets  # noqa: B018


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("digests")
    fleet = cu.Fleet.at(root / "fleet")
    prepared = cu.prepare(outputs(), root / "wd", fleet=fleet).prepared
    fleet.create(list(prepared.hosts))
    assert cu.run_stage(root / "wd", "controlplane").status == "successful"
    result = cli(["overcloud", "upgrade", "run", "--working-dir", str(root / "wd"),
                  "--stage", "compute", "-y"])
    return {"wd": root / "wd", "cli": result}


def test_the_run_masks_them_in_what_it_shows(failed: dict) -> None:
    shown = failed["cli"]
    assert shown.returncode != 0 and "Traceback" not in shown.stderr
    assert f"compute-0: failed at step 1: nova_compute step 1: login refused for " \
        f"{REDACTED}; keyring {REDACTED} rejected" in shown.stderr
    assert PASSWORD not in shown.stdout + shown.stderr
    assert CEPH_KEY not in shown.stdout + shown.stderr


def test_the_history_and_run_log_keep_them_masked(failed: dict) -> None:
    history = cu.History(failed["wd"])
    run = history.run(history.run_rows()[-1].run_id)
    failures = [r for r in run.records if r.status == "failed"]
    assert failures and all(REDACTED in r.message for r in failures)
    assert "login refused for" in failures[0].message
    state = failed["wd"] / "composable-upgrade"
    for path in [*state.glob("history.sqlite*"), *state.rglob("run.log"),
                 *state.rglob("journal.jsonl")]:
        data = path.read_bytes()
        assert PASSWORD.encode() not in data and CEPH_KEY.encode() not in data, path
    shown = cli(["overcloud", "upgrade", "history", "--working-dir",
                 str(failed["wd"]), "--run", run.run_id, "-f", "json"])
    assert shown.returncode == 0 and "login refused for" in shown.stdout
    assert PASSWORD not in shown.stdout and CEPH_KEY not in shown.stdout

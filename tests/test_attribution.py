"""Tests of attributing RoleData's flat task lists back to services."""

from __future__ import annotations

import copy
import json
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from composable_upgrades.model.attribution import Attribution, attribute

FIXTURES = Path(__file__).parent / "fixtures" / "tht18"
KINDS = ("upgrade_tasks", "post_upgrade_tasks")
MIN_COVERAGE = 0.95


@lru_cache(maxsize=1)
def _role_data() -> dict[str, Any]:
    outputs = json.loads((FIXTURES / "stack-outputs.json").read_text())
    return next(o["output_value"] for o in outputs
                if o["output_key"] == "RoleData")


@lru_cache(maxsize=1)
def _ground_truth() -> dict[str, Any]:
    return json.loads((FIXTURES / "service_tasks.json").read_text())


def _expected(role: str, kind: str) -> list[tuple[str, str]]:
    """(service, ground-truth task name) per index of the role's flat list."""
    return [(service["service_name"], task["name"])
            for service in _ground_truth()[role]["services"]
            for task in service.get(kind, [])]


def _task_name(task: dict[str, Any]) -> str:
    """A flat task's name as the ground truth spells it."""
    if "name" in task:
        return task["name"]
    return f"(unnamed block; first: {task['block'][0].get('name')})"


def _tally() -> Counter[str]:
    """right / wrong / unattributed over every role and kind of task list."""
    tally: Counter[str] = Counter()
    for role, data in _role_data().items():
        for kind in KINDS:
            expected = [service for service, _ in _expected(role, kind)]
            got = attribute(data[kind], data["service_names"])
            for want, attribution in zip(expected, got, strict=True):
                if attribution.service is None:
                    tally["unattributed"] += 1
                elif attribution.service == want:
                    tally["right"] += 1
                else:
                    tally["wrong"] += 1
    return tally


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", sorted(_ground_truth()))
def test_ground_truth_matches_flat_lists(role: str, kind: str) -> None:
    data = _role_data()[role]
    services = [s["service_name"] for s in _ground_truth()[role]["services"]]
    assert services == data["service_names"]
    assert [name for _, name in _expected(role, kind)] == [
        _task_name(task) for task in data[kind]]


def test_fixture_attribution_has_no_wrong_and_high_coverage() -> None:
    tally = _tally()
    total = sum(tally.values())
    assert total > 0
    assert tally["wrong"] == 0
    assert tally["right"] / total >= MIN_COVERAGE


def test_fixture_attribution_labels_evidence() -> None:
    data = _role_data()["Controller"]
    for attribution in attribute(data["upgrade_tasks"], data["service_names"]):
        if attribution.service is None:
            assert attribution.evidence == ""
        else:
            assert attribution.evidence in {
                "name", "role", "condition", "body", "order"}


def test_pure_and_deterministic() -> None:
    data = _role_data()["Controller"]
    tasks = copy.deepcopy(data["upgrade_tasks"])
    first = attribute(tasks, data["service_names"])
    assert tasks == data["upgrade_tasks"]
    assert attribute(tasks, list(data["service_names"])) == first


# Hand-made task lists.

def _named(name: str, **body: Any) -> dict[str, Any]:
    return {"name": name, "when": "step|int == 1", **body}


def _services(result: list[Attribution]) -> list[str | None]:
    return [a.service for a in result]


def test_order_fills_gap_between_same_service() -> None:
    services = ["haproxy", "mysql", "podman"]
    tasks = [_named("Prepare haproxy image"),
             _named("Reset selinux label on /var/tmp"),
             _named("Update haproxy bundle"),
             _named("Run podman install")]
    result = attribute(tasks, services)
    assert _services(result) == ["haproxy", "haproxy", "haproxy", "podman"]
    assert result[1] == Attribution("haproxy", "order")
    assert result[0].evidence == "name"


def test_conflicting_evidence_resolved_by_order() -> None:
    services = ["cinder_volume", "haproxy", "pacemaker", "podman"]

    def retag(service: str) -> dict[str, Any]:
        return _named("Retag the pacemaker image if containerized", block=[
            _named(f"Pull latest {service} images",
                   command=f"{{{{container_cli}}}} pull {service}_image")])

    tasks = [_named("Prepare switch of cinder_volume image name"),
             retag("cinder_volume"),
             _named("Prepare switch of haproxy image name"),
             retag("haproxy"),
             _named("Check pacemaker cluster"),
             _named("Run podman install")]
    assert _services(attribute(tasks, services)) == [
        "cinder_volume", "cinder_volume", "haproxy", "haproxy",
        "pacemaker", "podman"]


def test_evidence_for_a_later_service_between_same_service_yields() -> None:
    services = ["mysql", "pacemaker"]
    tasks = [_named("Persist mysql data"),
             _named("upgrade step 0", block=[
                 _named("Check pacemaker cluster running")]),
             _named("Upgrade mysql database"),
             _named("Stop pacemaker cluster")]
    result = attribute(tasks, services)
    assert _services(result) == ["mysql", "mysql", "mysql", "pacemaker"]
    assert result[1].evidence == "order"


def test_no_evidence_between_different_services_stays_unattributed() -> None:
    services = ["haproxy", "horizon", "mysql"]
    tasks = [_named("Update haproxy bundle"),
             _named("Anchor for upgrade and update tasks"),
             _named("Persist mysql data")]
    assert attribute(tasks, services) == [
        Attribution("haproxy", "name"), Attribution(None, ""),
        Attribution("mysql", "name")]


def test_equally_strong_conflict_stays_unattributed() -> None:
    services = ["haproxy", "mysql"]
    tasks = [_named("Update mysql bundle"), _named("Update haproxy bundle")]
    assert _services(attribute(tasks, services)) == [None, None]


def test_leading_and_trailing_gaps_fill_only_when_one_service_fits() -> None:
    services = ["podman", "tuned"]
    tasks = [_named("Gather missing facts"), _named("Run podman install"),
             _named("Check something")]
    assert _services(attribute(tasks, services)) == ["podman", "podman", None]
    tasks = [_named("Gather facts"), _named("Tune the tuned profile"),
             _named("Check something")]
    assert _services(attribute(tasks, services)) == [None, "tuned", "tuned"]


@pytest.mark.parametrize("tasks, services", [
    ([], []), ([], ["mysql"]), ([_named("Persist mysql data")], [])])
def test_empty_lists(tasks: list[dict[str, Any]],
                     services: list[str]) -> None:
    assert attribute(tasks, services) == [
        Attribution(None, "") for _ in tasks]


def test_prefix_service_names_are_not_confused() -> None:
    services = ["mysql", "mysql_client", "nova_api", "nova_api_cron"]
    tasks = [_named("Remove mysql_client leftovers"),
             _named("Stop nova_api_cron container"),
             _named("Restart nova-api-cron", service={
                 "name": "tripleo_nova_api_cron"})]
    assert _services(attribute(tasks, services)) == [
        "mysql_client", "nova_api_cron", "nova_api_cron"]
    tasks = [_named("Persist mysql data"), _named("Check mysql_client"),
             _named("Sync nova_api db"), _named("Stop nova_api_cron")]
    assert _services(attribute(tasks, services)) == services


def test_roles_conditions_and_aliases_are_evidence() -> None:
    services = ["mysql", "logrotate_crond", "nova_migration_target",
                "oslo_messaging_rpc", "oslo_messaging_notify"]
    tasks = [_named("Prepare switch of galera image name"),
             _named("Ensure old cron.daily is absent"),
             _named("upgrade", include_role={
                 "name": "tripleo_nova_migration_target"}),
             {"when": ["step|int == 1", "oslo_messaging_rpc_enabled|bool"],
              "block": [{"debug": {"msg": "hello"}}]}]
    assert attribute(tasks, services) == [
        Attribution("mysql", "name"), Attribution("logrotate_crond", "name"),
        Attribution("nova_migration_target", "role"),
        Attribution("oslo_messaging_rpc", "condition")]


def test_negated_service_condition_is_not_evidence() -> None:
    services = ["pacemaker", "redis"]
    task = {"when": ["step|int == 0", "'redis' not in service_names"],
            "debug": {"msg": "check"}}
    assert attribute([task], services) == [Attribution(None, "")]

"""From/to releases, as far as the outputs tell them, shown by prepare and plan."""

from __future__ import annotations

from pathlib import Path

import composable_upgrades as cu
from composable_upgrades.model.releases import (
    ImageRelease, Releases, find_releases, plan_folder_releases)
from tests.helpers import upgrade

FIXTURE = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"


def test_release_fields_with_or_without_a_prefix():
    assert find_releases({"RoleConfig": {"global_vars": {
        "demo_release_from": "17.1", "demo_release_to": 18.0}}}) == Releases("17.1", "18.0")
    assert find_releases({"release_to": "wallaby"}, {"x": {"FROM_RELEASE": "train"}}) \
        == Releases("train", "wallaby")
    assert not find_releases({"release": "18.0", "released_to": "x"}).known


def test_images_by_repository_and_tag_without_moving_tags_or_templates():
    outputs = {"RoleData": {
        "Controller": {"config_settings": {
            "ContainerKeystoneImage": "quay.io/ns/openstack-keystone:17.1_2024",
            "galera_image": "quay.io/ns/openstack-mariadb:17.1_2024",
            "galera_image_latest": "quay.io/ns/openstack-mariadb:pcmklatest",
            "nova_image": "{{ container_image_prefix }}nova:{{ tag }}",
            "description": "quay.io/ns/openstack-swift:17.1_2024",
        }},
        "Compute": {"docker_config": {"step_3": {"nova_compute": {
            "image": "registry.local:8787/ns/openstack-nova-compute:17.1_2024"}}},
            "upgrade_tasks": [{"vars": {"container_image": "quay.io/ns/openstack-keystone:17.1_2024"}}]},
    }}
    found = find_releases(outputs)
    assert found.images == (
        ImageRelease("quay.io/ns", "17.1_2024", ("openstack-keystone", "openstack-mariadb")),
        ImageRelease("registry.local:8787/ns", "17.1_2024", ("openstack-nova-compute",)))
    assert found.lines() == [
        "container images -> quay.io/ns/*:17.1_2024 (2 images)",
        "container images -> registry.local:8787/ns/*:17.1_2024 (1 image)"]
    assert found.rows()[1][0] == ("images quay.io/ns/* (2)", "", "17.1_2024")


def test_tht18_and_demo_outputs():
    tht = find_releases(cu.StackOutputs.from_file(FIXTURE))
    assert [(g.repository, g.tag) for g in tht.images] == [
        ("quay.io/tripleomastercentos9", "current-tripleo")]
    assert len(tht.images[0].images) == 33
    assert (tht.release_from, tht.release_to) == (None, None)
    demo = find_releases(cu.demo_outputs())
    assert (demo.release_from, demo.release_to, demo.images) == ("17.1", "18.0", ())


def test_prepare_and_plan_show_them(tmp_path):
    demo = upgrade("prepare", "--demo", home=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "upgrade: release 17.1 -> 18.0\n" in demo.stderr
    shown = upgrade("plan", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "upgrade: release 17.1 -> 18.0\n" in shown.stderr

    tht = upgrade("prepare", "--outputs-file", str(FIXTURE), "--stack", "tht",
                  home=tmp_path)
    assert tht.returncode == 0, tht.stderr
    assert ("upgrade: container images -> quay.io/tripleomastercentos9/*:"
            "current-tripleo (33 images)\n") in tht.stderr
    # The plan keeps the images its tasks name.
    plan = cu.Workdir.at(tmp_path / "overcloud-deploy" / "tht").load_plan()
    kept = plan_folder_releases(plan.path)
    assert [(g.repository, g.tag) for g in kept.images] == [
        ("quay.io/tripleomastercentos9", "current-tripleo")]
    shown = upgrade("plan", "--stack", "tht", home=tmp_path)
    assert kept.lines()[0] in shown.stderr

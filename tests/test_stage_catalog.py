"""The control-plane catalog against every role file of THT 18.0.0.

``tests/fixtures/tht18-roles.yaml`` holds, for each role file of
tripleo-heat-templates 18.0.0's ``roles/``, the service_names it runs with
the default registry (``default``) and the ones an ``environments/`` file can
add (``optional``: Ceph, telemetry, Octavia, DCN...). ``EXPECTED`` below says
where an operator expects each role; a catalog change that moves a role must
change this table too, and say why (doc/workflow.rst, "Stages").
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from composable_upgrades import Deployment, StackOutputs, build_plan
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.planning.stages import (
    COMPUTE, CONTROLPLANE, controlplane_services, default_stage)

FIXTURE = Path(__file__).parent / "fixtures" / "tht18-roles.yaml"
SEVEN_ROLES = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"

CP, BATCHED = CONTROLPLANE, COMPUTE

# role: (stage with the default registry, stage with every optional service).
# The two differ only where an environment file adds control-plane services
# to a role that otherwise runs none (DCN sites, Octavia on Networker, Ironic).
EXPECTED: dict[str, tuple[str, str]] = {
    # APIs, databases, message queues, pacemaker clusters.
    "Controller": (CP, CP),
    "ControllerAllNovaStandalone": (CP, CP),
    "ControllerNoCeph": (CP, CP),
    "ControllerNovaStandalone": (CP, CP),
    "ControllerOpenstack": (CP, CP),
    "ControllerSriov": (CP, CP),
    "ControllerStorageDashboard": (CP, CP),
    "ControllerStorageNfs": (CP, CP),
    "CellController": (CP, CP),
    "Database": (CP, CP),
    "Messaging": (CP, CP),
    "Novacontrol": (CP, CP),
    "NovaManager": (CP, CP),        # nova-manage works the nova databases
    "Telemetry": (CP, CP),          # pacemaker; aodh/gnocchi/ceilometer APIs
    "Standalone": (CP, CP),
    "Undercloud": (CP, CP),
    # Ironic's conductor drives bare metal from the ironic database.
    "IronicConductor": (BATCHED, CP),
    # OVN gateway chassis and neutron agents are data plane; Octavia's
    # worker, health manager and housekeeping are Octavia's control plane.
    "Networker": (BATCHED, CP),
    "NetworkerSriov": (BATCHED, CP),
    # An edge site's first nodes run its glance_api_edge and etcd (for
    # active/active cinder_volume): the site's control services.
    "DistributedCompute": (BATCHED, CP),
    "DistributedComputeHCI": (BATCHED, CP),
    "DistributedComputeHCIDashboard": (BATCHED, CP),
    "DistributedComputeHCIScaleOut": (BATCHED, BATCHED),   # haproxy_edge: local
    "DistributedComputeScaleOut": (BATCHED, BATCHED),
    # Storage that holds data: host by host.
    "BlockStorage": (BATCHED, BATCHED),    # cinder_volume
    "ObjectStorage": (BATCHED, BATCHED),   # swift_storage, swift_ringbuilder
    "CephStorage": (BATCHED, BATCHED),
    "CephAll": (BATCHED, BATCHED),         # ceph_mon, ceph_mgr: cephadm's
    "CephFile": (BATCHED, BATCHED),
    "CephObject": (BATCHED, BATCHED),
    "HciCephAll": (BATCHED, BATCHED),
    "HciCephFile": (BATCHED, BATCHED),
    "HciCephMon": (BATCHED, BATCHED),
    "HciCephObject": (BATCHED, BATCHED),
    # DNS servers that answer for the zones Designate manages.
    "DesignateBind": (BATCHED, BATCHED),
    "Minimal": (BATCHED, BATCHED),
    # Hypervisors.
    "Compute": (BATCHED, BATCHED),
    "ComputeAlt": (BATCHED, BATCHED),
    "ComputeDVR": (BATCHED, BATCHED),
    "ComputeHCI": (BATCHED, BATCHED),
    "ComputeHCIOvsDpdk": (BATCHED, BATCHED),
    "ComputeHCISriov": (BATCHED, BATCHED),
    "ComputeInstanceHA": (BATCHED, BATCHED),   # pacemaker_remote, not pacemaker
    "ComputeLocalEphemeral": (BATCHED, BATCHED),
    "ComputeOvsDpdk": (BATCHED, BATCHED),
    "ComputeOvsDpdkRT": (BATCHED, BATCHED),
    "ComputeOvsDpdkSriov": (BATCHED, BATCHED),
    "ComputeOvsDpdkSriovRT": (BATCHED, BATCHED),
    "ComputePPC64LE": (BATCHED, BATCHED),
    "ComputeRBDEphemeral": (BATCHED, BATCHED),
    "ComputeRealTime": (BATCHED, BATCHED),
    "ComputeSriov": (BATCHED, BATCHED),
    "ComputeSriovIB": (BATCHED, BATCHED),
    "ComputeSriovRT": (BATCHED, BATCHED),
    "ComputeVdpa": (BATCHED, BATCHED),
}

# The roles of THT 18's roles_data.yaml (the default roles).
DEFAULT_ROLES = ("Controller", "Compute", "BlockStorage", "ObjectStorage",
                 "CephStorage")

# Catalog entries that no THT 18 role file runs, and why they stay.
UNUSED_BY_ROLE_FILES = {
    # OS::TripleO::Services::RabbitMQ (environments/nonha-arch.yaml): a broker
    # for custom roles that list it instead of OsloMessagingRpc/Notify.
    "rabbitmq",
}


@cache
def roles() -> dict[str, dict[str, tuple[str, ...]]]:
    data = yaml.safe_load(FIXTURE.read_text())
    return {role: {kind: tuple(names) for kind, names in lists.items()}
            for role, lists in data.items()}


def test_every_role_file_is_classified():
    assert sorted(EXPECTED) == sorted(roles())
    assert len(roles()) == 55


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_role_lands_in_expected_stage(role):
    services = roles()[role]
    expected_default, expected_all = EXPECTED[role]
    assert default_stage(services["default"]) == expected_default
    assert default_stage(services["default"] + services["optional"]) == \
        expected_all


def test_object_storage_of_the_default_roles_is_batched():
    role_data = {role: {"service_names": list(roles()[role]["default"])}
                 for role in DEFAULT_ROLES}
    plan = build_plan(Deployment.from_outputs(
        StackOutputs.from_mapping({"RoleData": role_data})))
    kinds = {role: stage.kind for stage in plan.stages for role in stage.roles
             if stage.kind is not StageKind.CONVERGE}
    assert kinds == {"Controller": StageKind.CONTROLPLANE,
                     "Compute": StageKind.BATCHED,
                     "BlockStorage": StageKind.BATCHED,
                     "ObjectStorage": StageKind.BATCHED,
                     "CephStorage": StageKind.BATCHED}


def test_every_catalog_entry_is_run_by_a_tht18_role():
    used = {s for lists in roles().values() for names in lists.values()
            for s in names}
    assert set(controlplane_services()) - used == UNUSED_BY_ROLE_FILES
    assert not UNUSED_BY_ROLE_FILES & used


@pytest.mark.parametrize("service", [
    "swift_ringbuilder", "swift_storage", "cinder_volume", "cinder_backup",
    "ceph_mon", "ceph_mgr", "ceph_osd", "haproxy_edge", "pacemaker_remote",
    "ovn_controller", "nova_compute"])
def test_borderline_services_outside_the_catalog(service):
    assert service not in controlplane_services()


@pytest.mark.parametrize("service", [
    "swift_proxy", "cinder_api", "cinder_scheduler", "ovn_dbs", "etcd",
    "glance_api_edge", "octavia_worker", "ironic_conductor", "pacemaker"])
def test_borderline_services_in_the_catalog(service):
    assert service in controlplane_services()


def test_networker_running_ovn_dbs_is_controlplane():
    """A custom Networker that hosts the OVN databases joins the control plane."""
    networker = roles()["Networker"]["default"]
    assert default_stage(networker) == BATCHED
    assert default_stage(networker + ("ovn_dbs",)) == CP


def test_fixture_agrees_with_the_seven_role_outputs():
    """The derivation gives the service_names Heat gave the 7-role fixture."""
    outputs = StackOutputs.from_file(SEVEN_ROLES)
    for role, data in outputs["RoleData"].items():
        assert sorted(set(data["service_names"])) == \
            list(roles()[role]["default"]), role

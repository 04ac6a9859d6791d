"""The built-in Nova hooks: drain a batch's computes before it, undrain after.

``nova-drain`` (pre-batch), for the hosts of the batch that run
``nova_compute``: disable each compute service with a reason, live-migrate
every instance off them (a block migration where the instance has no shared
storage, as ``nova host-evacuate-live`` does: ``block_migration="auto"``
lets Nova decide), and wait until they are empty. Instances still there when
``timeout`` runs out fail the hook, each named. ``nova-undrain``
(post-batch) enables the services again.

They talk to Nova with openstacksdk, as the overcloud's admin: a clouds.yaml
entry (``--overcloud-cloud NAME``) or, without one, the ``OS_*`` variables of
an ``overcloudrc``. A compute service is found by its host name: the
inventory name, or its FQDN as Nova may know it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composable_upgrades.errors import RunError
from composable_upgrades.run.hooks import HookCall

#: The reason the drain gives Nova for disabling a compute.
REASON = "composable upgrade: {stage} batch {batch}"
#: The service whose hosts the drain hooks act on.
NOVA_COMPUTE = "nova_compute"


@dataclass
class NovaDrain:
    """Drains and undrains Nova computes through an openstacksdk connection.

    ``connect`` makes the connection on first use (so a run whose hooks
    never reach Nova never logs in); ``aliases`` maps an inventory name to
    the names Nova may know the host by; ``computes`` are the inventory names
    that run ``nova_compute`` (None: every host of a batch).
    """

    connect: Callable[[], Any]
    timeout: float = 600.0
    poll: float = 2.0
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    computes: frozenset[str] | None = None
    _connection: Any = field(default=None, repr=False)

    @classmethod
    def from_cloud(cls, cloud: str | None, **settings: Any) -> NovaDrain:
        """Drain hooks for the clouds.yaml entry ``cloud`` (None: the ``OS_*``
        variables, as an ``overcloudrc`` sets them)."""
        def connect() -> Any:
            import openstack

            try:
                # No cloud: openstacksdk takes the OS_* variables (or OS_CLOUD).
                return openstack.connect(cloud=cloud)
            except Exception as exc:  # openstacksdk's config errors are plain
                raise RunError(f"the overcloud's credentials: {exc} (pass "
                               "--overcloud-cloud or source the overcloudrc)") from exc
        return cls(connect=connect, **settings)

    @property
    def connection(self) -> Any:
        """The openstacksdk connection, made on first use."""
        if self._connection is None:
            self._connection = self.connect()
        return self._connection

    def run_hook(self, name: str, call: HookCall) -> str | None:
        """Run the built-in hook ``name`` at ``call``; why it failed, or None."""
        hosts = [h for h in call.hosts if self.computes is None or h in self.computes]
        if not hosts:
            return None
        reason = REASON.format(stage=call.stage, batch=call.batch)
        if name == "nova-drain":
            return self.drain(hosts, reason=reason)
        if name == "nova-undrain":
            return self.undrain(hosts)
        raise RunError(f"no built-in hook {name!r}")

    def drain(self, hosts: Iterable[str], *, reason: str) -> str | None:
        """Disable ``hosts``' compute services, move their instances away and
        wait until they are empty; the instances that did not move, named."""
        from openstack import exceptions

        try:
            services = self.services(hosts)
            for service in services:
                self.connection.compute.disable_service(
                    service, service.host, service.binary, disabled_reason=reason)
            for service in services:
                for server in self.servers_on(service.host):
                    self.connection.compute.live_migrate_server(
                        server, host=None, block_migration="auto")
            deadline = time.monotonic() + self.timeout
            left = self.still_on(services)
            while left and time.monotonic() < deadline:
                time.sleep(self.poll)
                left = self.still_on(services)
        except exceptions.SDKException as exc:
            return f"Nova: {exc}"
        if left:
            return (f"{len(left)} instance{'s' if len(left) != 1 else ''} did not "
                    f"move within {self.timeout:g}s: " + ", ".join(
                        f"{s.name or s.id} ({s.id}) on {host}" for host, s in left))
        return None

    def undrain(self, hosts: Iterable[str]) -> str | None:
        """Enable ``hosts``' compute services again."""
        from openstack import exceptions

        try:
            for service in self.services(hosts):
                self.connection.compute.enable_service(
                    service, service.host, service.binary)
        except exceptions.SDKException as exc:
            return f"Nova: {exc}"
        return None

    def services(self, hosts: Iterable[str]) -> list[Any]:
        """The ``nova-compute`` services of ``hosts`` (each must have one)."""
        found = list(self.connection.compute.services(binary="nova-compute"))
        chosen = []
        for host in hosts:
            names = {host, *self.aliases.get(host, ())}
            match = [s for s in found if s.host in names
                     or (s.host or "").split(".")[0] == host]
            if not match:
                raise _NoService(host)
            chosen.extend(match)
        return chosen

    def servers_on(self, host: str) -> list[Any]:
        """The instances Nova places on compute ``host``."""
        return list(self.connection.compute.servers(
            details=True, all_projects=True, compute_host=host))

    def still_on(self, services: Iterable[Any]) -> list[tuple[str, Any]]:
        """(host, instance) for each instance still on one of ``services``'
        hosts (each checked with a server show, as a migration ends)."""
        left = []
        for service in services:
            for server in self.servers_on(service.host):
                fresh = self.connection.compute.get_server(server.id)
                if fresh.compute_host == service.host:
                    left.append((service.host, fresh))
        return left


class _NoService(RunError):
    def __init__(self, host: str) -> None:
        super().__init__(f"Nova has no nova-compute service on host {host}")

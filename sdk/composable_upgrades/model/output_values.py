"""One value of the stack outputs, checked: the error names the output and
the path to the value (``RoleNetIpMap.Compute.ctlplane``).

:class:`OutputValues` is what :class:`~.deployment.Deployment` is read with:
each method returns the value at ``key`` if it has the expected shape, and
raises :class:`~composable_upgrades.errors.OutputsError` (or
:class:`~composable_upgrades.errors.UnsafeNameError`) if not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from composable_upgrades.errors import OutputsError, UnsafeNameError
from composable_upgrades.model.names import (
    HOST_NAME, MAX_HOST_NAME, RESERVED_HOSTS, check_name)
from composable_upgrades.sources.outputs import StackOutputs


class OutputValues:
    """Checks of the values of ``outputs``."""

    def __init__(self, outputs: StackOutputs) -> None:
        self.outputs = outputs
        self.source = outputs.source

    def fail(self, key: str, message: str) -> OutputsError:
        return OutputsError(message, source=self.source, key=key)

    def mapping(self, key: str, value: Any, *, optional: bool = True
                ) -> Mapping[str, Any]:
        if value is None and optional:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}")
        return value

    def str_list(self, key: str, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of strings")
        return value

    def id_list(self, key: str, value: Any) -> list[str | None]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(
                v is None or isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of server ids (strings or "
                            "nulls)")
        return value

    def optional_str(self, key: str, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        return value

    def name(self, kind: str, name: Any) -> str:
        """:func:`.names.check_name`, the error naming the outputs it came from."""
        try:
            check_name(kind, name)
            if kind == "host" and name.lower() in RESERVED_HOSTS:
                raise UnsafeNameError(kind, name, reason=(
                    "is reserved: the inventory or Ansible has a host or group "
                    f"of that name (reserved: {', '.join(sorted(RESERVED_HOSTS))})"))
        except UnsafeNameError as exc:
            exc.args = (f"{self.source}: {exc}",)
            raise
        return name

    def address(self, key: str, value: Any) -> str | None:
        """An IP address or a host name (never a template), or None."""
        value = self.optional_str(key, value)
        if value is None or value == "":
            return None
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        if len(value) > MAX_HOST_NAME or not HOST_NAME.fullmatch(value) \
                or ".." in value:
            raise self.fail(key, f"{_shown(value)} is neither an IP address "
                            "nor a host name")
        return value


def _shown(value: str) -> str:
    """``value`` quoted for a one-line message, cut if long."""
    return repr(value if len(value) <= 60 else value[:60] + "...")

"""Reading one host's sandbox of a rehearsal fleet (layout: :mod:`.demo`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from composable_upgrades.model.fleet import Fleet
from composable_upgrades.rehearsal.demo import EVENTS_FILE, SEED_FILE


@dataclass(frozen=True)
class Event:
    """One line of ``events.log``."""

    time: Decimal
    step: str
    service: str
    action: str


class Sandbox:
    """Read access to one host's sandbox; what is missing reads as None or empty."""

    def __init__(self, fleet: Fleet, host: str) -> None:
        self.host = host
        self.root = fleet.host_root(host)

    def read(self, relative: str) -> str | None:
        """A file's text, stripped (None if it cannot be read)."""
        try:
            with open(os.path.join(self.root, relative), encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError:
            return None

    def exists(self, relative: str) -> bool:
        """True if the sandbox has ``relative``."""
        return os.path.exists(os.path.join(self.root, relative))

    def seed(self) -> dict[str, Any] | None:
        """What :func:`.demo.seed_fleet` wrote (None if unseeded or unreadable)."""
        text = self.read(SEED_FILE)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    def packages(self) -> dict[str, str]:
        """Installed packages: name -> version."""
        found = {}
        for line in (self.read("packages.txt") or "").splitlines():
            name, _, version = line.strip().partition(" ")
            if name:
                found[name] = version.strip()
        return found

    def pins(self) -> list[str]:
        """Services whose RPC version is pinned, sorted."""
        folder = os.path.join(self.root, "services")
        if not os.path.isdir(folder):
            return []
        return sorted(s for s in os.listdir(folder)
                      if os.path.exists(os.path.join(folder, s, "rpc_pin")))

    def events(self) -> tuple[list[Event], list[str]]:
        """Parsed events and the malformed lines (as 'host:line: text')."""
        events, bad = [], []
        for number, line in enumerate((self.read(EVENTS_FILE) or "").splitlines(), 1):
            fields = line.split()
            if len(fields) != 4:
                bad.append(f"{self.host}:{number}: {line!r}")
                continue
            try:
                events.append(Event(Decimal(fields[0]), *fields[1:]))
            except InvalidOperation:
                bad.append(f"{self.host}:{number}: {line!r}")
        return events, bad

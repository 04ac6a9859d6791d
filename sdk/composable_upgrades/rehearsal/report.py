"""What the invariant checks of a rehearsal found: a :class:`Check` each, an
:class:`InvariantReport` per stage (see :mod:`.invariants`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas


@dataclass(frozen=True)
class Check:
    """One invariant: its name, whether it holds, and what was found."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class InvariantReport:
    """The invariants checked after a stage."""

    after: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True if every invariant holds."""
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        """The invariants that do not hold."""
        return tuple(c for c in self.checks if not c.ok)

    def check(self, name: str) -> Check:
        """The check called ``name`` (KeyError if none)."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_frame(self) -> pandas.DataFrame:
        """One row per check: after, check, ok, detail."""
        import pandas

        return pandas.DataFrame(
            [(self.after, c.name, c.ok, c.detail) for c in self.checks],
            columns=["after", "check", "ok", "detail"])

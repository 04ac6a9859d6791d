"""A prepared plan as typed, frozen data: what ``plan.json`` holds.

:meth:`PreparedPlan.from_dict` reads the serialised form of an
:class:`~.plan.UpgradePlan` (``UpgradePlan.to_dict()``, plus each stage's
``sha256`` that prepare adds) once; everything after prepare reads these
objects, never the dict.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from composable_upgrades.errors import OptionError, UnknownRoleError, WorkdirError
from composable_upgrades.model.deployment import UNDERCLOUD_GROUP
from composable_upgrades.model.kinds import StageKind
from composable_upgrades.model.redact import scrub_text
from composable_upgrades.model.secret_digests import SECRET_DIGESTS_FILE, SecretDigests
from composable_upgrades.planning.hook_spec import KeptHooks
from composable_upgrades.planning.stages import unknown_stage

if TYPE_CHECKING:  # pragma: no cover
    import pandas

#: How a task that no service could be found for is shown.
UNATTRIBUTED = "(unattributed)"


@dataclass(frozen=True)
class PlannedTask:
    """One task of a role play: its name, service and how it is bound to steps."""

    name: str
    service: str | None
    index: int
    never: bool
    binding: str


@dataclass(frozen=True)
class PlannedPlay:
    """The tasks one role (or group) runs at one step, on its hosts."""

    role: str
    hosts: tuple[str, ...]
    serial: int | None
    services: tuple[str, ...]
    tasks: tuple[PlannedTask, ...]


@dataclass(frozen=True)
class PlannedStep:
    """One step of a stage: its playbook and role plays."""

    number: int | str
    playbook: str
    plays: tuple[PlannedPlay, ...]
    #: Roles whose plays run at the same time, wave after wave.
    waves: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.waves:
            object.__setattr__(self, "waves", tuple((p.role,) for p in self.plays))

    def wave_of(self, role: str) -> int:
        """The 1-based wave of the play of ``role`` (0: no play here)."""
        for number, wave in enumerate(self.waves, start=1):
            if role in wave:
                return number
        return 0

    @property
    def hosts(self) -> frozenset[str]:
        """Every host a play of this step runs on."""
        return frozenset(h for play in self.plays for h in play.hosts)


@dataclass(frozen=True)
class PreparedStage:
    """A stage of a prepared plan."""

    name: str
    kind: StageKind
    task_kind: str
    roles: tuple[str, ...]
    hosts: tuple[str, ...]
    playbook: str
    steps: tuple[PlannedStep, ...]
    sha256: str = ""

    @property
    def numbers(self) -> tuple[int | str, ...]:
        """The stage's steps in order: numbers, then converge's named phases."""
        return tuple(step.number for step in self.steps)

    @property
    def step_playbooks(self) -> dict[int | str, str]:
        """File name of each step's playbook."""
        return {step.number: step.playbook for step in self.steps}

    def step(self, number: int | str) -> PlannedStep:
        """The step called ``number``; KeyError if the stage has none."""
        for step in self.steps:
            if step.number == number:
                return step
        raise KeyError(number)


@dataclass(frozen=True)
class PlannedRole:
    """A role of the plan: the stage it is upgraded in, its services and hosts."""

    name: str
    stage: str | None
    services: tuple[str, ...]
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class PlannedHost:
    """A host of the plan (its inventory name) and where it is."""

    name: str
    role: str
    fqdn: str | None
    address: str | None


@dataclass(frozen=True)
class PlanVars:
    """Names of the variables the plan's inventory carries, and those held back."""

    global_names: tuple[str, ...] = ()
    role_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    withheld: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreparedPlan:
    """A plan as prepared into a plan folder (``path``; ``sha256`` of its files).

    ``path`` and ``sha256`` are empty for a plan not (yet) written.
    """

    stack: str
    variant: str | None
    stages: tuple[PreparedStage, ...]
    roles: Mapping[str, PlannedRole]
    hosts: Mapping[str, PlannedHost]
    dependencies: Mapping[str, Any] = field(default_factory=dict, repr=False)
    dependency_sources: tuple[str, ...] = ()
    stage_source: str = ""
    vars: PlanVars = field(default_factory=PlanVars, repr=False)
    warnings: tuple[str, ...] = ()
    fleet_root: str | None = None
    fleet_transport: str | None = None
    ssh_user: str = ""
    #: The hooks kept with the plan (``prepare --hooks-file``), if any.
    hooks: KeptHooks | None = None
    path: str = ""
    sha256: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: str = "",
                  sha256: str = "") -> PreparedPlan:
        """The plan that ``data`` (the content of ``plan.json``) describes.

        :class:`WorkdirError` names ``path`` when a part of it is missing or
        of the wrong type.
        """
        where = os.path.join(path, "plan.json") if path else "plan data"
        try:
            return cls._read(data, path=path, sha256=sha256)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WorkdirError(f"damaged plan ({type(exc).__name__}: {exc}); "
                               "prepare it again", path=where) from exc

    @classmethod
    def _read(cls, data: Mapping[str, Any], *, path: str, sha256: str
              ) -> PreparedPlan:
        fleet = data.get("fleet")
        variables = data.get("vars") or {}
        return cls(
            stack=data["stack"], variant=data.get("variant"),
            stages=tuple(_stage(s) for s in data["stages"]),
            roles={name: PlannedRole(name=name, stage=r.get("stage"),
                                     services=tuple(r["services"]),
                                     hosts=tuple(r["hosts"]))
                   for name, r in data["roles"].items()},
            hosts={name: PlannedHost(name=name, role=h["role"], fqdn=h.get("fqdn"),
                                     address=h.get("address"))
                   for name, h in data["hosts"].items()},
            dependencies=dict(data.get("dependencies") or {}),
            dependency_sources=tuple(data.get("dependency_sources") or ()),
            stage_source=data.get("stage_source") or "",
            vars=PlanVars(global_names=tuple(variables.get("global") or ()),
                          role_names={r: tuple(v) for r, v in
                                      (variables.get("roles") or {}).items()},
                          withheld=tuple(variables.get("withheld") or ())),
            warnings=tuple(data.get("warnings") or ()),
            fleet_root=fleet["root"] if fleet else None,
            fleet_transport=fleet.get("transport", "local") if fleet else None,
            ssh_user=data.get("ssh_user") or "",
            hooks=KeptHooks.from_dict(data["hooks"]) if data.get("hooks") else None,
            path=path, sha256=sha256)

    @property
    def is_rehearsal(self) -> bool:
        """True for a plan prepared for a local fleet."""
        return self.fleet_root is not None

    def stage(self, name: str) -> PreparedStage:
        """The stage called ``name``; :class:`StageError` if none."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise unknown_stage(name, [s.name for s in self.stages])

    def role_of(self, host: str) -> str | None:
        """The role of ``host`` (None for a host the plan does not have)."""
        found = self.hosts.get(host)
        return found.role if found else None

    def file(self, relative: str) -> str:
        """Absolute path of a file of the plan folder."""
        return os.path.join(self.path, relative)

    @functools.cached_property
    def secrets(self) -> SecretDigests:
        """The digests of the outputs' secrets that prepare kept (none: empty)."""
        return SecretDigests.read(self.file(SECRET_DIGESTS_FILE)) if self.path \
            else SecretDigests()

    def scrub(self, text: str) -> str:
        """``text`` with secrets masked: the outputs' own values, then the forms
        :func:`~composable_upgrades.model.redact.scrub_text` knows."""
        return scrub_text(self.secrets.mask(text))

    def rows(self, by: str = "step", *, stage: str | None = None,
             role: str | None = None) -> tuple[list[str], list[tuple]]:
        """The plan as a table: one row per step and role (``by="step"``),
        per service (``"service"``) or per task (``"task"``), optionally of
        one stage or one role."""
        if by not in PLAN_BY:
            raise OptionError(f"cannot show the plan by {by!r} (use one of "
                              f"{', '.join(PLAN_BY)})", option="--by")
        if stage is not None:
            self.stage(stage)
        if role is not None and role not in self.roles and role != UNDERCLOUD_GROUP:
            raise UnknownRoleError(role, where="plan", known=list(self.roles))
        rows: list[tuple] = []
        for st in self.stages:
            if stage is not None and st.name != stage:
                continue
            for step in st.steps:
                for play in step.plays:
                    if role is None or play.role == role:
                        rows.extend(_play_rows(by, (st.name, step.number, play.role),
                                               play, step.wave_of(play.role)))
        return list(_COLUMNS[by]), rows

    def summary(self) -> tuple[list[str], list[tuple]]:
        """One row per stage: roles, hosts, steps and tasks."""
        rows = []
        for st in self.stages:
            tasks = sum(len(p.tasks) for s in st.steps for p in s.plays)
            numbers = st.numbers
            span = f"{numbers[0]}-{numbers[-1]}" if numbers else "-"
            rows.append((st.name, ", ".join(st.roles), len(st.hosts), span, tasks))
        return ["Stage", "Roles", "Hosts", "Steps", "Tasks"], rows

    def to_frame(self) -> pandas.DataFrame:
        """One row per stage/step/role/service with task counts and hosts."""
        import pandas

        columns, rows = self.rows("service")
        hosts = {(st.name, step.number, play.role): len(play.hosts)
                 for st in self.stages for step in st.steps for play in step.plays}
        frame = pandas.DataFrame(rows, columns=[c.lower() for c in columns])
        frame.insert(3, "hosts", [hosts[(r[0], r[1], r[2])] for r in rows])
        return frame


#: What :meth:`PreparedPlan.rows` can show a row per.
PLAN_BY = ("step", "service", "task")

_COLUMNS = {
    "step": ("Stage", "Step", "Role", "Hosts", "Services", "Tasks", "Never", "Wave"),
    "service": ("Stage", "Step", "Role", "Service", "Tasks", "Never"),
    "task": ("Stage", "Step", "Role", "Service", "Task", "Never", "Bound by"),
}


def _play_rows(by: str, key: tuple, play: PlannedPlay, wave: int) -> list[tuple]:
    tasks = play.tasks
    if by == "step":
        return [key + (len(play.hosts), len(play.services), len(tasks),
                       sum(t.never for t in tasks), wave)]
    if by == "service":
        rows = []
        for service in play.services:
            mine = [t for t in tasks if (t.service or UNATTRIBUTED) == service]
            rows.append(key + (service, len(mine), sum(t.never for t in mine)))
        return rows
    return [key + (t.service or UNATTRIBUTED, t.name, t.never, t.binding)
            for t in tasks]


def _stage(data: Mapping[str, Any]) -> PreparedStage:
    return PreparedStage(
        name=data["name"], kind=StageKind(data["kind"]), task_kind=data["task_kind"],
        roles=tuple(data["roles"]), hosts=tuple(data["hosts"]),
        playbook=data["playbook"],
        steps=tuple(PlannedStep(
            number=step["step"], playbook=step["playbook"],
            waves=tuple(tuple(w) for w in step.get("waves") or ()),
            plays=tuple(PlannedPlay(
                role=play["role"], hosts=tuple(play["hosts"]),
                serial=play.get("serial"), services=tuple(play["services"]),
                tasks=tuple(PlannedTask(name=t["name"], service=t["service"],
                                        index=t["index"], never=t["never"],
                                        binding=t["binding"])
                            for t in play["tasks"]))
                for play in step["plays"]))
            for step in data["steps"]),
        sha256=data.get("sha256", ""))

"""Hooks: the operator's own work around the batches of a stage.

A hooks file names playbooks to run at four points of a stage::

    pre_stage:  [hooks/check-api.yaml]        # before the first batch
    pre_batch:  [hooks/drain-computes.yaml]   # before each batch
    post_batch: [hooks/undrain-computes.yaml, hooks/check-api.yaml]
    post_stage: []                            # after the last batch

A relative path is relative to the hooks file (read and checked by
:mod:`composable_upgrades.planning.hook_spec`; ``prepare --hooks-file`` keeps
it in the plan, and ``Hooks.from_plan`` runs the plan's copies). Each
playbook runs for real on the undercloud (``localhost``, the plan's
inventory loaded), on a rehearsal fleet too: hooks are the operator's own
code, run as the invoking user. It gets the extra variables ``upgrade_stage``, ``upgrade_point``,
``upgrade_batch`` (1-based; 0 at ``pre_stage`` and ``post_stage``),
``upgrade_batches`` and ``upgrade_batch_hosts`` (inventory names; every host
of the run at the stage's points). In converge, ``pre_batch`` and
``post_batch`` run around each host's reboot instead, one host at a time
(:mod:`.one_by_one`).

An entry that names a built-in hook instead of a file runs it:
``nova-drain`` (pre-batch: disable and empty the batch's computes) and
``nova-undrain`` (post-batch: enable them again), see :mod:`.drain`. On a
rehearsal fleet they only leave their record.

The SDK takes Python callables as well (``hooks={"pre_batch": [fn]}``):
``fn(stage, batch, hosts)``; an exception (or ``False``) fails the hook.

Which hooks run when (and again on a resume) is the stage runner's policy
(:mod:`.stage_runner`); this module says what the hooks are and runs one.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from composable_upgrades.errors import OptionError
from composable_upgrades.model.kinds import TaskStatus
from composable_upgrades.planning.hook_spec import POINTS, HookEntry, HooksSpec, hook_entry
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.run.environment import path_for
from composable_upgrades.state.results import REPRODUCE_SCRIPT, TaskRecord

#: The host a hook's record is made on: hooks run on the undercloud.
HOOK_HOST = "localhost"
#: How much of a failed hook's output its failure line keeps.
_TAIL = 3

HookFunction = Callable[[str, int, tuple[str, ...]], Any]


@dataclass(frozen=True)
class Hook:
    """One hook: a playbook (absolute path), a built-in or a callable.

    ``name`` is what the journal, the history and messages call it: the path
    as the hooks file gives it, the built-in's name, or the callable's.
    """

    point: str
    name: str
    playbook: str | None = None
    builtin: str | None = None
    function: HookFunction | None = field(default=None, compare=False)

    @classmethod
    def of(cls, entry: HookEntry) -> Hook:
        """The hook a hooks file's ``entry`` names."""
        return cls(entry.point, entry.name, playbook=entry.playbook,
                   builtin=entry.builtin)


@dataclass(frozen=True)
class HookCall:
    """A hook run at one boundary: where, of which batch, on which hosts.

    ``step``: the step run one host at a time between the hooks (converge's
    reboot), each host a batch of its own; None around whole batches.
    """

    stage: str
    point: str
    batch: int
    batches: int
    hosts: tuple[str, ...]
    step: int | str | None = None

    @property
    def where(self) -> str:
        """``post_batch of batch 2 of stage compute`` (``pre_batch of the
        reboot of compute-1 (host 4 of 10) of stage converge``), for messages."""
        if self.step is not None:
            return (f"{self.point} of the {self.step} of {', '.join(self.hosts)} "
                    f"(host {self.batch} of {self.batches}) of stage {self.stage}")
        batch = f" of batch {self.batch}" if self.batch else ""
        return f"{self.point}{batch} of stage {self.stage}"

    def variables(self) -> dict[str, Any]:
        """The extra variables a hook playbook gets."""
        return {"upgrade_stage": self.stage, "upgrade_point": self.point,
                "upgrade_batch": self.batch, "upgrade_batches": self.batches,
                "upgrade_batch_hosts": list(self.hosts)}


@dataclass(frozen=True)
class Hooks:
    """The hooks of a run, by point; ``source`` is the hooks file, if any;
    ``kept``: they are the ones the plan keeps."""

    by_point: Mapping[str, tuple[Hook, ...]] = field(default_factory=dict)
    source: str | None = None
    kept: bool = False

    def at(self, point: str) -> tuple[Hook, ...]:
        """The hooks of ``point``, in order."""
        return tuple(self.by_point.get(point, ()))

    def __bool__(self) -> bool:
        return any(self.by_point.values())

    @property
    def builtins(self) -> set[str]:
        """The built-in hooks named."""
        return {h.builtin for hs in self.by_point.values() for h in hs if h.builtin}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Hooks:
        """The hooks of a hooks file; every playbook it names must exist."""
        spec = HooksSpec.load(path)
        return cls(by_point={point: tuple(Hook.of(e) for e in entries)
                             for point, entries in spec.by_point.items()},
                   source=spec.source)

    @classmethod
    def from_plan(cls, plan: PreparedPlan) -> Hooks:
        """The hooks kept in ``plan`` (``prepare --hooks-file``), their
        playbooks the plan folder's copies; none if it keeps none."""
        kept = plan.hooks
        if kept is None:
            return cls()
        return cls(by_point={point: tuple(
            Hook(point, h.name, builtin=h.builtin,
                 playbook=plan.file(h.playbook) if h.playbook else None)
            for h in hooks) for point, hooks in kept.by_point.items()},
            kept=True)

    @classmethod
    def build(cls, hooks_file: str | os.PathLike[str] | None = None,
              functions: Mapping[str, Sequence[HookFunction | str]] | None = None,
              *, base: str | None = None) -> Hooks:
        """The hooks of ``hooks_file`` followed by ``functions`` (see :meth:`plus`)."""
        hooks = cls.load(hooks_file) if hooks_file else cls()
        return hooks.plus(functions, base=base)

    def plus(self, functions: Mapping[str, Sequence[HookFunction | str]] | None,
             *, base: str | None = None) -> Hooks:
        """These hooks followed by ``functions`` (by point: callables,
        built-in names or playbook paths relative to ``base``)."""
        if not functions:
            return self
        unknown = sorted(str(k) for k in functions if k not in POINTS)
        if unknown:
            raise OptionError(f"unknown hook point {unknown[0]!r} (points: "
                              f"{', '.join(POINTS)})", option="hooks")
        by_point = {p: list(self.at(p)) for p in POINTS}
        for point, entries in functions.items():
            for entry in entries:
                if callable(entry):
                    name = getattr(entry, "__qualname__", None) or repr(entry)
                    by_point[point].append(Hook(point, name, function=entry))
                else:
                    by_point[point].append(Hook.of(hook_entry(
                        point, str(entry), base or os.getcwd(), "hooks")))
        return replace(self, by_point={p: tuple(h) for p, h in by_point.items()})


@dataclass(frozen=True)
class HookOutcome:
    """How a hook run went: ``error`` says why it failed (None: it did not)."""

    hook: Hook
    call: HookCall
    started: float
    ended: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True if the hook succeeded."""
        return self.error is None

    def record(self, run_id: str) -> TaskRecord:
        """The hook run as a task record of the run's history."""
        return TaskRecord(
            run_id=run_id, stage=self.call.stage, batch=self.call.batch,
            step=self.call.point, host=HOOK_HOST, role=None,
            task=f"hook {self.hook.name}", service=None, action="hook",
            status=TaskStatus.OK if self.ok else TaskStatus.FAILED,
            start=self.started, duration=self.ended - self.started,
            message=self.error or "")

    def failure_line(self) -> str:
        """One line naming the hook, the point, the batch and the stage."""
        return f"hook {self.hook.name} failed at {self.call.where}: {self.error}"


#: Runs a built-in hook: (name, call) -> None, raising (or returning an
#: error message) when it fails.
BuiltinRunner = Callable[[str, HookCall], "str | None"]


class HookRunner:
    """Runs hooks for one run of ``plan``: playbooks with ``ansible-playbook``
    on this machine, built-ins with ``builtin``, callables in-process.

    ``env``: the run's ANSIBLE_* settings; ``stop_now`` is polled while a
    playbook runs (a second Ctrl-C ends it).
    """

    def __init__(self, plan: PreparedPlan, *, env: Mapping[str, str] | None = None,
                 builtin: BuiltinRunner | None = None,
                 binary: str | None = None) -> None:
        self.plan = plan
        self.env = dict(env or {})
        self.builtin = builtin
        self.binary = binary
        self.run_dir: str | None = None
        self.count = 0

    def run(self, hook: Hook, call: HookCall,
            stop_now: Callable[[], bool] = lambda: False) -> HookOutcome:
        """Run ``hook`` at ``call``; never raises for the hook's own failure."""
        started = time.time()
        self.count += 1
        try:
            if hook.function is not None:
                returned = hook.function(call.stage, call.batch, call.hosts)
                error = "it returned False" if returned is False else None
            elif hook.builtin is not None:
                error = self.run_builtin(hook.builtin, call)
            else:
                error = self.run_playbook(hook, call, stop_now)
        except Exception as exc:  # the operator's code: any failure is the hook's
            error = str(exc) or type(exc).__name__
        return HookOutcome(hook=hook, call=call, started=started, ended=time.time(),
                           error=error)

    def run_builtin(self, name: str, call: HookCall) -> str | None:
        """A built-in hook; on a rehearsal fleet only its record."""
        if self.plan.is_rehearsal or self.builtin is None:
            return None
        return self.builtin(name, call)

    def command(self, hook: Hook, variables_file: str) -> list[str]:
        """The ansible-playbook command line of a hook playbook."""
        if self.binary is None:
            from composable_upgrades.run.ansible import ansible_playbook_binary
            self.binary = ansible_playbook_binary()
        return [self.binary, "-i", self.plan.file("inventory.yaml"),
                "-e", f"@{variables_file}", str(hook.playbook)]

    def run_playbook(self, hook: Hook, call: HookCall,
                     stop_now: Callable[[], bool]) -> str | None:
        """Run a hook playbook; its failure as a message (None: it passed)."""
        folder = os.path.join(self.run_dir or self.plan.path, "hooks")
        os.makedirs(folder, exist_ok=True)
        variables = os.path.join(folder, f"{self.count:03d}-{call.point}-"
                                 f"batch{call.batch}.json")
        with open(variables, "w", encoding="utf-8") as handle:
            json.dump(call.variables(), handle, sort_keys=True)
        argv = self.command(hook, variables)
        cwd = os.path.dirname(str(hook.playbook))
        self.note(call, hook, argv, cwd)
        env = {**os.environ, **self.env, "ANSIBLE_NOCOLOR": "1",
               "PATH": path_for(argv[0])}
        # A session of its own: the first Ctrl-C is the run's to handle
        # (stop after this boundary), not a kill of the operator's playbook.
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        output = _Collector(process)
        while process.poll() is None:
            if stop_now():
                process.terminate()
                process.wait()
                output.join()
                return "stopped on request"
            time.sleep(0.05)
        output.join()
        if process.returncode == 0:
            return None
        return (f"ansible-playbook exited {process.returncode}: "
                + " / ".join(output.tail(_TAIL)))

    def note(self, call: HookCall, hook: Hook, argv: list[str], cwd: str) -> None:
        """Append the hook's call to the run's reproduce script."""
        if not self.run_dir:
            return
        path = os.path.join(self.run_dir, REPRODUCE_SCRIPT)
        if not os.path.exists(path):
            return
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"\n# hook {hook.name} at {call.where}\n"
                         f"(cd {shlex.quote(cwd)} && {shlex.join(argv)})\n")


class _Collector:
    """The lines a process prints, read on a thread so it never blocks."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        import threading

        self.lines: list[str] = []
        self.thread = threading.Thread(target=self.read, args=(process,), daemon=True)
        self.thread.start()

    def read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip())
            del self.lines[:-200]

    def join(self) -> None:
        self.thread.join(timeout=5)

    def tail(self, count: int) -> list[str]:
        """The last ``count`` lines that say something about a failure."""
        telling = [line for line in self.lines
                   if line.startswith(("fatal:", "failed:", "ERROR!", "[ERROR]"))
                   or '"msg":' in line]
        picked = telling or [line for line in self.lines if line.strip()]
        return [line.strip() for line in picked[-count:]] or ["no output"]

"""The options of a run, as one frozen object, and the one place they become
an ``ansible-playbook`` command line.

:func:`ansible_command` is used for the real run (ansible-runner is given
exactly its argv), for the reproduce script and for the dry run, so the
three cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunOptions:
    """What an operator asks of a run (see :func:`.execute.run_stage`).

    ``limit`` narrows the hosts (names, FQDNs, roles, globs; ``!`` excludes);
    ``tags`` and ``skip_tags`` go to ansible-playbook; ``batch_size`` (``N``,
    ``N%`` or a schedule of them, ``"1,5,20%"`` or ``[1, 5, "20%"]``),
    ``batch_by`` (``role`` or an inventory variable whose values batches do
    not mix), ``pause_after`` (stop cleanly after that many batches) and
    ``max_fail_percentage`` apply to the batched stages; ``hooks_file`` is a
    YAML file of playbooks to run around batches and the stage (see
    :mod:`.hooks`); ``overcloud_cloud`` the clouds.yaml entry of the
    overcloud, for the built-in Nova drain hooks;
    ``forks`` is Ansible's; ``resume`` skips finished units; ``steps`` (or
    ``playbooks``, the step playbooks' file names) restrict the steps;
    ``force`` runs although a needed stage is unfinished. What to do with
    earlier work of the stage (one at most): ``resume`` continues it;
    ``restart`` discards the unfinished progress of the hosts selected and
    starts them again; ``rerun`` repeats finished work on purpose (needed for
    a finished stage, and for any upgrade stage once converge has run).
    """

    limit: str | Sequence[str] | None = None
    tags: str | None = None
    skip_tags: str | None = None
    batch_size: int | str | Sequence[int | str] | None = None
    max_fail_percentage: float | None = None
    forks: int | None = None
    resume: bool = False
    steps: Sequence[int | str] | None = None
    playbooks: Sequence[str] | None = None
    force: bool = False
    restart: bool = False
    rerun: bool = False
    batch_by: str | None = None
    pause_after: int | None = None
    hooks_file: str | None = None
    overcloud_cloud: str | None = None

    @classmethod
    def build(cls, options: RunOptions | None = None, /,
              **overrides: Any) -> RunOptions:
        """``options`` (default: none set) with ``overrides`` by field name.

        A name that is not a field is a ``TypeError``, as for a function's
        unknown keyword argument.
        """
        unknown = sorted(set(overrides) - FIELDS)
        if unknown:
            raise TypeError(f"unexpected run option {unknown[0]!r} "
                            f"(options: {', '.join(sorted(FIELDS))})")
        return dataclasses.replace(options or cls(), **overrides)

    def as_dict(self) -> dict[str, Any]:
        """The options a run records (``RunResult.options``, the history).

        ``playbooks`` is left out: a plan turns them into ``steps``.
        """
        return {"limit": self.limit, "tags": self.tags, "skip_tags": self.skip_tags,
                "batch_size": (list(self.batch_size)
                               if isinstance(self.batch_size, (list, tuple))
                               else self.batch_size),
                "max_fail_percentage": self.max_fail_percentage,
                "forks": self.forks, "resume": self.resume,
                "steps": list(self.steps) if self.steps else None,
                "force": self.force, "restart": self.restart, "rerun": self.rerun,
                "batch_by": self.batch_by, "pause_after": self.pause_after,
                "hooks_file": self.hooks_file,
                "overcloud_cloud": self.overcloud_cloud}


#: The names of the fields of :class:`RunOptions`.
FIELDS = frozenset(f.name for f in dataclasses.fields(RunOptions))


def ansible_command(options: RunOptions, *, binary: str, inventory: str,
                    hosts: Sequence[str], playbook: str) -> list[str]:
    """The ansible-playbook command line that runs ``playbook`` on ``hosts``."""
    argv = [binary, "-i", inventory, "--limit", ",".join(hosts)]
    if options.tags:
        argv += ["--tags", options.tags]
    if options.skip_tags:
        argv += ["--skip-tags", options.skip_tags]
    if options.forks:
        argv += ["--forks", str(int(options.forks))]
    argv.append(playbook)
    return argv


"""The environment of every ansible-playbook call, as python-tripleoclient sets it.

python-tripleoclient's ``run_ansible_playbook`` gives every playbook forks of
``min(4 x CPUs, 100)``, its SSH arguments (a 30-minute ControlPersist, no
known-hosts file, public keys only), pipelining, SSH retries and timeouts, a
minimal fact subset, and plugin and role paths that reach tripleo-ansible's
modules and roles under ``/usr/share/ansible``, which are not on Ansible's
own default paths. A run here sets the same, so THT tasks find what they
need on a real undercloud. The operator's own ``ANSIBLE_*`` variables win
over all of these except the few the run's records rely on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from composable_upgrades.run.options import RunOptions

#: Where tripleo-ansible's RPM installs its plugins and roles; the variable
#: of this name points a run elsewhere (a venv's ``share/ansible``).
SHARE_VARIABLE = "COMPOSABLE_UPGRADES_ANSIBLE_SHARE"
DEFAULT_SHARE = "/usr/share/ansible"

#: python-tripleoclient's SSH arguments for the overcloud hosts.
SSH_ARGS = " ".join((
    "-o UserKnownHostsFile=/dev/null", "-o StrictHostKeyChecking=no",
    "-o ControlMaster=auto", "-o ControlPersist=30m",
    "-o ServerAliveInterval=64", "-o ServerAliveCountMax=1024",
    "-o Compression=no", "-o TCPKeepAlive=yes", "-o VerifyHostKeyDNS=no",
    "-o ForwardX11=no", "-o ForwardAgent=yes",
    "-o PreferredAuthentications=publickey", "-T"))

#: What the run's own records need: the operator's environment cannot change it.
FIXED = {
    "ANSIBLE_FORCE_COLOR": "False",
    "ANSIBLE_NOCOLOR": "True",
}

#: The plugin kinds whose search paths include tripleo-ansible's.
_PLUGIN_PATHS = {
    "ANSIBLE_LIBRARY": "modules",
    "ANSIBLE_ACTION_PLUGINS": "action",
    "ANSIBLE_LOOKUP_PLUGINS": "lookup",
    "ANSIBLE_FILTER_PLUGINS": "filter",
    "ANSIBLE_MODULE_UTILS": "module_utils",
}


def default_forks(cpus: int | None = None) -> int:
    """python-tripleoclient's default forks: ``min(4 x CPUs, 100)``."""
    return min(4 * (cpus or os.cpu_count() or 1), 100)


def run_environment(options: RunOptions, *, extra: Mapping[str, str] | None = None,
                    environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``ANSIBLE_*`` settings of a run's ansible-playbook calls.

    ``extra`` (the private key, say) is added; ``environ`` (default: this
    process's) is the operator's environment, whose ``ANSIBLE_*`` values win.
    """
    environ = os.environ if environ is None else environ
    share = environ.get(SHARE_VARIABLE) or DEFAULT_SHARE
    settings = {
        "ANSIBLE_FORKS": str(int(options.forks) if options.forks else default_forks()),
        "ANSIBLE_SSH_ARGS": SSH_ARGS,
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_RETRIES": "3",
        "ANSIBLE_TIMEOUT": "30",
        "ANSIBLE_GATHER_TIMEOUT": "45",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_INJECT_FACT_VARS": "False",
        "ANSIBLE_VARS_PLUGIN_STAGE": "inventory",
        "ANSIBLE_GATHER_SUBSET": "!all,min",
        **{name: _search_path(share, kind) for name, kind in _PLUGIN_PATHS.items()},
        "ANSIBLE_ROLES_PATH": ":".join((
            os.path.expanduser("~/.ansible/roles"), f"{share}/tripleo-roles",
            f"{share}/roles", "/etc/ansible/roles")),
        **(extra or {}),
    }
    settings.update({k: environ[k] for k in settings if k in environ})
    if options.forks:  # --ansible-forks is the operator's word for this run
        settings["ANSIBLE_FORKS"] = str(int(options.forks))
    settings.update(FIXED)
    return settings


def path_for(binary: str) -> str:
    """``PATH`` for a call of ``binary``: its directory first, so the
    commands it starts (ansible-galaxy, ansible-playbook's own children) are
    the ones beside it, whether or not its venv is activated."""
    return os.path.dirname(binary) + os.pathsep + os.environ.get("PATH", "")


def _search_path(share: str, kind: str) -> str:
    return ":".join((os.path.expanduser(f"~/.ansible/plugins/{kind}"),
                     f"{share}/tripleo-plugins/{kind}", f"{share}/plugins/{kind}"))

"""Ansible lookup plugin of a run's step barrier (installed into run folders).

``lookup('composable_upgrades_barrier', PATH)`` waits until the file PATH
exists and returns its text. The plays of a role wait in it, between steps,
until the run releases them: every host of the batch has finished the step.
The plugin runs inside ansible-playbook; nothing of the SDK imports it.
"""

from __future__ import annotations

import os
import time

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

#: Seconds between two looks at the file: short against a step's length.
POLL = 0.01


class LookupModule(LookupBase):
    """Wait for each file of ``terms``; return their texts.

    ``owner``: the pid of the run that releases the barrier. If that process
    is gone (killed), nothing will ever release it: the lookup fails, so the
    lane's hosts fail and its ansible-playbook ends instead of waiting for
    ever.
    """

    def run(self, terms, variables=None, **kwargs):
        owner = kwargs.get("owner")
        texts = []
        for path in terms:
            while not os.path.exists(path):
                if owner and not _alive(int(owner)):
                    raise AnsibleError(
                        f"the run (pid {owner}) that holds this barrier is gone")
                time.sleep(POLL)
            with open(path, encoding="utf-8") as handle:
                texts.append(handle.read().strip())
        return texts


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True

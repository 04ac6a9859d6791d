#!/usr/bin/python
"""Stub of ansible-pacemaker's ``pacemaker_cluster`` module (syntax-check only).

ansible-pacemaker is on no reachable package index; this file exists only so
that ansible-playbook --syntax-check of real THT upgrade tasks can resolve
the name (declared in tests/tripleo_reference.py: STUBBED_MODULES). Run for
real, it fails, whatever its arguments, and changes nothing.
"""

from __future__ import annotations

import json
import sys

DOCUMENTATION = r"""
module: pacemaker_cluster
short_description: Stub of ansible-pacemaker's pacemaker_cluster (syntax-check only)
description: Always fails; it only lets playbooks calling it be syntax-checked.
options: {}
"""


def main() -> None:
    """Fail: this is a stub, not the real module."""
    print(json.dumps({"failed": True, "changed": False,
                      "msg": "pacemaker_cluster is a syntax-check stub "
                      "(tests/stubs/library), not ansible-pacemaker's module"}))
    sys.exit(1)


if __name__ == "__main__":
    main()

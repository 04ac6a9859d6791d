"""``openstack overcloud upgrade prepare ARG...`` with python-tripleoclient's stack update isolated.

Run with the python of the python-tripleoclient venv::

    python handoff_probe.py RECORD ARG...

OpenStackClient runs ``overcloud upgrade prepare ARG...`` as the
``openstack`` script does; this plugin hands the stack update to
python-tripleoclient's own ``UpgradePrepare``, built and parsed by
python-tripleoclient itself. The one thing isolated is that command's
``take_action``, which would update the stack in the undercloud's Heat and
then reach the overcloud hosts over SSH (and refuses to run as root). In its
place, the stand-in writes to RECORD (JSON) the arguments python-tripleoclient
parsed, and writes the config python-tripleoclient's prepare downloads
(``<working dir>/config-download/<stack>``, or ``--output-dir``) with
tripleo-common 18's own ``Config.download_config`` of the THT 18 fixture's
stack outputs, as if Heat held them after the update; or, with
``$HANDOFF_PROBE_FAIL`` set, raises python-tripleoclient's
``DeploymentError`` with that message, as a failed stack update does. Exits with the command's status.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
#: What the stand-in records of python-tripleoclient's parsed arguments.
RECORDED = ("templates", "environment_files", "roles_file", "networks_file",
            "stack", "working_dir", "yes", "ntp_server", "timeout",
            "overcloud_ssh_user", "stack_only", "output_dir", "deployed_server")


def main(record: str, argv: list[str]) -> int:
    sys.path.insert(0, str(TESTS))
    import tripleo_reference
    from tripleoclient import exceptions
    from tripleoclient.v1 import overcloud_upgrade

    def take_action(self, parsed_args):
        failure = os.environ.get("HANDOFF_PROBE_FAIL")
        if failure:  # as python-tripleoclient fails when the stack update fails
            raise exceptions.DeploymentError(failure)
        Path(record).write_text(json.dumps({
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "args": {k: getattr(parsed_args, k, None) for k in RECORDED}}))
        working_dir = parsed_args.working_dir or os.path.join(
            os.path.expanduser("~"), "overcloud-deploy", parsed_args.stack)
        output_dir = parsed_args.output_dir or os.path.join(working_dir,
                                                            "config-download")
        tripleo_reference.download_config(
            tripleo_reference.load_fixture_outputs(),
            os.path.join(output_dir, parsed_args.stack), stack=parsed_args.stack)

    overcloud_upgrade.UpgradePrepare.take_action = take_action
    sys.argv[0] = "openstack"
    from openstackclient.shell import main as openstack
    return openstack(["overcloud", "upgrade", "prepare", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))

#!/usr/bin/env bash
# Install python-tripleoclient 20 next to this project, in a venv of its own,
# for tests/test_coexistence.py and benchmarks/startup.py.
#
# Usage: tests/coexistence/install.sh [VENV_DIR]
#   VENV_DIR defaults to $TRIPLEOCLIENT_VENV, then <repo>/.venv-tripleoclient;
#   $PYTHON (default python3, 3.10 or newer) creates the venv.
#
# Why a venv of its own, and why --no-deps: python-tripleoclient depends on
# validations-libs, which pins ansible<2.10; pip then lays ansible 2.9 over
# ansible-core and nothing imports any more. So python-tripleoclient,
# tripleo-common and validations-libs go in without their dependencies and
# the dependencies python-tripleoclient needs to load its commands go in
# explicitly.
#
# Idempotent: a stamp file records what was installed (the requirements and
# a hash of setup.cfg, whose entry points an editable install bakes in); a
# second run with the same inputs does nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${1:-${TRIPLEOCLIENT_VENV:-$repo/.venv-tripleoclient}}"
python="${PYTHON:-python3}"

# The versions the coexistence facts were checked against (cliff's
# ignored_modules needs cliff >= 4.13), and setuptools < 81: passlib (through
# tripleo-common) still imports pkg_resources, which setuptools 81 removed.
osc=("setuptools<81" "python-openstackclient==10.5.0" "cliff==4.17.0" "osc-lib==4.7.0")
nodeps=("python-tripleoclient==20.0.0" "tripleo-common==18.0.0"
        "validations-libs==1.9.0")
# What python-tripleoclient 20 imports to load its commands.
deps=("ansible-core" "ansible-runner" "python-heatclient" "python-ironicclient"
      "python-ironic-inspector-client" "Jinja2" "passlib" "tenacity"
      "oslo.concurrency" "GitPython" "netifaces-plus")

setup_hash="$(cat "$repo/setup.cfg" "$repo/setup.py" | sha256sum | cut -d' ' -f1)"
want="${osc[*]} | ${nodeps[*]} | ${deps[*]} | setup=$setup_hash"
stamp="$venv/.tripleoclient-installed"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/openstack" ]]; then
    echo "tripleoclient venv already installed: $venv"
    exit 0
fi
rm -f "$stamp"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip wheel "setuptools<81"
"${pip[@]}" "${osc[@]}"
"${pip[@]}" --no-deps "${nodeps[@]}"
"${pip[@]}" "${deps[@]}" "${osc[@]}"
# Editable, so the tests see the working tree; the pins keep pip from
# moving OpenStackClient while it resolves the project's dependencies.
"${pip[@]}" -e "$repo" "${osc[@]}"

# Fail now, not in the first test, if python-tripleoclient cannot load the
# modules of the commands the tests run.
"$venv/bin/python" -W ignore - <<'PY'
import importlib.metadata as md

import tripleoclient.plugin  # noqa: F401
import tripleoclient.v1.overcloud_deploy  # noqa: F401
import tripleoclient.v1.overcloud_external_upgrade  # noqa: F401
import tripleoclient.v1.overcloud_upgrade  # noqa: F401

assert md.version("python-tripleoclient") == "20.0.0", md.version("python-tripleoclient")
PY
"$venv/bin/python" -c "import tripleoclient_upgrade.plugin, composable_upgrades"
printf '%s' "$want" > "$stamp"
echo "tripleoclient venv installed: $venv"

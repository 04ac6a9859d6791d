#!/usr/bin/env bash
# Install OpenStack Heat into its own virtualenv for the test suite.
#
# Usage: tests/heatserver/install.sh [VENV_DIR]
#   VENV_DIR defaults to $HEAT_VENV, then <repo>/.venv-heat; $PYTHON (default
#   python3, 3.10 or newer) creates the venv.
#
# Heat's pins clash with the project's, so it gets a venv of its own. The
# script is idempotent: a stamp file records what was installed and a second
# run with the same requirements does nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${1:-${HEAT_VENV:-$repo/.venv-heat}}"
python="${PYTHON:-python3}"

# What the launcher needs besides Heat itself is already among Heat's
# dependencies (oslo.service, paste, routes); nothing else is installed.
requirements=("openstack-heat==27.*")
stamp="$venv/.heat-installed"
want="${requirements[*]}"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/heat-manage" ]]; then
    echo "heat venv already installed: $venv"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "${requirements[@]}"
# Fail now, not in the first test, if the install cannot import what the
# launcher uses.
"$venv/bin/python" -W ignore - <<'PY'
import heat.engine.service  # noqa: F401
import oslo_service.backend  # noqa: F401
import paste.deploy  # noqa: F401
PY
test -f "$venv/etc/heat/api-paste.ini"
printf '%s' "$want" > "$stamp"
echo "heat venv installed: $venv"
